package auditlog

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "verify|forget|keygen|access|report",
		Short: "Verifies, queries and erases the audit log",
		Long: `
Commands for the audit_log handler's records.

  audit verify [--partial] [--per-instance] [--checkpoints FILE --public-key KEY] FILE...
      Checks that the files (oldest first; a shell glob such as
      audit*.jsonl* sorts rolled files before the current one) hold one
      unbroken hash chain, each line byte for byte as the writer writes it.
      Exits 0 when intact, 1 naming the first line that was changed,
      removed, inserted or reordered. --per-instance checks a stream merged
      from several sidecars, one chain per instance. With --checkpoints and
      --public-key it also fails on a cut tail, a rewritten chain or a
      removed or forged checkpoint, and accepts a chain whose beginning was
      rolled away when the checkpoints anchor the rest.

  audit keygen [--out NAME]
      Makes an Ed25519 key pair for checkpoint_key: the private key goes to
      NAME (mode 0600) and the public key to NAME.pub, or both to stdout.

  audit forget --tenant T --keyring PATH
      Crypto-shredding: destroys tenant T's pseudonym salt, after which the
      pseudonyms in its records can no longer be linked to anyone. The
      records stay, and the chain still verifies.

  audit access --tenant T --record ID [--since T] [--until T] FILE...
      Lists every release of one record of tenant T (GDPR Art. 15(1)(c)):
      time, client, subject pseudonym, scopes, policy, decision.

  audit report [--since T] [--until T] [--format md|json] [--policies DIR] FILE...
      Records of processing (GDPR Art. 30) from observed traffic, per
      tenant, connector, client and scope.
`,
		CobraFunc: func(cmd *cobra.Command) {
			verify := &cobra.Command{
				Use:   "verify [--partial] [--per-instance] [--checkpoints FILE --public-key KEY] FILE...",
				Short: "Checks the audit log's hash chain, and its checkpoints",
				Args:  cobra.MinimumNArgs(1),
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdVerify),
			}
			verify.Flags().Bool("partial", false, "accept a chain (and checkpoints) whose oldest part was rolled away, without checkpoints to anchor it")
			verify.Flags().Bool("per-instance", false, "verify a stream merged from several sidecars: one chain per instance")
			verify.Flags().StringArray("checkpoints", nil, "a checkpoint file, oldest first (repeat for rolled files)")
			verify.Flags().StringArray("public-key", nil, "the checkpoint public key, or a file holding it (repeat during a key rotation)")
			verify.Flags().String("log", "", "the log whose checkpoints to use, when the checkpoint files hold several")
			cmd.AddCommand(verify)

			keygen := &cobra.Command{
				Use:   "keygen [--out NAME]",
				Short: "Makes an Ed25519 key pair for signing checkpoints",
				Args:  cobra.NoArgs,
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdKeygen),
			}
			keygen.Flags().String("out", "", "write the private key to NAME (mode 0600) and the public key to NAME.pub instead of stdout")
			cmd.AddCommand(keygen)

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

			addAccessCommand(cmd)
			addReportCommand(cmd)
		},
	})
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	opts := VerifyOptions{Partial: fl.Bool("partial"), PerInstance: fl.Bool("per-instance"), Log: fl.String("log")}
	opts.Checkpoints, _ = fl.GetStringArray("checkpoints")
	keys, _ := fl.GetStringArray("public-key")
	for _, k := range keys {
		pub, err := parsePublicKey(k)
		if err != nil {
			return 2, err
		}
		opts.PublicKeys = append(opts.PublicKeys, pub)
	}
	if len(opts.PublicKeys) > 0 && len(opts.Checkpoints) == 0 {
		return 2, errors.New("--public-key without --checkpoints: name the checkpoint file(s) to verify")
	}
	res, err := Verify(fl.Args(), opts)
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
	} else {
		fmt.Fprintf(os.Stdout, "OK: %d records, seq %d to %d, chain intact; head hash %s\n",
			res.Records, res.FirstSeq, res.LastSeq, res.LastHash)
	}
	if len(opts.Checkpoints) > 0 {
		switch {
		case res.AnchoredSeq > 0:
			fmt.Fprintf(os.Stdout, "checkpoints: %d signed checkpoints agree; records up to seq %d are anchored, %d after it are not yet\n",
				res.Checkpoints, res.AnchoredSeq, res.Unanchored)
		default:
			fmt.Fprintf(os.Stdout, "checkpoints: %d signed checkpoints agree; none anchors a record of these files yet\n", res.Checkpoints)
		}
		if cp := res.RolledAway; cp != nil {
			fmt.Fprintf(os.Stdout, "rolled away: the records before seq %d are gone; the last checkpoint before the cut is seq %d, signed %s\n",
				res.FirstSeq, cp.Seq, cp.TS)
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(os.Stdout, "WARNING:", w)
	}
	return 0, nil
}

func cmdKeygen(fl caddycmd.Flags) (int, error) {
	private, public, err := generateCheckpointKey()
	if err != nil {
		return 1, err
	}
	out := fl.String("out")
	if out == "" {
		fmt.Fprintln(os.Stdout, private)
		fmt.Fprintln(os.Stdout, public)
		return 0, nil
	}
	// O_EXCL: never overwrite a key that may be signing checkpoints
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 1, fmt.Errorf("writing the private key: %v", err)
	}
	if _, err := fmt.Fprintln(f, private); err != nil {
		f.Close()
		return 1, err
	}
	if err := f.Close(); err != nil {
		return 1, err
	}
	if err := os.WriteFile(out+".pub", []byte(public+"\n"), 0o644); err != nil {
		return 1, fmt.Errorf("writing the public key: %v", err)
	}
	pub, _ := parsePublicKey(public)
	fmt.Fprintf(os.Stdout, "private key: %s (give it to the sidecar as checkpoint_key, e.g. AUDIT_CHECKPOINT_KEY=\"$(cat %s)\")\npublic key:  %s.pub (give it to auditors: audit verify --public-key %s.pub); key id %s\n",
		out, out, out, out, keyID(ed25519.PublicKey(pub)))
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
