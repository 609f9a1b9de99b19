package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// sidecarBin is the binary every test runs, built once by TestMain (or taken
// from $SIDECAR_BIN).
var sidecarBin string

// repoRoot is the repository's top directory.
var repoRoot string

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	sidecarBin = os.Getenv("SIDECAR_BIN")
	if sidecarBin == "" {
		dir, err := os.MkdirTemp("", "sidecar-bin-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		sidecarBin = filepath.Join(dir, "privacy-sidecar")
		build := exec.Command("go", "build", "-o", sidecarBin, "./cmd/privacy-sidecar")
		build.Dir = repoRoot
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 0, fmt.Errorf("building the sidecar binary: %w", err)
		}
	}
	return m.Run(), nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Sidecar is a running privacy-sidecar process.
type Sidecar struct {
	// URL is the base URL of the site, http://127.0.0.1:port.
	URL string
	// Addr is the site's host:port.
	Addr string
	// AdminAddr is the admin API's host:port.
	AdminAddr string
	// Env is the environment the process was started with (KEY=value).
	Env []string

	cmd    *exec.Cmd
	output *syncBuffer
	t      testing.TB
}

// StartSidecar runs the binary with the Caddyfile at path (relative to the
// repository root, e.g. "caddyfiles/test/oidc.Caddyfile"). The Caddyfile
// reads its addresses from the environment: {$SIDECAR_ADDR} for the site and
// {$SIDECAR_ADMIN} for the admin API, both set here, plus whatever env adds
// (upstream, issuer, policy paths...). It waits until the site answers and
// kills the process when the test ends. An env SIDECAR_ADDR overrides the
// site address, for Caddyfiles whose site is built from other variables.
func StartSidecar(t testing.TB, path string, env map[string]string) *Sidecar {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(repoRoot, path)
	}
	s := &Sidecar{Addr: freeAddr(t), AdminAddr: freeAddr(t), t: t, output: new(syncBuffer)}
	if addr, ok := env["SIDECAR_ADDR"]; ok { // a Caddyfile that names its site otherwise
		s.Addr = addr
	}
	s.URL = "http://" + s.Addr
	s.Env = append(os.Environ(), "SIDECAR_ADDR="+s.Addr, "SIDECAR_ADMIN="+s.AdminAddr)
	for k, v := range env {
		s.Env = append(s.Env, k+"="+v)
	}
	s.cmd = exec.Command(sidecarBin, "run", "--config", path, "--adapter", "caddyfile")
	s.cmd.Dir = repoRoot
	s.cmd.Env = s.Env
	s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	t.Cleanup(s.Stop)
	s.waitReady()
	return s
}

// StartSidecarConfig is StartSidecar with the Caddyfile given as text.
func StartSidecarConfig(t testing.TB, caddyfile string, env map[string]string) *Sidecar {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return StartSidecar(t, path, env)
}

func (s *Sidecar) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s.cmd.ProcessState != nil {
			break
		}
		conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("the sidecar did not start listening on %s; its output:\n%s", s.Addr, s.Output())
}

// Stop kills the process by PID and waits for it.
func (s *Sidecar) Stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// Output is everything the process wrote to stdout and stderr so far.
func (s *Sidecar) Output() string { return s.output.String() }

// Reload loads the Caddyfile at path through the admin API, as
// `privacy-sidecar reload` does, and returns the command's error and output.
func (s *Sidecar) Reload(path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(repoRoot, path)
	}
	cmd := exec.Command(sidecarBin, "reload", "--config", path, "--adapter", "caddyfile", "--address", s.AdminAddr)
	cmd.Dir = repoRoot
	cmd.Env = s.Env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Do sends req to the sidecar (req.URL may be a path) and returns the
// response with its body read.
func (s *Sidecar) Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if req.URL.Host == "" {
		u := *req.URL
		u.Scheme, u.Host = "http", s.Addr
		req.URL = &u
	}
	ctx, cancel := context.WithTimeout(req.Context(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response to %s %s: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// Get sends a GET for path with the bearer token (none if empty) and extra
// headers ("Name: value" each, repeated names allowed).
func (s *Sidecar) Get(t testing.TB, path, token string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req := NewRequest(t, http.MethodGet, path, token, headers...)
	return s.Do(t, req)
}

// NewRequest builds a request for a sidecar path with a bearer token (none if
// empty) and raw "Name: value" headers, kept exactly as given: no
// canonicalisation, so tests can send x_tenant_id or two copies of one header.
func NewRequest(t testing.TB, method, path, token string, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header["Authorization"] = []string{"Bearer " + token}
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("header %q has no colon", h)
		}
		req.Header[name] = append(req.Header[name], strings.TrimSpace(value))
	}
	return req
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
