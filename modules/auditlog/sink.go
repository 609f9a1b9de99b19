package auditlog

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"

	"github.com/alysio/privacy-sidecar/modules/sidecar"
)

// sinks holds one sink per log writer (Caddy's WriterKey), shared by every
// audit_log handler that writes there and kept across config reloads, so
// that all of them extend one chain and a reload neither forks nor restarts it.
var sinks = caddy.NewUsagePool()

// sink is an open audit writer and the head of its hash chain. One mutex
// serialises seq, prev_hash and the write, so the order of lines in the file
// is the order of the chain.
type sink struct {
	key      string // in sinks
	name     string // the writer, for messages
	w        io.WriteCloser
	instance string

	mu   sync.Mutex
	seq  uint64
	prev [64]byte // hex
	buf  []byte

	// torn is set when a failed write left part of a line behind: the next
	// write starts with a newline so that only the fragment is damaged.
	torn bool

	// failing is set when the last write failed and cleared by the next
	// successful one; while set, requests are refused (unless configured
	// otherwise) because they could not be audited.
	failing atomic.Bool

	// unregister withdraws the sink from the audit event writers.
	unregister func()

	// release gives up the file's lock (a no-op for other outputs).
	release func()

	// cp writes the checkpoints; cpDue is the seq at which the next
	// count checkpoint is due (0: none), and cpKick wakes cp for it.
	cp     *checkpointer
	cpDue  atomic.Uint64
	cpKick chan struct{}
}

// openSink returns the shared sink for wo, opening it on first use: a file
// is locked (one writer per file and roll set; a reload of this process
// shares the sink and its lock), and the chain head is recovered from it.
func openSink(wo caddy.WriterOpener, instance string) (*sink, error) {
	key := "audit_log:" + wo.WriterKey()
	val, _, err := sinks.LoadOrNew(key, func() (caddy.Destructor, error) {
		s := newSink(key, wo.String(), nil, instance)
		if fw, ok := wo.(*logging.FileWriter); ok {
			release, err := lockOutput(fw.Filename)
			if err != nil {
				return nil, err
			}
			s.release = release
			last, err := lastRecordOf(fw.Filename)
			if err != nil {
				release()
				return nil, err
			}
			if last != nil {
				s.seq = last.Seq
				copy(s.prev[:], last.Hash) // checked: 64 hex digits
			}
		}
		w, err := wo.OpenWriter()
		if err != nil {
			s.release()
			return nil, fmt.Errorf("opening audit output %s: %v", wo, err)
		}
		s.w = w
		s.unregister = sidecar.RegisterAuditEventWriter(s)
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*sink), nil
}

func newSink(key, name string, w io.WriteCloser, instance string) *sink {
	s := &sink{key: key, name: name, w: w, instance: instance, release: func() {}, cpKick: make(chan struct{}, 1)}
	s.cp = &checkpointer{s: s}
	copy(s.prev[:], genesisHash)
	return s
}

// Destruct closes the writer and releases the file's lock when the last
// config using it is unloaded (its handlers wrote the final checkpoint
// when they unregistered).
func (s *sink) Destruct() error {
	if s.unregister != nil {
		s.unregister()
	}
	err := s.w.Close()
	s.release()
	return err
}

// head returns the chain head: the last record's seq and hash.
func (s *sink) head() (uint64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq, string(s.prev[:])
}

// write chains and writes one record whose head (appendHead) is given. It
// returns the record's sequence number. On a write error the chain does not
// advance, so the file still verifies; the loss shows in metrics and the log.
func (s *sink) write(head []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.seq + 1
	b := s.buf[:0]
	if s.torn {
		b = append(b, '\n')
	}
	start := len(b)
	b = append(b, head...)
	b = appendTailHex(b, s.instance, seq, &s.prev)
	line, hash := seal(b, start) // the newline, if any, and the line: one write
	s.buf = line
	n, err := s.w.Write(line)
	if err == nil && n < len(line) {
		// Caddy's net writer reports success when it dumped the line to
		// stderr because the socket is down; that record did not arrive.
		err = io.ErrShortWrite
	}
	if err != nil && n >= len(line)-1 {
		// the record is whole in the file (at most its newline is missing,
		// which the next write's leading newline supplies), so the chain
		// goes on from it; the output still failed
		s.torn = n < len(line)
		s.seq = seq
		s.prev = hash
		s.failing.Store(true)
		s.checkpointDue(seq)
		return seq, nil
	}
	if err != nil {
		s.torn = s.torn || n > 0
		s.failing.Store(true)
		return seq, err
	}
	s.torn = false
	s.seq = seq
	s.prev = hash
	s.failing.Store(false)
	s.checkpointDue(seq)
	return seq, nil
}

// checkpointDue wakes the checkpointer when checkpoint_every records have
// been written since the last checkpoint; it never blocks.
func (s *sink) checkpointDue(seq uint64) {
	if due := s.cpDue.Load(); due != 0 && seq >= due {
		select {
		case s.cpKick <- struct{}{}:
		default:
		}
	}
}

// defaultInstance names this process start: the host name and a random
// suffix, so that chains of several instances (or of restarts writing to a
// shared network sink) can be told apart.
func defaultInstance(name string) string {
	if name == "" {
		name, _ = os.Hostname()
		if name == "" {
			name = "sidecar"
		}
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return name + ":" + hex.EncodeToString(r[:])
}

// Interface guards
var _ caddy.Destructor = (*sink)(nil)
