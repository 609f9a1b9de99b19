package auditlog

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults of checkpoint_every and checkpoint_interval. A checkpoint costs
// one Ed25519 signature (about 25 µs here) and one line of about 400 bytes
// on the checkpoint output, off the request path. Every 1,000 records, that
// is under 0.03 µs and half a byte per record, and an attacker who can
// rewrite the file but not the checkpoints can alter at most the last
// 1,000 records unnoticed; every minute, a quiet sidecar leaves at most one
// minute of records unanchored, for about 0.6 MB of checkpoints a day when
// there is traffic all day (none are written while nothing is).
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
)

// provisionCheckpoints resolves the key, opens the checkpoint output and
// registers the settings with the sink's checkpointer.
func (m *AuditLog) provisionCheckpoints(ctx caddy.Context, repl *caddy.Replacer, records caddy.WriterOpener) error {
	text, err := repl.ReplaceOrErr(m.CheckpointKey, true, true)
	if err != nil {
		return fmt.Errorf("checkpoint_key: %v (set the environment variable it names)", err)
	}
	key, err := parsePrivateKey(text)
	if err != nil {
		return fmt.Errorf("checkpoint_key: %v", err)
	}
	mod, err := ctx.LoadModule(m, "CheckpointOutputRaw")
	if err != nil {
		return fmt.Errorf("loading the checkpoint output: %v", err)
	}
	wo := mod.(caddy.WriterOpener)
	if wo.WriterKey() == records.WriterKey() {
		return errors.New("checkpoint_output is the records' output; checkpoints must go elsewhere (another volume, or off the host), or whoever can rewrite the records can rewrite them too")
	}
	out, err := openCheckpointOutput(wo)
	if err != nil {
		return err
	}
	m.checkpoint = &checkpointConfig{
		key:      key,
		keyID:    keyID(key.Public().(ed25519.PublicKey)),
		out:      out,
		every:    uint64(m.CheckpointEvery),
		interval: time.Duration(m.CheckpointInterval),
		failures: m.metrics.checkpointFailures,
		logger:   m.logger,
	}
	if m.checkpoint.every == 0 {
		m.checkpoint.every = DefaultCheckpointEvery
	}
	if m.checkpoint.interval == 0 {
		m.checkpoint.interval = DefaultCheckpointInterval
	}
	m.sink.cp.register(m.checkpoint)
	return nil
}

// checkpointConfig is one audit_log handler's checkpoint settings.
type checkpointConfig struct {
	key      ed25519.PrivateKey
	keyID    string
	out      *checkpointOutput
	every    uint64
	interval time.Duration
	failures prometheus.Counter
	logger   *zap.Logger
}

// checkpointer writes a sink's checkpoints from its own goroutine: the
// request path only sends a non-blocking signal when checkpoint_every
// records have been written. Handlers sharing the sink register their
// settings; the newest registered is used, so a reload applies new
// settings and a failed reload (whose handlers unregister) restores the
// old ones.
type checkpointer struct {
	s *sink

	mu       sync.Mutex // serialises checkpoints and (un)registrations
	configs  []*checkpointConfig
	prevSig  string
	lastSeq  uint64
	lastHash string
	stop     chan struct{}
	done     chan struct{}
}

// register adds cfg; the first registration starts the goroutine, after a
// start checkpoint if the sink resumed a chain that no checkpoint of this
// log anchors yet.
func (c *checkpointer) register(cfg *checkpointConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.configs = append(c.configs, cfg)
	if c.stop != nil {
		c.s.cpDue.Store(c.lastSeq + cfg.every)
		return
	}
	if last := cfg.out.last(c.s.name); last != nil {
		c.prevSig, c.lastSeq, c.lastHash = last.Sig, last.Seq, last.Hash
	}
	c.writeLocked("start")
	c.s.cpDue.Store(c.lastSeq + cfg.every)
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.run(c.stop, c.done)
}

// unregister removes cfg; when it was the last, a final checkpoint is
// written (reason "stop": shutdown, or a config without checkpoints) and
// the goroutine ends.
func (c *checkpointer) unregister(cfg *checkpointConfig) {
	c.mu.Lock()
	if i := slices.Index(c.configs, cfg); i >= 0 {
		if len(c.configs) == 1 {
			c.writeLocked("stop")
		}
		c.configs = slices.Delete(c.configs, i, i+1)
	}
	stop, done := c.stop, c.done
	last := len(c.configs) == 0 && stop != nil
	if last {
		c.stop, c.done = nil, nil
		c.s.cpDue.Store(0)
	}
	c.mu.Unlock()
	if last {
		close(stop)
		<-done
	}
}

func (c *checkpointer) run(stop, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(c.interval())
	defer timer.Stop()
	for {
		select {
		case <-c.s.cpKick:
			c.write("count")
		case <-timer.C:
			c.write("interval")
			timer.Reset(c.interval())
		case <-stop:
			return
		}
	}
}

func (c *checkpointer) interval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.configs) == 0 {
		return DefaultCheckpointInterval
	}
	return c.configs[len(c.configs)-1].interval
}

func (c *checkpointer) write(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeLocked(reason)
}

// writeLocked signs and writes a checkpoint of the sink's head, unless no
// record was written since the last one.
func (c *checkpointer) writeLocked(reason string) {
	if len(c.configs) == 0 {
		return
	}
	cfg := c.configs[len(c.configs)-1]
	seq, hash := c.s.head()
	if seq == 0 || (seq == c.lastSeq && hash == c.lastHash) {
		return
	}
	cp := &Checkpoint{
		TS:         checkpointTime(time.Now()),
		Instance:   c.s.instance,
		Log:        c.s.name,
		Reason:     reason,
		Seq:        seq,
		Hash:       hash,
		Every:      int(cfg.every),
		IntervalMS: cfg.interval.Milliseconds(),
		PrevSig:    c.prevSig,
		KeyID:      cfg.keyID,
	}
	line := signCheckpoint(cp, cfg.key)
	if err := cfg.out.write(line); err != nil {
		// the next checkpoint retries from the same previous signature
		cfg.failures.Inc()
		cfg.logger.Error("audit checkpoint not written: the records since the last checkpoint stay unanchored until one is",
			zap.String("checkpoint_output", cfg.out.name), zap.Uint64("seq", seq), zap.Error(err))
		return
	}
	c.prevSig, c.lastSeq, c.lastHash = cp.Sig, seq, hash
	c.s.cpDue.Store(seq + cfg.every)
}

// checkpointOutputs holds one open checkpoint output per log writer, shared
// by every sink that writes checkpoints there and kept across reloads.
var checkpointOutputs = caddy.NewUsagePool()

// checkpointOutput is an open checkpoint writer. Several sinks may share
// it: writes are serialised, and a torn write is followed by a newline so
// that only its own line is damaged.
type checkpointOutput struct {
	key     string
	name    string
	file    string // a file output's path, to read the last checkpoint back
	w       io.WriteCloser
	release func()

	mu   sync.Mutex
	torn bool
}

// openCheckpointOutput returns the shared output for wo, locked when it
// is a file.
func openCheckpointOutput(wo caddy.WriterOpener) (*checkpointOutput, error) {
	key := "audit_checkpoints:" + wo.WriterKey()
	val, _, err := checkpointOutputs.LoadOrNew(key, func() (caddy.Destructor, error) {
		o := &checkpointOutput{key: key, name: wo.String(), release: func() {}}
		if fw, ok := wo.(*logging.FileWriter); ok {
			release, err := lockOutput(fw.Filename)
			if err != nil {
				return nil, fmt.Errorf("checkpoint output: %w", err)
			}
			o.file, o.release = fw.Filename, release
		}
		w, err := wo.OpenWriter()
		if err != nil {
			o.release()
			return nil, fmt.Errorf("opening the checkpoint output %s: %v", wo, err)
		}
		o.w = w
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*checkpointOutput), nil
}

func (o *checkpointOutput) write(line []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := o.w.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite // the net writer's stderr fallback
	}
	if err != nil {
		o.torn = o.torn || n > 0
		return err
	}
	o.torn = false
	return nil
}

// last returns the newest checkpoint of log in a file output (the current
// file, else its newest rolled file), so that a restarted sidecar continues
// the checkpoint chain; nil for other outputs or when there is none. Lines
// that are not checkpoints are skipped here: `audit verify` reports them.
func (o *checkpointOutput) last(log string) *Checkpoint {
	if o.file == "" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	files := append(rolledFiles(o.file), o.file)
	for i := len(files) - 1; i >= 0; i-- {
		var last *Checkpoint
		_ = eachLine(files[i], func(_ int, line []byte) error {
			if cp, _, problem := readCheckpoint(line); problem == "" && cp.Log == log {
				last = cp
			}
			return nil
		})
		if last != nil {
			return last
		}
	}
	return nil
}

// Destruct closes the writer and releases the file's lock when the last
// config using the output is unloaded.
func (o *checkpointOutput) Destruct() error {
	err := o.w.Close()
	o.release()
	return err
}

// Interface guards
var _ caddy.Destructor = (*checkpointOutput)(nil)
