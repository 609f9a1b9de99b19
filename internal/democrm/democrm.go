// Package democrm is a sample CRM connector for the demo and tests: it serves
// realistic contacts, deals and activities for two tenants, as JSON lists and
// as an NDJSON export. It trusts the X-Tenant-ID header, as a connector
// behind the sidecar does: the sidecar is what makes that header true.
package democrm

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	Notes        string `json:"notes"`
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
			{"d_501", "Nordlicht expansion", "negotiation", 48000, "EUR", "c_1001", "maria.lindqvist@nordlicht.example", "+46 70 123 45 67", "Champion is Maria; legal review of the DPA pending."},
			{"d_502", "Becker renewal", "proposal", 120000, "EUR", "c_1002", "j.becker@becker-logistik.example", "+49 151 2345 6789", "CFO asked for a three-year price."},
		},
	},
	"globex": {
		Contacts: []Contact{
			{"c_2001", "Hank Scorpio", "Globex Corporation", "u_90", "2026-01-11T17:30:00Z", "hank@globex.example", "+1 555 010 0199", "1 Cypress Creek, OR", "Wants a hammock district.", 99},
			{"c_2002", "Frank Grimes", "Springfield Nuclear", "u_91", "2026-02-07T11:00:00Z", "frank.grimes@snpp.example", "+1 555 010 0142", "742 Evergreen Terrace, Springfield", "Very detail oriented.", 12},
		},
		Deals: []Deal{
			{"d_901", "Reactor maintenance", "won", 1000000, "USD", "c_2001", "hank@globex.example", "+1 555 010 0199", "Hank wants it done by Friday."},
		},
	},
}

// Handler serves the CRM API on a copy of Data of its own (writes change
// that copy only):
//
//	GET   /v1/contacts          {"data":[...], "next_cursor": ...}
//	GET   /v1/contacts/{id}     one contact, or 404
//	GET   /v1/deals             {"data":[...], "next_cursor": ...}
//	PATCH /v1/deals/{id}        JSON fields to change (stage, amount, notes,
//	                            title); answers the changed deal
//	GET   /v1/contacts/export   NDJSON, one contact per line
//
// An unknown or missing tenant gets 404, as a real connector would answer.
// The connector applies what it is sent: deciding who may write what is
// the sidecar's job.
func Handler() http.Handler { return New() }

// CRM is a running connector: Handler's data and a count of the writes it
// received, so that a demo or test can show a refused write never arrived.
type CRM struct {
	mux    *http.ServeMux
	mu     sync.Mutex
	data   map[string]Tenant
	writes atomic.Int64
}

// New returns a connector serving a fresh copy of Data.
func New() *CRM {
	c := &CRM{mux: http.NewServeMux(), data: map[string]Tenant{}}
	for id, t := range Data {
		c.data[id] = Tenant{Contacts: slices.Clone(t.Contacts), Deals: slices.Clone(t.Deals)}
	}
	c.mux.HandleFunc("GET /v1/contacts", func(w http.ResponseWriter, r *http.Request) {
		if t, ok := c.tenantOf(w, r); ok {
			writeList(w, t.Contacts)
		}
	})
	c.mux.HandleFunc("GET /v1/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := c.tenantOf(w, r)
		if !ok {
			return
		}
		i := slices.IndexFunc(t.Contacts, func(x Contact) bool { return x.ID == r.PathValue("id") })
		if i < 0 {
			writeError(w, http.StatusNotFound, "not_found", "no such contact")
			return
		}
		writeJSON(w, http.StatusOK, t.Contacts[i])
	})
	c.mux.HandleFunc("GET /v1/deals", func(w http.ResponseWriter, r *http.Request) {
		if t, ok := c.tenantOf(w, r); ok {
			writeList(w, t.Deals)
		}
	})
	c.mux.HandleFunc("PATCH /v1/deals/{id}", c.patchDeal)
	c.mux.HandleFunc("GET /v1/contacts/export", func(w http.ResponseWriter, r *http.Request) {
		t, ok := c.tenantOf(w, r)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, c := range t.Contacts {
			_ = enc.Encode(c)
		}
	})
	return c
}

// ServeHTTP implements http.Handler.
func (c *CRM) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Writes counts the write requests that reached the connector.
func (c *CRM) Writes() int64 { return c.writes.Load() }

func (c *CRM) patchDeal(w http.ResponseWriter, r *http.Request) {
	c.writes.Add(1)
	if _, ok := c.tenantOf(w, r); !ok {
		return
	}
	var change struct {
		Title  *string `json:"title"`
		Stage  *string `json:"stage"`
		Amount *int64  `json:"amount"`
		Notes  *string `json:"notes"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&change); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not a deal change")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.data[strings.TrimSpace(r.Header.Get("X-Tenant-ID"))]
	i := slices.IndexFunc(t.Deals, func(d Deal) bool { return d.ID == r.PathValue("id") })
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", "no such deal")
		return
	}
	d := &t.Deals[i]
	if change.Title != nil {
		d.Title = *change.Title
	}
	if change.Stage != nil {
		d.Stage = *change.Stage
	}
	if change.Amount != nil {
		d.Amount = *change.Amount
	}
	if change.Notes != nil {
		d.Notes = *change.Notes
	}
	writeJSON(w, http.StatusOK, *d)
}

func (c *CRM) tenantOf(w http.ResponseWriter, r *http.Request) (Tenant, bool) {
	c.mu.Lock()
	t, ok := c.data[strings.TrimSpace(r.Header.Get("X-Tenant-ID"))]
	if ok {
		t = Tenant{Contacts: slices.Clone(t.Contacts), Deals: slices.Clone(t.Deals)}
	}
	c.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_tenant", "unknown tenant")
		return Tenant{}, false
	}
	return t, true
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeList[T any](w http.ResponseWriter, items []T) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": items, "next_cursor": nil})
}
