package redislock_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/locktest"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// env makes lockers that share one fresh key prefix over the same masters,
// so that tests on shared servers (ARTIFACTSTORE_REDIS_ADDRS) never meet.
type env struct {
	addrs  []string
	prefix string
}

func newEnv(addrs []string) *env {
	return &env{addrs: addrs, prefix: "artifactstore-test:" + rand.Text()[:12] + ":"}
}

func serverEnv(servers []*testenv.RedisServer) *env {
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	return newEnv(addrs)
}

// locker opens a Locker on e's masters, closed when t ends.
func (e *env) locker(t testing.TB, cfg lock.Config) *redislock.Locker {
	t.Helper()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = e.prefix
	}
	l, err := redislock.Open(redislock.Config{Addrs: e.addrs}, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// client returns a plain client of master i, closed when t ends.
func (e *env) client(t testing.TB, i int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: e.addrs[i], MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) lockKey(key string) string  { return e.prefix + "{" + key + "}" }
func (e *env) stateKey(key string) string { return e.lockKey(key) + ":state" }

// fastCfg is a lock configuration for tests: short waits.
func fastCfg() lock.Config {
	return lock.Config{Timeout: 5 * time.Second, RetryInterval: 10 * time.Millisecond, MaxRetryInterval: 50 * time.Millisecond}
}

func mustAcquire(t *testing.T, l lock.Locker, key string) *lock.Lease {
	t.Helper()
	ls, err := l.Acquire(t.Context(), key)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", key, err)
	}
	return ls
}

func TestSingleMasterLifecycle(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	l := e.locker(t, fastCfg())
	ctx := t.Context()

	var last uint64
	for i := range 3 {
		ls := mustAcquire(t, l, "artifact://spec/task/diff")
		if ls.Fence() <= last {
			t.Fatalf("acquisition %d: fence %d not above %d", i, ls.Fence(), last)
		}
		last = ls.Fence()
		if len(ls.Token()) < 20 {
			t.Fatalf("token %q too short to be random", ls.Token())
		}
		st, err := l.Inspect(ctx, "artifact://spec/task/diff")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Held || st.Fence != ls.Fence() || st.Holder.PID == 0 || st.Holder.Host == "" || st.Since.IsZero() {
			t.Fatalf("Inspect while held = %+v, want held with fence %d and a holder", st, ls.Fence())
		}
		if d := time.Until(st.Until); d <= 0 || d > lock.DefaultExpiry {
			t.Fatalf("Inspect Until is %v away, want within the expiry", d)
		}
		if _, err := l.TryAcquire(ctx, "artifact://spec/task/diff"); !errors.Is(err, lock.ErrLocked) || errors.Is(err, lock.ErrUnavailable) {
			t.Fatalf("TryAcquire on a held key: %v, want ErrLocked only", err)
		}
		if err := ls.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := ls.Release(ctx); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("second Release: %v, want ErrNotHeld", err)
		}
	}
	st, err := l.Inspect(ctx, "artifact://spec/task/diff")
	if err != nil || st.Held {
		t.Fatalf("Inspect after release = %+v, %v; want free", st, err)
	}
	// The key lives in Redis under the prefix with a hash tag, and only the
	// token is stored in it.
	c := e.client(t, 0)
	ls := mustAcquire(t, l, "artifact://spec/task/diff")
	defer ls.Release(ctx)
	v, err := c.Get(ctx, e.lockKey("artifact://spec/task/diff")).Result()
	if err != nil || v != ls.Token() {
		t.Fatalf("lock key holds %q, %v; want the token %q", v, err, ls.Token())
	}
}

func TestTokensAreRandom(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	l := e.locker(t, fastCfg())
	seen := map[string]bool{}
	host, _ := os.Hostname()
	for range 20 {
		ls := mustAcquire(t, l, "k")
		if seen[ls.Token()] {
			t.Fatalf("token %q repeated", ls.Token())
		}
		seen[ls.Token()] = true
		// 130 random bits and nothing else: no host, pid, time or fence.
		if len(ls.Token()) < 26 || strings.Contains(ls.Token(), host) || strings.Contains(ls.Token(), strconv.Itoa(os.Getpid())) {
			t.Fatalf("token %q is not a plain random value", ls.Token())
		}
		_ = ls.Release(t.Context())
	}
}

// TestFenceSurvivesMasterLoss kills and restarts masters (empty, as Redis
// without persistence comes back) one at a time and checks that fences
// keep increasing, and that a restarted master's counter is raised.
func TestFenceSurvivesMasterLoss(t *testing.T) {
	servers := testenv.StartRedisCluster(t, 3)
	e := serverEnv(servers)
	l := e.locker(t, fastCfg())
	ctx := t.Context()
	var last uint64
	step := func(what string) {
		t.Helper()
		ls, err := l.TryAcquire(ctx, "fenced")
		if err != nil {
			t.Fatalf("%s: TryAcquire: %v", what, err)
		}
		if ls.Fence() <= last {
			t.Fatalf("%s: fence %d not above the previous %d", what, ls.Fence(), last)
		}
		last = ls.Fence()
		if err := ls.Release(ctx); err != nil {
			t.Fatalf("%s: Release: %v", what, err)
		}
	}
	for range 3 {
		step("all up")
	}
	servers[2].Kill()
	step("master 2 down")
	step("master 2 down")
	if err := servers[2].Restart(); err != nil {
		t.Fatal(err)
	}
	servers[0].Kill() // now only 1 (which saw every grant) and 2 (empty) are up
	step("master 0 down, master 2 restarted empty")
	got, err := e.client(t, 2).HGet(ctx, e.stateKey("fenced"), "fence").Uint64()
	if err != nil || got != last {
		t.Fatalf("restarted master's fence counter = %d, %v; want it raised to %d", got, err, last)
	}
	if err := servers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	servers[1].Kill() // 0 (empty) and 2 (raised) are up
	step("master 1 down, master 0 restarted empty")
	if err := servers[1].Restart(); err != nil {
		t.Fatal(err)
	}
	step("all up again")
}

// TestQuorumLost: with two of three masters gone, nothing is granted, the
// errors say why, and the lock works again once they are back.
func TestQuorumLost(t *testing.T) {
	servers := testenv.StartRedisCluster(t, 3)
	e := serverEnv(servers)
	cfg := fastCfg()
	cfg.Timeout = 300 * time.Millisecond
	l := e.locker(t, cfg)
	patient := e.locker(t, fastCfg()) // sees the outage, then must recover
	ctx := t.Context()

	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Ping with every master up: %v", err)
	}
	servers[0].Kill()
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Ping with 2 of 3 masters up: %v", err)
	}
	servers[1].Kill()
	if err := l.Ping(ctx); !errors.Is(err, lock.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 3 masters answered") {
		t.Fatalf("Ping with 1 of 3 masters up: %v, want ErrUnavailable saying 1 of 3 answered", err)
	}
	_, err := l.TryAcquire(ctx, "k")
	if !errors.Is(err, lock.ErrUnavailable) || errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryAcquire with 2 of 3 masters down: %v, want ErrUnavailable", err)
	}
	if _, err := patient.TryAcquire(ctx, "k"); !errors.Is(err, lock.ErrUnavailable) {
		t.Fatalf("TryAcquire with 2 of 3 masters down: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	_, err = l.Acquire(ctx, "k")
	if !errors.Is(err, lock.ErrTimeout) || !errors.Is(err, lock.ErrUnavailable) {
		t.Fatalf("Acquire with 2 of 3 masters down: %v, want ErrTimeout and ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Acquire gave up after %v, want about the 300ms timeout", d)
	}
	if _, err := l.Inspect(ctx, "k"); !errors.Is(err, lock.ErrUnavailable) {
		t.Fatalf("Inspect with 2 of 3 masters down: %v, want ErrUnavailable", err)
	}
	if _, err := l.ForceUnlock(ctx, "k"); !errors.Is(err, lock.ErrUnavailable) {
		t.Fatalf("ForceUnlock with 2 of 3 masters down: %v, want ErrUnavailable", err)
	}
	// Nothing was granted: the surviving master holds no token (every
	// failed attempt cleaned up after itself).
	if n, err := e.client(t, 2).Exists(ctx, e.lockKey("k")).Result(); err != nil || n != 0 {
		t.Fatalf("surviving master has the lock key: %d, %v", n, err)
	}

	for _, s := range servers[:2] {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// go-redis stops dialling a master after repeated failures and probes
	// it every second, so recovery takes up to about a second.
	ls, err := patient.Acquire(ctx, "k")
	if err != nil {
		t.Fatalf("Acquire after the masters came back: %v", err)
	}
	if err := ls.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseThroughMasterLoss: a lease survives losing a minority, reports
// a transient failure while the quorum is gone, and is lost once the
// masters that come back no longer know its token.
func TestLeaseThroughMasterLoss(t *testing.T) {
	servers := testenv.StartRedisCluster(t, 3)
	e := serverEnv(servers)
	cfg := fastCfg()
	cfg.DisableAutoRefresh = true
	l := e.locker(t, cfg)
	ctx := t.Context()
	ls := mustAcquire(t, l, "k")

	servers[0].Kill()
	if err := ls.Refresh(ctx); err != nil {
		t.Fatalf("Refresh with 1 of 3 masters down: %v", err)
	}
	servers[1].Kill()
	err := ls.Refresh(ctx)
	if !errors.Is(err, lock.ErrUnavailable) || errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Refresh with 2 of 3 masters down: %v, want ErrUnavailable (not lost: they may come back)", err)
	}
	if ls.Err() != nil {
		t.Fatalf("lease ended on a transient failure: %v", ls.Err())
	}
	for _, s := range servers[:2] {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// Masters 0 and 1 came back empty: only master 2 has the token.
	if err := ls.Refresh(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Refresh after 2 of 3 masters lost the token: %v, want ErrLeaseLost", err)
	}
	select {
	case <-ls.Done():
	default:
		t.Fatal("Done not closed after the lease was lost")
	}
	if err := ls.Release(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Release after loss: %v, want ErrLeaseLost", err)
	}
}

func TestForceUnlockAcrossMasters(t *testing.T) {
	servers := testenv.StartRedisCluster(t, 3)
	e := serverEnv(servers)
	holder := e.locker(t, fastCfg())
	operator := e.locker(t, fastCfg())
	ctx := t.Context()

	ls := mustAcquire(t, holder, "k")
	got := make(chan time.Time, 1)
	go func() {
		w, err := operator.Acquire(ctx, "k")
		if err == nil {
			got <- time.Now()
			_ = w.Release(ctx)
		}
		close(got)
	}()
	time.Sleep(100 * time.Millisecond) // the waiter queues and subscribes

	st, err := operator.ForceUnlock(ctx, "k")
	broken := time.Now()
	if err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	if !st.Held || st.Fence != ls.Fence() || st.Holder.PID == 0 {
		t.Fatalf("ForceUnlock returned %+v, want the broken lease (fence %d)", st, ls.Fence())
	}
	at, ok := <-got
	if !ok {
		t.Fatal("waiter did not get the lock after ForceUnlock")
	}
	if d := at.Sub(broken); d > time.Second {
		t.Fatalf("waiter got the lock %v after ForceUnlock, want it woken at once", d)
	}
	if err := ls.Refresh(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("broken holder's Refresh: %v, want ErrLeaseLost", err)
	}
	if err := ls.Release(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("broken holder's Release: %v, want ErrLeaseLost", err)
	}

	for range got { // closed once the waiter has released the key
	}
	// ForceUnlock of a free key reports it free; with one master down it
	// still breaks a lock.
	if st, err := operator.ForceUnlock(ctx, "k"); err != nil || st.Held {
		t.Fatalf("ForceUnlock of a free key = %+v, %v", st, err)
	}
	ls = mustAcquire(t, holder, "k")
	servers[1].Kill()
	if st, err := operator.ForceUnlock(ctx, "k"); err != nil || !st.Held {
		t.Fatalf("ForceUnlock with a master down = %+v, %v; want held, no error", st, err)
	}
	for _, i := range []int{0, 2} {
		if n, err := e.client(t, i).Exists(ctx, e.lockKey("k")).Result(); err != nil || n != 0 {
			t.Fatalf("master %d still has the lock key after ForceUnlock: %d, %v", i, n, err)
		}
	}
	if err := ls.Release(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Release after ForceUnlock with a master down: %v, want ErrLeaseLost", err)
	}
}

func TestContextErrors(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	l := e.locker(t, fastCfg())

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := l.TryAcquire(cancelled, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, lock.ErrLocked) || errors.Is(err, lock.ErrUnavailable) {
		t.Fatalf("TryAcquire with a cancelled context: %v, want context.Canceled only", err)
	}
	if _, err := l.Acquire(cancelled, "k"); !errors.Is(err, context.Canceled) || !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Acquire with a cancelled context: %v, want ErrTimeout and context.Canceled", err)
	}

	ls := mustAcquire(t, l, "k")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = l.Acquire(ctx, "k")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Acquire cancelled while waiting: %v, want ErrTimeout and context.Canceled", err)
	}
	dctx, dcancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer dcancel()
	_, err = l.Acquire(dctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, lock.ErrTimeout) || !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("Acquire past its deadline: %v, want ErrTimeout, DeadlineExceeded and ErrLocked", err)
	}
	// Release on a cancelled context still frees the key, and the waiters
	// that gave up left the queue: the key is free for TryAcquire at once.
	if err := ls.Release(cancelled); err != nil {
		t.Fatalf("Release with a cancelled context: %v", err)
	}
	ls2, err := l.TryAcquire(t.Context(), "k")
	if err != nil {
		t.Fatalf("TryAcquire after the waiters gave up: %v", err)
	}
	_ = ls2.Release(t.Context())
}

// TestWakeOnRelease: a waiter whose backoff would sleep for seconds gets
// the lock right after the release, woken through pub/sub.
func TestWakeOnRelease(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	cfg := fastCfg()
	cfg.RetryInterval = 3 * time.Second
	cfg.MaxRetryInterval = 3 * time.Second
	holder := e.locker(t, cfg)
	waiter := e.locker(t, cfg)
	ctx := t.Context()

	for range 3 {
		ls := mustAcquire(t, holder, "k")
		var released time.Time
		time.AfterFunc(200*time.Millisecond, func() {
			released = time.Now()
			_ = ls.Release(ctx)
		})
		w := mustAcquire(t, waiter, "k")
		if d := time.Since(released); d > 150*time.Millisecond {
			t.Fatalf("waiter got the lock %v after the release, want it woken at once", d)
		}
		_ = w.Release(ctx)
	}
}

// TestReleaseHandsOver: a release hands the lock to the head of the queue
// in the same script, on every master, so the waiter holds it without
// trying again: when Release returns, the masters already hold the
// waiter's token, for its claim window only, with the next fence and the
// waiter's holder; the waiter then claims the full expiry.
func TestReleaseHandsOver(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%dmasters", n), func(t *testing.T) {
			e := newEnv(testenv.RedisAddrs(t, n))
			// The head re-checks its turn every 500ms (the beat, at most
			// 500ms), so no attempt of its own races the release; its claim
			// window is 10 beats: 5s.
			cfg := fastCfg()
			cfg.RetryInterval, cfg.MaxRetryInterval = 3*time.Second, 3*time.Second
			const window = 5 * time.Second
			holder, waiter := e.locker(t, cfg), e.locker(t, cfg)
			ctx := t.Context()
			ls := mustAcquire(t, holder, "k")
			got := acquireInBackground(t, waiter, "k")
			waitQueued(t, e, "k", 1)
			waitSubscribed(t, e, 1) // else the grant is missed and found by the next attempt
			if err := ls.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			tokens := make([]string, n)
			for i := range n {
				c := e.client(t, i)
				tokens[i], _ = c.Get(ctx, e.lockKey("k")).Result()
				// Within the claim window, or already claimed for the whole
				// expiry when the waiter ran first (a loaded machine): only
				// the waiter, whose token the key must hold (checked below),
				// extends it.
				if ttl, err := c.PTTL(ctx, e.lockKey("k")).Result(); err != nil || ttl <= 0 {
					t.Errorf("master %d: the handed-over key expires in %v (%v), want a live key", i, ttl, err)
				}
			}
			w := <-got
			if w == nil {
				t.FailNow()
			}
			defer w.Release(ctx)
			for i, tok := range tokens {
				if tok != w.Token() {
					t.Errorf("master %d held %q when Release returned, want the waiter's token %q", i, tok, w.Token())
				}
			}
			if w.Fence() != ls.Fence()+1 {
				t.Errorf("handed-over fence %d, want %d", w.Fence(), ls.Fence()+1)
			}
			st, err := holder.Inspect(ctx, "k")
			if err != nil || !st.Held || st.Fence != w.Fence() || st.Holder.PID != os.Getpid() {
				t.Errorf("Inspect after the hand-off = %+v, %v; want held with fence %d by this process", st, err, w.Fence())
			}
			// The lease claims the full expiry a quarter of the window later.
			deadline := time.Now().Add(10 * time.Second)
			for time.Until(w.Until()) < window+time.Second {
				if time.Now().After(deadline) {
					t.Fatalf("the handed-over lease was not claimed: Until in %v", time.Until(w.Until()))
				}
				time.Sleep(10 * time.Millisecond)
			}
			for i := range n {
				if ttl, err := e.client(t, i).PTTL(ctx, e.lockKey("k")).Result(); err != nil || ttl < window+time.Second {
					t.Errorf("master %d: claimed key expires in %v (%v), want about the 30s expiry", i, ttl, err)
				}
			}
		})
	}
}

// TestGoneWaiterDoesNotStallQueue reproduces a waiter that is handed the
// lock and never claims it (its process froze or died right after it
// queued): the lock is set for that waiter's claim window only, so the
// waiter behind it gets the key once the window has passed, long before
// the expiry (30s) that would otherwise keep it, and within its own
// Acquire timeout.
func TestGoneWaiterDoesNotStallQueue(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	cfg := fastCfg() // Acquire times out after 5s; expiry 30s
	holder, waiter := e.locker(t, cfg), e.locker(t, cfg)
	ctx := t.Context()
	c := e.client(t, 0)
	q, hb := e.lockKey("k")+":q", e.lockKey("k")+":hb"
	ls := mustAcquire(t, holder, "k")
	// The gone waiter: queued first, heartbeat fresh for a minute, claim
	// window 300ms; nobody listens on its Locker's channel.
	const ghost = `GONE.GHOSTTOKEN.300.{"host":"gone","pid":1}`
	if err := c.ZAdd(ctx, q, redis.Z{Score: 0, Member: ghost}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(ctx, hb, redis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: ghost}).Err(); err != nil {
		t.Fatal(err)
	}
	got := acquireInBackground(t, waiter, "k")
	waitQueued(t, e, "k", 2)
	if err := ls.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	// The release handed the key to the gone waiter, for its window only.
	if v, err := c.Get(ctx, e.lockKey("k")).Result(); err != nil || v != "GHOSTTOKEN" {
		t.Fatalf("after the release the key holds %q (%v), want the gone waiter's token", v, err)
	}
	if ttl, err := c.PTTL(ctx, e.lockKey("k")).Result(); err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("the gone waiter's key expires in %v (%v), want within its 300ms claim window", ttl, err)
	}
	ghostFence, err := c.HGet(ctx, e.stateKey("k"), "tfence").Uint64()
	if err != nil || ghostFence != ls.Fence()+1 {
		t.Fatalf("the gone waiter's grant has fence %d (%v), want %d", ghostFence, err, ls.Fence()+1)
	}
	w := <-got
	if w == nil {
		t.FailNow()
	}
	defer w.Release(ctx)
	if w.Fence() <= ghostFence {
		t.Errorf("fence %d after the gone waiter's grant, want above its %d", w.Fence(), ghostFence)
	}
	if n, err := c.ZCard(ctx, q).Result(); err != nil || n != 0 {
		t.Errorf("%d waiters left in the queue (%v), want none", n, err)
	}
}

// TestHandedLeaseOutlivesAStall: a lease handed over by a release is valid
// for its claim window before it claims the full expiry (a quarter of the
// window in). With a one-second window, a holder that a loaded machine
// stalled for about 0.75 s right after the hand-off lost its lease and had
// its commit refused (seen in the integration tests); the window is at
// least five seconds.
func TestHandedLeaseOutlivesAStall(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	cfg := fastCfg() // 10ms beats: a one-second stale time
	holder, waiter := e.locker(t, cfg), e.locker(t, cfg)
	ls := mustAcquire(t, holder, "k")
	got := acquireInBackground(t, waiter, "k")
	waitQueued(t, e, "k", 1)
	waitSubscribed(t, e, 1) // the waiter hears its grant
	if err := ls.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	w := <-got
	if w == nil {
		t.FailNow()
	}
	defer w.Release(t.Context())
	if left := time.Until(w.Until()); left < 4*time.Second {
		t.Fatalf("the handed lease is valid for %v more, want at least 4s before it must have claimed", left)
	}
}

// waitSubscribed waits until n Lockers listen to their wake-up channel on
// every master.
func waitSubscribed(t *testing.T, e *env, n int) {
	t.Helper()
	for i := range e.addrs {
		waitFor(t, func() (bool, string) {
			chans, err := e.client(t, i).PubSubChannels(t.Context(), e.prefix+"wake:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			return len(chans) == n, fmt.Sprintf("master %d: wake-up channels %v, want %d", i, chans, n)
		})
	}
}

// waitFor polls cond every 5ms until it holds, for at most 10s, and fails
// with the state cond last described.
func waitFor(t *testing.T, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWaiterGivingUpPassesHandedLockOn: a waiter that gives up just as the
// key was handed to it (its Acquire ends before it took the grant) frees
// the key and hands it to the next waiter before Acquire returns, instead
// of leaving it to expire at the end of its claim window.
func TestWaiterGivingUpPassesHandedLockOn(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	cfg := fastCfg()
	cfg.RetryInterval, cfg.MaxRetryInterval = 3*time.Second, 3*time.Second // beat 500ms: no attempt of the waiters' own races the test
	holder, quitter, next := e.locker(t, cfg), e.locker(t, cfg), e.locker(t, cfg)
	c := e.client(t, 0)
	ctx := t.Context()
	ls := mustAcquire(t, holder, "k")
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	quit := make(chan error, 1)
	go func() {
		_, err := quitter.Acquire(qctx, "k")
		quit <- err
	}()
	waitQueued(t, e, "k", 1)
	got := acquireInBackground(t, next, "k")
	waitQueued(t, e, "k", 2)
	// Hand the key to the quitter as a release does, without telling it.
	members, err := c.ZRange(ctx, e.lockKey("k")+":q", 0, 0).Result()
	if err != nil || len(members) != 1 {
		t.Fatalf("queue head: %v, %v", members, err)
	}
	parts := strings.SplitN(members[0], ".", 4)
	if len(parts) != 4 {
		t.Fatalf("queue member %q is not <locker>.<token>.<claim ms>.<holder>", members[0])
	}
	if err := c.Set(ctx, e.lockKey("k"), parts[1], time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZRem(ctx, e.lockKey("k")+":q", members[0]).Err(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-quit; !errors.Is(err, context.Canceled) || !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("the quitter's Acquire: %v, want ErrTimeout and context.Canceled", err)
	}
	// Before its Acquire returned, the quitter handed the key on.
	handed, err := c.Get(ctx, e.lockKey("k")).Result()
	if err != nil || handed == parts[1] {
		t.Fatalf("after the quitter gave up the key holds %q (%v), want the next waiter's token", handed, err)
	}
	w := <-got
	if w == nil {
		t.FailNow()
	}
	defer w.Release(ctx)
	if w.Token() != handed {
		t.Errorf("the next waiter holds %q, want the token the quitter handed the key to, %q", w.Token(), handed)
	}
	if err := ls.Release(ctx); !errors.Is(err, lock.ErrLeaseLost) {
		t.Errorf("Release of the lease the test took the key from: %v, want ErrLeaseLost", err)
	}
}

// acquireInBackground runs l.Acquire(key) in a goroutine; the channel
// yields its lease, nil when it failed (reported with t.Errorf).
func acquireInBackground(t *testing.T, l lock.Locker, key string) <-chan *lock.Lease {
	got := make(chan *lock.Lease, 1)
	go func() {
		w, err := l.Acquire(t.Context(), key)
		if err != nil {
			t.Errorf("Acquire(%q) in the background: %v", key, err)
		}
		got <- w
	}()
	return got
}

// waitQueued waits until key's queue (on master 0) has n waiters.
func waitQueued(t *testing.T, e *env, key string, n int64) {
	t.Helper()
	c := e.client(t, 0)
	waitFor(t, func() (bool, string) {
		got, err := c.ZCard(t.Context(), e.lockKey(key)+":q").Result()
		if err != nil {
			t.Fatal(err)
		}
		return got == n, fmt.Sprintf("%d waiters queued for %q, want %d", got, key, n)
	})
}

// TestReleaserDoesNotBarge: a holder that releases and asks again at once
// queues behind the waiter that was already there.
func TestReleaserDoesNotBarge(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	a := e.locker(t, fastCfg())
	b := e.locker(t, fastCfg())
	ctx := t.Context()

	ls := mustAcquire(t, a, "k")
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		w, err := b.Acquire(ctx, "k")
		if err != nil {
			t.Errorf("b: %v", err)
			return
		}
		mu.Lock()
		order = append(order, "b")
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		_ = w.Release(ctx)
	}()
	time.Sleep(150 * time.Millisecond) // b queues
	_ = ls.Release(ctx)
	ls = mustAcquire(t, a, "k")
	mu.Lock()
	order = append(order, "a")
	mu.Unlock()
	_ = ls.Release(ctx)
	<-done
	if strings.Join(order, ",") != "b,a" {
		t.Fatalf("order of grants %v, want the queued waiter b first", order)
	}
}

// TestCrashedWaiterExpires: a queue entry whose waiter stopped proving it
// is alive stops blocking the key after the stale time.
func TestCrashedWaiterExpires(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	l := e.locker(t, fastCfg())
	ctx := t.Context()
	c := e.client(t, 0)
	q, hb := e.lockKey("k")+":q", e.lockKey("k")+":hb"
	deadline := time.Now().Add(500 * time.Millisecond).UnixMilli()
	if err := c.ZAdd(ctx, q, redis.Z{Score: 0, Member: "ghost"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(ctx, hb, redis.Z{Score: float64(deadline), Member: "ghost"}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(ctx, "k"); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryAcquire while a waiter has the turn: %v, want ErrLocked", err)
	}
	start := time.Now()
	ls := mustAcquire(t, l, "k")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a crashed waiter blocked the key for %v", d)
	}
	_ = ls.Release(ctx)
	if n, err := c.Exists(ctx, q, hb).Result(); err != nil || n != 0 {
		t.Fatalf("queue keys left behind: %d, %v", n, err)
	}
}

// TestReleaseWithMalformedHead: a queue entry that is not a waiter's
// member, or names a claim window of 0ms, is not handed the key: the
// release still succeeds, frees the key, and the entry is dropped once its
// heartbeat is stale.
func TestReleaseWithMalformedHead(t *testing.T) {
	for _, member := range []string{"ghost", `GONE.TOKEN.0.{"host":"gone","pid":1}`} {
		t.Run(member, func(t *testing.T) {
			e := newEnv(testenv.RedisAddrs(t, 1))
			l := e.locker(t, fastCfg())
			ctx := t.Context()
			c := e.client(t, 0)
			q, hb := e.lockKey("k")+":q", e.lockKey("k")+":hb"
			ls := mustAcquire(t, l, "k")
			if err := c.ZAdd(ctx, q, redis.Z{Score: 0, Member: member}).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.ZAdd(ctx, hb, redis.Z{Score: float64(time.Now().Add(500 * time.Millisecond).UnixMilli()), Member: member}).Err(); err != nil {
				t.Fatal(err)
			}
			if err := ls.Release(ctx); err != nil {
				t.Fatalf("Release with %q at the head of the queue: %v", member, err)
			}
			if n, err := c.Exists(ctx, e.lockKey("k")).Result(); err != nil || n != 0 {
				t.Fatalf("the key is held after the release (%d, %v): handed to %q", n, err, member)
			}
			w := mustAcquire(t, l, "k")
			_ = w.Release(ctx)
		})
	}
}

// TestStarvedWaiterKeepsItsPlace: a waiter whose queue entry was dropped
// because it did not beat in time (a process starved of CPU looks exactly
// like that) comes back with its ticket, ahead of the waiters that queued
// after it, instead of going to the tail.
func TestStarvedWaiterKeepsItsPlace(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	holder, first, second := e.locker(t, fastCfg()), e.locker(t, fastCfg()), e.locker(t, fastCfg())
	ctx := t.Context()
	c := e.client(t, 0)
	q, hb := e.lockKey("k")+":q", e.lockKey("k")+":hb"
	queued := func(n int64) []redis.Z {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			zs, err := c.ZRangeWithScores(ctx, q, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(zs)) == n {
				return zs
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %v, want %d waiters", zs, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	ls := mustAcquire(t, holder, "k")
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	acquire := func(name string, l *redislock.Locker) {
		wg.Go(func() {
			w, err := l.Acquire(ctx, "k")
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			_ = w.Release(ctx)
		})
	}
	acquire("first", first)
	head := queued(1)[0]
	acquire("second", second)
	queued(2)
	// Drop the head's entry as the purge of a stale heartbeat does.
	if err := c.ZRem(ctx, q, head.Member).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZRem(ctx, hb, head.Member).Err(); err != nil {
		t.Fatal(err)
	}
	back := queued(2)
	if back[0].Member != head.Member || back[0].Score != head.Score {
		t.Fatalf("queue after the purged waiter came back: %v, want %v at the head with its ticket", back, head)
	}
	_ = ls.Release(ctx)
	wg.Wait()
	if strings.Join(order, ",") != "first,second" {
		t.Fatalf("order of grants %v, want first (whose entry was purged) before second", order)
	}
}

// TestQueuedWaitersStayQuiet: waiters behind the head of the queue do not
// poll the masters at the retry interval, only often enough to keep their
// place, so that N waiters do not take the holder's CPU (and the masters')
// with N attempts per retry interval.
func TestQueuedWaitersStayQuiet(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 1))
	cfg := fastCfg() // 10ms retry interval: the head re-checks every 10ms
	holder := e.locker(t, cfg)
	ctx := t.Context()
	c := e.client(t, 0)
	ls := mustAcquire(t, holder, "k")
	const waiters = 8
	var wg sync.WaitGroup
	for range waiters {
		l := e.locker(t, cfg)
		wg.Go(func() {
			w, err := l.Acquire(ctx, "k")
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			_ = w.Release(ctx)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.ZCard(ctx, e.lockKey("k")+":q").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == waiters {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", n, waiters)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Attempts are EVALSHA calls (the commands inside a script count in
	// total_commands_processed too).
	attempts := func() int64 {
		t.Helper()
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls="); ok {
				v, _, _ = strings.Cut(v, ",")
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		t.Fatal("INFO commandstats lacks evalsha")
		return 0
	}
	const window = time.Second
	before := attempts()
	time.Sleep(window)
	n := attempts() - before
	_ = ls.Release(ctx)
	wg.Wait()
	// At the retry interval, 8 waiters would make 800 attempts in the
	// window; the head makes about 100, the others about 4 each.
	if n > 400 {
		t.Fatalf("%d attempts in %v from %d queued waiters, want them to wait quietly", n, window, waiters)
	}
	t.Logf("%d attempts in %v from %d queued waiters", n, window, waiters)
}

// TestFailedAttemptCleansUp: an attempt that wins a minority removes its
// token from the masters it won.
func TestFailedAttemptCleansUp(t *testing.T) {
	e := newEnv(testenv.RedisAddrs(t, 3))
	l := e.locker(t, fastCfg())
	ctx := t.Context()
	// Another holder has masters 0 and 1 (as after a split vote).
	for i := range 2 {
		if err := e.client(t, i).Set(ctx, e.lockKey("k"), "foreign", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.TryAcquire(ctx, "k"); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryAcquire: %v, want ErrLocked", err)
	}
	if n, err := e.client(t, 2).Exists(ctx, e.lockKey("k")).Result(); err != nil || n != 0 {
		t.Fatalf("master 2 kept the failed attempt's token: %d, %v", n, err)
	}
	st, err := l.Inspect(ctx, "k")
	if err != nil || !st.Held || st.Holder != (lock.Holder{}) {
		t.Fatalf("Inspect of a foreign quorum = %+v, %v; want held by an unknown holder", st, err)
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	const secret = "s3cr3t-Pa55w0rd-do-not-print"
	srv := testenv.StartRedis(t, "--requirepass", secret)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := redislock.Config{Addrs: []string{srv.Addr()}, Password: secret}
	ctx := t.Context()

	l, err := redislock.Open(rc, lock.Config{Logger: logger, KeyPrefix: "pw:"})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := l.Acquire(ctx, "k")
	if err != nil {
		t.Fatalf("Acquire with the right password: %v", err)
	}
	if _, err := l.ForceUnlock(ctx, "k"); err != nil { // logs a warning
		t.Fatal(err)
	}
	_ = ls.Release(ctx) // lost: logs a warning
	_ = l.Close()
	if !strings.Contains(logs.String(), "redislock: opened") {
		t.Fatalf("expected Open to log, got %q", logs.String())
	}

	bad := rc
	bad.Password = "wrong-" + secret
	l2, err := redislock.Open(bad, lock.Config{Logger: logger, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, aerr := l2.TryAcquire(ctx, "k")
	if aerr == nil {
		t.Fatal("TryAcquire with a wrong password succeeded")
	}
	perr := l2.Ping(ctx)
	if !errors.Is(perr, lock.ErrUnavailable) || !errors.Is(perr, lock.ErrPermissionDenied) {
		t.Fatalf("Ping with a wrong password: %v, want ErrUnavailable and ErrPermissionDenied", perr)
	}
	_ = l2.Close()

	if printed := printedForms(t, rc, logs.String(), aerr.Error(), perr.Error()); strings.Contains(printed, secret) {
		t.Fatalf("password printed:\n%s", printed)
	}
	if !strings.Contains(rc.String(), "REDACTED") {
		t.Fatalf("String() = %q, want the password shown as REDACTED", rc.String())
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(redislock.EnvAddrs, " 127.0.0.1:6379, 127.0.0.1:6380 ,127.0.0.1:6381")
	t.Setenv(redislock.EnvPassword, "pw")
	t.Setenv(redislock.EnvUsername, "user")
	t.Setenv(redislock.EnvDB, "2")
	t.Setenv(redislock.EnvDialTimeout, "250ms")
	t.Setenv(redislock.EnvReadTimeout, "1s")
	t.Setenv(redislock.EnvWriteTimeout, "2s")
	t.Setenv(redislock.EnvPoolSize, "7")
	c, err := redislock.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Addrs) != 3 || c.Addrs[1] != "127.0.0.1:6380" || c.Password != "pw" || c.Username != "user" || c.DB != 2 ||
		c.DialTimeout != 250*time.Millisecond || c.ReadTimeout != time.Second || c.WriteTimeout != 2*time.Second || c.PoolSize != 7 {
		t.Fatalf("ConfigFromEnv = %#v", c)
	}
	opts := c.Options()
	if len(opts) != 3 || opts[2].Addr != "127.0.0.1:6381" || opts[0].Password != "pw" || opts[0].DB != 2 ||
		opts[1].DialTimeout != 250*time.Millisecond || opts[1].PoolSize != 7 || opts[0].TLSConfig != nil {
		t.Fatalf("Options = %+v", opts)
	}

	for _, bad := range []struct{ name, value string }{
		{redislock.EnvDB, "two"},
		{redislock.EnvPoolSize, "many"},
		{redislock.EnvDialTimeout, "2"},
		{redislock.EnvTLS, "maybe"},
		{redislock.EnvTLSInsecureSkipVerify, "yes please"},
		{redislock.EnvAddrs, "redis://127.0.0.1:6379/zero"},
		{redislock.EnvTLSCAFile, "/nonexistent/ca.pem"}, // TLS off: an option without TLS
	} {
		t.Run(bad.name, func(t *testing.T) {
			t.Setenv(bad.name, bad.value)
			if _, err := redislock.ConfigFromEnv(os.LookupEnv); !errors.Is(err, lock.ErrInvalidArgument) {
				t.Fatalf("ConfigFromEnv with %s=%q: %v, want ErrInvalidArgument", bad.name, bad.value, err)
			} else if !strings.Contains(err.Error(), bad.name) && bad.name != redislock.EnvAddrs && bad.name != redislock.EnvTLSCAFile {
				t.Fatalf("error %q does not name %s", err, bad.name)
			}
		})
	}
	t.Setenv(redislock.EnvDB, "")
	t.Setenv(redislock.EnvAddrs, "")
	c, err = redislock.ConfigFromEnv(os.LookupEnv)
	if err != nil || len(c.WithDefaults().Addrs) != 1 || c.WithDefaults().Addrs[0] != redislock.DefaultAddr {
		t.Fatalf("ConfigFromEnv with nothing set = %v, %v; want the default address", c.WithDefaults(), err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    redislock.Config
		ok   bool
	}{
		{"zero", redislock.Config{}, true},
		{"three", redislock.Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2", "[::1]:3"}}, true},
		{"no port", redislock.Config{Addrs: []string{"127.0.0.1"}}, false},
		{"duplicate", redislock.Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:1"}}, false},
		{"negative db", redislock.Config{DB: -1}, false},
		{"negative timeout", redislock.Config{DialTimeout: -time.Second}, false},
		{"negative pool", redislock.Config{PoolSize: -1}, false},
		{"urls", redislock.Config{Addrs: []string{"redis://h1", "rediss://u:p@h2:6380/3", "h3:1"}}, true},
		{"url duplicates host:port", redislock.Config{Addrs: []string{"redis://h1", "h1:6379"}}, false},
		{"url other scheme", redislock.Config{Addrs: []string{"http://h1:6379"}}, false},
		{"url no host", redislock.Config{Addrs: []string{"redis://:6379"}}, false},
		{"url query", redislock.Config{Addrs: []string{"redis://h1:6379?dial_timeout=1s"}}, false},
		{"url bad db", redislock.Config{Addrs: []string{"redis://h1:6379/x"}}, false},
		{"tls option without tls", redislock.Config{TLSServerName: "redis.internal"}, false},
		{"tls insecure without tls", redislock.Config{TLSInsecureSkipVerify: true}, false},
		{"tls cert without key", redislock.Config{TLS: true, TLSCertFile: "c.pem"}, false},
		{"tls missing ca", redislock.Config{TLS: true, TLSCAFile: "/nonexistent/ca.pem"}, false},
		{"tls system roots", redislock.Config{TLS: true, TLSServerName: "redis.internal"}, true},
		{"rediss options", redislock.Config{Addrs: []string{"rediss://h1"}, TLSInsecureSkipVerify: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%v) = %v, want ok=%v", tc.c, err, tc.ok)
			}
			if err != nil && !errors.Is(err, lock.ErrInvalidArgument) {
				t.Fatalf("Validate(%v) = %v, want ErrInvalidArgument", tc.c, err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := redislock.New(nil, lock.Config{}); err == nil {
		t.Fatal("New without clients succeeded")
	}
	if _, err := redislock.New([]redis.UniversalClient{nil}, lock.Config{}); err == nil {
		t.Fatal("New with a nil client succeeded")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := redislock.New([]redis.UniversalClient{c}, lock.Config{Expiry: -1}); err == nil {
		t.Fatal("New with an invalid lock config succeeded")
	}
	l, err := redislock.New([]redis.UniversalClient{c, c, c}, lock.Config{})
	if err != nil || l.Quorum() != 2 {
		t.Fatalf("New over 3 clients: quorum %v, %v; want 2", l, err)
	}
	_ = l.Close()
	if _, err := l.TryAcquire(t.Context(), "k"); !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("TryAcquire after Close: %v, want ErrClosed", err)
	}
	if _, err := l.TryAcquire(t.Context(), ""); !errors.Is(err, lock.ErrInvalidKey) {
		t.Fatalf("TryAcquire of an empty key: %v, want ErrInvalidKey", err)
	}
}

// conformance runs the lock contract's suite on lockers over addrs.
func conformance(t *testing.T, addrs []string) {
	locktest.Run(t, func(t *testing.T, cfg lock.Config) lock.Locker {
		l, err := redislock.Open(redislock.Config{Addrs: addrs}, cfg)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	})
}

func TestConformanceOneMaster(t *testing.T) {
	conformance(t, testenv.RedisAddrs(t, 1))
}

func TestConformanceThreeMasters(t *testing.T) {
	conformance(t, testenv.RedisAddrs(t, 3))
}

// TestConformanceOneOfThreeKilled: the suite passes unchanged while one of
// three masters is dead (a third of the keys have it as their queue master).
func TestConformanceOneOfThreeKilled(t *testing.T) {
	servers := testenv.StartRedisCluster(t, 3)
	servers[0].Kill()
	conformance(t, serverEnv(servers).addrs)
}

// TestGoRedisLogger: go-redis's lines reach the slog logger, and a nil
// logger discards them.
func TestGoRedisLogger(t *testing.T) {
	var rec testenv.LogRecorder
	redislock.GoRedisLogger{Logger: slog.New(&rec)}.Printf(t.Context(), "redis: %s %d", "dial failed", 3)
	rs := rec.Records()
	if len(rs) != 1 || rs[0].Message != "redis: dial failed 3" || rs[0].Level != slog.LevelWarn ||
		testenv.Attrs(rs[0])["component"].String() != "go-redis" {
		t.Fatalf("records %v, want one Warn record from go-redis", rs)
	}
	redislock.GoRedisLogger{}.Printf(t.Context(), "dropped") // must not panic
}
