package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

func TestVerifyAll(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		f := newFixture(t, e, Config{Versioning: true, Compression: true, CompressionMinSize: 64}, nil)
		var all []Metadata
		for i := range 6 {
			for v := range 2 {
				data := bytes.Repeat([]byte(fmt.Sprintf("artifact %d version %d\n", i, v)), 1+i*8)
				all = append(all, mustUpload(t, f.s, fmt.Sprintf("artifact://s/t%d/log", i), data, UploadOptions{}))
			}
		}
		rep, err := f.s.VerifyAll(ctx, VerifyOptions{})
		if err != nil || !rep.OK() || rep.Checked != len(all) {
			t.Fatalf("clean store: %+v, %v", rep, err)
		}

		// Corrupt one blob (compressed), overwrite another (stored as is)
		// with bytes of the right length, delete a third.
		corrupt, flipped, missing := all[9], all[0], all[4]
		if !corrupt.Compressed || flipped.Compressed {
			t.Fatalf("fixture: want a compressed and an uncompressed version: %+v %+v", corrupt, flipped)
		}
		put := func(key string, data []byte) {
			if _, err := f.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		put(corrupt.BlobKey, []byte("not gzip at all"))
		put(flipped.BlobKey, bytes.Repeat([]byte("?"), int(flipped.Size)))
		if err := f.b.Delete(ctx, missing.BlobKey); err != nil {
			t.Fatal(err)
		}
		// And a manifest that is not a valid record.
		put(manifestKey(URI{Spec: "s", Task: "broken", Type: "log"}), []byte("{"))

		rep, err = f.s.VerifyAll(ctx, VerifyOptions{Concurrency: 3})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Checked != len(all) {
			t.Errorf("checked %d, want %d", rep.Checked, len(all))
		}
		if len(rep.Missing) != 1 || rep.Missing[0].URI != missing.URI || rep.Missing[0].BlobKey != missing.BlobKey ||
			!errors.Is(rep.Missing[0].Err, ErrNotFound) || !errors.Is(rep.Missing[0].Err, ErrIntegrity) {
			t.Errorf("missing %+v, want %s", rep.Missing, missing.URI)
		}
		wantCorrupt := []string{"artifact://s/broken/log", flipped.URI, corrupt.URI}
		if len(rep.Corrupt) != len(wantCorrupt) {
			t.Fatalf("corrupt %+v, want %v", rep.Corrupt, wantCorrupt)
		}
		for i, p := range rep.Corrupt {
			if p.URI != wantCorrupt[i] || !errors.Is(p.Err, ErrIntegrity) {
				t.Errorf("corrupt[%d] = %s (%v), want %s", i, p.URI, p.Err, wantCorrupt[i])
			}
		}
		if len(rep.Failed) != 0 {
			t.Errorf("failed %+v", rep.Failed)
		}

		// A filter narrows the check.
		rep, err = f.s.VerifyAll(ctx, VerifyOptions{Filter: Filter{Task: "t2"}})
		if err != nil || rep.Checked != 2 || len(rep.Missing) != 1 || len(rep.Corrupt) != 0 {
			t.Errorf("filtered: %+v, %v", rep, err)
		}
		if _, err := f.s.VerifyAll(ctx, VerifyOptions{Concurrency: -1}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("negative concurrency: %v", err)
		}

		// A cancelled context stops the run with the context's error.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := f.s.VerifyAll(cctx, VerifyOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
	})
}

// TestVerifyAllPrunedMeanwhile: a version pruned between the listing and
// the reading of its blob is not reported missing.
func TestVerifyAllPrunedMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, memEnv(), Config{Versioning: true}, nil)
	const uri = "artifact://s/t/log"
	v1 := mustUpload(t, f.s, uri, []byte("one"), UploadOptions{})
	mustUpload(t, f.s, uri, []byte("two"), UploadOptions{})
	m, _, err := f.s.readManifest(ctx, URI{Spec: "s", Task: "t", Type: "log"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.PruneVersions(ctx, uri, 1); err != nil {
		t.Fatal(err)
	}
	// The stale manifest still lists v1, whose blob is gone.
	still, err := f.s.stillReferenced(ctx, m.artifactURI(), &m.Versions[0])
	if err != nil || still {
		t.Fatalf("stillReferenced(pruned %s) = %v, %v", v1.URI, still, err)
	}
	rep, err := f.s.VerifyAll(ctx, VerifyOptions{})
	if err != nil || !rep.OK() || rep.Checked != 1 {
		t.Fatalf("%+v, %v", rep, err)
	}
}

// TestListingReusesCachedManifests: Search and the bulk operations read a
// manifest only when the ETag its listing reports is not the one cached.
func TestListingReusesCachedManifests(t *testing.T) {
	ctx := context.Background()
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), Config{}, func(b backend.Backend) backend.Backend {
		fb = backendtest.NewFaulty(b)
		return fb
	})
	for i := range 5 {
		mustUpload(t, f.s, fmt.Sprintf("artifact://s/t%d/log", i), []byte("x"), UploadOptions{Tags: []string{"a"}})
	}
	gets := func() int { return fb.Calls(backendtest.OpGet) }
	before := gets()
	// A search without tags walks the manifests (a search by tag reads
	// the candidates its index names: TestTagSearchReadsOnlyCandidates).
	mds, err := f.s.Search(ctx, Filter{Spec: "s"})
	if err != nil || len(mds) != 5 {
		t.Fatalf("search: %d, %v", len(mds), err)
	}
	if n := gets() - before; n != 0 {
		t.Errorf("search of cached manifests made %d Gets", n)
	}
	// Changed behind the store's back: read again, new state seen.
	other := newFixtureOn(t, f.b, f.locker, Config{}, nil)
	if _, err := other.s.SetTags(ctx, "artifact://s/t3/log"); err != nil {
		t.Fatal(err)
	}
	before = gets()
	mds, err = f.s.Search(ctx, Filter{Spec: "s"})
	if err != nil || len(mds) != 5 || len(mds[3].Tags) != 0 {
		t.Fatalf("search after a change: %d, %v", len(mds), err)
	}
	if n := gets() - before; n != 1 {
		t.Errorf("search after one change made %d Gets, want 1", n)
	}
	// A failing listing fails the operation.
	fb.Inject(backendtest.Fault{Op: backendtest.OpList, Err: backendtest.Permanent("list down", ErrPermissionDenied), At: backendtest.Midway, Offset: 2})
	if _, err := f.s.Search(ctx, Filter{}); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("search with a failing listing: %v", err)
	}
	if _, err := f.s.Usage(ctx); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("usage with a failing listing: %v", err)
	}
}
