package auditlog

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"
)

// checkpointSet holds the verified checkpoints of a verification and what
// the records said about each.
type checkpointSet struct {
	all    []*readCheckpointEntry
	byHash map[string][]*readCheckpointEntry
}

type readCheckpointEntry struct {
	*Checkpoint
	at position
	// matched: a record has this seq and hash; linked: the record after
	// it names it as prev_hash (its own record may be rolled away).
	matched, linked bool
}

// readCheckpoints reads checkpoint files, oldest first. Every line must be
// a canonical checkpoint signed by one of keys, and each instance's
// checkpoints must form a chain through prev_sig: a checkpoint names the
// signature of the instance's previous one; an instance's first names ""
// (a new chain) or the last checkpoint of the instance it took over from.
// Only the very first checkpoint read (or, with partial, any instance's
// first) may name one that is not in the files: older checkpoints rolled
// away.
func readCheckpoints(files []string, keys []ed25519.PublicKey, partial bool) (*checkpointSet, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("--checkpoints needs --public-key: the checkpoints' signatures are what makes them evidence")
	}
	byID := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		byID[keyID(k)] = k
	}
	set := &checkpointSet{byHash: map[string][]*readCheckpointEntry{}}
	lastSig := map[string]string{} // instance -> its newest signature
	lastSeq := map[string]uint64{} // instance -> its newest seq
	tails := map[string]string{}   // signature not yet continued -> instance
	var stop *BadRecord
	for _, file := range files {
		err := eachLine(file, func(n int, line []byte) error {
			at := position{file, n}
			fail := func(format string, args ...any) error {
				stop = at.bad(0, format, args...)
				return errStop
			}
			if len(line) == 0 {
				return fail("empty line where a checkpoint should be")
			}
			cp, signed, problem := readCheckpoint(line)
			if problem != "" {
				return fail("%s", problem)
			}
			if problem := verifySignature(cp, signed, byID); problem != "" {
				return fail("checkpoint seq %d: %s", cp.Seq, problem)
			}
			prev, seen := lastSig[cp.Instance]
			switch {
			case seen && cp.PrevSig != prev:
				return fail("checkpoint seq %d: prev_sig is not the signature of instance %q's previous checkpoint: a checkpoint was removed or moved before this one", cp.Seq, cp.Instance)
			case seen && cp.Seq < lastSeq[cp.Instance]:
				return fail("checkpoint seq %d: goes back from seq %d", cp.Seq, lastSeq[cp.Instance])
			case seen:
				delete(tails, prev)
			case cp.PrevSig == "":
			case tails[cp.PrevSig] != "":
				delete(tails, cp.PrevSig) // a restart took over that chain
			case len(set.all) == 0 || partial:
				// continues a checkpoint rolled away before these files
			default:
				return fail("checkpoint seq %d: prev_sig names a checkpoint that is not in these files: checkpoints were removed (pass --partial if older checkpoint files were rolled away)", cp.Seq)
			}
			lastSig[cp.Instance], lastSeq[cp.Instance] = cp.Sig, cp.Seq
			tails[cp.Sig] = cp.Instance
			e := &readCheckpointEntry{Checkpoint: cp, at: at}
			set.all = append(set.all, e)
			set.byHash[cp.Hash] = append(set.byHash[cp.Hash], e)
			return nil
		})
		if stop != nil {
			return nil, stop
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %v", file, err)
		}
	}
	if len(set.all) == 0 {
		return nil, fmt.Errorf("no checkpoints in %s", strings.Join(files, ", "))
	}
	return set, nil
}

// see notes what a verified record says about the checkpoints: one with its
// seq and hash is matched; one at the seq before with its prev_hash is
// linked (a start checkpoint, or the last one before a cut).
func (s *checkpointSet) see(rec *Record) {
	if s == nil {
		return
	}
	for _, e := range s.byHash[rec.Hash] {
		if e.Seq == rec.Seq {
			e.matched = true
		}
	}
	for _, e := range s.byHash[rec.PrevHash] {
		if e.Seq+1 == rec.Seq {
			e.linked = true
		}
	}
}

// judge holds the checkpoints of the verified log against its chains:
// every checkpoint must be matched by a record, or lie before the records
// (rolled away); one after the records means they were cut, one among them
// that no record matches means the chain was rewritten. A chain whose
// beginning is missing is accepted when a checkpoint links to its first
// record, or when there is a checkpoint before the cut and another that a
// record of the chain matches (a checkpoint attests every record before it
// through the hashes).
func (s *checkpointSet) judge(chains []*chain, opts VerifyOptions, res *VerifyResult) error {
	entries, err := s.ofLog(opts.Log)
	if err != nil {
		return err
	}
	res.Checkpoints = len(entries)
	byInstance := map[string]*chain{}
	var oldest time.Time
	for _, c := range chains {
		byInstance[c.instance] = c
		if t := parseTS(c.firstTS); oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	var rolled []*readCheckpointEntry
	for _, e := range entries {
		if e.matched || e.linked {
			if e.matched && e.Seq > res.AnchoredSeq {
				res.AnchoredSeq = e.Seq
			}
			continue
		}
		c := chains[0]
		if opts.PerInstance {
			c = byInstance[e.Instance]
		}
		signed := fmt.Sprintf("checkpoint %s:%d (seq %d, signed %s by instance %q)", e.at.file, e.at.line, e.Seq, e.TS, e.Instance)
		switch {
		case c == nil && parseTS(e.TS).Before(oldest):
			rolled = append(rolled, e) // an instance whose records all rolled away
		case c == nil:
			return &BadRecord{File: e.at.file, Line: e.at.line, Problem: fmt.Sprintf(
				"%s: the files hold no record of that instance although they hold older records: its records were removed", signed)}
		case e.Seq > c.last:
			return &BadRecord{File: e.at.file, Line: e.at.line, Problem: fmt.Sprintf(
				"%s attests a record the files do not have: the chain ends at seq %d; records were cut from its end", signed, c.last)}
		case e.Seq+1 >= c.first:
			return &BadRecord{File: e.at.file, Line: e.at.line, Problem: fmt.Sprintf(
				"%s attests hash %s for seq %d; the files hold another record there: the chain was rewritten and its hashes recomputed", signed, e.Hash, e.Seq)}
		default:
			rolled = append(rolled, e)
		}
	}
	for _, c := range chains {
		if c.start == nil {
			continue
		}
		var before *readCheckpointEntry
		for _, e := range entries {
			if e.linked && e.Seq+1 == c.first && e.Hash == c.firstPrev {
				before = e
			}
		}
		if before == nil && anchored(entries, c) {
			for _, e := range rolled {
				mine := !opts.PerInstance || e.Instance == c.instance || byInstance[e.Instance] == nil
				if mine && (before == nil || e.Seq > before.Seq) {
					before = e
				}
			}
		}
		if before != nil {
			c.start = nil // the beginning was rolled away, and the checkpoints anchor the rest
			res.RolledAway = before.Checkpoint
		}
	}
	if res.AnchoredSeq > 0 && !opts.PerInstance {
		res.Unanchored = int(res.LastSeq - res.AnchoredSeq)
	} else if res.AnchoredSeq == 0 {
		res.Unanchored = res.Records
	}
	// A checkpoint is due every interval while records are written: a
	// record much newer than the last checkpoint suggests removed
	// checkpoints, or a sidecar that stopped without its final one.
	last := entries[len(entries)-1]
	newest := ""
	for _, c := range chains {
		if newest == "" || parseTS(c.lastTS).After(parseTS(newest)) {
			newest = c.lastTS
		}
	}
	if gap := parseTS(newest).Sub(parseTS(last.TS)); last.IntervalMS > 0 && gap > 2*time.Duration(last.IntervalMS)*time.Millisecond {
		res.Warnings = append(res.Warnings, fmt.Sprintf(
			"the newest record (%s) is more than twice checkpoint_interval newer than the last checkpoint (%s): later checkpoints may have been removed, or the sidecar stopped without writing its final one",
			newest, last.TS))
	}
	return nil
}

// parseTS reads a record's or checkpoint's ts; the zero time if it is not
// one (a verified record's ts is what the writer wrote).
func parseTS(ts string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, ts)
	return t
}

// anchored reports whether a checkpoint matches a record of chain c.
func anchored(entries []*readCheckpointEntry, c *chain) bool {
	for _, e := range entries {
		if e.matched && e.Seq >= c.first && e.Seq <= c.last {
			return true
		}
	}
	return false
}

// ofLog returns the checkpoints of one log: the one asked for, else the one
// the records matched, else the only one there is.
func (s *checkpointSet) ofLog(log string) ([]*readCheckpointEntry, error) {
	var logs, matchedLogs []string
	for _, e := range s.all {
		if !slices.Contains(logs, e.Log) {
			logs = append(logs, e.Log)
		}
		if (e.matched || e.linked) && !slices.Contains(matchedLogs, e.Log) {
			matchedLogs = append(matchedLogs, e.Log)
		}
	}
	switch {
	case log != "":
	case len(matchedLogs) == 1:
		log = matchedLogs[0]
	case len(logs) == 1:
		log = logs[0]
	default:
		return nil, fmt.Errorf("the checkpoint files hold checkpoints of several logs (%s); name the one these records belong to with --log", strings.Join(logs, ", "))
	}
	var out []*readCheckpointEntry
	for _, e := range s.all {
		if e.Log == log {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no checkpoint of log %q in the checkpoint files (they hold %s)", log, strings.Join(logs, ", "))
	}
	return out, nil
}
