package auditlog

import (
	"fmt"
	"os"
	"path/filepath"
)

// outputLockPath is the lock file of an audit or checkpoint file and its
// rolled files: beside them, hidden, and matched neither by a glob for the
// log files (audit*.jsonl*) nor by the rolled-file pattern (audit-*.jsonl*).
func outputLockPath(file string) string {
	dir, base := filepath.Split(file)
	return filepath.Join(dir, "."+base+".lock")
}

// OutputInUseError reports an output file that another writer holds.
type OutputInUseError struct {
	File string
	// PID is the holder's process id as it wrote it in the lock file, 0
	// when unknown.
	PID int
}

func (e *OutputInUseError) Error() string {
	holder := "another process"
	switch {
	case e.PID == os.Getpid():
		holder = "this process (two outputs of the config name the same file)"
	case e.PID > 0:
		holder = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("%s is locked by %s (lock file %s): one file takes one writer, or its chain forks; give each sidecar its own file, or stop the other one first",
		e.File, holder, outputLockPath(e.File))
}
