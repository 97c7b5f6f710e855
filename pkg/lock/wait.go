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
// ends, with an error that matches ErrTimeout and also ctx.Err() or the last
// attempt's error (ErrLocked or ErrUnavailable).
func Wait(ctx context.Context, cfg Config, key string, try TryFunc, wake WakeFunc) (*Lease, error) {
	cfg = cfg.WithDefaults()
	deadline := time.Now().Add(cfg.Timeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	policy := backoff.Policy{Initial: cfg.RetryInterval, Max: cfg.MaxRetryInterval}
	for attempt := 0; ; attempt++ {
		var woken <-chan struct{}
		if wake != nil {
			woken = wake() // subscribe before trying, so no release is missed
		}
		lease, err := try(wctx)
		if err == nil {
			return lease, nil
		}
		if !errors.Is(err, ErrLocked) && !errors.Is(err, ErrUnavailable) {
			if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
				return nil, fmt.Errorf("lock %q: %w: %w", key, ErrTimeout, cerr)
			}
			if wctx.Err() != nil && ctx.Err() == nil {
				return nil, fmt.Errorf("lock %q: %w after %v: %w", key, ErrTimeout, cfg.Timeout, err)
			}
			return nil, err
		}
		t := time.NewTimer(policy.Delay(attempt))
		select {
		case <-t.C:
		case <-woken:
			t.Stop()
		case <-wctx.Done():
			t.Stop()
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("lock %q: %w: %w (last attempt: %w)", key, ErrTimeout, cerr, err)
			}
			return nil, fmt.Errorf("lock %q: %w after %v: %w", key, ErrTimeout, cfg.Timeout, err)
		}
	}
}
