package auditlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxRecordLine bounds one audit line when reading files back.
const maxRecordLine = 1 << 20

// decodeRecord parses one audit line strictly: unknown fields are refused,
// because a verifier that ignored them would let anyone append unhashed data.
func decodeRecord(line []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	rec := new(Record)
	if err := dec.Decode(rec); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the record")
	}
	return rec, nil
}

// lastRecordOf returns the newest record of the audit log at filename, so a
// restarted sidecar continues the chain. When the current file is missing or
// empty (it was just rolled), the newest rolled file is read instead. It
// returns nil when there is no record anywhere: a new chain starts.
//
// A last line that is not a sound record is an error: continuing after it
// would hide tampering or a torn write, so the operator must look first.
func lastRecordOf(filename string) (*Record, error) {
	files := []string{filename}
	if fi, err := os.Stat(filename); err != nil || fi.Size() == 0 {
		if err == nil && !fi.Mode().IsRegular() {
			return nil, nil // a device or pipe: nothing to continue from
		}
		files = rolledFiles(filename)
	} else if !fi.Mode().IsRegular() {
		return nil, nil
	}
	for i := len(files) - 1; i >= 0; i-- {
		line, err := lastLine(files[i])
		if err != nil {
			return nil, fmt.Errorf("reading the last audit record of %s to continue its chain: %v", files[i], err)
		}
		if line == nil {
			continue
		}
		rec, err := decodeRecord(line)
		if err != nil {
			return nil, fmt.Errorf("the last line of %s is not an audit record (%v): run `privacy-sidecar audit verify` on it, then move the file aside to start a new chain", files[i], err)
		}
		if recordHash(rec) != rec.Hash {
			return nil, fmt.Errorf("the last record of %s (seq %d) fails its hash check: the file may have been altered; run `privacy-sidecar audit verify` on it, then move the file aside to start a new chain", files[i], rec.Seq)
		}
		return rec, nil
	}
	return nil, nil
}

// rolledFiles lists the rolled (backup) files of an audit log, oldest first,
// as Caddy's file writer names them: <name>-<timestamp>-<reason><ext>[.gz|.zst].
func rolledFiles(filename string) []string {
	dir, base := filepath.Split(filename)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext)
	matches, _ := filepath.Glob(filepath.Join(dir, globEscape(prefix)+"-*"+globEscape(ext)+"*"))
	sort.Strings(matches) // the timestamp sorts chronologically
	// While a rolled file is being compressed both it and the partial
	// archive exist: use the original.
	have := make(map[string]bool, len(matches))
	for _, m := range matches {
		have[m] = true
	}
	out := matches[:0]
	for _, m := range matches {
		if isCompressed(m) && have[strings.TrimSuffix(strings.TrimSuffix(m, ".gz"), ".zst")] {
			continue
		}
		out = append(out, m)
	}
	return out
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lastLine returns the last complete line of a (possibly compressed) file,
// or nil if it has none. Plain files are read from the end.
func lastLine(path string) ([]byte, error) {
	if isCompressed(path) {
		var last []byte
		err := eachLine(path, func(_ int, line []byte) error {
			last = append(last[:0], line...)
			return nil
		})
		return last, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	readFrom := max(size-maxRecordLine, 0)
	buf := make([]byte, size-readFrom)
	if _, err := f.ReadAt(buf, readFrom); err != nil && err != io.EOF {
		return nil, err
	}
	if buf[len(buf)-1] != '\n' {
		return nil, errors.New("the file does not end with a complete line (torn write?)")
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && readFrom > 0 {
		return nil, errors.New("the last line is longer than 1 MiB")
	}
	return buf[i+1:], nil
}

func isCompressed(path string) bool {
	return strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".zst")
}

// eachLine calls fn with every line of a plain, gzip or zstd file, numbered
// from 1, without the newline. A final line without a newline is passed too.
func eachLine(path string, fn func(n int, line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".gz"):
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxRecordLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}
