package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// LockOptions are the optional parameters of WithLock.
type LockOptions struct {
	// Timeout bounds the wait for the lock. Default Config.LockTimeout.
	// The context's deadline, when sooner, ends the wait too.
	Timeout time.Duration
}

// heldLock is the context key under which WithLock records the lease it
// holds on an artifact, for this Store's writes to that artifact.
type heldLock struct {
	s   *Store
	uri string // the artifact URI, without version
}

// heldLease returns the lease on u that a WithLock of this Store holds in
// ctx, nil when there is none.
func (s *Store) heldLease(ctx context.Context, u URI) *lock.Lease {
	l, _ := ctx.Value(heldLock{s: s, uri: u.Artifact().String()}).(*lock.Lease)
	return l
}

// WithLock runs fn while holding the lock of the artifact uri (its version,
// if any, is ignored): no other writer of the artifact, in any process that
// shares the lock service, commits while fn runs. The wait for the lock is
// bounded by opts.Timeout (default Config.LockTimeout) and the deadline of
// ctx; when it ends without the lock the error matches ErrLockTimeout and
// states the timeout, and fn is not called.
//
// The writes this Store makes to that artifact with fn's context (Upload,
// tag changes, PruneVersions, Delete, ...) run under the held lock: they do
// not acquire it again, and their commits carry its lease's fence, so they
// are refused (ErrConflict, ErrLeaseLost) once the lease is lost. Writes to
// other artifacts, and writes made with another context (or by another
// Store), take their own locks as usual; such a write to the same artifact
// would wait for fn to return, and time out. WithLock calls may nest, on
// the same artifact (the inner one reuses the held lock) or on others (take
// them in a consistent order to avoid deadlocks).
//
// fn's context is cancelled when the lease is lost (expired, broken by
// ForceUnlock, the lock service gone) with context.Cause matching
// ErrLeaseLost, and when fn returns. The lease is refreshed automatically
// while fn runs. WithLock returns fn's error; when fn returned nil but the
// lease was lost meanwhile, it returns an error matching ErrLeaseLost, so
// that the caller learns its critical section was not exclusive.
//
// Reads take no lock and are not blocked by WithLock. With
// Config.DisableLocking there is no lock to hold and the error matches
// ErrUnsupported.
func (s *Store) WithLock(ctx context.Context, uri string, opts LockOptions, fn func(ctx context.Context) error) (err error) {
	ctx, op := s.tel.Start(ctx, "with-lock", uri) // fn's calls are its span's children
	fnErr := false                                // fn's own error is the caller's to log
	defer func() {
		op.End(err, errorKind(err))
		if !fnErr {
			s.logResult(ctx, "with-lock", uri, err)
		}
	}()
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	u = u.Artifact()
	switch {
	case fn == nil:
		return invalidf("with lock %s: nil function", u)
	case opts.Timeout < 0:
		return invalidf("with lock %s: negative timeout %v", u, opts.Timeout)
	case s.locker == nil:
		return fmt.Errorf("with lock %s: locking is disabled: %w", u, ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.heldLease(ctx, u) != nil { // nested: the lock is already held
		fnErr = true
		return fn(ctx)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = s.cfg.LockTimeout
	}
	lease, err := s.acquireWithin(ctx, u, timeout)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(context.WithValue(ctx, heldLock{s: s, uri: u.String()}, lease))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-lease.Done():
			cause := lease.Err()
			if cause == nil {
				cause = ErrLeaseLost
			}
			cancel(fmt.Errorf("lock of %s: %w", u, cause))
		case <-fctx.Done():
		}
	}()
	ferr := fn(fctx)
	lost := lease.Err() // before the release ends the lease
	cancel(context.Canceled)
	<-watched
	rerr := lease.Release(context.WithoutCancel(ctx))
	switch {
	case ferr != nil:
		fnErr = true
		return ferr
	case lost == nil && errors.Is(rerr, ErrLeaseLost):
		lost = rerr
	case rerr != nil && lost == nil:
		s.log.Warn("store: lock release", "uri", u.String(), "fence", lease.Fence(), "err", rerr)
	}
	if lost != nil {
		return fmt.Errorf("with lock %s: the lease was lost while the function ran: %w", u, lost)
	}
	return nil
}
