package store

// Faults against contents stored in manifests, the moves of older
// contents to blobs (spills) and the commits built on a Store's own copy
// of a manifest, found by a review that tried to break them: attempts in
// flight while a re-send fails, bursts of spills, refusals whose read-back
// fails, malformed metadata; and the cases that held, kept as regression
// tests.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// rvCheckAll checks that every version listed by the manifest is readable
// with the expected content, that Reconcile sees no missing blob, and that
// every blob under blobs/ is referenced.
func rvCheckAll(t *testing.T, f *fixture, s *Store, uri string, want map[int][]byte) {
	t.Helper()
	ctx := context.Background()
	vs, err := s.Versions(ctx, uri)
	if err != nil {
		t.Fatalf("versions: %v", err)
	}
	for _, v := range vs {
		got, _, err := s.Download(ctx, v.URI)
		if err != nil {
			t.Errorf("download %s: %v", v.URI, err)
			continue
		}
		if w, ok := want[v.Version]; ok && !bytes.Equal(got, w) {
			t.Errorf("version %d: %q, want %q", v.Version, got, w)
		}
		rc, err := s.OpenVersion(ctx, v)
		if err != nil {
			t.Errorf("open version %s: %v", v.URI, err)
			continue
		}
		if _, err := io.ReadAll(rc); err != nil {
			t.Errorf("read version %s: %v", v.URI, err)
		}
		rc.Close()
	}
	rep, err := s.Reconcile(ctx, ReconcileOptions{})
	if err != nil || len(rep.MissingBlobs) != 0 || len(rep.InvalidManifests) != 0 {
		t.Errorf("reconcile: missing %v invalid %v err %v", rep.MissingBlobs, rep.InvalidManifests, err)
	}
	m := rawManifest(t, f.b, uri)
	refs := m.blobs()
	for _, k := range backendtest.Keys(t, f.b, "blobs/") {
		if !slices.Contains(refs, k) {
			t.Logf("unreferenced blob %s (orphan)", k)
		}
	}
	for _, k := range refs {
		if _, err := f.b.Stat(ctx, k); err != nil {
			t.Errorf("referenced blob %s: %v", k, err)
		}
	}
	if err := s.VerifyChecksum(ctx, uri); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// TestInlineFaultSpillCommitLostReply: the manifest Put of a commit that spills
// older contents to blobs (built on the Store's own copy) lands but its
// reply is lost, and the read-back of the first attempt is fine.
func TestInlineFaultSpillCommitLostReply(t *testing.T) {
	for _, guessed := range []bool{true, false} {
		t.Run(fmt.Sprint("guess=", guessed), func(t *testing.T) {
			const limit = 10
			f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
			const uri = "artifact://s/t/log"
			want := fillToSpill(t, f.s, uri)
			if !guessed {
				if _, err := f.s.Stat(context.Background(), uri); err != nil {
					t.Fatal(err)
				}
			}
			fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("reply lost")})
			d := []byte("content-4")
			md, err := f.s.UploadBytes(context.Background(), uri, d, UploadOptions{})
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			want[md.Version] = d
			rvCheckAll(t, f, f.s, uri, want)
		})
	}
}

// TestInlineFaultSpillCommitLostReplyAndReadBackFails: lost reply then the
// read-back fails: ErrUnknownOutcome, and the spill blobs must stay.
func TestInlineFaultSpillCommitLostReplyAndReadBackFails(t *testing.T) {
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	const uri = "artifact://s/t/log"
	want := fillToSpill(t, f.s, uri)
	fb.Inject(
		backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("reply lost")},
		backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Times: 20, Err: backendtest.Transient("down")},
	)
	_, err := f.s.UploadBytes(context.Background(), uri, []byte("content-4"), UploadOptions{})
	if !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("upload: %v, want ErrUnknownOutcome", err)
	}
	f2 := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit}, nil)
	want[5] = []byte("content-4")
	rvCheckAll(t, f, f2.s, uri, want)
}

// TestInlineFaultSpillCommitTransientBefore: the manifest Put fails before it
// reaches the backend (ambiguous), twice; re-sent; then fine.
func TestInlineFaultSpillCommitTransientBefore(t *testing.T) {
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	const uri = "artifact://s/t/log"
	want := fillToSpill(t, f.s, uri)
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 2, Err: backendtest.Transient("reset")})
	md, err := f.s.UploadBytes(context.Background(), uri, []byte("content-4"), UploadOptions{})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	want[md.Version] = []byte("content-4")
	rvCheckAll(t, f, f.s, uri, want)
}

// TestInlineFaultSpillGuessLeaseLostOtherCommits: A's guessed spill commit: in
// the hook of its manifest Put the lock is broken and B commits (spilling
// too). A must fail (conflict), delete only its own spill blobs; B's
// versions all readable.
func TestInlineFaultSpillGuessLeaseLostOtherCommits(t *testing.T) {
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "a"})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "b"}, nil).s
	const uri = "artifact://s/t/log"
	want := fillToSpill(t, f.s, uri)
	var once sync.Once
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		once.Do(func() {
			if _, err := f.locker.(lock.ForceUnlocker).ForceUnlock(ctx, lockKey(csParse(t, uri))); err != nil {
				t.Error(err)
			}
			md, err := b.UploadBytes(ctx, uri, []byte("content-B"), UploadOptions{})
			if err != nil {
				t.Errorf("b upload: %v", err)
			}
			want[md.Version] = []byte("content-B")
		})
	}})
	md, err := f.s.UploadBytes(context.Background(), uri, []byte("content-A"), UploadOptions{})
	t.Logf("a upload: %+v %v", md.Version, err)
	if err == nil {
		want[md.Version] = []byte("content-A")
	} else if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("a upload: %v, want ErrConflict", err)
	}
	rvCheckAll(t, f, b, uri, want)
}

// TestInlineFaultSpillGuessLocklessDeleteInBetween: lockless, A's guessed
// spill commit races a Delete by B (hook), then A re-reads.
func TestInlineFaultSpillGuessLocklessDeleteInBetween(t *testing.T) {
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "a", DisableLocking: true})
	b := newFixtureOn(t, f.b, nil, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "b", DisableLocking: true}, nil).s
	const uri = "artifact://s/t/log"
	for i := range 4 {
		mustUpload(t, f.s, uri, fmt.Appendf(nil, "content-%d", i), UploadOptions{})
	}
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		if err := b.Delete(ctx, uri); err != nil {
			t.Errorf("b delete: %v", err)
		}
	}})
	md, err := f.s.UploadBytes(context.Background(), uri, []byte("content-A"), UploadOptions{})
	if err != nil {
		t.Fatalf("a upload: %v", err)
	}
	rvCheckAll(t, f, b, uri, map[int][]byte{md.Version: []byte("content-A")})
	if got := backendtest.Keys(t, f.b, "blobs/"); len(got) != 0 {
		t.Errorf("blobs left: %v", got)
	}
}

// TestInlineFaultOpenVersionAcrossSpill: metadata taken while a version was
// inline still opens it after it moved to a blob, and after a prune
// it is ErrNotFound.
func TestInlineFaultOpenVersionAcrossSpill(t *testing.T) {
	ctx := context.Background()
	const limit = 10
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	const uri = "artifact://s/t/log"
	first := mustUpload(t, f.s, uri, []byte("content-0"), UploadOptions{})
	if first.BlobKey != "" {
		t.Fatalf("not inline: %+v", first)
	}
	for i := 1; i < 8; i++ {
		mustUpload(t, f.s, uri, fmt.Appendf(nil, "content-%d", i), UploadOptions{})
	}
	if m := rawManifest(t, f.b, uri); m.Versions[0].Blob == "" {
		t.Fatalf("version 1 still inline")
	}
	rc, err := f.s.OpenVersion(ctx, first)
	if err != nil {
		t.Fatalf("open version: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "content-0" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := f.s.PruneVersions(ctx, uri, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.OpenVersion(ctx, first); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after prune: %v, want ErrNotFound", err)
	}
	md := first
	md.SHA256 = "zz"
	if _, err := f.s.OpenVersion(ctx, md); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad sha: %v", err)
	}
}

// TestInlineFaultCatalogExactWithSpills: many uploads with spills, compaction
// in between, deletes, prunes: Search/Usage/Expired equal a scan.
func TestInlineFaultCatalogExactWithSpills(t *testing.T) {
	ctx := context.Background()
	const limit = 16
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	for round := range 3 {
		for i := range 6 {
			uri := fmt.Sprintf("artifact://s/t%02d/log", i)
			for j := range 4 {
				mustUpload(t, f.s, uri, fmt.Appendf(nil, "r%d-i%d-j%d-%s", round, i, j, bytes.Repeat([]byte("x"), (i*3+j)%14)), UploadOptions{Tags: []string{fmt.Sprint("t", j%2)}})
			}
		}
		if round == 1 {
			if _, err := f.s.CompactCatalog(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.s.Delete(ctx, "artifact://s/t01/log"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.PruneVersions(ctx, "artifact://s/t02/log", 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(stage string) {
		got, err := f.s.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want, err := f.s.walkUsage(ctx)
		if err != nil || !usageEqual(got, want) {
			t.Errorf("%s: usage %+v, scan %+v (%v)", stage, got.Total, want.Total, err)
		}
		mds, err := f.s.Search(ctx, Filter{Tags: []string{"t1"}})
		if err != nil {
			t.Fatal(err)
		}
		scan, err := f.s.Search(ctx, Filter{Spec: "s", Tags: []string{"t1"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(mds) != len(scan) {
			t.Fatalf("%s: search %d, scan %d", stage, len(mds), len(scan))
		}
		for i := range mds {
			if mds[i].URI != scan[i].URI || mds[i].BlobKey != scan[i].BlobKey || mds[i].SHA256 != scan[i].SHA256 || mds[i].Size != scan[i].Size || mds[i].Version != scan[i].Version {
				t.Errorf("%s: catalog %+v scan %+v", stage, mds[i], scan[i])
			}
			rc, err := f.s.OpenVersion(ctx, mds[i])
			if err != nil {
				t.Errorf("%s: open %s: %v", stage, mds[i].URI, err)
				continue
			}
			if _, err := io.ReadAll(rc); err != nil {
				t.Errorf("%s: read %s: %v", stage, mds[i].URI, err)
			}
			rc.Close()
		}
	}
	check("before compaction")
	if _, err := f.s.CompactCatalog(ctx); err != nil {
		t.Fatal(err)
	}
	check("after compaction")
	f.clock.Advance(8 * 24 * time.Hour)
	rep, err := f.s.CleanupExpired(ctx, CleanupOptions{})
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	t.Logf("cleanup: %+v", rep)
	check("after cleanup")
	if got := backendtest.Keys(t, f.b, "blobs/"); len(got) != 0 {
		t.Errorf("blobs left after cleanup: %v", got)
	}
	rr, err := f.s.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: time.Hour})
	if err != nil || len(rr.MissingBlobs) != 0 {
		t.Fatalf("reconcile: %+v %v", rr, err)
	}
}

// TestInlineFaultQuotaWithSpillsAndGuess: usage counter stays exact across
// spills, guessed commits, prunes and deletes.
func TestInlineFaultQuotaWithSpillsAndGuess(t *testing.T) {
	ctx := context.Background()
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit, Quota: QuotaConfig{MaxBytes: 1 << 20}, WriterID: "a"})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit, Quota: QuotaConfig{MaxBytes: 1 << 20}, WriterID: "b"}, nil).s
	const uri = "artifact://s/t/log"
	for i := range 10 {
		s := f.s
		if i%3 == 2 {
			s = b
		}
		mustUpload(t, s, uri, fmt.Appendf(nil, "content-%d", i), UploadOptions{})
	}
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("reply lost")})
	mustUpload(t, f.s, uri, []byte("content-x"), UploadOptions{})
	if _, err := f.s.PruneVersions(ctx, uri, 3); err != nil {
		t.Fatal(err)
	}
	mustUpload(t, b, "artifact://s/u/log", []byte("small"), UploadOptions{})
	rep, err := f.s.Reconcile(ctx, ReconcileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.UsageDrift != (UsageTotals{}) {
		t.Errorf("usage drift %+v", rep.UsageDrift)
	}
}

// TestInlineFaultErrorsInline: sentinels of inline paths.
func TestInlineFaultErrorsInline(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true})
	const uri = "artifact://s/t/log"
	if _, err := f.s.Upload(ctx, uri, bytes.NewReader([]byte("abc")), 5, UploadOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("short reader: %v", err)
	}
	if _, err := f.s.Upload(ctx, uri, bytes.NewReader([]byte("abcdef")), 5, UploadOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("long reader: %v", err)
	}
	if _, err := f.s.Upload(ctx, uri, iotestErrReader{}, 5, UploadOptions{}); err == nil {
		t.Errorf("failing reader: nil")
	}
	if ok, _ := f.s.Exists(ctx, uri); ok {
		t.Errorf("artifact exists after failed uploads")
	}
	md := mustUpload(t, f.s, uri, []byte("hello"), UploadOptions{})
	md2 := md
	md2.URI = "artifact://s/t/log?version=9"
	md2.Version = 9
	if _, err := f.s.OpenVersion(ctx, md2); !errors.Is(err, ErrNotFound) {
		t.Errorf("open missing version: %v", err)
	}
	md3 := md
	md3.URI = "artifact://s/other/log?version=1"
	if _, err := f.s.OpenVersion(ctx, md3); !errors.Is(err, ErrNotFound) {
		t.Errorf("open missing artifact: %v", err)
	}
	if err := f.s.Delete(ctx, uri); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.OpenVersion(ctx, md); !errors.Is(err, ErrNotFound) {
		t.Errorf("open deleted: %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, backend.ErrTransient }

// TestInlineFaultConcurrentInlineRace: concurrent uploads by one Store and
// reads, with -race.
func TestInlineFaultConcurrentInlineRace(t *testing.T) {
	ctx := context.Background()
	const limit = 32
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "b"}, nil).s
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("seed"), UploadOptions{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s := f.s
			if w == 3 {
				s = b
			}
			for i := range 15 {
				if _, err := s.UploadBytes(ctx, uri, fmt.Appendf(nil, "w%d-%d-%s", w, i, bytes.Repeat([]byte("z"), i)), UploadOptions{Tags: []string{fmt.Sprint("w", w)}}); err != nil {
					t.Errorf("upload: %v", err)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 40 {
				vs, err := f.s.Versions(ctx, uri)
				if err != nil {
					t.Errorf("versions: %v", err)
					return
				}
				for _, v := range vs {
					rc, err := f.s.OpenVersion(ctx, v)
					if err != nil {
						if !errors.Is(err, ErrNotFound) {
							t.Errorf("open: %v", err)
						}
						continue
					}
					if _, err := io.ReadAll(rc); err != nil {
						t.Errorf("read %s: %v", v.URI, err)
					}
					rc.Close()
				}
				if _, err := f.s.Search(ctx, Filter{Tags: []string{"w1"}}); err != nil {
					t.Errorf("search: %v", err)
				}
			}
		})
	}
	wg.Wait()
	vs, err := f.s.Versions(ctx, uri)
	if err != nil || len(vs) != 61 {
		t.Fatalf("%d versions, %v", len(vs), err)
	}
	rvCheckAll(t, f, f.s, uri, nil)
}

// TestInlineFaultMixedInlineConfigs: Store A writes inline, B (InlineMaxBytes
// -1) and C (a smaller limit) write on the same artifact: every version
// stays readable, blobs exact; single-version deletes of inline and
// spilled versions; partial expiry.
func TestInlineFaultMixedInlineConfigs(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: 64, WriterID: "a"})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: -1, WriterID: "b", Now: f.clock.Now}, nil).s
	c := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: 8, WriterID: "c", Now: f.clock.Now}, nil).s
	const uri = "artifact://s/t/log"
	want := map[int][]byte{}
	up := func(s *Store, d []byte) {
		want[mustUpload(t, s, uri, d, UploadOptions{}).Version] = d
	}
	for i := range 6 {
		up(f.s, fmt.Appendf(nil, "a-%d-%s", i, bytes.Repeat([]byte("q"), 40)))
	}
	f.clock.Advance(5 * 24 * time.Hour)
	up(c, []byte("c-0"))
	up(f.s, []byte("a-after-c"))
	up(b, []byte("b-0"))
	m := rawManifest(t, f.b, uri)
	t.Logf("schema %d, inline bytes %d, blobs %d of %d", m.Schema, m.inlineBytes(), len(m.blobs()), len(m.Versions))
	rvCheckAll(t, f, f.s, uri, want)
	// delete a spilled version and an inline one
	var spilled, inl int
	for _, v := range m.Versions {
		if v.Blob != "" && spilled == 0 {
			spilled = v.Version
		}
		if v.Blob == "" {
			inl = v.Version
		}
	}
	for _, n := range []int{spilled, inl} {
		if n == 0 {
			continue
		}
		if err := f.s.Delete(ctx, fmt.Sprintf("%s?version=%d", uri, n)); err != nil {
			t.Fatalf("delete version %d: %v", n, err)
		}
		delete(want, n)
	}
	rvCheckAll(t, f, c, uri, want)
	f.clock.Advance(3 * 24 * time.Hour)
	rep, err := c.CleanupExpired(ctx, CleanupOptions{})
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	t.Logf("cleanup %+v", rep)
	rvCheckAll(t, f, b, uri, want)
	got, err := f.s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.s.walkUsage(ctx)
	if err != nil || !usageEqual(got, w) {
		t.Errorf("usage %+v scan %+v", got.Total, w.Total)
	}
	if m := rawManifest(t, f.b, uri); len(backendtest.Keys(t, f.b, "blobs/")) != len(m.blobs()) {
		t.Errorf("blobs %v, manifest %v", backendtest.Keys(t, f.b, "blobs/"), m.blobs())
	}
	var buf bytes.Buffer
	if _, err := f.s.Export(ctx, &buf, ExportOptions{Spec: "s", AllVersions: true}); err != nil {
		t.Errorf("export: %v", err)
	}
	vr, err := f.s.VerifyAll(ctx, VerifyOptions{})
	if err != nil || !vr.OK() {
		t.Errorf("verify all %+v %v", vr, err)
	}
}

// TestInlineFaultInlineCreateResentAfterTombstoneRemoved: the inline create's
// Put fails before it reaches the backend (ambiguous); during the
// read-back the lock is broken, another Store creates, deletes, and
// Reconcile removes the tombstone. The re-send must not happen.
func TestInlineFaultInlineCreateResentAfterTombstoneRemoved(t *testing.T) {
	for _, landed := range []bool{false, true} {
		t.Run(fmt.Sprint("landed=", landed), func(t *testing.T) {
			ctx := context.Background()
			f, fb := newInlineFixture(t, Config{Versioning: true, WriterID: "a"})
			other := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, WriterID: "b", InlineMaxBytes: DefaultInlineMaxBytes, Now: f.clock.Now}, nil).s
			const uri = "artifact://s/t/log"
			at := backendtest.Before
			if landed {
				at = backendtest.After
			}
			fb.Inject(
				backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: at, Err: backendtest.Transient("reset")},
				backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
					if _, err := other.ForceUnlock(ctx, uri); err != nil {
						t.Error(err)
					}
					if !landed {
						mustUpload(t, other, uri, []byte("theirs"), UploadOptions{})
					}
					if err := other.Delete(ctx, uri); err != nil {
						t.Errorf("delete: %v", err)
					}
					f.clock.Advance(2 * time.Hour)
					rep, err := other.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: time.Hour})
					if err != nil || rep.TombstonesRemoved != 1 {
						t.Errorf("reconcile: %+v %v", rep.TombstonesRemoved, err)
					}
				}},
			)
			_, err := f.s.UploadBytes(ctx, uri, []byte("mine"), UploadOptions{})
			t.Logf("upload: %v", err)
			if ok, _ := other.Exists(ctx, uri); ok {
				d, _, _ := other.Download(ctx, uri)
				if err == nil {
					t.Logf("exists after success: %q", d)
				} else {
					t.Errorf("deleted artifact came back: %q (upload err %v)", d, err)
				}
			} else if err == nil {
				t.Errorf("upload acknowledged but artifact absent (deleted by the other store after: acceptable only if delete came after)")
			}
		})
	}
}

// TestInlineFaultLocklessStressInline: lockless Stores with lost replies and
// ambiguous failures on manifest Puts, spilling small contents: every
// acknowledged upload is a version, every version is readable.
func TestInlineFaultLocklessStressInline(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprint("locked=", locked), func(t *testing.T) {
			ctx := context.Background()
			const limit = 24
			f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit, DisableLocking: !locked, WriterID: "base"})
			const uri = "artifact://s/t/log"
			var stores []*Store
			for c := range 4 {
				var fb *backendtest.Faulty
				fx := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit, DisableLocking: !locked, WriterID: fmt.Sprint("c", c), Now: f.clock.Now, MaxConflictRetries: 50, LockTimeout: 5 * time.Second}, func(b backend.Backend) backend.Backend {
					fb = backendtest.NewFaulty(b)
					return fb
				})
				fb.Inject(
					backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 2 + c, Times: 3, At: backendtest.After, Err: backendtest.Transient("reply lost")},
					backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 9 + c, Times: 2, Err: backendtest.Transient("reset")},
					backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Skip: 3, Times: 1, At: backendtest.After, Err: backendtest.Transient("blob reply lost")},
				)
				stores = append(stores, fx.s)
			}
			var (
				mu    sync.Mutex
				acked = map[string]bool{}
				unk   = map[string]bool{}
				wg    sync.WaitGroup
			)
			for c, s := range stores {
				wg.Go(func() {
					for i := range 25 {
						d := fmt.Appendf(nil, "c%d-%d-%s", c, i, bytes.Repeat([]byte("k"), (i*7)%20))
						_, err := s.UploadBytes(ctx, uri, d, UploadOptions{})
						mu.Lock()
						switch {
						case err == nil:
							acked[sha(d)] = true
						case errors.Is(err, ErrUnknownOutcome):
							unk[sha(d)] = true
						case errors.Is(err, ErrConflict) || errors.Is(err, ErrLockTimeout):
						default:
							t.Errorf("upload: %v", err)
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			vs, err := f.s.Versions(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, v := range vs {
				have[v.SHA256] = true
			}
			for s := range acked {
				if !have[s] {
					t.Errorf("acknowledged upload %s lost", s[:12])
				}
			}
			t.Logf("%d acked, %d unknown, %d versions", len(acked), len(unk), len(vs))
			rvCheckAll(t, f, f.s, uri, nil)
		})
	}
}

// TestInlineFaultSpillConcurrencyUnbounded: an artifact with many tiny inline
// versions; a Store configured never to inline (InlineMaxBytes -1) adds a
// version: the commit moves every inline content to a blob, all Puts at
// once.
func TestInlineFaultSpillConcurrencyUnbounded(t *testing.T) {
	f, _ := newInlineFixture(t, Config{Versioning: true})
	const uri = "artifact://s/t/log"
	const n = 1500
	for i := range n {
		mustUpload(t, f.s, uri, fmt.Appendf(nil, "%d", i), UploadOptions{})
	}
	var fb *backendtest.Faulty
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: -1, WriterID: "b", Now: f.clock.Now}, func(be backend.Backend) backend.Backend {
		fb = backendtest.NewFaulty(be)
		return fb
	}).s
	var mu sync.Mutex
	inflight, peak, total := 0, 0, 0
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		mu.Lock()
		inflight++
		total++
		peak = max(peak, inflight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inflight--
		mu.Unlock()
	}})
	start := time.Now()
	mustUpload(t, b, uri, []byte("a blob now"), UploadOptions{})
	t.Logf("one upload of 10 bytes: %d blob Puts, at most %d at once, %v", total, peak, time.Since(start))
	if peak > spillConcurrency || total > maxSpill+1 {
		t.Errorf("one commit ran %d blob Puts, %d at once; want at most %d, %d at once", total, peak, maxSpill+1, spillConcurrency)
	}
}

// TestInlineFaultSpillBurstSingleStore: one Store, one config (InlineMaxBytes
// 256, so budget 1 KiB) and 1-byte contents: the upload that passes the
// budget moves ~half of all versions to blobs in one commit, all at once.
func TestInlineFaultSpillBurstSingleStore(t *testing.T) {
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: 256})
	const uri = "artifact://s/t/log"
	for i := range 1024 {
		mustUpload(t, f.s, uri, []byte{byte(i)}, UploadOptions{})
	}
	var mu sync.Mutex
	inflight, peak, total := 0, 0, 0
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		mu.Lock()
		inflight++
		total++
		peak = max(peak, inflight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inflight--
		mu.Unlock()
	}})
	mustUpload(t, f.s, uri, []byte{0xff, 0xfe}, UploadOptions{})
	t.Logf("one upload of 2 bytes: %d blob Puts, at most %d at once", total, peak)
	if peak > spillConcurrency || total > maxSpill+1 {
		t.Errorf("one commit ran %d blob Puts, %d at once; want at most %d, %d at once", total, peak, maxSpill+1, spillConcurrency)
	}
}

// TestInlineFaultRaceWithBackgroundCompaction: inline uploads, spills, reads,
// searches and usage while background compactions run (-race).
func TestInlineFaultRaceWithBackgroundCompaction(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: 16, Catalog: CatalogConfig{CompactEvery: 1, SegmentRecords: 3}})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 30 {
				uri := fmt.Sprintf("artifact://s/t%d/log", i%4)
				if _, err := f.s.UploadBytes(ctx, uri, fmt.Appendf(nil, "w%d-%d", w, i), UploadOptions{Tags: []string{"x"}}); err != nil {
					t.Errorf("upload: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 30 {
			mds, err := f.s.Search(ctx, Filter{Tags: []string{"x"}})
			if err != nil {
				t.Errorf("search: %v", err)
			}
			for _, md := range mds {
				if rc, err := f.s.OpenVersion(ctx, md); err == nil {
					io.ReadAll(rc)
					rc.Close()
				}
				f.s.Download(ctx, md.URI)
			}
			if _, err := f.s.Usage(ctx); err != nil {
				t.Errorf("usage: %v", err)
			}
		}
	})
	wg.Wait()
	if err := f.s.Close(); err != nil {
		t.Log(err)
	}
	got, err := f.s.Usage(ctx)
	if err == nil {
		want, _ := f.s.walkUsage(ctx)
		if !usageEqual(got, want) {
			t.Errorf("usage %+v scan %+v", got.Total, want.Total)
		}
	}
}

// TestInlineFaultReconcileDuringSpillCommit: lockless; while A's spill commit
// is about to Put its manifest, the clock passes the grace period and
// Reconcile(Apply) runs: the spill blobs look like orphans.
func TestInlineFaultReconcileDuringSpillCommit(t *testing.T) {
	ctx := context.Background()
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit, DisableLocking: true, WriterID: "a"})
	r := newFixtureOn(t, f.b, nil, Config{Versioning: true, InlineMaxBytes: limit, DisableLocking: true, WriterID: "r", Now: f.clock.Now}, nil).s
	const uri = "artifact://s/t/log"
	want := fillToSpill(t, f.s, uri)
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		f.clock.Advance(2 * time.Hour)
		rep, err := f.s.Reconcile(ctx, ReconcileOptions{Apply: true, GracePeriod: time.Hour})
		t.Logf("reconcile inside: orphans %v pending %d blobs %d err %v", rep.OrphanBlobs, rep.Pending, rep.Blobs, err)
	}})
	md, err := f.s.UploadBytes(ctx, uri, []byte("content-4"), UploadOptions{})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	want[md.Version] = []byte("content-4")
	rvCheckAll(t, f, r, uri, want)
}

// TestInlineFaultOpenVersionMalformedSentinel: OpenVersion of metadata with a
// malformed SHA-256 is ErrInvalidArgument for a blob version; for a
// version whose content is in the manifest it is not.
func TestInlineFaultOpenVersionMalformedSentinel(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int{-1, DefaultInlineMaxBytes} {
		t.Run(fmt.Sprint("inline=", limit), func(t *testing.T) {
			f, _ := newInlineFixture(t, Config{InlineMaxBytes: limit})
			md := mustUpload(t, f.s, "artifact://s/t/log", []byte("hello"), UploadOptions{})
			md.SHA256 = "not-hex"
			_, err := f.s.OpenVersion(ctx, md)
			t.Logf("blobkey=%q err=%v", md.BlobKey, err)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("OpenVersion with a malformed sha256: %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestInlineFaultLockedRefusalReadBackFails: under the lock, A's commit (decided
// on a read, not a guess) is refused because the lock was broken and B
// committed; A's read-back fails. Documented (doc.go step 6): ErrConflict
// when the refusal is known, ErrUnknownOutcome when the read-back fails.
func TestInlineFaultLockedRefusalReadBackFails(t *testing.T) {
	ctx := context.Background()
	f, fb := newInlineFixture(t, Config{Versioning: true, WriterID: "a"})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, WriterID: "b", InlineMaxBytes: DefaultInlineMaxBytes, Now: f.clock.Now}, nil).s
	const uri = "artifact://s/t/log"
	mustUpload(t, b, uri, []byte("v1"), UploadOptions{})
	if _, err := f.s.Stat(ctx, uri); err != nil { // a's copy is a read one: no guess
		t.Fatal(err)
	}
	fb.Inject(
		backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
			if _, err := b.ForceUnlock(ctx, uri); err != nil {
				t.Error(err)
			}
			mustUpload(t, b, uri, []byte("v2 by b"), UploadOptions{})
			fb.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Err: backendtest.Transient("down")})
		}},
	)
	_, err := f.s.UploadBytes(ctx, uri, []byte("v2 by a"), UploadOptions{})
	t.Logf("a: %v", err)
	if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("upload: %v; want ErrConflict or ErrUnknownOutcome (doc.go step 6)", err)
	}
}

// inflightBackend holds the first armed manifest Put "in flight": it
// returns an ambiguous failure at once and performs the Put when released
// (a request the network delivers late).
type inflightBackend struct {
	backend.Backend
	mu      sync.Mutex
	armed   bool
	skip    int // manifest Puts to let through before the held one
	release chan struct{}
	landed  chan error
}

func (b *inflightBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	b.mu.Lock()
	hold := b.armed && len(key) > 10 && key[:10] == "manifests/"
	if hold && b.skip > 0 {
		b.skip--
		hold = false
	}
	if hold {
		b.armed = false
	}
	b.mu.Unlock()
	if !hold {
		return b.Backend.Put(ctx, key, r, size, opts)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	go func() {
		<-b.release
		_, err := b.Backend.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), opts)
		b.landed <- err
	}()
	return backend.ObjectInfo{}, backendtest.Transient("timeout, request still in flight")
}

// TestInlineFaultSpillDeletedWhileFirstAttemptInFlight: A's spill commit
// (guessed on its own copy): attempt 1 times out but is still in flight;
// the re-send is refused with a definite error (permission denied); the
// write deletes its spill blobs and rebuilds on a fresh read; before the
// rebuilt Put, attempt 1 lands. The rebuilt Put is refused, the read-back
// finds the commit id (same intent) and the upload reports success, but
// the manifest that landed references the deleted spill blobs: the
// content of older, long-acknowledged versions is gone.
func TestInlineFaultSpillDeletedWhileFirstAttemptInFlight(t *testing.T) {
	ctx := context.Background()
	const limit = 10
	ib := &inflightBackend{release: make(chan struct{}), landed: make(chan error, 1)}
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), Config{Versioning: true, InlineMaxBytes: limit}, func(b backend.Backend) backend.Backend {
		ib.Backend = b
		fb = backendtest.NewFaulty(ib)
		return fb
	})
	const uri = "artifact://s/t/log"
	want := fillToSpill(t, f.s, uri)
	ib.mu.Lock()
	ib.armed = true
	ib.mu.Unlock()
	fb.Inject(
		// attempt 1 passes to inflightBackend (held); the re-send is refused.
		backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 1, Times: 1, Err: backendtest.Permanent("access denied", backend.ErrPermissionDenied)},
		// the Put rebuilt on a fresh read: attempt 1 lands just before it.
		backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 2, Times: 1, Hook: func(context.Context, backendtest.Op, string) {
			close(ib.release)
			if err := <-ib.landed; err != nil {
				t.Logf("attempt 1 did not land: %v", err)
			}
		}},
	)
	md, err := f.s.UploadBytes(ctx, uri, []byte("content-4"), UploadOptions{})
	t.Logf("upload: version %d, err %v", md.Version, err)
	if err == nil {
		want[md.Version] = []byte("content-4")
	}
	f2 := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit}, nil)
	rvCheckAll(t, f, f2.s, uri, want)
}

// TestInlineFaultSpillDeletedWhileFirstAttemptInFlightNoGuess: the same
// without the guess (A read the manifest first): the upload fails with a
// definite error (not ErrUnknownOutcome), its spill blobs are deleted,
// then attempt 1 lands.
func TestInlineFaultSpillDeletedWhileFirstAttemptInFlightNoGuess(t *testing.T) {
	ctx := context.Background()
	const limit = 10
	ib := &inflightBackend{release: make(chan struct{}), landed: make(chan error, 1)}
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), Config{Versioning: true, InlineMaxBytes: limit, WriterID: "a"}, func(b backend.Backend) backend.Backend {
		ib.Backend = b
		fb = backendtest.NewFaulty(ib)
		return fb
	})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: limit, WriterID: "b", Now: f.clock.Now}, nil).s
	const uri = "artifact://s/t/log"
	want := map[int][]byte{}
	for i := range 4 {
		s := f.s
		if i == 3 {
			s = b // a's copy is stale: its guess is refused, the write is decided on a read
		}
		d := fmt.Appendf(nil, "content-%d", i)
		want[mustUpload(t, s, uri, d, UploadOptions{}).Version] = d
	}
	ib.mu.Lock()
	ib.armed, ib.skip = true, 1 // hold the Put decided on the read
	ib.mu.Unlock()
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 2, Times: 1, Err: backendtest.Permanent("access denied", backend.ErrPermissionDenied)})
	_, err := f.s.UploadBytes(ctx, uri, []byte("content-4"), UploadOptions{})
	t.Logf("upload: %v (ErrUnknownOutcome: %v)", err, errors.Is(err, ErrUnknownOutcome))
	close(ib.release)
	t.Logf("attempt 1 landed: %v", <-ib.landed)
	rvCheckAll(t, f, b, uri, want)
}

// TestInlineFaultBlobDeletedWhileFirstAttemptInFlight: the same window without
// inline contents (the behaviour before the change): the failed upload's
// own blob is deleted while its first attempt is in flight.
func TestInlineFaultBlobDeletedWhileFirstAttemptInFlight(t *testing.T) {
	ctx := context.Background()
	ib := &inflightBackend{release: make(chan struct{}), landed: make(chan error, 1)}
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), Config{Versioning: true, InlineMaxBytes: -1, WriterID: "a"}, func(b backend.Backend) backend.Backend {
		ib.Backend = b
		fb = backendtest.NewFaulty(ib)
		return fb
	})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, InlineMaxBytes: -1, WriterID: "b", Now: f.clock.Now}, nil).s
	const uri = "artifact://s/t/log"
	want := map[int][]byte{}
	want[mustUpload(t, f.s, uri, []byte("content-0"), UploadOptions{}).Version] = []byte("content-0")
	want[mustUpload(t, b, uri, []byte("content-1"), UploadOptions{}).Version] = []byte("content-1")
	ib.mu.Lock()
	ib.armed, ib.skip = true, 1 // a's guess is refused; hold the Put decided on the read
	ib.mu.Unlock()
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Skip: 2, Times: 1, Err: backendtest.Permanent("access denied", backend.ErrPermissionDenied)})
	_, err := f.s.UploadBytes(ctx, uri, []byte("content-2"), UploadOptions{})
	t.Logf("upload: %v (ErrUnknownOutcome: %v)", err, errors.Is(err, ErrUnknownOutcome))
	close(ib.release)
	t.Logf("attempt 1 landed: %v", <-ib.landed)
	rvCheckAll(t, f, b, uri, want)
}

// fillToSpill uploads four 9-byte contents to uri: with InlineMaxBytes
// 10 the next upload moves the oldest contents to blobs. It returns the
// contents by version.
func fillToSpill(t *testing.T, s *Store, uri string) map[int][]byte {
	t.Helper()
	want := map[int][]byte{}
	for i := range 4 {
		d := fmt.Appendf(nil, "content-%d", i)
		want[mustUpload(t, s, uri, d, UploadOptions{}).Version] = d
	}
	return want
}
