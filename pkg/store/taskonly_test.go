package store

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTaskAcrossSpecs(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	for _, uri := range []string{"artifact://a/t1/log", "artifact://a/t1/diff", "artifact://b/t1/log", "artifact://b/t2/log", "artifact://c/t10/log"} {
		mustUpload(t, f.s, uri, []byte(uri), UploadOptions{})
	}
	var buf bytes.Buffer
	rep, err := f.s.Export(ctx, &buf, ExportOptions{Task: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
	}
	want := []string{"a/t1/diff", "a/t1/diff@metadata.json", "a/t1/log", "a/t1/log@metadata.json", "b/t1/log", "b/t1/log@metadata.json"}
	if !slices.Equal(names, want) || rep.Artifacts != 3 {
		t.Errorf("export of task t1 = %v (%d artifacts), want %v", names, rep.Artifacts, want)
	}
	dir := t.TempDir()
	p, _, err := f.s.ExportFile(ctx, dir, ExportOptions{Task: "t1"})
	if err != nil || p != filepath.Join(dir, "task-t1.zip") {
		t.Errorf("ExportFile = %q, %v; want %s", p, err, filepath.Join(dir, "task-t1.zip"))
	}
	if _, err := os.Stat(p); err != nil {
		t.Error(err)
	}
	if _, err := f.s.Export(ctx, &buf, ExportOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("export of nothing named: %v, want ErrInvalidArgument", err)
	}
	if _, err := f.s.Export(ctx, &buf, ExportOptions{Task: "none"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("export of a task without artifacts: %v, want ErrNotFound", err)
	}

	n, err := f.s.DeleteByTask(ctx, "", "t1")
	if err != nil || n != 3 {
		t.Fatalf("DeleteByTask(\"\", t1) = %d, %v; want 3", n, err)
	}
	left, err := f.s.Search(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, md := range left {
		uris = append(uris, md.URI)
	}
	if !slices.Equal(uris, []string{"artifact://b/t2/log?version=1", "artifact://c/t10/log?version=1"}) {
		t.Errorf("left after deleting task t1: %v", uris)
	}
	if _, err := f.s.DeleteByTask(ctx, "", ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("DeleteByTask without a task: %v", err)
	}
}
