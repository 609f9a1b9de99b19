package auditlog

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
)

// VerifyOptions adjust Verify.
type VerifyOptions struct {
	// Partial accepts a chain that starts after seq 1, because its oldest
	// files were rolled away (roll_keep, roll_keep_for). Without it a missing
	// beginning is an error (deleting the oldest records is tampering too)
	// unless checkpoints anchor the beginning that is left: see Checkpoints.
	Partial bool
	// PerInstance verifies a stream that merges several sidecars (a shared
	// network sink): each `instance` must form its own chain, from seq 1 or
	// continuing another instance's chain (a restart that resumed a file).
	// Without checkpoints it cannot tell a genuine new instance from a
	// fabricated one.
	PerInstance bool
	// Checkpoints are checkpoint files, oldest first, whose signatures are
	// checked with PublicKeys (several during a key rotation). With them,
	// Verify also fails when the files lack records a checkpoint attests
	// (a cut tail), hold other records at a checkpointed seq (a rewritten
	// chain, hashes recomputed), or a checkpoint was removed or forged; and
	// a chain whose beginning was rolled away is accepted without Partial
	// when the checkpoints anchor what is left.
	Checkpoints []string
	PublicKeys  []ed25519.PublicKey
	// Log picks the checkpoints of one log (their "log" member) when the
	// checkpoint files hold several; by default, the log the records match.
	Log string
}

// VerifyResult summarises an intact chain.
type VerifyResult struct {
	Records  int
	FirstSeq uint64
	LastSeq  uint64
	// LastHash is the chain head; without checkpoints, keep it somewhere
	// else to detect later truncation or a rewritten tail.
	LastHash string
	// Chains is the number of instance chains (PerInstance only).
	Chains int

	// Checkpoints is how many verified checkpoints of this log were read.
	Checkpoints int
	// AnchoredSeq is the newest record a checkpoint attests (0: none);
	// Unanchored counts the records after it (written since the last
	// checkpoint), which only the chain itself protects.
	AnchoredSeq uint64
	Unanchored  int
	// RolledAway is the last checkpoint before the files' first record,
	// when their beginning was rolled away and checkpoints anchor the rest.
	RolledAway *Checkpoint
	// Warnings are findings that are not proof of tampering.
	Warnings []string
}

// BadRecord names the first line that breaks the chain or the checkpoints.
type BadRecord struct {
	File    string
	Line    int
	Seq     uint64 // 0 when the line could not be parsed, or is a checkpoint
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

// chain is one hash chain as read: where it starts and ends.
type chain struct {
	instance    string
	first, last uint64
	firstTS     string
	lastTS      string
	lastHash    string
	// start is the complaint about a beginning that is neither seq 1 nor
	// a handover from another chain, held until the checkpoints are known.
	start     *BadRecord
	firstPrev string
	handed    bool // another instance continued this chain
}

// Verify checks that files, oldest first, hold one unbroken hash chain: every
// line is the canonical encoding of its record and hashes to its hash, seq
// counts up by one and prev_hash is the previous record's hash; and, with
// checkpoints, that the chain is the one they signed. It returns a
// *BadRecord for the first line that was changed, or that follows a
// removed, inserted or reordered one, or for the checkpoint the files
// contradict.
func Verify(files []string, opts VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	var cps *checkpointSet
	if len(opts.Checkpoints) > 0 {
		var err error
		if cps, err = readCheckpoints(opts.Checkpoints, opts.PublicKeys, opts.Partial); err != nil {
			return res, err
		}
	}
	var chains []*chain
	var err error
	if opts.PerInstance {
		chains, err = readPerInstance(files, cps, &res)
	} else {
		chains, err = readLinear(files, cps, &res)
	}
	if err != nil {
		return res, err
	}
	if res.Records == 0 {
		return res, errors.New("no audit records in the given files")
	}
	if cps != nil {
		if err := cps.judge(chains, opts, &res); err != nil {
			return res, err
		}
	}
	for _, c := range chains {
		if c.start != nil && !opts.Partial {
			return res, c.start
		}
	}
	return res, nil
}

// readLinear reads one chain: seq 1, 2, 3... each linked to the previous.
func readLinear(files []string, cps *checkpointSet, res *VerifyResult) ([]*chain, error) {
	c := &chain{}
	err := eachRecord(files, func(rec *Record, at position) error {
		if res.Records == 0 {
			c.first, c.firstTS, c.firstPrev = rec.Seq, rec.TS, rec.PrevHash
			if rec.Seq != 1 || rec.PrevHash != genesisHash {
				c.start = at.bad(rec.Seq, "the chain starts at seq %d instead of 1: earlier records are missing (pass --partial if older files were rolled away; with --checkpoints, the last checkpoint before the cut anchors what is left)", rec.Seq)
			}
			res.FirstSeq = rec.Seq
		} else {
			switch {
			case rec.Seq == c.last+1 && rec.PrevHash != c.lastHash:
				return at.bad(rec.Seq, "prev_hash does not match the previous record (seq %d): a record was replaced or inserted before this one", c.last)
			case rec.Seq > c.last+1:
				return at.bad(rec.Seq, "expected seq %d: records %d to %d are missing, or records were reordered", c.last+1, c.last+1, rec.Seq-1)
			case rec.Seq <= c.last:
				return at.bad(rec.Seq, "expected seq %d after seq %d: a record was inserted, duplicated or moved here", c.last+1, c.last)
			}
		}
		cps.see(rec)
		res.Records++
		c.last, c.lastHash, c.lastTS = rec.Seq, rec.Hash, rec.TS
		return nil
	})
	res.LastSeq, res.LastHash = c.last, c.lastHash
	return []*chain{c}, err
}

// readPerInstance reads a stream merged from several sidecars: one chain
// per instance, each from seq 1 or continuing another instance's chain.
func readPerInstance(files []string, cps *checkpointSet, res *VerifyResult) ([]*chain, error) {
	heads := map[string]*chain{}
	var chains []*chain
	byTail := map[string]string{} // chain head hash -> instance
	err := eachRecord(files, func(rec *Record, at position) error {
		h := heads[rec.Instance]
		switch {
		case h != nil && h.handed:
			return at.bad(rec.Seq, "instance %q writes after its chain was continued by another instance", rec.Instance)
		case h != nil && rec.Seq != h.last+1:
			return at.bad(rec.Seq, "expected seq %d for instance %q: records missing, inserted or reordered", h.last+1, rec.Instance)
		case h != nil && rec.PrevHash != h.lastHash:
			return at.bad(rec.Seq, "prev_hash does not match instance %q's previous record: a record was replaced or inserted", rec.Instance)
		case h == nil:
			h = &chain{instance: rec.Instance, first: rec.Seq, firstTS: rec.TS, firstPrev: rec.PrevHash}
			heads[rec.Instance] = h
			chains = append(chains, h)
			if rec.Seq == 1 && rec.PrevHash == genesisHash {
				res.Chains++
				break
			}
			if from, ok := byTail[rec.PrevHash]; ok && heads[from].last+1 == rec.Seq && !heads[from].handed {
				heads[from].handed = true // a restart resumed that chain
				delete(byTail, rec.PrevHash)
				break
			}
			h.start = at.bad(rec.Seq, "instance %q starts at seq %d without linking to a previous record: earlier records are missing (pass --partial if they were rolled away; with --checkpoints, the last checkpoint before the cut anchors what is left)", rec.Instance, rec.Seq)
			res.Chains++
		default:
			delete(byTail, h.lastHash)
		}
		h.last, h.lastHash, h.lastTS = rec.Seq, rec.Hash, rec.TS
		byTail[rec.Hash] = rec.Instance
		cps.see(rec)
		if res.Records == 0 {
			res.FirstSeq = rec.Seq
		}
		res.Records++
		res.LastSeq, res.LastHash = rec.Seq, rec.Hash
		return nil
	})
	return chains, err
}

// position is where a line is, to name it in a BadRecord.
type position struct {
	file string
	line int
}

func (p position) bad(seq uint64, format string, args ...any) *BadRecord {
	return &BadRecord{File: p.file, Line: p.line, Seq: seq, Problem: fmt.Sprintf(format, args...)}
}

// eachRecord reads files line by line, oldest first, and calls check with
// every record that readRecord accepts: canonical, and hashed over exactly
// its bytes. It returns a *BadRecord for the first line that is not such a
// record, or the error check returns.
func eachRecord(files []string, check func(rec *Record, at position) error) error {
	var stop error
	var buf []byte
	for _, file := range files {
		err := eachLine(file, func(n int, line []byte) error {
			at := position{file, n}
			if len(line) == 0 {
				stop = at.bad(0, "empty line where a record should be")
				return errStop
			}
			rec, bad := readRecord(line, &buf)
			if bad != nil {
				if strings.HasPrefix(bad.problem, "not an audit record: not JSON") {
					stop = at.bad(0, "%s; an inserted line, or one torn by a failed write that Caddy's log reported", bad.problem)
				} else {
					stop = at.bad(bad.seq, "%s", bad.problem)
				}
				return errStop
			}
			if err := check(rec, at); err != nil {
				stop = err
				return errStop
			}
			return nil
		})
		if stop != nil {
			return stop
		}
		if err != nil {
			return fmt.Errorf("reading %s: %v", file, err)
		}
	}
	return nil
}
