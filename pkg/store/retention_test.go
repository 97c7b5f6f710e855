package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
)

func TestRetentionConfig(t *testing.T) {
	r := RetentionConfig{}.WithDefaults()
	for typ, want := range map[string]time.Duration{
		TypeDiff: 30 * day, TypeLog: 7 * day, TypeTest: 14 * day, "custom": RetainForever,
	} {
		if got := r.Period(typ); got != want {
			t.Errorf("default Period(%q) = %v, want %v", typ, got, want)
		}
	}
	if r.ExemptTag != "retain" {
		t.Errorf("default ExemptTag = %q", r.ExemptTag)
	}

	periods := map[string]time.Duration{TypeLog: day, "bench": 0, "trace": 2 * day}
	orig := maps.Clone(periods)
	r = RetentionConfig{Periods: periods, Default: 3 * day, ExemptTag: "keep"}.WithDefaults()
	for typ, want := range map[string]time.Duration{
		TypeDiff: 30 * day, TypeLog: day, TypeTest: 14 * day, "trace": 2 * day, "bench": 3 * day, "other": 3 * day,
	} {
		if got := r.Period(typ); got != want {
			t.Errorf("Period(%q) = %v, want %v", typ, got, want)
		}
	}
	if !maps.Equal(periods, orig) {
		t.Errorf("WithDefaults modified the caller's map: %v", periods)
	}

	bad := map[string]RetentionConfig{
		"negative period":  {Periods: map[string]time.Duration{TypeLog: -time.Second}},
		"negative default": {Default: -day},
		"bad type":         {Periods: map[string]time.Duration{"../x": day}},
		"bad exempt tag":   {ExemptTag: "no spaces"},
	}
	for name, rc := range bad {
		if err := rc.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, rc)
		}
		if err := (Config{Retention: rc}).Validate(); err == nil {
			t.Errorf("%s: Config.Validate accepted it", name)
		}
	}
	if err := (RetentionConfig{Periods: map[string]time.Duration{TypeLog: RetainForever}}).Validate(); err != nil {
		t.Errorf("RetainForever refused: %v", err)
	}
	// New refuses a bad retention config with ErrInvalidArgument.
	_, err := New(context.Background(), memEnv().newBackend(t), nil, Config{DisableLocking: true, Retention: bad["negative period"]})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("New with a negative period: %v, want ErrInvalidArgument", err)
	}
}

// expiredURIs lists the URIs Expired returns.
func expiredURIs(t *testing.T, s *Store, f Filter) []string {
	t.Helper()
	mds, err := s.Expired(context.Background(), f)
	if err != nil {
		t.Fatalf("Expired: %v", err)
	}
	out := []string{}
	for _, md := range mds {
		out = append(out, md.URI)
	}
	return out
}

func TestRetentionPerType(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Retention: RetentionConfig{Periods: map[string]time.Duration{"trace": 3 * day}}}, nil)
		uris := []string{
			"artifact://s/t/diff", "artifact://s/t/log", "artifact://s/t/test",
			"artifact://s/t/trace", "artifact://s/t/bench", "artifact://s/kept/log",
		}
		for _, u := range uris {
			opts := UploadOptions{}
			if u == "artifact://s/kept/log" {
				opts.Tags = []string{"retain"}
			}
			mustUpload(t, f.s, u, []byte("content of "+u), opts)
		}
		steps := []struct {
			advance time.Duration
			want    []string
		}{
			{0, []string{}},
			{3 * day, []string{}}, // exactly the period: not older than it
			{time.Nanosecond, []string{"artifact://s/t/trace?version=1"}},
			{7*day - 3*day - time.Nanosecond, []string{"artifact://s/t/trace?version=1"}},
			{time.Nanosecond, []string{"artifact://s/t/log?version=1", "artifact://s/t/trace?version=1"}},
			{7 * day, []string{"artifact://s/t/log?version=1", "artifact://s/t/test?version=1", "artifact://s/t/trace?version=1"}},
			{16 * day, []string{"artifact://s/t/diff?version=1", "artifact://s/t/log?version=1", "artifact://s/t/test?version=1", "artifact://s/t/trace?version=1"}},
			// Custom types without a period and exempt artifacts never expire.
			{100 * 365 * day, []string{"artifact://s/t/diff?version=1", "artifact://s/t/log?version=1", "artifact://s/t/test?version=1", "artifact://s/t/trace?version=1"}},
		}
		var elapsed time.Duration
		for _, st := range steps {
			f.clock.Advance(st.advance)
			elapsed += st.advance
			if got := expiredURIs(t, f.s, Filter{}); !slices.Equal(got, st.want) {
				t.Fatalf("after %v: Expired = %v, want %v", elapsed, got, st.want)
			}
		}
		// Filters narrow the listing.
		if got := expiredURIs(t, f.s, Filter{Type: TypeLog}); !slices.Equal(got, []string{"artifact://s/t/log?version=1"}) {
			t.Errorf("Expired(type log) = %v", got)
		}
		if _, err := f.s.Expired(ctx, Filter{Spec: ".."}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Expired with a bad filter: %v", err)
		}

		rep, err := f.s.CleanupExpired(ctx, CleanupOptions{})
		if err != nil {
			t.Fatalf("CleanupExpired: %v", err)
		}
		if rep.Artifacts != 4 || rep.Versions != 4 || len(rep.Deleted) != 4 || rep.Failed != 0 {
			t.Fatalf("report %+v", rep)
		}
		var wantBytes int64
		for _, u := range uris[:4] {
			wantBytes += int64(len("content of " + u))
		}
		if rep.Bytes != wantBytes || rep.StoredBytes != wantBytes {
			t.Errorf("report bytes %d stored %d, want %d", rep.Bytes, rep.StoredBytes, wantBytes)
		}
		for _, u := range uris {
			ok, err := f.s.Exists(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if want := !slices.Contains(uris[:4], u); ok != want {
				t.Errorf("after cleanup Exists(%s) = %v, want %v", u, ok, want)
			}
		}
		// The blobs of the deleted artifacts are gone, the others kept.
		if got := len(backendtest.Keys(t, f.b, blobRoot)); got != 2 {
			t.Errorf("%d blobs left, want 2: %v", got, backendtest.Keys(t, f.b, blobRoot))
		}
		// One Info record per deleted version, and a summary.
		if n := f.logs.messages("store: cleanup deleted expired version"); n != 4 {
			t.Errorf("%d deletion records logged, want 4", n)
		}
		if n := f.logs.messages("store: cleanup of expired artifacts done"); n != 1 {
			t.Errorf("%d summaries logged, want 1", n)
		}
		// A second run finds nothing.
		rep, err = f.s.CleanupExpired(ctx, CleanupOptions{})
		if err != nil || rep.Versions != 0 {
			t.Errorf("second cleanup: %+v, %v", rep, err)
		}
	})
}

func TestRetentionVersioned(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Versioning: true}, nil)
		const uri = "artifact://s/t/log"
		v1 := mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
		f.clock.Advance(3 * day)
		mustUpload(t, f.s, uri, []byte("v2"), UploadOptions{})
		f.clock.Advance(2 * day)
		v3 := mustUpload(t, f.s, uri, []byte("v3 content"), UploadOptions{})

		f.clock.Advance(2*day + time.Second) // v1 is 7d+1s old, v2 4d, v3 2d
		if got := expiredURIs(t, f.s, Filter{}); !slices.Equal(got, []string{uri + "?version=1"}) {
			t.Fatalf("Expired = %v", got)
		}
		rep, err := f.s.CleanupExpired(ctx, CleanupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Artifacts != 0 || rep.Versions != 1 || rep.Bytes != 2 || rep.Deleted[0].URI != uri+"?version=1" {
			t.Fatalf("report %+v", rep)
		}
		vs, err := f.s.Versions(ctx, uri)
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 3 {
			t.Fatalf("versions after cleanup: %+v, %v", vs, err)
		}
		if _, err := f.b.Stat(ctx, v1.BlobKey); !errors.Is(err, ErrNotFound) {
			t.Errorf("blob of v1: %v, want not found", err)
		}

		// Filter by creation time: only versions created before the bound.
		f.clock.Advance(6 * day) // v2 10d+, v3 8d+: both expired
		got := expiredURIs(t, f.s, Filter{CreatedBefore: v3.CreatedAt})
		if !slices.Equal(got, []string{uri + "?version=2"}) {
			t.Fatalf("Expired(created before v3) = %v", got)
		}
		rep, err = f.s.CleanupExpired(ctx, CleanupOptions{})
		if err != nil || rep.Artifacts != 1 || rep.Versions != 2 {
			t.Fatalf("cleanup of all versions: %+v, %v", rep, err)
		}
		if ok, _ := f.s.Exists(ctx, uri); ok {
			t.Error("artifact still exists after all its versions expired")
		}
		if keys := backendtest.Keys(t, f.b, blobRoot); len(keys) != 0 {
			t.Errorf("blobs left: %v", keys)
		}
	})
}

func TestCleanupDryRunChangesNothing(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Versioning: true, Compression: true, CompressionMinSize: 16}, nil)
		for i := range 3 {
			mustUpload(t, f.s, "artifact://s/t/log", content(1, i), UploadOptions{})
			mustUpload(t, f.s, "artifact://s/t/diff", content(2, i), UploadOptions{})
			f.clock.Advance(3 * day)
		}
		mustUpload(t, f.s, "artifact://s/t2/log", content(3, 0), UploadOptions{})
		f.clock.Advance(5 * day)
		before := snapshot(t, f.b)
		dry, err := f.s.CleanupExpired(ctx, CleanupOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, f.b); !maps.Equal(before, after) {
			t.Fatalf("dry run changed the backend:\nbefore %v\nafter  %v", sortedKeys(before), sortedKeys(after))
		}
		if !dry.DryRun || dry.Versions == 0 {
			t.Fatalf("dry run report %+v", dry)
		}
		if n := f.logs.messages("store: cleanup deleted expired version"); n != dry.Versions {
			t.Errorf("dry run logged %d versions, reported %d", n, dry.Versions)
		}
		real, err := f.s.CleanupExpired(ctx, CleanupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if real.Artifacts != dry.Artifacts || real.Versions != dry.Versions || real.Bytes != dry.Bytes ||
			real.StoredBytes != dry.StoredBytes || len(real.Deleted) != len(dry.Deleted) {
			t.Fatalf("real run %+v differs from dry run %+v", real, dry)
		}
		for i := range real.Deleted {
			if real.Deleted[i].URI != dry.Deleted[i].URI || real.Deleted[i].SHA256 != dry.Deleted[i].SHA256 {
				t.Errorf("deleted[%d]: %s, dry run said %s", i, real.Deleted[i].URI, dry.Deleted[i].URI)
			}
		}
	})
}

// TestCleanupRacesUpload pauses a cleanup after it decided that an
// artifact expired and before it takes the artifact's lock; a fresh upload
// of the artifact commits meanwhile. The cleanup must not delete it.
func TestCleanupRacesUpload(t *testing.T) {
	for _, versioning := range []bool{false, true} {
		name := map[bool]string{false: "replace", true: "versioned"}[versioning]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e := memEnv()
			b := e.newBackend(t)
			g := newLockGate(e.newLocker(t, b, lock.Config{}))
			f := newFixtureOn(t, b, g, Config{Versioning: versioning}, nil)
			const uri = "artifact://s/t/log"
			old := mustUpload(t, f.s, uri, []byte("old"), UploadOptions{})
			f.clock.Advance(8 * day)

			g.arm()
			type result struct {
				rep CleanupReport
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := f.s.CleanupExpired(ctx, CleanupOptions{})
				done <- result{rep, err}
			}()
			waitFor(t, g.entered, "the cleanup to reach the lock")
			fresh := mustUpload(t, f.s, uri, []byte("fresh"), UploadOptions{})
			close(g.release)
			res := <-done
			if res.err != nil {
				t.Fatalf("cleanup: %v", res.err)
			}
			data, md := mustDownload(t, f.s, uri)
			if string(data) != "fresh" || md.Version != fresh.Version {
				t.Fatalf("after the race: %q version %d, want the fresh upload (version %d)", data, md.Version, fresh.Version)
			}
			if res.rep.Artifacts != 0 {
				t.Errorf("cleanup removed the artifact: %+v", res.rep)
			}
			if versioning {
				// The old version was expired and is gone; the fresh one stays.
				if res.rep.Versions != 1 || res.rep.Deleted[0].Version != old.Version {
					t.Errorf("report %+v, want only version %d", res.rep, old.Version)
				}
				vs, err := f.s.Versions(ctx, uri)
				if err != nil || len(vs) != 1 || vs[0].Version != fresh.Version {
					t.Errorf("versions %+v, %v", vs, err)
				}
			} else if res.rep.Versions != 0 {
				t.Errorf("report %+v, want nothing deleted", res.rep)
			}
		})
	}
}

// TestCleanupOptimisticRace runs without locks: a fresh upload commits
// while the cleanup's manifest Put is in flight; the cleanup's conditional
// Put fails, it re-reads, re-decides and keeps the fresh version.
func TestCleanupOptimisticRace(t *testing.T) {
	ctx := context.Background()
	var g *gate
	f := newFixture(t, memEnv(), Config{Versioning: true, DisableLocking: true}, func(b backend.Backend) backend.Backend {
		g = newGate(b, "put", manifestRoot)
		return g
	})
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
	f.clock.Advance(5 * day)
	mustUpload(t, f.s, uri, []byte("v2"), UploadOptions{})
	f.clock.Advance(3 * day) // v1 expired, v2 not

	g.arm()
	var (
		wg  sync.WaitGroup
		rep CleanupReport
		err error
	)
	wg.Go(func() { rep, err = f.s.CleanupExpired(ctx, CleanupOptions{}) })
	waitFor(t, g.entered, "the cleanup's manifest Put")
	v3 := mustUpload(t, f.s, uri, []byte("v3"), UploadOptions{})
	close(g.release)
	wg.Wait()
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if rep.Versions != 1 || rep.Deleted[0].Version != 1 {
		t.Fatalf("report %+v", rep)
	}
	vs, err := f.s.Versions(ctx, uri)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != v3.Version {
		t.Fatalf("versions %+v, %v", vs, err)
	}
}

// TestCleanupConcurrentWithUploads runs cleanups while writers keep
// uploading with the clock moving: no acknowledged upload younger than the
// period may be lost.
func TestCleanupConcurrentWithUploads(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Versioning: true}, nil)
	const writers, uploads = 4, 15
	type ack struct {
		md Metadata
	}
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range uploads {
				md, err := f.s.UploadBytes(ctx, fmt.Sprintf("artifact://s/t%d/log", w%2), content(w, i), UploadOptions{})
				if err != nil {
					t.Errorf("upload: %v", err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{md})
				mu.Unlock()
				f.clock.Advance(day)
			}
		})
	}
	stop := make(chan struct{})
	var cleaned sync.WaitGroup
	cleaned.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.s.CleanupExpired(ctx, CleanupOptions{}); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	cleaned.Wait()
	now := f.clock.Now()
	for _, a := range acks {
		if now.Sub(a.md.CreatedAt) > 7*day {
			continue // may have been cleaned
		}
		ok, err := f.s.Exists(ctx, a.md.URI)
		if err != nil || !ok {
			t.Errorf("unexpired version %s (created %v, now %v) lost: %v", a.md.URI, a.md.CreatedAt, now, err)
		}
	}
}
