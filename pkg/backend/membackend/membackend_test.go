package membackend_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		b := membackend.New()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// An object and a key below it coexist, as on S3.
func TestKeyBelowObjectCoexist(t *testing.T) {
	ctx := t.Context()
	b := membackend.New()
	for _, k := range []string{"a", "a/b", "a/b/c", "a-b"} {
		if _, err := b.Put(ctx, k, strings.NewReader(k), int64(len(k)), backend.PutOptions{}); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	var got []string
	for info, err := range b.List(ctx, "a") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, info.Key)
	}
	if want := []string{"a", "a-b", "a/b", "a/b/c"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

// Every Put gets a new ETag, even with the same bytes.
func TestETagChangesOnIdenticalPut(t *testing.T) {
	ctx := t.Context()
	b := membackend.New()
	first, err := b.Put(ctx, "k", strings.NewReader("same"), 4, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Put(ctx, "k", strings.NewReader("same"), 4, backend.PutOptions{IfMatch: first.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if first.ETag == second.ETag {
		t.Errorf("ETag %q unchanged by a second Put", first.ETag)
	}
	if _, err := b.Put(ctx, "k", strings.NewReader("same"), 4, backend.PutOptions{IfMatch: first.ETag}); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("IfMatch with the first ETag: err = %v, want ErrPreconditionFailed", err)
	}
}

// A reader returned by Get keeps reading the version it opened.
func TestGetReadsSnapshot(t *testing.T) {
	ctx := t.Context()
	b := membackend.New()
	if _, err := b.Put(ctx, "k", strings.NewReader("old"), 3, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := b.Put(ctx, "k", strings.NewReader("new!"), 4, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, []byte("old")) {
		t.Errorf("read %q, %v; want \"old\"", got, err)
	}
}

// The reader's own error stays in the chain of a failed Put.
func TestReaderErrorInChain(t *testing.T) {
	errBoom := errors.New("boom")
	b := membackend.New()
	_, err := b.Put(t.Context(), "k", io.MultiReader(strings.NewReader("part"), errReader{errBoom}), 100, backend.PutOptions{})
	if !errors.Is(err, errBoom) {
		t.Errorf("err = %v, want it to wrap the reader's error", err)
	}
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat after a failed Put: err = %v, want ErrNotFound", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// DeleteIfMatch deletes only the version it names.
func TestDeleteIfMatch(t *testing.T) {
	ctx := t.Context()
	b := membackend.New()
	first, err := b.Put(ctx, "k", strings.NewReader("one"), 3, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Put(ctx, "k", strings.NewReader("two"), 3, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteIfMatch(ctx, "k", first.ETag); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("DeleteIfMatch(stale) = %v, want ErrPreconditionFailed", err)
	}
	if err := b.DeleteIfMatch(ctx, "missing", second.ETag); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("DeleteIfMatch(missing) = %v, want ErrNotFound", err)
	}
	if err := b.DeleteIfMatch(ctx, "k", second.ETag); err != nil {
		t.Fatalf("DeleteIfMatch(current) = %v", err)
	}
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat after DeleteIfMatch = %v, want ErrNotFound", err)
	}
	if err := b.DeleteIfMatch(ctx, "k", second.ETag); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("second DeleteIfMatch = %v, want ErrNotFound", err)
	}
}
