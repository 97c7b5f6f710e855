package redislock_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// The benchmarks compare redislock with Redsync used directly with its
// default options, on redis-servers started for the run:
//
//	go test -run '^$' -bench . -benchtime 3s ./pkg/lock/redislock/

// BenchmarkUncontended: acquire and release of one key, one goroutine.
func BenchmarkUncontended(b *testing.B) {
	srv := testenv.StartRedis(b)
	ctx := context.Background()

	b.Run("redislock", func(b *testing.B) {
		l := benchLocker(b, srv.Addr())
		for b.Loop() {
			ls, err := l.Acquire(ctx, "uncontended")
			if err != nil {
				b.Fatal(err)
			}
			if err := ls.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("redsync", func(b *testing.B) {
		rs := redsync.New(goredis.NewPool(benchClient(b, srv.Addr())))
		for b.Loop() {
			m := rs.NewMutex("redsync:uncontended")
			if err := m.LockContext(ctx); err != nil {
				b.Fatal(err)
			}
			if ok, err := m.UnlockContext(ctx); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	// Both in one loop, alternating which goes first, so that both see the
	// same load on a shared machine: the ratio is the robust figure.
	b.Run("interleaved", func(b *testing.B) {
		l := benchLocker(b, srv.Addr())
		rs := redsync.New(goredis.NewPool(benchClient(b, srv.Addr())))
		ours := func() {
			ls, err := l.Acquire(ctx, "interleaved")
			if err != nil {
				b.Fatal(err)
			}
			if err := ls.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
		theirs := func() {
			m := rs.NewMutex("redsync:interleaved")
			if err := m.LockContext(ctx); err != nil {
				b.Fatal(err)
			}
			if ok, err := m.UnlockContext(ctx); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		var tOurs, tTheirs time.Duration
		timed := func(f func(), d *time.Duration) {
			start := time.Now()
			f()
			*d += time.Since(start)
		}
		i := 0
		for b.Loop() {
			if i++; i%2 == 0 {
				timed(ours, &tOurs)
				timed(theirs, &tTheirs)
			} else {
				timed(theirs, &tTheirs)
				timed(ours, &tOurs)
			}
		}
		b.ReportMetric(float64(b.N)/tOurs.Seconds(), "redislock-ops/s")
		b.ReportMetric(float64(b.N)/tTheirs.Seconds(), "redsync-ops/s")
		b.ReportMetric(tTheirs.Seconds()/tOurs.Seconds(), "ratio")
	})
}

const (
	contenders = 8
	hold       = time.Millisecond
)

// BenchmarkContended: 8 contenders (each its own locker and connections, as
// separate processes would be) take turns on one key, holding it 1ms; b.N
// is the number of acquisitions in all. Reported: acquisitions per second,
// p50/p99/max wait from asking to holding, and Jain's fairness index over
// the contenders' acquisition counts (1 is perfectly fair). On one master
// and on three (a Redlock quorum of two), Redsync on the same servers.
func BenchmarkContended(b *testing.B) {
	for _, n := range []int{1, 3} {
		servers := testenv.StartRedisCluster(b, n)
		addrs := make([]string, n)
		for i, s := range servers {
			addrs[i] = s.Addr()
		}
		name := fmt.Sprintf("%dmasters", n)
		b.Run(name+"/redislock", func(b *testing.B) {
			lockers := make([]*redislock.Locker, contenders)
			for i := range lockers {
				lockers[i] = benchLocker(b, addrs...)
			}
			contend(b, func(ctx context.Context, i int) (func(), error) {
				ls, err := lockers[i].Acquire(ctx, "contended")
				if err != nil {
					return nil, err
				}
				return func() { _ = ls.Release(ctx) }, nil
			})
		})
		b.Run(name+"/redsync", func(b *testing.B) {
			rss := make([]*redsync.Redsync, contenders)
			for i := range rss {
				pools := make([]redsyncredis.Pool, n)
				for j, a := range addrs {
					pools[j] = goredis.NewPool(benchClient(b, a))
				}
				rss[i] = redsync.New(pools...)
			}
			contend(b, func(ctx context.Context, i int) (func(), error) {
				m := rss[i].NewMutex("redsync:contended")
				if err := m.LockContext(ctx); err != nil {
					return nil, err
				}
				return func() { _, _ = m.UnlockContext(ctx) }, nil
			})
		})
	}
}

// contend runs the contenders until they made b.N acquisitions together. A
// failed acquisition (Redsync gives up after 32 tries) is retried, and the
// wait counts from the first try.
func contend(b *testing.B, acquire func(ctx context.Context, i int) (func(), error)) {
	ctx := context.Background()
	var claimed, failures atomic.Int64
	counts := make([]int, contenders)
	waits := make([][]time.Duration, contenders)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range contenders {
		wg.Go(func() {
			for claimed.Add(1) <= int64(b.N) {
				asked := time.Now()
				release, err := acquire(ctx, i)
				for err != nil {
					failures.Add(1)
					if time.Since(asked) > time.Minute {
						b.Errorf("contender %d: no lock for a minute: %v", i, err)
						return
					}
					release, err = acquire(ctx, i)
				}
				waits[i] = append(waits[i], time.Since(asked))
				counts[i]++
				time.Sleep(hold)
				release()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	all := slices.Concat(waits...)
	slices.Sort(all)
	pct := func(p int) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, len(all)*p/100)]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "acq/s")
	b.ReportMetric(pct(50), "p50-ms")
	b.ReportMetric(pct(99), "p99-ms")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)-1])/float64(time.Millisecond), "max-ms")
	}
	b.ReportMetric(jain(counts), "jain")
	b.ReportMetric(float64(failures.Load()), "failed-tries")
}

// jain is Jain's fairness index of xs: (Σx)² / (n·Σx²).
func jain(xs []int) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

func benchLocker(b *testing.B, addrs ...string) *redislock.Locker {
	l, err := redislock.Open(redislock.Config{Addrs: addrs}, lock.Config{KeyPrefix: "bench:" + b.Name() + ":"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// benchClient is a go-redis client with its default options, as a Redsync
// user would make it.
func benchClient(b *testing.B, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	b.Cleanup(func() { _ = c.Close() })
	return c
}
