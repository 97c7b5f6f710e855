package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
)

// TryFunc makes one attempt to acquire a key. It returns an error matching
// ErrLocked when another holder has the key, ErrUnavailable when the service
// could not be reached; any other error ends the wait at once.
type TryFunc func(ctx context.Context) (*Lease, error)

// WakeFunc subscribes to the next release of the key: the returned channel
// is closed (or receives) when the key may have become free. Implementations
// without notifications pass nil to Wait.
type WakeFunc func() <-chan struct{}

// Wait implements Acquire's waiting for every Locker: it calls try until it
// succeeds, sleeping between attempts for a backoff delay with full jitter
// (ceilings from cfg.RetryInterval doubling to cfg.MaxRetryInterval), waking
// early when wake's channel fires. It gives up after cfg.Timeout or when ctx
// ends, with an error that matches ErrTimeout and also ctx.Err() (when the
// caller's context ended the wait) and the last refused attempt's error
// (ErrLocked or ErrUnavailable). When attempts have failed with
// ErrUnavailable for cfg.UnavailableTimeout in a row (measured from the
// start of the first of them), it gives up early with an error matching
// ErrTimeout and that attempt's error. A context that has already ended
// grants nothing: try is not called. Any other error from try, and one
// matching ErrPermissionDenied (even with ErrUnavailable), ends the wait at
// once and is returned as is.
func Wait(ctx context.Context, cfg Config, key string, try TryFunc, wake WakeFunc) (*Lease, error) {
	cfg = cfg.WithDefaults()
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	policy := backoff.Policy{Initial: cfg.RetryInterval, Max: cfg.MaxRetryInterval}
	var (
		last             error     // the last ErrLocked or ErrUnavailable
		unavailableSince time.Time // start of the first of the failing attempts in a row
	)
	for attempt := 0; ; attempt++ {
		if wctx.Err() != nil {
			return nil, timeoutError(ctx, key, cfg.Timeout, last)
		}
		var woken <-chan struct{}
		if wake != nil {
			woken = wake() // subscribe before trying, so no release is missed
		}
		start := time.Now()
		lease, err := try(wctx)
		if err == nil {
			return lease, nil
		}
		if wctx.Err() != nil {
			// The attempt may have failed because the wait ended under it:
			// report the end of the wait, never a bare context error, and
			// never a context error the caller's context did not cause.
			if !isContextError(err) {
				last = err
			}
			return nil, timeoutError(ctx, key, cfg.Timeout, last)
		}
		if errors.Is(err, ErrPermissionDenied) || (!errors.Is(err, ErrLocked) && !errors.Is(err, ErrUnavailable)) {
			return nil, err
		}
		last = err
		switch {
		case !errors.Is(err, ErrUnavailable):
			unavailableSince = time.Time{}
		case unavailableSince.IsZero():
			unavailableSince = start
		}
		if !unavailableSince.IsZero() && time.Since(unavailableSince) >= cfg.UnavailableTimeout {
			return nil, fmt.Errorf("lock %q: %w: the lock service was unavailable for %v: %w",
				key, ErrTimeout, cfg.UnavailableTimeout, err)
		}
		t := time.NewTimer(policy.Delay(attempt))
		select {
		case <-t.C:
		case <-woken:
			t.Stop()
		case <-wctx.Done():
			t.Stop()
			return nil, timeoutError(ctx, key, cfg.Timeout, last)
		}
	}
}

// timeoutError is Wait's error when the wait ended without the lock: it
// matches ErrTimeout, ctx.Err() when the caller's context ended it, and cause
// (the last refused attempt) when there is one.
func timeoutError(ctx context.Context, key string, timeout time.Duration, cause error) error {
	cerr := ctx.Err()
	switch {
	case cerr != nil && cause != nil:
		return fmt.Errorf("lock %q: %w: %w (last attempt: %w)", key, ErrTimeout, cerr, cause)
	case cerr != nil:
		return fmt.Errorf("lock %q: %w: %w", key, ErrTimeout, cerr)
	case cause != nil:
		return fmt.Errorf("lock %q: %w after %v: %w", key, ErrTimeout, timeout, cause)
	default:
		return fmt.Errorf("lock %q: %w after %v", key, ErrTimeout, timeout)
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
