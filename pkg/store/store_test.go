package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/lock"
)

func TestUploadDownloadRoundTrip(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		ctx := context.Background()
		data := []byte("diff --git a/x b/x\n+hello\n")
		md, err := f.s.UploadBytes(ctx, "artifact://spec-1/task-1/diff", data, UploadOptions{
			ContentType: "text/x-diff",
			Tags:        []string{"b", "a", "b"},
			Metadata:    map[string]string{"node": "w1", "note": "héllo"},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := Metadata{
			URI: "artifact://spec-1/task-1/diff?version=1", TaskID: "task-1", SpecName: "spec-1", Type: "diff",
			Size: int64(len(data)), StoredSize: int64(len(data)), SHA256: sha(data), CreatedAt: f.clock.Now(),
			MimeType: "text/x-diff", OriginalSize: int64(len(data)), Tags: []string{"a", "b"}, Version: 1,
			Metadata: map[string]string{"node": "w1", "note": "héllo"}, UpdatedAt: f.clock.Now(),
			UserMetadata: map[string]any{"node": "w1", "note": "héllo"},
			BlobKey:      md.BlobKey, Fence: md.Fence, Writer: "test-writer",
		}
		if !equalMetadata(md, want) {
			t.Fatalf("Upload = %+v\nwant %+v", md, want)
		}
		if !strings.HasPrefix(md.BlobKey, "blobs/spec-1/task-1/diff/") || md.Fence == 0 {
			t.Fatalf("blob key %q, fence %d", md.BlobKey, md.Fence)
		}
		got, dmd := mustDownload(t, f.s, "artifact://spec-1/task-1/diff")
		if !bytes.Equal(got, data) || !equalMetadata(dmd, md) {
			t.Fatalf("Download = %q, %+v", got, dmd)
		}
		st, err := f.s.Stat(ctx, "artifact://spec-1/task-1/diff?version=1")
		if err != nil || !equalMetadata(st, md) {
			t.Fatalf("Stat = %+v, %v", st, err)
		}
		rc, omd, err := f.s.Open(ctx, "artifact://spec-1/task-1/diff")
		if err != nil {
			t.Fatal(err)
		}
		streamed, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(streamed, data) || !equalMetadata(omd, md) {
			t.Fatalf("Open: %q, %v", streamed, err)
		}
		for uri, want := range map[string]bool{
			"artifact://spec-1/task-1/diff":           true,
			"artifact://spec-1/task-1/diff?version=1": true,
			"artifact://spec-1/task-1/diff?version=2": false,
			"artifact://spec-1/task-1/log":            false,
		} {
			ok, err := f.s.Exists(ctx, uri)
			if err != nil || ok != want {
				t.Errorf("Exists(%s) = %v, %v; want %v", uri, ok, err, want)
			}
		}
		// The manifest and blob are readable without the store.
		m := rawManifest(t, f.b, "artifact://spec-1/task-1/diff")
		if m.URI != "artifact://spec-1/task-1/diff" || len(m.Versions) != 1 || m.Writer != "test-writer" || m.Fence != md.Fence {
			t.Fatalf("manifest %+v", m)
		}
		rc2, _, err := f.b.Get(ctx, md.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(rc2)
		rc2.Close()
		if !bytes.Equal(raw, data) {
			t.Fatalf("raw blob %q", raw)
		}
	})
}

func equalMetadata(a, b Metadata) bool {
	return a.URI == b.URI && a.TaskID == b.TaskID && a.SpecName == b.SpecName && a.Type == b.Type &&
		a.Size == b.Size && a.StoredSize == b.StoredSize && a.SHA256 == b.SHA256 && a.CreatedAt.Equal(b.CreatedAt) &&
		a.MimeType == b.MimeType && a.Compressed == b.Compressed && a.OriginalSize == b.OriginalSize &&
		slices.Equal(a.Tags, b.Tags) && a.Version == b.Version && maps.Equal(a.Metadata, b.Metadata) &&
		(len(a.UserMetadata) == 0 && len(b.UserMetadata) == 0 || reflect.DeepEqual(a.UserMetadata, b.UserMetadata)) &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.BlobKey == b.BlobKey && a.Fence == b.Fence && a.Writer == b.Writer
}

func TestMetadataJSON(t *testing.T) {
	md := Metadata{URI: "artifact://s/t/diff?version=2", TaskID: "t", SpecName: "s", Type: "diff", Size: 10,
		StoredSize: 8, SHA256: strings.Repeat("a", 64), CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		MimeType: "text/plain", Compressed: true, OriginalSize: 10, Tags: []string{"x"}, Version: 2,
		UserMetadata: map[string]any{"k": "v"}, Metadata: map[string]string{"k": "v"}}
	b, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uri", "task_id", "spec_name", "type", "size", "stored_size", "sha256", "created_at",
		"mime_type", "compressed", "original_size", "tags", "version", "metadata"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON of Metadata lacks %q: %s", k, b)
		}
	}
	var back Metadata
	if err := json.Unmarshal(b, &back); err != nil || !equalMetadata(back, md) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestZeroByteContent(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		for _, compress := range []bool{false, true} {
			f := newFixture(t, e, Config{Compression: compress, CompressionMinSize: 1}, nil)
			ctx := context.Background()
			for _, size := range []int64{0, backend.SizeUnknown} {
				md, err := f.s.Upload(ctx, "artifact://s/t/log", bytes.NewReader(nil), size, UploadOptions{})
				if err != nil {
					t.Fatalf("compress=%v size=%d: %v", compress, size, err)
				}
				if md.Size != 0 || md.SHA256 != sha(nil) || md.Compressed {
					t.Fatalf("compress=%v: %+v", compress, md)
				}
				got, _ := mustDownload(t, f.s, "artifact://s/t/log")
				if len(got) != 0 {
					t.Fatalf("got %d bytes", len(got))
				}
			}
		}
	})
}

func TestReplaceWithoutVersioning(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		const uri = "artifact://s/t/log"
		v1 := mustUpload(t, f.s, uri, []byte("one"), UploadOptions{Tags: []string{"first"}})
		v2 := mustUpload(t, f.s, uri, []byte("two"), UploadOptions{Tags: []string{"second"}})
		if v1.Version != 1 || v2.Version != 2 {
			t.Fatalf("versions %d, %d", v1.Version, v2.Version)
		}
		if !slices.Equal(v2.Tags, []string{"first", "second"}) {
			t.Fatalf("tags %v", v2.Tags)
		}
		got, md := mustDownload(t, f.s, uri)
		if string(got) != "two" || md.Version != 2 {
			t.Fatalf("download %q v%d", got, md.Version)
		}
		if _, err := f.s.Stat(context.Background(), uri+"?version=1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replaced version: %v", err)
		}
		if keys := backendtest.Keys(t, f.b, "blobs/"); !slices.Equal(keys, []string{v2.BlobKey}) {
			t.Fatalf("blobs %v, want only %s", keys, v2.BlobKey)
		}
		vs, err := f.s.Versions(context.Background(), uri)
		if err != nil || len(vs) != 1 || vs[0].Version != 2 {
			t.Fatalf("Versions = %+v, %v", vs, err)
		}
	})
}

func TestIdempotentUpload(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true}, nil)
		const uri = "artifact://s/t/diff"
		opts := UploadOptions{ContentType: "text/plain", Metadata: map[string]string{"a": "1"}}
		first := mustUpload(t, f.s, uri, []byte("same"), opts)
		before := snapshot(t, f.b)
		f.clock.Advance(time.Minute)
		again := mustUpload(t, f.s, uri, []byte("same"), opts)
		if !equalMetadata(first, again) {
			t.Fatalf("re-upload = %+v, want %+v", again, first)
		}
		if after := snapshot(t, f.b); !maps.Equal(before, after) {
			t.Fatalf("a no-op upload changed the bucket:\n%v\n%v", before, after)
		}
		// Same bytes with a new tag: no new version, the tag is added.
		tagged := mustUpload(t, f.s, uri, []byte("same"), UploadOptions{ContentType: "text/plain", Metadata: map[string]string{"a": "1"}, Tags: []string{"new"}})
		if tagged.Version != 1 || !slices.Equal(tagged.Tags, []string{"new"}) {
			t.Fatalf("tagged re-upload %+v", tagged)
		}
		if keys := backendtest.Keys(t, f.b, "blobs/"); len(keys) != 1 {
			t.Fatalf("blobs %v", keys)
		}
		// Same bytes without metadata: nothing changes, the metadata stays.
		bare := mustUpload(t, f.s, uri, []byte("same"), UploadOptions{ContentType: "text/plain"})
		if bare.Version != 1 || bare.Metadata["a"] != "1" {
			t.Fatalf("re-upload without metadata: version %d, metadata %v", bare.Version, bare.Metadata)
		}
		// Same bytes with other metadata: a new version.
		other := mustUpload(t, f.s, uri, []byte("same"), UploadOptions{ContentType: "text/plain", Metadata: map[string]string{"a": "2"}})
		if other.Version != 2 || other.Metadata["a"] != "2" {
			t.Fatalf("different metadata: version %d, metadata %v", other.Version, other.Metadata)
		}
		// Another content type: a new version.
		if typed := mustUpload(t, f.s, uri, []byte("same"), UploadOptions{ContentType: "text/x-diff"}); typed.Version != 3 {
			t.Fatalf("different content type: version %d", typed.Version)
		}
	})
}

func TestVersioning(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/test"
		var mds []Metadata
		for i := 1; i <= 5; i++ {
			f.clock.Advance(time.Second)
			mds = append(mds, mustUpload(t, f.s, uri, []byte{byte('0' + i)}, UploadOptions{}))
		}
		vs, err := f.s.Versions(ctx, uri)
		if err != nil || len(vs) != 5 {
			t.Fatalf("Versions = %d, %v", len(vs), err)
		}
		for i, v := range vs {
			if v.Version != i+1 || !equalMetadata(v, mds[i]) && v.Version != mds[i].Version {
				t.Fatalf("version %d = %+v", i+1, v)
			}
			got, md := mustDownload(t, f.s, v.URI)
			if string(got) != string(rune('1'+i)) || md.Version != i+1 {
				t.Fatalf("download %s = %q", v.URI, got)
			}
		}
		if got, _ := mustDownload(t, f.s, uri); string(got) != "5" {
			t.Fatalf("current = %q", got)
		}
		if _, _, err := f.s.Download(ctx, uri+"?version=9"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown version: %v", err)
		}
		n, err := f.s.PruneVersions(ctx, uri, 2)
		if err != nil || n != 3 {
			t.Fatalf("PruneVersions = %d, %v", n, err)
		}
		vs, _ = f.s.Versions(ctx, uri)
		if len(vs) != 2 || vs[0].Version != 4 || vs[1].Version != 5 {
			t.Fatalf("after prune: %+v", vs)
		}
		if keys := backendtest.Keys(t, f.b, "blobs/"); len(keys) != 2 {
			t.Fatalf("blobs after prune: %v", keys)
		}
		if n, err := f.s.PruneVersions(ctx, uri, 2); err != nil || n != 0 {
			t.Fatalf("second prune = %d, %v", n, err)
		}
		if _, err := f.s.PruneVersions(ctx, uri, 0); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("keep 0: %v", err)
		}
		// Numbers are never reused.
		if md := mustUpload(t, f.s, uri, []byte("6"), UploadOptions{}); md.Version != 6 {
			t.Fatalf("next version %d", md.Version)
		}
		// Deleting one version.
		if err := f.s.Delete(ctx, uri+"?version=5"); err != nil {
			t.Fatal(err)
		}
		vs, _ = f.s.Versions(ctx, uri)
		if len(vs) != 2 || vs[0].Version != 4 || vs[1].Version != 6 {
			t.Fatalf("after version delete: %+v", vs)
		}
		if err := f.s.Delete(ctx, uri+"?version=5"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting a deleted version: %v", err)
		}
	})
}

func TestMaxVersions(t *testing.T) {
	f := newFixture(t, memEnv(), Config{Versioning: true, MaxVersions: 3}, nil)
	for i := range 7 {
		mustUpload(t, f.s, "artifact://s/t/log", []byte{byte(i)}, UploadOptions{})
	}
	vs, err := f.s.Versions(context.Background(), "artifact://s/t/log")
	if err != nil || len(vs) != 3 || vs[0].Version != 5 || vs[2].Version != 7 {
		t.Fatalf("Versions = %+v, %v", vs, err)
	}
	if keys := backendtest.Keys(t, f.b, "blobs/"); len(keys) != 3 {
		t.Fatalf("blobs %v", keys)
	}
}

func TestOpenVersion(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true, Compression: true, CompressionMinSize: 1}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/log"
		v1 := mustUpload(t, f.s, uri, []byte(strings.Repeat("first ", 100)), UploadOptions{})
		mustUpload(t, f.s, uri, []byte("second"), UploadOptions{})
		rc, err := f.s.OpenVersion(ctx, v1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != strings.Repeat("first ", 100) {
			t.Fatalf("OpenVersion = %q, %v", got, err)
		}
		// Metadata pointing outside the artifact's blobs is refused.
		bad := v1
		bad.BlobKey = "manifests/s/t/log.json"
		if _, err := f.s.OpenVersion(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("foreign blob key: %v", err)
		}
		if _, err := f.s.PruneVersions(ctx, uri, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.OpenVersion(ctx, v1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pruned version: %v", err)
		}
	})
}

func TestTags(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/diff"
		mustUpload(t, f.s, uri, []byte("x"), UploadOptions{Tags: []string{"ci"}})
		steps := []struct {
			name string
			do   func() (Metadata, error)
			want []string
		}{
			{"add", func() (Metadata, error) { return f.s.AddTags(ctx, uri, "reviewed", "ci", "team:core") }, []string{"ci", "reviewed", "team:core"}},
			{"remove", func() (Metadata, error) { return f.s.RemoveTags(ctx, uri, "ci", "absent") }, []string{"reviewed", "team:core"}},
			{"set", func() (Metadata, error) { return f.s.SetTags(ctx, uri, "z", "a") }, []string{"a", "z"}},
			{"set none", func() (Metadata, error) { return f.s.SetTags(ctx, uri) }, []string{}},
		}
		for _, st := range steps {
			md, err := st.do()
			if err != nil || !slices.Equal(md.Tags, st.want) {
				t.Fatalf("%s: tags %v, %v; want %v", st.name, md.Tags, err, st.want)
			}
			stat, _ := f.s.Stat(ctx, uri)
			if !slices.Equal(stat.Tags, st.want) {
				t.Fatalf("%s: stored tags %v", st.name, stat.Tags)
			}
		}
		if _, err := f.s.AddTags(ctx, uri, "bad tag"); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("bad tag: %v", err)
		}
		if _, err := f.s.AddTags(ctx, "artifact://s/t/absent", "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("absent artifact: %v", err)
		}
		if _, err := f.s.AddTags(ctx, uri+"?version=1", "x"); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("versioned URI: %v", err)
		}
		many := make([]string, DefaultMaxTags+1)
		for i := range many {
			many[i] = "t" + strings.Repeat("x", i)
		}
		if _, err := f.s.SetTags(ctx, uri, many...); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("too many tags: %v", err)
		}
	})
}

func TestSearchAndList(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		ctx := context.Background()
		start := f.clock.Now()
		type art struct {
			uri  string
			tags []string
		}
		arts := []art{
			{"artifact://alpha/t1/diff", []string{"ci", "red"}},
			{"artifact://alpha/t1/log", []string{"ci"}},
			{"artifact://alpha/t2/diff", []string{"red"}},
			{"artifact://alpha/t2/custom", nil},
			{"artifact://beta/t1/diff", []string{"ci", "red"}},
			{"artifact://alphabet/t1/diff", []string{"ci"}},
		}
		for _, a := range arts {
			f.clock.Advance(time.Hour)
			mustUpload(t, f.s, a.uri, []byte(a.uri), UploadOptions{Tags: a.tags})
		}
		uris := func(mds []Metadata) []string {
			var out []string
			for _, md := range mds {
				out = append(out, strings.TrimSuffix(md.URI, "?version=1"))
			}
			return out
		}
		cases := []struct {
			name string
			f    Filter
			want []string
		}{
			{"all", Filter{}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t1/log", "artifact://alpha/t2/custom", "artifact://alpha/t2/diff", "artifact://alphabet/t1/diff", "artifact://beta/t1/diff"}},
			{"spec", Filter{Spec: "alpha"}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t1/log", "artifact://alpha/t2/custom", "artifact://alpha/t2/diff"}},
			{"spec+task", Filter{Spec: "alpha", Task: "t1"}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t1/log"}},
			{"spec+task+type", Filter{Spec: "alpha", Task: "t1", Type: "log"}, []string{"artifact://alpha/t1/log"}},
			{"missing exact", Filter{Spec: "alpha", Task: "t1", Type: "test"}, nil},
			{"task only", Filter{Task: "t1"}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t1/log", "artifact://alphabet/t1/diff", "artifact://beta/t1/diff"}},
			{"type only", Filter{Type: "diff"}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t2/diff", "artifact://alphabet/t1/diff", "artifact://beta/t1/diff"}},
			{"tag", Filter{Tags: []string{"red"}}, []string{"artifact://alpha/t1/diff", "artifact://alpha/t2/diff", "artifact://beta/t1/diff"}},
			{"tags all of", Filter{Tags: []string{"red", "ci"}}, []string{"artifact://alpha/t1/diff", "artifact://beta/t1/diff"}},
			{"tag+spec", Filter{Spec: "beta", Tags: []string{"ci"}}, []string{"artifact://beta/t1/diff"}},
			{"created after", Filter{CreatedAfter: start.Add(5 * time.Hour)}, []string{"artifact://alphabet/t1/diff", "artifact://beta/t1/diff"}},
			{"created before", Filter{CreatedBefore: start.Add(2 * time.Hour)}, []string{"artifact://alpha/t1/diff"}},
			{"created range+type", Filter{Type: "diff", CreatedAfter: start.Add(2 * time.Hour), CreatedBefore: start.Add(6 * time.Hour)}, []string{"artifact://alpha/t2/diff", "artifact://beta/t1/diff"}},
			{"no match", Filter{Spec: "gamma"}, nil},
		}
		for _, tc := range cases {
			got, err := f.s.Search(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(uris(got), tc.want) {
				t.Errorf("%s: %v\nwant %v", tc.name, uris(got), tc.want)
			}
		}
		task, err := f.s.ListTask(ctx, "alpha", "t2")
		if err != nil || !slices.Equal(uris(task), []string{"artifact://alpha/t2/custom", "artifact://alpha/t2/diff"}) {
			t.Fatalf("ListTask = %v, %v", uris(task), err)
		}
		spec, err := f.s.ListSpec(ctx, "beta")
		if err != nil || !slices.Equal(uris(spec), []string{"artifact://beta/t1/diff"}) {
			t.Fatalf("ListSpec = %v, %v", uris(spec), err)
		}
		if _, err := f.s.Search(ctx, Filter{Spec: "../x"}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("bad filter: %v", err)
		}
		if _, err := f.s.ListTask(ctx, "alpha", ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("empty task: %v", err)
		}
		// A stray or corrupt object under manifests/ is skipped.
		if _, err := f.b.Put(ctx, "manifests/alpha/t1/zzz.json", strings.NewReader("{"), 1, backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.b.Put(ctx, "manifests/alpha/stray", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.ListTask(ctx, "alpha", "t1")
		if err != nil || len(got) != 2 {
			t.Fatalf("ListTask with a corrupt manifest = %v, %v", uris(got), err)
		}
	})
}

func TestDelete(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true}, nil)
		ctx := context.Background()
		for _, uri := range []string{
			"artifact://s1/t1/diff", "artifact://s1/t1/log", "artifact://s1/t2/diff",
			"artifact://s2/t1/diff", "artifact://s1x/t1/diff",
		} {
			mustUpload(t, f.s, uri, []byte("a"+uri), UploadOptions{})
			mustUpload(t, f.s, uri, []byte("b"+uri), UploadOptions{})
		}
		if err := f.s.Delete(ctx, "artifact://s2/t1/diff"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Stat(ctx, "artifact://s2/t1/diff"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted artifact: %v", err)
		}
		if err := f.s.Delete(ctx, "artifact://s2/t1/diff"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if keys := backendtest.Keys(t, f.b, "blobs/s2/"); len(keys) != 0 {
			t.Fatalf("blobs left: %v", keys)
		}
		n, err := f.s.DeleteByTask(ctx, "s1", "t1")
		if err != nil || n != 2 {
			t.Fatalf("DeleteByTask = %d, %v", n, err)
		}
		n, err = f.s.DeleteBySpec(ctx, "s1")
		if err != nil || n != 1 {
			t.Fatalf("DeleteBySpec = %d, %v", n, err)
		}
		n, err = f.s.DeleteBySpec(ctx, "s1")
		if err != nil || n != 0 {
			t.Fatalf("DeleteBySpec again = %d, %v", n, err)
		}
		// What is left: s1x's artifact (no tag index markers: it has no
		// tags), and the mark of the complete tag index and the probe
		// record the first write wrote.
		left := slices.DeleteFunc(liveKeys(t, f.b), func(k string) bool { return k == tagIndexReadyKey || k == probeRecordKey })
		if len(left) != 3 || left[0] != "blobs/s1x/t1/diff/"+left[0][len("blobs/s1x/t1/diff/"):] || left[2] != "manifests/s1x/t1/diff.json" {
			t.Fatalf("left after deletes: %v", left)
		}
		if _, err := f.s.DeleteBySpec(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("empty spec: %v", err)
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{Versioning: true, MaxMetadataBytes: 1024}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/diff"
		mustUpload(t, f.s, uri, []byte("original"), UploadOptions{Tags: []string{"keep"}})
		readErr := errors.New("disk on fire")
		cases := []struct {
			name string
			do   func() error
			want error
		}{
			{"empty URI", func() error { _, err := f.s.UploadBytes(ctx, "", []byte("x"), UploadOptions{}); return err }, ErrInvalidArgument},
			{"malformed URI", func() error {
				_, err := f.s.UploadBytes(ctx, "artifact:/s/t", []byte("x"), UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"traversal", func() error {
				_, err := f.s.UploadBytes(ctx, "artifact://s/../diff", []byte("x"), UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"traversal in type", func() error {
				_, err := f.s.UploadBytes(ctx, "artifact://s/t/../../x", []byte("x"), UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"version in upload URI", func() error {
				_, err := f.s.UploadBytes(ctx, uri+"?version=1", []byte("x"), UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"unknown version download", func() error { _, _, err := f.s.Download(ctx, uri+"?version=42"); return err }, ErrNotFound},
			{"unknown version stat", func() error { _, err := f.s.Stat(ctx, uri+"?version=42"); return err }, ErrNotFound},
			{"unknown version delete", func() error { return f.s.Delete(ctx, uri+"?version=42") }, ErrNotFound},
			{"missing artifact", func() error { _, _, err := f.s.Download(ctx, "artifact://s/t/log"); return err }, ErrNotFound},
			{"oversized metadata", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"big": strings.Repeat("v", 2000)}})
				return err
			}, ErrInvalidArgument},
			{"invalid UTF-8 metadata value", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"k": "\xff\xfe"}})
				return err
			}, ErrInvalidArgument},
			{"invalid UTF-8 metadata key", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"\xc3\x28": "v"}})
				return err
			}, ErrInvalidArgument},
			{"control char metadata key", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"a\x00b": "v"}})
				return err
			}, ErrInvalidArgument},
			{"empty metadata key", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Metadata: map[string]string{"": "v"}})
				return err
			}, ErrInvalidArgument},
			{"bad tag", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Tags: []string{"a b"}})
				return err
			}, ErrInvalidArgument},
			{"empty tag", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Tags: []string{""}})
				return err
			}, ErrInvalidArgument},
			{"too many tags", func() error {
				tags := make([]string, DefaultMaxTags+1)
				for i := range tags {
					tags[i] = strings.Repeat("t", i+1)[:min(i+1, 10)] + string(rune('a'+i%26)) + string(rune('a'+i/26))
				}
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{Tags: tags})
				return err
			}, ErrInvalidArgument},
			{"bad content type", func() error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("x"), UploadOptions{ContentType: "not a mime type;;"})
				return err
			}, ErrInvalidArgument},
			{"nil reader", func() error { _, err := f.s.Upload(ctx, uri, nil, 3, UploadOptions{}); return err }, ErrInvalidArgument},
			{"negative size", func() error { _, err := f.s.Upload(ctx, uri, strings.NewReader("x"), -2, UploadOptions{}); return err }, ErrInvalidArgument},
			{"reader fails half-way", func() error {
				_, err := f.s.Upload(ctx, uri, &errAfterReader{n: 5000, err: readErr}, 10000, UploadOptions{})
				return err
			}, readErr},
			{"reader fails half-way, unknown size", func() error {
				_, err := f.s.Upload(ctx, uri, &errAfterReader{n: 5000, err: readErr}, backend.SizeUnknown, UploadOptions{})
				return err
			}, readErr},
			{"reader shorter than size", func() error {
				_, err := f.s.Upload(ctx, uri, strings.NewReader("abc"), 10, UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"reader longer than size", func() error {
				_, err := f.s.Upload(ctx, uri, strings.NewReader("abcdef"), 3, UploadOptions{})
				return err
			}, ErrInvalidArgument},
			{"prune keep 0", func() error { _, err := f.s.PruneVersions(ctx, uri, 0); return err }, ErrInvalidArgument},
			{"cancelled context", func() error {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := f.s.UploadBytes(cctx, uri, []byte("new"), UploadOptions{})
				return err
			}, context.Canceled},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, f.b)
				err := tc.do()
				if !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
				if after := snapshot(t, f.b); !maps.Equal(before, after) {
					t.Fatalf("the bucket changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
		got, md := mustDownload(t, f.s, uri)
		if string(got) != "original" || md.Version != 1 || !slices.Equal(md.Tags, []string{"keep"}) {
			t.Fatalf("artifact after bad input: %q %+v", got, md)
		}
		if logged := f.logs.failures("upload"); len(logged) == 0 || logged[0]["uri"] != "" {
			t.Fatalf("upload failures logged: %v", logged)
		}
	})
}

func TestFailuresAreLoggedOnce(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	_, _, err := f.s.Download(context.Background(), "artifact://s/t/missing")
	if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	logged := f.logs.failures("download")
	if len(logged) != 1 || logged[0]["uri"] != "artifact://s/t/missing" || logged[0]["err"] == "" {
		t.Fatalf("logged %v", logged)
	}
}

func TestCompression(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		big := []byte(strings.Repeat("a compressible log line\n", 1000))
		small := []byte("tiny")
		for _, tc := range []struct {
			name     string
			cfg      Config
			data     []byte
			size     int64
			wantGzip bool
		}{
			{"on, known size", Config{Compression: true}, big, int64(len(big)), true},
			{"on, unknown size", Config{Compression: true}, big, backend.SizeUnknown, true},
			{"on, below minimum", Config{Compression: true}, small, int64(len(small)), false},
			{"on, below minimum, unknown size", Config{Compression: true}, small, backend.SizeUnknown, false},
			{"on, exactly minimum, unknown size", Config{Compression: true, CompressionMinSize: 4}, small, backend.SizeUnknown, true},
			{"on, best compression", Config{Compression: true, CompressionLevel: 9}, big, int64(len(big)), true},
			{"off", Config{}, big, int64(len(big)), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, e, tc.cfg, nil)
				md, err := f.s.Upload(ctx, "artifact://s/t/log", bytes.NewReader(tc.data), tc.size, UploadOptions{ContentType: "text/plain"})
				if err != nil {
					t.Fatal(err)
				}
				if md.Compressed != tc.wantGzip || md.Size != int64(len(tc.data)) || md.OriginalSize != md.Size || md.SHA256 != sha(tc.data) {
					t.Fatalf("metadata %+v", md)
				}
				info, err := f.b.Stat(ctx, md.BlobKey)
				if err != nil || info.Size != md.StoredSize {
					t.Fatalf("blob %+v, %v; stored size %d", info, err, md.StoredSize)
				}
				if tc.wantGzip && md.StoredSize >= md.Size/4 && len(tc.data) > 100 {
					t.Fatalf("stored %d of %d bytes", md.StoredSize, md.Size)
				}
				if !tc.wantGzip && md.StoredSize != md.Size {
					t.Fatalf("uncompressed stored %d of %d", md.StoredSize, md.Size)
				}
				got, _ := mustDownload(t, f.s, md.URI)
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("round trip differs")
				}
				if err := f.s.VerifyChecksum(ctx, md.URI); err != nil {
					t.Fatal(err)
				}
				// The blob is plain gzip for S3 tools.
				if tc.wantGzip {
					rc, _, err := f.b.Get(ctx, md.BlobKey)
					if err != nil {
						t.Fatal(err)
					}
					defer rc.Close()
					zr, err := gzipReader(rc)
					if err != nil {
						t.Fatal(err)
					}
					plain, err := io.ReadAll(zr)
					if err != nil || !bytes.Equal(plain, tc.data) {
						t.Fatalf("gunzip of the raw blob: %v", err)
					}
				}
			})
		}
	})
}

func TestCorruptionIsDetected(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		data := []byte(strings.Repeat("precious bytes ", 200))
		for _, compress := range []bool{false, true} {
			corruptions := map[string]func(stored []byte) []byte{
				"flipped byte": func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 0x55; return c },
				"truncated":    func(b []byte) []byte { return b[:len(b)-10] },
				"extended":     func(b []byte) []byte { return append(bytes.Clone(b), "more"...) },
				"replaced":     func(b []byte) []byte { return bytes.Repeat([]byte{'x'}, len(b)) },
			}
			for name, corrupt := range corruptions {
				t.Run(name, func(t *testing.T) {
					f := newFixture(t, e, Config{Compression: compress}, nil)
					md := mustUpload(t, f.s, "artifact://s/t/test", data, UploadOptions{})
					if md.Compressed != compress {
						t.Fatalf("compressed %v", md.Compressed)
					}
					rc, _, err := f.b.Get(ctx, md.BlobKey)
					if err != nil {
						t.Fatal(err)
					}
					stored, _ := io.ReadAll(rc)
					rc.Close()
					bad := corrupt(stored)
					if _, err := f.b.Put(ctx, md.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
						t.Fatal(err)
					}
					if _, _, err := f.s.Download(ctx, md.URI); !errors.Is(err, ErrIntegrity) {
						t.Fatalf("compress=%v Download: %v, want ErrIntegrity", compress, err)
					}
					if err := f.s.VerifyChecksum(ctx, md.URI); !errors.Is(err, ErrIntegrity) {
						t.Fatalf("compress=%v VerifyChecksum: %v", compress, err)
					}
					// Streaming: the error arrives instead of EOF.
					if rc, _, err := f.s.Open(ctx, md.URI); err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
						if !errors.Is(err, ErrIntegrity) {
							t.Fatalf("compress=%v Open+Read: %v", compress, err)
						}
					} else if !errors.Is(err, ErrIntegrity) {
						t.Fatalf("compress=%v Open: %v", compress, err)
					}
				})
			}
		}
		t.Run("missing blob", func(t *testing.T) {
			f := newFixture(t, e, Config{}, nil)
			md := mustUpload(t, f.s, "artifact://s/t/test", data, UploadOptions{})
			if err := f.b.Delete(ctx, md.BlobKey); err != nil {
				t.Fatal(err)
			}
			_, _, err := f.s.Download(ctx, md.URI)
			if !errors.Is(err, ErrIntegrity) || !errors.Is(err, ErrNotFound) {
				t.Fatalf("Download: %v", err)
			}
			if err := f.s.VerifyChecksum(ctx, "artifact://s/t/test"); !errors.Is(err, ErrIntegrity) || !errors.Is(err, ErrNotFound) {
				t.Fatalf("VerifyChecksum: %v", err)
			}
		})
		t.Run("verify disabled", func(t *testing.T) {
			f := newFixture(t, e, Config{DisableVerify: true}, nil)
			md := mustUpload(t, f.s, "artifact://s/t/test", data, UploadOptions{})
			bad := bytes.Clone(data)
			bad[0] ^= 1
			if _, err := f.b.Put(ctx, md.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if got, _, err := f.s.Download(ctx, md.URI); err != nil || !bytes.Equal(got, bad) {
				t.Fatalf("Download without verification: %v", err)
			}
			if err := f.s.VerifyChecksum(ctx, md.URI); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("VerifyChecksum always verifies: %v", err)
			}
		})
		t.Run("corrupt manifest", func(t *testing.T) {
			f := newFixture(t, e, Config{}, nil)
			mustUpload(t, f.s, "artifact://s/t/test", data, UploadOptions{})
			if _, err := f.b.Put(ctx, "manifests/s/t/test.json", strings.NewReader(`{"schema":1}`), 12, backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.Stat(ctx, "artifact://s/t/test"); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("Stat: %v", err)
			}
			// A write does not overwrite what it cannot read.
			if _, err := f.s.UploadBytes(ctx, "artifact://s/t/test", []byte("new"), UploadOptions{}); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("Upload over a corrupt manifest: %v", err)
			}
		})
	})
}

func TestLargeStreamRoundTrip(t *testing.T) {
	const size = 64 << 20
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		ctx := context.Background()
		md, err := f.s.Upload(ctx, "artifact://big/t/log", &patternReader{n: size, seed: 7}, size, UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := sha256Reader(t, &patternReader{n: size, seed: 7})
		if md.Size != size || md.SHA256 != want {
			t.Fatalf("metadata %+v", md)
		}
		rc, _, err := f.s.Open(ctx, md.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if got := sha256Reader(t, rc); got != want {
			t.Fatalf("streamed sha %s, want %s", got, want)
		}
	})
}

func TestLargeStreamCompressedUnknownSize(t *testing.T) {
	const size = 16 << 20
	f := newFixture(t, fileEnv(), Config{Compression: true}, nil)
	ctx := context.Background()
	src := io.MultiReader(&patternReader{n: size / 2, seed: 1}, strings.NewReader(strings.Repeat("log line\n", size/2/9)))
	md, err := f.s.Upload(ctx, "artifact://big/t/log", src, backend.SizeUnknown, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !md.Compressed || md.StoredSize >= md.Size {
		t.Fatalf("metadata %+v", md)
	}
	rc, _, err := f.s.Open(ctx, md.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := sha256Reader(t, rc); got != md.SHA256 {
		t.Fatalf("streamed sha %s, want %s", got, md.SHA256)
	}
}

func TestContextCancellation(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	mustUpload(t, f.s, "artifact://s/t/log", []byte("x"), UploadOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	checks := map[string]func() error{
		"download": func() error { _, _, err := f.s.Download(ctx, "artifact://s/t/log"); return err },
		"stat":     func() error { _, err := f.s.Stat(ctx, "artifact://s/t/log"); return err },
		"search":   func() error { _, err := f.s.Search(ctx, Filter{}); return err },
		"delete":   func() error { return f.s.Delete(ctx, "artifact://s/t/log") },
		"tags":     func() error { _, err := f.s.AddTags(ctx, "artifact://s/t/log", "x"); return err },
	}
	for name, do := range checks {
		if err := do(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if got, _ := mustDownload(t, f.s, "artifact://s/t/log"); string(got) != "x" {
		t.Fatalf("content %q", got)
	}
}

// Blobs above the read-ahead threshold take another path (a read-ahead
// goroutine, and WriteTo for io.Copy); corruption is caught there too.
func TestLargeBlobCorruption(t *testing.T) {
	const size = readAheadMin + 100_003
	data, err := io.ReadAll(&patternReader{n: size, seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Compressed blobs take the same read-ahead path (through gzip, which
	// TestLargeStreamCompressedUnknownSize covers); gzip is too slow under
	// the race detector to repeat it here.
	for _, compress := range []bool{false} {
		f := newFixture(t, memEnv(), Config{Compression: compress}, nil)
		md := mustUpload(t, f.s, "artifact://s/t/log", data, UploadOptions{})
		// Intact: both read paths deliver the content.
		rc, _, err := f.s.Open(ctx, md.URI)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, rc); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("compress=%v io.Copy: %v", compress, err)
		}
		rc.Close()
		if got, _ := mustDownload(t, f.s, md.URI); !bytes.Equal(got, data) {
			t.Fatalf("compress=%v Download differs", compress)
		}
		stored, _, err := f.b.Get(ctx, md.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(stored)
		stored.Close()
		for name, bad := range map[string][]byte{
			"flipped":   func() []byte { c := bytes.Clone(raw); c[len(c)/3] ^= 1; return c }(),
			"truncated": raw[:len(raw)-1],
		} {
			if _, err := f.b.Put(ctx, md.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.s.Download(ctx, md.URI); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("compress=%v %s: Download: %v", compress, name, err)
			}
			rc, _, err := f.s.Open(ctx, md.URI)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("compress=%v %s: Open+io.Copy: %v", compress, name, err)
			}
		}
	}
}

// Closing a stream before its end stops the read-ahead.
func TestOpenCloseEarly(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	md, err := f.s.Upload(ctx, "artifact://s/t/log", &patternReader{n: readAheadMin + 1, seed: 5}, readAheadMin+1, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		rc, _, err := f.s.Open(ctx, md.URI)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1000)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A Store reading an artifact it has read before opens the blob its cached
// manifest names while it reads the manifest; a stale guess must never be
// served.
func TestReadWithStaleCache(t *testing.T) {
	for _, versioning := range []bool{false, true} {
		forEachEnv(t, func(t *testing.T, e env) {
			b := e.newBackend(t)
			l := e.newLocker(t, b, lock.Config{})
			cfg := Config{Versioning: versioning}
			reader := newFixtureOn(t, b, l, cfg, nil).s
			writer := newFixtureOn(t, b, l, cfg, nil).s
			ctx := context.Background()
			const uri = "artifact://s/t/log"
			for i := range 5 {
				want := fmt.Sprintf("content %d", i)
				mustUpload(t, writer, uri, []byte(want), UploadOptions{})
				for range 2 { // the second read takes the speculative path
					got, md := mustDownload(t, reader, uri)
					if string(got) != want || md.Version != i+1 {
						t.Fatalf("versioning=%v: read %q (version %d), want %q", versioning, got, md.Version, want)
					}
				}
				if versioning && i > 0 {
					got, md := mustDownload(t, reader, uri+"?version=1")
					if string(got) != "content 0" || md.Version != 1 {
						t.Fatalf("version 1: %q", got)
					}
				}
			}
			if err := writer.Delete(ctx, uri); err != nil {
				t.Fatal(err)
			}
			if _, _, err := reader.Download(ctx, uri); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted artifact through a stale cache: %v", err)
			}
		})
	}
}

// TestClose: a closed store fails every call with ErrClosed, leaves the
// backend open for others, and may be closed twice.
func TestClose(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		f := newFixture(t, e, Config{}, nil)
		ctx := context.Background()
		mustUpload(t, f.s, "artifact://s/t/log", []byte("x"), UploadOptions{})
		if err := f.s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := f.s.UploadBytes(ctx, "artifact://s/t/diff", []byte("y"), UploadOptions{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Upload after Close: %v", err)
		}
		if _, _, err := f.s.Download(ctx, "artifact://s/t/log"); !errors.Is(err, ErrClosed) {
			t.Errorf("Download after Close: %v", err)
		}
		if _, err := f.s.Search(ctx, Filter{Spec: "s"}); !errors.Is(err, ErrClosed) {
			t.Errorf("Search after Close: %v", err)
		}
		if err := f.s.Delete(ctx, "artifact://s/t/log"); !errors.Is(err, ErrClosed) {
			t.Errorf("Delete after Close: %v", err)
		}
		if _, err := f.b.Stat(ctx, "manifests/s/t/log.json"); err != nil {
			t.Errorf("the backend was closed with the store: %v", err)
		}
	})
}
