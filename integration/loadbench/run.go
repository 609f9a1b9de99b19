package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alysio/privacy-sidecar/internal/contacts"
	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// freshCacheSize is chain-fresh's token cache: small, so that a pool of a
// thousand tokens used in turn (least recently used first out) always
// misses, and minting stays out of the run's time.
const freshCacheSize = 256

// bench is one run: the processes and what every configuration sends.
type bench struct {
	o        *options
	root     string
	bin      string
	tmp      string
	up       *upstream
	iss      *devidp.Issuer
	client   *http.Client
	sidecars map[string]*sidecar
	exports  map[string]*sidecar      // the chain configured for the NDJSON export, by configuration
	tokens   map[string]func() string // per configuration
	fresh    *rotation
	users    *userTraffic
	profile  *profileSummary // taken during the NDJSON export
	log      func(format string, args ...any)
}

func run(ctx context.Context, o *options) error {
	b := &bench{o: o, sidecars: map[string]*sidecar{}, exports: map[string]*sidecar{}, tokens: map[string]func() string{}, client: newClient(o.concurrency)}
	b.log = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
	defer b.close()
	if err := b.setUp(); err != nil {
		return err
	}
	rep := &report{o: o, machine: describeMachine(), started: time.Now().UTC()}
	if o.mode == "ndjson" || o.mode == "all" {
		for _, name := range []string{"plain", "chain-cached", altConfig} {
			if b.sidecars[name] == nil {
				continue
			}
			res, err := b.ndjsonExport(ctx, name)
			if err != nil {
				return err
			}
			rep.ndjson = append(rep.ndjson, res)
		}
		rep.profile = b.profile
	}
	if o.mode == "load" || o.mode == "all" || o.mode == "users" {
		if err := b.loadPhase(ctx, rep); err != nil {
			return err
		}
	}
	return rep.print(o.out)
}

// setUp builds the binary and starts the upstream, the issuer and the
// sidecars, then checks that each configuration answers as expected.
func (b *bench) setUp() error {
	var err error
	if b.root, err = repoRoot(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "loadbench-"); err != nil {
		return err
	}
	b.bin = b.o.bin
	if b.bin == "" {
		b.log("building ./cmd/privacy-sidecar")
		if b.bin, err = buildSidecar(b.root, b.tmp); err != nil {
			return err
		}
	}
	docs := map[string][]byte{}
	for _, s := range b.o.sizes {
		docs[s.Label] = contacts.Page(s.Bytes)
	}
	if b.up, err = startUpstream(docs); err != nil {
		return err
	}
	if b.iss, err = devidp.Start(); err != nil {
		return err
	}
	registry := filepath.Join(b.tmp, "tenants.json")
	if err := writeRegistry(registry, b.iss.URL); err != nil {
		return err
	}
	valid := 2*time.Hour + time.Duration(b.o.rounds)*b.o.duration*time.Duration(3*len(b.o.sizes))
	cached, err := mintToken(b.iss, "bench-user-cached", valid)
	if err != nil {
		return err
	}
	need := b.o.configs
	if b.o.mode == "ndjson" {
		need = []string{"plain", chainCached}
		if b.o.altBin != "" {
			need = append(need, altConfig)
		}
	}
	specs := map[string]configSpec{}
	for _, name := range need {
		spec, err := specFor(name)
		if err != nil {
			return err
		}
		specs[name] = spec
		b.tokens[name] = func() string { return cached }
		switch {
		case spec.Tokens == freshTokens && b.fresh == nil:
			b.log("minting %d tokens for the fresh-token configurations", b.o.freshTokens)
			pool, err := mintPool(b.iss, "bench-user-", b.o.freshTokens, valid)
			if err != nil {
				return err
			}
			b.fresh = &rotation{tokens: pool}
		case spec.Tokens == userTokens && b.users == nil:
			b.log("minting %d tokens for the users", b.o.users)
			pool, err := mintPool(b.iss, "bench-member-", b.o.users, valid)
			if err != nil {
				return err
			}
			b.users = newUserTraffic(pool, b.o.zipf)
		}
		switch spec.Tokens {
		case freshTokens:
			b.tokens[name] = b.fresh.token
		case userTokens:
			b.tokens[name] = b.users.cursor()
		}
	}
	var oauth2Bin string
	for _, name := range need {
		if specs[name].OAuth2 && oauth2Bin == "" {
			if oauth2Bin = b.o.oauth2Proxy; oauth2Bin == "" {
				b.log("building oauth2-proxy (go install %s)", oauth2ProxyModule)
				if oauth2Bin, err = buildOAuth2Proxy(b.tmp); err != nil {
					return err
				}
			}
		}
	}
	start := func(spec configSpec, export bool) (*sidecar, error) {
		if spec.OAuth2 {
			b.log("starting %s", spec.Name)
			return startOAuth2Proxy(spec.Name, oauth2Bin, b.iss.URL, b.up.URL)
		}
		env := map[string]string{
			"UPSTREAM":            b.up.URL,
			"ISSUER":              b.iss.URL,
			"BENCH_TENANTS":       registry,
			"AUDIT_FILE":          filepath.Join(b.tmp, spec.Name+"-audit.jsonl"),
			"AUDIT_KEY":           "loadbench-audit-key-0123456789abcdef",
			"SCOPE_TRIM_HASH_KEY": "loadbench-hash-key-0123456789abcdef",
		}
		for k, v := range b.o.sidecarEnv {
			env[k] = v
		}
		if spec.CacheSize != 0 {
			env["BENCH_CACHE_SIZE"] = strconv.Itoa(spec.CacheSize)
		}
		label := spec.Name
		if export {
			env["BENCH_POLICY"] = "policies/crm-export.json"
			env["AUDIT_FILE"] = filepath.Join(b.tmp, spec.Name+"-export-audit.jsonl")
			label = spec.Name + " (export)"
		}
		bin := b.bin
		if spec.Alt {
			bin = b.o.altBin
		}
		b.log("starting %s (%s)", label, spec.Caddyfile)
		return startSidecar(label, bin, b.root, spec.Caddyfile, env)
	}
	for _, name := range need {
		s, err := start(specs[name], false)
		if err != nil {
			return err
		}
		b.sidecars[name] = s
	}
	if b.o.mode == "ndjson" || b.o.mode == "all" {
		for _, name := range []string{chainCached, altConfig} {
			if b.sidecars[name] == nil {
				continue
			}
			s, err := start(specs[name], true)
			if err != nil {
				return err
			}
			b.exports[name] = s
		}
	}
	return b.checkAnswers(docs)
}

// checkAnswers sends one request per configuration and size: plain,
// oidc_auth alone and oauth2-proxy must return the upstream's bytes, the
// chain a trimmed document without the fields no scope grants. A harness that measured refusals would measure
// nothing.
func (b *bench) checkAnswers(docs map[string][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, s := range b.sidecars {
		for _, size := range b.o.sizes {
			resp, body, err := fetchOnce(ctx, b.client, b.target(name, size.Label))
			if err != nil {
				return fmt.Errorf("%s, %s: %w", name, size.Label, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s, %s: status %s, body %s\nsidecar output:\n%s", name, size.Label, resp.Status, body, lastLines(s.Output(), 15))
			}
			if spec, _ := specFor(name); spec.Caddyfile != "caddyfiles/bench/chain.Caddyfile" {
				// plain, oidc_auth alone and oauth2-proxy pass the page on.
				if !bytes.Equal(body, docs[size.Label]) {
					return fmt.Errorf("%s, %s: the body differs from the upstream's", name, size.Label)
				}
				continue
			}
			if !json.Valid(body) || bytes.Contains(body, []byte(`"ssn"`)) || !bytes.Contains(body, []byte(`"email"`)) {
				return fmt.Errorf("%s, %s: the body is not the trimmed document (invalid JSON, ssn kept, or email removed): %.200s", name, size.Label, body)
			}
		}
	}
	return nil
}

// target is what configuration name sends for the contacts list of size.
func (b *bench) target(name, size string) target {
	return target{
		url:    b.sidecars[name].URL() + "/v1/contacts?size=" + url.QueryEscape(size),
		tenant: benchTenant,
		token:  b.tokens[name],
	}
}

func (b *bench) close() {
	for _, s := range b.sidecars {
		s.Stop()
	}
	for _, s := range b.exports {
		s.Stop()
	}
	if b.up != nil {
		b.up.Close()
	}
	if b.iss != nil {
		b.iss.Close()
	}
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
}

// writeRegistry writes tenant_guard's registry naming the harness's issuer.
func writeRegistry(path, issuer string) error {
	reg := map[string]any{"tenants": []any{map[string]any{
		"id":         benchTenant,
		"status":     "active",
		"issuers":    []string{issuer},
		"connectors": []any{map[string]string{"id": "crm", "state": "connected"}},
	}}}
	data, err := json.MarshalIndent(reg, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
