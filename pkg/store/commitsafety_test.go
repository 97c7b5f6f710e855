package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

// Reproducers of the commit-safety faults: lost replies on conditional
// writes, stale removals, unbounded manifests, garbage collection racing a
// writer, the quota counter, and scans that swallow a cancellation. Each
// test drives one fault deterministically (membackend, memlock, gates and
// hooks; no sleeps) and asserts the contract, not how it is met.

// ---------------------------------------------------------------------------
// Test-local decorator: run test code at exact points of backend calls.

// csHooks is a backend.Backend decorator that calls test code before and
// after each call (after: with the call's error, which the hook may
// replace), when a Get's body is closed, and when a List iteration has
// yielded its last object. Stacked over backendtest.Faulty, its after hook
// sees an injected lost reply once the call has landed and before the
// store's retry decorator re-sends it.
type csHooks struct {
	backend.Backend

	mu     sync.Mutex
	before func(ctx context.Context, op backendtest.Op, key string) error
	after  func(ctx context.Context, op backendtest.Op, key string, err error) error
	closed func(key string)
	listed func(prefix string)
}

func newCSHooks(b backend.Backend) *csHooks { return &csHooks{Backend: b} }

func (h *csHooks) onBefore(fn func(ctx context.Context, op backendtest.Op, key string) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before = fn
}

func (h *csHooks) onAfter(fn func(ctx context.Context, op backendtest.Op, key string, err error) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.after = fn
}

func (h *csHooks) onClose(fn func(key string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = fn
}

func (h *csHooks) onListed(fn func(prefix string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listed = fn
}

func (h *csHooks) hooks() (func(context.Context, backendtest.Op, string) error, func(context.Context, backendtest.Op, string, error) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.before, h.after
}

func (h *csHooks) call(ctx context.Context, op backendtest.Op, key string, do func() error) error {
	before, after := h.hooks()
	if before != nil {
		if err := before(ctx, op, key); err != nil {
			return err
		}
	}
	err := do()
	if after != nil {
		err = after(ctx, op, key, err)
	}
	return err
}

func (h *csHooks) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	var info backend.ObjectInfo
	err := h.call(ctx, backendtest.OpPut, key, func() (err error) {
		info, err = h.Backend.Put(ctx, key, r, size, opts)
		return err
	})
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return info, nil
}

func (h *csHooks) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	var (
		rc   io.ReadCloser
		info backend.ObjectInfo
	)
	err := h.call(ctx, backendtest.OpGet, key, func() (err error) {
		rc, info, err = h.Backend.Get(ctx, key)
		return err
	})
	if err != nil {
		if rc != nil {
			_ = rc.Close()
		}
		return nil, backend.ObjectInfo{}, err
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed != nil {
		rc = &csHookedBody{ReadCloser: rc, done: func() { closed(key) }}
	}
	return rc, info, nil
}

func (h *csHooks) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	var info backend.ObjectInfo
	err := h.call(ctx, backendtest.OpStat, key, func() (err error) {
		info, err = h.Backend.Stat(ctx, key)
		return err
	})
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return info, nil
}

func (h *csHooks) Delete(ctx context.Context, key string) error {
	return h.call(ctx, backendtest.OpDelete, key, func() error { return h.Backend.Delete(ctx, key) })
}

func (h *csHooks) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		for info, err := range h.Backend.List(ctx, prefix) {
			if !yield(info, err) {
				return
			}
		}
		h.mu.Lock()
		listed := h.listed
		h.mu.Unlock()
		if listed != nil {
			listed(prefix)
		}
	}
}

// csHookedBody calls done after the body is closed (once).
type csHookedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *csHookedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// csFaultyHooks is a wrap for newFixtureOn: the store sees hooks over
// Faulty over the plain backend (and wraps that in its retry decorator).
func csFaultyHooks(fb **backendtest.Faulty, h **csHooks) func(backend.Backend) backend.Backend {
	return func(b backend.Backend) backend.Backend {
		*fb = backendtest.NewFaulty(b)
		*h = newCSHooks(*fb)
		return *h
	}
}

// csLostReplies are the faults of a manifest write whose reply is lost once:
// the write lands, the store sees a transient error and re-sends. Both a
// Put and a Delete are targeted, so that the fault strikes whichever write
// the store uses to commit (a removal may become a conditional Put).
func csLostReplies(prefix string) []backendtest.Fault {
	lost := backendtest.Transient("lost reply")
	return []backendtest.Fault{
		{Op: backendtest.OpPut, KeyPrefix: prefix, Times: 1, Err: lost, At: backendtest.After},
		{Op: backendtest.OpDelete, KeyPrefix: prefix, Times: 1, Err: lost, At: backendtest.After},
	}
}

// csIsWrite reports whether op writes.
func csIsWrite(op backendtest.Op) bool { return op == backendtest.OpPut || op == backendtest.OpDelete }

// csMemLocker returns a memlock with default settings.
func csMemLocker(t *testing.T) *memlock.Locker {
	t.Helper()
	l, err := memlock.New(lock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// csParse parses an artifact URI.
func csParse(t *testing.T, uri string) URI {
	t.Helper()
	u, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// csCheckHistory checks the contract of writers racing on a versioned
// artifact: every listed version downloads with its checksum, no two
// versions share a blob, every acknowledged content is listed exactly once
// and no content whose upload failed is listed.
func csCheckHistory(t *testing.T, s *Store, uri string, acked, failed [][]byte) {
	t.Helper()
	ctx := context.Background()
	vs, err := s.Versions(ctx, uri)
	if err != nil {
		t.Fatalf("versions of %s: %v", uri, err)
	}
	count := map[string]int{}
	blobs := map[string]int{}
	for _, v := range vs {
		count[v.SHA256]++
		if prev, dup := blobs[v.BlobKey]; dup {
			t.Errorf("versions %d and %d share the blob %s", prev, v.Version, v.BlobKey)
		}
		blobs[v.BlobKey] = v.Version
		if err := s.VerifyChecksum(ctx, v.URI); err != nil {
			t.Errorf("listed version %s does not download: %v", v.URI, err)
		}
	}
	for _, c := range acked {
		if n := count[sha(c)]; n != 1 {
			t.Errorf("acknowledged upload %q is listed %d times, want exactly once (versions %s)", c, n, csDescribe(vs))
		}
	}
	for _, c := range failed {
		if n := count[sha(c)]; n != 0 {
			t.Errorf("upload %q returned an error but is listed %d times (versions %s)", c, n, csDescribe(vs))
		}
	}
}

// csDescribe lists versions as "v<n>:<blob suffix>:<sha prefix>".
func csDescribe(vs []Metadata) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("v%d:%s:%.8s", v.Version, v.BlobKey[max(0, len(v.BlobKey)-6):], v.SHA256))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// csBlobGone reports whether key no longer exists in b.
func csBlobGone(t *testing.T, b backend.Backend, key string) bool {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	switch {
	case errors.Is(err, ErrNotFound):
		return true
	case err != nil:
		t.Fatalf("stat %s: %v", key, err)
	}
	return false
}

// csShared returns a membackend for several Stores to share and, when
// locked, a memlock for them (l, and ll as a lock.Locker; both nil
// without locking).
func csShared(t *testing.T, locked bool) (backend.Backend, *memlock.Locker, lock.Locker) {
	t.Helper()
	mem := memEnv().newBackend(t)
	if !locked {
		return mem, nil, nil
	}
	l := csMemLocker(t)
	return mem, l, l
}

// csCheckLaterUploadKept checks that the upload of later (acknowledged as
// laterMD after a Delete of uri decided on an older manifest) is still
// the artifact's content. The one allowance: a Delete that succeeded
// (deleteErr nil) after reading the manifest again once the upload was
// acknowledged (reread) may have removed it, since the two calls overlapped.
func csCheckLaterUploadKept(t *testing.T, s *Store, uri string, later []byte, laterMD Metadata, deleteErr error, reread bool) {
	t.Helper()
	data, md, derr := s.Download(context.Background(), uri)
	switch {
	case derr == nil && string(data) == string(later) && md.BlobKey == laterMD.BlobKey:
	case deleteErr == nil && reread && errors.Is(derr, ErrNotFound):
		t.Logf("the Delete decided again on a manifest read after the later upload, and removed it")
	case derr != nil:
		t.Fatalf("the upload acknowledged after the delete's decision (%s) is gone: %v", laterMD.URI, derr)
	default:
		t.Fatalf("artifact holds %q (%s), want the later upload %q (%s)", data, md.URI, later, laterMD.URI)
	}
}

// ---------------------------------------------------------------------------
// 1. Lost reply on the conditional manifest write.

// TestCommitSafetyLostReplyUpload: an upload's manifest Put lands, its
// reply is lost, and before the store reads it back another writer commits
// on top: without locking it simply commits (the re-sent Put then fails its
// condition, and the store must recognize its own landed commit instead of
// re-applying the upload on top of the other writer's); with locking and
// versioning, the first writer's lease is broken first and the next
// holder's manifest keeps the first writer's version. Whatever Upload
// returns must match what is stored: an error only if its content is not
// listed; success only if its version downloads; and no listed version's
// blob may be missing.
func TestCommitSafetyLostReplyUpload(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "lease-lost"}[locked], func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{Versioning: true, DisableLocking: !locked}
			mem, l, ll := csShared(t, locked)
			other := newFixtureOn(t, mem, ll, cfg, nil).s
			var (
				fb *backendtest.Faulty
				h  *csHooks
			)
			f := newFixtureOn(t, mem, ll, cfg, csFaultyHooks(&fb, &h))
			const uri = "artifact://s/t/log"
			u := csParse(t, uri)
			first, lost, next := []byte("first"), []byte("upload whose reply is lost"), []byte("committed on top")
			mustUpload(t, f.s, uri, first, UploadOptions{})

			var (
				fired   bool
				nextErr error
			)
			h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
				if csIsWrite(op) && strings.HasPrefix(key, manifestRoot) && errors.Is(err, backendtest.ErrInjected) && !fired {
					fired = true
					if locked {
						if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
							nextErr = ferr
							return err
						}
					}
					_, nextErr = other.UploadBytes(context.Background(), uri, next, UploadOptions{})
				}
				return err
			})
			fb.Inject(csLostReplies(manifestRoot)...)
			_, err := f.s.UploadBytes(ctx, uri, lost, UploadOptions{})
			h.onAfter(nil)
			fb.Clear()
			if !fired {
				t.Fatal("setup: no manifest write lost its reply")
			}
			if nextErr != nil {
				t.Fatalf("setup: the other writer's upload failed: %v", nextErr)
			}
			acked, failed := [][]byte{first, next}, [][]byte(nil)
			if err == nil {
				acked = append(acked, lost)
			} else {
				t.Logf("upload with the lost reply: %v", err)
				failed = append(failed, lost)
			}
			csCheckHistory(t, f.s, uri, acked, failed)
		})
	}
}

// TestCommitSafetyLostReplyVersionDelete: the manifest write of a version
// delete lands but its reply is lost, and another upload commits before
// the re-send. Delete must return nil (it did succeed) or leave the version
// in place; never an error (ErrNotFound, ErrConflict) while the version is
// gone; and the deleted version's blob must be gone when Delete returns.
func TestCommitSafetyLostReplyVersionDelete(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "lease-lost"}[locked], func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{Versioning: true, DisableLocking: !locked}
			mem, l, ll := csShared(t, locked)
			other := newFixtureOn(t, mem, ll, cfg, nil).s
			var (
				fb *backendtest.Faulty
				h  *csHooks
			)
			f := newFixtureOn(t, mem, ll, cfg, csFaultyHooks(&fb, &h))
			const uri = "artifact://s/t/log"
			u := csParse(t, uri)
			v1 := mustUpload(t, f.s, uri, []byte("one"), UploadOptions{})
			mustUpload(t, f.s, uri, []byte("two"), UploadOptions{})

			var (
				fired   bool
				nextErr error
			)
			h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
				if csIsWrite(op) && strings.HasPrefix(key, manifestRoot) && errors.Is(err, backendtest.ErrInjected) && !fired {
					fired = true
					if l != nil {
						if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
							nextErr = ferr
							return err
						}
					}
					_, nextErr = other.UploadBytes(context.Background(), uri, []byte("three"), UploadOptions{})
				}
				return err
			})
			fb.Inject(csLostReplies(manifestRoot)...)
			err := f.s.Delete(ctx, v1.URI)
			h.onAfter(nil)
			fb.Clear()
			if !fired {
				t.Fatal("setup: no manifest write lost its reply")
			}
			if nextErr != nil {
				t.Fatalf("setup: the concurrent upload failed: %v", nextErr)
			}
			vs, verr := f.s.Versions(ctx, uri)
			if verr != nil {
				t.Fatalf("versions: %v", verr)
			}
			still := slices.ContainsFunc(vs, func(v Metadata) bool { return v.Version == v1.Version })
			switch {
			case err != nil && !still:
				t.Errorf("Delete(%s) = %v, but the version is gone (versions %s)", v1.URI, err, csDescribe(vs))
			case err == nil && still:
				t.Errorf("Delete(%s) = nil, but the version is still listed", v1.URI)
			}
			if !still && !csBlobGone(t, f.b, v1.BlobKey) {
				t.Errorf("version %d is deleted but its blob %s is left behind", v1.Version, v1.BlobKey)
			}
			csCheckHistory(t, f.s, uri, [][]byte{[]byte("two"), []byte("three")}, nil)
		})
	}
}

// TestCommitSafetyLostReplyArtifactDelete: the removal of a whole
// artifact lands but its reply is lost; another writer re-creates the
// artifact (an acknowledged upload) before the removal is re-sent. The
// re-sent removal must not remove that later commit. (A Delete that reads
// the manifest again after the later commit and decides afresh may remove
// it: the two calls overlapped. A blind re-send may not.)
func TestCommitSafetyLostReplyArtifactDelete(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "lease-lost"}[locked], func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{DisableLocking: !locked}
			mem, l, ll := csShared(t, locked)
			other := newFixtureOn(t, mem, ll, cfg, nil).s
			var (
				fb *backendtest.Faulty
				h  *csHooks
			)
			f := newFixtureOn(t, mem, ll, cfg, csFaultyHooks(&fb, &h))
			const uri = "artifact://s/t/log"
			u := csParse(t, uri)
			mustUpload(t, f.s, uri, []byte("old"), UploadOptions{})
			later := []byte("uploaded after the delete")

			var (
				fired, reread bool
				laterMD       Metadata
				nextErr       error
			)
			h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
				if op == backendtest.OpGet && key == manifestKey(u) && err == nil && fired {
					reread = true // read after the later upload was acknowledged
				}
				if csIsWrite(op) && strings.HasPrefix(key, manifestRoot) && errors.Is(err, backendtest.ErrInjected) && !fired {
					fired = true
					if l != nil {
						if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
							nextErr = ferr
							return err
						}
					}
					laterMD, nextErr = other.UploadBytes(context.Background(), uri, later, UploadOptions{})
				}
				return err
			})
			fb.Inject(csLostReplies(manifestRoot)...)
			err := f.s.Delete(ctx, uri)
			h.onAfter(nil)
			fb.Clear()
			if !fired {
				t.Fatal("setup: no manifest write lost its reply")
			}
			if nextErr != nil {
				t.Fatalf("setup: the later upload failed: %v", nextErr)
			}
			t.Logf("Delete with the lost reply: %v (re-read the manifest after the later upload: %v)", err, reread)
			csCheckLaterUploadKept(t, other, uri, later, laterMD, err, reread)
		})
	}
}

// ---------------------------------------------------------------------------
// 2. Manifest growth.

// csManifestReadLimitToday is the largest manifest the readers accept at
// the time of writing (maxManifestBytes). The growth test stops growing the
// manifest past it, only to save time.
const csManifestReadLimitToday = 64 << 20

// TestCommitSafetyMetadataCap: MaxMetadataBytes is capped at 1 MiB.
func TestCommitSafetyMetadataCap(t *testing.T) {
	cfg := Config{MaxMetadataBytes: 8 << 20}
	if err := cfg.Validate(); err == nil {
		t.Errorf("Validate accepted MaxMetadataBytes %d", cfg.MaxMetadataBytes)
	}
	b := memEnv().newBackend(t)
	if _, err := New(context.Background(), b, csMemLocker(t), cfg); err == nil || !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("New with MaxMetadataBytes %d: %v, want an error matching ErrInvalidArgument", cfg.MaxMetadataBytes, err)
	}
	if err := (Config{MaxMetadataBytes: 1 << 20}).Validate(); err != nil {
		t.Errorf("MaxMetadataBytes 1 MiB refused: %v", err)
	}
}

// TestCommitSafetyManifestGrowth uploads up to 100 versions of one
// artifact, each with about 1 MiB of user metadata (within
// MaxMetadataBytes = 1 MiB). A store may refuse an upload that would make
// the manifest too large (ErrStorageFull or ErrInvalidArgument), but what
// it acknowledged must stay readable: every version downloads, and the
// artifact can be read, pruned and deleted afterwards, by a store that has
// not cached its manifest.
//
// It is slow when the store lets the manifest grow to 64 MiB (every commit
// copies the whole manifest): about 10s, and 1.5 to 2 minutes under -race,
// on the code it was written against. -short skips it.
func TestCommitSafetyManifestGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds manifests of up to 64 MiB; slow under -race")
	}
	ctx := context.Background()
	cfg := Config{Versioning: true, MaxMetadataBytes: 1 << 20}
	mem := memEnv().newBackend(t)
	l := csMemLocker(t)
	f := newFixtureOn(t, mem, l, cfg, nil)
	const uri = "artifact://s/t/log"
	// Four keys of 262,000 bytes: about 1,048,050 bytes of JSON with the
	// (empty) tags, just under the 1,048,576 of MaxMetadataBytes.
	md := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d"} {
		md[k] = strings.Repeat(k, 262_000)
	}
	var acked []Metadata
	for i := range 100 {
		m, err := f.s.UploadBytes(ctx, uri, fmt.Appendf(nil, "version %d", i), UploadOptions{Metadata: md})
		if err != nil {
			if !errors.Is(err, ErrStorageFull) && !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("upload %d refused with %v, want ErrStorageFull or ErrInvalidArgument", i, err)
			}
			t.Logf("upload %d refused: %.200v", i, err)
			break
		}
		acked = append(acked, m)
		// Only to save time: once the stored manifest is larger than
		// readers accept today, the checks below decide; growing it
		// further proves nothing more.
		if info, err := mem.Stat(ctx, manifestKey(csParse(t, uri))); err == nil && info.Size > csManifestReadLimitToday {
			t.Logf("stopping after upload %d: the manifest is %d bytes", i, info.Size)
			break
		}
	}
	if len(acked) == 0 {
		t.Fatal("no upload acknowledged")
	}
	t.Logf("%d uploads acknowledged", len(acked))

	// A fresh store: nothing cached.
	s := newFixtureOn(t, mem, l, cfg, nil).s
	if _, err := s.Stat(ctx, uri); err != nil {
		t.Fatalf("stat after %d acknowledged uploads: %.300v", len(acked), err)
	}
	vs, err := s.Versions(ctx, uri)
	if err != nil {
		t.Fatalf("versions: %.300v", err)
	}
	listed := map[int]Metadata{}
	for _, v := range vs {
		listed[v.Version] = v
	}
	for _, a := range acked {
		v, ok := listed[a.Version]
		if !ok || v.SHA256 != a.SHA256 {
			t.Errorf("acknowledged version %d is not listed", a.Version)
			continue
		}
		rc, err := s.OpenVersion(ctx, v)
		if err != nil {
			t.Errorf("open version %d: %v", v.Version, err)
			continue
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("read version %d: %v", v.Version, err)
		}
		rc.Close()
	}
	if data, _, err := s.Download(ctx, uri); err != nil || string(data) != fmt.Sprintf("version %d", len(acked)-1) {
		t.Errorf("download: %q, %.300v", data, err)
	}
	if _, err := s.PruneVersions(ctx, uri, 1); err != nil {
		t.Errorf("prune to 1 version: %.300v", err)
	}
	if err := s.Delete(ctx, uri); err != nil {
		t.Errorf("delete: %.300v", err)
	}
}

// ---------------------------------------------------------------------------
// 3. Stale delete.

// TestCommitSafetyStaleDelete: a Delete decided on a manifest read, then
// paused (its lease broken meanwhile, or without locking) while another
// upload commits and is acknowledged, must not remove that upload when it
// resumes: it may fail (ErrConflict) or succeed having removed nothing
// acknowledged after its read. (A Delete that reads the manifest again
// after the upload and decides afresh may remove it: the two calls
// overlapped.)
func TestCommitSafetyStaleDelete(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "lease-lost"}[locked], func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{DisableLocking: !locked}
			mem, l, ll := csShared(t, locked)
			other := newFixtureOn(t, mem, ll, cfg, nil).s
			h := newCSHooks(mem)
			f := newFixtureOn(t, mem, ll, cfg, func(backend.Backend) backend.Backend { return h })
			const uri = "artifact://s/t/log"
			u := csParse(t, uri)
			mustUpload(t, f.s, uri, []byte("old"), UploadOptions{})
			fresh := []byte("acknowledged after the delete's read")

			var (
				fired, reread bool
				freshMD       Metadata
				nextErr       error
			)
			h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
				if op == backendtest.OpGet && key == manifestKey(u) && err == nil && fired {
					reread = true // read after the fresh upload was acknowledged
				}
				if op == backendtest.OpGet && key == manifestKey(u) && err == nil && !fired {
					fired = true
					if l != nil {
						if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
							nextErr = ferr
							return nil
						}
					}
					freshMD, nextErr = other.UploadBytes(context.Background(), uri, fresh, UploadOptions{})
				}
				return err
			})
			err := f.s.Delete(ctx, uri)
			h.onAfter(nil)
			if !fired {
				t.Fatal("setup: the delete read no manifest")
			}
			if nextErr != nil {
				t.Fatalf("setup: the fresh upload failed: %v", nextErr)
			}
			t.Logf("stale Delete: %v (re-read the manifest after the fresh upload: %v)", err, reread)
			csCheckLaterUploadKept(t, other, uri, fresh, freshMD, err, reread)
		})
	}
}

// TestCommitSafetyStaleCleanup: CleanupExpired decides, on the manifest it
// read under the lock, that a whole artifact expired; its lease is broken
// and a fresh upload of the artifact is acknowledged before the cleanup
// removes it. The fresh upload must survive.
func TestCommitSafetyStaleCleanup(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	cfg := Config{Now: clock.Now}
	mem := memEnv().newBackend(t)
	l := csMemLocker(t)
	other := newFixtureOn(t, mem, l, cfg, nil).s
	h := newCSHooks(mem)
	f := newFixtureOn(t, mem, l, cfg, func(backend.Backend) backend.Backend { return h })
	const uri = "artifact://s/t/log"
	u := csParse(t, uri)
	mustUpload(t, other, uri, []byte("old"), UploadOptions{})
	clock.Advance(8 * day) // logs are kept 7 days
	fresh := []byte("fresh upload")

	var (
		fired   bool
		freshMD Metadata
		nextErr error
	)
	h.onAfter(func(ctx context.Context, op backendtest.Op, key string, err error) error {
		if op != backendtest.OpGet || key != manifestKey(u) || err != nil || fired {
			return err
		}
		// The read under the cleanup's lock.
		if st, ierr := l.Inspect(ctx, lockKey(u)); ierr != nil || !st.Held {
			return err
		}
		fired = true
		if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
			nextErr = ferr
			return err
		}
		freshMD, nextErr = other.UploadBytes(context.Background(), uri, fresh, UploadOptions{})
		return err
	})
	rep, err := f.s.CleanupExpired(ctx, CleanupOptions{})
	h.onAfter(nil)
	if !fired {
		t.Fatalf("setup: the cleanup read no manifest under the lock (report %+v, %v)", rep, err)
	}
	if nextErr != nil {
		t.Fatalf("setup: the fresh upload failed: %v", nextErr)
	}
	t.Logf("stale cleanup: %+v, %v", rep, err)
	data, md, derr := other.Download(ctx, uri)
	switch {
	case derr != nil:
		t.Fatalf("the upload acknowledged during the cleanup (%s) is gone: %v", freshMD.URI, derr)
	case string(data) != string(fresh) || md.BlobKey != freshMD.BlobKey:
		t.Fatalf("artifact holds %q, want the fresh upload", data)
	}
}

// ---------------------------------------------------------------------------
// 4. Reconcile against an upload in flight.

// TestCommitSafetyReconcileInFlight: an upload pauses after its blob Put
// and before its commit while Reconcile(Apply) runs with a clock past the
// grace period; then it resumes. If Upload returns success, its version
// must download (its blob was not collected); otherwise it must fail.
func TestCommitSafetyReconcileInFlight(t *testing.T) {
	type result struct {
		md  Metadata
		err error
	}
	check := func(t *testing.T, s *Store, res result, rep ReconcileReport, rerr error) {
		t.Helper()
		t.Logf("reconcile: orphans %v, deleted %d, pending %d, err %v", rep.OrphanBlobs, rep.Deleted, rep.Pending, rerr)
		if res.err != nil {
			t.Logf("the paused upload failed: %v", res.err)
			return
		}
		if err := s.VerifyChecksum(context.Background(), res.md.URI); err != nil {
			t.Fatalf("the paused upload succeeded (%s) but its version does not download: %v", res.md.URI, err)
		}
	}
	const uri = "artifact://s/t/log"

	// The writer pauses before taking the lock (after its blob Put); the
	// same store, its clock moved past the grace period, reconciles.
	t.Run("locked", func(t *testing.T) {
		ctx := context.Background()
		mem := memEnv().newBackend(t)
		g := newLockGate(csMemLocker(t))
		f := newFixtureOn(t, mem, g, Config{Versioning: true}, nil)
		setClock(f.clock, time.Now()) // backends stamp objects with the real time
		mustUpload(t, f.s, uri, []byte("committed"), UploadOptions{})
		g.arm()
		done := make(chan result, 1)
		go func() {
			md, err := f.s.UploadBytes(ctx, uri, []byte("in flight"), UploadOptions{})
			done <- result{md, err}
		}()
		waitFor(t, g.entered, "the writer to reach the lock")
		f.clock.Advance(DefaultReconcileGracePeriod + time.Minute)
		rep, rerr := f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		close(g.release)
		check(t, f.s, <-done, rep, rerr)
	})

	// Two stores on one bucket and lock service: the reconciler's clock is
	// two hours ahead of the writer's.
	t.Run("reconciler-clock-ahead", func(t *testing.T) {
		ctx := context.Background()
		mem := memEnv().newBackend(t)
		l := csMemLocker(t)
		g := newLockGate(l)
		w := newFixtureOn(t, mem, g, Config{Versioning: true}, nil)
		setClock(w.clock, time.Now())
		r := newFixtureOn(t, mem, l, Config{Versioning: true}, nil)
		setClock(r.clock, time.Now().Add(2*time.Hour))
		mustUpload(t, w.s, uri, []byte("committed"), UploadOptions{})
		g.arm()
		done := make(chan result, 1)
		go func() {
			md, err := w.s.UploadBytes(ctx, uri, []byte("in flight"), UploadOptions{})
			done <- result{md, err}
		}()
		waitFor(t, g.entered, "the writer to reach the lock")
		rep, rerr := r.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		close(g.release)
		check(t, w.s, <-done, rep, rerr)
	})

	// Without locking: the writer pauses right before its manifest Put.
	t.Run("unlocked", func(t *testing.T) {
		ctx := context.Background()
		var g *gate
		f := newFixture(t, memEnv(), Config{Versioning: true, DisableLocking: true}, func(b backend.Backend) backend.Backend {
			g = newGate(b, "put", manifestRoot)
			return g
		})
		setClock(f.clock, time.Now())
		mustUpload(t, f.s, uri, []byte("committed"), UploadOptions{})
		g.arm()
		done := make(chan result, 1)
		go func() {
			md, err := f.s.UploadBytes(ctx, uri, []byte("in flight"), UploadOptions{})
			done <- result{md, err}
		}()
		waitFor(t, g.entered, "the writer's manifest Put")
		f.clock.Advance(DefaultReconcileGracePeriod + time.Minute)
		rep, rerr := f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		close(g.release)
		check(t, f.s, <-done, rep, rerr)
	})
}

// ---------------------------------------------------------------------------
// 5. Quota counter.

// csQuotaSize is the content length of the quota tests (no compression:
// stored bytes = content bytes).
const csQuotaSize = 100

func csQuotaContent(i int) []byte {
	return []byte(fmt.Sprintf("%0*d", csQuotaSize, i))
}

// csCheckCounter compares the usage counter with a full scan.
func csCheckCounter(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Usage(context.Background())
	if err != nil {
		t.Fatalf("usage: %v", err)
	}
	if c := counterTotal(t, s); c.StoredBytes != rep.Total.StoredBytes {
		t.Errorf("usage counter says %d stored bytes, the manifests add up to %d", c.StoredBytes, rep.Total.StoredBytes)
	}
}

// TestCommitSafetyQuotaLostCounterReply: the counter update of an upload
// lands but its reply is lost and it is re-sent. The upload must be
// counted once: with a quota of exactly two uploads, a second one fits.
func TestCommitSafetyQuotaLostCounterReply(t *testing.T) {
	ctx := context.Background()
	var (
		fb *backendtest.Faulty
		h  *csHooks
	)
	f := newFixture(t, memEnv(), Config{Quota: QuotaConfig{MaxBytes: 2 * csQuotaSize}}, csFaultyHooks(&fb, &h))
	if _, err := f.s.RecountUsage(ctx); err != nil { // creates the counter
		t.Fatal(err)
	}
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "_usage/", Times: 1, At: backendtest.After, Err: backendtest.Transient("lost reply")})
	mustUpload(t, f.s, "artifact://s/a/log", csQuotaContent(1), UploadOptions{})
	if fb.Calls(backendtest.OpPut) == 0 {
		t.Fatal("setup: no counter update")
	}
	fb.Clear()
	if _, err := f.s.UploadBytes(ctx, "artifact://s/b/log", csQuotaContent(2), UploadOptions{}); err != nil {
		t.Errorf("second upload within the quota of two: %v", err)
	}
	csCheckCounter(t, f.s)
}

// TestCommitSafetyQuotaDoubleDelete: two deletes of one artifact race
// (without locking, or with the first one's lease broken): the artifact's
// bytes must be subtracted once, so the quota still refuses what does not
// fit.
func TestCommitSafetyQuotaDoubleDelete(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlocked", true: "lease-lost"}[locked], func(t *testing.T) {
			ctx := context.Background()
			cfg := Config{DisableLocking: !locked, Quota: QuotaConfig{MaxBytes: 2 * csQuotaSize}}
			mem, l, ll := csShared(t, locked)
			other := newFixtureOn(t, mem, ll, cfg, nil).s
			h := newCSHooks(mem)
			f := newFixtureOn(t, mem, ll, cfg, func(backend.Backend) backend.Backend { return h })
			const uri = "artifact://s/t/log"
			u := csParse(t, uri)
			mustUpload(t, f.s, uri, csQuotaContent(0), UploadOptions{})

			// The first delete pauses right before its manifest write; the
			// second runs whole meanwhile.
			var (
				fired    bool
				otherErr error
			)
			h.onBefore(func(_ context.Context, op backendtest.Op, key string) error {
				if csIsWrite(op) && key == manifestKey(u) && !fired {
					fired = true
					if l != nil {
						if _, ferr := l.ForceUnlock(context.Background(), lockKey(u)); ferr != nil {
							otherErr = ferr
							return nil
						}
					}
					otherErr = other.Delete(context.Background(), uri)
				}
				return nil
			})
			err := f.s.Delete(ctx, uri)
			h.onBefore(nil)
			if !fired {
				t.Fatal("setup: the first delete wrote no manifest")
			}
			if otherErr != nil {
				t.Fatalf("setup: the second delete: %v", otherErr)
			}
			t.Logf("first delete: %v", err)

			// Two uploads fill the quota exactly; a third must be refused.
			mustUpload(t, f.s, "artifact://s/a/log", csQuotaContent(1), UploadOptions{})
			mustUpload(t, f.s, "artifact://s/b/log", csQuotaContent(2), UploadOptions{})
			if _, err := f.s.UploadBytes(ctx, "artifact://s/c/log", csQuotaContent(3), UploadOptions{}); !errors.Is(err, ErrStorageFull) {
				t.Errorf("third upload over a quota of two: %v, want ErrStorageFull", err)
			}
			csCheckCounter(t, f.s)
		})
	}
}

// TestCommitSafetyQuotaLandedCommitCounted: an upload's manifest Put lands
// but its reply is lost and the read-back fails too. The commit landed, so
// its bytes must count: with a quota of two uploads, after one more upload
// a third is refused.
func TestCommitSafetyQuotaLandedCommitCounted(t *testing.T) {
	ctx := context.Background()
	var (
		fb *backendtest.Faulty
		h  *csHooks
	)
	f := newFixture(t, memEnv(), Config{Quota: QuotaConfig{MaxBytes: 2 * csQuotaSize}}, csFaultyHooks(&fb, &h))
	if _, err := f.s.RecountUsage(ctx); err != nil { // creates the counter
		t.Fatal(err)
	}
	const uri = "artifact://s/a/log"
	fired := false
	h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
		if op == backendtest.OpPut && strings.HasPrefix(key, manifestRoot) && errors.Is(err, backendtest.ErrInjected) && !fired {
			fired = true
			// The read-back fails too, through every retry.
			fb.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: manifestRoot, Times: backend.DefaultMaxRetries + 1, Err: backendtest.Transient("read-back fails")})
		}
		return err
	})
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: manifestRoot, Times: 1, At: backendtest.After, Err: backendtest.Transient("lost reply")})
	_, err := f.s.UploadBytes(ctx, uri, csQuotaContent(1), UploadOptions{})
	h.onAfter(nil)
	fb.Clear()
	if !fired {
		t.Fatal("setup: no manifest Put lost its reply")
	}
	t.Logf("upload with the lost reply and failed read-back: %v", err)
	if _, err := f.b.Stat(ctx, manifestKey(csParse(t, uri))); err != nil {
		t.Fatalf("setup: the commit did not land: %v", err)
	}
	if _, err := f.s.UploadBytes(ctx, "artifact://s/b/log", csQuotaContent(2), UploadOptions{}); err != nil {
		t.Errorf("second upload within the quota of two: %v", err)
	}
	if _, err := f.s.UploadBytes(ctx, "artifact://s/c/log", csQuotaContent(3), UploadOptions{}); !errors.Is(err, ErrStorageFull) {
		t.Errorf("third upload over a quota of two (the landed commit not counted): %v, want ErrStorageFull", err)
	}
	csCheckCounter(t, f.s)
}

// ---------------------------------------------------------------------------
// 6. Cancellation in the middle of a scan.

// csCancelPoint cancels a scan's context in its middle: when the bodies of
// the n-th and (n+1)-th Gets under prefix (one per worker, with
// ListConcurrency 2) are closed and the listing of the manifests is
// complete. Both workers are then between two artifacts, with no request
// in flight; the artifacts left are never read.
type csCancelPoint struct {
	prefix string
	n      int
	cancel context.CancelFunc

	mu       sync.Mutex
	gets     int
	arrived  int
	both     chan struct{} // closed when both bodies are closed
	listDone chan struct{} // closed when the manifest listing ended
	fired    bool
	timedOut bool
}

func newCSCancelPoint(prefix string, n int, cancel context.CancelFunc) *csCancelPoint {
	return &csCancelPoint{prefix: prefix, n: n, cancel: cancel, both: make(chan struct{}), listDone: make(chan struct{})}
}

func (c *csCancelPoint) install(h *csHooks) {
	var tickets sync.Map // key of a counted Get -> its number (keys are unique per scan)
	h.onAfter(func(_ context.Context, op backendtest.Op, key string, err error) error {
		if op == backendtest.OpGet && err == nil && strings.HasPrefix(key, c.prefix) {
			c.mu.Lock()
			c.gets++
			if c.gets == c.n || c.gets == c.n+1 {
				tickets.Store(key, c.gets)
			}
			c.mu.Unlock()
		}
		return err
	})
	h.onClose(func(key string) {
		if _, ok := tickets.LoadAndDelete(key); !ok {
			return
		}
		c.mu.Lock()
		c.arrived++
		if c.arrived == 2 {
			close(c.both)
		}
		c.mu.Unlock()
		// A hang guard, not a timing assumption: the scan should reach
		// the point at once.
		guard := time.After(10 * time.Second)
		for _, ch := range []chan struct{}{c.both, c.listDone} {
			select {
			case <-ch:
			case <-guard:
				c.mu.Lock()
				c.timedOut = true
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.fired {
			c.fired = true
			c.cancel()
		}
	})
	h.onListed(func(prefix string) {
		if strings.HasPrefix(prefix, manifestRoot) {
			c.mu.Lock()
			defer c.mu.Unlock()
			select {
			case <-c.listDone:
			default:
				close(c.listDone)
			}
		}
	})
}

// TestCommitSafetyCancelledScan: each scan over 50 artifacts, cancelled
// in its middle, returns an error matching context.Canceled, never a
// partial result with a nil error.
func TestCommitSafetyCancelledScan(t *testing.T) {
	mem := memEnv().newBackend(t)
	l := csMemLocker(t)
	writer := newFixtureOn(t, mem, l, Config{}, nil)
	const artifacts = 50
	for i := range artifacts {
		mustUpload(t, writer.s, fmt.Sprintf("artifact://s/t%02d/log", i), fmt.Appendf(nil, "content %d", i), UploadOptions{})
	}
	ops := []struct {
		name   string
		prefix string // the Gets counted to place the cancellation
		run    func(ctx context.Context, s *Store) (string, error)
	}{
		{"Usage", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			rep, err := s.Usage(ctx)
			return fmt.Sprintf("%d artifacts", rep.Total.Artifacts), err
		}},
		{"Search", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			mds, err := s.Search(ctx, Filter{})
			return fmt.Sprintf("%d results", len(mds)), err
		}},
		{"ListSpec", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			mds, err := s.ListSpec(ctx, "s")
			return fmt.Sprintf("%d results", len(mds)), err
		}},
		{"Expired", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			mds, err := s.Expired(ctx, Filter{})
			return fmt.Sprintf("%d expired", len(mds)), err
		}},
		{"VerifyAll", blobRoot, func(ctx context.Context, s *Store) (string, error) {
			rep, err := s.VerifyAll(ctx, VerifyOptions{})
			return fmt.Sprintf("%d checked", rep.Checked), err
		}},
		{"CleanupExpiredDryRun", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			rep, err := s.CleanupExpired(ctx, CleanupOptions{DryRun: true})
			return fmt.Sprintf("%d versions", rep.Versions), err
		}},
		{"Export", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			rep, err := s.Export(ctx, io.Discard, ExportOptions{Spec: "s"})
			return fmt.Sprintf("%d artifacts", rep.Artifacts), err
		}},
		{"Reconcile", manifestRoot, func(ctx context.Context, s *Store) (string, error) {
			rep, err := s.Reconcile(ctx, ReconcileOptions{})
			return fmt.Sprintf("%d manifests", rep.Manifests), err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			h := newCSHooks(mem)
			// A fresh store: no cached manifest, so every one is read.
			s := newFixtureOn(t, mem, l, Config{ListConcurrency: 2}, func(backend.Backend) backend.Backend { return h }).s
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cp := newCSCancelPoint(op.prefix, artifacts-6, cancel)
			cp.install(h)
			what, err := op.run(ctx, s)
			h.onAfter(nil)
			h.onClose(nil)
			h.onListed(nil)
			cp.mu.Lock()
			fired, timedOut := cp.fired, cp.timedOut
			cp.mu.Unlock()
			if !fired {
				t.Fatalf("setup: the scan made fewer than %d reads under %s; not cancelled (%s, %v)", cp.n+1, op.prefix, what, err)
			}
			if timedOut {
				t.Logf("setup: the cancellation point was reached only by the hang guard")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s cancelled in the middle of its scan returned %s and %v, want an error matching context.Canceled", op.name, what, err)
			}
		})
	}
}
