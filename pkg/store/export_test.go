package store

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// exportFixture uploads two versions of a few artifacts in spec "s" (tasks
// t1 and t2, one of them large enough to report progress within it) and
// one in spec "other". bigSize is the size of s/t2/test. It returns the metadata of every version by URI.
func exportFixture(t *testing.T, e env, bigSize int) (*fixture, map[string][]Metadata) {
	t.Helper()
	f := newFixture(t, e, Config{Versioning: true, Compression: true, CompressionMinSize: 256}, nil)
	byURI := map[string][]Metadata{}
	up := func(uri string, data []byte) {
		md := mustUpload(t, f.s, uri, data, UploadOptions{Tags: []string{"run-1"}, Metadata: map[string]string{"k": uri}})
		byURI[uri] = append(byURI[uri], md)
	}
	for v := range 2 {
		up("artifact://s/t1/diff", []byte(fmt.Sprintf("--- a\n+++ b\nversion %d\n", v)))
		up("artifact://s/t1/log", bytes.Repeat([]byte(fmt.Sprintf("log line, version %d\n", v)), 200))
		// Larger than two progress steps; text-like, so that deflate is
		// quick under the race detector.
		var big bytes.Buffer
		for i := 0; big.Len() < bigSize; i++ {
			fmt.Fprintf(&big, "=== RUN TestCase%d/version-%d\n--- PASS\n", i, v)
		}
		up("artifact://s/t2/test", big.Bytes())
		up("artifact://s/t2/custom.type-1", []byte{})
	}
	up("artifact://other/t1/log", []byte("not exported"))
	return f, byURI
}

// unzip opens an archive and checks every name can be extracted safely.
func unzip(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	root := t.TempDir()
	out := map[string][]byte{}
	for _, zf := range zr.File {
		if !filepath.IsLocal(zf.Name) || strings.Contains(zf.Name, `\`) || strings.HasPrefix(zf.Name, "/") {
			t.Errorf("entry name %q is not local", zf.Name)
		}
		dst := filepath.Join(root, filepath.FromSlash(zf.Name))
		if rel, err := filepath.Rel(root, dst); err != nil || !filepath.IsLocal(rel) {
			t.Errorf("entry %q escapes the target directory", zf.Name)
		}
		if _, dup := out[zf.Name]; dup {
			t.Errorf("duplicate entry %q", zf.Name)
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc) // zip checks each entry's CRC-32 at EOF
		rc.Close()
		if err != nil {
			t.Fatalf("entry %s: %v", zf.Name, err)
		}
		out[zf.Name] = b
	}
	return out
}

func TestExportRoundTrip(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		bigSize := 2*exportProgressStep + 17
		if e.name != "mem" {
			bigSize = 64 << 10 // the progress within artifacts is checked on mem
		}
		f, byURI := exportFixture(t, e, bigSize)
		for _, tc := range []struct {
			name string
			opts ExportOptions
			uris []string
		}{
			{"spec", ExportOptions{Spec: "s"}, []string{"artifact://s/t1/diff", "artifact://s/t1/log", "artifact://s/t2/custom.type-1", "artifact://s/t2/test"}},
			{"task", ExportOptions{Spec: "s", Task: "t2", NoCompression: true}, []string{"artifact://s/t2/custom.type-1", "artifact://s/t2/test"}},
			{"all versions", ExportOptions{Spec: "s", Task: "t1", AllVersions: true}, []string{"artifact://s/t1/diff", "artifact://s/t1/log"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var (
					buf   bytes.Buffer
					steps []ExportProgress
				)
				tc.opts.Progress = func(p ExportProgress) { steps = append(steps, p) }
				rep, err := f.s.Export(ctx, &buf, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				entries := unzip(t, buf.Bytes())
				want := map[string]bool{}
				var wantBytes int64
				versions := 0
				for _, uri := range tc.uris {
					u, _ := ParseURI(uri)
					mds := byURI[uri]
					if !tc.opts.AllVersions {
						mds = mds[len(mds)-1:]
					}
					for _, md := range mds {
						name := contentEntryName(u, md.Version, tc.opts.AllVersions)
						want[name] = true
						got, ok := entries[name]
						if !ok {
							t.Fatalf("no entry %s in %v", name, slices.Sorted(mapsKeys(entries)))
						}
						stored, _ := mustDownload(t, f.s, md.URI)
						if !bytes.Equal(got, stored) || sha(got) != md.SHA256 {
							t.Errorf("%s: %d bytes, sha256 %s; store has %d bytes, sha256 %s", name, len(got), sha(got), len(stored), md.SHA256)
						}
						wantBytes += md.Size
						versions++
					}
					metaName := metadataEntryName(u)
					want[metaName] = true
					var meta []Metadata
					if err := json.Unmarshal(entries[metaName], &meta); err != nil {
						t.Fatalf("%s: %v", metaName, err)
					}
					if len(meta) != len(mds) {
						t.Fatalf("%s: %d versions, want %d", metaName, len(meta), len(mds))
					}
					for i := range meta {
						if meta[i].URI != mds[i].URI || meta[i].SHA256 != mds[i].SHA256 || meta[i].Metadata["k"] != uri ||
							!slices.Equal(meta[i].Tags, []string{"run-1"}) {
							t.Errorf("%s[%d] = %+v, want %+v", metaName, i, meta[i], mds[i])
						}
					}
				}
				if len(entries) != len(want) {
					t.Errorf("entries %v, want %v", slices.Sorted(mapsKeys(entries)), slices.Sorted(mapsKeys(want)))
				}
				if rep.Artifacts != len(tc.uris) || rep.Versions != versions || rep.Bytes != wantBytes || rep.Entries != len(want) {
					t.Errorf("report %+v; want %d artifacts, %d versions, %d bytes", rep, len(tc.uris), versions, wantBytes)
				}
				checkProgress(t, steps, len(tc.uris), wantBytes)
			})
		}
	})
}

// checkProgress checks that progress starts at zero, never goes back, and
// ends at the totals.
func checkProgress(t *testing.T, steps []ExportProgress, artifacts int, bytes int64) {
	t.Helper()
	if len(steps) < 2 {
		t.Fatalf("%d progress reports", len(steps))
	}
	if first := steps[0]; first.ArtifactsDone != 0 || first.BytesDone != 0 {
		t.Errorf("first report %+v", first)
	}
	for i := 1; i < len(steps); i++ {
		if steps[i].ArtifactsDone < steps[i-1].ArtifactsDone || steps[i].BytesDone < steps[i-1].BytesDone {
			t.Errorf("progress went back: %+v after %+v", steps[i], steps[i-1])
		}
	}
	for _, p := range steps {
		if p.ArtifactsDone > p.ArtifactsTotal || p.BytesDone > p.BytesTotal {
			t.Errorf("progress past its totals: %+v", p)
		}
	}
	last := steps[len(steps)-1]
	want := ExportProgress{ArtifactsDone: artifacts, ArtifactsTotal: artifacts, BytesDone: bytes, BytesTotal: bytes}
	if last != want {
		t.Errorf("last report %+v, want %+v", last, want)
	}
	if bytes > 2*exportProgressStep && len(steps) <= artifacts+1 {
		t.Errorf("no progress reported within large artifacts: %d reports", len(steps))
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestExportFile(t *testing.T) {
	ctx := context.Background()
	f, byURI := exportFixture(t, memEnv(), 64<<10)
	dir := t.TempDir()
	p, rep, err := f.s.ExportFile(ctx, dir, ExportOptions{Spec: "s", Task: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "s-t1.zip") || rep.Artifacts != 2 {
		t.Fatalf("path %s, report %+v", p, rep)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	entries := unzip(t, data)
	log := byURI["artifact://s/t1/log"][1]
	if sha(entries["s/t1/log"]) != log.SHA256 {
		t.Errorf("s/t1/log differs from the store")
	}
	// An explicit file path; an existing file is replaced.
	target := filepath.Join(dir, "out.zip")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, _, err = f.s.ExportFile(ctx, target, ExportOptions{Spec: "s"}); err != nil || p != target {
		t.Fatalf("ExportFile(%s) = %s, %v", target, p, err)
	}
	if data, _ := os.ReadFile(target); len(unzip(t, data)) != 8 {
		t.Errorf("replaced file has the wrong entries")
	}

	// Failures leave no file behind.
	corrupt := byURI["artifact://s/t2/test"][1]
	bad := []byte("garbage")
	if _, err := f.b.Put(ctx, corrupt.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts ExportOptions
		want error
	}{
		{ExportOptions{Spec: "s", Task: "t2"}, ErrIntegrity},
		{ExportOptions{Spec: "nothing"}, ErrNotFound},
		{ExportOptions{Spec: "../etc"}, ErrInvalidArgument},
		{ExportOptions{Spec: ""}, ErrInvalidArgument},
		{ExportOptions{Spec: "s", Task: "a/b"}, ErrInvalidArgument},
	} {
		sub := t.TempDir()
		_, _, err := f.s.ExportFile(ctx, sub, tc.opts)
		if !errors.Is(err, tc.want) {
			t.Errorf("ExportFile(%+v): %v, want %v", tc.opts, err, tc.want)
		}
		if left, _ := os.ReadDir(sub); len(left) != 0 {
			t.Errorf("ExportFile(%+v) left %v", tc.opts, left)
		}
		var buf bytes.Buffer
		if _, err := f.s.Export(ctx, &buf, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("Export(%+v): %v, want %v", tc.opts, err, tc.want)
		}
	}
	if _, _, err := f.s.ExportFile(ctx, "", ExportOptions{Spec: "s"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty path: %v", err)
	}
	if _, err := f.s.Export(ctx, nil, ExportOptions{Spec: "s"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil writer: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.s.Export(cctx, io.Discard, ExportOptions{Spec: "s"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestExportReplacedMeanwhile: an artifact replaced between the listing and
// the reading of its blob is exported in its new state.
func TestExportReplacedMeanwhile(t *testing.T) {
	ctx := context.Background()
	var g *gate
	f := newFixture(t, memEnv(), Config{}, func(b backend.Backend) backend.Backend {
		g = newGate(b, "get", blobRoot)
		return g
	})
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("old content"), UploadOptions{})
	g.arm()
	var (
		buf  bytes.Buffer
		rep  ExportReport
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		rep, err = f.s.Export(ctx, &buf, ExportOptions{Spec: "s"})
	}()
	waitFor(t, g.entered, "the export to read the blob")
	fresh := mustUpload(t, f.s, uri, []byte("new content!"), UploadOptions{}) // deletes the old blob
	close(g.release)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	entries := unzip(t, buf.Bytes())
	if string(entries["s/t/log"]) != "new content!" || rep.Bytes != fresh.Size {
		t.Fatalf("exported %q (report %+v), want the new content", entries["s/t/log"], rep)
	}
	var meta []Metadata
	if err := json.Unmarshal(entries["s/t/log@metadata.json"], &meta); err != nil || len(meta) != 1 || meta[0].URI != fresh.URI {
		t.Fatalf("metadata %+v, %v; want %s", meta, err, fresh.URI)
	}
}

func TestCheckEntryName(t *testing.T) {
	for _, good := range []string{"s/t/log", "s/t/log@v12", "s/t/custom.type@metadata.json", "a-b/c_d/e.f"} {
		if err := checkEntryName(good); err != nil {
			t.Errorf("checkEntryName(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "s/../../x", "s/./t", "s//t", `s\t\..\x`, "C:/x", "s/t/", "..", "s/t/log\x00"} {
		if err := checkEntryName(bad); err == nil {
			t.Errorf("checkEntryName(%q) accepted it", bad)
		}
	}
}
