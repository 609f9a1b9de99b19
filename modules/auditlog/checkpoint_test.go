package auditlog

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/logging"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func testCheckpointKey(t testing.TB) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	private, public, err := generateCheckpointKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := parsePrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := parsePublicKey(public)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func testCheckpointConfig(key ed25519.PrivateKey, out *checkpointOutput) *checkpointConfig {
	return &checkpointConfig{
		key: key, keyID: keyID(key.Public().(ed25519.PublicKey)), out: out,
		every: 1 << 40, interval: time.Hour, // only the checkpoints the test asks for
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}), logger: zap.NewNop(),
	}
}

// checkpointedLog writes n records through a sink, a checkpoint after
// each seq in at, and the final checkpoint when the handler unregisters.
func checkpointedLog(t *testing.T, n int, at ...int) (records, checkpoints []string, pub ed25519.PublicKey) {
	t.Helper()
	key, pub := testCheckpointKey(t)
	recW, cpW := new(switchWriter), new(switchWriter)
	s := newSink("t", "/var/log/sidecar/audit.jsonl", recW, "unit:1")
	cfg := testCheckpointConfig(key, &checkpointOutput{key: "c", name: "c", w: cpW, release: func() {}})
	s.cp.register(cfg)
	for i := 1; i <= n; i++ {
		rec := sampleRecord()
		rec.Path = fmt.Sprintf("/r/%d", i)
		if _, err := s.write(appendHead(nil, rec)); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(at, i) {
			s.cp.write("count")
		}
	}
	s.cp.unregister(cfg)
	return strings.SplitAfter(strings.TrimSuffix(recW.buf.String(), "\n"), "\n"),
		strings.SplitAfter(strings.TrimSuffix(cpW.buf.String(), "\n"), "\n"), pub
}

func fixNewlines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimSuffix(l, "\n") + "\n"
	}
	return out
}

// rechain rewrites records from index i on with edit applied to the first,
// recomputing every later prev_hash and hash: what an attacker who can
// rewrite the whole file does.
func rechain(t *testing.T, lines []string, i int, edit func(*Record)) []string {
	t.Helper()
	out := append([]string(nil), lines...)
	prev := ""
	for j := i; j < len(out); j++ {
		rec, bad := readRecord([]byte(strings.TrimSuffix(out[j], "\n")), nil)
		if bad != nil {
			t.Fatal(bad.problem)
		}
		if j == i {
			edit(rec)
		} else {
			rec.PrevHash = prev
		}
		line, hash := seal(appendCanonicalBody(nil, rec), 0)
		prev = string(hash[:])
		out[j] = string(line)
	}
	return out
}

func TestCheckpointsDetectWhatTheChainAloneCannot(t *testing.T) {
	dir := t.TempDir()
	records, cps, pub := checkpointedLog(t, 10, 3, 6)
	records, cps = fixNewlines(records), fixNewlines(cps)
	if len(cps) != 3 || !strings.Contains(cps[2], `"reason":"stop"`) || !strings.Contains(cps[2], `"seq":10`) {
		t.Fatalf("checkpoints at 3, 6 and the stop at 10 expected:\n%s", strings.Join(cps, ""))
	}
	_, otherPub := testCheckpointKey(t)
	verify := func(recs, cps []string, partial bool, keys ...ed25519.PublicKey) (VerifyResult, error) {
		if keys == nil {
			keys = []ed25519.PublicKey{pub}
		}
		return Verify([]string{writeFile(t, dir, "audit.jsonl", recs)}, VerifyOptions{
			Checkpoints: []string{writeFile(t, dir, "checkpoints.jsonl", cps)}, PublicKeys: keys, Partial: partial})
	}

	res, err := verify(records, cps, false)
	if err != nil || res.Checkpoints != 3 || res.AnchoredSeq != 10 || res.Unanchored != 0 {
		t.Fatalf("intact: %+v %v", res, err)
	}

	rewritten := rechain(t, records, 1, func(r *Record) { r.Decision, r.Reason = "deny", "tenant_mismatch" })
	if _, err := Verify([]string{writeFile(t, dir, "rw.jsonl", rewritten)}, VerifyOptions{}); err != nil {
		t.Fatalf("the rewritten chain must pass the chain check alone (that is the attack): %v", err)
	}
	cases := []struct {
		name     string
		records  []string
		cps      []string
		keys     []ed25519.PublicKey
		wantLine int
		want     string
	}{
		{"cut tail", records[:8], cps, nil, 3, "records were cut from its end"},
		{"cut tail to a checkpoint, stop checkpoint kept", records[:6], cps, nil, 3, "the chain ends at seq 6"},
		{"rewritten chain, hashes recomputed", rewritten, cps, nil, 1, "the chain was rewritten"},
		{"removed checkpoint", records, []string{cps[0], cps[2]}, nil, 2, "prev_sig is not the signature of instance"},
		{"reordered checkpoints", records, []string{cps[1], cps[0], cps[2]}, nil, 2, "prev_sig is not the signature"},
		{"altered checkpoint", records, []string{cps[0], strings.Replace(cps[1], `"seq":6`, `"seq":7`, 1), cps[2]}, nil, 2, "signature does not verify"},
		{"other key", records, cps, []ed25519.PublicKey{otherPub}, 1, "not among the --public-key keys"},
		{"checkpoint with whitespace", records, []string{cps[0], strings.Replace(cps[1], `"seq":6`, `"seq": 6`, 1), cps[2]}, nil, 2, "whitespace"},
		{"unknown member", records, []string{strings.Replace(cps[0], `{"ts"`, `{"note":1,"ts"`, 1), cps[1], cps[2]}, nil, 1, `unknown member "note"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify(c.records, c.cps, false, c.keys...)
			var bad *BadRecord
			if !errors.As(err, &bad) || bad.Line != c.wantLine || !strings.Contains(bad.Problem, c.want) {
				t.Fatalf("got %v\nwant checkpoint line %d saying %q", err, c.wantLine, c.want)
			}
		})
	}

	// A forged checkpoint for the rewritten chain, signed with the
	// attacker's own key: refused for its key.
	attackerKey, _ := testCheckpointKey(t)
	forged := &Checkpoint{TS: checkpointTime(time.Now()), Instance: "unit:1", Log: "/var/log/sidecar/audit.jsonl", Reason: "count", Seq: 10,
		Hash: mustRecord(t, rewritten[9]).Hash, Every: 1, IntervalMS: 1000, KeyID: keyID(pub)}
	line := string(signCheckpoint(forged, attackerKey))
	if _, err := verify(rewritten, []string{line}, false); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("forged checkpoint claiming the real key id: %v", err)
	}
}

func mustRecord(t *testing.T, line string) *Record {
	t.Helper()
	rec, bad := readRecord([]byte(strings.TrimSuffix(line, "\n")), nil)
	if bad != nil {
		t.Fatal(bad.problem)
	}
	return rec
}

// TestRetentionUsesTheLastCheckpointBeforeTheCut: when the oldest files were
// rolled away, the chain that is left starts mid-way. Without checkpoints
// only --partial accepts it; with them, a checkpoint before the cut and one
// a remaining record matches anchor it.
func TestRetentionUsesTheLastCheckpointBeforeTheCut(t *testing.T) {
	dir := t.TempDir()
	records, cps, pub := checkpointedLog(t, 12, 3, 6, 9)
	records, cps = fixNewlines(records), fixNewlines(cps)
	verify := func(recs, cps []string) (VerifyResult, error) {
		opts := VerifyOptions{PublicKeys: []ed25519.PublicKey{pub}}
		if cps != nil {
			opts.Checkpoints = []string{writeFile(t, dir, "cp.jsonl", cps)}
		}
		return Verify([]string{writeFile(t, dir, "audit.jsonl", recs)}, opts)
	}
	if _, err := verify(records[4:], nil); err == nil || !strings.Contains(err.Error(), "starts at seq 5") {
		t.Fatalf("without checkpoints a missing beginning needs --partial: %v", err)
	}
	res, err := verify(records[4:], cps) // seq 1-4 rolled away; checkpoint 3 is before the cut
	if err != nil || res.RolledAway == nil || res.RolledAway.Seq != 3 || res.FirstSeq != 5 {
		t.Fatalf("cut after seq 4: %+v %v", res, err)
	}
	res, err = verify(records[6:], cps) // cut right after checkpoint 6: it links to seq 7
	if err != nil || res.RolledAway == nil || res.RolledAway.Seq != 6 {
		t.Fatalf("cut after checkpoint 6: %+v %v", res, err)
	}
	// the checkpoints before the cut rolled away too: nothing anchors the beginning
	if _, err := verify(records[4:], cps[2:]); err == nil || !strings.Contains(err.Error(), "starts at seq 5") {
		t.Fatalf("no checkpoint before the cut: %v", err)
	}
	// a remaining record rewritten after the cut: still caught
	if _, err := verify(rechain(t, records[4:], 2, func(r *Record) { r.Status = 500 }), cps); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Fatalf("rewritten after the cut: %v", err)
	}
}

// TestCheckpointsAcrossRestarts runs two sidecar lifetimes on one audit
// file and one checkpoint file, the first ending in a crash (no final
// checkpoint): the second writes a start checkpoint for the head it
// resumed, continuing the first one's checkpoint chain.
func TestCheckpointsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	key, pub := testCheckpointKey(t)
	no := false
	auditFile := &logging.FileWriter{Filename: filepath.Join(dir, "audit.jsonl"), Roll: &no}
	cpFile := &logging.FileWriter{Filename: filepath.Join(dir, "checkpoints.jsonl"), Roll: &no}
	life := func(instance string, n int, crash bool) {
		s, err := openSink(auditFile, instance)
		if err != nil {
			t.Fatal(err)
		}
		out, err := openCheckpointOutput(cpFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testCheckpointConfig(key, out)
		s.cp.register(cfg)
		for i := 0; i < n; i++ {
			if _, err := s.write(appendHead(nil, sampleRecord())); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				s.cp.write("count")
			}
		}
		if !crash {
			s.cp.unregister(cfg)
		} else {
			s.cp.mu.Lock()
			s.cp.configs = nil // the process dies: no final checkpoint
			s.cp.mu.Unlock()
		}
		_, _ = checkpointOutputs.Delete(out.key)
		_, _ = sinks.Delete(s.key)
	}
	life("a:1", 4, true)
	life("b:2", 3, false)
	life("c:3", 2, false)

	data, _ := os.ReadFile(cpFile.Filename)
	reasons := []string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		cp, _, problem := readCheckpoint([]byte(l))
		if problem != "" {
			t.Fatal(problem)
		}
		reasons = append(reasons, fmt.Sprintf("%s@%d", cp.Reason, cp.Seq))
	}
	// a:1 crashed after seq 4: b:2 anchors it with a start checkpoint. c:3
	// resumed at 7, where b:2's stop checkpoint is: no start checkpoint; its
	// stop at 9 repeats its count checkpoint and is not written.
	if strings.Join(reasons, " ") != "count@2 start@4 count@6 stop@7 count@9" {
		t.Fatalf("checkpoints %v", reasons)
	}
	res, err := Verify([]string{auditFile.Filename}, VerifyOptions{Checkpoints: []string{cpFile.Filename}, PublicKeys: []ed25519.PublicKey{pub}})
	if err != nil || res.Records != 9 || res.AnchoredSeq != 9 || res.Checkpoints != 5 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestOneWriterPerFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	release, err := lockOutput(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockOutput(file)
	var inUse *OutputInUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() || !strings.Contains(err.Error(), file) {
		t.Fatalf("second lock: %v", err)
	}
	no := false
	if _, err := openSink(&logging.FileWriter{Filename: file, Roll: &no}, "x:1"); err == nil || !strings.Contains(err.Error(), "is locked by") {
		t.Fatalf("a sink opened a locked file: %v", err)
	}
	release()
	s, err := openSink(&logging.FileWriter{Filename: file, Roll: &no}, "x:1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_, _ = sinks.Delete(s.key)
	if matches, _ := filepath.Glob(filepath.Join(dir, "audit*.jsonl*")); len(matches) != 1 {
		t.Fatalf("the lock file matches the log glob: %v", matches)
	}
}

// TestCheckpointerTriggers: checkpoint_every wakes the checkpointer from
// the write path, checkpoint_interval from its timer (only when records
// were written since the last checkpoint).
func TestCheckpointerTriggers(t *testing.T) {
	key, _ := testCheckpointKey(t)
	cpW := new(switchWriter)
	s := newSink("t", "log", new(switchWriter), "unit:1")
	cfg := testCheckpointConfig(key, &checkpointOutput{key: "c", name: "c", w: cpW, release: func() {}})
	cfg.every, cfg.interval = 5, 30*time.Millisecond
	s.cp.register(cfg)
	defer s.cp.unregister(cfg)
	lines := func() []*Checkpoint {
		cpW.mu.Lock()
		defer cpW.mu.Unlock()
		var out []*Checkpoint
		for _, l := range strings.Split(strings.TrimSpace(cpW.buf.String()), "\n") {
			if cp, _, problem := readCheckpoint([]byte(l)); problem == "" {
				out = append(out, cp)
			}
		}
		return out
	}
	waitFor := func(what string, ok func([]*Checkpoint) bool) []*Checkpoint {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if cps := lines(); ok(cps) {
				return cps
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no %s checkpoint: %+v", what, lines())
		return nil
	}
	for i := 0; i < 5; i++ {
		_, _ = s.write(appendHead(nil, sampleRecord()))
	}
	cps := waitFor("count", func(cps []*Checkpoint) bool { return len(cps) > 0 && cps[0].Seq == 5 })
	if cps[0].Reason != "count" && cps[0].Reason != "interval" {
		t.Fatalf("first checkpoint %+v", cps[0])
	}
	_, _ = s.write(appendHead(nil, sampleRecord()))
	waitFor("interval", func(cps []*Checkpoint) bool { return len(cps) > 0 && cps[len(cps)-1].Seq == 6 })
	n := len(lines())
	time.Sleep(100 * time.Millisecond) // three intervals without records
	if got := len(lines()); got != n {
		t.Fatalf("%d checkpoints written while no record was", got-n)
	}
}

// FuzzReadCheckpoint: any line readCheckpoint accepts is exactly what the
// writer would write for that checkpoint, and a refusal always says why.
func FuzzReadCheckpoint(f *testing.F) {
	key, _ := testCheckpointKey(f)
	cp := &Checkpoint{TS: "2026-12-02T14:26:33Z", Instance: "i:1", Log: "/l", Reason: "count", Seq: 4, Hash: genesisHash, Every: 4, IntervalMS: 60000, KeyID: "00"}
	line := signCheckpoint(cp, key)
	f.Add(line[:len(line)-1])
	f.Add([]byte(`{"ts":"x","sig":"` + strings.Repeat("A", 86) + `=="}`))
	f.Add([]byte(`{"seq":1,"seq":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, signed, problem := readCheckpoint(data)
		if problem != "" {
			return
		}
		sig := cp.Sig
		again := signCheckpoint(cp, key)
		if !strings.HasPrefix(string(again), string(signed[len(checkpointDomain):len(signed)-1])) {
			t.Fatalf("accepted a line the writer would not write:\n%s\n%s", data, again)
		}
		if !strings.HasSuffix(string(data), `,"sig":`+string(appendString(nil, sig))+`}`) {
			t.Fatalf("the signature member is not the line's end: %s", data)
		}
	})
}
