package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LeaseDriver is what a Locker implementation supplies to keep one lease
// alive in its lock service. NewLease wraps it in the Lease type that callers
// see; the driver is never called concurrently for the same lease.
type LeaseDriver interface {
	// Extend pushes the lease's expiry to about now + Config.Expiry while
	// the service still records l.Token() as the holder, and returns the new
	// expiry. It returns an error matching ErrLeaseLost when the lease is no
	// longer held by l.Token() (expired, broken or taken over); other errors
	// are treated as transient.
	Extend(ctx context.Context, l *Lease) (time.Time, error)
	// Release frees the lock if the service still records l.Token() as the
	// holder; otherwise it returns an error matching ErrLeaseLost and
	// changes nothing.
	Release(ctx context.Context, l *Lease) error
}

// Grant describes a lease just granted by a lock service.
type Grant struct {
	Key   string    // the key as passed to Acquire
	Token string    // random, unique per acquisition
	Fence uint64    // strictly increasing per key
	Until time.Time // when the lease expires unless extended
}

// Lease is one holder's exclusive right to a key, valid until Until unless
// refreshed. It is safe for concurrent use.
//
// Unless Config.DisableAutoRefresh is set, a background goroutine extends the
// lease every Config.RefreshInterval. The lease is lost when an extension
// reports it gone, or when its expiry passes without a successful extension;
// Done is then closed and Err returns an error matching ErrLeaseLost.
type Lease struct {
	grant  Grant
	cfg    Config
	driver LeaseDriver

	opMu sync.Mutex // serializes driver calls

	mu     sync.Mutex
	until  time.Time
	err    error // nil while held; matches ErrLeaseLost or ErrNotHeld after
	done   chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	stopMu sync.Once
}

// NewLease wraps a grant made by a lock service in a Lease whose life is
// managed through d. cfg must be the locker's config (defaults applied by
// NewLease). It starts the refresh and expiry watcher at once.
func NewLease(g Grant, cfg Config, d LeaseDriver) *Lease {
	l := &Lease{
		grant:  g,
		cfg:    cfg.WithDefaults(),
		driver: d,
		until:  g.Until,
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
	}
	l.wg.Add(1)
	go l.watch()
	return l
}

// Key is the locked key as passed to Acquire.
func (l *Lease) Key() string { return l.grant.Key }

// Token is the random value that identifies this acquisition.
func (l *Lease) Token() string { return l.grant.Token }

// Fence is strictly greater than the fence of every earlier lease of the
// same key; pass it to the guarded resource so it can refuse stale writers.
func (l *Lease) Fence() uint64 { return l.grant.Fence }

// Until is when the lease expires unless it is refreshed.
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// Done is closed when the lease ends: lost, or released.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err is nil while the lease is held. After Done is closed it returns an
// error matching ErrLeaseLost when the lease was lost, or ErrNotHeld when it
// was released.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Refresh extends the lease to about now + Config.Expiry. It returns an error
// matching ErrLeaseLost when the lease was lost (and the lease then ends), or
// ErrNotHeld after Release. A lease already past its Until by this process's
// clock is lost: Refresh does not ask the service to revive it.
func (l *Lease) Refresh(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	return l.extend(ctx)
}

// Release frees the lock and ends the lease. It uses a context that the
// caller's cancellation cannot break (bounded by Config.Expiry), so a
// cancelled request still frees the key promptly. It returns an error
// matching ErrLeaseLost when the lease had been lost before, so the caller
// learns that its critical section was not exclusive, and ErrNotHeld when it
// was already released.
func (l *Lease) Release(ctx context.Context) error {
	l.stopWatch()
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.Expiry)
	defer cancel()
	until := l.Until()
	err := l.driver.Release(rctx, l)
	if err != nil && errors.Is(err, ErrLeaseLost) {
		l.end(fmt.Errorf("lock %q: release: %w", l.grant.Key, err))
		return l.Err()
	}
	if !time.Now().Before(until) {
		// Expired before the release (the watcher had not noticed yet): the
		// key was free for others, so the critical section may not have
		// been exclusive even if the service still named this lease.
		l.end(l.expiredError(until))
		return l.Err()
	}
	l.end(fmt.Errorf("lock %q: %w: released", l.grant.Key, ErrNotHeld))
	if err != nil {
		// The service did not confirm; the key frees itself at expiry.
		return fmt.Errorf("lock %q: release: %w", l.grant.Key, err)
	}
	return nil
}

func (l *Lease) extend(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if until := l.Until(); !time.Now().Before(until) {
		// Past its expiry by this process's clock the lease is lost, even if
		// the service has not noticed yet: never resurrect it.
		l.end(l.expiredError(until))
		return l.Err()
	}
	until, err := l.driver.Extend(ctx, l)
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			l.end(fmt.Errorf("lock %q: refresh: %w", l.grant.Key, err))
			return l.Err()
		}
		return fmt.Errorf("lock %q: refresh: %w", l.grant.Key, err)
	}
	l.mu.Lock()
	l.until = until
	l.mu.Unlock()
	return nil
}

func (l *Lease) expiredError(until time.Time) error {
	return fmt.Errorf("lock %q: %w: expired at %s", l.grant.Key, ErrLeaseLost, until.Format(time.RFC3339Nano))
}

// end records why the lease ended and closes Done, once.
func (l *Lease) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = err
	close(l.done)
	if errors.Is(err, ErrLeaseLost) {
		l.cfg.Logger.Warn("lock lease lost", "key", l.grant.Key, "fence", l.grant.Fence, "err", err)
	}
}

func (l *Lease) stopWatch() {
	l.stopMu.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// watch refreshes the lease and ends it when its expiry passes.
func (l *Lease) watch() {
	defer l.wg.Done()
	next := time.Now().Add(l.cfg.RefreshInterval)
	for {
		until := l.Until()
		wake := until
		if !l.cfg.DisableAutoRefresh && next.Before(wake) {
			wake = next
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-l.done:
			t.Stop()
			return
		case <-t.C:
		}
		if until := l.Until(); !time.Now().Before(until) {
			l.end(l.expiredError(until))
			return
		}
		if l.cfg.DisableAutoRefresh {
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), l.Until())
		err := l.extend(ctx)
		cancel()
		next = time.Now().Add(l.cfg.RefreshInterval)
		if err != nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNotHeld) {
			l.cfg.Logger.Warn("lock refresh failed, retrying", "key", l.grant.Key, "err", err)
			// Retry sooner than a full interval: the lease is at risk.
			next = time.Now().Add(l.cfg.RefreshInterval / 4)
		}
	}
}
