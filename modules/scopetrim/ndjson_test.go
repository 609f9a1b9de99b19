package scopetrim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

func ndjsonUpstream(records ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(200)
		for _, rec := range records {
			// split records across writes, as a proxy copy may
			half := len(rec) / 2
			if _, err := io.WriteString(w, rec[:half]); err != nil {
				return
			}
			if _, err := io.WriteString(w, rec[half:]); err != nil {
				return
			}
		}
	}
}

func TestNDJSONTrimsRecordByRecord(t *testing.T) {
	m := newHandler(t, "", nil)
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts/export", nil), who([]string{"contacts:read"}, nil), ndjsonUpstream(
		`{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n",
		"\n",
		`{"data":[{"id":2,"ssn":"123-45-6789"}],"next_cursor":"x"}`+"\r\n",
		`{"data":[]}`, // the last record has no newline
	))
	want := `{"data":[{"id":1}]}` + "\n" + `{"data":[{"id":2}],"next_cursor":"x"}` + "\n" + `{"data":[]}` + "\n"
	if res.rec.Code != 200 || res.rec.Body.String() != want {
		t.Fatalf("%d %q", res.rec.Code, res.rec.Body)
	}
	if res.rec.Header().Get("Content-Length") != "" || res.rec.Header().Get("Cache-Control") != "private, no-store" {
		t.Fatalf("headers %v", res.rec.Header())
	}
	if res.decision.FieldsRemoved != 2 {
		t.Fatalf("decision %+v", res.decision)
	}
	assertNoSecret(t, res.rec, secrets...)
}

func TestNDJSONBadFirstRecordIsRefused(t *testing.T) {
	m := newHandler(t, "", nil)
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil), ndjsonUpstream(
		`{"data":[{"id":1,"id":"ada@example.com"}]}`+"\n", `{"data":[]}`+"\n"))
	assertProblem(t, res, 502, sidecar.ReasonUpstreamDuplicate)
}

func compressedNDJSON(encoding, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jsonl")
		w.Header().Set("Content-Encoding", encoding)
		data := body
		switch encoding {
		case "gzip":
			data = gzipped(body)
		case "zstd":
			data = zstded(body)
		}
		for b := []byte(data); len(b) > 0; { // in pieces, as a proxy copies
			n := min(5, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}
}

func TestNDJSONCompressedIsDecodedAsItStreams(t *testing.T) {
	m := newHandler(t, "", nil)
	body := `{"data":[{"id":1,"email":"ada@example.com"}]}` + "\n" + `{"data":[{"id":2,"ssn":"123-45-6789"}]}` + "\n"
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts/export", nil), who([]string{"contacts:read"}, nil), compressedNDJSON(enc, body))
			if res.rec.Code != 200 || res.rec.Body.String() != `{"data":[{"id":1}]}`+"\n"+`{"data":[{"id":2}]}`+"\n" {
				t.Fatalf("%d %q", res.rec.Code, res.rec.Body)
			}
			if res.rec.Header().Get("Content-Encoding") != "" {
				t.Fatalf("headers %v", res.rec.Header())
			}
			assertNoSecret(t, res.rec, secrets...)
		})
	}
}

func TestNDJSONCompressedRefusals(t *testing.T) {
	m := newHandler(t, "", func(m *ScopeTrim) { m.MaxBody = 1024 })
	bomb := `{"data":[{"id":"` + strings.Repeat("A", 1<<20) + `"}]}` + "\n"
	tests := []struct {
		name     string
		upstream func(http.ResponseWriter, *http.Request)
		reason   string
	}{
		{"brotli", compressedNDJSON("br", `{"data":[]}`+"\n"), sidecar.ReasonUpstreamEncoding},
		{"unknown encoding", compressedNDJSON("lzma", ""), sidecar.ReasonUpstreamEncoding},
		{"gzip bomb record", compressedNDJSON("gzip", bomb), sidecar.ReasonUpstreamTooLarge},
		{"zstd bomb record", compressedNDJSON("zstd", bomb), sidecar.ReasonUpstreamTooLarge},
		{"gzip that is not gzip", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, `{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n")
		}, sidecar.ReasonUpstreamEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil), tt.upstream)
			assertProblem(t, res, 502, tt.reason)
		})
	}
}

func TestNDJSONRecordOverMaxBodyIsRefused(t *testing.T) {
	m := newHandler(t, "", func(m *ScopeTrim) { m.MaxBody = 100 })
	res := serve(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil),
		ndjsonUpstream(`{"data":[{"id":"`+strings.Repeat("x", 200)+`"}]}`+"\n"))
	assertProblem(t, res, 502, sidecar.ReasonUpstreamTooLarge)
}

// A bad record after the status was sent ends the stream: the handler
// aborts the response (http.ErrAbortHandler) and the record is not sent.
func TestNDJSONBadLaterRecordAbortsTheStream(t *testing.T) {
	m := newHandler(t, "", nil)
	var res result
	defer func() {
		v := recover()
		if v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		if !strings.HasPrefix(res.rec.Body.String(), `{"data":[{"id":1}]}`+"\n") {
			t.Fatalf("first record not sent: %q", res.rec.Body)
		}
		assertNoSecret(t, res.rec, "ada@example.com", "123-45-6789")
		if res.decision.Reason != sidecar.ReasonUpstreamInvalidUTF8 {
			t.Fatalf("decision %+v", res.decision)
		}
	}()
	res = serveKeep(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil), &res, ndjsonUpstream(
		`{"data":[{"id":1,"email":"ada@example.com"}]}`+"\n",
		"{\"data\":[{\"id\":\"\xff\",\"ssn\":\"123-45-6789\"}]}\n",
		`{"data":[{"id":3}]}`+"\n"))
	t.Fatal("the stream was not aborted")
}

// In a gzip stream too, a bad record after the first ends the stream.
func TestNDJSONCompressedBadLaterRecordAbortsTheStream(t *testing.T) {
	m := newHandler(t, "", nil)
	var res result
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		if !strings.HasPrefix(res.rec.Body.String(), `{"data":[{"id":1}]}`+"\n") || strings.Contains(res.rec.Body.String(), `"id":3`) {
			t.Fatalf("body %q", res.rec.Body)
		}
		assertNoSecret(t, res.rec, "ada@example.com", "123-45-6789")
		if res.decision.Reason != sidecar.ReasonUpstreamDuplicate {
			t.Fatalf("decision %+v", res.decision)
		}
	}()
	body := `{"data":[{"id":1,"email":"ada@example.com"}]}` + "\n" +
		`{"data":[{"id":2,"id":"123-45-6789"}]}` + "\n" + `{"data":[{"id":3}]}` + "\n"
	res = serveKeep(t, m, httptest.NewRequest("GET", "/v1/contacts", nil), who([]string{"contacts:read"}, nil), &res, compressedNDJSON("gzip", body))
	t.Fatal("the stream was not aborted")
}
