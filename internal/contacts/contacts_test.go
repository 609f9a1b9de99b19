package contacts

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestPageIsDeterministicValidAndSized(t *testing.T) {
	for _, target := range []int{1000, 10000, 300000} {
		doc := Page(target)
		if !bytes.Equal(doc, Page(target)) {
			t.Fatalf("%d: two calls gave different documents", target)
		}
		var v struct {
			Data       []map[string]any `json:"data"`
			NextCursor string           `json:"next_cursor"`
			Total      int              `json:"total"`
		}
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("%d: invalid JSON: %v", target, err)
		}
		if len(doc) > target || len(doc) < target*8/10 {
			t.Errorf("%d: document is %d bytes, want within 80%%..100%% of the target", target, len(doc))
		}
		if v.Total != len(v.Data) || v.NextCursor == "" {
			t.Errorf("%d: total %d for %d contacts, cursor %q", target, v.Total, len(v.Data), v.NextCursor)
		}
		for _, field := range []string{"id", "name", "email", "phone", "notes", "ssn"} {
			if _, ok := v.Data[0][field]; !ok {
				t.Errorf("%d: contact lacks %s", target, field)
			}
		}
	}
}
