package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// load runs writers (each with its own store, as separate hosts would) and
// readers against a few artifacts until stopped, recording what the store
// acknowledged and every error.
type load struct {
	t    *testing.T
	uris []string

	acked acks
	// Per-phase counters, reset by mark.
	writesOK, writesFailed, readsOK, readsFailed atomic.Int64
	// lateWrites counts writes that succeeded although they started after
	// noWritesAfter (the moment the lock quorum was lost).
	lateWrites    atomic.Int64
	noWritesAfter atomic.Int64 // unix nanos, 0 when unset

	mu       sync.Mutex
	failures []error

	stop context.CancelFunc
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, e *env, writers, readers int, uris []string) *load {
	l := &load{t: t, uris: uris}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	l.stop = cancel
	stores := make([]*store.Store, writers)
	for i := range stores {
		stores[i] = e.open(t, nil).Store
	}
	// Seed every artifact so that readers always have something to read.
	for _, uri := range uris {
		md, err := stores[0].UploadBytes(ctx, uri, payload("seed", 0), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.acked.add(ackOf(t, md))
	}
	for w := range writers {
		l.wg.Go(func() {
			s := stores[w]
			for i := 0; ctx.Err() == nil; i++ {
				uri := uris[(w+i)%len(uris)]
				start := time.Now().UnixNano()
				md, err := s.UploadBytes(ctx, uri, payload(fmt.Sprintf("writer %d", w), i), store.UploadOptions{})
				if err != nil && ctx.Err() != nil {
					return // stopped
				}
				if err != nil {
					l.writesFailed.Add(1)
					l.fail(err)
					continue
				}
				if cut := l.noWritesAfter.Load(); cut != 0 && start > cut {
					l.lateWrites.Add(1)
				}
				l.writesOK.Add(1)
				l.acked.add(ackOf(t, md))
			}
		})
	}
	for r := range readers {
		l.wg.Go(func() {
			s := stores[r%len(stores)]
			for i := 0; ctx.Err() == nil; i++ {
				_, _, err := s.Download(ctx, uris[i%len(uris)])
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					l.readsFailed.Add(1)
					l.fail(err)
					continue
				}
				l.readsOK.Add(1)
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, err)
}

// mark resets the per-phase counters and the recorded failures, and
// returns the failures recorded since the last mark.
func (l *load) mark() []error {
	l.writesOK.Store(0)
	l.writesFailed.Store(0)
	l.readsOK.Store(0)
	l.readsFailed.Store(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures
	l.failures = nil
	return f
}

// halt stops the writers and readers and waits for them.
func (l *load) halt() {
	l.stop()
	l.wg.Wait()
}

// waitWrites waits until n writes succeeded since the last mark.
func (l *load) waitWrites(n int64, d time.Duration, what string) {
	l.t.Helper()
	poll(l.t, d, what, func() bool { return l.writesOK.Load() >= n })
}

// D3: with three Redis masters, losing one leaves a quorum and work goes on;
// losing two makes writers fail with the typed lock error while readers go
// on and nothing half-written appears; restarting them resumes the work.
func TestRedisMastersLost(t *testing.T) {
	s3 := testenv.StartS3(t)
	masters := testenv.StartRedisCluster(t, 3)
	e := &env{s3: s3, keyPrefix: uniquePrefix(), lockExpiry: 2 * time.Second, lockTimeout: 2 * time.Second}
	for _, m := range masters {
		e.redis = append(e.redis, m.Addr())
	}
	uris := []string{"artifact://d3/quorum/log", "artifact://d3/quorum/diff"}
	l := startLoad(t, e, 3, 2, uris)

	l.waitWrites(10, time.Minute, "writes with three masters")
	l.mark()

	// One of three masters gone: a quorum of two remains.
	masters[0].Kill()
	l.mark()
	l.waitWrites(10, time.Minute, "writes with two masters of three")
	if n := l.readsFailed.Load(); n != 0 {
		t.Errorf("%d reads failed with two masters: %v", n, l.mark())
	}
	for _, err := range l.mark() {
		if !typedWriteError(err) {
			t.Errorf("untyped error with two masters: %v", err)
		}
	}

	// Two of three gone: no quorum. Writers fail with the typed lock error.
	masters[1].Kill()
	l.noWritesAfter.Store(time.Now().UnixNano())
	l.mark()
	poll(t, time.Minute, "writers to fail without a quorum", func() bool { return l.writesFailed.Load() >= 6 })
	readsBefore := l.readsOK.Load()
	poll(t, time.Minute, "reads without a quorum", func() bool { return l.readsOK.Load() >= readsBefore+10 })
	if n := l.readsFailed.Load(); n != 0 {
		t.Errorf("%d reads failed without a lock quorum (reads take no lock)", n)
	}
	if n := l.lateWrites.Load(); n != 0 {
		t.Errorf("%d writes that started after the quorum was lost succeeded", n)
	}
	for _, err := range l.mark() {
		if !errors.Is(err, store.ErrLockTimeout) {
			t.Errorf("writer without a quorum: %v, want ErrLockTimeout", err)
		}
		if !errors.Is(err, lock.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("writer without a quorum, not ErrUnavailable: %v", err)
		}
	}

	// Restarted (empty) masters: the work resumes.
	for _, m := range masters[:2] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	l.noWritesAfter.Store(0)
	l.mark()
	l.waitWrites(10, time.Minute, "writes after the masters restarted")
	l.halt()

	checkStoreState(t, e, uris, l.acked.all())
}

// The S3 server restarted mid-run: requests fail during the outage with
// typed errors (transient, lock timeout, conflict), are retried, and once
// the server is back the work goes on; every acknowledged upload is there
// and verifies, and no manifest is half-written.
func TestS3ServerRestarted(t *testing.T) {
	gw := startOwnVersityGW(t)
	e := &env{s3: gw.server, redis: testenv.RedisAddrs(t, 3), keyPrefix: uniquePrefix(), lockTimeout: 5 * time.Second}
	uris := []string{"artifact://s3restart/task/log", "artifact://s3restart/task/test"}
	l := startLoad(t, e, 3, 2, uris)

	l.waitWrites(10, time.Minute, "writes before the restart")
	gw.kill(t)
	l.mark()
	poll(t, time.Minute, "requests to fail while S3 is down", func() bool {
		return l.writesFailed.Load() >= 2 && l.readsFailed.Load() >= 2
	})
	gw.restart(t)
	for _, err := range l.mark() {
		if !typedWriteError(err) {
			t.Errorf("untyped error during the outage: %v", err)
		}
		if errors.Is(err, store.ErrIntegrity) {
			t.Errorf("integrity error during the outage: %v", err)
		}
	}
	l.waitWrites(10, time.Minute, "writes after the restart")
	poll(t, time.Minute, "reads after the restart", func() bool { return l.readsOK.Load() >= 5 })
	l.halt()
	for _, err := range l.mark() {
		if !typedWriteError(err) {
			t.Errorf("untyped error after the restart: %v", err)
		}
	}
	checkStoreState(t, e, uris, l.acked.all())
}

// checkStoreState asserts D1 after a fault test: every acknowledged upload
// present and verified, versions gapless, and Reconcile finds no version
// whose blob is missing and no invalid manifest. Unreferenced blobs are
// allowed (writes whose outcome was uncertain keep theirs for reconcile).
func checkStoreState(t *testing.T, e *env, uris []string, acked []ack) {
	t.Helper()
	s := e.open(t, nil).Store
	n := checkAcked(t, s, uris, acked, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := s.Reconcile(ctx, store.ReconcileOptions{GracePeriod: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.MissingBlobs) != 0 || len(rep.InvalidManifests) != 0 || rep.Manifests != len(uris) {
		t.Fatalf("reconcile: %s", jsonOf(rep))
	}
	t.Logf("%d versions, %d acknowledged, %d unreferenced blobs", n, len(acked), len(rep.OrphanBlobs))
}

// versityGW is a versitygw started by a test that kills and restarts it on
// the same port and directory.
type versityGW struct {
	server testenv.S3Server
	bin    string
	args   []string
	mu     sync.Mutex
	proc   *testenv.Process
}

// startOwnVersityGW starts a versitygw for t even when the environment
// names an external S3 server: this test kills it.
func startOwnVersityGW(t *testing.T) *versityGW {
	t.Helper()
	bin, err := testenv.VersityGWBinary()
	if err != nil {
		t.Fatalf("%v", err)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := testenv.Addr(testenv.FreePort(t))
	g := &versityGW{
		server: testenv.S3Server{Endpoint: addr, AccessKey: "itaccess", SecretKey: "itsecret-" + uniquePrefix(), Region: "us-east-1", Bucket: testenv.UniqueBucketName()},
		bin:    bin,
	}
	g.args = []string{"--access", g.server.AccessKey, "--secret", g.server.SecretKey, "--region", g.server.Region,
		"--port", addr, "--keep-alive", "--quiet", "posix", root}
	g.start(t)
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.proc.Stop()
	})
	return g
}

func (g *versityGW) start(t *testing.T) {
	t.Helper()
	p, err := testenv.StartProcess("versitygw "+g.server.Endpoint, g.bin, g.args, testenv.DialReady(g.server.Endpoint))
	if err != nil {
		t.Fatalf("%v", err)
	}
	g.mu.Lock()
	g.proc = p
	g.mu.Unlock()
}

// kill stops the server with SIGKILL (by PID) and waits for it to exit.
func (g *versityGW) kill(t *testing.T) {
	g.mu.Lock()
	p := g.proc
	g.mu.Unlock()
	p.Kill()
}

// restart starts the server again on the same port and directory.
func (g *versityGW) restart(t *testing.T) {
	t.Helper()
	g.start(t)
}
