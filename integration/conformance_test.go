package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// Concurrent writers of the store's unit tests (issue 4), on S3 and three
// Redis masters: 16 writers x 50 versioned uploads = 800 versions, on two
// Stores (two "hosts" with their own connections). About 40 s with -race on
// a 2-core machine.
const (
	hammerWriters = 16
	hammerUploads = 50
)

func TestStoreOnS3AndRedis(t *testing.T) {
	e := newEnv(t, 3)

	t.Run("concurrent versioned uploads", func(t *testing.T) {
		stores := []*store.Store{e.open(t, nil).Store, e.open(t, nil).Store}
		const uri = "artifact://conformance/hot/log"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		n := hammer(ctx, t, stores, uri, hammerUploads)
		// One blob per version: no orphan, nothing half-written.
		if blobs := backendtest.Keys(t, e.raw(t), "blobs/conformance/hot/"); len(blobs) != n {
			t.Fatalf("%d blobs for %d versions", len(blobs), n)
		}
		vs, err := stores[1].Versions(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(vs); i++ {
			if vs[i].Fence <= vs[i-1].Fence {
				t.Fatalf("fence %d of version %d after fence %d", vs[i].Fence, vs[i].Version, vs[i-1].Fence)
			}
		}
	})

	t.Run("concurrent small uploads in manifests", func(t *testing.T) {
		// Contents in the manifests: 16 writers on two Stores; with
		// at most 4 x 256 bytes in a manifest, the oldest contents move
		// to blobs every few versions.
		small := func(c *setup.Config) { c.Store.InlineMaxBytes = 256 }
		stores := []*store.Store{e.open(t, small).Store, e.open(t, small).Store}
		const uri = "artifact://conformance/small/log"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		hammer(ctx, t, stores, uri, 20)
		if err := stores[1].VerifyChecksum(ctx, uri); err != nil {
			t.Fatal(err)
		}
		rep, err := stores[0].Reconcile(ctx, store.ReconcileOptions{})
		if err != nil || len(rep.OrphanBlobs) != 0 || len(rep.MissingBlobs) != 0 || rep.Pending != 0 {
			t.Fatalf("reconcile: %+v, %v", rep, err)
		}
		if rep.Blobs == 0 {
			t.Fatalf("no content moved out of the manifest: %+v", rep)
		}
	})

	t.Run("concurrent replacing uploads", func(t *testing.T) {
		s := e.open(t, func(c *setup.Config) { c.Store.Versioning = false }).Store
		const uri = "artifact://conformance/replace/diff"
		var (
			got acks
			wg  sync.WaitGroup
		)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for w := range 4 {
			wg.Go(func() {
				for i := range 5 {
					md, err := s.UploadBytes(ctx, uri, payload(fmt.Sprintf("replacer %d", w), i), store.UploadOptions{})
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					got.add(ackOf(t, md))
				}
			})
		}
		wg.Wait()
		data, md, err := s.Download(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(got.all(), func(a ack) bool { return a.SHA256 == sha(data) && a.Version == md.Version }) {
			t.Fatalf("final content (version %d) is not an acknowledged upload", md.Version)
		}
		vs, err := s.Versions(ctx, uri)
		if err != nil || len(vs) != 1 || md.Version != 20 {
			t.Fatalf("versions %+v (%v), current %d; want one version numbered 20", vs, err, md.Version)
		}
		if blobs := backendtest.Keys(t, e.raw(t), "blobs/conformance/replace/"); !slices.Equal(blobs, []string{md.BlobKey}) {
			t.Fatalf("blobs %v, want only %s", blobs, md.BlobKey)
		}
	})

	t.Run("lease broken before the commit", func(t *testing.T) {
		g := newGate()
		slow := e.open(t, func(c *setup.Config) {
			c.WrapBackend = func(b backend.Backend) backend.Backend {
				return &hookBackend{Backend: b, beforeGet: g.onPrefix("manifests/")}
			}
		}).Store
		other := e.open(t, nil).Store
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const uri = "artifact://conformance/broken/diff"
		v1, err := other.UploadBytes(ctx, uri, []byte("original"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The slow writer has seen the artifact, so its write starts with
		// the manifest read (not with a blind if-absent put).
		if _, err := slow.Versions(ctx, uri); err != nil {
			t.Fatal(err)
		}
		g.arm()
		done := make(chan error, 1)
		go func() {
			_, err := slow.UploadBytes(ctx, uri, []byte("stale writer"), store.UploadOptions{})
			done <- err
		}()
		waitFor(t, g.entered, 30*time.Second, "the writer to hold the lock")
		st, err := other.ForceUnlock(ctx, uri)
		if err != nil || !st.Held {
			t.Fatalf("ForceUnlock = %+v, %v", st, err)
		}
		v2, err := other.UploadBytes(ctx, uri, []byte("new writer"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		close(g.release)
		if err := <-done; !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale writer: %v, want ErrConflict", err)
		}
		checkOnly(t, e, other, uri, v1, v2)
	})

	t.Run("lease expired before the manifest put", func(t *testing.T) {
		g := newGate()
		short := func(c *setup.Config) {
			c.LockConfig.Expiry = time.Second
			c.LockConfig.DisableAutoRefresh = true
		}
		slow := e.open(t, func(c *setup.Config) {
			short(c)
			c.WrapBackend = func(b backend.Backend) backend.Backend {
				return &hookBackend{Backend: b, beforePut: g.onPrefix("manifests/")}
			}
		}).Store
		other := e.open(t, short).Store
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const uri = "artifact://conformance/expired/log"
		v1, err := other.UploadBytes(ctx, uri, []byte("original"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The slow writer has seen the artifact, so its first manifest put
		// is the conditional commit (not a blind if-absent put).
		if _, err := slow.Versions(ctx, uri); err != nil {
			t.Fatal(err)
		}
		g.arm()
		done := make(chan error, 1)
		go func() {
			_, err := slow.UploadBytes(ctx, uri, []byte("paused writer"), store.UploadOptions{})
			done <- err
		}()
		waitFor(t, g.entered, 30*time.Second, "the writer to reach its manifest put")
		// Waits until the paused writer's lease expires.
		v2, err := other.UploadBytes(ctx, uri, []byte("next writer"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		close(g.release)
		err = <-done
		if !errors.Is(err, store.ErrConflict) || !errors.Is(err, backend.ErrPreconditionFailed) {
			t.Fatalf("paused writer: %v, want ErrConflict from the conditional put", err)
		}
		checkOnly(t, e, other, uri, v1, v2)
	})

	// D4: the lock is not held while the content streams: a writer whose
	// source stalls in the middle of an 8 MiB upload does not hold the
	// artifact's lock, and another writer commits meanwhile.
	t.Run("no lock while the content streams", func(t *testing.T) {
		s := e.open(t, nil).Store
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const uri = "artifact://conformance/stream/log"
		const size = 8 << 20
		src := &stallingReader{n: size, stallAt: 1 << 20, stalled: make(chan struct{}), resume: make(chan struct{})}
		done := make(chan error, 1)
		var slow store.Metadata
		go func() {
			var err error
			slow, err = s.Upload(ctx, uri, src, size, store.UploadOptions{})
			done <- err
		}()
		waitFor(t, src.stalled, 30*time.Second, "the upload to stall mid-stream")
		st, err := s.IsLocked(ctx, uri)
		if err != nil || st.Held {
			t.Fatalf("lock during the transfer: %+v, %v; want free", st, err)
		}
		other, err := s.UploadBytes(ctx, uri, []byte("committed during the transfer"), store.UploadOptions{})
		if err != nil || other.Version != 1 {
			t.Fatalf("upload during the other's transfer: %+v, %v", other, err)
		}
		close(src.resume)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if slow.Version != 2 || slow.Size != size {
			t.Fatalf("streamed upload: version %d, size %d", slow.Version, slow.Size)
		}
		checkOnly(t, e, s, uri, other, slow)
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		s := e.open(t, nil).Store
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const uri = "artifact://conformance/input/test"
		v1, err := s.UploadBytes(ctx, uri, []byte("valid"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		failing := io.MultiReader(strings.NewReader("half"), errReader{})
		cases := []struct {
			name string
			call func() error
			want error
		}{
			{"empty URI", func() error { _, err := s.UploadBytes(ctx, "", []byte("x"), store.UploadOptions{}); return err }, store.ErrInvalidArgument},
			{"path traversal", func() error {
				_, err := s.UploadBytes(ctx, "artifact://../task/log", []byte("x"), store.UploadOptions{})
				return err
			}, store.ErrInvalidArgument},
			{"unknown version", func() error { _, _, err := s.Download(ctx, uri+"?version=99"); return err }, store.ErrNotFound},
			{"oversized metadata", func() error {
				_, err := s.UploadBytes(ctx, uri, []byte("x"), store.UploadOptions{Metadata: map[string]string{"k": strings.Repeat("v", 20<<10)}})
				return err
			}, store.ErrInvalidArgument},
			{"nil reader", func() error { _, err := s.Upload(ctx, uri, nil, 1, store.UploadOptions{}); return err }, store.ErrInvalidArgument},
			{"reader failing half-way", func() error { _, err := s.Upload(ctx, uri, failing, 100, store.UploadOptions{}); return err }, errBroken},
		}
		for _, tc := range cases {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		empty, err := s.UploadBytes(ctx, "artifact://conformance/input/diff", nil, store.UploadOptions{})
		if err != nil || empty.Size != 0 {
			t.Fatalf("zero-byte upload: %+v, %v", empty, err)
		}
		if data, _, err := s.Download(ctx, empty.URI); err != nil || len(data) != 0 {
			t.Fatalf("zero-byte download: %q, %v", data, err)
		}
		checkOnly(t, e, s, uri, v1)
	})

	t.Run("corrupted blob fails verification", func(t *testing.T) {
		s := e.open(t, nil).Store
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const uri = "artifact://conformance/corrupt/log"
		md, err := s.UploadBytes(ctx, uri, []byte("the real content"), store.UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bad := []byte("the fake content")
		if _, err := e.raw(t).Put(ctx, md.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Download(ctx, uri); !errors.Is(err, store.ErrIntegrity) {
			t.Fatalf("download of a corrupted blob: %v, want ErrIntegrity", err)
		}
		if err := s.VerifyChecksum(ctx, uri); !errors.Is(err, store.ErrIntegrity) {
			t.Fatalf("VerifyChecksum of a corrupted blob: %v, want ErrIntegrity", err)
		}
	})
}

var errBroken = errors.New("reader broke")

// stallingReader yields n pattern bytes, stopping after stallAt bytes
// (closing stalled) until resume is closed.
type stallingReader struct {
	n, read, stallAt int64
	stalled, resume  chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.read == r.n {
		return 0, io.EOF
	}
	if r.read == r.stallAt {
		close(r.stalled)
		<-r.resume
		r.stallAt = -1
	}
	limit := r.n - r.read
	if r.stallAt > r.read {
		limit = r.stallAt - r.read
	}
	k := int(min(int64(len(p)), limit))
	for i := range k {
		p[i] = byte((r.read + int64(i)) % 251)
	}
	r.read += int64(k)
	return k, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

// checkOnly asserts that uri has exactly the versions want, with intact
// content, and no other blob.
func checkOnly(t *testing.T, e *env, s *store.Store, uri string, want ...store.Metadata) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vs, err := s.Versions(ctx, uri)
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
		blobs = append(blobs, v.BlobKey)
	}
	if err := s.VerifyChecksum(ctx, uri); err != nil {
		t.Fatal(err)
	}
	u, _ := store.ParseURI(uri)
	slices.Sort(blobs)
	prefix := fmt.Sprintf("blobs/%s/%s/%s/", u.Spec, u.Task, u.Type)
	if got := backendtest.Keys(t, e.raw(t), prefix); !slices.Equal(got, blobs) {
		t.Fatalf("blobs %v, want %v: a refused writer's blob is left", got, blobs)
	}
}

// hammer runs hammerWriters writers, spread over stores, each uploading
// distinct content to uri uploads times, and checks that every
// acknowledged upload is a version (and nothing else is). It returns the
// number of versions.
func hammer(ctx context.Context, t *testing.T, stores []*store.Store, uri string, uploads int) int {
	t.Helper()
	var (
		got  acks
		wg   sync.WaitGroup
		errs = make(chan error, hammerWriters*uploads)
	)
	for w := range hammerWriters {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for i := range uploads {
				data := payload(fmt.Sprintf("writer %d", w), i)
				md, err := s.UploadBytes(ctx, uri, data, store.UploadOptions{})
				if err != nil {
					errs <- fmt.Errorf("writer %d upload %d: %w", w, i, err)
					continue
				}
				if md.SHA256 != sha(data) {
					errs <- fmt.Errorf("writer %d upload %d: acknowledged sha %s", w, i, md.SHA256)
				}
				got.add(ackOf(t, md))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := checkAcked(t, stores[0], []string{uri}, got.all(), true)
	if n != hammerWriters*uploads {
		t.Fatalf("%d versions, want %d", n, hammerWriters*uploads)
	}
	return n
}
