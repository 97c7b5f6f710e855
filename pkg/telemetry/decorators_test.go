package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/locktest"
	"github.com/necrocode/artifactstore/pkg/store"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

func newTelemetry(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(newRig(t).cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tel
}

// The decorated backend passes the whole backend contract, the
// conditional-delete subtests included.
func TestBackendConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newTelemetry(t).WrapBackend(membackend.New())
	})
}

// The decorated locker passes the whole lock contract, Inspect and
// ForceUnlock included.
func TestLockerConformance(t *testing.T) {
	locktest.Run(t, func(t *testing.T, cfg lock.Config) lock.Locker {
		return newTelemetry(t).WrapLocker(newLocker(t, cfg))
	})
}

func TestBackendKeepsConditionalDelete(t *testing.T) {
	ctx := t.Context()
	tel := newTelemetry(t)
	mem := membackend.New()
	var b backend.Backend = tel.WrapBackend(mem)
	cd, ok := b.(backend.ConditionalDeleter)
	if !ok {
		t.Fatal("the decorated membackend is not a backend.ConditionalDeleter")
	}
	info, err := b.Put(ctx, "k", strings.NewReader("v"), 1, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.DeleteIfMatch(ctx, "k", "stale"); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("DeleteIfMatch with a stale ETag: err = %v, want precondition failed", err)
	}
	if err := cd.DeleteIfMatch(ctx, "k", info.ETag); err != nil {
		t.Errorf("DeleteIfMatch with the ETag: %v", err)
	}
	if _, err := mem.Stat(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("after DeleteIfMatch the wrapped backend still has k: %v", err)
	}
	if got := tel.WrapBackend(mem).Unwrap(); got != mem {
		t.Errorf("Unwrap = %v, want the wrapped backend", got)
	}

	// Around a backend without the capability it answers ErrUnsupported.
	bare := tel.WrapBackend(bareBackend{mem})
	if err := bare.DeleteIfMatch(ctx, "k", "e"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DeleteIfMatch over a backend without it: err = %v, want ErrUnsupported", err)
	}
}

// closingLocker is a memlock with a Close that it records.
type closingLocker struct {
	lock.Locker
	closed bool
}

func (c *closingLocker) Close() error { c.closed = true; return nil }

func TestLockerKeepsInspectionForceUnlockAndPing(t *testing.T) {
	ctx := t.Context()
	tel := newTelemetry(t)
	inner := newLocker(t, lock.Config{})
	var l lock.Locker = tel.WrapLocker(inner)
	in, ok := l.(lock.Inspector)
	if !ok {
		t.Fatal("the decorated memlock is not a lock.Inspector")
	}
	fu, ok := l.(lock.ForceUnlocker)
	if !ok {
		t.Fatal("the decorated memlock is not a lock.ForceUnlocker")
	}
	lease, err := l.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	st, err := in.Inspect(ctx, "k")
	if err != nil || !st.Held || st.Fence != lease.Fence() {
		t.Errorf("Inspect = %+v, %v; want held with fence %d", st, err, lease.Fence())
	}
	st, err = fu.ForceUnlock(ctx, "k")
	if err != nil || !st.Held {
		t.Errorf("ForceUnlock = %+v, %v; want the held status", st, err)
	}
	if err := lease.Release(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Errorf("Release after ForceUnlock: err = %v, want lease lost", err)
	}
	if st, err := inner.Inspect(ctx, "k"); err != nil || st.Held {
		t.Errorf("the wrapped locker still holds k: %+v, %v", st, err)
	}
	if got := tel.WrapLocker(inner).Unwrap(); got != inner {
		t.Errorf("Unwrap = %v, want the wrapped locker", got)
	}

	// Close reaches a wrapped io.Closer, and is a no-op otherwise.
	cl := &closingLocker{Locker: inner}
	if err := tel.WrapLocker(cl).Close(); err != nil || !cl.closed {
		t.Errorf("Close = %v, wrapped closed = %v; want it closed", err, cl.closed)
	}
	if err := tel.WrapLocker(inner).Close(); err != nil {
		t.Errorf("Close over a locker without Close: %v", err)
	}

	// Around a locker without the capabilities they answer ErrUnsupported.
	bare := tel.WrapLocker(bareLocker{inner})
	if _, err := bare.Inspect(ctx, "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Inspect over a locker without it: err = %v, want ErrUnsupported", err)
	}
	if _, err := bare.ForceUnlock(ctx, "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ForceUnlock over a locker without it: err = %v, want ErrUnsupported", err)
	}
	if err := bare.Ping(ctx); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Ping over a locker without it: err = %v, want ErrUnsupported", err)
	}
	if err := tel.WrapLocker(inner).Ping(ctx); err != nil {
		t.Errorf("Ping over a memlock: %v", err)
	}
}

// The store's lock inspection, force unlock and Ping work with telemetry on (the
// wrapped locker used to lose them: "inspect lock ...: unsupported
// operation"), and still answer ErrUnsupported over a locker without them.
func TestStoreLockInspectionThroughTelemetry(t *testing.T) {
	r := newRig(t)
	s := r.newStore(t, membackend.New(), store.Config{})
	const uri = "artifact://spec/task/log"
	err := s.WithLock(t.Context(), uri, store.LockOptions{}, func(ctx context.Context) error {
		st, err := s.IsLocked(ctx, uri)
		if err != nil || !st.Held {
			t.Errorf("IsLocked inside WithLock = %+v, %v; want held", st, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.ForceUnlock(t.Context(), uri); err != nil || st.Held {
		t.Errorf("ForceUnlock of a free lock = %+v, %v", st, err)
	}

	cfg := store.Config{Telemetry: r.cfg}
	bare, err := store.New(t.Context(), membackend.New(), bareLocker{newLocker(t, lock.Config{})}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.IsLocked(t.Context(), uri); !errors.Is(err, store.ErrUnsupported) {
		t.Errorf("IsLocked over a locker without Inspect: err = %v, want ErrUnsupported", err)
	}
	if _, err := bare.ForceUnlock(t.Context(), uri); !errors.Is(err, store.ErrUnsupported) {
		t.Errorf("ForceUnlock over a locker without it: err = %v, want ErrUnsupported", err)
	}

	// Ping reaches the lock service through the decorator; over a locker
	// without Ping it is not asked, which is no failure.
	if h, err := s.Ping(t.Context()); err != nil || !h.LockChecked {
		t.Errorf("Ping through telemetry = %+v, %v; want the lock service checked", h, err)
	}
	if h, err := bare.Ping(t.Context()); err != nil || h.LockChecked {
		t.Errorf("Ping over a locker without Ping = %+v, %v; want healthy, lock not checked", h, err)
	}
}
