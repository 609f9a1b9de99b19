package sidecar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FilesDigest is the SHA-256 of files (each one's base name, length and
// bytes, in the order given), hex-encoded. The Caddyfile adapters of
// tenant_guard and scope_trim write it into the config beside the path of
// the files they load, so that editing one of those files changes the
// config and `caddy reload` applies it: Caddy skips a reload whose config is
// byte-for-byte unchanged. The files are streamed, never held in memory.
func FilesDigest(files []string) (string, error) {
	h := sha256.New()
	for _, name := range files {
		if err := digestFile(h, name); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestFile(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\x00%d\x00", filepath.Base(name), info.Size())
	_, err = io.Copy(w, f)
	return err
}
