package locktest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Bounds of the timed checks. They are generous on purpose: the suite runs
// under -race on loaded machines and against lock servers over loopback.
const (
	// slack is added to every "within" bound.
	slack = 2 * time.Second
	// handoffBackoff is the waiter's retry interval in the Handoff
	// subtest: a waiter that only polls sleeps up to that long.
	handoffBackoff = 30 * time.Second
	// handoffHold is how long the holder keeps the key while the waiter
	// waits.
	handoffHold = 300 * time.Millisecond
	// maxHandoff bounds the time from Release to the waiter's grant.
	maxHandoff = time.Second
)

// NewLocker returns a fresh locker configured with cfg (the factory may set
// more fields, such as Logger, but must keep the suite's values). It is
// called at least once per subtest; lockers from separate calls are used for
// separate keys, so they may or may not share state. It should register its
// own cleanup (closing the locker, stopping servers) with t.Cleanup.
type NewLocker func(t *testing.T, cfg lock.Config) lock.Locker

// Run runs the conformance suite against the lockers newLocker makes, one
// named subtest per property, each with a fresh locker. Lockers must also
// implement lock.Inspector and lock.ForceUnlocker: the subtests that need
// them fail otherwise, and lock.Pinger.
func Run(t *testing.T, newLocker func(t *testing.T, cfg lock.Config) lock.Locker) {
	t.Helper()
	run := rand.Text()[:8] // keys unique per run: lock servers may outlive a test
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"MutualExclusion", testMutualExclusion},
		{"TryAcquireHeld", testTryAcquireHeld},
		{"AcquireTimeout", testAcquireTimeout},
		{"ContextCanceled", testContextCanceled},
		{"ContextDeadline", testContextDeadline},
		{"EndedContextGrantsNothing", testEndedContextGrantsNothing},
		{"ExpiryFreesVanishedHolder", testExpiryFreesVanishedHolder},
		{"DoneClosesOnExpiry", testDoneClosesOnExpiry},
		{"RefreshKeepsLease", testRefreshKeepsLease},
		{"AutoRefreshKeepsLease", testAutoRefreshKeepsLease},
		{"ReleaseAfterLoss", testReleaseAfterLoss},
		{"DoubleRelease", testDoubleRelease},
		{"FencesIncrease", testFencesIncrease},
		{"KeysIndependent", testKeysIndependent},
		{"UnusualKeys", testUnusualKeys},
		{"InvalidKeys", testInvalidKeys},
		{"Inspect", testInspect},
		{"ForceUnlock", testForceUnlock},
		{"ForceUnlockWithoutRefresh", testForceUnlockWithoutRefresh},
		{"Handoff", testHandoff},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &suite{t: t, newLocker: newLocker, run: run})
		})
	}
}

// suite is one subtest's context.
type suite struct {
	t         *testing.T
	newLocker NewLocker
	run       string
}

// config is the base configuration of the subtests: long expiry and timeout
// (nothing expires or times out unless a subtest asks for it) and short
// retry intervals.
func (s *suite) config() lock.Config {
	return lock.Config{
		Timeout:          10 * time.Second,
		RetryInterval:    5 * time.Millisecond,
		MaxRetryInterval: 50 * time.Millisecond,
		Expiry:           10 * time.Second,
		KeyPrefix:        "locktest:" + s.run + ":",
	}
}

// locker makes a fresh locker with the base configuration changed by edit.
func (s *suite) locker(edit func(*lock.Config)) lock.Locker {
	s.t.Helper()
	cfg := s.config()
	if edit != nil {
		edit(&cfg)
	}
	l := s.newLocker(s.t, cfg)
	if l == nil {
		s.t.Fatal("newLocker returned nil")
	}
	return l
}

// key returns a key unique to the subtest and the run.
func (s *suite) key(name string) string {
	return fmt.Sprintf("locktest/%s/%s/%s", s.run, s.t.Name(), name)
}

func inspector(t *testing.T, l lock.Locker) lock.Inspector {
	t.Helper()
	in, ok := l.(lock.Inspector)
	if !ok {
		t.Fatalf("%T does not implement lock.Inspector, which the suite requires", l)
	}
	return in
}

// testPing: Ping answers on a fresh locker and while a key is held, and an
// ended context ends it with the context's error.
func testPing(t *testing.T, s *suite) {
	l := s.locker(nil)
	p, ok := l.(lock.Pinger)
	if !ok {
		t.Fatalf("%T does not implement lock.Pinger, which the suite requires", l)
	}
	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("Ping of a fresh locker: %v", err)
	}
	lease := tryAcquire(t, l, s.key("k"))
	if err := p.Ping(t.Context()); err != nil {
		t.Errorf("Ping while a key is held: %v", err)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with a cancelled context: %v, want context.Canceled", err)
	}
}

func forceUnlocker(t *testing.T, l lock.Locker) lock.ForceUnlocker {
	t.Helper()
	fu, ok := l.(lock.ForceUnlocker)
	if !ok {
		t.Fatalf("%T does not implement lock.ForceUnlocker, which the suite requires", l)
	}
	return fu
}

// acquire takes key with Acquire and releases it when the test ends (the
// error of that release is ignored: the test may have lost the lease).
func acquire(t *testing.T, l lock.Locker, key string) *lock.Lease {
	t.Helper()
	return hold(t, "Acquire", l.Acquire, key)
}

// tryAcquire is acquire with TryAcquire.
func tryAcquire(t *testing.T, l lock.Locker, key string) *lock.Lease {
	t.Helper()
	return hold(t, "TryAcquire", l.TryAcquire, key)
}

// hold takes key with take (named op in failures) and releases it when the
// test ends.
func hold(t *testing.T, op string, take func(context.Context, string) (*lock.Lease, error), key string) *lock.Lease {
	t.Helper()
	lease, err := take(t.Context(), key)
	if err != nil {
		t.Fatalf("%s(%q): %v", op, key, err)
	}
	checkLease(t, lease, key)
	t.Cleanup(func() { _ = lease.Release(context.Background()) })
	return lease
}

func checkLease(t *testing.T, lease *lock.Lease, key string) {
	t.Helper()
	switch {
	case lease == nil:
		t.Fatalf("lease of %q is nil without an error", key)
	case lease.Key() != key:
		t.Errorf("lease.Key() = %q, want %q", lease.Key(), key)
	case lease.Token() == "":
		t.Errorf("lease of %q has an empty token", key)
	case lease.Fence() == 0:
		t.Errorf("lease of %q has fence 0", key)
	case !lease.Until().After(time.Now()):
		t.Errorf("lease of %q granted already expired: until %v", key, lease.Until())
	case lease.Err() != nil:
		t.Errorf("lease of %q: Err() = %v right after the grant", key, lease.Err())
	}
}

// wantLocked checks that TryAcquire is refused with ErrLocked.
func wantLocked(t *testing.T, l lock.Locker, key string) {
	t.Helper()
	lease, err := l.TryAcquire(t.Context(), key)
	if !errors.Is(err, lock.ErrLocked) {
		if lease != nil {
			_ = lease.Release(context.Background())
		}
		t.Fatalf("TryAcquire(%q) on a held key: lease %v, err %v; want ErrLocked", key, lease != nil, err)
	}
	if lease != nil {
		t.Fatalf("TryAcquire(%q) returned a lease with %v", key, err)
	}
}

// waitDone waits up to within for the lease's Done channel.
func waitDone(t *testing.T, lease *lock.Lease, within time.Duration) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-lease.Done():
	case <-timer.C:
		t.Fatalf("Done of lease %q (fence %d) not closed within %v; Err() = %v", lease.Key(), lease.Fence(), within, lease.Err())
	}
}

func isDone(lease *lock.Lease) bool {
	select {
	case <-lease.Done():
		return true
	default:
		return false
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want one matching %v", what, err, target)
	}
}

// holder is the identity a lease taken by this process must report.
func holder(t *testing.T) lock.Holder {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v", err)
	}
	return lock.Holder{Host: host, PID: os.Getpid()}
}

// testMutualExclusion: N goroutines each increment a shared counter M times
// under the lock; no increment is lost and no two holders overlap. The
// counter is read and written with separate atomic operations (with a yield
// in between), so the read-modify-write is not atomic and only the lock
// prevents lost updates, while the race detector stays quiet for lockers
// whose ordering it cannot see (file locks, lock servers).
func testMutualExclusion(t *testing.T, s *suite) {
	l := s.locker(func(c *lock.Config) { c.Timeout = time.Minute })
	key := s.key("counter")
	const workers, rounds = 8, 25
	var counter, inside atomic.Int64
	var lastFence atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				lease, err := l.Acquire(t.Context(), key)
				if err != nil {
					t.Errorf("worker %d round %d: Acquire: %v", w, i, err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("worker %d round %d: %d holders inside the critical section", w, i, n)
				}
				if prev := lastFence.Load(); lease.Fence() <= prev {
					t.Errorf("worker %d round %d: fence %d not greater than the previous holder's %d", w, i, lease.Fence(), prev)
				}
				lastFence.Store(lease.Fence())
				v := counter.Load()
				runtime.Gosched()
				counter.Store(v + 1)
				inside.Add(-1)
				if err := lease.Release(t.Context()); err != nil {
					t.Errorf("worker %d round %d: Release: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := counter.Load(); got != workers*rounds {
		t.Errorf("counter = %d after %d locked increments: %d lost", got, workers*rounds, workers*rounds-got)
	}
}

func testTryAcquireHeld(t *testing.T, s *suite) {
	l := s.locker(nil)
	key := s.key("k")
	lease := tryAcquire(t, l, key)
	wantLocked(t, l, key)
	// Acquire refuses as well, within its timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if got, err := l.Acquire(ctx, key); err == nil {
		_ = got.Release(context.Background())
		t.Fatalf("Acquire(%q) on a held key succeeded", key)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	tryAcquire(t, l, key)
}

func testAcquireTimeout(t *testing.T, s *suite) {
	const timeout = 300 * time.Millisecond
	l := s.locker(func(c *lock.Config) { c.Timeout = timeout })
	key := s.key("k")
	tryAcquire(t, l, key)
	start := time.Now()
	lease, err := l.Acquire(t.Context(), key)
	elapsed := time.Since(start)
	if lease != nil {
		t.Fatalf("Acquire on a held key returned a lease (err %v)", err)
	}
	wantErr(t, "Acquire on a held key", err, lock.ErrTimeout)
	if errors.Is(err, context.Canceled) {
		t.Errorf("Acquire timed out by Config.Timeout, yet err matches context.Canceled: %v", err)
	}
	if elapsed < timeout-10*time.Millisecond || elapsed > timeout+slack {
		t.Errorf("Acquire gave up after %v, want about the timeout %v", elapsed, timeout)
	}
}

func testContextCanceled(t *testing.T, s *suite) {
	l := s.locker(func(c *lock.Config) { c.Timeout = time.Minute })
	key := s.key("k")
	tryAcquire(t, l, key)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stop := time.AfterFunc(100*time.Millisecond, cancel)
	defer stop.Stop()
	start := time.Now()
	lease, err := l.Acquire(ctx, key)
	elapsed := time.Since(start)
	if lease != nil {
		t.Fatalf("Acquire returned a lease (err %v)", err)
	}
	wantErr(t, "Acquire cancelled while waiting", err, lock.ErrTimeout)
	wantErr(t, "Acquire cancelled while waiting", err, context.Canceled)
	if elapsed > 100*time.Millisecond+slack {
		t.Errorf("Acquire returned %v after it started, long after the cancellation at 100ms", elapsed)
	}
}

func testContextDeadline(t *testing.T, s *suite) {
	const deadline = 300 * time.Millisecond
	l := s.locker(func(c *lock.Config) { c.Timeout = time.Minute })
	key := s.key("k")
	tryAcquire(t, l, key)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	lease, err := l.Acquire(ctx, key)
	elapsed := time.Since(start)
	if lease != nil {
		t.Fatalf("Acquire returned a lease (err %v)", err)
	}
	wantErr(t, "Acquire past the context deadline", err, lock.ErrTimeout)
	wantErr(t, "Acquire past the context deadline", err, context.DeadlineExceeded)
	if elapsed < deadline-10*time.Millisecond || elapsed > deadline+slack {
		t.Errorf("Acquire gave up after %v, want about the context deadline %v", elapsed, deadline)
	}
}

// testEndedContextGrantsNothing: every call with a context that has already
// ended fails with the context's error, and no lease is granted.
func testEndedContextGrantsNothing(t *testing.T, s *suite) {
	l := s.locker(nil)
	key := s.key("k")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	lease, err := l.Acquire(ctx, key)
	if lease != nil {
		_ = lease.Release(context.Background())
		t.Fatalf("Acquire with a cancelled context granted a lease")
	}
	wantErr(t, "Acquire with a cancelled context", err, lock.ErrTimeout)
	wantErr(t, "Acquire with a cancelled context", err, context.Canceled)

	lease, err = l.TryAcquire(ctx, key)
	if lease != nil {
		_ = lease.Release(context.Background())
		t.Fatalf("TryAcquire with a cancelled context granted a lease")
	}
	wantErr(t, "TryAcquire with a cancelled context", err, context.Canceled)

	_, err = inspector(t, l).Inspect(ctx, key)
	wantErr(t, "Inspect with a cancelled context", err, context.Canceled)
	_, err = forceUnlocker(t, l).ForceUnlock(ctx, key)
	wantErr(t, "ForceUnlock with a cancelled context", err, context.Canceled)

	// Nothing was granted: the key is free.
	tryAcquire(t, l, key)
}

// testExpiryFreesVanishedHolder: a holder that never refreshes nor releases
// (auto refresh off, as if the process had vanished) frees the key after
// Expiry; it learns it lost the lease.
func testExpiryFreesVanishedHolder(t *testing.T, s *suite) {
	const expiry = 400 * time.Millisecond
	l := s.locker(func(c *lock.Config) { c.Expiry = expiry; c.DisableAutoRefresh = true })
	key := s.key("k")
	start := time.Now()
	old := tryAcquire(t, l, key)
	oldUntil := old.Until()

	lease := acquire(t, l, key)
	granted := time.Now()
	if granted.Before(oldUntil) {
		t.Errorf("second lease granted at %v, before the first lease's Until %v", granted, oldUntil)
	}
	if elapsed := granted.Sub(start); elapsed > expiry+slack {
		t.Errorf("second lease granted %v after the first, want about the expiry %v", elapsed, expiry)
	}
	if lease.Fence() <= old.Fence() {
		t.Errorf("fence after expiry %d, not greater than the expired lease's %d", lease.Fence(), old.Fence())
	}
	waitDone(t, old, slack)
	wantErr(t, "Err of the expired lease", old.Err(), lock.ErrLeaseLost)
	wantErr(t, "Refresh of the expired lease", old.Refresh(t.Context()), lock.ErrLeaseLost)
	wantErr(t, "Release of the expired lease", old.Release(t.Context()), lock.ErrLeaseLost)
	// The stale release did not free the new lease.
	wantLocked(t, l, key)
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("Release of the new lease: %v", err)
	}
}

func testDoneClosesOnExpiry(t *testing.T, s *suite) {
	const expiry = 300 * time.Millisecond
	l := s.locker(func(c *lock.Config) { c.Expiry = expiry; c.DisableAutoRefresh = true })
	lease := tryAcquire(t, l, s.key("k"))
	until := lease.Until()
	if isDone(lease) {
		t.Fatalf("Done closed right after the grant; Err() = %v", lease.Err())
	}
	waitDone(t, lease, expiry+slack)
	if now := time.Now(); now.Before(until) {
		t.Errorf("Done closed at %v, before the lease's Until %v", now, until)
	}
	wantErr(t, "Err after expiry", lease.Err(), lock.ErrLeaseLost)
}

// testRefreshKeepsLease: with auto refresh off, refreshing by hand for
// several expiry periods keeps the key.
func testRefreshKeepsLease(t *testing.T, s *suite) {
	const expiry = time.Second
	l := s.locker(func(c *lock.Config) { c.Expiry = expiry; c.DisableAutoRefresh = true })
	key := s.key("k")
	lease := tryAcquire(t, l, key)
	first := lease.Until()
	end := time.Now().Add(5 * expiry / 2)
	tick := time.NewTicker(expiry / 10)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		if err := lease.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		wantLocked(t, l, key)
	}
	if isDone(lease) {
		t.Fatalf("Done closed although the lease was refreshed; Err() = %v", lease.Err())
	}
	if got := lease.Until(); !got.After(first.Add(expiry)) {
		t.Errorf("Until after refreshing for %v is %v, not later than the first Until %v + expiry", 5*expiry/2, got, first)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
}

func testAutoRefreshKeepsLease(t *testing.T, s *suite) {
	const expiry = time.Second
	l := s.locker(func(c *lock.Config) { c.Expiry = expiry })
	key := s.key("k")
	lease := tryAcquire(t, l, key)
	first := lease.Until()
	end := time.Now().Add(5 * expiry / 2)
	tick := time.NewTicker(expiry / 10)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		wantLocked(t, l, key)
		if isDone(lease) {
			t.Fatalf("Done closed although auto refresh is on; Err() = %v", lease.Err())
		}
	}
	if got := lease.Until(); !got.After(first.Add(expiry)) {
		t.Errorf("Until after %v of auto refresh is %v, not later than the first Until %v + expiry", 5*expiry/2, got, first)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
}

// testReleaseAfterLoss: Release of a lost lease reports ErrLeaseLost, both
// when the lease already knows (Done closed) and when only the lock service
// does (broken and taken over, Done still open); the stale Release never
// frees the new holder's lock.
func testReleaseAfterLoss(t *testing.T, s *suite) {
	const expiry = 300 * time.Millisecond
	l := s.locker(func(c *lock.Config) { c.DisableAutoRefresh = true })
	short := s.locker(func(c *lock.Config) { c.Expiry = expiry; c.DisableAutoRefresh = true })

	t.Run("Expired", func(t *testing.T) {
		key := s.key("expired")
		lease := tryAcquire(t, short, key)
		waitDone(t, lease, expiry+slack)
		wantErr(t, "Release of an expired lease", lease.Release(t.Context()), lock.ErrLeaseLost)
		wantErr(t, "Err after that Release", lease.Err(), lock.ErrLeaseLost)
		tryAcquire(t, short, key)
	})
	t.Run("TakenOver", func(t *testing.T) {
		key := s.key("taken")
		old := tryAcquire(t, l, key)
		if _, err := forceUnlocker(t, l).ForceUnlock(t.Context(), key); err != nil {
			t.Fatalf("ForceUnlock: %v", err)
		}
		lease := tryAcquire(t, l, key)
		wantErr(t, "Release of a lease taken over", old.Release(t.Context()), lock.ErrLeaseLost)
		if !isDone(old) {
			t.Errorf("Done of the lost lease still open after its Release")
		}
		wantLocked(t, l, key)
		st, err := inspector(t, l).Inspect(t.Context(), key)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if !st.Held || st.Fence != lease.Fence() {
			t.Errorf("after the stale Release: Inspect = %+v, want held with fence %d", st, lease.Fence())
		}
		if err := lease.Release(t.Context()); err != nil {
			t.Errorf("Release of the new lease: %v", err)
		}
	})
}

func testDoubleRelease(t *testing.T, s *suite) {
	l := s.locker(nil)
	key := s.key("k")
	lease := tryAcquire(t, l, key)
	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("first Release: %v", err)
	}
	if !isDone(lease) {
		t.Errorf("Done still open after Release")
	}
	wantErr(t, "Err after Release", lease.Err(), lock.ErrNotHeld)
	wantErr(t, "second Release", lease.Release(t.Context()), lock.ErrNotHeld)
	wantErr(t, "Refresh after Release", lease.Refresh(t.Context()), lock.ErrNotHeld)
	// The released key is free.
	tryAcquire(t, l, key)
}

// testFencesIncrease: the fences of successive leases of a key strictly
// increase, whether taken by Acquire or TryAcquire, from goroutines taking
// turns.
func testFencesIncrease(t *testing.T, s *suite) {
	l := s.locker(nil)
	key := s.key("k")
	var last uint64
	for i := range 12 {
		var lease *lock.Lease
		var err error
		done := make(chan struct{})
		go func() { // another holder each time
			defer close(done)
			if i%2 == 0 {
				lease, err = l.Acquire(t.Context(), key)
			} else {
				lease, err = l.TryAcquire(t.Context(), key)
			}
		}()
		<-done
		if err != nil {
			t.Fatalf("acquisition %d: %v", i, err)
		}
		if lease.Fence() <= last {
			t.Errorf("acquisition %d: fence %d, not greater than the previous %d", i, lease.Fence(), last)
		}
		last = lease.Fence()
		if err := lease.Release(t.Context()); err != nil {
			t.Fatalf("acquisition %d: Release: %v", i, err)
		}
	}
}

func testKeysIndependent(t *testing.T, s *suite) {
	l := s.locker(nil)
	a, b := s.key("a"), s.key("b")
	la := tryAcquire(t, l, a)
	lb := tryAcquire(t, l, b)
	wantLocked(t, l, a)
	wantLocked(t, l, b)
	if err := la.Release(t.Context()); err != nil {
		t.Fatalf("Release(a): %v", err)
	}
	wantLocked(t, l, b)
	if err := lb.Refresh(t.Context()); err != nil {
		t.Errorf("Refresh(b) after releasing a: %v", err)
	}
	tryAcquire(t, l, a)
	if isDone(lb) {
		t.Errorf("lease of b ended: %v", lb.Err())
	}
}

// testUnusualKeys: every valid key works, including keys that look like
// paths, patterns or escapes, and keys that differ only in case or a
// trailing separator are different keys.
func testUnusualKeys(t *testing.T, s *suite) {
	l := s.locker(nil)
	in := inspector(t, l)
	base := s.key("")
	keys := []string{
		"../../../../etc/passwd",
		"/absolute/path",
		"a", "A", "a/", "a/.", "a//b",
		"with space\tand\ttabs\n",
		"nul\x00byte",
		"*", "?", "[a-z]", "{hashtag}", "%s%d", `back\slash`, "..", ".",
		"ключ/🔒",
		"artifact://spec/task/diff?version=3",
		strings.Repeat("x", lock.MaxKeyLength-len(base)),
	}
	leases := make([]*lock.Lease, len(keys))
	for i, k := range keys {
		leases[i] = tryAcquire(t, l, base+k)
	}
	for i, k := range keys {
		st, err := in.Inspect(t.Context(), base+k)
		if err != nil {
			t.Errorf("Inspect(%q): %v", k, err)
			continue
		}
		if !st.Held || st.Key != base+k || st.Fence != leases[i].Fence() {
			t.Errorf("Inspect(%q) = held %v, key %q, fence %d; want held, same key, fence %d", k, st.Held, st.Key, st.Fence, leases[i].Fence())
		}
	}
	for i, k := range keys {
		if err := leases[i].Release(t.Context()); err != nil {
			t.Errorf("Release(%q): %v", k, err)
		}
	}
}

func testInvalidKeys(t *testing.T, s *suite) {
	l := s.locker(nil)
	in, fu := inspector(t, l), forceUnlocker(t, l)
	for name, key := range map[string]string{
		"empty":   "",
		"long":    strings.Repeat("k", lock.MaxKeyLength+1),
		"notUTF8": "bad\xff\xfekey",
	} {
		t.Run(name, func(t *testing.T) {
			lease, err := l.Acquire(t.Context(), key)
			if lease != nil {
				t.Errorf("Acquire granted a lease")
			}
			wantErr(t, "Acquire", err, lock.ErrInvalidKey)
			lease, err = l.TryAcquire(t.Context(), key)
			if lease != nil {
				t.Errorf("TryAcquire granted a lease")
			}
			wantErr(t, "TryAcquire", err, lock.ErrInvalidKey)
			_, err = in.Inspect(t.Context(), key)
			wantErr(t, "Inspect", err, lock.ErrInvalidKey)
			_, err = fu.ForceUnlock(t.Context(), key)
			wantErr(t, "ForceUnlock", err, lock.ErrInvalidKey)
		})
	}
}

func testInspect(t *testing.T, s *suite) {
	l := s.locker(nil)
	in := inspector(t, l)
	key := s.key("k")

	st, err := in.Inspect(t.Context(), key)
	if err != nil {
		t.Fatalf("Inspect of a free key: %v", err)
	}
	if want := (lock.Status{Key: key}); st != want {
		t.Errorf("Inspect of a free key = %+v, want %+v", st, want)
	}

	before := time.Now()
	lease := tryAcquire(t, l, key)
	st, err = in.Inspect(t.Context(), key)
	if err != nil {
		t.Fatalf("Inspect of a held key: %v", err)
	}
	if !st.Held || st.Key != key || st.Fence != lease.Fence() {
		t.Errorf("Inspect of a held key = %+v, want held, key %q, fence %d", st, key, lease.Fence())
	}
	if want := holder(t); st.Holder != want {
		t.Errorf("Inspect: holder %v, want this process %v", st.Holder, want)
	}
	if st.Since.IsZero() || st.Since.Before(before.Add(-slack)) || st.Since.After(time.Now().Add(slack)) {
		t.Errorf("Inspect: Since %v, want about %v", st.Since, before)
	}
	if d := st.Until.Sub(lease.Until()).Abs(); d > slack {
		t.Errorf("Inspect: Until %v, %v away from the lease's Until %v", st.Until, d, lease.Until())
	}

	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	st, err = in.Inspect(t.Context(), key)
	if err != nil {
		t.Fatalf("Inspect of a released key: %v", err)
	}
	if st.Held {
		t.Errorf("Inspect of a released key = %+v, want free", st)
	}
}

// testForceUnlock: ForceUnlock frees a held key, reports what it broke, and
// the broken holder (auto refresh on) learns it lost the lease within its
// refresh interval.
func testForceUnlock(t *testing.T, s *suite) {
	const expiry = 900 * time.Millisecond // refresh every 300ms
	l := s.locker(func(c *lock.Config) { c.Expiry = expiry })
	fu := forceUnlocker(t, l)
	key := s.key("k")

	st, err := fu.ForceUnlock(t.Context(), key)
	if err != nil {
		t.Fatalf("ForceUnlock of a free key: %v", err)
	}
	if st.Held {
		t.Errorf("ForceUnlock of a free key reported %+v", st)
	}

	old := tryAcquire(t, l, key)
	broken := time.Now()
	st, err = fu.ForceUnlock(t.Context(), key)
	if err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	if !st.Held || st.Key != key || st.Fence != old.Fence() || st.Holder != holder(t) {
		t.Errorf("ForceUnlock reported %+v, want held by %v with fence %d", st, holder(t), old.Fence())
	}
	lease := tryAcquire(t, l, key)
	if lease.Fence() <= old.Fence() {
		t.Errorf("fence after ForceUnlock %d, not greater than the broken lease's %d", lease.Fence(), old.Fence())
	}
	waitDone(t, old, expiry/3+slack)
	t.Logf("the broken lease learned of it after %v (refresh interval %v)", time.Since(broken), expiry/3)
	wantErr(t, "Err of the broken lease", old.Err(), lock.ErrLeaseLost)
	wantErr(t, "Refresh of the broken lease", old.Refresh(t.Context()), lock.ErrLeaseLost)
	wantErr(t, "Release of the broken lease", old.Release(t.Context()), lock.ErrLeaseLost)
	wantLocked(t, l, key)
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("Release of the new lease: %v", err)
	}
}

// testForceUnlockWithoutRefresh: a broken holder that does not refresh
// automatically learns it lost the lease from its next Refresh.
func testForceUnlockWithoutRefresh(t *testing.T, s *suite) {
	l := s.locker(func(c *lock.Config) { c.DisableAutoRefresh = true })
	key := s.key("k")
	old := tryAcquire(t, l, key)
	if _, err := forceUnlocker(t, l).ForceUnlock(t.Context(), key); err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	wantErr(t, "Refresh of the broken lease", old.Refresh(t.Context()), lock.ErrLeaseLost)
	if !isDone(old) {
		t.Errorf("Done still open after Refresh reported the loss")
	}
	wantErr(t, "Err of the broken lease", old.Err(), lock.ErrLeaseLost)
	tryAcquire(t, l, key)
}

// testHandoff: a waiter gets the key soon after the holder releases it,
// although its backoff would make it sleep for up to 30s: lockers must wake
// waiters on release rather than leave them to their next poll.
func testHandoff(t *testing.T, s *suite) {
	l := s.locker(func(c *lock.Config) {
		c.Timeout = time.Minute
		c.RetryInterval = handoffBackoff
		c.MaxRetryInterval = handoffBackoff
	})
	key := s.key("k")
	lease := tryAcquire(t, l, key)
	type result struct {
		lease *lock.Lease
		at    time.Time
		err   error
	}
	got := make(chan result, 1)
	go func() {
		lease, err := l.Acquire(t.Context(), key)
		got <- result{lease, time.Now(), err}
	}()
	// Let the waiter fail its first attempt and go to sleep. (Should it not
	// have tried yet, it gets the key at its first attempt: this pause
	// cannot make the check below fail.)
	hold := time.NewTimer(handoffHold)
	defer hold.Stop()
	select {
	case r := <-got:
		t.Fatalf("waiter returned while the key was held: lease %v, err %v", r.lease != nil, r.err)
	case <-hold.C:
	}
	released := time.Now()
	if err := lease.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(maxHandoff + slack):
		t.Fatalf("waiter did not get the key within %v of the release: waiters are not woken on release", maxHandoff+slack)
	}
	if r.err != nil {
		t.Fatalf("waiter: Acquire: %v", r.err)
	}
	t.Cleanup(func() { _ = r.lease.Release(context.Background()) })
	if d := r.at.Sub(released); d > maxHandoff {
		t.Errorf("waiter got the key %v after the release, want within %v: waiters are not woken on release", d, maxHandoff)
	} else {
		t.Logf("handoff latency %v", d)
	}
	if r.lease.Fence() <= lease.Fence() {
		t.Errorf("waiter's fence %d, not greater than the holder's %d", r.lease.Fence(), lease.Fence())
	}
}
