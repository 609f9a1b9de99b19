package integration

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// evidenceChain is audit_log, oidc_auth and scope_trim (the CRM policies)
// in front of an upstream; output is the audit_log output line.
func evidenceChain(output string) string {
	return `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		` + output + `
		pseudonym_key {env.AUDIT_KEY}
		keyring {$KEYRING}
	}
	oidc_auth {
		issuer {$ISSUER} {
			audience connector-api
		}
	}
	scope_trim {
		policies policies/
		hash_key {env.SCOPE_TRIM_HASH_KEY}
	}
	reverse_proxy {$UPSTREAM}
}
`
}

// TestAuditLogRecordIsWrittenBeforeTheRelease: when the client has the
// answer's headers, its record is already in the file; an NDJSON stream has
// its opening record before its first record reaches the client, and a
// closing record when it ends.
func TestAuditLogRecordIsWrittenBeforeTheRelease(t *testing.T) {
	iss := StartIssuer(t)
	release := make(chan struct{})
	up := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/export") {
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, `{"id":"c1","name":"Ada","email":"ada@example.com"}`+"\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, `{"id":"c2","name":"Bob"}`+"\n")
			return
		}
		crmAnswer(crmContacts)(w, r)
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the upstream's Close, which waits for its handlers
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	s := StartSidecarConfig(t, evidenceChain("output file {$AUDIT_FILE}"), map[string]string{
		"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "KEYRING": filepath.Join(dir, "keyring.json"),
		"ISSUER": iss.URL, "UPSTREAM": up.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
	})
	token := iss.MustMint(iss.AccessClaims("alice", "connector-api", devidp.Claims{"scope": "contacts:read"}))

	req := NewRequest(t, "GET", s.URL+"/v1/contacts", token)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	recs := readAudit(t, file) // no waiting: the record precedes the answer
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(recs) != 1 || recs[0].Status != 200 || recs[0].BytesOut != int64(len(body)) || recs[0].Decision != "allow" {
		t.Fatalf("status %d, %d records when the headers arrived: %+v", resp.StatusCode, len(recs), recs)
	}

	req = NewRequest(t, "GET", s.URL+"/v1/contacts/export", token)
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || !strings.Contains(first, `"c1"`) || strings.Contains(first, "ada@example.com") {
		t.Fatalf("first streamed record %q %v", first, err)
	}
	if recs := readAudit(t, file); len(recs) != 2 || !strings.Contains(auditLine(t, file, 2), `"stream":"start"`) {
		t.Fatalf("while the stream runs: %d records, want the opening record:\n%s", len(recs), auditLine(t, file, 2))
	}
	unblock()
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	waitAudit(t, file, 3)
	closing := auditLine(t, file, 3)
	for _, want := range []string{`"stream":"complete"`, `"stream_records":2`, `"bytes_out":` + strconv.Itoa(len(first)+len(rest))} {
		if !strings.Contains(closing, want) {
			t.Errorf("closing record lacks %s:\n%s", want, closing)
		}
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify: %s", out)
	}
}

// auditLine returns line n (from 1) of an audit file.
func auditLine(t *testing.T, file string, n int) string {
	t.Helper()
	data, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// TestAuditLogSinkFailsBetweenBodyAndRecord: the audit output (/dev/full)
// accepts the file being opened and fails the first write, which is the
// answer's record: the answer is not released, the client gets 503
// audit_unavailable. Before, the first answer was released and its record
// lost.
func TestAuditLogSinkFailsBetweenBodyAndRecord(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/export") {
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, `{"id":"c1","name":"Ada Lovelace"}`+"\n")
			return
		}
		crmAnswer(crmContacts)(w, r)
	})
	dir := t.TempDir()
	token := iss.MustMint(iss.AccessClaims("alice", "connector-api", devidp.Claims{"scope": "contacts:read"}))
	for _, path := range []string{"/v1/contacts", "/v1/contacts/export"} {
		s := StartSidecarConfig(t, evidenceChain("output file /dev/full {\n\t\t\troll_disabled\n\t\t}"), map[string]string{
			"AUDIT_KEY": auditKey, "KEYRING": filepath.Join(dir, "keyring.json"),
			"ISSUER": iss.URL, "UPSTREAM": up.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
		})
		calls := up.Calls()
		resp, body := s.Get(t, path, token)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "Ada") {
			t.Fatalf("%s: status %d body %s: the answer was released without its record", path, resp.StatusCode, body)
		}
		var p struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(body, &p) != nil || p.Reason != "audit_unavailable" {
			t.Fatalf("%s: body %s, want reason audit_unavailable", path, body)
		}
		if up.Calls() != calls+1 {
			t.Fatalf("%s: the upstream was not asked: the record fails between the upstream's answer and its release", path)
		}
		s.Stop()
	}
}

// TestAuditLogOneWriterPerFile: a second process on the same audit file
// refuses to start, naming the file and the first one's pid; the first
// keeps working through a reload, on one chain.
func TestAuditLogOneWriterPerFile(t *testing.T) {
	up := StartUpstream(t, nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	env := map[string]string{"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "UPSTREAM": up.Addr}
	first := StartSidecar(t, auditCaddyfile, env)
	first.Get(t, "/one", "")

	out := runSidecarExpectFailure(t, auditCaddyfile, env)
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if !strings.Contains(out, file) || !strings.Contains(out, "locked by process "+pid) {
		t.Fatalf("the second process's error does not name the file and pid %s:\n%s", pid, out)
	}
	if _, err := os.Stat(file + ".lock"); err == nil {
		t.Fatal("the lock file sits where a glob for the log files finds it")
	}

	// A reload of the first process (another instance name, so the config
	// differs) keeps its sink and its lock.
	reloaded := filepath.Join(dir, "Caddyfile")
	src, _ := os.ReadFile(filepath.Join(repoRoot, auditCaddyfile))
	os.WriteFile(reloaded, []byte(strings.Replace(string(src), "pseudonym_key {env.AUDIT_KEY}", "pseudonym_key {env.AUDIT_KEY}\n\t\tinstance reloaded", 1)), 0o600)
	if out, err := first.Reload(reloaded); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	for i := 0; i < 3; i++ {
		if resp, _ := first.Get(t, "/after-reload", ""); resp.StatusCode != 200 {
			t.Fatalf("after the reload: %d", resp.StatusCode)
		}
	}
	recs := waitAudit(t, file, 4)
	if recs[3].Seq != 4 {
		t.Fatalf("seq %d after the reload", recs[3].Seq)
	}
	if out := runSidecarExpectFailure(t, auditCaddyfile, env); !strings.Contains(out, "locked by process "+pid) {
		t.Fatalf("after the reload the lock is not held:\n%s", out)
	}
	if code, out := auditCmd(t, "verify", file); code != 0 {
		t.Fatalf("verify: %s", out)
	}

	// Once the first process is gone (however it went), the file is free.
	first.Stop()
	second := StartSidecar(t, auditCaddyfile, env)
	second.Get(t, "/two", "")
	waitAudit(t, file, 5)
}

const checkpointCaddyfile = `{
	admin {$SIDECAR_ADMIN}
}

http://{$SIDECAR_ADDR} {
	audit_log {
		output file {$AUDIT_FILE}
		pseudonym_key {env.AUDIT_KEY}
		checkpoint_key {env.AUDIT_CHECKPOINT_KEY}
		checkpoint_output file {$CHECKPOINT_FILE}
		checkpoint_every 4
	}
	reverse_proxy {$UPSTREAM}
}
`

// terminate stops the sidecar as an orchestrator does (SIGTERM), so that
// it unloads its config, and waits for it.
func terminate(t *testing.T, s *Sidecar) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the sidecar did not exit on SIGTERM:\n%s", s.Output())
	}
}

// rechainLines rewrites audit lines from index i on, edit applied to the
// first, recomputing every later prev_hash and hash over the lines' bytes:
// an attacker who can rewrite the whole file.
func rechainLines(lines []string, i int, edit func(string) string) []string {
	out := append([]string(nil), lines...)
	prev := ""
	for j := i; j < len(out); j++ {
		line := strings.TrimSuffix(out[j], "\n")
		if j == i {
			line = edit(line)
		} else {
			k := strings.Index(line, `"prev_hash":"`) + len(`"prev_hash":"`)
			line = line[:k] + prev + line[k+64:]
		}
		h := strings.LastIndex(line, `,"hash":"`)
		sum := sha256.Sum256([]byte(line[:h] + "}"))
		prev = hex.EncodeToString(sum[:])
		out[j] = line[:h] + `,"hash":"` + prev + "\"}\n"
	}
	return out
}

func TestAuditLogCheckpointsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	code, out := auditCmd(t, "keygen", "--out", filepath.Join(dir, "checkpoint.key"))
	if code != 0 {
		t.Fatalf("keygen: %s", out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "checkpoint.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file %v %v", fi, err)
	}
	private, _ := os.ReadFile(filepath.Join(dir, "checkpoint.key"))
	pub := filepath.Join(dir, "checkpoint.key.pub")
	if code, out := auditCmd(t, "keygen", "--out", filepath.Join(dir, "checkpoint.key")); code == 0 {
		t.Fatalf("keygen overwrote a key: %s", out)
	}

	up := StartUpstream(t, nil)
	file, cpFile := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "evidence", "checkpoints.jsonl")
	s := StartSidecarConfig(t, checkpointCaddyfile, map[string]string{
		"AUDIT_FILE": file, "CHECKPOINT_FILE": cpFile, "AUDIT_KEY": auditKey,
		"AUDIT_CHECKPOINT_KEY": strings.TrimSpace(string(private)), "UPSTREAM": up.Addr,
	})
	for i := 0; i < 12; i++ {
		s.Get(t, fmt.Sprintf("/r/%d", i), "")
		time.Sleep(10 * time.Millisecond) // let count checkpoints land between requests
	}
	// the count checkpoint of seq 12 is written off the request path: wait
	// for it, so that the one the shutdown writes is for seq 13
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data, _ := os.ReadFile(cpFile); strings.Contains(string(data), `"seq":12,`) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of seq 12:\n%s", data)
		}
	}
	s.Get(t, "/r/12", "")
	waitAudit(t, file, 13)
	terminate(t, s)
	if strings.Contains(s.Output(), strings.TrimSpace(string(private))) {
		t.Fatal("the private key is in the sidecar's output")
	}
	cps := readLines(t, cpFile)
	if len(cps) < 3 || !strings.Contains(cps[len(cps)-1], `"reason":"stop"`) || !strings.Contains(cps[len(cps)-1], `"seq":13`) {
		t.Fatalf("checkpoints (want count checkpoints and the stop at seq 13):\n%s", strings.Join(cps, ""))
	}
	lines := readLines(t, file)
	verify := func(recs, cps []string, extra ...string) (int, string) {
		args := append([]string{"verify", "--checkpoints", writeLines(t, "checkpoints.jsonl", cps), "--public-key", pub}, extra...)
		return auditCmd(t, append(args, writeLines(t, "audit.jsonl", recs))...)
	}
	if code, out := verify(lines, cps); code != 0 || !strings.Contains(out, "records up to seq 13 are anchored, 0 after it") {
		t.Fatalf("intact: %s", out)
	}

	rewritten := rechainLines(lines, 2, func(l string) string {
		return strings.Replace(strings.Replace(l, `"decision":"allow","reason":"ok"`, `"decision":"deny","reason":"tenant_mismatch"`, 1), `"status":200`, `"status":403`, 1)
	})
	if code, out := auditCmd(t, "verify", writeLines(t, "audit.jsonl", rewritten)); code != 0 {
		t.Fatalf("the rewritten chain must pass the chain check alone (that is the attack): %s", out)
	}
	forged := forgeCheckpoint(t, cps[len(cps)-1], rewritten[len(rewritten)-1])
	cases := []struct {
		name string
		recs []string
		cps  []string
		want string
	}{
		{"cut tail", lines[:11], cps, "records were cut from its end"},
		{"rewritten chain", rewritten, cps, "the chain was rewritten"},
		{"removed checkpoint", lines, append(append([]string{}, cps[:1]...), cps[2:]...), "a checkpoint was removed"},
		{"forged checkpoint", rewritten, append(append([]string{}, cps[:len(cps)-1]...), forged), "signature does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := verify(c.recs, c.cps)
			if code != 1 || !strings.Contains(out, "TAMPERED") || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want 1 saying %q:\n%s", code, c.want, out)
			}
		})
	}

	// Retention: the oldest records rolled away. The last checkpoint before
	// the cut, and the stop checkpoint that a remaining record matches,
	// anchor what is left, without --partial.
	var cutAt int
	for _, l := range cps {
		var cp struct{ Seq int }
		json.Unmarshal([]byte(l), &cp)
		if cp.Seq <= 10 {
			cutAt = cp.Seq + 1 // drop records 1..cutAt
		}
	}
	if cutAt == 0 {
		t.Fatalf("no checkpoint at or before seq 10:\n%s", strings.Join(cps, ""))
	}
	if code, _ := auditCmd(t, "verify", writeLines(t, "audit.jsonl", lines[cutAt:])); code == 0 {
		t.Fatal("without checkpoints a missing beginning verified without --partial")
	}
	if code, out := verify(lines[cutAt:], cps); code != 0 || !strings.Contains(out, "rolled away: the records before seq "+strconv.Itoa(cutAt+1)) {
		t.Fatalf("rolled away before seq %d: %s", cutAt+1, out)
	}
}

// forgeCheckpoint re-signs a checkpoint line for the last record of a
// rewritten chain with an attacker's key, keeping the real key's id.
func forgeCheckpoint(t *testing.T, real, lastRecord string) string {
	t.Helper()
	var rec struct {
		Seq  int
		Hash string
	}
	json.Unmarshal([]byte(lastRecord), &rec)
	_, attacker, _ := ed25519.GenerateKey(nil)
	var cp map[string]json.RawMessage
	json.Unmarshal([]byte(real), &cp)
	body := strings.Replace(real[:strings.LastIndex(real, `,"sig":"`)]+"}", `"hash":`+string(cp["hash"]), `"hash":"`+rec.Hash+`"`, 1)
	sig := ed25519.Sign(attacker, append([]byte("alysio privacy-sidecar audit checkpoint v1\n"), body...))
	return body[:len(body)-1] + `,"sig":"` + base64.StdEncoding.EncodeToString(sig) + "\"}\n"
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestAuditReportOverRealTraffic: records of processing from what the
// chain logged, joined with the policy directory.
func TestAuditReportOverRealTraffic(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, crmAnswer(crmContacts))
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	s := StartSidecarConfig(t, evidenceChain("output file {$AUDIT_FILE}"), map[string]string{
		"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "KEYRING": filepath.Join(dir, "keyring.json"),
		"ISSUER": iss.URL, "UPSTREAM": up.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
	})
	read := iss.MustMint(iss.AccessClaims("alice", "connector-api", devidp.Claims{"scope": "contacts:read"}))
	none := iss.MustMint(iss.AccessClaims("alice", "connector-api", devidp.Claims{"scope": "openid"}))
	for i := 0; i < 3; i++ {
		s.Get(t, "/v1/contacts", read)
	}
	s.Get(t, "/v1/contacts", none)
	s.Get(t, "/v1/contacts", "")
	waitAudit(t, file, 5)

	code, out := auditCmd(t, "report", "--policies", "policies/", "--format", "json", file)
	if code != 0 {
		t.Fatalf("report: %s", out)
	}
	var rep struct {
		Requests int `json:"requests"`
		Rows     []struct {
			Scope          string         `json:"scope"`
			Connector      string         `json:"connector"`
			Requests       int            `json:"requests"`
			Allowed        int            `json:"allowed"`
			RefusedBy      map[string]int `json:"refused_by"`
			FieldsReleased []string       `json:"fields_released"`
			ValuesWithheld int            `json:"values_withheld"`
			FirstAccess    string         `json:"first_access"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Requests != 5 {
		t.Fatalf("%d requests: %s", rep.Requests, out)
	}
	found := 0
	for _, r := range rep.Rows {
		switch {
		case r.Scope == "contacts:read":
			found++
			if r.Allowed != 3 || r.ValuesWithheld == 0 || len(r.FieldsReleased) == 0 || r.FirstAccess == "" {
				t.Errorf("contacts:read row %+v", r)
			}
		case r.RefusedBy["insufficient_scope"] == 1 || r.RefusedBy["token_missing"] == 1:
			found++
		}
	}
	if found != 3 {
		t.Fatalf("rows %+v", rep.Rows)
	}
}

// TestAuditLogVerifyRefusesNonCanonicalLines: lines the sidecar wrote,
// edited so that a lenient JSON reader sees another record, with every hash
// recomputed over the edited bytes: the binary names each line and what is
// wrong with it.
func TestAuditLogVerifyRefusesNonCanonicalLines(t *testing.T) {
	lines := auditLines(t, 4)
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\n") + "\n"
	}
	cases := []struct {
		name string
		edit func(string) string
		want string
	}{
		{"duplicate member", func(l string) string {
			return strings.Replace(l, `"decision":"allow"`, `"decision":"deny","decision":"allow"`, 1)
		}, `audit.jsonl:2: record seq 2: member "decision" appears twice`},
		{"member differing in case", func(l string) string {
			return strings.Replace(l, `"reason":"ok"`, `"reason":"ok","Decision":"deny"`, 1)
		}, `member "Decision" differs only in case from "decision"`},
		{"unknown member", func(l string) string {
			return strings.Replace(l, `"reason":"ok"`, `"reason":"ok","approved_by":"ops"`, 1)
		}, `unknown member "approved_by"`},
		{"reordered members", func(l string) string {
			return strings.Replace(l, `"decision":"allow","reason":"ok"`, `"reason":"ok","decision":"allow"`, 1)
		}, `members out of order: "decision" comes after "reason"`},
		{"extra whitespace", func(l string) string {
			return strings.Replace(l, `"status":200`, `"status": 200`, 1)
		}, "whitespace outside strings"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			edited := rechainLines(lines, 1, c.edit)
			if edited[1] == lines[1] {
				t.Fatal("the edit changed nothing")
			}
			code, out := auditCmd(t, "verify", writeLines(t, "audit.jsonl", edited))
			if code != 1 || !strings.Contains(out, "TAMPERED") || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want 1 naming %q:\n%s", code, c.want, out)
			}
		})
	}
}

// TestAuditAccessFindsReleasesUntilForget: scope_trim's record rules put
// the released contacts' ids into the audit records as per-tenant
// pseudonyms; `audit access` finds who received one contact, and nothing
// once the tenant was forgotten.
func TestAuditAccessFindsReleasesUntilForget(t *testing.T) {
	iss := StartIssuer(t)
	up := StartUpstream(t, crmAnswer(crmContacts))
	dir := t.TempDir()
	file, keyring := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "keyring.json")
	s := StartSidecarConfig(t, evidenceChain("output file {$AUDIT_FILE}"), map[string]string{
		"AUDIT_FILE": file, "AUDIT_KEY": auditKey, "KEYRING": keyring,
		"ISSUER": iss.URL, "UPSTREAM": up.Addr, "SCOPE_TRIM_HASH_KEY": scopeTrimHashKey,
	})
	for _, client := range []string{"support-desk", "marketing-tool"} {
		token := iss.MustMint(iss.AccessClaims("alice", "connector-api", devidp.Claims{"scope": "contacts:read contacts:all", "client_id": client}))
		if resp, body := s.Get(t, "/v1/contacts", token); resp.StatusCode != 200 || !strings.Contains(string(body), `"c1"`) {
			t.Fatalf("%s: %d %s", client, resp.StatusCode, body)
		}
	}
	recs := waitAudit(t, file, 2)
	if !strings.Contains(auditLine(t, file, 1), `"record_ids":["`) || strings.Contains(auditLine(t, file, 1), `"c1"`) {
		t.Fatalf("the record lists no pseudonymous record ids, or a raw one:\n%s", auditLine(t, file, 1))
	}

	access := func(args ...string) (int, string) {
		cmd := exec.Command(sidecarBin, append([]string{"audit", "access", "--tenant", "", "--keyring", keyring}, args...)...)
		cmd.Env = append(os.Environ(), "AUDIT_KEY="+auditKey)
		out, err := cmd.CombinedOutput()
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	code, out := access("--record", "c1", "--format", "json", file)
	var res struct {
		Releases []struct {
			Client   string `json:"client_id"`
			Decision string `json:"decision"`
		} `json:"releases"`
	}
	if code != 0 || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res) != nil || len(res.Releases) != 2 ||
		res.Releases[0].Client != recs[0].ClientID || res.Releases[1].Client != recs[1].ClientID {
		t.Fatalf("access to c1 (want both clients' pseudonyms %s, %s): exit %d\n%s", recs[0].ClientID, recs[1].ClientID, code, out)
	}
	if code, out := access("--record", "c9", file); code != 0 || !strings.Contains(out, "0 releases") {
		t.Fatalf("a record never released: exit %d\n%s", code, out)
	}
	if code, out := auditCmd(t, "forget", "--tenant", "", "--keyring", keyring); code != 0 {
		t.Fatalf("forget: %s", out)
	}
	if code, out := access("--record", "c1", file); code != 0 || !strings.Contains(out, "was forgotten on") || strings.Contains(out, recs[0].ClientID) {
		t.Fatalf("after forget: exit %d\n%s", code, out)
	}
}
