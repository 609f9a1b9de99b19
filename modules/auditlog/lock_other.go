//go:build !unix

package auditlog

import (
	"os"
	"sync"
)

var (
	keyringMu sync.Mutex
	outputsMu sync.Mutex
	outputs   = map[string]bool{}
)

// lockKeyring serialises keyring changes within this process only; on this
// platform run `audit forget` while the sidecar is stopped.
func lockKeyring(string) (unlock func(), err error) {
	keyringMu.Lock()
	return keyringMu.Unlock, nil
}

// lockOutput keeps two outputs of this process off one file. On this
// platform it does not see other processes: give each its own file.
func lockOutput(file string) (release func(), err error) {
	outputsMu.Lock()
	defer outputsMu.Unlock()
	if outputs[file] {
		return nil, &OutputInUseError{File: file, PID: os.Getpid()}
	}
	outputs[file] = true
	return func() {
		outputsMu.Lock()
		delete(outputs, file)
		outputsMu.Unlock()
	}, nil
}
