package auditlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// decodeRecord parses one audit line strictly: unknown fields are refused,
// because a verifier that ignored them would let anyone append unhashed data.
// It does not check that the line is canonical: readRecord does.
func decodeRecord(line []byte) (*Record, error) {
	rec := new(Record)
	if err := decodeStrict(line, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown members and
// trailing data.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the value")
	}
	return nil
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
		rec, bad := readRecord(line, nil)
		if bad != nil {
			return nil, fmt.Errorf("the last line of %s is not a sound audit record (%s): the file may have been altered; run `privacy-sidecar audit verify` on it, then move the file aside to start a new chain", files[i], bad.problem)
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
	// the last line, newline included, is at most MaxRecordBytes; one
	// byte more shows the newline before it
	readFrom := max(size-MaxRecordBytes-1, 0)
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
		return nil, fmt.Errorf("the last line is longer than a record may be (%d bytes)", MaxRecordBytes)
	}
	return buf[i+1:], nil
}

func isCompressed(path string) bool {
	return strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".zst")
}

// eachLine calls fn with every line of a plain, gzip or zstd file, numbered
// from 1, without the newline. A final line without a newline is passed too.
// A line longer than a record may be is passed cut to MaxRecordBytes bytes,
// which readRecord refuses: memory stays bounded whatever the file holds.
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
	br := bufio.NewReaderSize(r, MaxRecordBytes+1)
	var long []byte
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// over-long: pass its start (copied: the next read reuses the
			// buffer), skip the rest of it
			long = append(long[:0], line[:MaxRecordBytes]...)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return err
			}
			if ferr := fn(n, long); ferr != nil {
				return ferr
			}
			if err == io.EOF {
				return nil
			}
			continue
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		} else if err == io.EOF && len(line) == 0 {
			return nil
		}
		if ferr := fn(n, line); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var recordType = reflect.TypeFor[Record]()

// lineProblem is why a line is not a sound record; seq is 0 when the line
// could not be read as one.
type lineProblem struct {
	seq     uint64
	problem string
}

// readRecord checks that line (without its newline) is a record as the
// writer writes it, byte for byte, and returns it: no longer than
// MaxRecordBytes, the canonical encoding of its own content (so a
// duplicate, case-varied, unknown or reordered member, or whitespace, is
// refused with what is wrong), and ending in the SHA-256 of exactly the
// bytes before its hash member. scratch, if not nil, is reused.
func readRecord(line []byte, scratch *[]byte) (*Record, *lineProblem) {
	if len(line)+1 > MaxRecordBytes {
		return nil, &lineProblem{problem: fmt.Sprintf("the line is longer than a record may be (%d bytes with its newline); the writer never writes one", MaxRecordBytes)}
	}
	before, hash, hashOK := splitHash(line)
	rec, err := decodeRecord(line)
	if err != nil || !hashOK {
		problem := diagnose(line, recordType)
		switch {
		case problem != "":
		case err != nil:
			problem = "not an audit record: " + err.Error()
		default:
			problem = `the line does not end with its hash member ("hash" and 64 lowercase hex digits)`
		}
		var seq uint64
		if rec != nil {
			seq = rec.Seq
		}
		return nil, &lineProblem{seq: seq, problem: problem}
	}
	var buf []byte
	if scratch != nil {
		buf = (*scratch)[:0]
	}
	body := appendCanonicalBody(buf, rec)
	if scratch != nil {
		*scratch = body
	}
	if !bytes.Equal(body[:len(body)-1], before) {
		problem := diagnose(line, recordType)
		if problem == "" {
			problem = fmt.Sprintf("not the canonical encoding of its record (first difference at byte %d)", firstDifference(body[:len(body)-1], before)+1)
		}
		return nil, &lineProblem{seq: rec.Seq, problem: problem}
	}
	sum := sha256.Sum256(body)
	var want [64]byte
	hex.Encode(want[:], sum[:])
	if !bytes.Equal(want[:], hash) {
		return nil, &lineProblem{seq: rec.Seq, problem: "hash does not match the record's bytes: the record was changed"}
	}
	return rec, nil
}
