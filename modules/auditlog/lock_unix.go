//go:build unix

package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// lockOutput takes the exclusive lock of an output file and its roll set,
// without waiting: a second process on the same file is refused at once,
// with the holder's pid, which the holder writes into the lock file. The
// lock is flock(2): it belongs to the open file, so the kernel releases it
// when the holder exits, however it exits, and a second open in the same
// process conflicts too.
func lockOutput(file string) (release func(), err error) {
	path := outputLockPath(file)
	// Caddy's file writer creates a missing directory when it opens the
	// file (0700, filewriter.go OpenWriter); the lock comes first.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %v", file, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the lock file of %s: %v", file, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			buf := make([]byte, 32)
			n, _ := f.ReadAt(buf, 0)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
			return nil, &OutputInUseError{File: file, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %v", file, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
