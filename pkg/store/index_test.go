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

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

func TestTagMarkerKeys(t *testing.T) {
	u := URI{Spec: "s.1", Task: "t_2", Type: "log"}
	for _, tag := range []string{"a", "flaky", "team/infra", "env:prod", "a.b", "k=v+w@x", "..", "/", strings.Repeat("z", MaxTagLength)} {
		key := tagMarkerKey(tag, u)
		if err := backend.ValidateKey(key); err != nil {
			t.Errorf("tag %q: key %q: %v", tag, key, err)
		}
		if !strings.HasPrefix(key, tagIndexPrefix(tag, "", "")) || !strings.HasPrefix(key, tagIndexPrefix(tag, u.Spec, "")) ||
			!strings.HasPrefix(key, tagIndexPrefix(tag, u.Spec, u.Task)) {
			t.Errorf("tag %q: key %q outside its prefixes", tag, key)
		}
		if strings.Count(key, "/") != 5 {
			t.Errorf("tag %q: key %q: the tag is not one segment", tag, key)
		}
		gotTag, gotURI, ok := parseTagMarkerKey(key)
		if !ok || gotTag != tag || gotURI != u {
			t.Errorf("parse %q = %q, %v, %v", key, gotTag, gotURI, ok)
		}
	}
	for _, bad := range []string{
		"_index/tags/YQ/s/t",           // too few segments
		"_index/tags/YQ/s/t/log/x",     // too many
		"_index/tags/YQ==/s/t/log",     // padded
		"_index/tags/!!/s/t/log",       // not base64url
		"_index/tags/IA/s/t/log",       // " ": not a valid tag
		"_index/tags/YQ/s/t/bad%20typ", // invalid type
		"_index/other/YQ/s/t/log",      // outside the tag index
	} {
		if _, _, ok := parseTagMarkerKey(bad); ok {
			t.Errorf("parse %q accepted", bad)
		}
	}
}

// markersIn returns the tag index markers in b as "tag artifact-uri".
func markersIn(t *testing.T, b backend.Backend) []string {
	t.Helper()
	var out []string
	for _, k := range backendtest.Keys(t, b, tagIndexRoot) {
		tag, u, ok := parseTagMarkerKey(k)
		if !ok {
			continue // a stray key (TestReconcileTagIndex puts one)
		}
		out = append(out, tag+" "+u.String())
	}
	slices.Sort(out)
	return out
}

// tagsInManifests returns every tag of every manifest in b as "tag
// artifact-uri", read from the manifests themselves.
func tagsInManifests(t *testing.T, b backend.Backend) []string {
	t.Helper()
	var out []string
	for _, k := range backendtest.Keys(t, b, manifestRoot) {
		u, ok := uriFromManifestKey(k)
		if !ok {
			continue
		}
		for _, tag := range rawManifest(t, b, u.String()).Tags {
			out = append(out, tag+" "+u.String())
		}
	}
	slices.Sort(out)
	return out
}

// uris returns the URIs of mds without version.
func uris(t *testing.T, mds []Metadata) []string {
	t.Helper()
	out := make([]string, len(mds))
	for i, md := range mds {
		u, err := ParseURI(md.URI)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = u.Artifact().String()
	}
	return out
}

// checkTagSearch compares Search(f) with the answer of the full walk (the
// same filter checked on every manifest, without the index).
func checkTagSearch(t *testing.T, s *Store, f Filter, want ...string) {
	t.Helper()
	ctx := context.Background()
	mds, err := s.Search(ctx, f)
	if err != nil {
		t.Fatalf("search %+v: %v", f, err)
	}
	walked, err := s.collect(ctx, manifestPrefix(f.Spec, f.Task), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, walk := uris(t, mds), uris(t, walked); !slices.Equal(got, want) || !slices.Equal(walk, want) {
		t.Fatalf("search %+v = %v, want %v (full walk: %v)", f, got, want, walk)
	}
}

// TestTagSearchFollowsChanges: with locking, after every kind of change the
// tag index holds exactly the tags of the manifests, and searches by tag
// answer exactly.
func TestTagSearchFollowsChanges(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Versioning: true}, nil)
		const (
			a = "artifact://s/t1/log"
			b = "artifact://s/t1/diff"
			c = "artifact://s/t2/log"
			d = "artifact://r/t1/log"
			x = "artifact://s/t3/test"
		)
		mustUpload(t, f.s, a, []byte("a"), UploadOptions{Tags: []string{"flaky", "team/infra"}})
		mustUpload(t, f.s, b, []byte("b"), UploadOptions{Tags: []string{"flaky"}})
		mustUpload(t, f.s, c, []byte("c"), UploadOptions{Tags: []string{"env:prod"}})
		mustUpload(t, f.s, d, []byte("d"), UploadOptions{Tags: []string{"flaky", "env:prod"}})
		mustUpload(t, f.s, x, []byte("x"), UploadOptions{})
		check := func(step string) {
			t.Helper()
			if got, want := markersIn(t, f.b), tagsInManifests(t, f.b); !slices.Equal(got, want) {
				t.Fatalf("%s: markers %v, manifests' tags %v", step, got, want)
			}
		}
		check("uploads")
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, d, b, a)
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky", "env:prod"}}, d)
		checkTagSearch(t, f.s, Filter{Spec: "s", Tags: []string{"flaky"}}, b, a)
		checkTagSearch(t, f.s, Filter{Spec: "s", Task: "t1", Type: "log", Tags: []string{"team/infra"}}, a)
		checkTagSearch(t, f.s, Filter{Type: "log", Tags: []string{"flaky"}}, d, a)
		checkTagSearch(t, f.s, Filter{Tags: []string{"none"}})

		// A new version with the same tags; then tag changes.
		mustUpload(t, f.s, a, []byte("a2"), UploadOptions{Tags: []string{"flaky", "team/infra"}})
		if _, err := f.s.RemoveTags(ctx, b, "flaky"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.AddTags(ctx, x, "flaky", "new.tag"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.SetTags(ctx, d, "env:prod", "other"); err != nil {
			t.Fatal(err)
		}
		// An upload adds its tags to the artifact's.
		mustUpload(t, f.s, c, []byte("c2"), UploadOptions{Tags: []string{"flaky"}})
		check("tag changes")
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, a, c, x)
		checkTagSearch(t, f.s, Filter{Tags: []string{"env:prod"}}, d, c)
		checkTagSearch(t, f.s, Filter{Tags: []string{"new.tag"}}, x)

		// Deletions: a version (the artifact stays), an artifact, a task.
		if err := f.s.Delete(ctx, a+"?version=1"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.Delete(ctx, x); err != nil {
			t.Fatal(err)
		}
		check("deletes")
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, a, c)
		if n, err := f.s.DeleteByTask(ctx, "s", "t1"); err != nil || n != 2 {
			t.Fatalf("delete task: %d, %v", n, err)
		}
		check("delete task")
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, c)
		checkTagSearch(t, f.s, Filter{Tags: []string{"new.tag"}})

		// Retention: the expired log artifacts are deleted whole.
		f.clock.Advance(8 * day)
		mustUpload(t, f.s, "artifact://s/t9/diff", []byte("fresh"), UploadOptions{Tags: []string{"env:prod"}})
		if _, err := f.s.CleanupExpired(ctx, CleanupOptions{}); err != nil {
			t.Fatal(err)
		}
		check("cleanup")
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}})
		checkTagSearch(t, f.s, Filter{Tags: []string{"env:prod"}}, "artifact://s/t9/diff")
		if got := markersIn(t, f.b); !slices.Equal(got, []string{"env:prod artifact://s/t9/diff"}) {
			t.Fatalf("markers after cleanup: %v", got)
		}
	})
}

// TestReconcileTagIndex: a marker deleted behind the store's back is
// reported by a dry run and re-created by Apply; stale markers never show
// in results and are deleted by Apply (locking on).
func TestReconcileTagIndex(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{}, nil)
		const (
			a = "artifact://s/t1/log"
			b = "artifact://s/t2/log"
		)
		mustUpload(t, f.s, a, []byte("a"), UploadOptions{Tags: []string{"flaky", "team/x"}})
		mustUpload(t, f.s, b, []byte("b"), UploadOptions{Tags: []string{"other"}})
		ua, ub := URI{Spec: "s", Task: "t1", Type: "log"}, URI{Spec: "s", Task: "t2", Type: "log"}
		gone := URI{Spec: "s", Task: "gone", Type: "diff"}

		// Missing: deleted behind the store's back.
		if err := f.b.Delete(ctx, tagMarkerKey("flaky", ua)); err != nil {
			t.Fatal(err)
		}
		// Stale: markers put directly, for a tag the artifact lacks and
		// for an artifact that does not exist; plus a stray key.
		for _, k := range []string{tagMarkerKey("flaky", ub), tagMarkerKey("flaky", gone), tagIndexRoot + "not-base64!/s/t/log"} {
			if _, err := f.b.Put(ctx, k, strings.NewReader(""), 0, backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// The stale markers never produce a result. (The missing marker
		// hides a: what Reconcile repairs.)
		if mds, err := f.s.Search(ctx, Filter{Tags: []string{"flaky"}}); err != nil || len(mds) != 0 {
			t.Fatalf("search with a missing and stale markers: %v, %v", uris(t, mds), err)
		}

		wantMissing := []TagMarker{{Tag: "flaky", URI: a}}
		wantStale := []TagMarker{{Tag: "flaky", URI: "artifact://s/gone/diff"}, {Tag: "flaky", URI: b}}
		snap := snapshot(t, f.b)
		rep, err := f.s.Reconcile(ctx, ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.MissingTagMarkers, wantMissing) || !slices.Equal(rep.StaleTagMarkers, wantStale) ||
			rep.TagMarkers != 4 || rep.TagMarkersCreated != 0 || rep.TagMarkersDeleted != 0 ||
			!slices.Equal(rep.Strays, []string{tagIndexRoot + "not-base64!/s/t/log"}) || !rep.TagIndexReady {
			t.Fatalf("dry run: %+v", rep)
		}
		if after := snapshot(t, f.b); !maps.Equal(snap, after) {
			t.Fatalf("dry run changed the bucket: %v -> %v", sortedKeys(snap), sortedKeys(after))
		}

		rep, err = f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.MissingTagMarkers, wantMissing) || !slices.Equal(rep.StaleTagMarkers, wantStale) ||
			rep.TagMarkersCreated != 1 || rep.TagMarkersDeleted != 2 {
			t.Fatalf("apply: %+v", rep)
		}
		if got, want := markersIn(t, f.b), tagsInManifests(t, f.b); !slices.Equal(got, want) {
			t.Fatalf("after apply: markers %v, manifests' tags %v", got, want)
		}
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, a)
		// The stray key is reported, never deleted.
		if _, err := f.b.Stat(ctx, tagIndexRoot+"not-base64!/s/t/log"); err != nil {
			t.Fatalf("stray: %v", err)
		}

		rep, err = f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil || len(rep.MissingTagMarkers) != 0 || len(rep.StaleTagMarkers) != 0 || rep.TagMarkers != 3 {
			t.Fatalf("second apply: %+v, %v", rep, err)
		}
	})
}

// TestReconcileStaleMarkerRecheck: a marker that looked stale to the walk
// of the manifests, because its tag was committed after the walk read the
// manifest, is confirmed against the manifest read under the lock and
// kept; a truly stale one is deleted.
func TestReconcileStaleMarkerRecheck(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{}, nil)
	const a = "artifact://s/t/log"
	ua := URI{Spec: "s", Task: "t", Type: "log"}
	mustUpload(t, f.s, a, []byte("a"), UploadOptions{})
	other := newFixtureOn(t, f.b, f.locker, Config{}, nil).s
	if _, err := other.AddTags(ctx, a, "late"); err != nil {
		t.Fatal(err)
	}
	found, deleted, err := f.s.confirmStaleMarker(ctx, tagRef{tag: "late", uri: ua}, true)
	if err != nil || found || deleted {
		t.Fatalf("confirm a live marker: found %v deleted %v, %v", found, deleted, err)
	}
	checkTagSearch(t, f.s, Filter{Tags: []string{"late"}}, a)
	if _, err := other.RemoveTags(ctx, a, "late"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Put(ctx, tagMarkerKey("late", ua), strings.NewReader(""), 0, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	found, deleted, err = f.s.confirmStaleMarker(ctx, tagRef{tag: "late", uri: ua}, true)
	if err != nil || !found || !deleted {
		t.Fatalf("confirm a stale marker: found %v deleted %v, %v", found, deleted, err)
	}
	if got := markersIn(t, f.b); len(got) != 0 {
		t.Fatalf("markers: %v", got)
	}
}

// TestTagMarkerFailureAbortsWrite: when a marker cannot be written the
// write fails with nothing committed: no manifest change, no blob left.
func TestTagMarkerFailureAbortsWrite(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		var fb *backendtest.Faulty
		f := newFixture(t, e, Config{}, func(b backend.Backend) backend.Backend {
			fb = backendtest.NewFaulty(b)
			return fb
		})
		const a = "artifact://s/t/log"
		mustUpload(t, f.s, a, []byte("v1"), UploadOptions{Tags: []string{"kept"}})
		before := snapshot(t, f.b)
		fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: indexRoot, Err: backendtest.Permanent("index down", ErrPermissionDenied)})

		// A new artifact.
		if _, err := f.s.UploadBytes(ctx, "artifact://s/t/diff", []byte("new"), UploadOptions{Tags: []string{"flaky"}}); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("upload of a new artifact: %v", err)
		}
		// A new version adding a tag.
		if _, err := f.s.UploadBytes(ctx, a, []byte("v2"), UploadOptions{Tags: []string{"kept", "flaky"}}); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("upload adding a tag: %v", err)
		}
		// A tag change.
		if _, err := f.s.AddTags(ctx, a, "flaky"); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("add tags: %v", err)
		}
		if after := snapshot(t, f.b); !maps.Equal(before, after) {
			t.Fatalf("failed writes changed the bucket: %v -> %v", sortedKeys(before), sortedKeys(after))
		}
		if _, err := f.s.Stat(ctx, "artifact://s/t/diff"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("aborted artifact: %v", err)
		}
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}})

		// Writes that add no tag write no marker: they succeed through the
		// failing index.
		mustUpload(t, f.s, a, []byte("v3"), UploadOptions{Tags: []string{"kept"}})
		if _, err := f.s.RemoveTags(ctx, a, "kept"); err != nil {
			t.Fatal(err)
		}
		fb.Clear()
		checkTagSearch(t, f.s, Filter{Tags: []string{"kept"}})
		if got := markersIn(t, f.b); len(got) != 0 {
			t.Fatalf("markers left: %v", got)
		}
	})
}

// TestTagIndexOptimistic: without locking no marker is ever deleted; the
// stale ones never produce a wrong result, and Reconcile reports them but
// leaves them.
func TestTagIndexOptimistic(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{DisableLocking: true}, nil)
		const (
			a = "artifact://s/t1/log"
			b = "artifact://s/t2/log"
		)
		mustUpload(t, f.s, a, []byte("a"), UploadOptions{Tags: []string{"flaky"}})
		mustUpload(t, f.s, b, []byte("b"), UploadOptions{Tags: []string{"flaky", "other"}})
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, a, b)
		if _, err := f.s.RemoveTags(ctx, a, "flaky"); err != nil {
			t.Fatal(err)
		}
		if err := f.s.Delete(ctx, b); err != nil {
			t.Fatal(err)
		}
		if got := markersIn(t, f.b); !slices.Equal(got, []string{"flaky " + a, "flaky " + b, "other " + b}) {
			t.Fatalf("markers: %v", got)
		}
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}})
		checkTagSearch(t, f.s, Filter{Tags: []string{"other"}})
		rep, err := f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil || len(rep.StaleTagMarkers) != 3 || rep.TagMarkersDeleted != 0 || len(rep.MissingTagMarkers) != 0 {
			t.Fatalf("reconcile without locks: %+v, %v", rep, err)
		}
		if got := markersIn(t, f.b); len(got) != 3 {
			t.Fatalf("markers deleted without locks: %v", got)
		}
		// The tag comes back: the stale marker is live again.
		if _, err := f.s.AddTags(ctx, a, "flaky"); err != nil {
			t.Fatal(err)
		}
		checkTagSearch(t, f.s, Filter{Tags: []string{"flaky"}}, a)
	})
}

// TestTagSearchReadsOnlyCandidates: a search by tag lists the tag's
// markers and reads only the manifests they name, on a Store that has seen
// no manifest (a fresh process).
func TestTagSearchReadsOnlyCandidates(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{}, nil)
	var want []string
	for i := range 40 {
		u := fmt.Sprintf("artifact://s%d/t%02d/log", i%4, i)
		tags := []string{"all"}
		if i%10 == 3 {
			tags = append(tags, "rare")
			want = append(want, u)
		}
		mustUpload(t, f.s, u, []byte("x"), UploadOptions{Tags: tags})
	}
	slices.Sort(want)
	fb := backendtest.NewFaulty(f.b)
	cold := newFixtureOn(t, fb, f.locker, Config{}, nil).s
	fb.Clear()
	mds, err := cold.Search(ctx, Filter{Tags: []string{"rare"}})
	if err != nil || !slices.Equal(uris(t, mds), want) {
		t.Fatalf("search: %v, %v; want %v", uris(t, mds), err, want)
	}
	// Besides the catalog's log listing and root read (there is no
	// catalog here: the search falls back to the tag index).
	if gets, lists := fb.Calls(backendtest.OpGet), fb.Calls(backendtest.OpList); gets != len(want)+1 || lists != 2 {
		t.Fatalf("search by tag made %d Gets and %d Lists, want %d and 2", gets, lists, len(want)+1)
	}
	// Two tags: both listed, only the intersection read; the spec narrows
	// the listings.
	fb.Clear()
	mds, err = cold.Search(ctx, Filter{Spec: "s1", Tags: []string{"rare", "all"}})
	if err != nil || !slices.Equal(uris(t, mds), []string{"artifact://s1/t13/log", "artifact://s1/t33/log"}) {
		t.Fatalf("search: %v, %v", uris(t, mds), err)
	}
	if gets := fb.Calls(backendtest.OpGet); gets != 2 {
		t.Fatalf("search by two tags made %d Gets, want 2", gets)
	}
	// Many candidates: the manifests are listed instead, and those cached
	// (with the listed ETag) are not read.
	cold.indexReadLimit = 5
	if _, err := cold.Search(ctx, Filter{Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	fb.Clear()
	mds, err = cold.Search(ctx, Filter{Tags: []string{"all"}})
	if err != nil || len(mds) != 40 {
		t.Fatalf("search of a common tag: %d, %v", len(mds), err)
	}
	if gets := fb.Calls(backendtest.OpGet); gets != 1 { // the catalog's root (none)
		t.Fatalf("search of a common tag, warm: %d Gets, want 1", gets)
	}
	checkTagSearch(t, cold, Filter{Type: "log", Tags: []string{"rare"}}, want...)
}

// TestTagIndexBuiltByReconcile: a bucket whose manifests predate the index
// (no markers, no mark of a complete index) is searched by a full walk,
// exactly, until Reconcile with Apply builds the index.
func TestTagIndexBuiltByReconcile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{}, nil)
	const a = "artifact://s/t/log"
	mustUpload(t, f.s, a, []byte("a"), UploadOptions{Tags: []string{"flaky"}})
	mustUpload(t, f.s, "artifact://s/t/diff", []byte("b"), UploadOptions{})
	// Make it an old bucket: no index at all.
	for _, k := range backendtest.Keys(t, f.b, indexRoot) {
		if err := f.b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	fb := backendtest.NewFaulty(f.b)
	old := newFixtureOn(t, fb, f.locker, Config{}, nil)
	if _, err := f.b.Stat(ctx, tagIndexReadyKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("New marked a bucket with manifests complete: %v", err)
	}
	if old.logs.messages("store: the bucket's tag index is not built; searches by tag read every manifest until Reconcile with Apply builds it") != 1 {
		t.Fatal("no warning about the missing index")
	}
	checkTagSearch(t, old.s, Filter{Tags: []string{"flaky"}}, a)

	rep, err := old.s.Reconcile(ctx, ReconcileOptions{})
	if err != nil || len(rep.MissingTagMarkers) != 1 || rep.TagIndexReady {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	rep, err = old.s.Reconcile(ctx, ReconcileOptions{Apply: true})
	if err != nil || rep.TagMarkersCreated != 1 || !rep.TagIndexReady {
		t.Fatalf("apply: %+v, %v", rep, err)
	}
	fresh := newFixtureOn(t, fb, f.locker, Config{}, nil).s
	fb.Clear()
	mds, err := fresh.Search(ctx, Filter{Tags: []string{"flaky"}})
	if err != nil || !slices.Equal(uris(t, mds), []string{a}) {
		t.Fatalf("search through the built index: %v, %v", uris(t, mds), err)
	}
	if gets := fb.Calls(backendtest.OpGet); gets != 2 { // the catalog's root (none) and the manifest
		t.Fatalf("search through the built index: %d Gets, want 2", gets)
	}
}

// TestTagIndexConcurrentWriters: writers adding and removing the same tags
// of the same artifacts at once, and uploading, leave the tag index equal
// to the manifests' tags (with locking, a marker is deleted only under the
// lock, after the commit that removed its tag).
func TestTagIndexConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{}, nil)
	other := newFixtureOn(t, f.b, f.locker, Config{}, nil).s
	arts := []string{"artifact://s/t/log", "artifact://s/t/diff"}
	for _, a := range arts {
		mustUpload(t, f.s, a, []byte("v0"), UploadOptions{})
	}
	tags := []string{"t0", "t1", "t2/x"}
	var wg sync.WaitGroup
	errs := make(chan error, 8*30)
	for w := range 8 {
		s := f.s
		if w%2 == 1 {
			s = other
		}
		wg.Go(func() {
			for i := range 30 {
				a, tag := arts[(w+i)%len(arts)], tags[(w*7+i)%len(tags)]
				var err error
				switch (w + i) % 3 {
				case 0:
					_, err = s.AddTags(ctx, a, tag)
				case 1:
					_, err = s.RemoveTags(ctx, a, tag)
				default:
					_, err = s.UploadBytes(ctx, a, content(w, i), UploadOptions{Tags: []string{tag}})
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := markersIn(t, f.b), tagsInManifests(t, f.b); !slices.Equal(got, want) {
		t.Fatalf("markers %v, manifests' tags %v", got, want)
	}
	for _, tag := range tags {
		var want []string
		for _, a := range slices.Sorted(slices.Values(arts)) {
			if slices.Contains(rawManifest(t, f.b, a).Tags, tag) {
				want = append(want, a)
			}
		}
		checkTagSearch(t, f.s, Filter{Tags: []string{tag}}, want...)
	}
}
