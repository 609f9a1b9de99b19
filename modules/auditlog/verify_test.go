package auditlog

import (
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chainLines returns n sealed lines of one chain starting at seq 1.
func chainLines(n int) []string {
	prev := genesisHash
	var lines []string
	for i := 0; i < n; i++ {
		rec := sampleRecord()
		rec.Path = fmt.Sprintf("/r/%d", i)
		line, hash := seal(appendTail(appendHead(nil, rec), "unit:1", uint64(i+1), prev), 0)
		prev = string(hash[:])
		lines = append(lines, string(line))
	}
	return lines
}

func writeFile(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(5)
	mod := func(f func(l []string) []string) []string { return f(append([]string(nil), lines...)) }
	cases := []struct {
		name     string
		lines    []string
		partial  bool
		wantLine int
		wantErr  string
	}{
		{"intact", lines, false, 0, ""},
		{"changed", mod(func(l []string) []string { l[1] = strings.Replace(l[1], `"status":200`, `"status":500`, 1); return l }), false, 2, "hash does not match"},
		{"hash replaced", mod(func(l []string) []string { l[2] = strings.Replace(l[2], `"hash":"`, `"hash":"0`, 1); return l }), false, 3, "does not end with its hash member"},
		{"hash of another record", mod(func(l []string) []string { l[2] = l[2][:len(l[2])-67] + l[1][len(l[1])-67:]; return l }), false, 3, "hash does not match"},
		{"removed", mod(func(l []string) []string { return append(l[:1], l[2:]...) }), false, 2, "records 2 to 2 are missing"},
		{"removed first", mod(func(l []string) []string { return l[1:] }), false, 1, "starts at seq 2"},
		{"removed first, partial", mod(func(l []string) []string { return l[1:] }), true, 0, ""},
		{"duplicated", mod(func(l []string) []string { return append(l[:2], l[1:]...) }), false, 3, "inserted, duplicated or moved"},
		{"reordered", mod(func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }), false, 2, "expected seq 2"},
		{"empty line", mod(func(l []string) []string { return append(l[:2], append([]string{"\n"}, l[2:]...)...) }), false, 3, "empty line"},
		{"garbage", mod(func(l []string) []string { l[3] = "not json\n"; return l }), false, 4, "not an audit record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(c.name, " ", "_")+".jsonl", c.lines)
			res, err := Verify([]string{path}, VerifyOptions{Partial: c.partial})
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("intact chain refused: %v", err)
				}
				if res.LastHash == "" || int(res.LastSeq-res.FirstSeq)+1 != res.Records {
					t.Fatalf("result %+v", res)
				}
				return
			}
			var bad *BadRecord
			if !errors.As(err, &bad) {
				t.Fatalf("error %v, want a BadRecord", err)
			}
			if bad.Line != c.wantLine || !strings.Contains(bad.Problem, c.wantErr) {
				t.Fatalf("bad record %v, want line %d with %q", bad, c.wantLine, c.wantErr)
			}
		})
	}
}

func TestVerifyAcrossPlainAndGzipFiles(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(6)
	gzPath := filepath.Join(dir, "audit-2026-11-28T08-00-00.000-size.jsonl.gz")
	f, err := os.Create(gzPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	_, _ = zw.Write([]byte(strings.Join(lines[:3], "")))
	zw.Close()
	f.Close()
	current := writeFile(t, dir, "audit.jsonl", lines[3:])
	res, err := Verify([]string{gzPath, current}, VerifyOptions{})
	if err != nil || res.Records != 6 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	if _, err := Verify([]string{current, gzPath}, VerifyOptions{}); err == nil {
		t.Fatal("files out of order verified")
	}

	// Restart after a roll left the current file empty: continue from the
	// newest rolled file.
	if err := os.WriteFile(current, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	last, err := lastRecordOf(current)
	if err != nil || last == nil || last.Seq != 3 {
		t.Fatalf("last record %+v, %v; want seq 3 from the gzip file", last, err)
	}
}

func TestLastRecordOf(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(3)
	if rec, err := lastRecordOf(filepath.Join(dir, "none.jsonl")); rec != nil || err != nil {
		t.Fatalf("missing file: %+v %v", rec, err)
	}
	ok := writeFile(t, dir, "ok.jsonl", lines)
	if rec, err := lastRecordOf(ok); err != nil || rec.Seq != 3 {
		t.Fatalf("%+v %v", rec, err)
	}
	torn := writeFile(t, dir, "torn.jsonl", append(lines[:2:2], lines[2][:40]))
	if _, err := lastRecordOf(torn); err == nil || !strings.Contains(err.Error(), "complete line") {
		t.Fatalf("torn last line accepted: %v", err)
	}
	tampered := writeFile(t, dir, "tampered.jsonl", append(lines[:2:2], strings.Replace(lines[2], `"status":200`, `"status":201`, 1)))
	if _, err := lastRecordOf(tampered); err == nil || !strings.Contains(err.Error(), "hash does not match") {
		t.Fatalf("tampered last record accepted: %v", err)
	}
	if rec, err := lastRecordOf("/dev/null"); rec != nil || err != nil {
		t.Fatalf("/dev/null: %+v %v", rec, err)
	}
}

// chainFor returns n lines of instance's chain continuing after seq/prev.
func chainFor(instance string, seq uint64, prev string, n int) ([]string, string) {
	var lines []string
	for i := 0; i < n; i++ {
		rec := sampleRecord()
		seq++
		line, hash := seal(appendTail(appendHead(nil, rec), instance, seq, prev), 0)
		prev = string(hash[:])
		lines = append(lines, string(line))
	}
	return lines, prev
}

func TestVerifyPerInstance(t *testing.T) {
	dir := t.TempDir()
	a, aHead := chainFor("a:1", 0, genesisHash, 3)
	b, _ := chainFor("b:1", 0, genesisHash, 3)
	resumed, _ := chainFor("a:2", 3, aHead, 2) // a restarted and resumed its file
	merged := []string{a[0], b[0], a[1], b[1], a[2], b[2], resumed[0], resumed[1]}

	res, err := Verify([]string{writeFile(t, dir, "merged.jsonl", merged)}, VerifyOptions{PerInstance: true})
	if err != nil || res.Records != 8 || res.Chains != 2 {
		t.Fatalf("merged stream: %+v %v", res, err)
	}
	if _, err := Verify([]string{writeFile(t, dir, "merged2.jsonl", merged)}, VerifyOptions{}); err == nil {
		t.Fatal("a merged stream passed the linear check")
	}
	bad := map[string][]string{
		"reordered within an instance": {a[0], b[0], a[2], a[1]},
		"removed within an instance":   {a[0], b[0], a[2], b[1]},
		"writes after the handover":    {a[0], a[1], a[2], resumed[0], b[0], a[2]},
		"starts mid-chain":             {b[1], b[2]},
	}
	for name, lines := range bad {
		if _, err := Verify([]string{writeFile(t, dir, "bad.jsonl", lines)}, VerifyOptions{PerInstance: true}); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := Verify([]string{writeFile(t, dir, "partial.jsonl", []string{b[1], b[2], a[0]})}, VerifyOptions{PerInstance: true, Partial: true}); err != nil {
		t.Errorf("--partial: %v", err)
	}
}

func TestRolledFilesPreferTheOriginalDuringCompression(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(4)
	older := writeFile(t, dir, "audit-2026-11-28T08-00-00.000-size.jsonl", lines[:2])
	newer := writeFile(t, dir, "audit-2026-11-28T09-00-00.000-size.jsonl", lines[2:])
	// A half-written archive of the newer file, as timberjack leaves it mid-compression.
	if err := os.WriteFile(newer+".gz", []byte{0x1f, 0x8b, 0x08}, 0o600); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, "audit.jsonl")
	if got := rolledFiles(current); len(got) != 2 || got[0] != older || got[1] != newer {
		t.Fatalf("rolled files %v", got)
	}
	last, err := lastRecordOf(current)
	if err != nil || last == nil || last.Seq != 4 {
		t.Fatalf("last record %+v %v", last, err)
	}
}

// resealed rewrites a sealed line's body with edit and recomputes its hash
// over exactly the edited bytes, as an attacker who knows the format would:
// only the canonical-form check can then catch the edit.
func resealed(line string, edit func(body string) string) string {
	before, _, ok := splitHash([]byte(strings.TrimSuffix(line, "\n")))
	if !ok {
		panic("not a sealed line")
	}
	body := edit(string(before) + "}")
	out, _ := seal([]byte(body), 0)
	return string(out)
}

func TestVerifyRequiresTheCanonicalEncoding(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(3)
	cases := []struct {
		name string
		edit func(body string) string
		want string
	}{
		{"duplicate member before the real one", func(b string) string {
			return strings.Replace(b, `"decision":"allow"`, `"decision":"deny","decision":"allow"`, 1)
		}, `member "decision" appears twice`},
		{"duplicate member after the real one", func(b string) string {
			return strings.Replace(b, `"decision":"allow"`, `"decision":"allow","decision":"deny"`, 1)
		}, `member "decision" appears twice`},
		{"member differing in case", func(b string) string {
			return strings.Replace(b, `"reason":"ok"`, `"reason":"ok","Decision":"deny"`, 1)
		}, `member "Decision" differs only in case from "decision"`},
		{"member renamed in case", func(b string) string {
			return strings.Replace(b, `"decision":`, `"Decision":`, 1)
		}, `member "Decision" differs only in case from "decision"`},
		{"unknown member", func(b string) string {
			return strings.Replace(b, `{"ts"`, `{"note":"x","ts"`, 1)
		}, `unknown member "note"`},
		{"reordered members", func(b string) string {
			return strings.Replace(b, `"method":"GET","host":"sidecar.example:8443"`, `"host":"sidecar.example:8443","method":"GET"`, 1)
		}, `members out of order: "method" comes after "host"`},
		{"space after a colon", func(b string) string {
			return strings.Replace(b, `"status":200`, `"status": 200`, 1)
		}, "whitespace outside strings at byte"},
		{"trailing space", func(b string) string { return b[:len(b)-1] + " }" }, "whitespace outside strings"},
		{"escaped member name", func(b string) string {
			return strings.Replace(b, `"decision":`, `"decisi\u006fn":`, 1)
		}, "escaped differently"},
		{"escaped value", func(b string) string {
			return strings.Replace(b, `"decision":"allow"`, `"decision":"\u0061llow"`, 1)
		}, `member "decision": "\u0061llow" is not written as the writer writes it ("allow")`},
		{"number written as a float", func(b string) string {
			return strings.Replace(b, `"status":200`, `"status":2e2`, 1)
		}, `member "status"`},
		{"duration with more decimals", func(b string) string {
			return strings.Replace(b, `"duration_ms":12.345`, `"duration_ms":12.3450`, 1)
		}, `member "duration_ms": 12.3450 is not written as the writer writes it (12.345)`},
		{"missing member", func(b string) string {
			return strings.Replace(b, `"tenant":"acme",`, ``, 1)
		}, `member "tenant" is missing`},
		{"empty optional member", func(b string) string {
			return strings.Replace(b, `"endpoint":"/v1/contacts*"`, `"endpoint":""`, 1)
		}, `member "endpoint" is empty`},
		{"null list", func(b string) string {
			return strings.Replace(b, `"scopes":["contacts:read"]`, `"scopes":null`, 1)
		}, `member "scopes": null is not written`},
		{"control: resealed unchanged", func(b string) string { return b }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := append([]string(nil), lines...)
			l[1] = resealed(l[1], c.edit)
			path := writeFile(t, dir, "canon.jsonl", l)
			_, err := Verify([]string{path}, VerifyOptions{})
			if c.want == "" {
				if err != nil {
					t.Fatalf("an unchanged record resealed fails: %v", err)
				}
				return
			}
			var bad *BadRecord
			if !errors.As(err, &bad) {
				t.Fatalf("verified: %v", err)
			}
			if bad.Line != 2 || !strings.Contains(bad.Problem, c.want) {
				t.Fatalf("got %v\nwant line 2 saying %q", bad, c.want)
			}
		})
	}
}

func TestVerifyRefusesOverlongLinesWithBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	lines := chainLines(2)
	long := resealed(lines[1], func(b string) string {
		return strings.Replace(b, `"path":"/r/1"`, `"path":"/`+strings.Repeat("a", MaxRecordBytes)+`"`, 1)
	})
	path := writeFile(t, dir, "long.jsonl", []string{lines[0], long, "trailing\n"})
	_, err := Verify([]string{path}, VerifyOptions{})
	var bad *BadRecord
	if !errors.As(err, &bad) || bad.Line != 2 || !strings.Contains(bad.Problem, "longer than a record may be") {
		t.Fatalf("over-long line: %v", err)
	}
	if _, err := lastRecordOf(writeFile(t, dir, "long-last.jsonl", []string{lines[0], long})); err == nil ||
		!strings.Contains(err.Error(), "longer than a record may be") {
		t.Fatalf("resume after an over-long last line: %v", err)
	}
}
