package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Release is one audit record that lists a record id: who received it.
type Release struct {
	TS        string   `json:"ts"`
	RequestID string   `json:"request_id"`
	Client    string   `json:"client_id"`
	Subject   string   `json:"subject"`
	Scopes    []string `json:"scopes"`
	Connector string   `json:"connector"`
	Policy    string   `json:"policy"`
	Endpoint  string   `json:"endpoint,omitempty"`
	Decision  string   `json:"decision"`
	Reason    string   `json:"reason"`
	Status    int      `json:"status"`
}

// AccessResult answers a subject access request for one record.
type AccessResult struct {
	Tenant   string    `json:"tenant"`
	Record   string    `json:"record_pseudonym"`
	Releases []Release `json:"releases"`
	// Uncertain are records of the tenant in the period whose record_ids
	// were cut (bounded records): the record may be among the ids left out.
	Uncertain []Release `json:"uncertain,omitempty"`
	// Forgotten is set when the tenant was forgotten: nothing can be
	// linked to it any more, by design.
	Forgotten string `json:"forgotten,omitempty"`
}

// AccessQuery is what `audit access` asks.
type AccessQuery struct {
	Tenant, Record string
	Since, Until   time.Time // zero: open
	Keyring        string
	Secret         []byte // the audit_log pseudonym_key
}

// Access lists every audit record of q.Tenant that lists q.Record among its
// record_ids, oldest first, reading files line by line (each must be a
// sound record; the chain is `audit verify`'s job). The record id is
// turned into its pseudonym with the tenant's key from the keyring, read
// only: a forgotten tenant finds nothing.
func Access(files []string, q AccessQuery) (*AccessResult, error) {
	p := &pseudonymizer{secret: q.Secret, path: q.Keyring, readOnly: true, tenants: map[string]*tenantKey{}}
	res := &AccessResult{Tenant: q.Tenant, Releases: []Release{}}
	ps, err := p.RecordPseudonym(q.Tenant, q.Record)
	var forgotten *TenantForgottenError
	if errors.As(err, &forgotten) {
		if forgotten.At == "" {
			return nil, err
		}
		res.Forgotten = forgotten.At
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Record = ps
	err = eachRecord(files, func(rec *Record, _ position) error {
		if rec.Tenant != q.Tenant || rec.Stream == "start" || !inPeriod(rec.TS, q.Since, q.Until) {
			return nil
		}
		switch {
		case slices.Contains(rec.RecordIDs, ps):
			res.Releases = append(res.Releases, releaseOf(rec))
		case rec.Cut["record_ids"] > 0 || memberInt(rec, "record_ids_omitted") > 0:
			res.Uncertain = append(res.Uncertain, releaseOf(rec))
		}
		return nil
	})
	return res, err
}

func releaseOf(rec *Record) Release {
	return Release{TS: rec.TS, RequestID: rec.RequestID, Client: rec.ClientID, Subject: rec.Subject, Scopes: rec.Scopes,
		Connector: rec.Connector, Policy: rec.Policy, Endpoint: rec.Endpoint, Decision: rec.Decision, Reason: rec.Reason, Status: rec.Status}
}

// inPeriod reports whether ts lies in [since, until).
func inPeriod(ts string, since, until time.Time) bool {
	if since.IsZero() && until.IsZero() {
		return true
	}
	t := parseTS(ts)
	return (since.IsZero() || !t.Before(since)) && (until.IsZero() || t.Before(until))
}

// addPeriodFlags adds --since and --until, which parsePeriod reads.
func addPeriodFlags(c *cobra.Command) {
	c.Flags().String("since", "", "only records from this time (RFC 3339, a date, or a duration before now)")
	c.Flags().String("until", "", "only records before this time")
}

// parsePeriod reads --since and --until (see parseWhen); zero when not given.
func parsePeriod(fl caddycmd.Flags) (since, until time.Time, err error) {
	now := time.Now()
	if since, err = parseWhen("since", fl.String("since"), now); err != nil {
		return
	}
	until, err = parseWhen("until", fl.String("until"), now)
	return
}

// parseWhen reads --since and --until: an RFC 3339 time, a date (midnight
// UTC), or a duration meaning that long before now.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q is not a time (2026-11-28T09:00:00Z), a date (2026-11-28) or a duration before now (720h)", flag, s)
}

func addAccessCommand(cmd *cobra.Command) {
	access := &cobra.Command{
		Use:   "access --tenant T --record ID [--since T] [--until T] [--format table|json] FILE...",
		Short: "Lists every release of one record (GDPR Art. 15(1)(c): recipients)",
		Long: `
Lists every audit record of tenant T whose record_ids hold the pseudonym
of record ID: when, to which client (pseudonym), for which subject
(pseudonym), with which scopes, under which policy, and the decision.

The pseudonym is computed with the tenant's key: the keyring (--keyring, or
the one next to the last FILE) and the audit_log pseudonym_key, read from
the environment variable --key-env names (default AUDIT_KEY), never from a
flag. After ` + "`audit forget --tenant T`" + ` the key is gone and nothing is found.
`,
		Args: cobra.MinimumNArgs(1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdAccess),
	}
	access.Flags().String("tenant", "", "the tenant (required; \"\" for records without a tenant)")
	access.Flags().String("record", "", "the record's id at the connector (required)")
	addPeriodFlags(access)
	access.Flags().String("keyring", "", "the audit keyring (default: next to the last FILE)")
	access.Flags().String("key-env", "AUDIT_KEY", "the environment variable holding audit_log's pseudonym_key")
	access.Flags().String("format", "table", "table or json")
	cmd.AddCommand(access)
}

func cmdAccess(fl caddycmd.Flags) (int, error) {
	if !fl.Changed("tenant") || fl.String("record") == "" {
		return 2, errors.New("--tenant and --record are required")
	}
	files := fl.Args()
	q := AccessQuery{Tenant: fl.String("tenant"), Record: fl.String("record"), Keyring: fl.String("keyring")}
	if q.Keyring == "" {
		q.Keyring = keyringNextTo(strings.TrimSuffix(strings.TrimSuffix(files[len(files)-1], ".gz"), ".zst"))
	}
	if _, err := os.Stat(q.Keyring); err != nil {
		return 1, fmt.Errorf("audit keyring: %v (name it with --keyring)", err)
	}
	q.Secret = []byte(os.Getenv(fl.String("key-env")))
	if len(q.Secret) < 16 {
		return 2, fmt.Errorf("the environment variable %s does not hold audit_log's pseudonym_key (at least 16 bytes)", fl.String("key-env"))
	}
	var err error
	if q.Since, q.Until, err = parsePeriod(fl); err != nil {
		return 2, err
	}
	res, err := Access(files, q)
	if err != nil {
		var bad *BadRecord
		if errors.As(err, &bad) {
			return 1, fmt.Errorf("%v (run `privacy-sidecar audit verify`; the query reads only sound records)", err)
		}
		return 1, err
	}
	switch fl.String("format") {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return 0, enc.Encode(res)
	case "table":
		writeAccessTable(os.Stdout, res)
		return 0, nil
	}
	return 2, fmt.Errorf("--format %q: use table or json", fl.String("format"))
}

func writeAccessTable(w io.Writer, res *AccessResult) {
	if res.Forgotten != "" {
		fmt.Fprintf(w, "tenant %q was forgotten on %s: no record can be linked to it any more.\n", res.Tenant, res.Forgotten)
		return
	}
	fmt.Fprintf(w, "%d releases of the record (pseudonym %s) of tenant %q\n", len(res.Releases), res.Record, res.Tenant)
	table := func(rs []Release) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tCLIENT\tSUBJECT\tSCOPES\tCONNECTOR\tPOLICY\tENDPOINT\tDECISION\tSTATUS\tREQUEST")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.TS, r.Client, r.Subject, strings.Join(r.Scopes, " "),
				r.Connector, r.Policy, r.Endpoint, r.Decision, r.Status, r.RequestID)
		}
		tw.Flush()
	}
	if len(res.Releases) > 0 {
		table(res.Releases)
	}
	if len(res.Uncertain) > 0 {
		fmt.Fprintf(w, "\n%d more answers of the tenant listed too many records for their audit record; the record may be among those left out:\n", len(res.Uncertain))
		table(res.Uncertain)
	}
}
