//go:build unix

package auditlog

import (
	"fmt"
	"os"
	"syscall"
)

// lockKeyring takes an exclusive advisory lock beside the keyring, shared
// by every sidecar process and by `privacy-sidecar audit forget`.
func lockKeyring(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the audit keyring: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the audit keyring: %v", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
