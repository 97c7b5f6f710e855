package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/catalog"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// requestLog records the backend requests a Store makes, as "Op prefix"
// where prefix is the key's first path segment (the catalog's log, a
// manifest, a blob).
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func watchRequests(fb *backendtest.Faulty) *requestLog {
	rl := &requestLog{}
	for _, op := range []backendtest.Op{backendtest.OpPut, backendtest.OpGet, backendtest.OpStat, backendtest.OpDelete, backendtest.OpList} {
		fb.Inject(backendtest.Fault{Op: op, Hook: func(_ context.Context, op backendtest.Op, key string) {
			area, _, _ := strings.Cut(key, "/")
			if area == "_catalog" {
				area = strings.Join(strings.SplitN(key, "/", 3)[:2], "/")
			}
			rl.mu.Lock()
			rl.reqs = append(rl.reqs, string(op)+" "+area)
			rl.mu.Unlock()
		}})
	}
	return rl
}

// take returns the requests since the last take, sorted.
func (rl *requestLog) take() []string {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	out := slices.Sorted(slices.Values(rl.reqs))
	rl.reqs = nil
	return out
}

func newInlineFixture(t *testing.T, cfg Config) (*fixture, *backendtest.Faulty) {
	t.Helper()
	if cfg.InlineMaxBytes == 0 {
		cfg.InlineMaxBytes = DefaultInlineMaxBytes
	}
	var fb *backendtest.Faulty
	f := newFixture(t, memEnv(), cfg, func(b backend.Backend) backend.Backend {
		fb = backendtest.NewFaulty(b)
		return fb
	})
	return f, fb
}

// TestInlineSmallArtifactRoundTrips: a small content travels inside the
// manifest: a new artifact is one manifest Put (and its catalog entry), a
// new version by the same Store too, a read of the current version (and
// of a known version) one Get; nothing goes under blobs/.
func TestInlineSmallArtifactRoundTrips(t *testing.T) {
	ctx := context.Background()
	f, fb := newInlineFixture(t, Config{Versioning: true})
	rl := watchRequests(fb)
	const uri = "artifact://s/t/log"
	data := benchContent(4 << 10)

	md := mustUpload(t, f.s, uri, data, UploadOptions{})
	if got, want := rl.take(), []string{"Put _catalog/log", "Put manifests"}; !slices.Equal(got, want) {
		t.Errorf("new small artifact: requests %v, want %v", got, want)
	}
	if md.BlobKey != "" || md.Size != int64(len(data)) || md.StoredSize != int64(len(data)) || md.SHA256 != sha(data) {
		t.Errorf("metadata %+v", md)
	}
	m := rawManifest(t, f.b, uri)
	if m.Schema != schemaInline || m.Versions[0].Blob != "" || !bytes.Equal(m.Versions[0].Inline, data) {
		t.Errorf("manifest: schema %d, version %+v", m.Schema, m.Versions[0])
	}
	if keys := backendtest.Keys(t, f.b, "blobs/"); len(keys) != 0 {
		t.Errorf("blobs written: %v", keys)
	}

	got, dmd := mustDownload(t, f.s, uri)
	if !bytes.Equal(got, data) || dmd.Version != 1 {
		t.Errorf("download: %d bytes, version %d", len(got), dmd.Version)
	}
	if got, want := rl.take(), []string{"Get manifests"}; !slices.Equal(got, want) {
		t.Errorf("download: requests %v, want %v", got, want)
	}
	rc, err := f.s.OpenVersion(ctx, md)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, data) {
		t.Errorf("OpenVersion: %d bytes", len(got))
	}
	rc.Close()
	if got, want := rl.take(), []string{"Get manifests"}; !slices.Equal(got, want) {
		t.Errorf("OpenVersion: requests %v, want %v", got, want)
	}

	second := append(slices.Clone(data), "one more line\n"...)
	md2 := mustUpload(t, f.s, uri, second, UploadOptions{})
	if got, want := rl.take(), []string{"Put _catalog/log", "Put manifests"}; !slices.Equal(got, want) {
		t.Errorf("new version by the Store that wrote the manifest: requests %v, want %v", got, want)
	}
	if md2.Version != 2 || md2.BlobKey != "" {
		t.Errorf("second version: %+v", md2)
	}
	if err := f.s.VerifyChecksum(ctx, uri); err != nil {
		t.Errorf("VerifyChecksum: %v", err)
	}
	if got, _ := mustDownload(t, f.s, uri+"?version=1"); !bytes.Equal(got, data) {
		t.Errorf("version 1: %d bytes", len(got))
	}
	rep, err := f.s.VerifyAll(ctx, VerifyOptions{})
	if err != nil || rep.Checked != 2 || len(rep.Corrupt)+len(rep.Missing)+len(rep.Failed) != 0 {
		t.Errorf("VerifyAll: %+v, %v", rep, err)
	}
	// The same content again changes nothing.
	if again := mustUpload(t, f.s, uri, second, UploadOptions{}); again.Version != 2 {
		t.Errorf("same content again: version %d", again.Version)
	}
}

// TestInlineThreshold: content up to InlineMaxBytes of known size goes in
// the manifest; larger content, content of unknown size, and every
// content with InlineMaxBytes negative, in a blob.
func TestInlineThreshold(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		limit  int
		size   int
		stream bool // Upload with backend.SizeUnknown
		inline bool
	}{
		{"at the limit", 100, 100, false, true},
		{"empty", 100, 0, false, true},
		{"over the limit", 100, 101, false, false},
		{"unknown size", 100, 10, true, false},
		{"never", -1, 10, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newInlineFixture(t, Config{InlineMaxBytes: tc.limit})
			data := bytes.Repeat([]byte("x"), tc.size)
			size := int64(tc.size)
			if tc.stream {
				size = backend.SizeUnknown
			}
			md, err := f.s.Upload(ctx, "artifact://s/t/log", bytes.NewReader(data), size, UploadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := md.BlobKey == ""; got != tc.inline {
				t.Errorf("inline = %v, want %v (%+v)", got, tc.inline, md)
			}
			if got, _ := mustDownload(t, f.s, "artifact://s/t/log"); !bytes.Equal(got, data) {
				t.Errorf("download: %q", got)
			}
		})
	}
	t.Run("wrong size", func(t *testing.T) {
		f, _ := newInlineFixture(t, Config{})
		_, err := f.s.Upload(ctx, "artifact://s/t/log", strings.NewReader("short"), 10, UploadOptions{})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("err %v, want ErrInvalidArgument", err)
		}
		if keys := append(backendtest.Keys(t, f.b, "manifests/"), backendtest.Keys(t, f.b, "blobs/")...); len(keys) != 0 {
			t.Errorf("stored: %v", keys)
		}
	})
	t.Run("config", func(t *testing.T) {
		if err := (Config{InlineMaxBytes: MaxInlineBytesLimit + 1}).Validate(); err == nil {
			t.Error("InlineMaxBytes over the limit accepted")
		}
		cfg, err := ConfigFromEnv(func(k string) (string, bool) { return "-1", k == "ARTIFACTSTORE_INLINE_MAX_BYTES" })
		if err != nil || cfg.InlineMaxBytes != -1 {
			t.Errorf("ConfigFromEnv: %d, %v", cfg.InlineMaxBytes, err)
		}
	})
}

// TestInlineSpillKeepsManifestsBounded: versions keep coming; the content
// a manifest holds stays within 4 x InlineMaxBytes, the oldest contents
// move to blobs in the same commit, and every version stays readable; a
// prune and a delete leave no blob behind, Reconcile finds nothing wrong.
func TestInlineSpillKeepsManifestsBounded(t *testing.T) {
	ctx := context.Background()
	const limit = 100
	f, _ := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	const uri = "artifact://s/t/log"
	var contents [][]byte
	for i := range 30 {
		data := fmt.Appendf(nil, "%03d %s", i, strings.Repeat("y", 90+i%10))
		contents = append(contents, data)
		mustUpload(t, f.s, uri, data, UploadOptions{})
		if held := rawManifest(t, f.b, uri).inlineBytes(); held > 4*limit {
			t.Fatalf("after upload %d the manifest holds %d bytes of content", i, held)
		}
	}
	m := rawManifest(t, f.b, uri)
	blobs := m.blobs()
	if len(blobs) == 0 || len(blobs) == len(m.Versions) {
		t.Fatalf("%d of %d versions in blobs", len(blobs), len(m.Versions))
	}
	if got := backendtest.Keys(t, f.b, "blobs/"); !slices.Equal(got, slices.Sorted(slices.Values(blobs))) {
		t.Fatalf("blobs %v, manifest references %v", got, blobs)
	}
	for i, want := range contents {
		if got, _ := mustDownload(t, f.s, fmt.Sprintf("%s?version=%d", uri, i+1)); !bytes.Equal(got, want) {
			t.Fatalf("version %d: %q, want %q", i+1, got, want)
		}
	}
	if err := f.s.VerifyChecksum(ctx, uri); err != nil {
		t.Fatal(err)
	}
	rep, err := f.s.Reconcile(ctx, ReconcileOptions{})
	if err != nil || len(rep.OrphanBlobs) != 0 || len(rep.MissingBlobs) != 0 {
		t.Fatalf("reconcile: %+v, %v", rep, err)
	}
	if _, err := f.s.PruneVersions(ctx, uri, 3); err != nil {
		t.Fatal(err)
	}
	if got, want := backendtest.Keys(t, f.b, "blobs/"), rawManifest(t, f.b, uri).blobs(); len(got) != len(want) {
		t.Fatalf("after prune: blobs %v, manifest references %v", got, want)
	}
	if err := f.s.Delete(ctx, uri); err != nil {
		t.Fatal(err)
	}
	if got := backendtest.Keys(t, f.b, "blobs/"); len(got) != 0 {
		t.Fatalf("after delete: blobs %v", got)
	}
}

// TestInlineSpillFailureLeavesNothing: when a content cannot move to its
// blob, the upload fails, the artifact is unchanged and no blob is left.
func TestInlineSpillFailureLeavesNothing(t *testing.T) {
	const limit = 10
	f, fb := newInlineFixture(t, Config{Versioning: true, InlineMaxBytes: limit})
	const uri = "artifact://s/t/log"
	for i := range 4 {
		mustUpload(t, f.s, uri, fmt.Appendf(nil, "content-%d", i), UploadOptions{})
	}
	before := rawManifest(t, f.b, uri)
	// The second content's Put fails (in the guess's attempt, and in the
	// attempt on the manifest read after it).
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "blobs/", Skip: 1, Err: backendtest.Permanent("disk full", backend.ErrStorageFull)})
	_, err := f.s.UploadBytes(context.Background(), uri, []byte("content-4"), UploadOptions{})
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("err %v, want ErrStorageFull", err)
	}
	if after := rawManifest(t, f.b, uri); after.Commit != before.Commit {
		t.Errorf("the manifest changed: %s -> %s", before.Commit, after.Commit)
	}
	if got := backendtest.Keys(t, f.b, "blobs/"); len(got) != 0 {
		t.Errorf("blobs left: %v", got)
	}
}

// TestInlineCorruptContentIsDetected: a byte of the content a manifest
// holds changes; every read fails with ErrIntegrity.
func TestInlineCorruptContentIsDetected(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{})
	const uri = "artifact://s/t/log"
	md := mustUpload(t, f.s, uri, []byte("precious content"), UploadOptions{})
	key := manifestKey(csParse(t, uri))
	var raw map[string]any
	rc, _, err := f.b.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(rc).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	v := raw["versions"].([]any)[0].(map[string]any)
	v["inline"] = base64.StdEncoding.EncodeToString([]byte("Precious content"))
	writeObject(t, f.b, key, must(json.Marshal(raw)))

	if _, _, err := f.s.Download(ctx, uri); !errors.Is(err, ErrIntegrity) {
		t.Errorf("Download: %v, want ErrIntegrity", err)
	}
	if rc, err := f.s.OpenVersion(ctx, md); err == nil {
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrIntegrity) {
			t.Errorf("OpenVersion read: %v, want ErrIntegrity", err)
		}
		rc.Close()
	}
	if err := f.s.VerifyChecksum(ctx, uri); !errors.Is(err, ErrIntegrity) {
		t.Errorf("VerifyChecksum: %v, want ErrIntegrity", err)
	}
	rep, err := f.s.VerifyAll(ctx, VerifyOptions{})
	if err != nil || len(rep.Corrupt) != 1 {
		t.Errorf("VerifyAll: %+v, %v", rep, err)
	}
}

// TestInlineGuessFromStaleCopy: a Store builds a new version on the
// manifest it wrote last without reading it; when another Store committed
// since, the guess fails and the write is decided on the manifest read,
// including whether it changes anything at all.
func TestInlineGuessFromStaleCopy(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true, WriterID: "a"})
	b := newFixtureOn(t, f.b, f.locker, Config{Versioning: true, WriterID: "b", InlineMaxBytes: DefaultInlineMaxBytes}, nil).s
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("X"), UploadOptions{})
	mustUpload(t, b, uri, []byte("Y"), UploadOptions{})
	if md := mustUpload(t, f.s, uri, []byte("Z"), UploadOptions{}); md.Version != 3 {
		t.Fatalf("Z: version %d, want 3", md.Version)
	}
	mustUpload(t, b, uri, []byte("X"), UploadOptions{}) // version 4
	// a's copy says Z is current: X is new to it, but not to the artifact.
	if md := mustUpload(t, f.s, uri, []byte("X"), UploadOptions{}); md.Version != 4 {
		t.Fatalf("X again: version %d, want 4 (no new version)", md.Version)
	}
	vs, err := f.s.Versions(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		data, _ := mustDownload(t, f.s, v.URI)
		got = append(got, string(data))
	}
	if want := []string{"X", "Y", "Z", "X"}; !slices.Equal(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
}

// TestInlineCatalogLeavesContentOut: the catalog's segments describe
// versions stored in manifests without their content; searches, usage
// and the retention plan stay exact.
func TestInlineCatalogLeavesContentOut(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true})
	marker := strings.Repeat("needle-in-content ", 20)
	sizes := map[string]int64{}
	for i := range 12 {
		md := mustUpload(t, f.s, fmt.Sprintf("artifact://s/t%02d/log", i), []byte(marker+fmt.Sprint(i)), UploadOptions{Tags: []string{"small"}})
		sizes[md.URI] = md.Size
	}
	if _, err := f.s.CompactCatalog(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range backendtest.Keys(t, f.b, catalog.SegmentPrefix) {
		rc, _, err := f.b.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if enc := base64.StdEncoding.EncodeToString([]byte(marker)); bytes.Contains(body, []byte(enc[:40])) {
			t.Errorf("segment %s holds the content", key)
		}
	}
	mds, err := f.s.Search(ctx, Filter{Tags: []string{"small"}})
	if err != nil || len(mds) != 12 {
		t.Fatalf("search: %d, %v", len(mds), err)
	}
	for _, md := range mds {
		if md.BlobKey != "" || md.Size != sizes[md.URI] {
			t.Errorf("search result %+v", md)
		}
	}
	got, err := f.s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.s.walkUsage(ctx)
	if err != nil || !usageEqual(got, want) {
		t.Errorf("usage %+v, scan %+v (%v)", got, want, err)
	}
}

// TestInlineLostReplyOnCreate: the reply of a create's manifest Put is
// lost before it reached the backend. With the lock held throughout (a
// refresh confirms it) the create is sent again; without a lock nothing
// tells whether it landed and was deleted since (no blob is there to
// tell), so the outcome is unknown and nothing is stored.
func TestInlineLostReplyOnCreate(t *testing.T) {
	for _, locked := range []bool{true, false} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			f, fb := newInlineFixture(t, Config{DisableLocking: !locked})
			fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Err: backendtest.Transient("connection reset")})
			md, err := f.s.UploadBytes(context.Background(), "artifact://s/t/log", []byte("small"), UploadOptions{})
			if locked {
				if err != nil || md.Version != 1 {
					t.Fatalf("upload: %+v, %v", md, err)
				}
				if got, _ := mustDownload(t, f.s, "artifact://s/t/log"); string(got) != "small" {
					t.Fatalf("download %q", got)
				}
				return
			}
			if !errors.Is(err, ErrUnknownOutcome) {
				t.Fatalf("upload: %+v, %v; want ErrUnknownOutcome", md, err)
			}
			if _, _, err := f.s.Download(context.Background(), "artifact://s/t/log"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("download: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestInlineLostLeaseBeforeResend: the lock is lost between the create's
// failed Put and its re-send: the create is not sent again.
func TestInlineLostLeaseBeforeResend(t *testing.T) {
	f, fb := newInlineFixture(t, Config{})
	const uri = "artifact://s/t/log"
	fb.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1, Err: backendtest.Transient("connection reset"),
		Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
			if _, err := f.locker.(lock.ForceUnlocker).ForceUnlock(ctx, lockKey(csParse(t, uri))); err != nil {
				t.Error(err)
			}
		}})
	_, err := f.s.UploadBytes(context.Background(), uri, []byte("small"), UploadOptions{})
	if !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrConflict) {
		t.Fatalf("upload: %v; want ErrUnknownOutcome or ErrConflict", err)
	}
	if _, _, err := f.s.Download(context.Background(), uri); !errors.Is(err, ErrNotFound) {
		t.Fatalf("download: %v, want ErrNotFound", err)
	}
}

// TestInlineQuota: contents in manifests count toward the quota like
// blobs, and usage stays exact.
func TestInlineQuota(t *testing.T) {
	ctx := context.Background()
	f, _ := newInlineFixture(t, Config{Versioning: true, Quota: QuotaConfig{MaxBytes: 10 << 10}})
	data := benchContent(4 << 10)
	mustUpload(t, f.s, "artifact://s/a/log", data, UploadOptions{})
	mustUpload(t, f.s, "artifact://s/b/log", data, UploadOptions{})
	if _, err := f.s.UploadBytes(ctx, "artifact://s/c/log", data, UploadOptions{}); !errors.Is(err, ErrStorageFull) {
		t.Fatalf("third upload: %v, want ErrStorageFull", err)
	}
	rep, err := f.s.Usage(ctx)
	if err != nil || rep.Total.StoredBytes != 8<<10 || rep.Total.Versions != 2 {
		t.Fatalf("usage %+v, %v", rep.Total, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRefusedGuessThenReadFails: a Store's guess on the manifest it wrote
// is refused (another Store committed since) and the manifest cannot be
// read: the write failed, known not landed, with the read's transient
// error, not ErrUnknownOutcome.
func TestRefusedGuessThenReadFails(t *testing.T) {
	f, fb := newInlineFixture(t, Config{Versioning: true})
	other := newFixtureOn(t, f.b, f.locker, Config{Versioning: true}, nil).s
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("mine"), UploadOptions{})
	mustUpload(t, other, uri, []byte("theirs"), UploadOptions{})
	before := rawManifest(t, f.b, uri)
	fb.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Err: backendtest.Transient("down")})
	_, err := f.s.UploadBytes(context.Background(), uri, []byte("new"), UploadOptions{})
	if err == nil || errors.Is(err, ErrUnknownOutcome) || !backend.IsTransient(err) {
		t.Fatalf("upload: %v; want a transient error, not ErrUnknownOutcome", err)
	}
	if after := rawManifest(t, f.b, uri); after.Commit != before.Commit {
		t.Fatalf("the manifest changed")
	}
}
