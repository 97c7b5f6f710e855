package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// ErrUnhealthy: Ping found the backend or the lock service unusable, or the
// backend refused by the conditional-write probe. The error also matches
// the cause's own sentinel (ErrPermissionDenied, backend.ErrTransient,
// lock.ErrUnavailable, backend.ErrUnfencedWrites, ...).
var ErrUnhealthy = errors.New("store unhealthy")

// Health is what Ping found. Its zero value is not healthy: use OK.
type Health struct {
	// Backend is nil when the backend answered a Stat and a listing with
	// the Store's credentials, the error otherwise.
	Backend error
	// LockChecked reports that the lock service was asked: locking is on
	// and the locker implements lock.Pinger (redislock, filelock and
	// memlock do; a decorator over a locker without it, which answers
	// errors.ErrUnsupported, does not count). Lock is then nil when it answered (for Redlock, a
	// quorum of masters), the error otherwise; it is nil when not asked.
	LockChecked bool
	Lock        error
	// Probe is ProbeStatus: the Store's own conditional-write probe.
	Probe ProbeStatus
	// ProbeRecord is when the race probe last passed on the bucket,
	// according to its record (_probe/conditional-writes.json); zero when
	// there is no readable record. The Store's first write trusts a record
	// younger than a day and runs the race probe otherwise.
	ProbeRecord time.Time
	// TagIndexReady reports that the bucket's tag index is marked complete
	// (a bucket no Store has written to yet is not).
	TagIndexReady bool
}

// OK reports whether the backend and the lock service answered and the
// probe has not refused the backend.
func (h Health) OK() bool { return h.Err() == nil }

// Err is nil when OK, otherwise an error matching ErrUnhealthy and each
// failure's own sentinel.
func (h Health) Err() error {
	var errs []error
	if h.Backend != nil {
		errs = append(errs, fmt.Errorf("backend: %w", h.Backend))
	}
	if h.Lock != nil {
		errs = append(errs, fmt.Errorf("lock service: %w", h.Lock))
	}
	if h.Probe.State == ProbeRefused {
		errs = append(errs, fmt.Errorf("conditional writes: %w", h.Probe.Err))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnhealthy, errors.Join(errs...))
}

// Ping checks that the Store can work, writing nothing (a user with
// read-only credentials can run it): it reads from the backend (a Stat
// and the first entry of a listing), pings the lock service when the
// locker implements lock.Pinger, and reports the state of the
// conditional-write probe and the bucket's probe record. The error is
// Health.Err (nil when healthy), or wraps ctx.Err() when ctx ended; it
// matches ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) (h Health, err error) {
	defer func() { s.logResult(ctx, "ping", "", err) }()
	h.Probe = s.ProbeStatus()
	h.Backend = s.pingBackend(ctx)
	if h.Backend == nil {
		rec, err := s.readProbeRecord(ctx, s.b)
		if err != nil {
			h.Backend = err
		}
		h.ProbeRecord = rec.Checked
		h.TagIndexReady = s.tagIndexReady.Load()
	}
	if p, ok := s.locker.(lock.Pinger); ok {
		// A decorator answers ErrUnsupported for a locker without Ping.
		if err := p.Ping(ctx); !errors.Is(err, errors.ErrUnsupported) {
			h.LockChecked, h.Lock = true, err
		}
	}
	if err := ctx.Err(); err != nil {
		return h, fmt.Errorf("store: ping: %w", err)
	}
	if errors.Is(h.Backend, ErrClosed) {
		return h, fmt.Errorf("store: ping: %w", h.Backend)
	}
	if err := h.Err(); err != nil {
		return h, fmt.Errorf("store: ping: %w", err)
	}
	return h, nil
}

// pingBackend reads what every Store reads: the tag index mark (a Stat,
// which also learns whether the index is complete) and the first
// manifest of a listing.
func (s *Store) pingBackend(ctx context.Context) error {
	if _, err := s.checkTagIndexReady(ctx); err != nil {
		return err
	}
	for _, err := range s.b.List(ctx, manifestRoot) {
		if err != nil {
			return fmt.Errorf("list %s: %w", manifestRoot, err)
		}
		break
	}
	return nil
}
