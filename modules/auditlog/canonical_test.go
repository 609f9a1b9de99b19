package auditlog

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// fillValue gives v a non-empty value of its type, derived from seed.
func fillValue(v reflect.Value, seed string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(seed + ` "é"\n`)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(len(seed)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(seed)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(seed)) + 0.25)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fillValue(s.Index(0), seed+"0")
		fillValue(s.Index(1), seed+"1")
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range []string{"zeta", "alpha"} {
			e := reflect.New(v.Type().Elem()).Elem()
			fillValue(e, seed+k)
			m.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Struct:
		for _, m := range membersOf(v.Type()) {
			fillValue(v.Field(m.index), seed+"."+m.name)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(p.Elem(), seed)
		v.Set(p)
	}
}

// TestWriterEncodingIsCanonical: the writer's fast path (appendHead,
// appendTail) writes every member of Record, in the type's field order,
// exactly as the verifier's encoding derived from the type does, with all
// members set and with none set. A field added to Record but not to
// appendHead, or in another place, fails here.
func TestWriterEncodingIsCanonical(t *testing.T) {
	full := new(Record)
	fillValue(reflect.ValueOf(full).Elem(), "v")
	for name, rec := range map[string]*Record{"every member set": full, "zero record": {}, "sample": sampleRecord()} {
		writer := appendTail(appendHead(nil, rec), rec.Instance, rec.Seq, rec.PrevHash)
		canon := appendCanonicalBody(nil, rec)
		if !bytes.Equal(writer, canon) {
			i := firstDifference(writer, canon)
			t.Errorf("%s: the writer and the canonical encoding differ at byte %d:\nwriter: %s\ncanon:  %s", name, i, writer[i:], canon[i:])
		}
		line, _ := seal(writer, 0)
		got, bad := readRecord(line[:len(line)-1], nil)
		if bad != nil {
			t.Fatalf("%s: the written line is refused: %s", name, bad.problem)
		}
		got.Hash, got.start = "", rec.start
		want := *rec
		want.Hash = ""
		if !reflect.DeepEqual(got, &want) && name != "zero record" {
			t.Errorf("%s: read back as %+v", name, got)
		}
	}
	// each optional member alone: a writer that writes two of them
	// together (one of them empty) differs from the canonical encoding
	for _, m := range recordMembers {
		if !m.omitEmpty {
			continue
		}
		rec := new(Record)
		fillValue(reflect.ValueOf(rec).Elem().Field(m.index), "v")
		writer := appendTail(appendHead(nil, rec), rec.Instance, rec.Seq, rec.PrevHash)
		if canon := appendCanonicalBody(nil, rec); !bytes.Equal(writer, canon) {
			t.Errorf("only %q set: the writer writes\n%s\nthe canonical encoding is\n%s", m.name, writer, canon)
		}
	}
	if last := recordMembers[len(recordMembers)-1]; last.name != "hash" {
		t.Fatalf("the last member of Record is %q; hash must be last (the hash covers what precedes it)", last.name)
	}
}

func TestBoundHeadKeepsEveryRecordReadable(t *testing.T) {
	w := new(switchWriter)
	m, _, _ := newTestAuditLog(t, w, "")
	scopes := make([]string, 20000)
	for i := range scopes {
		scopes[i] = "scope:" + strings.Repeat("s", i%50)
	}
	scopes[3] = strings.Repeat("x", 100000) // one absurd scope
	id := &sidecar.Identity{Subject: "alice", Issuer: "https://idp.example", ClientID: "app", Scopes: scopes}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		r = sidecar.WithIdentity(r, id)
		d := sidecar.DecisionFrom(r)
		d.Tenant = "acme"
		for i := 0; i < 5000; i++ {
			d.AddWithheld("data.#.field"+strings.Repeat("w", i%40)+string(rune('a'+i%26))+strings.Repeat("z", i/26), 1)
		}
		return nil
	})
	hugePath := "/v1/" + strings.Repeat("é", 300000)
	_ = m.ServeHTTP(httptest.NewRecorder(), newRequest(hugePath), next)
	_ = m.ServeHTTP(httptest.NewRecorder(), newRequest("/small"), next)

	data := w.buf.Bytes()
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) != 3 || len(lines[2]) != 0 {
		t.Fatalf("%d lines", len(lines)-1)
	}
	for i, line := range lines[:2] {
		if len(line) > MaxRecordBytes {
			t.Fatalf("record %d is %d bytes, over MaxRecordBytes", i+1, len(line))
		}
		rec, bad := readRecord(line[:len(line)-1], nil)
		if bad != nil {
			t.Fatalf("record %d refused by the reader: %s", i+1, bad.problem)
		}
		if rec.Cut["scopes"] == 0 || rec.Cut["withheld"] == 0 {
			t.Errorf("record %d: cut %v, want counts for scopes and withheld", i+1, rec.Cut)
		}
		if len(rec.Scopes)+rec.Cut["scopes"] != len(scopes) {
			t.Errorf("record %d: %d scopes kept + %d cut != %d", i+1, len(rec.Scopes), rec.Cut["scopes"], len(scopes))
		}
		if i == 0 && (rec.Cut["path"] == 0 || len(rec.Path)+rec.Cut["path"] != len(hugePath) || !strings.HasPrefix(hugePath, rec.Path)) {
			t.Errorf("path kept %d bytes, cut %d of %d", len(rec.Path), rec.Cut["path"], len(hugePath))
		}
	}
	// the writer's own records never stop a restart or a verification
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if last, err := lastRecordOf(path); err != nil || last.Seq != 2 {
		t.Fatalf("resume: %+v %v", last, err)
	}
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
