package integration

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

const auditOIDCCaddyfile = "caddyfiles/test/audit_log_oidc.Caddyfile"

type auditOIDC struct {
	iss     *devidp.Issuer
	up      *Upstream
	sidecar *Sidecar
	file    string
}

func startAuditOIDC(t *testing.T) *auditOIDC {
	t.Helper()
	a := &auditOIDC{iss: StartIssuer(t)}
	a.sidecar, a.up, a.file = startAuditSidecar(t, auditOIDCCaddyfile, map[string]string{"ISSUER": a.iss.URL})
	return a
}

// token mints a valid token for subject in tenant, with personal claims the
// audit log must never contain.
func (a *auditOIDC) token(subject, tenant string) string {
	return a.iss.MustMint(a.iss.AccessClaims(subject, "connector-api", devidp.Claims{
		"tenant_id": tenant, "email": subject + "@example.com", "name": "Person " + subject,
	}))
}

func keyringSalts(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kr struct {
		Salts map[string]string `json:"salts"`
	}
	if err := json.Unmarshal(data, &kr); err != nil {
		t.Fatal(err)
	}
	return kr.Salts
}

// expectedPseudonym recomputes a pseudonym as docs/audit_log.md documents it:
// HMAC-SHA256 under HKDF(secret, tenant salt, info), truncated to 128 bits.
func expectedPseudonym(t *testing.T, salt, tenant, kind, issuer, value string) string {
	t.Helper()
	rawSalt, err := base64.RawURLEncoding.DecodeString(salt)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hkdf.Key(sha256.New, []byte(auditKey), rawSalt, "alysio audit pseudonym v1\x00"+tenant, 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(kind + "\x00" + issuer + "\x00" + value))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func TestAuditLogPseudonymsAndForget(t *testing.T) {
	a := startAuditOIDC(t)
	alice, bob := a.token("alice-7f3a", "acme"), a.token("bob-91c2", "acme")
	aliceGlobex := a.token("alice-7f3a", "globex")
	get := func(token, tenant string) {
		t.Helper()
		resp, body := a.sidecar.Get(t, "/v1/contacts", token, "X-Tenant-ID: "+tenant)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
	}
	get(alice, "acme")
	get(alice, "acme")
	get(bob, "acme")
	get(aliceGlobex, "globex")
	recs := waitAudit(t, a.file, 4)
	for _, r := range recs {
		if r.Decision != "allow" || r.Issuer != a.iss.URL || r.Connector != "crm" || len(r.Subject) != 32 || len(r.ClientID) != 32 {
			t.Fatalf("record %+v: want an allowed crm request with 32-hex pseudonyms and the issuer", r)
		}
	}
	if recs[0].Tenant != "acme" || recs[3].Tenant != "globex" {
		t.Fatalf("tenants %q, %q", recs[0].Tenant, recs[3].Tenant)
	}
	if recs[0].Subject != recs[1].Subject {
		t.Error("one subject got two pseudonyms within a tenant")
	}
	if recs[0].Subject == recs[2].Subject {
		t.Error("two subjects got the same pseudonym")
	}
	if recs[0].Subject == recs[3].Subject {
		t.Error("one subject has the same pseudonym in two tenants: per-tenant keys are not in use")
	}
	if recs[0].ClientID == recs[0].Subject || recs[0].ClientID != recs[2].ClientID {
		t.Error("client_id pseudonyms: same client must match, and differ from the subject's")
	}

	keyring := strings.TrimSuffix(a.file, ".jsonl") + ".keyring.json"
	salts := keyringSalts(t, keyring)
	oldSalt := salts["acme"]
	if oldSalt == "" || salts["globex"] == "" {
		t.Fatalf("keyring salts %v: want acme and globex", salts)
	}
	// While the salt exists, whoever holds the key can link a pseudonym.
	if got := expectedPseudonym(t, oldSalt, "acme", "sub", a.iss.URL, "alice-7f3a"); got != recs[0].Subject {
		t.Fatalf("pseudonym %s is not HMAC(HKDF(key, salt, tenant), issuer, subject) = %s", recs[0].Subject, got)
	}

	if code, out := auditCmd(t, "forget", "--tenant", "acme", "--log", a.file); code != 0 {
		t.Fatalf("forget: exit %d: %s", code, out)
	}
	kr, _ := os.ReadFile(keyring)
	if strings.Contains(string(kr), oldSalt) {
		t.Fatal("the forgotten tenant's salt is still in the keyring")
	}
	if keyringSalts(t, keyring)["globex"] != salts["globex"] {
		t.Fatal("forgetting acme changed globex's salt")
	}
	if code, _ := auditCmd(t, "forget", "--tenant", "acme", "--log", a.file); code == 0 {
		t.Error("forgetting an already forgotten tenant succeeded")
	}

	// The running sidecar notices the change: alice in acme gets a new,
	// unlinkable pseudonym (the old one can no longer be recomputed).
	var after auditRecord
	deadline := time.Now().Add(10 * time.Second)
	for n := 5; ; n++ {
		get(alice, "acme")
		after = waitAudit(t, a.file, n)[n-1]
		if after.Subject != recs[0].Subject || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if after.Subject == recs[0].Subject {
		t.Fatal("after forget the sidecar still writes the old pseudonym")
	}
	newSalt := keyringSalts(t, keyring)["acme"]
	if newSalt == "" || newSalt == oldSalt {
		t.Fatalf("after forget acme's salt is %q", newSalt)
	}
	n := len(readAudit(t, a.file)) + 1
	get(aliceGlobex, "globex")
	if r := waitAudit(t, a.file, n)[n-1]; r.Subject != recs[3].Subject {
		t.Error("forgetting acme changed alice's pseudonym in globex")
	}
	// The glob docs/audit_log.md suggests picks up the log files, not the keyring.
	files, _ := filepath.Glob(strings.TrimSuffix(a.file, ".jsonl") + "*.jsonl*")
	if len(files) != 1 {
		t.Fatalf("audit*.jsonl* matches %v", files)
	}
	if code, out := auditCmd(t, append([]string{"verify"}, files...)...); code != 0 {
		t.Fatalf("the chain does not verify after forget: %s", out)
	}

	audit, _ := os.ReadFile(a.file)
	secrets := []string{"alice-7f3a", "bob-91c2", "@example.com", "Person ", "demo-client", auditKey, oldSalt}
	for _, tok := range []string{alice, bob, aliceGlobex} {
		secrets = append(secrets, tok)
		secrets = append(secrets, strings.Split(tok, ".")...)
	}
	assertNoSecrets(t, map[string]string{"audit log": string(audit), "process output": a.sidecar.Output()}, secrets...)
}

func TestAuditLogSecurityEvents(t *testing.T) {
	a := startAuditOIDC(t)
	good := a.token("carol-55d0", "acme")
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	// A different base64url character in the middle: still well-formed, the
	// signature no longer verifies (the last character's spare bits would not do).
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	forged := parts[0] + "." + parts[1] + "." + string(sig)

	cases := []struct {
		token, tenant, extra string
		status               int
		reason, event        string
	}{
		{"", "acme", "", 401, "token_missing", ""},
		{forged, "acme", "", 401, "token_invalid", "token_invalid"},
		{good, "globex", "", 403, "tenant_mismatch", "tenant_mismatch"},
		{good, "acme", "X-Forwarded-User: admin", 200, "ok", "spoofed_identity_header"},
	}
	for i, c := range cases {
		headers := []string{"X-Tenant-ID: " + c.tenant}
		if c.extra != "" {
			headers = append(headers, c.extra)
		}
		resp, body := a.sidecar.Get(t, "/v1/deals", c.token, headers...)
		if resp.StatusCode != c.status {
			t.Fatalf("case %d: status %d, want %d: %s", i, resp.StatusCode, c.status, body)
		}
		rec := waitAudit(t, a.file, i+1)[i]
		if rec.Reason != c.reason || rec.Status != c.status || rec.SecurityEvent != c.event {
			t.Errorf("case %d: record reason %q status %d security_event %q, want %q %d %q",
				i, rec.Reason, rec.Status, rec.SecurityEvent, c.reason, c.status, c.event)
		}
	}
	// The WARN line is written right after the record: wait for all three.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(a.sidecar.Output(), `"security event"`) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	events := 0
	for _, line := range strings.Split(a.sidecar.Output(), "\n") {
		if !strings.Contains(line, `"security event"`) {
			continue
		}
		events++
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if entry["level"] != "warn" || entry["security_event"] == nil || entry["security_event"] == "" {
			t.Errorf("security event log line %s: want level warn and a security_event field", line)
		}
	}
	if events != 3 {
		t.Errorf("%d security events in Caddy's log, want 3:\n%s", events, a.sidecar.Output())
	}
	m := scrapeMetrics(t, "http://"+a.sidecar.AdminAddr+"/metrics")
	for _, want := range []string{
		`sidecar_security_events_total{reason="token_invalid"} 1`,
		`sidecar_security_events_total{reason="tenant_mismatch"} 1`,
		`sidecar_requests_total{connector="crm",decision="deny",reason="tenant_mismatch",tenant="acme"} 1`,
		`sidecar_requests_total{connector="",decision="deny",reason="token_missing",tenant=""} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "sidecar_"))
		}
	}
	assertNoSecrets(t, map[string]string{"process output": a.sidecar.Output()}, good, forged, parts[1], parts[2], "carol-55d0")
}
