//go:build !unix

package auditlog

import "sync"

var keyringMu sync.Mutex

// lockKeyring serialises keyring changes within this process only; on this
// platform run `audit forget` while the sidecar is stopped.
func lockKeyring(string) (unlock func(), err error) {
	keyringMu.Lock()
	return keyringMu.Unlock, nil
}
