package auditlog

import "github.com/spf13/cobra"

func addReportCommand(cmd *cobra.Command) {}
