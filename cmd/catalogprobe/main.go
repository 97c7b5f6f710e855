package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/store"
)

func main() {
	sizes := flag.String("sizes", "10000,30000,100000", "comma-separated store sizes (artifacts) to measure at")
	workers := flag.Int("workers", 64, "concurrent uploads while populating")
	flag.Parse()
	if err := run(*sizes, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "catalogprobe:", err)
		os.Exit(1)
	}
}

// clock is the populating Store's clock: each upload (tick) moves it to a
// pseudo-random moment of the 30 days before end, so that creation times
// spread over 30 days at every size (and "the last 24 hours" holds a
// thirtieth of the artifacts).
type clock struct {
	end time.Time
	n   atomic.Int64
}

const spread = 30 * 24 * time.Hour

func (c *clock) Now() time.Time {
	frac := float64(uint64(c.n.Load())*0x9E3779B97F4A7C15>>11) / (1 << 53) // Fibonacci hashing
	return c.end.Add(-time.Duration(frac * float64(spread)))
}

func (c *clock) tick() { c.n.Add(1) }

func run(sizeList string, workers int) error {
	var sizes []int
	for f := range strings.SplitSeq(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 30 {
			return fmt.Errorf("size %q: want a number of artifacts, at least 30", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	ctx := context.Background()
	srv, stop, err := testenv.StartS3Process()
	if err != nil {
		return err
	}
	defer stop()
	be, err := s3backend.New(ctx, s3backend.Config{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, CreateBucket: true,
	})
	if err != nil {
		return err
	}
	defer be.Close()
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{end: end}
	writer, err := store.New(ctx, be, nil, store.Config{DisableLocking: true, Versioning: true, Now: clk.Now, ListConcurrency: 64})
	if err != nil {
		return err
	}
	defer writer.Close()
	open := func(now time.Time) (*store.Store, error) { // a cold Store: nothing cached
		return store.New(ctx, be, nil, store.Config{DisableLocking: true, Now: func() time.Time { return now }, ListConcurrency: 64})
	}
	fmt.Printf("catalogprobe: versitygw at %s, %d CPUs, load %s\n", srv.Endpoint, runtime.NumCPU(), loadavg())
	done := 0
	for _, n := range sizes {
		start := time.Now()
		if err := populate(ctx, writer, clk, done, n, workers); err != nil {
			return err
		}
		pop := time.Since(start)
		start = time.Now()
		rep, err := writer.CompactCatalog(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("\n== %d artifacts (populated %d in %v; final compaction %v: %+v), load %s\n",
			n, n-done, pop.Round(time.Second), time.Since(start).Round(time.Millisecond), rep, loadavg())
		done = n
		s, err := open(end)
		if err != nil {
			return err
		}
		if err := measure(ctx, s, end); err != nil {
			return err
		}
		s.Close()
	}
	return nil
}

// uri names artifact i: spec i/30, task (i/3)%10, type i%3.
func uri(i int) string {
	return fmt.Sprintf("artifact://spec-%06d/task-%02d/%s", i/30, (i/3)%10, []string{"diff", "log", "test"}[i%3])
}

// populate uploads artifacts [from, to).
func populate(ctx context.Context, s *store.Store, clk *clock, from, to, workers int) error {
	next := atomic.Int64{}
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				opts := store.UploadOptions{ContentType: "text/plain"}
				if rng.IntN(100) == 0 {
					opts.Tags = []string{"flaky"}
				}
				versions := 1
				if rng.IntN(10) == 0 {
					versions = 2 + rng.IntN(2)
				}
				for v := range versions {
					data := buf[:1024+rng.IntN(3072)]
					for j := range data {
						data[j] = byte('a' + (i+j+v)%26)
					}
					clk.tick()
					if _, err := s.UploadBytes(ctx, uri(i), data, opts); err != nil {
						once.Do(func() { firstErr = err })
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// measure times the queries on a cold Store.
func measure(ctx context.Context, s *store.Store, now time.Time) error {
	searches := []struct {
		name string
		f    store.Filter
	}{
		{"tag flaky", store.Filter{Tags: []string{"flaky"}}},
		{"type log", store.Filter{Type: "log"}},
		{"created 24h", store.Filter{CreatedAfter: now.Add(-24 * time.Hour)}},
	}
	for _, q := range searches {
		start := time.Now()
		page, _, err := s.SearchPage(ctx, q.f, store.Page{Limit: 100})
		if err != nil {
			return err
		}
		first := time.Since(start)
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		n := 0
		for _, err := range s.SearchSeq(ctx, q.f, store.Page{}) {
			if err != nil {
				return err
			}
			n++
		}
		all := time.Since(start)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		fmt.Printf("search %-12s first page (%3d) %8v   all %6d results %9v  (%.1f µs/result, %.0f MiB allocated)\n",
			q.name, len(page), first.Round(time.Millisecond), n, all.Round(time.Millisecond),
			float64(all.Microseconds())/float64(max(n, 1)), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	}
	start := time.Now()
	u, err := s.Usage(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("usage (by spec x type: %d specs)            %9v  (%d artifacts, %d versions)\n",
		len(u.BySpecType), time.Since(start).Round(time.Millisecond), u.Total.Artifacts, u.Total.Versions)
	start = time.Now()
	exp, err := s.Expired(ctx, store.Filter{Type: "log"})
	if err != nil {
		return err
	}
	fmt.Printf("retention plan, logs (%6d expired versions) %9v\n", len(exp), time.Since(start).Round(time.Millisecond))
	return latencies(ctx, s)
}

// latencies reports p50/p99 of 4 KiB uploads of new artifacts and of
// downloads of the current version.
func latencies(ctx context.Context, s *store.Store) error {
	const n = 200
	data := make([]byte, 4096)
	up := make([]time.Duration, n)
	down := make([]time.Duration, n)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range n {
		u := fmt.Sprintf("artifact://latency-%s/t%03d/log", tag, i)
		start := time.Now()
		if _, err := s.UploadBytes(ctx, u, data, store.UploadOptions{}); err != nil {
			return err
		}
		up[i] = time.Since(start)
		start = time.Now()
		if _, _, err := s.Download(ctx, u); err != nil {
			return err
		}
		down[i] = time.Since(start)
	}
	slices.Sort(up)
	slices.Sort(down)
	fmt.Printf("4 KiB upload p50 %v p99 %v; download p50 %v p99 %v (%d each)\n",
		up[n/2].Round(10*time.Microsecond), up[n*99/100].Round(10*time.Microsecond),
		down[n/2].Round(10*time.Microsecond), down[n*99/100].Round(10*time.Microsecond), n)
	return nil
}

// loadavg is the 1-minute load average ("?" where unknown).
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}
