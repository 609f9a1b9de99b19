package auditlog

import "github.com/spf13/cobra"

func addAccessCommand(cmd *cobra.Command) {}
