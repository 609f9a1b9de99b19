// Command loadbench measures what the privacy sidecar costs compared with
// plain Caddy, in one run on loopback. It builds the binary, starts a
// CRM-like upstream and a development OIDC issuer in this process, and runs
// three sidecar processes:
//
//	plain         caddyfiles/bench/plain.Caddyfile: reverse_proxy only
//	chain-cached  caddyfiles/bench/chain.Caddyfile: audit_log, oidc_auth,
//	              tenant_guard, scope_trim, reverse_proxy; one token reused
//	              (verified-token cache hits)
//	chain-fresh   the same Caddyfile; a different pre-minted token on every
//	              request (cache misses: a signature check per request)
//	chain-cached-alt  with -alt-bin: chain-cached run by another binary, to
//	              compare a change with the current code in the same run
//
// Each gets the same closed-loop load (after a warm-up) per response size;
// the report gives req/s, p50/p99, p99 added over plain, errors, the
// sidecar's RSS, and ratios to plain measured in the same run, as a
// markdown table. With -mode ndjson (or all) it streams an NDJSON export
// through scope_trim and reports the sidecar's peak RSS growth.
//
// Usage, from the repository root:
//
//	go run ./integration/loadbench -duration 20s -concurrency 16
//	go run ./integration/loadbench -mode ndjson -ndjson-bytes 100MB
//	go run ./integration/loadbench -sizes 10KB -duration 60s -cpuprofile /tmp/chain.pprof
//
// Everything listens on 127.0.0.1 only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// options are the command's flags.
type options struct {
	duration       time.Duration
	warmup         time.Duration
	concurrency    int
	rounds         int
	sizes          []sizeSpec
	configs        []string
	freshTokens    int
	mode           string
	ndjsonBytes    int64
	cpuProfile     string
	profileSeconds int
	profileConfig  string
	profileSize    string
	out            string
	bin            string
	altBin         string
	sidecarEnv     map[string]string
	sampleEvery    time.Duration
	peers          bool
	oauth2Proxy    string
	users          int
	userCaches     []int
	zipf           float64
	rawVerify      bool
}

type sizeSpec struct {
	Label string
	Bytes int
}

var allConfigs = []string{"plain", chainCached, chainFresh}

// altConfig is chain-cached run with the -alt-bin binary (and chain-fresh,
// when it runs, gets a chain-fresh-alt).
const altConfig = chainCached + "-alt"

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	o := &options{}
	var sizes, configs, ndjson, sidecarEnv, userCaches string
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per configuration and response size")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measured segment")
	fs.IntVar(&o.concurrency, "concurrency", 16, "closed-loop workers (each sends one request at a time)")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat every segment this many times, interleaving configurations, and pool the measurements")
	fs.StringVar(&sizes, "sizes", "1KB,10KB,300KB", "response sizes of the contacts list (comma-separated)")
	fs.StringVar(&configs, "configs", strings.Join(allConfigs, ","), "configurations to run (plain is the baseline of the ratios)")
	fs.IntVar(&o.freshTokens, "fresh-tokens", 1024, "tokens pre-minted for chain-fresh, used in turn; more than its token cache (256 entries) plus -concurrency, so every request misses")
	fs.StringVar(&o.mode, "mode", "load", "load, ndjson, all, or users (plain, chain-cached and the chain with -users distinct users at each -user-caches size)")
	fs.BoolVar(&o.peers, "peers", false, "also run oidc_auth alone and oauth2-proxy "+oauth2ProxyVersion+" (built with go install into a temporary directory), each with one reused token and with a fresh token per request")
	fs.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", "with -peers: use this oauth2-proxy binary instead of building one")
	fs.IntVar(&o.users, "users", 10000, "users mode: distinct users, one token each")
	fs.StringVar(&userCaches, "user-caches", "1000,2500,5000,10000,20000", "users mode: oidc_auth token cache sizes to compare (one sidecar each; -1 disables the cache)")
	fs.Float64Var(&o.zipf, "zipf", 1.1, "users mode: exponent s of the Zipf law of requests per user (user k makes a share proportional to 1/k^s; must be above 1), or 0 for every user equally often")
	fs.BoolVar(&o.rawVerify, "raw-verify", true, "when a fresh-token configuration runs, also measure go-oidc's raw Verify of the same tokens in this process, per round, as the baseline of a cache miss's cost")
	fs.StringVar(&ndjson, "ndjson-bytes", "100MB", "size of the NDJSON export streamed through scope_trim in ndjson mode")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of -profile-config, taken from its admin API during the -profile-size segment, to this file")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile (at most the segment's duration)")
	fs.StringVar(&o.profileConfig, "profile-config", "chain-cached", "configuration to profile")
	fs.StringVar(&o.profileSize, "profile-size", "10KB", "response size during which to profile, or ndjson for the NDJSON export")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.bin, "bin", "", "use this privacy-sidecar binary instead of building one")
	fs.StringVar(&o.altBin, "alt-bin", "", "also run chain-cached with this other binary, as configuration chain-cached-alt, interleaved in the same run (before/after comparisons)")
	fs.StringVar(&sidecarEnv, "sidecar-env", "", "extra environment for every sidecar process, KEY=VALUE[,KEY=VALUE...] (e.g. GOGC=400)")
	fs.DurationVar(&o.sampleEvery, "rss-every", 100*time.Millisecond, "how often the sidecar's /proc status is sampled")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for label := range strings.SplitSeq(sizes, ",") {
		label = strings.TrimSpace(label)
		n, err := humanize.ParseBytes(label)
		if err != nil || n == 0 || n > 64<<20 {
			return nil, fmt.Errorf("-sizes: %q is not a size between 1B and 64MiB", label)
		}
		o.sizes = append(o.sizes, sizeSpec{Label: label, Bytes: int(n)})
	}
	for c := range strings.SplitSeq(configs, ",") {
		c = strings.TrimSpace(c)
		if !contains(allConfigs, c) && !contains(peerConfigs, c) {
			return nil, fmt.Errorf("-configs: unknown configuration %q (use %s)", c, strings.Join(append(allConfigs, peerConfigs...), ", "))
		}
		o.configs = append(o.configs, c)
	}
	if o.peers {
		for _, c := range peerConfigs {
			if !contains(o.configs, c) {
				o.configs = append(o.configs, c)
			}
		}
	}
	if o.mode == "users" {
		for v := range strings.SplitSeq(userCaches, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n == 0 || n < -1 {
				return nil, fmt.Errorf("-user-caches: %q is not a cache size (a positive number, or -1 for none)", v)
			}
			o.userCaches = append(o.userCaches, n)
		}
		o.configs = []string{"plain", chainCached}
		for _, n := range o.userCaches {
			o.configs = append(o.configs, usersConfig(n))
		}
	}
	o.sidecarEnv = map[string]string{}
	for kv := range strings.SplitSeq(sidecarEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-sidecar-env: %q is not KEY=VALUE", kv)
		}
		o.sidecarEnv[k] = v
	}
	for _, bin := range []*string{&o.bin, &o.altBin} {
		if *bin != "" {
			abs, err := filepath.Abs(*bin)
			if err != nil {
				return nil, err
			}
			*bin = abs
		}
	}
	if o.altBin != "" {
		for _, c := range []string{chainCached, chainFresh} {
			if contains(o.configs, c) {
				o.configs = append(o.configs, c+"-alt")
			}
		}
	}
	n, err := humanize.ParseBytes(ndjson)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("-ndjson-bytes: %q is not a size such as 100MB", ndjson)
	}
	o.ndjsonBytes = int64(n)
	switch {
	case o.mode != "load" && o.mode != "ndjson" && o.mode != "all" && o.mode != "users":
		return nil, fmt.Errorf("-mode: %q is not load, ndjson, all or users", o.mode)
	case o.mode == "users" && (o.users < 2 || o.users > 1_000_000):
		return nil, fmt.Errorf("-users must be between 2 and 1000000")
	case o.zipf != 0 && o.zipf <= 1:
		return nil, fmt.Errorf("-zipf must be above 1 (or 0 for a uniform spread)")
	case o.concurrency < 1 || o.concurrency > 1024:
		return nil, fmt.Errorf("-concurrency must be between 1 and 1024")
	case o.duration < time.Second:
		return nil, fmt.Errorf("-duration must be at least 1s")
	case o.rounds < 1:
		return nil, fmt.Errorf("-rounds must be at least 1")
	case o.freshTokens <= freshCacheSize+o.concurrency:
		return nil, fmt.Errorf("-fresh-tokens must exceed %d (chain-fresh's token cache) plus -concurrency, or tokens would hit the cache", freshCacheSize)
	case o.cpuProfile != "" && !contains(o.configs, o.profileConfig):
		return nil, fmt.Errorf("-profile-config %q is not among -configs", o.profileConfig)
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}
