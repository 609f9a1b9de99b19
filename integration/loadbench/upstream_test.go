package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/contacts"
)

func TestUpstreamServesListsAndStreamsExport(t *testing.T) {
	docs := map[string][]byte{"10KB": contacts.Page(10000)}
	u, err := startUpstream(docs)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()

	resp, err := http.Get("http://" + u.URL + "/v1/contacts?size=10KB")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, docs["10KB"]) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("list: status %d, %d bytes, type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	if resp, err := http.Get("http://" + u.URL + "/v1/contacts?size=2GB"); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown size: %v %v", resp.Status, err)
	}

	const want = 1 << 20
	resp, err = http.Get("http://" + u.URL + "/v1/contacts/export?bytes=1048576")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.ContentLength != -1 {
		t.Errorf("export: type %q, length %d; want streamed NDJSON", resp.Header.Get("Content-Type"), resp.ContentLength)
	}
	var total, records int
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		total += len(sc.Bytes()) + 1
		records++
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("record %d is not JSON: %s", records, sc.Bytes())
		}
	}
	if total < want || total > want+2000 {
		t.Errorf("export gave %d bytes in %d records, want just over %d", total, records, want)
	}
}
