package lock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// fakeDriver is a lock service that keeps one lease: Extend pushes its
// expiry by expiry unless extendErr is set; Release reports releaseErr. It
// fails the test when the Lease calls it concurrently.
type fakeDriver struct {
	t      *testing.T
	expiry time.Duration

	mu         sync.Mutex
	extendErr  error
	releaseErr error

	inflight atomic.Int32
	extends  atomic.Int32
	releases atomic.Int32
	ctxErr   atomic.Value // error of the ctx passed to Release
}

func (d *fakeDriver) enter() func() {
	if n := d.inflight.Add(1); n != 1 && d.t != nil {
		d.t.Errorf("driver called concurrently (%d calls in flight)", n)
	}
	return func() { d.inflight.Add(-1) }
}

func (d *fakeDriver) set(extendErr, releaseErr error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.extendErr, d.releaseErr = extendErr, releaseErr
}

func (d *fakeDriver) Extend(ctx context.Context, l *lock.Lease) (time.Time, error) {
	defer d.enter()()
	d.extends.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.extendErr != nil {
		return time.Time{}, d.extendErr
	}
	return time.Now().Add(d.expiry), nil
}

func (d *fakeDriver) Release(ctx context.Context, l *lock.Lease) error {
	defer d.enter()()
	d.releases.Add(1)
	d.ctxErr.Store(fmt.Sprint(ctx.Err()))
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.releaseErr
}

// newLease grants a lease on "k" that expires after cfg.Expiry.
func newLease(t *testing.T, cfg lock.Config) (*lock.Lease, *fakeDriver) {
	t.Helper()
	cfg = cfg.WithDefaults()
	d := &fakeDriver{t: t, expiry: cfg.Expiry}
	l := lock.NewLease(lock.Grant{Key: "k", Token: "tok", Fence: 7, Until: time.Now().Add(cfg.Expiry)}, cfg, d)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l, d
}

func waitClosed(t *testing.T, l *lock.Lease, within time.Duration) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(within):
		t.Fatalf("Done not closed within %v", within)
	}
}

func open(l *lock.Lease) bool {
	select {
	case <-l.Done():
		return false
	default:
		return true
	}
}

func TestLeaseAccessors(t *testing.T) {
	until := time.Now().Add(time.Hour)
	l := lock.NewLease(lock.Grant{Key: "k", Token: "tok", Fence: 7, Until: until},
		lock.Config{DisableAutoRefresh: true, Expiry: time.Hour}, &fakeDriver{t: t})
	defer l.Release(context.Background())
	if l.Key() != "k" || l.Token() != "tok" || l.Fence() != 7 || !l.Until().Equal(until) || l.Err() != nil || !open(l) {
		t.Errorf("lease = key %q token %q fence %d until %v err %v open %v", l.Key(), l.Token(), l.Fence(), l.Until(), l.Err(), open(l))
	}
}

func TestLeaseRelease(t *testing.T) {
	l, d := newLease(t, lock.Config{DisableAutoRefresh: true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Release must still reach the service
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := d.ctxErr.Load(); got != "<nil>" {
		t.Errorf("driver's Release got a context with error %v", got)
	}
	if open(l) {
		t.Error("Done open after Release")
	}
	wantIs(t, l.Err(), lock.ErrNotHeld)
	wantIs(t, l.Release(t.Context()), lock.ErrNotHeld)
	wantIs(t, l.Refresh(t.Context()), lock.ErrNotHeld)
	if n := d.releases.Load(); n != 1 {
		t.Errorf("driver Release called %d times, want 1", n)
	}
	if n := d.extends.Load(); n != 0 {
		t.Errorf("driver Extend called %d times after Release", n)
	}
}

func TestLeaseReleaseLost(t *testing.T) {
	l, d := newLease(t, lock.Config{DisableAutoRefresh: true})
	d.set(nil, fmt.Errorf("token gone: %w", lock.ErrLeaseLost))
	wantIs(t, l.Release(t.Context()), lock.ErrLeaseLost)
	wantIs(t, l.Err(), lock.ErrLeaseLost)
	if open(l) {
		t.Error("Done open after a lost Release")
	}
}

// A release the service did not confirm ends the lease anyway (the key
// frees itself at expiry) and reports the failure.
func TestLeaseReleaseTransientError(t *testing.T) {
	l, d := newLease(t, lock.Config{DisableAutoRefresh: true})
	boom := errors.New("connection reset")
	d.set(nil, boom)
	err := l.Release(t.Context())
	wantIs(t, err, boom)
	wantNotIs(t, err, lock.ErrLeaseLost)
	wantIs(t, l.Err(), lock.ErrNotHeld)
}

func TestLeaseRefresh(t *testing.T) {
	l, d := newLease(t, lock.Config{DisableAutoRefresh: true, Expiry: time.Hour})
	before := l.Until()
	time.Sleep(time.Millisecond) // the clock must move for Until to
	if err := l.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if !l.Until().After(before) {
		t.Errorf("Until %v not after %v", l.Until(), before)
	}
	boom := errors.New("timeout")
	d.set(boom, nil)
	err := l.Refresh(t.Context())
	wantIs(t, err, boom)
	if l.Err() != nil || !open(l) {
		t.Errorf("a transient refresh failure ended the lease: %v", l.Err())
	}
	d.set(fmt.Errorf("gone: %w", lock.ErrLeaseLost), nil)
	wantIs(t, l.Refresh(t.Context()), lock.ErrLeaseLost)
	wantIs(t, l.Err(), lock.ErrLeaseLost)
	if open(l) {
		t.Error("Done open after the lease was lost")
	}
	wantIs(t, l.Release(t.Context()), lock.ErrLeaseLost)
	if n := d.releases.Load(); n != 0 {
		t.Errorf("driver Release called for a lost lease")
	}
}

func TestLeaseAutoRefresh(t *testing.T) {
	const expiry = 300 * time.Millisecond
	l, d := newLease(t, lock.Config{Expiry: expiry, RefreshInterval: 20 * time.Millisecond})
	first := l.Until()
	deadline := time.Now().Add(10 * time.Second)
	for d.extends.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d automatic refreshes in 10s", d.extends.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !open(l) || l.Err() != nil {
		t.Fatalf("lease ended while refreshed: %v", l.Err())
	}
	if !l.Until().After(first) {
		t.Errorf("Until %v not after the first %v", l.Until(), first)
	}
}

func TestLeaseAutoRefreshLost(t *testing.T) {
	out := &syncWriter{}
	logger := slog.New(slog.NewTextHandler(out, nil))
	l, d := newLease(t, lock.Config{Expiry: time.Hour, RefreshInterval: 10 * time.Millisecond, Logger: logger})
	d.set(fmt.Errorf("broken: %w", lock.ErrLeaseLost), nil)
	waitClosed(t, l, 10*time.Second)
	wantIs(t, l.Err(), lock.ErrLeaseLost)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "lock lease lost") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning logged for the lost lease: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// Failing refreshes keep being retried, and the lease ends at its expiry,
// not before.
func TestLeaseAutoRefreshFailsUntilExpiry(t *testing.T) {
	const expiry = 200 * time.Millisecond
	cfg := lock.Config{Expiry: expiry, RefreshInterval: 20 * time.Millisecond}.WithDefaults()
	d := &fakeDriver{t: t, expiry: expiry, extendErr: errors.New("unreachable")}
	until := time.Now().Add(expiry)
	l := lock.NewLease(lock.Grant{Key: "k", Token: "tok", Fence: 1, Until: until}, cfg, d)
	defer l.Release(context.Background())
	waitClosed(t, l, 10*time.Second)
	if time.Now().Before(until) {
		t.Errorf("lease ended before its expiry")
	}
	wantIs(t, l.Err(), lock.ErrLeaseLost)
	if n := d.extends.Load(); n < 2 {
		t.Errorf("%d refresh attempts before expiry, want retries", n)
	}
}

func TestLeaseExpiresWithoutAutoRefresh(t *testing.T) {
	const expiry = 100 * time.Millisecond
	l, d := newLease(t, lock.Config{Expiry: expiry, DisableAutoRefresh: true})
	until := l.Until()
	waitClosed(t, l, 10*time.Second)
	if time.Now().Before(until) {
		t.Error("lease ended before its Until")
	}
	wantIs(t, l.Err(), lock.ErrLeaseLost)
	if n := d.extends.Load(); n != 0 {
		t.Errorf("%d refreshes with auto refresh disabled", n)
	}
}

// Manual refreshes keep a lease without auto refresh alive past its first
// expiry.
func TestLeaseManualRefreshDelaysExpiry(t *testing.T) {
	const expiry = 150 * time.Millisecond
	l, _ := newLease(t, lock.Config{Expiry: expiry, DisableAutoRefresh: true})
	end := time.Now().Add(3 * expiry)
	for time.Now().Before(end) {
		if err := l.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		time.Sleep(expiry / 10)
	}
	if !open(l) {
		t.Fatalf("lease ended although refreshed: %v", l.Err())
	}
}

// A lease past its Until is lost even before its watcher notices: Refresh
// does not resurrect it (the driver is not asked), and Release reports the
// loss.
func TestLeasePastUntil(t *testing.T) {
	cfg := lock.Config{Expiry: time.Hour, DisableAutoRefresh: true}
	for _, op := range []string{"Refresh", "Release"} {
		t.Run(op, func(t *testing.T) {
			d := &fakeDriver{t: t, expiry: time.Hour}
			l := lock.NewLease(lock.Grant{Key: "k", Token: "tok", Fence: 1, Until: time.Now().Add(-time.Millisecond)}, cfg, d)
			defer l.Release(context.Background())
			var err error
			if op == "Refresh" {
				err = l.Refresh(t.Context())
			} else {
				err = l.Release(t.Context())
			}
			wantIs(t, err, lock.ErrLeaseLost)
			if n := d.extends.Load(); n != 0 {
				t.Errorf("driver Extend called for an expired lease")
			}
		})
	}
}

// Refresh, Release and the watcher may race; the driver is never called
// concurrently and the lease ends exactly once.
func TestLeaseConcurrentUse(t *testing.T) {
	l, d := newLease(t, lock.Config{Expiry: time.Second, RefreshInterval: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_ = l.Refresh(t.Context())
				_ = l.Until()
				_ = l.Err()
			}
		})
	}
	wg.Go(func() {
		time.Sleep(5 * time.Millisecond)
		if err := l.Release(t.Context()); err != nil {
			t.Errorf("Release: %v", err)
		}
	})
	wg.Wait()
	wantIs(t, l.Err(), lock.ErrNotHeld)
	if n := d.releases.Load(); n != 1 {
		t.Errorf("driver Release called %d times", n)
	}
}

// syncWriter is a log destination safe for concurrent use.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
