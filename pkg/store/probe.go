package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// This file is the write gate: what a Store checks before its first write
// of any kind, so that opening a Store and reading write nothing (see
// "Read-only use" in the package documentation).

const (
	// probeRecordKey records when the race probe last passed on the
	// bucket (a small JSON object, see probeRecord).
	probeRecordKey = probeRoot + "conditional-writes.json"
	// probeRecordMaxAge is how long a passed race probe is trusted: a
	// first write finding an older record (or none) runs the race probe
	// again and rewrites the record.
	probeRecordMaxAge = 24 * time.Hour
)

// probeRecord is the JSON of probeRecordKey.
type probeRecord struct {
	// Checked is when the race probe passed, on the writer's clock.
	Checked time.Time `json:"checked"`
	// Writer is the Config.WriterID of the Store that ran it.
	Writer string `json:"writer"`
}

// ProbeState is the state of a Store's conditional-write probe.
type ProbeState int

const (
	// ProbeNotRun: the Store has not written yet, so it has not probed.
	ProbeNotRun ProbeState = iota
	// ProbePassed: the backend enforces conditional writes; writes go on.
	ProbePassed
	// ProbeUnfencedAccepted: the backend does not enforce conditional
	// writes, and Config.AllowUnfencedWrites accepts it; writes go on.
	ProbeUnfencedAccepted
	// ProbeRefused: the backend does not enforce conditional writes; every
	// write of the Store fails with an error matching
	// backend.ErrUnfencedWrites (the verdict is final for the Store).
	ProbeRefused
	// ProbeFailed: the last probe could not finish (permission denied, a
	// network failure, a cancelled context); the next write probes again.
	ProbeFailed
)

// String returns the state as a word: "not run", "passed", "unfenced
// accepted", "refused" or "failed".
func (p ProbeState) String() string {
	switch p {
	case ProbeNotRun:
		return "not run"
	case ProbePassed:
		return "passed"
	case ProbeUnfencedAccepted:
		return "unfenced accepted"
	case ProbeRefused:
		return "refused"
	case ProbeFailed:
		return "failed"
	}
	return fmt.Sprintf("ProbeState(%d)", int(p))
}

// ProbeStatus reports what a Store knows of its backend's conditional
// writes.
type ProbeStatus struct {
	// State is where the probe stands.
	State ProbeState
	// RacesCheckedAt is when the race probe last passed on the bucket, by
	// this Store or, when FromRecord, by another one (the bucket's
	// _probe/conditional-writes.json). Zero when unknown.
	RacesCheckedAt time.Time
	// FromRecord reports that this Store trusted the bucket's record
	// instead of racing Puts itself.
	FromRecord bool
	// Err is why the probe refused the backend or failed (States
	// ProbeRefused and ProbeFailed), nil otherwise.
	Err error
}

// writeGate runs the checks of a Store's first write once, and again after
// a failure that may not last.
type writeGate struct {
	sem    chan struct{} // one prober at a time; honours contexts
	passed atomic.Bool   // writes may go on: the fast path

	mu     sync.Mutex // guards status
	status ProbeStatus

	cdKnown atomic.Bool // cd holds the answer of ProbeConditionalDelete
	cd      bool        // written under sem before cdKnown is set
}

func newWriteGate() *writeGate { return &writeGate{sem: make(chan struct{}, 1)} }

// lock takes the gate's semaphore, or fails with ctx's error.
func (g *writeGate) lock(ctx context.Context) error {
	select {
	case g.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: wait for the write check: %w", ctx.Err())
	}
}

func (g *writeGate) unlock() { <-g.sem }

func (g *writeGate) get() ProbeStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

func (g *writeGate) set(st ProbeStatus) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status = st
}

// PrepareWrites runs now what the Store's first write would run first: it
// proves that the backend enforces conditional writes (refusing one that
// does not with an error matching backend.ErrUnfencedWrites, unless
// Config.AllowUnfencedWrites) and marks the tag index of a bucket without
// artifacts complete. It writes to the bucket (scratch objects under
// _probe/, deleted afterwards, and _probe/conditional-writes.json; see
// "Read-only use" in the package documentation). Programs that write call
// it at startup to fail fast; others never need it. It is safe for
// concurrent use: one call probes and the others wait for it (or for their
// context). Once it succeeded it returns nil at once; a refusal is final;
// any other failure (permission denied, a network error, a cancelled
// context) is returned and the next call, or write, probes again.
func (s *Store) PrepareWrites(ctx context.Context) (err error) {
	defer func() { s.logResult(ctx, "prepare-writes", "", err) }()
	return s.b.(*closeGuard).checkWrite(ctx)
}

// ProbeStatus returns what the Store knows of its backend's conditional
// writes. It performs no I/O.
func (s *Store) ProbeStatus() ProbeStatus { return s.gate.get() }

// prepareWrites is the write gate of the Store's backend: it runs before
// every Put and Delete, and does its work at the first one.
func (s *Store) prepareWrites(ctx context.Context) error {
	g := s.gate
	if g.passed.Load() {
		return nil
	}
	if err := g.lock(ctx); err != nil {
		return err
	}
	defer g.unlock()
	if g.passed.Load() {
		return nil
	}
	if st := g.get(); st.State == ProbeRefused {
		return fmt.Errorf("store: %w", st.Err)
	}
	st, err := s.probeWrites(ctx)
	if err != nil {
		state := ProbeFailed
		if errors.Is(err, backend.ErrUnfencedWrites) && !errors.Is(err, backend.ErrTransient) {
			state = ProbeRefused
		}
		g.set(ProbeStatus{State: state, Err: err})
		return fmt.Errorf("store: %w", err)
	}
	g.set(st)
	g.passed.Store(true)
	return nil
}

// probeWrites runs the checks of the first write on the backend under the
// gate (the gate's own writes must not pass through it).
func (s *Store) probeWrites(ctx context.Context) (ProbeStatus, error) {
	b := s.b.(*closeGuard).Backend
	rec, err := s.readProbeRecord(ctx, b)
	if err != nil {
		return ProbeStatus{}, err
	}
	now := s.cfg.Now()
	age := now.Sub(rec.Checked)
	trusted := !rec.Checked.IsZero() && age < probeRecordMaxAge && age > -probeRecordMaxAge
	scratch := probeRoot + s.newID()
	st := ProbeStatus{State: ProbePassed}
	if trusted {
		// A recent race probe passed on this bucket: the sequential checks
		// still catch a server that ignores the conditions.
		err = backend.ProbeConditionalPutSequential(ctx, b, scratch)
		st.RacesCheckedAt, st.FromRecord = rec.Checked, true
	} else {
		err = backend.ProbeConditionalPut(ctx, b, scratch)
		st.RacesCheckedAt = now
	}
	switch {
	case err == nil && !trusted:
		if err := s.writeProbeRecord(ctx, b, probeRecord{Checked: now, Writer: s.cfg.WriterID}); err != nil {
			return ProbeStatus{}, err
		}
	case errors.Is(err, backend.ErrUnfencedWrites) && s.cfg.AllowUnfencedWrites:
		s.log.Warn("store: backend does not enforce conditional writes; accepted by Config.AllowUnfencedWrites", "err", err)
		st = ProbeStatus{State: ProbeUnfencedAccepted, Err: err}
	case err != nil:
		return ProbeStatus{}, err
	}
	if err := s.prepareTagIndex(ctx, b); err != nil {
		return ProbeStatus{}, err
	}
	return st, nil
}

// readProbeRecord returns the bucket's probe record; a missing or
// unreadable one is a zero record (the race probe then runs and rewrites
// it).
func (s *Store) readProbeRecord(ctx context.Context, b backend.Backend) (probeRecord, error) {
	rc, _, err := b.Get(ctx, probeRecordKey)
	switch {
	case errors.Is(err, ErrNotFound):
		return probeRecord{}, nil
	case err != nil:
		return probeRecord{}, fmt.Errorf("read %s: %w", probeRecordKey, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return probeRecord{}, fmt.Errorf("read %s: %w", probeRecordKey, err)
	}
	var rec probeRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		s.log.Warn("store: invalid probe record, probing again", "key", probeRecordKey, "err", err)
		return probeRecord{}, nil
	}
	return rec, nil
}

// writeProbeRecord stores rec as the bucket's probe record.
func (s *Store) writeProbeRecord(ctx context.Context, b backend.Backend, rec probeRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("write %s: %w", probeRecordKey, err)
	}
	if _, err := b.Put(ctx, probeRecordKey, bytes.NewReader(data), int64(len(data)), backend.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write %s: %w", probeRecordKey, err)
	}
	return nil
}

// conditionalDeletes reports whether the backend enforces DeleteIfMatch,
// probing it (writing a scratch object) the first time it is asked.
func (s *Store) conditionalDeletes(ctx context.Context) (bool, error) {
	g := s.gate
	if g.cdKnown.Load() {
		return g.cd, nil
	}
	if err := s.prepareWrites(ctx); err != nil {
		return false, err
	}
	if err := g.lock(ctx); err != nil {
		return false, err
	}
	defer g.unlock()
	if g.cdKnown.Load() {
		return g.cd, nil
	}
	ok, err := backend.ProbeConditionalDelete(ctx, s.b, probeRoot+s.newID())
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	g.cd = ok
	g.cdKnown.Store(true)
	return ok, nil
}
