// Package demo is the `privacy-sidecar demo` command: the sidecar's main job
// on one machine with no outside service. It starts a development OIDC
// issuer and a sample CRM connector, runs the sidecar in-process from
// caddyfiles/demo.Caddyfile and policies/, then shows what the sidecar does
// to the same request under different tokens.
package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/alysio/privacy-sidecar/internal/democrm"
	"github.com/alysio/privacy-sidecar/internal/demooauth"
	"github.com/alysio/privacy-sidecar/internal/devidp"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "demo",
		Usage: "[--serve] [--listen <addr>] [--config <Caddyfile>] [--dir <dir>]",
		Short: "Runs the sidecar against a built-in OIDC issuer and CRM connector",
		Long: `
Runs the privacy sidecar's main job on this machine alone: a development OIDC
issuer and a sample CRM connector with two tenants start on loopback, the
sidecar runs from caddyfiles/demo.Caddyfile and policies/ (run it from the
repository's top directory), and the same request is shown under different
tokens: full access, a sales rep who sees only their team's contacts and no
personal data, hashed email, another rep's contact, an allowed and a refused
write, another tenant's data, a disconnected integration. The CRM only
accepts each tenant's own OAuth token, which the sidecar obtains after the
tenant connected the integration through the admin API; a tenant then
disconnects it. It ends by verifying the audit log's chain.

It exits non-zero if the sidecar did not behave as shown.

With --serve it stays running and prints tokens and curl commands to try.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().Bool("serve", false, "stay running after the tour, for your own requests")
			cmd.Flags().String("listen", "127.0.0.1:8080", "the sidecar's address")
			cmd.Flags().String("config", "caddyfiles/demo.Caddyfile", "the demo Caddyfile")
			cmd.Flags().String("dir", "", "where the audit log, keyring and tenant registry go (default: a new temporary directory)")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(run)
		},
	})
}

func run(fl caddycmd.Flags) (int, error) {
	dir := fl.String("dir")
	if dir == "" {
		d, err := os.MkdirTemp("", "privacy-sidecar-demo-")
		if err != nil {
			return 1, err
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 1, err
	}
	env, err := startWorld(dir, fl.String("listen"))
	if err != nil {
		return 1, err
	}
	defer env.close()

	if err := startSidecar(fl.String("config"), env); err != nil {
		return 1, err
	}
	defer caddy.Stop() //nolint:errcheck

	// Ctrl-C is caught before anything is printed: a user (or a test) may
	// press it as soon as the tokens appear
	wait := make(chan os.Signal, 1)
	if fl.Bool("serve") {
		signal.Notify(wait, os.Interrupt)
		defer signal.Stop(wait)
	}
	out := newPrinter(os.Stdout)
	ok := tour(out, env)
	if fl.Bool("serve") {
		printTry(out, env)
		<-wait
	}
	if !ok {
		return 1, fmt.Errorf("the sidecar did not behave as the demo expects; see the lines marked FAIL")
	}
	return 0, nil
}

// world is what the demo runs around the sidecar.
type world struct {
	dir      string
	listen   string
	issuer   *devidp.Issuer
	upstream *http.Server
	crm      *democrm.CRM
	upAddr   string
	audit    string
	// oauth is the CRM's authorization server; adminAddr the sidecar's
	// admin API, on loopback.
	oauth     *demooauth.Server
	adminAddr string
}

func startWorld(dir, listen string) (*world, error) {
	iss, err := devidp.Start()
	if err != nil {
		return nil, err
	}
	oauth, err := demooauth.Start()
	if err != nil {
		iss.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		iss.Close()
		oauth.Close()
		return nil, err
	}
	adminAddr, err := freeLoopbackAddr()
	if err != nil {
		iss.Close()
		oauth.Close()
		return nil, err
	}
	crm := democrm.New()
	up := &http.Server{Handler: oauth.Guard(crm), ReadHeaderTimeout: 5 * time.Second}
	go up.Serve(ln)
	w := &world{dir: dir, listen: listen, issuer: iss, upstream: up, crm: crm, upAddr: ln.Addr().String(), audit: filepath.Join(dir, "audit.jsonl"),
		oauth: oauth, adminAddr: adminAddr}
	if err := writeRegistry(filepath.Join(dir, "tenants.json"), iss.URL); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *world) close() {
	w.upstream.Close()
	w.issuer.Close()
	w.oauth.Close()
}

// freeLoopbackAddr returns a loopback address whose port was free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeRegistry writes the demo's tenant registry. It is generated because
// the development issuer's URL is only known once it listens.
func writeRegistry(path, issuer string) error {
	reg := map[string]any{"tenants": []any{
		map[string]any{"id": "acme", "status": "active", "issuers": []string{issuer},
			"connectors": []any{
				map[string]any{"id": "crm", "state": "connected"},
				map[string]any{"id": "erp", "state": "disconnected"},
			}},
		map[string]any{"id": "globex", "status": "active", "issuers": []string{issuer},
			"connectors": []any{map[string]any{"id": "crm", "state": "connected"}}},
	}}
	data, err := json.MarshalIndent(reg, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

func startSidecar(config string, w *world) error {
	vars := map[string]string{
		"DEMO_ADDR":       w.listen,
		"DEMO_ISSUER":     w.issuer.URL,
		"DEMO_UPSTREAM":   w.upAddr,
		"DEMO_DIR":        w.dir,
		"DEMO_AUDIT_FILE": w.audit,
		"DEMO_AUDIT_KEY":  "demo-only-pseudonym-key-do-not-use-in-production",
		"DEMO_HASH_KEY":   "demo-only-hash-key-do-not-use-in-production",
		"DEMO_ADMIN":      w.adminAddr,
		// the CRM's OAuth client, as the platform registered it there
		"DEMO_TOKEN_URL":       w.oauth.TokenURL(),
		"DEMO_REVOCATION_URL":  w.oauth.RevocationURL(),
		"DEMO_CLIENT_ID":       w.oauth.ClientID,
		"DEMO_CLIENT_SECRET":   w.oauth.ClientSecret,
		"DEMO_CONNECTIONS_KEY": "demo-only-connections-key-do-not-use-in-production",
	}
	for k, v := range vars {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	src, err := os.ReadFile(config)
	if err != nil {
		return fmt.Errorf("reading the demo Caddyfile (run the demo from the repository's top directory, or pass --config): %w", err)
	}
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": config})
	if err != nil {
		return fmt.Errorf("adapting %s: %w", config, err)
	}
	for _, warn := range warnings {
		fmt.Fprintf(os.Stderr, "%s:%d: %s\n", warn.File, warn.Line, warn.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("starting the sidecar from %s: %w", config, err)
	}
	return waitListening(w.listen)
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the sidecar is not listening on %s", addr)
}
