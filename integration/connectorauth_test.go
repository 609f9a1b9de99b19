package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConnectorAuthLifecycle: connect through the admin API, use (the
// connector gets the tenant's token from a real OAuth server, never the
// caller's), refresh on expiry with a rotated refresh token, disconnect
// with revocation at the provider, refusal; every step is in the audit
// chain, which verifies, and no secret is in any log, answer or stored file.
func TestConnectorAuthLifecycle(t *testing.T) {
	w := newConnectorWorld(t, 3*time.Second)
	sc := w.start(t)

	resp, body := w.get(t, sc, "/v1/contacts")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"connector_disconnected"`) {
		t.Fatalf("before connecting: %d %s", resp.StatusCode, body)
	}
	if len(w.crm.received()) != 0 {
		t.Fatal("the connector was called before the tenant connected")
	}

	rt := w.op.authorize(t)
	answers := map[string]string{"PUT answer": w.connect(t, sc, rt)}
	status, list := admin(t, sc, http.MethodGet, "/sidecar/connections/acme", "")
	answers["GET answer"] = list
	if status != http.StatusOK || !strings.Contains(list, `"state":"connected"`) || !strings.Contains(list, `"connected_at"`) {
		t.Fatalf("GET: %d %s", status, list)
	}

	resp, body = w.get(t, sc, "/v1/contacts")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Maria Lindqvist") {
		t.Fatalf("connected: %d %s", resp.StatusCode, body)
	}
	first := w.crm.received()
	if len(first) != 1 || !w.op.accessTokenValid(first[0]) {
		t.Fatalf("the connector did not get a valid access token of the tenant (%d tokens)", len(first))
	}
	refreshes := w.op.tokenRequests.Load()
	if resp, _ := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	if w.op.tokenRequests.Load() != refreshes {
		t.Fatal("the cached access token was not reused")
	}

	time.Sleep(3 * time.Second) // the access token expires
	if resp, body := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after expiry: %d %s", resp.StatusCode, body)
	}
	if n := w.op.tokenRequests.Load(); n != refreshes+1 {
		t.Fatalf("%d token requests after expiry, want one refresh", n-refreshes)
	}
	seen := w.crm.received()
	if seen[len(seen)-1] == first[0] {
		t.Fatal("the expired access token was sent again")
	}
	if w.op.refreshWorks(t, rt) {
		t.Fatal("the first refresh token still works: it should have been rotated away (and the rotated one stored)")
	}
	for _, tok := range seen {
		if tok == w.callerTok {
			t.Fatal("the connector received the caller's token")
		}
	}

	revokedBefore := w.op.store.revoked.Load()
	status, receiptBody := admin(t, sc, http.MethodDelete, "/sidecar/connections/acme/crm", "")
	answers["DELETE answer"] = receiptBody
	var receipt struct {
		Tenant           string    `json:"tenant"`
		Connector        string    `json:"connector"`
		DisconnectedAt   time.Time `json:"disconnected_at"`
		Revoked          []string  `json:"revoked"`
		RevocationErrors []string  `json:"revocation_errors"`
		Deleted          bool      `json:"deleted"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(receiptBody), &receipt) != nil {
		t.Fatalf("DELETE: %d %s", status, receiptBody)
	}
	slices.Sort(receipt.Revoked)
	if receipt.Tenant != "acme" || receipt.Connector != "crm" || receipt.DisconnectedAt.IsZero() || !receipt.Deleted ||
		!slices.Equal(receipt.Revoked, []string{"access_token", "refresh_token"}) || len(receipt.RevocationErrors) != 0 {
		t.Fatalf("receipt %s", receiptBody)
	}
	if w.op.store.revoked.Load() < revokedBefore+2 {
		t.Fatal("the OP did not receive both revocations")
	}
	if w.op.accessTokenValid(seen[len(seen)-1]) {
		t.Fatal("the cached access token still works at the provider after the disconnect")
	}
	calls := len(w.crm.received())
	resp, body = w.get(t, sc, "/v1/contacts")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"connector_disconnected"`) {
		t.Fatalf("after disconnecting: %d %s", resp.StatusCode, body)
	}
	if len(w.crm.received()) != calls {
		t.Fatal("the connector was called after the disconnect")
	}
	_, after := admin(t, sc, http.MethodGet, "/sidecar/connections/acme/crm", "")
	answers["GET after DELETE"] = after
	if !strings.Contains(after, `"state":"disconnected"`) {
		t.Fatalf("GET after DELETE: %s", after)
	}

	// metrics: refreshes, revocations, connections by state (recounted
	// at most every 5 s after a change) and the security event
	var metrics string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		metrics = scrapeMetrics(t, "http://"+sc.AdminAddr+"/metrics")
		if strings.Contains(metrics, `sidecar_connections{connector="crm",state="disconnected"} 1`) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		`sidecar_connector_token_refreshes_total{connector="crm"} 2`,
		`sidecar_connector_revocations_total{connector="crm",result="ok"} 2`,
		`sidecar_connections{connector="crm",state="disconnected"} 1`,
		`sidecar_connections{connector="crm",state="connected"} 0`,
		`sidecar_security_events_total{reason="connector_disconnected"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "sidecar_"))
		}
	}

	// the audit chain: the events beside the request records
	waitLinesIn(t, 10, w.audits[0])
	events, requests := connectorAuditRecords(t, w.audits[0])
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e["event"].(string))
		if e["tenant"] != "acme" || e["connector"] != "crm" {
			t.Errorf("event %v lacks tenant or connector", e)
		}
	}
	for _, want := range []string{"connect", "refresh", "refresh", "revocation", "revocation", "disconnect"} {
		i := slices.Index(kinds, want)
		if i < 0 {
			t.Fatalf("events %v lack %s", kinds, want)
		}
		kinds = slices.Delete(kinds, i, i+1)
	}
	for _, e := range events {
		switch e["event"] {
		case "refresh":
			if e["rotated"] != true {
				t.Errorf("refresh event %v: the OP rotates, rotated must be true", e)
			}
		case "disconnect":
			if e["deleted"] != true || e["disconnected_at"] == nil || len(e["revoked"].([]any)) != 2 {
				t.Errorf("disconnect event without the receipt's content: %v", e)
			}
		}
	}
	last := requests[len(requests)-1]
	if last["reason"] != "connector_disconnected" || last["security_event"] != "connector_disconnected" {
		t.Errorf("the refused request's record: %v, want a connector_disconnected security event", last)
	}
	if first := requests[0]; first["reason"] != "connector_disconnected" || first["security_event"] != nil {
		t.Errorf("a request before any connect is no security event: %v", first)
	}
	if out, err := exec.Command(sidecarBin, "audit", "verify", w.audits[0]).CombinedOutput(); err != nil {
		t.Fatalf("audit verify on a log with event records: %v\n%s", err, out)
	}

	// no secret anywhere
	sc.Stop()
	texts := map[string]string{"the sidecar's output": sc.Output()}
	for k, v := range answers {
		texts[k] = v
	}
	auditData, _ := os.ReadFile(w.audits[0])
	texts["the audit log"] = string(auditData)
	filepath.WalkDir(w.storage, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			texts["stored "+path] = string(data)
		}
		return nil
	})
	secrets := append([]string{rt, crmClientSecret, connectionsKey, w.callerTok}, seen...)
	assertNoSecrets(t, texts, secrets...)
}

// exportRun is one NDJSON export read until it ends.
type exportRun struct {
	records int
	err     error // nil: a clean end of the stream
	ended   time.Time
	status  int
}

// startExport reads an export from sc in the background; started is
// closed once three records arrived.
func (w *connectorWorld) startExport(t *testing.T, sc *Sidecar) (started chan struct{}, done chan exportRun) {
	t.Helper()
	started, done = make(chan struct{}), make(chan exportRun, 1)
	req := NewRequest(t, http.MethodGet, sc.URL+"/v1/contacts/export", w.callerTok, "X-Tenant-ID: acme")
	go func() {
		var run exportRun
		defer func() { run.ended = time.Now(); done <- run }()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			run.err = err
			close(started)
			return
		}
		defer resp.Body.Close()
		run.status = resp.StatusCode
		s := bufio.NewScanner(resp.Body)
		for s.Scan() {
			run.records++
			if run.records == 3 {
				close(started)
			}
		}
		run.err = s.Err()
		if run.records < 3 {
			close(started)
		}
	}()
	return started, done
}

// TestConnectorAuthReplicasCutExports: two sidecar processes share one
// storage directory; a disconnect through one's admin API stops a running
// NDJSON export on each (the client sees the stream break, not end; the
// time it took is logged), their audit records say the disconnect cut them, and the other
// replica refuses the connection from then on, without a reload.
func TestConnectorAuthReplicasCutExports(t *testing.T) {
	w := newConnectorWorld(t, time.Hour)
	a, b := w.start(t), w.start(t)
	w.connect(t, a, w.op.authorize(t))

	startedA, doneA := w.startExport(t, a)
	<-startedA
	startedB, doneB := w.startExport(t, b)
	<-startedB

	deleted := time.Now()
	status, receipt := admin(t, a, http.MethodDelete, "/sidecar/connections/acme/crm", "")
	if status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", status, receipt)
	}
	for name, done := range map[string]chan exportRun{"replica a (took the DELETE)": doneA, "replica b": doneB} {
		var run exportRun
		select {
		case run = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the export still runs 10 s after the disconnect", name)
		}
		took := run.ended.Sub(deleted)
		t.Logf("%s: export cut %v after the DELETE was sent, after %d records (%v)", name, took.Round(time.Millisecond), run.records, run.err)
		if run.status != http.StatusOK || run.records < 3 {
			t.Errorf("%s: the export did not run before the disconnect (%d, %d records)", name, run.status, run.records)
		}
		if run.err == nil {
			t.Errorf("%s: the export ended cleanly; a cut stream must end with an error", name)
		}
		// The 2-second bound comes from the replicas' change poll
		// (connectorauth.PollInterval, 500 ms); the time is logged above,
		// not asserted, because this machine is shared and noisy.
	}

	resp, body := w.get(t, b, "/v1/contacts")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"connector_disconnected"`) {
		t.Fatalf("replica b after the disconnect: %d %s", resp.StatusCode, body)
	}
	defer func() {
		a.Stop()
		b.Stop()
		texts := map[string]string{"replica a's output": a.Output(), "replica b's output": b.Output(), "the receipt": receipt}
		for i, f := range w.audits {
			data, _ := os.ReadFile(f)
			texts[fmt.Sprintf("replica %d's audit log", i)] = string(data)
		}
		assertNoSecrets(t, texts, append([]string{crmClientSecret, connectionsKey, w.callerTok}, w.crm.received()...)...)
	}()

	for i, file := range w.audits {
		var cut map[string]any
		for deadline := time.Now().Add(10 * time.Second); cut == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			_, requests := connectorAuditRecords(t, file)
			for _, r := range requests {
				if r["path"] == "/v1/contacts/export" {
					cut = r
				}
			}
		}
		if cut == nil || cut["interrupted_by"] != "disconnect" || cut["reason"] != "connector_disconnected" {
			t.Errorf("replica %d: the export's audit record %v does not say a disconnect cut it", i, cut)
		}
		if out, err := exec.Command(sidecarBin, "audit", "verify", file).CombinedOutput(); err != nil {
			t.Errorf("replica %d: audit verify: %v\n%s", i, err, out)
		}
	}
}

// TestConnectorAuthInvalidGrant: the provider no longer accepts the
// tenant's refresh token (revoked at the provider): the connection becomes
// reauthorization_required (403), and a new connect brings it back.
func TestConnectorAuthInvalidGrant(t *testing.T) {
	w := newConnectorWorld(t, time.Hour)
	sc := w.start(t)
	rt := w.op.authorize(t)
	w.connect(t, sc, rt)
	form := url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequest(http.MethodPost, w.op.RevocationURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(crmClientID, crmClientSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoking at the provider: %v", err)
	}

	resp, body := w.get(t, sc, "/v1/contacts")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"connector_reauthorization_required"`) {
		t.Fatalf("with a refused grant: %d %s", resp.StatusCode, body)
	}
	_, status := admin(t, sc, http.MethodGet, "/sidecar/connections/acme/crm", "")
	if !strings.Contains(status, `"state":"reauthorization_required"`) || !strings.Contains(status, "invalid_grant") {
		t.Fatalf("status %s", status)
	}
	n := w.op.tokenRequests.Load()
	if resp, _ := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second request: %d", resp.StatusCode)
	}
	if w.op.tokenRequests.Load() != n {
		t.Fatal("the token endpoint was asked again for a connection that needs reauthorization")
	}
	if len(w.crm.received()) != 0 {
		t.Fatal("the connector was called")
	}

	w.connect(t, sc, w.op.authorize(t))
	if resp, body := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after reconnecting: %d %s", resp.StatusCode, body)
	}
	waitLinesIn(t, 6, w.audits[0])
	events, _ := connectorAuditRecords(t, w.audits[0])
	found := false
	for _, e := range events {
		if e["event"] == "refresh_failure" && e["reason"] == "connector_reauthorization_required" && e["token_error"] == "invalid_grant" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no refresh_failure event with invalid_grant in %v", events)
	}
	if out, err := exec.Command(sidecarBin, "audit", "verify", w.audits[0]).CombinedOutput(); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestConnectorAuthTokenEndpointDown: a token endpoint that is down (503)
// or too slow gives 502 connector_token_unavailable with Retry-After; the
// connection stays connected and works once the endpoint is back.
func TestConnectorAuthTokenEndpointDown(t *testing.T) {
	w := newConnectorWorld(t, time.Hour)
	sc := w.start(t)
	w.connect(t, sc, w.op.authorize(t))
	for _, mode := range []string{"down", "slow"} {
		w.op.mode.Store(mode)
		time.Sleep(1100 * time.Millisecond) // past the hold after a failure
		resp, body := w.get(t, sc, "/v1/contacts")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"reason":"connector_token_unavailable"`) {
			t.Fatalf("token endpoint %s: %d %s", mode, resp.StatusCode, body)
		}
		if resp.Header.Get("Retry-After") != "3" {
			t.Errorf("token endpoint %s: Retry-After %q, want 3", mode, resp.Header.Get("Retry-After"))
		}
	}
	if len(w.crm.received()) != 0 {
		t.Fatal("the connector was called without a token")
	}
	w.op.mode.Store("")
	time.Sleep(1100 * time.Millisecond)
	if resp, body := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the endpoint came back: %d %s", resp.StatusCode, body)
	}
	waitLinesIn(t, 6, w.audits[0])
	events, _ := connectorAuditRecords(t, w.audits[0])
	var codes []string
	for _, e := range events {
		if e["event"] == "refresh_failure" && e["reason"] == "connector_token_unavailable" {
			codes = append(codes, e["token_error"].(string))
		}
	}
	if !slices.Contains(codes, "http_503") || !slices.Contains(codes, "timeout") {
		t.Fatalf("refresh failures %v, want http_503 and timeout", codes)
	}
}

// TestConnectorAuthRequestRacingDisconnect: requests keep arriving while
// the connection is disconnected. Those in flight finish or are refused;
// every request that starts after the DELETE answered is refused, and the
// connector is not called after it.
func TestConnectorAuthRequestRacingDisconnect(t *testing.T) {
	w := newConnectorWorld(t, time.Hour)
	sc := w.start(t)
	w.connect(t, sc, w.op.authorize(t))
	if resp, _ := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatal("warm-up failed")
	}

	type result struct {
		start  time.Time
		status int
		body   string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				req := NewRequest(t, http.MethodGet, sc.URL+"/v1/contacts", w.callerTok, "X-Tenant-ID: acme")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var b strings.Builder
				_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
				resp.Body.Close()
				mu.Lock()
				results = append(results, result{start, resp.StatusCode, b.String()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	status, receipt := admin(t, sc, http.MethodDelete, "/sidecar/connections/acme/crm", "")
	answered := time.Now()
	callsAtAnswer := len(w.crm.received())
	if status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", status, receipt)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	before, after := 0, 0
	for _, r := range results {
		switch {
		case r.status == http.StatusOK:
			if r.start.After(answered) {
				t.Errorf("a request started %v after the DELETE answered was served", r.start.Sub(answered))
			}
			before++
		case r.status == http.StatusForbidden && strings.Contains(r.body, `"reason":"connector_disconnected"`):
			if r.start.After(answered) {
				after++
			}
		default:
			t.Errorf("unexpected answer %d %s", r.status, r.body)
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("the race did not happen: %d served before, %d refused after", before, after)
	}
	if n := len(w.crm.received()); n != callsAtAnswer {
		t.Errorf("the connector was called %d times after the DELETE answered", n-callsAtAnswer)
	}
	t.Logf("%d requests served, %d refused after the DELETE answered", before, after)
}

// TestConnectorAuthAcrossReload: a config reload keeps the cached access
// token (no new refresh) and the requests in flight under the old config:
// a disconnect after the reload still cuts an export that started before it.
func TestConnectorAuthAcrossReload(t *testing.T) {
	w := newConnectorWorld(t, time.Hour)
	sc := w.start(t)
	w.connect(t, sc, w.op.authorize(t))
	if resp, body := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the reload: %d %s", resp.StatusCode, body)
	}
	refreshes := w.op.tokenRequests.Load()
	started, done := w.startExport(t, sc)
	<-started

	src, err := os.ReadFile(filepath.Join(repoRoot, "caddyfiles/test/connector_auth.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(src), "retry_after 3s", "retry_after 4s", 1)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := sc.Reload(path); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if resp, body := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the reload: %d %s", resp.StatusCode, body)
	}
	if n := w.op.tokenRequests.Load(); n != refreshes {
		t.Errorf("%d token requests after the reload: the cached access token was lost", n-refreshes)
	}

	select {
	case run := <-done:
		t.Fatalf("the reload ended the export (%d records, %v)", run.records, run.err)
	case <-time.After(300 * time.Millisecond): // still streaming under the old config
	}
	if status, body := admin(t, sc, http.MethodDelete, "/sidecar/connections/acme/crm", ""); status != http.StatusOK {
		t.Fatalf("DELETE after the reload: %d %s", status, body)
	}
	select {
	case run := <-done:
		if run.err == nil {
			t.Error("the export started before the reload ended cleanly; it must be cut")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the export started before the reload was not cut by the disconnect")
	}
	if resp, _ := w.get(t, sc, "/v1/contacts"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after the disconnect: %d", resp.StatusCode)
	}
}
