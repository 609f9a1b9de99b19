// Package democrm is a sample CRM connector for the demo and tests: it serves
// realistic contacts, deals and activities for two tenants, as JSON lists and
// as an NDJSON export. It trusts the X-Tenant-ID header, as a connector
// behind the sidecar does: the sidecar is what makes that header true.
package democrm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Contact is a person in a tenant's CRM.
type Contact struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Company string `json:"company"`
	Email   string `json:"email"`
	Phone   string `json:"phone"`
	Notes   string `json:"notes"`
	Owner   string `json:"owner"`
}

// Deal is an opportunity in a tenant's pipeline.
type Deal struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Stage     string `json:"stage"`
	AmountEUR int64  `json:"amount_eur"`
	ContactID string `json:"contact_id"`
	Notes     string `json:"notes"`
}

// Tenant is one organisation's data.
type Tenant struct {
	Contacts []Contact
	Deals    []Deal
}

// Data is every tenant's data, by tenant id.
var Data = map[string]Tenant{
	"acme": {
		Contacts: []Contact{
			{"c_1001", "Maria Lindqvist", "Nordlicht AB", "maria.lindqvist@nordlicht.example", "+46 70 123 45 67", "Prefers calls after 3pm; asked about GDPR DPA.", "u_17"},
			{"c_1002", "Jonas Becker", "Becker Logistik GmbH", "j.becker@becker-logistik.example", "+49 151 2345 6789", "Renewal due in March; budget owner is the CFO.", "u_17"},
			{"c_1003", "Aisha Okafor", "Lagos Fintech Ltd", "aisha@lagosfintech.example", "+234 803 555 0142", "Met at SaaStr; interested in the EU region.", "u_22"},
		},
		Deals: []Deal{
			{"d_501", "Nordlicht expansion", "negotiation", 48000, "c_1001", "Discount of 12% approved by Maria."},
			{"d_502", "Becker renewal", "proposal", 120000, "c_1002", "Competitor quote on the table."},
		},
	},
	"globex": {
		Contacts: []Contact{
			{"c_2001", "Hank Scorpio", "Globex Corporation", "hank@globex.example", "+1 555 010 0199", "Wants a hammock district.", "u_90"},
			{"c_2002", "Frank Grimes", "Springfield Nuclear", "frank.grimes@snpp.example", "+1 555 010 0142", "Very detail oriented.", "u_91"},
		},
		Deals: []Deal{
			{"d_901", "Doomsday device maintenance", "won", 1000000, "c_2001", "Paid in gold bars."},
		},
	},
}

// Handler serves the CRM API:
//
//	GET /v1/contacts          {"data":[...], "next_cursor": ...}
//	GET /v1/deals             {"data":[...], "next_cursor": ...}
//	GET /v1/contacts/export   NDJSON, one contact per line
//
// An unknown or missing tenant gets 404, as a real connector would answer.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		if t, ok := tenantOf(w, r); ok {
			writeList(w, t.Contacts)
		}
	})
	mux.HandleFunc("GET /v1/deals", func(w http.ResponseWriter, r *http.Request) {
		if t, ok := tenantOf(w, r); ok {
			writeList(w, t.Deals)
		}
	})
	mux.HandleFunc("GET /v1/contacts/export", func(w http.ResponseWriter, r *http.Request) {
		t, ok := tenantOf(w, r)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, c := range t.Contacts {
			_ = enc.Encode(c)
		}
	})
	return mux
}

func tenantOf(w http.ResponseWriter, r *http.Request) (Tenant, bool) {
	id := strings.TrimSpace(r.Header.Get("X-Tenant-ID"))
	t, ok := Data[id]
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":"unknown tenant"}`)
		return Tenant{}, false
	}
	return t, true
}

func writeList[T any](w http.ResponseWriter, items []T) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": items, "next_cursor": nil})
}
