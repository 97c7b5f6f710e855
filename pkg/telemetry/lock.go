package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Locker is a lock.Locker decorator that records one span
// ("artifactstore.lock."+call, with the lock key and, once granted, the
// fence) per call, the time spent acquiring (lock_wait_seconds), and for
// each lease granted its hold time (lock_hold_seconds, observed when the
// lease ends) and whether it was lost (lock_leases_lost_total).
//
// It keeps the optional capabilities of what it wraps: it implements
// lock.Inspector, lock.ForceUnlocker and lock.Pinger whatever it wraps, and their
// methods fail with an error matching errors.ErrUnsupported when the
// wrapped Locker lacks them (which is what the store reports when its
// locker lacks them); it implements io.Closer and closes the wrapped
// Locker when that is an io.Closer. Unwrap returns the wrapped Locker.
type Locker struct {
	l lock.Locker
	t *Telemetry
}

var (
	_ lock.Locker        = (*Locker)(nil)
	_ lock.Inspector     = (*Locker)(nil)
	_ lock.ForceUnlocker = (*Locker)(nil)
	_ lock.Pinger        = (*Locker)(nil)
	_ io.Closer          = (*Locker)(nil)
)

// WrapLocker returns l decorated with t's spans and metrics.
func (t *Telemetry) WrapLocker(l lock.Locker) *Locker { return &Locker{l: l, t: t} }

// Unwrap returns the wrapped Locker.
func (d *Locker) Unwrap() lock.Locker { return d.l }

// Acquire implements lock.Locker.
func (d *Locker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	return d.acquire(ctx, "acquire", key, d.l.Acquire)
}

// TryAcquire implements lock.Locker.
func (d *Locker) TryAcquire(ctx context.Context, key string) (*lock.Lease, error) {
	return d.acquire(ctx, "try-acquire", key, d.l.TryAcquire)
}

func (d *Locker) acquire(ctx context.Context, op, key string, fn func(context.Context, string) (*lock.Lease, error)) (*lock.Lease, error) {
	ctx, span := d.t.start(ctx, Namespace+".lock."+op, AttrLockKey.String(key))
	begin := time.Now()
	lease, err := fn(ctx, key)
	if m := d.t.metrics(); m != nil {
		result := "acquired"
		if err != nil {
			result = "failed"
		}
		m.lockWait.WithLabelValues(op, result).Observe(time.Since(begin).Seconds())
		if err == nil {
			go m.watchLease(lease, time.Now())
		}
	}
	if span != nil && err == nil {
		span.SetAttributes(AttrFence.Int64(int64(lease.Fence())))
	}
	endSpan(span, err, ErrorKind(err))
	return lease, err
}

// watchLease observes the lease's hold time when it ends, and counts it
// lost unless it was released. It returns when the lease ends.
func (m *metrics) watchLease(lease *lock.Lease, granted time.Time) {
	<-lease.Done()
	m.lockHold.Observe(time.Since(granted).Seconds())
	if errors.Is(lease.Err(), lock.ErrLeaseLost) {
		m.leasesLost.Inc()
	}
}

// Inspect implements lock.Inspector by calling the wrapped Locker's; it
// fails with an error matching errors.ErrUnsupported when the wrapped
// Locker is not a lock.Inspector.
func (d *Locker) Inspect(ctx context.Context, key string) (lock.Status, error) {
	in, ok := d.l.(lock.Inspector)
	if !ok {
		return lock.Status{}, fmt.Errorf("telemetry: inspect lock %q: %T is not a lock.Inspector: %w", key, d.l, errors.ErrUnsupported)
	}
	return d.status(ctx, "inspect", key, in.Inspect)
}

// ForceUnlock implements lock.ForceUnlocker by calling the wrapped
// Locker's; it fails with an error matching errors.ErrUnsupported when the
// wrapped Locker is not a lock.ForceUnlocker.
func (d *Locker) ForceUnlock(ctx context.Context, key string) (lock.Status, error) {
	fu, ok := d.l.(lock.ForceUnlocker)
	if !ok {
		return lock.Status{}, fmt.Errorf("telemetry: force unlock %q: %T is not a lock.ForceUnlocker: %w", key, d.l, errors.ErrUnsupported)
	}
	return d.status(ctx, "force-unlock", key, fu.ForceUnlock)
}

// Ping implements lock.Pinger by calling the wrapped Locker's, in a span;
// it fails with an error matching errors.ErrUnsupported when the wrapped
// Locker is not a lock.Pinger.
func (d *Locker) Ping(ctx context.Context) error {
	p, ok := d.l.(lock.Pinger)
	if !ok {
		return fmt.Errorf("telemetry: ping: %T is not a lock.Pinger: %w", d.l, errors.ErrUnsupported)
	}
	ctx, span := d.t.start(ctx, Namespace+".lock.ping")
	err := p.Ping(ctx)
	endSpan(span, err, ErrorKind(err))
	return err
}

func (d *Locker) status(ctx context.Context, op, key string, fn func(context.Context, string) (lock.Status, error)) (lock.Status, error) {
	ctx, span := d.t.start(ctx, Namespace+".lock."+op, AttrLockKey.String(key))
	st, err := fn(ctx, key)
	endSpan(span, err, ErrorKind(err))
	return st, err
}

// Close closes the wrapped Locker when it is an io.Closer; otherwise it
// does nothing and returns nil.
func (d *Locker) Close() error {
	if c, ok := d.l.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
