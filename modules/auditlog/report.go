package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/alysio/privacy-sidecar/modules/scopetrim"
)

// ProcessingRow is one row of the records of processing: what one client
// did through one scope at one tenant's connector, as the audit log saw it.
type ProcessingRow struct {
	Tenant    string `json:"tenant"`
	Connector string `json:"connector"`
	Client    string `json:"client_id"`
	Scope     string `json:"scope"`
	// From the policy's "scopes" metadata, when --policies is given.
	Description string   `json:"description,omitempty"`
	Purpose     string   `json:"purpose,omitempty"`
	Categories  []string `json:"categories,omitempty"`

	Requests  int            `json:"requests"`
	Allowed   int            `json:"allowed"`
	Refused   int            `json:"refused"`
	RefusedBy map[string]int `json:"refused_by,omitempty"`
	// FieldsReleased are the policy's field paths the scope let through on
	// the endpoints allowed requests used (--policies only).
	FieldsReleased []string `json:"fields_released,omitempty"`
	// ValuesWithheld counts the values withheld (fields_removed), and
	// WithheldPaths names them as patterns.
	ValuesWithheld  int      `json:"values_withheld"`
	WithheldPaths   []string `json:"withheld_paths,omitempty"`
	RecordsReleased int      `json:"records_released"`
	RecordsWithheld int      `json:"records_withheld"`
	BytesOut        int64    `json:"bytes_out"`
	// FirstAccess and LastAccess are the first and last allowed requests.
	FirstAccess string `json:"first_access,omitempty"`
	LastAccess  string `json:"last_access,omitempty"`

	policy string // of the newest allowed request, for the metadata join
}

// ProcessingReport is the records of processing (GDPR Art. 30) drawn from
// observed traffic.
type ProcessingReport struct {
	Since    string   `json:"since,omitempty"`
	Until    string   `json:"until,omitempty"`
	Files    []string `json:"files"`
	Records  int      `json:"audit_records"`
	Requests int      `json:"requests"`
	// Policies are the policies joined (--policies).
	Policies []string         `json:"policies,omitempty"`
	Rows     []*ProcessingRow `json:"rows"`
}

// ReportOptions adjust Report.
type ReportOptions struct {
	Since, Until time.Time
	// Catalog joins scope metadata and released fields from the policies.
	Catalog *scopetrim.Catalog
}

// Report summarises the audit records of files (each line must be a sound
// record) per tenant, connector, client and scope. A request counts in the
// row of every scope its token carried (with a catalog: every scope the
// endpoint names), so rows of one tenant can add up to more requests than
// were made. An NDJSON stream counts once, by its closing record (or its
// opening one when it has none: the sidecar stopped mid-stream). Records of
// connection events (an "event" member) are not requests: left out.
func Report(files []string, opts ReportOptions) (*ProcessingReport, error) {
	rep := &ProcessingReport{Files: files, Rows: []*ProcessingRow{}}
	if !opts.Since.IsZero() {
		rep.Since = opts.Since.UTC().Format(time.RFC3339)
	}
	if !opts.Until.IsZero() {
		rep.Until = opts.Until.UTC().Format(time.RFC3339)
	}
	if opts.Catalog != nil {
		for name := range opts.Catalog.Policies {
			rep.Policies = append(rep.Policies, name)
		}
		sort.Strings(rep.Policies)
	}
	rows := map[[4]string]*ProcessingRow{}
	open := map[string]*Record{} // streams without their closing record yet
	add := func(rec *Record) {
		rep.Requests++
		for _, scope := range reportScopes(rec, opts.Catalog) {
			key := [4]string{rec.Tenant, rec.Connector, rec.ClientID, scope}
			row := rows[key]
			if row == nil {
				row = &ProcessingRow{Tenant: rec.Tenant, Connector: rec.Connector, Client: rec.ClientID, Scope: scope}
				rows[key] = row
			}
			row.add(rec, opts.Catalog)
		}
	}
	err := eachRecord(files, func(rec *Record, _ position) error {
		rep.Records++
		if !inPeriod(rec.TS, opts.Since, opts.Until) || memberString(rec, "event") != "" {
			return nil // connection events (connect, refresh...) are no requests
		}
		switch {
		case rec.Stream == "start":
			open[rec.RequestID] = rec
		case rec.Stream != "":
			delete(open, rec.RequestID)
			add(rec)
		default:
			add(rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, rec := range open {
		add(rec)
	}
	for _, row := range rows {
		if opts.Catalog != nil {
			if p := opts.Catalog.Policies[row.policy]; p != nil {
				info := p.Scopes[row.Scope]
				row.Description, row.Purpose, row.Categories = info.Description, info.Purpose, info.Categories
			}
		}
		sort.Strings(row.FieldsReleased)
		sort.Strings(row.WithheldPaths)
		rep.Rows = append(rep.Rows, row)
	}
	sort.Slice(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		return strings.Join([]string{a.Tenant, a.Connector, a.Scope, a.Client}, "\x00") <
			strings.Join([]string{b.Tenant, b.Connector, b.Scope, b.Client}, "\x00")
	})
	return rep, nil
}

// reportScopes are the rows a record counts in: its token's scopes, or with
// a catalog that knows its policy and endpoint, those the endpoint names.
func reportScopes(rec *Record, c *scopetrim.Catalog) []string {
	scopes := rec.Scopes
	if c != nil {
		if p := c.Policies[rec.Policy]; p != nil {
			if named, ok := p.Fields[rec.Endpoint]; ok {
				scopes = slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { _, ok := named[s]; return !ok })
			}
		}
	}
	if len(scopes) == 0 {
		return []string{""}
	}
	return scopes
}

func (row *ProcessingRow) add(rec *Record, c *scopetrim.Catalog) {
	row.Requests++
	row.BytesOut += rec.BytesOut
	row.ValuesWithheld += rec.FieldsRemoved
	for _, p := range rec.Withheld {
		if !slices.Contains(row.WithheldPaths, p) {
			row.WithheldPaths = append(row.WithheldPaths, p)
		}
	}
	released := memberInt(rec, "records_released")
	if released == 0 {
		released = rec.StreamRecords
	}
	row.RecordsReleased += released
	row.RecordsWithheld += memberInt(rec, "records_withheld")
	if rec.Policy != "" {
		row.policy = rec.Policy
	}
	if rec.Decision != "allow" {
		row.Refused++
		if row.RefusedBy == nil {
			row.RefusedBy = map[string]int{}
		}
		row.RefusedBy[rec.Reason]++
		return
	}
	row.Allowed++
	if row.FirstAccess == "" || parseTS(rec.TS).Before(parseTS(row.FirstAccess)) {
		row.FirstAccess = rec.TS
	}
	if row.LastAccess == "" || parseTS(rec.TS).After(parseTS(row.LastAccess)) {
		row.LastAccess = rec.TS
	}
	if c == nil {
		return
	}
	if p := c.Policies[rec.Policy]; p != nil {
		for _, f := range p.Fields[rec.Endpoint][row.Scope] {
			if !slices.Contains(row.FieldsReleased, f) {
				row.FieldsReleased = append(row.FieldsReleased, f)
			}
		}
	}
}

func addReportCommand(cmd *cobra.Command) {
	report := &cobra.Command{
		Use:   "report [--since T] [--until T] [--format md|json] [--policies PATH] FILE...",
		Short: "Records of processing (GDPR Art. 30) from observed traffic",
		Long: `
Summarises the audit records per tenant, connector, client and scope:
requests allowed and refused (by reason), fields released (with
--policies: the policy's fields for the scope on the endpoints used) and
values withheld, records released and withheld, bytes, first and last
access. With --policies, each scope row also carries the description,
purpose and categories of the policy's "scopes" metadata.

Clients and subjects appear as the log has them: pseudonyms.
`,
		Args: cobra.MinimumNArgs(1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdReport),
	}
	addPeriodFlags(report)
	report.Flags().String("format", "md", "md or json")
	report.Flags().String("policies", "", "a policy file or directory, to join scope metadata and released fields")
	cmd.AddCommand(report)
}

func cmdReport(fl caddycmd.Flags) (int, error) {
	var opts ReportOptions
	var err error
	if opts.Since, opts.Until, err = parsePeriod(fl); err != nil {
		return 2, err
	}
	format := fl.String("format")
	if format != "md" && format != "json" {
		return 2, fmt.Errorf("--format %q: use md or json", format)
	}
	if p := fl.String("policies"); p != "" {
		if opts.Catalog, err = scopetrim.LoadCatalog(p); err != nil {
			return 1, err
		}
	}
	rep, err := Report(fl.Args(), opts)
	if err != nil {
		var bad *BadRecord
		if errors.As(err, &bad) {
			return 1, fmt.Errorf("%v (run `privacy-sidecar audit verify`; the report reads only sound records)", err)
		}
		return 1, err
	}
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(rep)
	}
	writeReportMarkdown(os.Stdout, rep)
	return 0, nil
}

func writeReportMarkdown(w io.Writer, rep *ProcessingReport) {
	fmt.Fprintln(w, "# Records of processing")
	fmt.Fprintln(w)
	period := "all records"
	switch {
	case rep.Since != "" && rep.Until != "":
		period = "from " + rep.Since + " until " + rep.Until
	case rep.Since != "":
		period = "from " + rep.Since
	case rep.Until != "":
		period = "until " + rep.Until
	}
	fmt.Fprintf(w, "Observed traffic, %s: %d requests in %d audit records of %s.", period, rep.Requests, rep.Records, strings.Join(rep.Files, ", "))
	if len(rep.Policies) > 0 {
		fmt.Fprintf(w, " Policies joined: %s.", strings.Join(rep.Policies, ", "))
	}
	fmt.Fprintln(w, " Clients are pseudonyms. A request counts in the row of each scope it carried.")
	tenant := "\x00"
	for _, r := range rep.Rows {
		if r.Tenant != tenant {
			tenant = r.Tenant
			fmt.Fprintf(w, "\n## Tenant %s\n\n", mdCell(orNone(tenant)))
			fmt.Fprintln(w, "| Connector | Scope | Purpose | Categories | Client | Requests | Allowed | Refused | Refused by reason | Fields released | Values withheld | Withheld paths | Records released | Records withheld | First access | Last access |")
			fmt.Fprintln(w, "|---|---|---|---|---|--:|--:|--:|---|---|--:|---|--:|--:|---|---|")
		}
		var reasons []string
		for reason, n := range r.RefusedBy {
			reasons = append(reasons, fmt.Sprintf("%s %d", reason, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %d | %d | %s | %s | %d | %s | %d | %d | %s | %s |\n",
			mdCell(orNone(r.Connector)), mdCell(orNone(r.Scope)), mdCell(r.Purpose), mdCell(strings.Join(r.Categories, ", ")), mdCell(orNone(r.Client)),
			r.Requests, r.Allowed, r.Refused, mdCell(strings.Join(reasons, ", ")), mdCell(strings.Join(r.FieldsReleased, ", ")),
			r.ValuesWithheld, mdCell(strings.Join(r.WithheldPaths, ", ")), r.RecordsReleased, r.RecordsWithheld, r.FirstAccess, r.LastAccess)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// mdCell keeps a value from breaking its table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}
