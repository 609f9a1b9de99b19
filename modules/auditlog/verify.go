package auditlog

import (
	"errors"
	"fmt"
	"strings"
)

// VerifyOptions adjust Verify.
type VerifyOptions struct {
	// Partial accepts a chain that starts after seq 1, because its oldest
	// files were rolled away (roll_keep, roll_keep_for). Without it a missing
	// beginning is an error: deleting the oldest records is tampering too.
	Partial bool
	// PerInstance verifies a stream that merges several sidecars (a shared
	// network sink): each `instance` must form its own chain, from seq 1 or
	// continuing another instance's chain (a restart that resumed a file).
	// It cannot tell a genuine new instance from a fabricated one: anchor
	// chain heads externally where that matters.
	PerInstance bool
}

// VerifyResult summarises an intact chain.
type VerifyResult struct {
	Records  int
	FirstSeq uint64
	LastSeq  uint64
	// LastHash is the chain head; keep it somewhere else to detect later
	// truncation or a rewritten tail.
	LastHash string
	// Chains is the number of instance chains (PerInstance only).
	Chains int
}

// BadRecord names the first record that breaks the chain.
type BadRecord struct {
	File    string
	Line    int
	Seq     uint64 // 0 when the line could not be parsed
	Problem string
}

func (b *BadRecord) Error() string {
	if b.Seq == 0 {
		return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Problem)
	}
	return fmt.Sprintf("%s:%d: record seq %d: %s", b.File, b.Line, b.Seq, b.Problem)
}

// errStop ends the line loop after the first bad record.
var errStop = errors.New("stop")

// Verify checks that files, oldest first, hold one unbroken hash chain: every
// record's hash matches its content, seq counts up by one and prev_hash is
// the previous record's hash. It returns a *BadRecord for the first record
// that was changed, or that follows a removed, inserted or reordered one.
func Verify(files []string, opts VerifyOptions) (VerifyResult, error) {
	if opts.PerInstance {
		return verifyPerInstance(files, opts)
	}
	var res VerifyResult
	var prevSeq uint64
	prevHash := ""
	err := eachRecord(files, func(rec *Record, fail failFunc) error {
		if res.Records == 0 {
			if rec.Seq != 1 || rec.PrevHash != genesisHash {
				if !opts.Partial {
					return fail(rec.Seq, "the chain starts at seq %d instead of 1: earlier records are missing (pass --partial if older files were rolled away)", rec.Seq)
				}
			}
			res.FirstSeq = rec.Seq
		} else {
			switch {
			case rec.Seq == prevSeq+1 && rec.PrevHash != prevHash:
				return fail(rec.Seq, "prev_hash does not match the previous record (seq %d): a record was replaced or inserted before this one", prevSeq)
			case rec.Seq > prevSeq+1:
				return fail(rec.Seq, "expected seq %d: records %d to %d are missing, or records were reordered", prevSeq+1, prevSeq+1, rec.Seq-1)
			case rec.Seq <= prevSeq:
				return fail(rec.Seq, "expected seq %d after seq %d: a record was inserted, duplicated or moved here", prevSeq+1, prevSeq)
			}
		}
		res.Records++
		prevSeq, prevHash = rec.Seq, rec.Hash
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Records == 0 {
		return res, errors.New("no audit records in the given files")
	}
	res.LastSeq, res.LastHash = prevSeq, prevHash
	return res, nil
}

// chainHead is the newest record of one instance's chain.
type chainHead struct {
	seq    uint64
	hash   string
	handed bool // another instance continued this chain
}

func verifyPerInstance(files []string, opts VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	heads := map[string]*chainHead{}
	byTail := map[string]string{} // chain head hash -> instance
	err := eachRecord(files, func(rec *Record, fail failFunc) error {
		h := heads[rec.Instance]
		switch {
		case h != nil && h.handed:
			return fail(rec.Seq, "instance %q writes after its chain was continued by another instance", rec.Instance)
		case h != nil && rec.Seq != h.seq+1:
			return fail(rec.Seq, "expected seq %d for instance %q: records missing, inserted or reordered", h.seq+1, rec.Instance)
		case h != nil && rec.PrevHash != h.hash:
			return fail(rec.Seq, "prev_hash does not match instance %q's previous record: a record was replaced or inserted", rec.Instance)
		case h == nil && rec.Seq == 1 && rec.PrevHash == genesisHash:
			res.Chains++
		case h == nil:
			if from, ok := byTail[rec.PrevHash]; ok && heads[from].seq+1 == rec.Seq && !heads[from].handed {
				heads[from].handed = true // a restart resumed that chain
				break
			}
			if !opts.Partial {
				return fail(rec.Seq, "instance %q starts at seq %d without linking to a previous record: earlier records are missing (pass --partial if they were rolled away)", rec.Instance, rec.Seq)
			}
			res.Chains++
		}
		if h != nil {
			delete(byTail, h.hash)
		} else {
			h = &chainHead{}
			heads[rec.Instance] = h
		}
		h.seq, h.hash = rec.Seq, rec.Hash
		byTail[rec.Hash] = rec.Instance
		if res.Records == 0 {
			res.FirstSeq = rec.Seq
		}
		res.Records++
		res.LastSeq, res.LastHash = rec.Seq, rec.Hash
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Records == 0 {
		return res, errors.New("no audit records in the given files")
	}
	return res, nil
}

// failFunc names the record under check as the first bad one.
type failFunc func(seq uint64, format string, args ...any) error

// eachRecord reads files line by line, oldest first, and calls check with
// every record that readRecord accepts: canonical, and hashed over exactly
// its bytes. It returns a *BadRecord for the first line that is not such a
// record or that check fails.
func eachRecord(files []string, check func(rec *Record, fail failFunc) error) error {
	var bad *BadRecord
	var buf []byte
	for _, file := range files {
		err := eachLine(file, func(n int, line []byte) error {
			fail := func(seq uint64, format string, args ...any) error {
				bad = &BadRecord{File: file, Line: n, Seq: seq, Problem: fmt.Sprintf(format, args...)}
				return errStop
			}
			if len(line) == 0 {
				return fail(0, "empty line where a record should be")
			}
			rec, bad := readRecord(line, &buf)
			if bad != nil {
				if strings.HasPrefix(bad.problem, "not an audit record: not JSON") {
					return fail(0, "%s; an inserted line, or one torn by a failed write that Caddy's log reported", bad.problem)
				}
				return fail(bad.seq, "%s", bad.problem)
			}
			return check(rec, fail)
		})
		if bad != nil {
			return bad
		}
		if err != nil {
			return fmt.Errorf("reading %s: %v", file, err)
		}
	}
	return nil
}
