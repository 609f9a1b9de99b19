package main

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
	"strings"
	"sync"
	"time"
)

// buildSidecar compiles ./cmd/privacy-sidecar into dir, as a user would.
func buildSidecar(root, dir string) (string, error) {
	bin := filepath.Join(dir, "privacy-sidecar")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/privacy-sidecar")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the sidecar (go build ./cmd/privacy-sidecar): %w", err)
	}
	return bin, nil
}

// repoRoot finds the repository's top directory from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/alysio/privacy-sidecar\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run the harness inside the privacy-sidecar repository (no go.mod of github.com/alysio/privacy-sidecar above the working directory)")
		}
		dir = parent
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sidecar is one running privacy-sidecar process.
type sidecar struct {
	Name      string
	Addr      string // site host:port
	AdminAddr string // admin API host:port
	cmd       *exec.Cmd
	output    *syncBuffer
}

// startSidecar runs `privacy-sidecar run` with the Caddyfile (relative to
// root) on fresh loopback ports, and waits until the site accepts
// connections.
func startSidecar(name, bin, root, caddyfile string, env map[string]string) (*sidecar, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SIDECAR_ADDR="+addr, "SIDECAR_ADMIN="+admin)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s, err := startProcess(name, cmd, addr, admin)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, caddyfile)
	}
	return s, nil
}

// startProcess starts cmd, which serves on addr (and its admin API, if
// any, on admin), and waits until addr accepts connections.
func startProcess(name string, cmd *exec.Cmd, addr, admin string) (*sidecar, error) {
	s := &sidecar{Name: name, Addr: addr, AdminAddr: admin, cmd: cmd, output: new(syncBuffer)}
	s.cmd.Stdout, s.cmd.Stderr = s.output, s.output
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited at start; its output:\n%s", name, lastLines(s.output.String(), 20))
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			conn.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("%s did not listen on %s within 30s; its output:\n%s", name, addr, lastLines(s.output.String(), 20))
}

// PID is the sidecar's process id.
func (s *sidecar) PID() int { return s.cmd.Process.Pid }

// URL is the site's base URL.
func (s *sidecar) URL() string { return "http://" + s.Addr }

// Stop kills the process by its PID.
func (s *sidecar) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// Output is what the process logged so far.
func (s *sidecar) Output() string { return s.output.String() }

// adminGet fetches a path from the admin API.
func (s *sidecar) adminGet(ctx context.Context, path string) ([]byte, error) {
	if s.AdminAddr == "" {
		return nil, fmt.Errorf("%s has no admin API", s.Name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.AdminAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin GET %s: %s: %s", path, resp.Status, lastLines(string(body), 3))
	}
	return body, nil
}

// metric sums the samples of a Prometheus counter whose name and labels
// start with prefix (e.g. `sidecar_oidc_auth_token_cache_total{result="hit"}`)
// in the admin API's /metrics.
func (s *sidecar) metric(prefix string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := s.adminGet(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	return sumMetric(string(body), prefix), nil
}

// sumMetric adds the values of the exposition lines that start with prefix.
func sumMetric(text, prefix string) float64 {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)
		var v float64
		if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the tail only: a long run must not grow the harness.
	if b.buf.Len() > 1<<20 {
		tail := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-(256<<10):]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
