package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

// TestReconcileKilledWriter: a writer "killed" between its blob upload and
// its commit (the manifest Put never succeeds, so the blob is kept for
// reconcile) leaves an orphan that Reconcile finds only after the grace
// period, and deletes only when applying.
func TestReconcileKilledWriter(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		var fb *backendtest.Faulty
		f := newFixture(t, e, Config{Versioning: true, Quota: QuotaConfig{MaxBytes: 1 << 30}}, func(b backend.Backend) backend.Backend {
			fb = backendtest.NewFaulty(b)
			return fb
		})
		// Backends stamp objects with the real time; the store's clock
		// starts there.
		setClock(f.clock, time.Now())
		keep := mustUpload(t, f.s, "artifact://s/t/log", []byte("committed"), UploadOptions{})
		before := backendtest.Keys(t, f.b, blobRoot)

		fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: manifestRoot, Err: backendtest.Transient("writer killed")})
		_, err := f.s.UploadBytes(ctx, "artifact://s/t/log", []byte("never committed"), UploadOptions{})
		if err == nil {
			t.Fatal("upload succeeded through a failing manifest Put")
		}
		fb.Clear()
		var orphan string
		for _, k := range backendtest.Keys(t, f.b, blobRoot) {
			if !slices.Contains(before, k) {
				orphan = k
			}
		}
		if orphan == "" {
			t.Fatal("the killed writer left no blob (the test needs one)")
		}

		rep, err := f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.OrphanBlobs) != 0 || rep.Pending != 1 || rep.Deleted != 0 {
			t.Fatalf("within the grace period: %+v", rep)
		}

		f.clock.Advance(DefaultReconcileGracePeriod + time.Minute)
		snap := snapshot(t, f.b)
		rep, err = f.s.Reconcile(ctx, ReconcileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.OrphanBlobs, []string{orphan}) || rep.OrphanBytes != int64(len("never committed")) ||
			rep.Deleted != 0 || rep.Applied || len(rep.MissingBlobs) != 0 || rep.Manifests != 1 || rep.Blobs != 2 {
			t.Fatalf("dry run after the grace period: %+v", rep)
		}
		if after := snapshot(t, f.b); len(after) != len(snap) {
			t.Fatalf("dry run changed the backend")
		}

		rep, err = f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.OrphanBlobs, []string{orphan}) || rep.Deleted != 1 || !rep.UsageReset {
			t.Fatalf("apply: %+v", rep)
		}
		if _, err := f.b.Stat(ctx, orphan); !errors.Is(err, ErrNotFound) {
			t.Errorf("orphan still there: %v", err)
		}
		if data, _ := mustDownload(t, f.s, keep.URI); string(data) != "committed" {
			t.Errorf("committed artifact damaged: %q", data)
		}
		if c := counterTotal(t, f.s); c != rep.Usage || c.StoredBytes != keep.StoredSize {
			t.Errorf("counter %+v after reconcile, usage %+v", c, rep.Usage)
		}
		rep, err = f.s.Reconcile(ctx, ReconcileOptions{Apply: true})
		if err != nil || len(rep.OrphanBlobs) != 0 || rep.Deleted != 0 {
			t.Errorf("second reconcile: %+v, %v", rep, err)
		}
	})
}

// TestReconcileFindings covers the other findings: a blob put directly
// (a writer killed right after its blob upload), a missing blob, a stray
// key, an invalid manifest whose blobs are kept, and a custom grace period.
func TestReconcileFindings(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Versioning: true}, nil)
	setClock(f.clock, time.Now())
	v1 := mustUpload(t, f.s, "artifact://s/t/diff", []byte("one"), UploadOptions{})
	mustUpload(t, f.s, "artifact://s/t/diff", []byte("two"), UploadOptions{})
	gone := mustUpload(t, f.s, "artifact://s/u/log", []byte("lost"), UploadOptions{})
	broken := mustUpload(t, f.s, "artifact://s/broken/test", []byte("x"), UploadOptions{})
	put := func(key, data string) {
		if _, err := f.b.Put(ctx, key, strings.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	orphan := blobPrefix(URI{Spec: "s", Task: "t", Type: "diff"}) + f.s.newID()
	put(orphan, "orphan!")
	put(blobRoot+"stray", "?")
	put(manifestKey(URI{Spec: "s", Task: "broken", Type: "test"}), "{not json")
	put(blobPrefix(URI{Spec: "s", Task: "broken", Type: "test"})+f.s.newID(), "unreferenced, but its manifest is broken")
	if err := f.b.Delete(ctx, gone.BlobKey); err != nil {
		t.Fatal(err)
	}

	f.clock.Advance(10 * time.Minute)
	rep, err := f.s.Reconcile(ctx, ReconcileOptions{GracePeriod: 5 * time.Minute, Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.OrphanBlobs, []string{orphan}) || rep.Deleted != 1 || rep.DeletedBytes != 7 {
		t.Errorf("orphans %v, deleted %d (%d bytes)", rep.OrphanBlobs, rep.Deleted, rep.DeletedBytes)
	}
	if len(rep.MissingBlobs) != 1 || rep.MissingBlobs[0] != (MissingBlob{URI: gone.URI, Version: 1, BlobKey: gone.BlobKey}) {
		t.Errorf("missing %+v, want %s", rep.MissingBlobs, gone.URI)
	}
	if !slices.Equal(rep.Strays, []string{blobRoot + "stray"}) {
		t.Errorf("strays %v", rep.Strays)
	}
	if !slices.Equal(rep.InvalidManifests, []string{"artifact://s/broken/test"}) {
		t.Errorf("invalid manifests %v", rep.InvalidManifests)
	}
	if _, err := f.b.Stat(ctx, broken.BlobKey); err != nil {
		t.Errorf("blob of an invalid manifest deleted: %v", err)
	}
	if _, err := f.b.Stat(ctx, blobRoot+"stray"); err != nil {
		t.Errorf("stray deleted: %v", err)
	}
	if _, err := f.b.Stat(ctx, v1.BlobKey); err != nil {
		t.Errorf("referenced blob deleted: %v", err)
	}
	if _, err := f.s.Reconcile(ctx, ReconcileOptions{GracePeriod: -time.Second}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative grace period: %v", err)
	}
}

// TestReconcileRecheck: a blob that a commit references after the first
// read of the manifests is not reclaimed, with or without Apply.
func TestReconcileRecheck(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{}, nil)
	setClock(f.clock, time.Now())
	md := mustUpload(t, f.s, "artifact://s/t/log", []byte("x"), UploadOptions{})
	u := URI{Spec: "s", Task: "t", Type: "log"}
	for _, apply := range []bool{false, true} {
		found, err := f.s.reclaimOrphans(ctx, u, []orphan{{key: md.BlobKey, uri: u}, {key: blobPrefix(u) + "other", uri: u}}, apply)
		if err != nil || len(found) != 1 || found[0].key != blobPrefix(u)+"other" {
			t.Errorf("reclaimOrphans(apply=%v) = %+v, %v; want only the unreferenced key", apply, found, err)
		}
	}
	if _, err := f.b.Stat(ctx, md.BlobKey); err != nil {
		t.Errorf("referenced blob: %v", err)
	}
	if m := rawManifest(t, f.b, "artifact://s/t/log"); !slices.Equal(m.Reclaimed, []string{blobPrefix(u) + "other"}) {
		t.Errorf("reclaimed %v", m.Reclaimed)
	}
}

// TestReconcileTombstones: a Delete leaves a tombstone that readers see as
// not found and an upload replaces; Reconcile removes it only once it is
// older than the grace period, and never one that records reclaimed blobs
// (it is what stops a paused upload from committing one of them).
func TestReconcileTombstones(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{}, nil)
		setClock(f.clock, time.Now())
		for _, uri := range []string{"artifact://s/t/log", "artifact://s/t/diff", "artifact://s/t/test"} {
			mustUpload(t, f.s, uri, []byte("x"+uri), UploadOptions{})
			if err := f.s.Delete(ctx, uri); err != nil {
				t.Fatal(err)
			}
		}
		if m := rawManifest(t, f.b, "artifact://s/t/log"); !m.Deleted || len(m.Versions) != 0 {
			t.Fatalf("after Delete the manifest is %+v, want a tombstone", m.manifestHeader)
		}
		// An upload replaces a tombstone.
		md := mustUpload(t, f.s, "artifact://s/t/test", []byte("again"), UploadOptions{})
		if got, _ := mustDownload(t, f.s, md.URI); string(got) != "again" {
			t.Fatalf("download after re-upload: %q", got)
		}
		// An orphan of a deleted artifact: reclaiming it fences the
		// tombstone, which must then stay.
		u := URI{Spec: "s", Task: "t", Type: "diff"}
		orphanKey := blobPrefix(u) + "01ORPHAN"
		if _, err := f.s.b.Put(ctx, orphanKey, strings.NewReader("o"), 1, backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}

		rep, err := f.s.Reconcile(ctx, ReconcileOptions{GracePeriod: time.Minute, Apply: true})
		if err != nil || rep.Tombstones != 2 || rep.TombstonesRemoved != 0 || rep.Manifests != 1 {
			t.Fatalf("young tombstones: %+v, %v", rep, err)
		}
		f.clock.Advance(2 * time.Minute)
		rep, err = f.s.Reconcile(ctx, ReconcileOptions{GracePeriod: time.Minute, Apply: true})
		if err != nil || rep.Deleted != 1 || rep.TombstonesRemoved != 1 {
			t.Fatalf("old tombstones: %+v, %v", rep, err)
		}
		if _, err := f.b.Stat(ctx, "manifests/s/t/log.json"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old tombstone not removed: %v", err)
		}
		if m := rawManifest(t, f.b, "artifact://s/t/diff"); !m.Deleted || !slices.Equal(m.Reclaimed, []string{orphanKey}) {
			t.Errorf("fenced tombstone %+v", m.manifestHeader)
		}
		f.clock.Advance(2 * time.Minute)
		if rep, err = f.s.Reconcile(ctx, ReconcileOptions{GracePeriod: time.Minute, Apply: true}); err != nil || rep.TombstonesRemoved != 0 || rep.Tombstones != 1 {
			t.Errorf("a fenced tombstone was removed: %+v, %v", rep, err)
		}
		for _, uri := range []string{"artifact://s/t/log", "artifact://s/t/diff"} {
			if _, err := f.s.Stat(ctx, uri); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat %s: %v", uri, err)
			}
		}
		if got, _ := mustDownload(t, f.s, md.URI); string(got) != "again" {
			t.Fatalf("live artifact after reconcile: %q", got)
		}
	})
}
