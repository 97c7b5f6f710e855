package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// hammer runs writers x uploads distinct uploads to uri and returns the
// SHA-256 of every acknowledged one, with its version.
func hammer(t *testing.T, s *Store, uri string, writers, uploads int) map[string]int {
	t.Helper()
	var (
		mu    sync.Mutex
		acked = map[string]int{}
		wg    sync.WaitGroup
		errs  = make(chan error, writers*uploads)
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uploads {
				data := content(w, i)
				md, err := s.UploadBytes(context.Background(), uri, data, UploadOptions{Metadata: map[string]string{"w": fmt.Sprint(w)}})
				if err != nil {
					errs <- fmt.Errorf("writer %d upload %d: %w", w, i, err)
					continue
				}
				if md.SHA256 != sha(data) {
					errs <- fmt.Errorf("writer %d upload %d: sha %s", w, i, md.SHA256)
				}
				mu.Lock()
				acked[md.SHA256] = md.Version
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return acked
}

func TestConcurrentUploadsVersioned(t *testing.T) {
	const writers, uploads = 16, 50
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true}, nil)
		const uri = "artifact://hot/task/log"
		acked := hammer(t, f.s, uri, writers, uploads)
		if len(acked) != writers*uploads {
			t.Fatalf("%d acknowledged uploads, want %d", len(acked), writers*uploads)
		}
		vs, err := f.s.Versions(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != writers*uploads {
			t.Fatalf("%d versions, want %d", len(vs), writers*uploads)
		}
		seen := map[string]bool{}
		for i, v := range vs {
			if v.Version != i+1 {
				t.Fatalf("version #%d is numbered %d: a gap", i, v.Version)
			}
			seen[v.SHA256] = true
			if want, ok := acked[v.SHA256]; !ok || want != v.Version {
				t.Fatalf("version %d (sha %s) was acknowledged as version %d (%v)", v.Version, v.SHA256, want, ok)
			}
		}
		for h := range acked {
			if !seen[h] {
				t.Fatalf("acknowledged upload %s is missing", h)
			}
		}
		// No orphan: exactly one blob per version.
		if blobs := backendtest.Keys(t, f.b, "blobs/"); len(blobs) != writers*uploads {
			t.Fatalf("%d blobs for %d versions", len(blobs), writers*uploads)
		}
		// Fences of the commits increase with the version numbers.
		for i := 1; i < len(vs); i++ {
			if vs[i].Fence <= vs[i-1].Fence {
				t.Fatalf("fence %d of version %d after fence %d", vs[i].Fence, vs[i].Version, vs[i-1].Fence)
			}
		}
	})
}

func TestConcurrentUploadsReplace(t *testing.T) {
	const writers, uploads = 16, 50
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		const uri = "artifact://hot/task/diff"
		acked := hammer(t, f.s, uri, writers, uploads)
		data, md := mustDownload(t, f.s, uri)
		if _, ok := acked[sha(data)]; !ok {
			t.Fatalf("final content %q is not an acknowledged upload", data)
		}
		m := rawManifest(t, f.b, uri) // decodes and validates
		if len(m.Versions) != 1 || md.Version != writers*uploads || m.NextVersion != writers*uploads+1 {
			t.Fatalf("manifest: %d versions, current %d, next %d", len(m.Versions), md.Version, m.NextVersion)
		}
		if blobs := backendtest.Keys(t, f.b, "blobs/"); !slices.Equal(blobs, []string{md.BlobKey}) {
			t.Fatalf("blobs %v, want only %s", blobs, md.BlobKey)
		}
	})
}

func TestOptimisticConcurrentWriters(t *testing.T) {
	const writers, uploads = 8, 10
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{DisableLocking: true, Versioning: true, MaxConflictRetries: 1000, ConflictBackoff: time.Millisecond}, nil)
		const uri = "artifact://opt/task/log"
		acked := hammer(t, f.s, uri, writers, uploads)
		vs, err := f.s.Versions(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != writers*uploads || len(acked) != writers*uploads {
			t.Fatalf("%d versions, %d acknowledged, want %d", len(vs), len(acked), writers*uploads)
		}
		for i, v := range vs {
			if v.Version != i+1 || acked[v.SHA256] != v.Version || v.Fence != 0 {
				t.Fatalf("version #%d: %+v", i, v)
			}
		}
		if _, err := f.s.IsLocked(context.Background(), uri); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("IsLocked without locking: %v", err)
		}
	})
}

// A writer without locks that loses the race re-reads and re-applies.
func TestOptimisticReapplies(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		var g *gate
		f := newFixture(t, e, Config{DisableLocking: true, Versioning: true}, func(b backend.Backend) backend.Backend {
			g = newGate(b, "put", "manifests/")
			return g
		})
		const uri = "artifact://opt/task/diff"
		mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
		g.arm()
		done := make(chan error, 1)
		go func() {
			_, err := f.s.UploadBytes(context.Background(), uri, []byte("slow"), UploadOptions{})
			done <- err
		}()
		<-g.entered
		mustUpload(t, f.s, uri, []byte("fast"), UploadOptions{})
		close(g.release)
		if err := <-done; err != nil {
			t.Fatalf("the slow writer: %v", err)
		}
		vs, _ := f.s.Versions(context.Background(), uri)
		if len(vs) != 3 || vs[1].SHA256 != sha([]byte("fast")) || vs[2].SHA256 != sha([]byte("slow")) {
			t.Fatalf("versions %+v", vs)
		}
	})
}

func TestOptimisticGivesUp(t *testing.T) {
	fb := backendtest.NewFaulty(memEnv().newBackend(t))
	f := newFixtureOn(t, fb, nil, Config{DisableLocking: true, MaxConflictRetries: 2, ConflictBackoff: time.Microsecond}, nil)
	mustUpload(t, f.s, "artifact://s/t/log", []byte("v1"), UploadOptions{})
	before := snapshot(t, fb)
	fb.Clear()
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Err: backendtest.Permanent("lost race", backend.ErrPreconditionFailed)})
	_, err := f.s.UploadBytes(context.Background(), "artifact://s/t/log", []byte("v2"), UploadOptions{})
	if !errors.Is(err, ErrConflict) || !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Fatalf("err %v, want ErrConflict", err)
	}
	// blob + catalog log entry + the first attempt's guess on the manifest
	// the Store wrote + 3 manifest attempts
	if got := fb.Calls(backendtest.OpPut); got != 6 {
		t.Fatalf("%d Puts, want 6", got)
	}
	if after := snapshot(t, fb); !maps.Equal(before, after) {
		t.Fatalf("bucket changed: %v -> %v", before, after)
	}
}

// A writer whose lease is broken while it is paused (here: in its manifest
// read) must not commit; the writer that took the lock is unaffected.
func TestLeaseBrokenWhilePaused(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		var g *gate
		// The writer pauses at its first manifest request under the lock:
		// the read, or the Put of its guess on the manifest it wrote last
		// (commitOnce).
		f := newFixture(t, e, Config{Versioning: true}, func(b backend.Backend) backend.Backend {
			g = newGate(b, "", "manifests/")
			return g
		})
		ctx := context.Background()
		const uri = "artifact://s/t/diff"
		v1 := mustUpload(t, f.s, uri, []byte("original"), UploadOptions{})

		g.arm()
		done := make(chan error, 1)
		go func() { _, err := f.s.UploadBytes(ctx, uri, []byte("stale writer"), UploadOptions{}); done <- err }()
		<-g.entered // the writer holds the lock and is paused

		st, err := f.s.IsLocked(ctx, uri)
		if err != nil || !st.Held {
			t.Fatalf("IsLocked while paused = %+v, %v", st, err)
		}
		st, err = f.s.ForceUnlock(ctx, uri)
		if err != nil || !st.Held || st.Fence == 0 {
			t.Fatalf("ForceUnlock = %+v, %v", st, err)
		}
		v2 := mustUpload(t, f.s, uri, []byte("new writer"), UploadOptions{})
		close(g.release)

		err = <-done
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("stale writer: %v, want ErrConflict", err)
		}
		checkOnly(t, f, uri, v1, v2)
	})
}

// A writer whose lease expires while it is paused right before its manifest
// Put is refused by the conditional Put itself.
func TestLeaseExpiredBeforePut(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		var g *gate
		b := e.newBackend(t)
		l := e.newLocker(t, b, lock.Config{Expiry: time.Second, DisableAutoRefresh: true, RetryInterval: 10 * time.Millisecond})
		f := newFixtureOn(t, b, l, Config{Versioning: true}, func(b backend.Backend) backend.Backend {
			g = newGate(b, "put", "manifests/")
			return g
		})
		ctx := context.Background()
		const uri = "artifact://s/t/log"
		v1 := mustUpload(t, f.s, uri, []byte("original"), UploadOptions{})

		g.arm()
		done := make(chan error, 1)
		go func() { _, err := f.s.UploadBytes(ctx, uri, []byte("paused writer"), UploadOptions{}); done <- err }()
		<-g.entered // past every check, about to Put the manifest

		// This upload waits until the paused writer's lease expires.
		v2 := mustUpload(t, f.s, uri, []byte("next writer"), UploadOptions{})
		close(g.release)

		err := <-done
		if !errors.Is(err, ErrConflict) || !errors.Is(err, backend.ErrPreconditionFailed) {
			t.Fatalf("paused writer: %v, want ErrConflict from the conditional Put", err)
		}
		checkOnly(t, f, uri, v1, v2)
	})
}

// checkOnly asserts that uri has exactly the versions want, with intact
// content, and no other blob.
func checkOnly(t *testing.T, f *fixture, uri string, want ...Metadata) {
	t.Helper()
	vs, err := f.s.Versions(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(want) {
		t.Fatalf("%d versions, want %d: %+v", len(vs), len(want), vs)
	}
	var blobs []string
	for i, v := range vs {
		if v.SHA256 != want[i].SHA256 || v.Version != want[i].Version || v.BlobKey != want[i].BlobKey {
			t.Fatalf("version %d = %+v, want %+v", i, v, want[i])
		}
		if err := f.s.VerifyChecksum(context.Background(), v.URI); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, v.BlobKey)
	}
	slices.Sort(blobs)
	if got := backendtest.Keys(t, f.b, "blobs/"); !slices.Equal(got, blobs) {
		t.Fatalf("blobs %v, want %v: the refused writer's blob is left", got, blobs)
	}
}

func TestLockTimeout(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{LockTimeout: 50 * time.Millisecond}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/log"
		mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
		lease, err := f.locker.Acquire(ctx, lockKey(URI{Spec: "s", Task: "t", Type: "log"}))
		if err != nil {
			t.Fatal(err)
		}
		defer lease.Release(ctx)
		before := snapshot(t, f.b)
		_, err = f.s.UploadBytes(ctx, uri, []byte("v2"), UploadOptions{})
		if !errors.Is(err, ErrLockTimeout) {
			t.Fatalf("upload while locked: %v, want ErrLockTimeout", err)
		}
		if _, err := f.s.AddTags(ctx, uri, "x"); !errors.Is(err, ErrLockTimeout) {
			t.Fatalf("tags while locked: %v", err)
		}
		if err := f.s.Delete(ctx, uri); !errors.Is(err, ErrLockTimeout) {
			t.Fatalf("delete while locked: %v", err)
		}
		if after := snapshot(t, f.b); !maps.Equal(before, after) {
			t.Fatalf("bucket changed: %v -> %v", before, after)
		}
		// Reads take no lock.
		if got, _ := mustDownload(t, f.s, uri); string(got) != "v1" {
			t.Fatalf("download while locked: %q", got)
		}
		st, err := f.s.IsLocked(ctx, uri)
		if err != nil || !st.Held || st.Fence != lease.Fence() {
			t.Fatalf("IsLocked = %+v, %v", st, err)
		}
	})
}

// lockerOnly hides the optional interfaces of a Locker.
type lockerOnly struct{ lock.Locker }

func TestLockOperationsUnsupported(t *testing.T) {
	e := memEnv()
	b := e.newBackend(t)
	f := newFixtureOn(t, b, lockerOnly{e.newLocker(t, b, lock.Config{})}, Config{}, nil)
	ctx := context.Background()
	mustUpload(t, f.s, "artifact://s/t/log", []byte("x"), UploadOptions{})
	if _, err := f.s.IsLocked(ctx, "artifact://s/t/log"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("IsLocked: %v", err)
	}
	if _, err := f.s.ForceUnlock(ctx, "artifact://s/t/log"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ForceUnlock: %v", err)
	}
	if _, err := f.s.IsLocked(ctx, "artifact://bad"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("IsLocked bad URI: %v", err)
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		fb := backendtest.NewFaulty(e.newBackend(t))
		l := e.newLocker(t, fb, lock.Config{})
		f := newFixtureOn(t, fb, l, Config{Versioning: true, Retry: backend.RetryConfig{Initial: time.Millisecond}}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/test"
		data := []byte(fmt.Sprintf("%0100000d", 42))
		fb.Inject(
			backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Times: 2, Err: backendtest.Transient("get manifest")},
			backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 2, Err: backendtest.Transient("put manifest")},
			backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Times: 1, Err: backendtest.Transient("put blob")},
			// Fails after part of the body: only the store can replay it.
			backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Times: 1, At: backendtest.Midway, Offset: 1000, Err: backendtest.Transient("put blob midway")},
		)
		md, err := f.s.UploadBytes(ctx, uri, data, UploadOptions{})
		if err != nil {
			t.Fatalf("upload through transient faults: %v", err)
		}
		fb.Clear()
		fb.Inject(
			backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "blobs/", Times: 1, Err: backendtest.Transient("get blob")},
			backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "blobs/", Times: 1, At: backendtest.Midway, Offset: 5000, Err: backendtest.Transient("read blob midway")},
		)
		got, dmd, err := f.s.Download(ctx, uri)
		if err != nil || string(got) != string(data) || dmd.Version != md.Version {
			t.Fatalf("download through transient faults: %v", err)
		}
		// A manifest Put whose response is lost: the retried conditional
		// Put fails, and the store finds its own commit.
		fb.Clear()
		fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("response lost")})
		md2, err := f.s.UploadBytes(ctx, uri, []byte("second"), UploadOptions{})
		if err != nil || md2.Version != 2 {
			t.Fatalf("upload with a lost response: %+v, %v", md2, err)
		}
		fb.Clear()
		vs, _ := f.s.Versions(ctx, uri)
		if len(vs) != 2 {
			t.Fatalf("%d versions", len(vs))
		}
		if blobs := backendtest.Keys(t, fb, "blobs/"); len(blobs) != 2 {
			t.Fatalf("blobs %v", blobs)
		}
		// A permanent failure is not retried and changes nothing.
		before := snapshot(t, fb)
		fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)})
		if _, err := f.s.UploadBytes(ctx, uri, []byte("third"), UploadOptions{}); !errors.Is(err, ErrPermissionDenied) || !errors.Is(err, backendtest.ErrInjected) {
			t.Fatalf("permanent failure: %v", err)
		}
		fb.Clear()
		if after := snapshot(t, fb); !maps.Equal(before, after) {
			t.Fatalf("bucket changed: %v -> %v", before, after)
		}
	})
}

// Two Stores on one bucket and lock service, like two processes: a Store
// that has not seen an artifact tries to create it and, finding it, falls
// back to the read-modify-write.
func TestStoresShareArtifacts(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		fb := backendtest.NewFaulty(e.newBackend(t))
		l := e.newLocker(t, fb, lock.Config{})
		cfg := Config{Versioning: true}
		s1 := newFixtureOn(t, fb, l, cfg, nil).s
		s2 := newFixtureOn(t, fb, l, cfg, nil).s
		ctx := context.Background()
		const uri = "artifact://shared/t/log"
		mustUpload(t, s1, uri, []byte("one"), UploadOptions{})
		fb.Clear()
		md := mustUpload(t, s2, uri, []byte("two"), UploadOptions{Tags: []string{"x"}})
		if md.Version != 2 || !slices.Equal(md.Tags, []string{"x"}) {
			t.Fatalf("second store's upload: %+v", md)
		}
		// blob Put, catalog log entry, tag index marker of "x" (once),
		// create attempt, manifest Put
		if puts := fb.Calls(backendtest.OpPut); puts != 5 {
			t.Fatalf("%d Puts", puts)
		}
		md = mustUpload(t, s1, uri, []byte("three"), UploadOptions{})
		if md.Version != 3 || !slices.Equal(md.Tags, []string{"x"}) {
			t.Fatalf("first store, stale cache: %+v", md)
		}
		vs, err := s2.Versions(ctx, uri)
		if err != nil || len(vs) != 3 {
			t.Fatalf("versions %+v, %v", vs, err)
		}
		// Deleted by one, re-created by the other.
		if err := s1.Delete(ctx, uri); err != nil {
			t.Fatal(err)
		}
		md = mustUpload(t, s2, uri, []byte("again"), UploadOptions{})
		if md.Version != 1 {
			t.Fatalf("re-created artifact: %+v", md)
		}
		// The create's response is lost: the retried if-absent Put fails,
		// and the store finds its own commit.
		fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("response lost")})
		md = mustUpload(t, s1, "artifact://shared/t/new", []byte("new"), UploadOptions{})
		if md.Version != 1 {
			t.Fatalf("create with a lost response: %+v", md)
		}
		fb.Clear()
		if blobs := backendtest.Keys(t, fb, "blobs/"); len(blobs) != 2 {
			t.Fatalf("blobs %v", blobs)
		}
	})
}

// A lock service that lost its fence counters (a Redis master restarted
// without persistence) hands out fences lower than those already recorded
// in manifests. Writers holding such leases are confirmed by a refresh and
// go on; a stale holder would fail the refresh.
func TestFenceCounterReset(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		b := e.newBackend(t)
		before := newFixtureOn(t, b, e.newLocker(t, b, lock.Config{}), Config{Versioning: true}, nil)
		const uri = "artifact://s/t/log"
		for i := range 5 {
			mustUpload(t, before.s, uri, []byte{byte(i)}, UploadOptions{})
		}
		// A new lock service: fences start again from 1.
		after := newFixtureOn(t, b, e.newLocker(t, b, lock.Config{}), Config{Versioning: true}, nil)
		md := mustUpload(t, after.s, uri, []byte("after the reset"), UploadOptions{})
		if md.Version != 6 || md.Fence >= 5 {
			t.Fatalf("upload after the reset: %+v", md)
		}
		if _, err := after.s.AddTags(context.Background(), uri, "x"); err != nil {
			t.Fatalf("tags after the reset: %v", err)
		}
		warned := false
		for _, r := range after.logs.Records() {
			warned = warned || strings.Contains(r.Message, "fence counter was reset")
		}
		if !warned {
			t.Fatal("the reset was not logged")
		}
	})
}

// A writer paused past its lease's expiry is refused even when nobody
// committed in between (so neither the ETag nor the fence changed): the
// lease itself is checked before the commit.
func TestLeaseExpiredNoOtherCommit(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		var g *gate
		b := e.newBackend(t)
		l := e.newLocker(t, b, lock.Config{Expiry: 500 * time.Millisecond, DisableAutoRefresh: true, RetryInterval: 10 * time.Millisecond})
		f := newFixtureOn(t, b, l, Config{}, func(b backend.Backend) backend.Backend {
			g = newGate(b, "get", "manifests/")
			return g
		})
		ctx := context.Background()
		const uri = "artifact://s/t/log"
		mustUpload(t, f.s, uri, []byte("original"), UploadOptions{})
		before := snapshot(t, b)
		// The paused writer reads the manifest under the lock (it does
		// not guess from the copy it wrote: commitOnce).
		f.s.manifests.remove(manifestKey(csParse(t, uri)))

		g.arm()
		done := make(chan error, 1)
		go func() { _, err := f.s.UploadBytes(ctx, uri, []byte("paused writer"), UploadOptions{}); done <- err }()
		<-g.entered
		// Returns once the paused writer's lease has expired.
		other, err := l.Acquire(ctx, lockKey(URI{Spec: "s", Task: "t", Type: "log"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Release(ctx); err != nil {
			t.Fatal(err)
		}
		close(g.release)
		if err := <-done; !errors.Is(err, ErrConflict) || !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("paused writer: %v, want ErrConflict and ErrLeaseLost", err)
		}
		if after := snapshot(t, b); !maps.Equal(before, after) {
			t.Fatalf("bucket changed: %v -> %v", sortedKeys(before), sortedKeys(after))
		}
	})
}
