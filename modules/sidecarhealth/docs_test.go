package sidecarhealth

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alysio/privacy-sidecar/internal/docscheck"
	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// TestAnswerFieldsAreDocumented: docs/sidecar_health.md's field table names
// every JSON field of the answer (the report and each issuer's KeyStatus),
// and no other.
func TestAnswerFieldsAreDocumented(t *testing.T) {
	page, err := docscheck.Load("docs/sidecar_health.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, tb := range page.TablesIn("The answer") {
		for _, row := range tb.Rows {
			documented = append(documented, docscheck.Code(row[0])...)
		}
	}
	var fields []string
	for _, typ := range []reflect.Type{reflect.TypeOf(report{}), reflect.TypeOf(sidecar.KeyStatus{})} {
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields = append(fields, name)
		}
	}
	for _, f := range fields {
		if !slices.Contains(documented, f) {
			t.Errorf("the answer's field %q is not documented", f)
		}
	}
	for _, d := range documented {
		if !slices.Contains(fields, d) {
			t.Errorf("docs/sidecar_health.md documents %q, which the answer does not have", d)
		}
	}
}
