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

// Contact is a person in a tenant's CRM. Field names follow policies/crm.json;
// LeadScore is listed in no policy, so no scope ever sees it.
type Contact struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Company   string `json:"company"`
	OwnerID   string `json:"owner_id"`
	CreatedAt string `json:"created_at"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
	Address   string `json:"address"`
	Notes     string `json:"notes"`
	LeadScore int    `json:"lead_score"`
}

// Deal is an opportunity in a tenant's pipeline.
type Deal struct {
	ID           string `json:"id"`
	Title        string `json:"title"`
	Stage        string `json:"stage"`
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	ContactID    string `json:"contact_id"`
	ContactEmail string `json:"contact_email"`
	ContactPhone string `json:"contact_phone"`
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
			{"c_1001", "Maria Lindqvist", "Nordlicht AB", "u_17", "2026-03-02T09:14:00Z", "maria.lindqvist@nordlicht.example", "+46 70 123 45 67", "Storgatan 12, 111 23 Stockholm", "Prefers calls after 3pm; asked about the GDPR DPA.", 87},
			{"c_1002", "Jonas Becker", "Becker Logistik GmbH", "u_17", "2026-04-18T14:02:00Z", "j.becker@becker-logistik.example", "+49 151 2345 6789", "Hafenstrasse 5, 20457 Hamburg", "Renewal due in March; budget owner is the CFO.", 64},
			{"c_1003", "Aisha Okafor", "Lagos Fintech Ltd", "u_22", "2026-06-30T08:45:00Z", "aisha@lagosfintech.example", "+234 803 555 0142", "12 Marina Road, Lagos", "Met at SaaStr; interested in the EU region.", 92},
		},
		Deals: []Deal{
			{"d_501", "Nordlicht expansion", "negotiation", 48000, "EUR", "c_1001", "maria.lindqvist@nordlicht.example", "+46 70 123 45 67"},
			{"d_502", "Becker renewal", "proposal", 120000, "EUR", "c_1002", "j.becker@becker-logistik.example", "+49 151 2345 6789"},
		},
	},
	"globex": {
		Contacts: []Contact{
			{"c_2001", "Hank Scorpio", "Globex Corporation", "u_90", "2026-01-11T17:30:00Z", "hank@globex.example", "+1 555 010 0199", "1 Cypress Creek, OR", "Wants a hammock district.", 99},
			{"c_2002", "Frank Grimes", "Springfield Nuclear", "u_91", "2026-02-07T11:00:00Z", "frank.grimes@snpp.example", "+1 555 010 0142", "742 Evergreen Terrace, Springfield", "Very detail oriented.", 12},
		},
		Deals: []Deal{
			{"d_901", "Reactor maintenance", "won", 1000000, "USD", "c_2001", "hank@globex.example", "+1 555 010 0199"},
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
