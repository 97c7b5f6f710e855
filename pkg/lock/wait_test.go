package lock_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// waitConfig retries fast and gives up after timeout.
func waitConfig(timeout time.Duration) lock.Config {
	return lock.Config{Timeout: timeout, RetryInterval: time.Millisecond, MaxRetryInterval: 5 * time.Millisecond}
}

func grant(key string) *lock.Lease {
	return lock.NewLease(lock.Grant{Key: key, Token: "t", Fence: 1, Until: time.Now().Add(time.Minute)},
		lock.Config{DisableAutoRefresh: true, Expiry: time.Minute}, &fakeDriver{})
}

// locked is a TryFunc that refuses n times, then grants.
func locked(n int, calls *atomic.Int32) lock.TryFunc {
	return func(ctx context.Context) (*lock.Lease, error) {
		if int(calls.Add(1)) <= n {
			return nil, fmt.Errorf("held: %w", lock.ErrLocked)
		}
		return grant("k"), nil
	}
}

func TestWaitRetriesUntilGranted(t *testing.T) {
	var calls atomic.Int32
	lease, err := lock.Wait(t.Context(), waitConfig(time.Minute), "k", locked(5, &calls), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
	if calls.Load() != 6 {
		t.Errorf("%d attempts, want 6", calls.Load())
	}
}

func TestWaitRetriesUnavailable(t *testing.T) {
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		if calls.Add(1) < 3 {
			return nil, fmt.Errorf("down: %w", lock.ErrUnavailable)
		}
		return grant("k"), nil
	}
	lease, err := lock.Wait(t.Context(), waitConfig(time.Minute), "k", try, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
}

func TestWaitOtherErrorEndsAtOnce(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		calls.Add(1)
		return nil, boom
	}
	_, err := lock.Wait(t.Context(), waitConfig(time.Minute), "k", try, nil)
	if err != boom {
		t.Errorf("err = %v, want boom as is", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d attempts, want 1", calls.Load())
	}
}

func TestWaitTimeout(t *testing.T) {
	for name, refusal := range map[string]error{"locked": lock.ErrLocked, "unavailable": lock.ErrUnavailable} {
		t.Run(name, func(t *testing.T) {
			try := func(ctx context.Context) (*lock.Lease, error) { return nil, fmt.Errorf("no: %w", refusal) }
			start := time.Now()
			_, err := lock.Wait(t.Context(), waitConfig(100*time.Millisecond), "k", try, nil)
			if d := time.Since(start); d < 100*time.Millisecond {
				t.Errorf("gave up after %v, before the timeout", d)
			}
			wantIs(t, err, lock.ErrTimeout, refusal)
			wantNotIs(t, err, context.Canceled, context.DeadlineExceeded)
		})
	}
}

// An attempt cut short by the end of the timeout reports the timeout, not a
// context error the caller's context did not cause.
func TestWaitTimeoutDuringAttempt(t *testing.T) {
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		if calls.Add(1) == 1 {
			return nil, lock.ErrLocked
		}
		<-ctx.Done() // a slow network call
		return nil, fmt.Errorf("redis: %w", ctx.Err())
	}
	_, err := lock.Wait(t.Context(), waitConfig(100*time.Millisecond), "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, lock.ErrLocked)
	wantNotIs(t, err, context.Canceled, context.DeadlineExceeded)
}

func TestWaitContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		if calls.Add(1) == 3 {
			cancel()
		}
		return nil, lock.ErrLocked
	}
	_, err := lock.Wait(ctx, waitConfig(time.Minute), "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, context.Canceled, lock.ErrLocked)
}

func TestWaitContextCanceledDuringAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	try := func(ctx context.Context) (*lock.Lease, error) {
		cancel()
		return nil, fmt.Errorf("redis: %w", ctx.Err())
	}
	_, err := lock.Wait(ctx, waitConfig(time.Minute), "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, context.Canceled)
}

func TestWaitContextDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	try := func(ctx context.Context) (*lock.Lease, error) { return nil, lock.ErrLocked }
	_, err := lock.Wait(ctx, waitConfig(time.Minute), "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, context.DeadlineExceeded, lock.ErrLocked)
}

func TestWaitEndedContextNeverTries(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	try := func(ctx context.Context) (*lock.Lease, error) {
		t.Error("try called with an ended context")
		return grant("k"), nil
	}
	_, err := lock.Wait(ctx, waitConfig(time.Minute), "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, context.Canceled)
}

// A wake-up cuts the backoff short: with hour-long retry intervals, the
// second attempt still comes as soon as the wake channel fires.
func TestWaitWake(t *testing.T) {
	cfg := lock.Config{Timeout: time.Minute, RetryInterval: time.Hour, MaxRetryInterval: time.Hour}
	var calls atomic.Int32
	release := make(chan struct{})
	wake := func() <-chan struct{} { return release }
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	start := time.Now()
	lease, err := lock.Wait(t.Context(), cfg, "k", locked(1, &calls), wake)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("granted after %v: the wake-up did not cut the backoff", d)
	}
}

// The wake subscription is taken before each attempt, so a release between
// the attempt and the sleep is not missed.
func TestWaitSubscribesBeforeTrying(t *testing.T) {
	cfg := lock.Config{Timeout: time.Minute, RetryInterval: time.Hour, MaxRetryInterval: time.Hour}
	var subscribed, tried atomic.Int32
	ch := make(chan struct{})
	wake := func() <-chan struct{} {
		subscribed.Add(1)
		return ch
	}
	try := func(ctx context.Context) (*lock.Lease, error) {
		n := tried.Add(1)
		if subscribed.Load() != n {
			t.Errorf("attempt %d made after %d subscriptions", n, subscribed.Load())
		}
		if n == 1 {
			close(ch) // released between the attempt and the sleep
			return nil, lock.ErrLocked
		}
		return grant("k"), nil
	}
	lease, err := lock.Wait(t.Context(), cfg, "k", try, wake)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
}

func wantIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("err = %v, want one matching %v", err, target)
		}
	}
}

func wantNotIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			t.Errorf("err = %v matches %v", err, target)
		}
	}
}

// TestWaitGivesUpOnUnavailableService: a service that stays unavailable
// ends the wait after UnavailableTimeout, long before Timeout, with an error
// that says both (the caller's context never ends it).
func TestWaitGivesUpOnUnavailableService(t *testing.T) {
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		calls.Add(1)
		return nil, fmt.Errorf("nothing listening: %w", lock.ErrUnavailable)
	}
	cfg := waitConfig(time.Hour)
	cfg.UnavailableTimeout = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := lock.Wait(ctx, cfg, "k", try, nil)
	wantIs(t, err, lock.ErrTimeout, lock.ErrUnavailable)
	wantNotIs(t, err, context.DeadlineExceeded, lock.ErrLocked)
	if calls.Load() < 2 {
		t.Errorf("%d attempts, want the service retried within UnavailableTimeout", calls.Load())
	}
}

// TestWaitUnavailableCountsInARow: a refusal by a holder in between starts
// the unavailability over, so outages each shorter than UnavailableTimeout
// do not end the wait even when together they are longer.
func TestWaitUnavailableCountsInARow(t *testing.T) {
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		switch n := calls.Add(1); {
		case n == 6:
			return grant("k"), nil
		case n%2 == 0:
			time.Sleep(80 * time.Millisecond) // three of them: 240ms of outage in all
			return nil, fmt.Errorf("down: %w", lock.ErrUnavailable)
		default:
			return nil, fmt.Errorf("held: %w", lock.ErrLocked)
		}
	}
	cfg := waitConfig(time.Hour)
	cfg.UnavailableTimeout = 200 * time.Millisecond
	lease, err := lock.Wait(t.Context(), cfg, "k", try, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(t.Context())
}

// TestWaitPermissionDeniedEndsAtOnce: refused credentials are not retried,
// even when the locker also reports the service unavailable.
func TestWaitPermissionDeniedEndsAtOnce(t *testing.T) {
	var calls atomic.Int32
	try := func(ctx context.Context) (*lock.Lease, error) {
		calls.Add(1)
		return nil, fmt.Errorf("%w: WRONGPASS: %w", lock.ErrUnavailable, lock.ErrPermissionDenied)
	}
	_, err := lock.Wait(t.Context(), waitConfig(time.Hour), "k", try, nil)
	wantIs(t, err, lock.ErrPermissionDenied)
	wantNotIs(t, err, lock.ErrTimeout)
	if calls.Load() != 1 {
		t.Errorf("%d attempts, want 1", calls.Load())
	}
}
