package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"reflect"
	"time"
)

// Checkpoint is one line of the checkpoint output: a signed statement that
// the audit chain had record Seq with hash Hash at time TS. Each checkpoint
// also signs the previous one's signature, so the checkpoints form a chain
// of their own (as CloudTrail's digest files and transparency logs' signed
// checkpoints do): a removed checkpoint breaks it. The field names are a
// contract, like the Record's.
type Checkpoint struct {
	TS string `json:"ts"`
	// Instance is the process that signed it.
	Instance string `json:"instance"`
	// Log names the audit output the chain is written to (a file's
	// absolute path, a network address).
	Log string `json:"log"`
	// Reason is why it was written: start (a chain resumed from the file),
	// count (checkpoint_every records), interval (checkpoint_interval
	// passed with new records), shutdown (the config was unloaded).
	Reason string `json:"reason"`
	Seq    uint64 `json:"seq"`
	// Hash is record Seq's hash: the chain head it anchors.
	Hash string `json:"hash"`
	// Every and IntervalMS are the writer's settings, so a verifier knows
	// how far apart checkpoints should be.
	Every      int   `json:"every"`
	IntervalMS int64 `json:"interval_ms"`
	// PrevSig is the previous checkpoint's signature, "" for the first of
	// a chain (a new file, or an output that cannot be read back).
	PrevSig string `json:"prev_sig"`
	// KeyID names the signing key: the first 8 bytes of the SHA-256 of the
	// public key, in hex.
	KeyID string `json:"key_id"`
	// Sig is the Ed25519 signature of checkpointDomain followed by the
	// canonical encoding of every member before it, in standard base64.
	Sig string `json:"sig"`
}

// checkpointDomain separates checkpoint signatures from anything else the
// key could be made to sign.
const checkpointDomain = "alysio privacy-sidecar audit checkpoint v1\n"

// maxCheckpointBytes bounds a checkpoint line; the writer's are far smaller
// (the log name is the longest member).
const maxCheckpointBytes = 8 << 10

var (
	checkpointType    = reflect.TypeFor[Checkpoint]()
	checkpointMembers = membersOf(checkpointType)
)

// sigSuffixLen is the length of `,"sig":"<88 base64 chars>"}`.
var sigSuffixLen = len(`,"sig":"`) + base64.StdEncoding.EncodedLen(ed25519.SignatureSize) + len(`"}`)

// signCheckpoint fills cp's signature and returns its line.
func signCheckpoint(cp *Checkpoint, key ed25519.PrivateKey) []byte {
	body := appendMembers(nil, reflect.ValueOf(cp).Elem(), checkpointMembers[:len(checkpointMembers)-1])
	sig := ed25519.Sign(key, append([]byte(checkpointDomain), body...))
	cp.Sig = base64.StdEncoding.EncodeToString(sig)
	line := append(body[:len(body)-1], `,"sig":`...)
	line = appendString(line, cp.Sig)
	return append(line, '}', '\n')
}

// readCheckpoint checks that line is a checkpoint as the writer writes it
// (canonical, within the size limit) and returns it with the bytes its
// signature covers. It does not check the signature.
func readCheckpoint(line []byte) (*Checkpoint, []byte, string) {
	if len(line)+1 > maxCheckpointBytes {
		return nil, nil, fmt.Sprintf("the line is longer than a checkpoint may be (%d bytes)", maxCheckpointBytes)
	}
	cp := new(Checkpoint)
	err := decodeStrict(line, cp)
	if err != nil || len(line) < sigSuffixLen || !bytes.HasPrefix(line[len(line)-sigSuffixLen:], []byte(`,"sig":"`)) {
		problem := diagnose(line, checkpointType)
		switch {
		case problem != "":
		case err != nil:
			problem = "not a checkpoint: " + err.Error()
		default:
			problem = "the line does not end with its signature member"
		}
		return nil, nil, problem
	}
	body := appendMembers(nil, reflect.ValueOf(cp).Elem(), checkpointMembers[:len(checkpointMembers)-1])
	if before := line[:len(line)-sigSuffixLen]; !bytes.Equal(body[:len(body)-1], before) {
		problem := diagnose(line, checkpointType)
		if problem == "" {
			problem = fmt.Sprintf("not the canonical encoding of a checkpoint (first difference at byte %d)", firstDifference(body[:len(body)-1], before)+1)
		}
		return nil, nil, problem
	}
	return cp, append([]byte(checkpointDomain), body...), ""
}

// verifySignature checks cp's signature over signed with the key its key_id
// names among keys.
func verifySignature(cp *Checkpoint, signed []byte, keys map[string]ed25519.PublicKey) string {
	pub, ok := keys[cp.KeyID]
	if !ok {
		return fmt.Sprintf("signed with key %s, which is not among the --public-key keys given: forged, or signed with another key", cp.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Sig)
	if err != nil || !ed25519.Verify(pub, signed, sig) {
		return "the signature does not verify: the checkpoint was forged or altered"
	}
	return ""
}

// checkpointTime formats a checkpoint's ts.
func checkpointTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
