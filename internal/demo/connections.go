package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/alysio/privacy-sidecar/internal/devidp"
)

// The demo's connected CRM authenticates the sidecar with OAuth: each
// tenant authorised the platform once (a refresh token), and the sidecar
// sends the CRM that tenant's own access token, never the caller's.

// connectRequests is how many requests disconnectTour sends through the
// sidecar (each has an audit record).
const connectRequests = 2

// connectTour connects acme's and globex's CRM through the admin API.
func connectTour(out *printer, w *world) bool {
	out.heading("Connect: acme and globex authorise the platform at their CRM")
	out.line("each tenant's administrator consented at the CRM's authorization server (%s);", w.oauth.URL)
	out.line("the platform stores the refresh token through the sidecar's admin API, on localhost only:")
	ok := true
	for _, tenant := range []string{"acme", "globex"} {
		rt := w.oauth.Authorize(tenant)
		status, body := w.admin(http.MethodPut, "/sidecar/connections/"+tenant+"/crm", `{"refresh_token":"`+rt+`"}`)
		out.line(`PUT /sidecar/connections/%s/crm  {"refresh_token": "<the tenant's refresh token>"}`, tenant)
		out.line("-> %d", status)
		out.body(body)
		switch {
		case status != http.StatusOK || !strings.Contains(string(body), `"state":"connected"`):
			out.fail("expected the connection to be connected")
			ok = false
		case strings.Contains(string(body), rt):
			out.fail("the admin API echoed the refresh token")
			ok = false
		}
	}
	if ok {
		out.pass("connected; stored encrypted in the sidecar's storage, never echoed")
	}
	return ok
}

// disconnectTour has globex use, then disconnect, its integration.
func disconnectTour(out *printer, w *world, first int) bool {
	token := w.issuer.MustMint(w.issuer.AccessClaims("rep-40", "connector-api", devidp.Claims{"tenant_id": "globex", "scope": "contacts:read", "crm_user_id": "u_90"}))
	globex := map[string]string{"X-Tenant-ID": "globex"}
	ok := runScenario(out, w, first, scenario{
		title: "A globex sales rep reads its contacts through the connected CRM",
		path:  "/v1/contacts", token: token, headers: globex, status: 200, shows: []string{"Hank Scorpio"},
	})
	if tenant := w.oauth.LastTenant(); tenant != "globex" {
		out.fail("the CRM did not receive globex's own access token")
		ok = false
	} else {
		out.pass("the CRM received globex's own access token, issued by its authorization server; the caller's JWT never reached it")
	}

	out.heading(fmt.Sprintf("%d. globex disconnects its CRM integration", first+1))
	status, body := w.admin(http.MethodDelete, "/sidecar/connections/globex/crm", "")
	out.line("DELETE /sidecar/connections/globex/crm")
	out.line("-> %d (the receipt)", status)
	out.body(body)
	var receipt struct {
		Revoked          []string `json:"revoked"`
		RevocationErrors []string `json:"revocation_errors"`
		Deleted          bool     `json:"deleted"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &receipt) != nil || !receipt.Deleted ||
		!slices.Contains(receipt.Revoked, "refresh_token") || !slices.Contains(receipt.Revoked, "access_token") {
		out.fail("expected a receipt with the refresh and access tokens revoked and the credential deleted")
		ok = false
	} else {
		out.pass("disconnected: refresh_token and access_token revoked at the CRM's authorization server, credential deleted")
	}

	ok = runScenario(out, w, first+2, scenario{
		title: "The same globex request after the disconnect",
		path:  "/v1/contacts", token: token, headers: globex, status: 403, reason: "connector_disconnected",
		hides: []string{"Hank Scorpio"},
	}) && ok

	status, body = w.admin(http.MethodGet, "/sidecar/connections/globex", "")
	out.line("GET /sidecar/connections/globex")
	out.line("-> %d", status)
	out.body(body)
	if !strings.Contains(string(body), `"state":"disconnected"`) {
		out.fail("expected globex's crm connection to be disconnected")
		ok = false
	}
	return ok
}

// admin calls the sidecar's admin API.
func (w *world) admin(method, path, body string) (int, []byte) {
	req, err := http.NewRequest(method, "http://"+w.adminAddr+path, strings.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// eventFields keeps the fields of an event record that say what happened.
func eventFields(line []byte) []byte {
	var rec map[string]any
	if json.Unmarshal(line, &rec) != nil {
		return line
	}
	out := map[string]any{}
	for _, k := range []string{"ts", "event", "tenant", "connector", "disconnected_at", "revoked", "revocation_errors", "deleted", "seq", "hash"} {
		if v, ok := rec[k]; ok {
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return line
	}
	return b
}
