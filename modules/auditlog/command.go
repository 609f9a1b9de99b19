package auditlog

import (
	"errors"
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "verify|forget",
		Short: "Verifies the audit log's hash chain and erases a tenant's pseudonyms",
		Long: `
Commands for the audit_log handler's records.

  audit verify [--partial] [--per-instance] FILE...
      Checks that the files (oldest first; a shell glob such as
      audit*.jsonl* sorts rolled files before the current one) hold one
      unbroken hash chain. Exits 0 when intact, 1 naming the first record
      that was changed, removed, inserted or reordered. --per-instance
      checks a stream merged from several sidecars, one chain per instance.

  audit forget --tenant T --keyring PATH
      Crypto-shredding: destroys tenant T's pseudonym salt, after which the
      pseudonyms in its records can no longer be linked to anyone. The
      records stay, and the chain still verifies.
`,
		CobraFunc: func(cmd *cobra.Command) {
			verify := &cobra.Command{
				Use:   "verify [--partial] [--per-instance] FILE...",
				Short: "Checks the audit log's hash chain",
				Args:  cobra.MinimumNArgs(1),
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdVerify),
			}
			verify.Flags().Bool("partial", false, "accept a chain whose oldest records were rolled away")
			verify.Flags().Bool("per-instance", false, "verify a stream merged from several sidecars: one chain per instance")
			cmd.AddCommand(verify)

			forget := &cobra.Command{
				Use:   "forget --tenant T --keyring PATH",
				Short: "Destroys a tenant's pseudonym salt (crypto-shredding)",
				Args:  cobra.NoArgs,
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdForget),
			}
			forget.Flags().String("tenant", "", "the tenant to forget (required; \"\" for records without a tenant)")
			forget.Flags().String("keyring", "", "the audit keyring file")
			forget.Flags().String("log", "", "the audit log file, to use its default keyring (audit.jsonl -> audit.keyring.json)")
			cmd.AddCommand(forget)
		},
	})
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	res, err := Verify(fl.Args(), VerifyOptions{Partial: fl.Bool("partial"), PerInstance: fl.Bool("per-instance")})
	var bad *BadRecord
	if errors.As(err, &bad) {
		fmt.Fprintln(os.Stdout, "TAMPERED:", bad.Error())
		return 1, fmt.Errorf("audit chain broken at %s", bad.Error())
	}
	if err != nil {
		return 1, err
	}
	if res.Chains > 0 {
		fmt.Fprintf(os.Stdout, "OK: %d records in %d instance chains, all intact\n", res.Records, res.Chains)
		return 0, nil
	}
	fmt.Fprintf(os.Stdout, "OK: %d records, seq %d to %d, chain intact; head hash %s\n",
		res.Records, res.FirstSeq, res.LastSeq, res.LastHash)
	return 0, nil
}

func cmdForget(fl caddycmd.Flags) (int, error) {
	if !fl.Changed("tenant") {
		return 2, errors.New("--tenant is required")
	}
	tenant := fl.String("tenant")
	path := fl.String("keyring")
	if path == "" {
		if fl.String("log") == "" {
			return 2, errors.New("give --keyring PATH, or --log FILE to use the keyring next to the audit file")
		}
		path = keyringNextTo(fl.String("log"))
	}
	if _, err := os.Stat(path); err != nil {
		return 1, fmt.Errorf("audit keyring: %v", err)
	}
	if err := forgetTenant(path, tenant); err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stdout, "forgot tenant %q: its pseudonym salt was removed from %s\n", tenant, path)
	return 0, nil
}
