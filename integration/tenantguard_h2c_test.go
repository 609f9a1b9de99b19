package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// TestTenantGuardHTTP2 runs the header rules and the trailer defence over
// HTTP/2 (h2c), where header names arrive in lower case, Connection is not
// allowed, and trailers are declared in the request's HEADERS frame.
func TestTenantGuardHTTP2(t *testing.T) {
	iss := StartIssuer(t)
	var mu sync.Mutex
	var trailers []http.Header
	up := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		trailers = append(trailers, r.Trailer.Clone())
		mu.Unlock()
	})
	s := StartSidecarConfig(t, `{
	admin {$SIDECAR_ADMIN}
	servers {
		protocols h1 h2c
	}
}

http://{$SIDECAR_ADDR} {
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	tenant_guard
	reverse_proxy {$UPSTREAM}
}
`, map[string]string{"ISSUER": iss.URL, "UPSTREAM": up.Addr})
	acme := tgToken(iss, devidp.Claims{"tenant_id": "acme"})

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	send := func(path string, headers http.Header, trailer http.Header) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var body io.Reader
		if trailer != nil {
			body = strings.NewReader("hello")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = headers
		req.Header.Set("Authorization", "Bearer "+acme)
		if trailer != nil {
			req.ContentLength = -1
			req.Trailer = trailer
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Fatalf("the request went over %s; this test needs HTTP/2", resp.Proto)
		}
		return resp, string(b)
	}

	resp, body := send("/ok", http.Header{"X-Tenant-Id": {"acme"}}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if problem := tgCheckTenantHeaders(up.Last(t).Header, "acme"); problem != "" {
		t.Fatal(problem)
	}

	resp, body = send("/twice", http.Header{"X-Tenant-Id": {"acme", "acme"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, `"tenant_malformed"`) {
		t.Fatalf("two values over HTTP/2: %d %s", resp.StatusCode, body)
	}
	resp, body = send("/mismatch", http.Header{"X-Tenant-Id": {"globex"}}, nil)
	if resp.StatusCode != 403 || !strings.Contains(body, `"tenant_mismatch"`) {
		t.Fatalf("mismatch over HTTP/2: %d %s", resp.StatusCode, body)
	}
	if up.Calls() != 1 {
		t.Fatalf("refused requests reached the upstream: %d calls", up.Calls())
	}

	resp, body = send("/trailer", http.Header{"X-Tenant-Id": {"acme"}}, http.Header{"X-Tenant-Id": {"globex"}, "X-Checksum": {"abc"}})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if problem := tgCheckTenantHeaders(up.Last(t).Header, "acme"); problem != "" {
		t.Fatal(problem)
	}
	mu.Lock()
	defer mu.Unlock()
	last := trailers[len(trailers)-1]
	if last.Get("X-Checksum") != "abc" {
		t.Fatalf("the declared trailer did not reach the upstream (%v): the check below would prove nothing", last)
	}
	if v := last.Values("X-Tenant-Id"); len(v) != 0 {
		t.Fatalf("the upstream received the tenant header as an HTTP/2 request trailer: %q", v)
	}
}
