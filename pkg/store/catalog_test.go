package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/catalog"
)

// populate uploads a pipeline-shaped set of artifacts: specs x tasks x
// (diff, log, test), every seventh tagged "flaky", every eleventh
// "retain", every fifth with a second version.
func populate(t *testing.T, s *Store, specs, tasks int) {
	t.Helper()
	i := 0
	for sp := range specs {
		for tk := range tasks {
			for _, typ := range []string{"diff", "log", "test"} {
				i++
				var tags []string
				if i%7 == 0 {
					tags = append(tags, "flaky")
				}
				if i%11 == 0 {
					tags = append(tags, "retain")
				}
				u := fmt.Sprintf("artifact://spec%02d/task%02d/%s", sp, tk, typ)
				mustUpload(t, s, u, fmt.Appendf(nil, "content %d", i), UploadOptions{Tags: tags})
				if i%5 == 0 {
					mustUpload(t, s, u, fmt.Appendf(nil, "content %d, again", i), UploadOptions{})
				}
			}
		}
	}
}

// scanSearch is what Search answers by reading every manifest.
func scanSearch(t *testing.T, s *Store, f Filter) []string {
	t.Helper()
	mds, err := s.collect(context.Background(), manifestRoot, f, nil)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return uris(t, mds)
}

// scanExpired is what Expired answers by reading every manifest.
func scanExpired(t *testing.T, s *Store, f Filter) []string {
	t.Helper()
	var (
		mu  sync.Mutex
		out []string
	)
	err := s.forEachManifest(context.Background(), manifestRoot, f.matchURI, func(ctx context.Context, r record) error {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range s.expiredIn(scope{f}, r.m, s.cfg.Now()) {
			out = append(out, r.m.artifactURI().WithVersion(v.Version).String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	slices.Sort(out)
	return out
}

// countGets counts the Gets of keys under prefix through fb.
func countGets(fb *backendtest.Faulty, prefix string) *atomic.Int64 {
	var n atomic.Int64
	fb.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: prefix, Hook: func(context.Context, backendtest.Op, string) { n.Add(1) }})
	return &n
}

func TestCatalogAnswersWithoutManifests(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Versioning: true, Catalog: CatalogConfig{SegmentRecords: 16}}
	f := newFixture(t, memEnv(), cfg, nil)
	populate(t, f.s, 6, 10) // 180 artifacts
	rep, err := f.s.CompactCatalog(ctx)
	if err != nil || !rep.Rebuilt || rep.Artifacts != 180 || rep.Segments != 12 || rep.Folded != 216 {
		t.Fatalf("first compaction: %+v, %v", rep, err)
	}
	if keys := backendtest.Keys(t, f.b, catalog.LogPrefix); len(keys) != 0 {
		t.Fatalf("log left after compaction: %v", keys)
	}
	// Writes after the compaction are in the log: a tag added, a delete,
	// a new artifact.
	if _, err := f.s.AddTags(ctx, "artifact://spec03/task04/log", "flaky"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Delete(ctx, "artifact://spec00/task06/diff"); err != nil { // i=19: not flaky
		t.Fatal(err)
	}
	mustUpload(t, f.s, "artifact://spec09/task00/log", []byte("new"), UploadOptions{Tags: []string{"flaky"}})

	fb := backendtest.NewFaulty(f.b)
	cold := newFixtureOn(t, fb, f.locker, cfg, nil)
	cold.clock.Advance(20 * 24 * time.Hour)
	f.clock.Advance(20 * 24 * time.Hour)
	manifestGets := countGets(fb, "manifests/")
	segmentGets := countGets(fb, catalog.SegmentPrefix)
	filters := []Filter{
		{Tags: []string{"flaky"}},
		{Type: "log"},
		{Type: "test", Tags: []string{"retain"}},
		{CreatedAfter: cold.clock.Now().Add(-21 * 24 * time.Hour)},
		{UpdatedBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{},
	}
	for _, flt := range filters {
		manifestGets.Store(0)
		mds, err := cold.s.Search(ctx, flt)
		if err != nil {
			t.Fatalf("search %+v: %v", flt, err)
		}
		if got, want := uris(t, mds), scanSearch(t, f.s, flt); !slices.Equal(got, want) {
			t.Fatalf("search %+v:\n got %v\nwant %v", flt, got, want)
		}
		if n := manifestGets.Load(); n != 3 { // the three artifacts in the log
			t.Errorf("search %+v read %d manifests, want 3", flt, n)
		}
	}
	// A selective tag reads only the segments that hold it.
	segmentGets.Store(0)
	if _, err := cold.s.Search(ctx, Filter{Tags: []string{"nobody-has-it"}}); err != nil || segmentGets.Load() != 0 {
		t.Fatalf("search by an absent tag: %d segments read, %v", segmentGets.Load(), err)
	}
	// Usage: the root's totals, corrected by the log's artifacts.
	manifestGets.Store(0)
	got, err := cold.s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.s.walkUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !usageEqual(got, want) || got.Total.Artifacts != 180 {
		t.Fatalf("usage:\n got %+v\nwant %+v", got, want)
	}
	if n := manifestGets.Load(); n != 3 {
		t.Errorf("usage read %d manifests, want 3", n)
	}
	// The retention plan: logs (7 days) and tests (14 days) are expired,
	// diffs (30 days) not, the "retain" ones never.
	exp, err := cold.s.Expired(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if gotExp, wantExp := versionURIs(exp), scanExpired(t, f.s, Filter{}); !slices.Equal(gotExp, wantExp) || len(gotExp) == 0 {
		t.Fatalf("expired:\n got %v\nwant %v", gotExp, wantExp)
	}
	// A second compaction folds the three and leaves no log.
	rep, err = cold.s.CompactCatalog(ctx)
	if err != nil || rep.Rebuilt || rep.Folded != 3 || rep.Artifacts != 180 || rep.Pending != 0 {
		t.Fatalf("second compaction: %+v, %v", rep, err)
	}
	manifestGets.Store(0)
	if mds, err := cold.s.Search(ctx, Filter{Tags: []string{"flaky"}}); err != nil || manifestGets.Load() != 0 ||
		!slices.Equal(uris(t, mds), scanSearch(t, f.s, Filter{Tags: []string{"flaky"}})) {
		t.Fatalf("search after compaction: %d manifests read, %v", manifestGets.Load(), err)
	}
}

func usageEqual(a, b UsageReport) bool {
	if a.Total != b.Total || !maps.Equal(a.BySpec, b.BySpec) || !maps.Equal(a.ByType, b.ByType) || len(a.BySpecType) != len(b.BySpecType) {
		return false
	}
	for k, m := range a.BySpecType {
		if !maps.Equal(m, b.BySpecType[k]) {
			return false
		}
	}
	return true
}

func TestCatalogPages(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Catalog: CatalogConfig{SegmentRecords: 5}}, nil)
	populate(t, f.s, 3, 6) // 54 artifacts
	if _, err := f.s.CompactCatalog(ctx); err != nil {
		t.Fatal(err)
	}
	mustUpload(t, f.s, "artifact://spec01/task02/zzz", []byte("in the log"), UploadOptions{})
	for _, flt := range []Filter{{}, {Type: "log"}, {Tags: []string{"flaky"}}, {Spec: "spec01"}} {
		want := scanSearch(t, f.s, flt)
		if got := allPages(t, f.s, flt, 4); !slices.Equal(got, want) {
			t.Fatalf("pages of %+v:\n got %v\nwant %v", flt, got, want)
		}
	}
	// The iterator stops where the caller does.
	n := 0
	for _, err := range f.s.SearchSeq(ctx, Filter{}, Page{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	for _, p := range []Page{{Limit: -1}, {After: "not a uri"}} {
		if _, _, err := f.s.SearchPage(ctx, Filter{}, p); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("page %+v: %v, want ErrInvalidArgument", p, err)
		}
	}
}

// TestCatalogNeverTrustsBadObjects: a corrupt or missing segment, or a root
// that is not valid, is detected; queries fall back to the manifests (exact)
// and the next compaction rebuilds the catalog.
func TestCatalogNeverTrustsBadObjects(t *testing.T) {
	ctx := context.Background()
	for _, damage := range []string{"flip a segment byte", "delete a segment", "garble the root", "flip a usage byte"} {
		t.Run(damage, func(t *testing.T) {
			f := newFixture(t, memEnv(), Config{Catalog: CatalogConfig{SegmentRecords: 8}}, nil)
			populate(t, f.s, 2, 5)
			if _, err := f.s.CompactCatalog(ctx); err != nil {
				t.Fatal(err)
			}
			segs := backendtest.Keys(t, f.b, catalog.SegmentPrefix)
			switch damage {
			case "flip a segment byte":
				data := readObject(t, f.b, segs[1])
				data[len(data)/2] ^= 0x40
				writeObject(t, f.b, segs[1], data)
			case "delete a segment":
				if err := f.b.Delete(ctx, segs[1]); err != nil {
					t.Fatal(err)
				}
			case "flip a usage byte":
				key := segs[len(segs)-1] // usage-<id>.json.gz sorts after the segments' ULIDs
				if !strings.Contains(key, "usage-") {
					t.Fatalf("no usage object among %v", segs)
				}
				data := readObject(t, f.b, key)
				data[len(data)/2] ^= 0x40
				writeObject(t, f.b, key, data)
			case "garble the root":
				writeObject(t, f.b, catalog.RootKey, []byte(`{"schema":1,"segments":[{"key":"elsewhere"}]}`))
			}
			for _, flt := range []Filter{{Type: "log"}, {}} {
				mds, err := f.s.Search(ctx, flt)
				if err != nil || !slices.Equal(uris(t, mds), scanSearch(t, f.s, flt)) {
					t.Fatalf("search %+v on a damaged catalog: %v, %v", flt, uris(t, mds), err)
				}
			}
			got, err := f.s.Usage(ctx)
			if want, _ := f.s.walkUsage(ctx); err != nil || !usageEqual(got, want) {
				t.Fatalf("usage on a damaged catalog: %+v, %v", got, err)
			}
			rep, err := f.s.CompactCatalog(ctx)
			if err != nil || !rep.Rebuilt || rep.Artifacts != 30 {
				t.Fatalf("compaction of a damaged catalog: %+v, %v", rep, err)
			}
			if _, err := f.s.openView(ctx); err != nil {
				t.Fatalf("catalog after the rebuild: %v", err)
			}
		})
	}
}

func readObject(t *testing.T, b backend.Backend, key string) []byte {
	t.Helper()
	rc, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeObject(t *testing.T, b backend.Backend, key string, data []byte) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// versionURIs are the URIs of mds, with their versions.
func versionURIs(mds []Metadata) []string {
	out := make([]string, len(mds))
	for i, md := range mds {
		out[i] = md.URI
	}
	return out
}

// TestCompactStartsOverAfterLosingTheRoot: without locks, a compaction
// whose root Put loses to another compaction starts over on the new root.
func TestCompactStartsOverAfterLosingTheRoot(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{DisableLocking: true}, nil)
	populate(t, f.s, 1, 3)
	fb := backendtest.NewFaulty(f.b)
	other := newFixtureOn(t, f.b, nil, Config{DisableLocking: true}, nil).s
	s := newFixtureOn(t, fb, nil, Config{DisableLocking: true}, nil).s
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.RootKey, Times: 1, Hook: func(context.Context, backendtest.Op, string) {
		mustUpload(t, other, "artifact://late/t/log", []byte("x"), UploadOptions{})
		if _, err := other.CompactCatalog(ctx); err != nil {
			t.Errorf("the other compaction: %v", err)
		}
	}})
	// The other one built the catalog with every artifact and folded the
	// whole log: starting over finds nothing left to do.
	rep, err := s.CompactCatalog(ctx)
	if err != nil || rep.Generation != 1 || rep.Artifacts != 10 || rep.Folded != 0 {
		t.Fatalf("compaction that lost the root once: %+v, %v", rep, err)
	}
}

// TestBackgroundCompaction: a Store builds the catalog after its first
// commit into a bucket without one, and compacts as it writes; Close waits
// for the compaction it started.
func TestBackgroundCompaction(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Catalog: CatalogConfig{CompactEvery: 1}}, nil)
	for i := range 5 {
		mustUpload(t, f.s, fmt.Sprintf("artifact://s/t%d/log", i), []byte("x"), UploadOptions{})
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Stat(ctx, catalog.RootKey); err != nil {
		t.Fatalf("no catalog after background compactions: %v", err)
	}
	fresh := newFixtureOn(t, f.b, f.locker, Config{}, nil).s
	v, err := fresh.openView(ctx)
	if err != nil || artifactsIn(v.root)+int64(len(v.dirtyKeys)) < 5 {
		t.Fatalf("catalog after background compactions: %v", err)
	}
	mds, err := fresh.Search(ctx, Filter{Type: "log"})
	if err != nil || len(mds) != 5 {
		t.Fatalf("search: %d, %v", len(mds), err)
	}
}

// TestCatalogRecordLeavesSharedManifestAlone: building the catalog record
// of a cached manifest (a query's or a compaction's read) while writers
// clone the same manifest is not a data race (run with -race).
func TestCatalogRecordLeavesSharedManifestAlone(t *testing.T) {
	f := newFixture(t, memEnv(), Config{Versioning: true}, nil)
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("one"), UploadOptions{})
	mustUpload(t, f.s, uri, []byte("two"), UploadOptions{})
	fresh := newFixtureOn(t, f.b, f.locker, Config{}, nil).s
	m, _, err := fresh.readManifest(context.Background(), csParse(t, uri))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := catalogRecord(m); err != nil {
					t.Error(err)
				}
				if c := m.clone(); len(c.Versions) != 2 {
					t.Error("clone")
				}
			}
		})
	}
	wg.Wait()
}

// allPages follows SearchPage's cursors from the first page to the last
// and returns the URIs of every page, checking each page's size.
func allPages(t *testing.T, s *Store, f Filter, limit int) []string {
	t.Helper()
	var got []string
	p := Page{Limit: limit}
	for pages := 0; ; pages++ {
		mds, next, err := s.SearchPage(context.Background(), f, p)
		if err != nil || len(mds) > limit || pages > 100 {
			t.Fatalf("page %d of %+v: %d results, %v", pages, f, len(mds), err)
		}
		got = append(got, uris(t, mds)...)
		if next == "" {
			return got
		}
		p.After = next
	}
}
