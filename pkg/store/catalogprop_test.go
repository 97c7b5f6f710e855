package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/catalog"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// TestCatalogMatchesScan runs random histories (uploads, tag changes,
// prunes, deletes, retention, compactions and reconciles by two Stores,
// with injected faults: lost replies and failures of log entries,
// manifests, roots and segments, log entries left behind as by a crash)
// and checks after every step that Search, its pages, Usage and the
// retention plan answered from the catalog equal what a walk of every
// manifest gives, and that the catalog is in use (never silently
// bypassed) once built.
func TestCatalogMatchesScan(t *testing.T) {
	seeds, steps := 12, 70
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runCatalogHistory(t, uint64(seed), steps) })
	}
}

func runCatalogHistory(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	base := memEnv().newBackend(t)
	fb := backendtest.NewFaulty(base)
	clock := newFakeClock()
	shared := &clockedBackend{Backend: fb, now: clock.Now, written: map[string]time.Time{}}
	l := memEnv().newLocker(t, base, lock.Config{})
	cfg := Config{
		Versioning: true, Now: clock.Now, LockTimeout: 2 * time.Second,
		Catalog: CatalogConfig{SegmentRecords: 3 + rng.IntN(4), CompactEvery: -1},
		// Half the seeds store small contents inside the manifests.
		InlineMaxBytes: []int{-1, 16}[seed%2],
	}
	stores := []*Store{newFixtureOn(t, shared, l, cfg, nil).s, newFixtureOn(t, shared, l, cfg, nil).s}
	var uris []string
	for _, sp := range []string{"a", "b", "c"} {
		for _, tk := range []string{"t1", "t2"} {
			for _, typ := range []string{"diff", "log"} {
				uris = append(uris, fmt.Sprintf("artifact://%s/%s/%s", sp, tk, typ))
			}
		}
	}
	tags := []string{"x", "y", "retain"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	someTags := func() []string {
		var out []string
		for _, tg := range tags {
			if rng.IntN(3) == 0 {
				out = append(out, tg)
			}
		}
		return out
	}
	faults := []func() backendtest.Fault{
		func() backendtest.Fault { // a log entry's reply lost
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.LogPrefix, Times: 1, At: backendtest.After, Err: backendtest.Transient("lost reply")}
		},
		func() backendtest.Fault { // a log entry not written
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.LogPrefix, Err: backendtest.Permanent("refused", backend.ErrPermissionDenied)}
		},
		func() backendtest.Fault { // a commit's reply lost
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, At: backendtest.After, Err: backendtest.Transient("lost reply")}
		},
		func() backendtest.Fault { // a commit failing through every retry
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Err: backendtest.Transient("down")}
		},
		func() backendtest.Fault { // the writer dies before removing its entry
			return backendtest.Fault{Op: backendtest.OpDelete, KeyPrefix: catalog.LogPrefix, Err: backendtest.Permanent("crash", backend.ErrPermissionDenied)}
		},
		func() backendtest.Fault { // a compaction's root reply lost
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.RootKey, Times: 1, At: backendtest.After, Err: backendtest.Transient("lost reply")}
		},
		func() backendtest.Fault { // a compaction dying after its segments
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.RootKey, Err: backendtest.Permanent("crash", backend.ErrPermissionDenied)}
		},
		func() backendtest.Fault { // segments failing to write
			return backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.SegmentPrefix, Skip: rng.IntN(2), Err: backendtest.Transient("down")}
		},
		func() backendtest.Fault { // entries and old segments left by a compaction
			return backendtest.Fault{Op: backendtest.OpDelete, KeyPrefix: "_catalog/", Err: backendtest.Permanent("crash", backend.ErrPermissionDenied)}
		},
	}
	built := false
	for step := range steps {
		s := stores[rng.IntN(len(stores))]
		if rng.IntN(3) == 0 {
			fb.Inject(faults[rng.IntN(len(faults))]())
		}
		var what string
		var err error
		other := stores[0]
		if other == s {
			other = stores[1]
		}
		switch op := rng.IntN(15); {
		case op == 12:
			// A compaction runs between an upload's log entry and its
			// commit.
			u := pick(uris)
			what = "upload racing a compaction " + u
			fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Hook: func(context.Context, backendtest.Op, string) {
				rep, err := other.CompactCatalog(ctx)
				t.Logf("  compaction inside: %+v, %v", rep, err)
			}})
			_, err = s.UploadBytes(ctx, u, fmt.Appendf(nil, "r%d", rng.IntN(3)), UploadOptions{Tags: someTags()})
		case op == 13:
			// Writes land between a compaction's reading of the log and its
			// commit of the root.
			what = "compaction racing writes"
			fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: catalog.RootKey, Times: 1, Hook: func(context.Context, backendtest.Op, string) {
				_, err := other.UploadBytes(ctx, pick(uris), []byte("racing"), UploadOptions{Tags: someTags()})
				t.Logf("  upload inside: %v", err)
				_, err = other.AddTags(ctx, pick(uris), "y")
				t.Logf("  add tags inside: %v", err)
			}})
			_, err = s.CompactCatalog(ctx)
			built = built || err == nil
		case op < 4 || op == 14:
			u := pick(uris)
			what = "upload " + u
			_, err = s.UploadBytes(ctx, u, fmt.Appendf(nil, "%d", rng.IntN(3)), UploadOptions{Tags: someTags()})
		case op == 4:
			what = "add tags"
			_, err = s.AddTags(ctx, pick(uris), someTags()...)
		case op == 5:
			what = "remove tags"
			_, err = s.RemoveTags(ctx, pick(uris), someTags()...)
		case op == 6:
			what = "prune"
			_, err = s.PruneVersions(ctx, pick(uris), 1)
		case op == 7:
			what = "delete"
			err = s.Delete(ctx, pick(uris))
		case op == 8:
			what = "cleanup"
			clock.Advance(time.Duration(rng.IntN(10)) * 24 * time.Hour)
			_, err = s.CleanupExpired(ctx, CleanupOptions{})
		case op == 9:
			what = "reconcile"
			clock.Advance(2 * time.Hour)
			_, err = s.Reconcile(ctx, ReconcileOptions{Apply: true})
		default:
			what = "compact"
			var rep CatalogReport
			rep, err = s.CompactCatalog(ctx)
			built = built || err == nil
			_ = rep
		}
		fb.Clear()
		t.Logf("step %d: %s: %v", step, what, err)
		checkCatalog(t, stores[rng.IntN(len(stores))], built)
	}
	// Quiet now: a compaction folds the whole log; past the horizon, the
	// entries of writes that never committed are dropped too.
	clock.Advance(intentHorizon + time.Hour)
	rep, err := stores[0].CompactCatalog(ctx)
	if err != nil {
		t.Fatalf("final compaction: %+v, %v", rep, err)
	}
	if keys := backendtest.Keys(t, base, catalog.LogPrefix); len(keys) != 0 {
		t.Fatalf("log after the final compaction %+v: %v", rep, keys)
	}
	checkCatalog(t, stores[1], true)
}

// checkCatalog compares the catalog's answers with a walk of every
// manifest. With built, the catalog must be in use.
func checkCatalog(t *testing.T, s *Store, built bool) {
	t.Helper()
	ctx := context.Background()
	if built {
		if _, err := s.openView(ctx); err != nil {
			t.Fatalf("the catalog is not in use: %v", err)
		}
	}
	now := s.cfg.Now()
	for _, f := range []Filter{
		{}, {Tags: []string{"x"}}, {Type: "log", Tags: []string{"y"}}, {Tags: []string{"x", "retain"}},
		{CreatedAfter: now.Add(-36 * time.Hour)}, {UpdatedBefore: now.Add(-12 * time.Hour)}, {Task: "t2"},
	} {
		want := scanSearch(t, s, f)
		mds, err := s.Search(ctx, f)
		if err != nil || !slices.Equal(uris(t, mds), want) {
			t.Fatalf("search %+v:\n got %v, %v\nwant %v", f, uris(t, mds), err, want)
		}
		if paged := allPages(t, s, f, 2); !slices.Equal(paged, want) {
			t.Fatalf("pages of %+v:\n got %v\nwant %v", f, paged, want)
		}
	}
	got, err := s.Usage(ctx)
	want, werr := s.walkUsage(ctx)
	if err != nil || werr != nil || !usageEqual(got, want) {
		t.Fatalf("usage:\n got %+v, %v\nwant %+v, %v", got, err, want, werr)
	}
	for _, f := range []Filter{{}, {Type: "diff"}, {Tags: []string{"x"}}} {
		exp, err := s.Expired(ctx, f)
		if want := scanExpired(t, s, f); err != nil || !slices.Equal(versionURIs(exp), want) {
			t.Fatalf("expired %+v:\n got %v, %v\nwant %v", f, versionURIs(exp), err, want)
		}
	}
}
