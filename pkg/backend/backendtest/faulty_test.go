package backendtest_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

// Faulty with no fault is a transparent decorator.
func TestFaultyConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		f := backendtest.NewFaulty(membackend.New())
		t.Cleanup(func() { _ = f.Close() })
		return f
	})
}

func TestFaultySkipTimes(t *testing.T) {
	f := backendtest.NewFaulty(membackend.New())
	boom := backendtest.Transient("boom")
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, KeyPrefix: "a/", Skip: 1, Times: 2, Err: boom})
	var got []bool
	for range 5 {
		_, err := f.Stat(t.Context(), "a/k")
		got = append(got, errors.Is(err, boom))
	}
	if want := []bool{false, true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("faulted calls = %v, want %v", got, want)
	}
	// Other keys and operations are not matched.
	if _, err := f.Stat(t.Context(), "b/k"); errors.Is(err, boom) {
		t.Errorf("a key outside KeyPrefix got the fault")
	}
	if err := f.Delete(t.Context(), "a/k"); err != nil {
		t.Errorf("Delete got a Stat fault: %v", err)
	}
	if n := f.Calls(backendtest.OpStat); n != 6 {
		t.Errorf("Calls(Stat) = %d, want 6", n)
	}
	if !errors.Is(boom, backend.ErrTransient) || !errors.Is(boom, backendtest.ErrInjected) {
		t.Errorf("Transient error %v does not match ErrTransient and ErrInjected", boom)
	}
	f.Clear()
	if n := f.Calls(backendtest.OpStat); n != 0 {
		t.Errorf("Calls after Clear = %d", n)
	}
}

func TestFaultyStages(t *testing.T) {
	ctx := t.Context()
	boom := backendtest.Transient("boom")
	mem := membackend.New()
	f := backendtest.NewFaulty(mem)

	// After: the Put happens, the caller gets the error.
	f.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: boom, At: backendtest.After})
	if _, err := f.Put(ctx, "after", strings.NewReader("stored"), 6, backend.PutOptions{}); !errors.Is(err, boom) {
		t.Errorf("Put: err = %v", err)
	}
	if _, err := mem.Stat(ctx, "after"); err != nil {
		t.Errorf("the Put with an After fault was not stored: %v", err)
	}

	// Before: nothing reaches the backend, nothing is read.
	f.Clear()
	f.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: boom})
	body := strings.NewReader("unread")
	if _, err := f.Put(ctx, "before", body, 6, backend.PutOptions{}); !errors.Is(err, boom) {
		t.Errorf("Put: err = %v", err)
	}
	if body.Len() != 6 {
		t.Errorf("a Before fault read %d bytes of the body", 6-body.Len())
	}
	if _, err := mem.Stat(ctx, "before"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(before) = %v", err)
	}

	// Midway: the body fails after Offset bytes; nothing is stored.
	f.Clear()
	f.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: boom, At: backendtest.Midway, Offset: 3})
	body = strings.NewReader("partial")
	if _, err := f.Put(ctx, "midway", body, 7, backend.PutOptions{}); !errors.Is(err, boom) {
		t.Errorf("Put: err = %v", err)
	}
	if read := 7 - body.Len(); read != 3 {
		t.Errorf("a Midway fault at 3 let %d bytes through", read)
	}
	if _, err := mem.Stat(ctx, "midway"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(midway) = %v", err)
	}

	// Midway on Get: the reader fails after Offset bytes.
	f.Clear()
	f.Inject(backendtest.Fault{Op: backendtest.OpGet, Times: 1, Err: boom, At: backendtest.Midway, Offset: 2})
	rc, info, err := f.Get(ctx, "after")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if string(data) != "st" || !errors.Is(err, boom) || info.Size != 6 {
		t.Errorf("Get read %q, %v (Size %d); want \"st\" then the fault", data, err, info.Size)
	}

	// Midway on List: the error after Offset objects.
	f.Clear()
	for _, k := range []string{"l/a", "l/b", "l/c"} {
		if _, err := mem.Put(ctx, k, strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for offset := range 4 {
		f.Clear()
		f.Inject(backendtest.Fault{Op: backendtest.OpList, Err: boom, At: backendtest.Midway, Offset: int64(offset)})
		var keys []string
		var lerr error
		for info, err := range f.List(ctx, "l/") {
			if err != nil {
				lerr = err
				break
			}
			keys = append(keys, info.Key)
		}
		if len(keys) != offset || !errors.Is(lerr, boom) {
			t.Errorf("List with a fault at %d: %q, %v", offset, keys, lerr)
		}
	}
}

func TestFaultyDelay(t *testing.T) {
	f := backendtest.NewFaulty(membackend.New())
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Stat(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat with a delay past the deadline: err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the delay ignored the context")
	}
	f.Clear()
	f.Inject(backendtest.Fault{Op: backendtest.OpStat, Delay: 5 * time.Millisecond})
	start = time.Now()
	if _, err := f.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat = %v, want the wrapped backend's answer", err)
	}
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("Stat took %v, want at least the 5ms delay", d)
	}
}

func TestFaultyIgnoreConditions(t *testing.T) {
	f := backendtest.NewFaulty(membackend.New())
	f.Inject(backendtest.Fault{Op: backendtest.OpPut, IgnoreIfAbsent: true})
	for range 2 {
		if _, err := f.Put(t.Context(), "k", strings.NewReader("x"), 1, backend.PutOptions{IfAbsent: true}); err != nil {
			t.Errorf("IfAbsent Put with the condition dropped: %v", err)
		}
	}
	if f.Unwrap() == nil {
		t.Errorf("Unwrap = nil")
	}
}

// DeleteIfMatch goes through the faults aimed at OpDeleteIfMatch, and only
// those; After deletes and then fails; IgnoreIfMatch drops the condition.
func TestFaultyDeleteIfMatch(t *testing.T) {
	ctx := t.Context()
	boom := backendtest.Transient("boom")
	mem := membackend.New()
	f := backendtest.NewFaulty(mem)
	put := func(key string) backend.ObjectInfo {
		t.Helper()
		info, err := mem.Put(ctx, key, strings.NewReader("v"), 1, backend.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	exists := func(key string) bool {
		t.Helper()
		_, err := mem.Stat(ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	info := put("k")
	f.Inject(backendtest.Fault{Op: backendtest.OpDelete, Err: boom}) // not DeleteIfMatch's
	if err := f.DeleteIfMatch(ctx, "k", "stale"); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("DeleteIfMatch(stale) = %v, want ErrPreconditionFailed", err)
	}

	// Before: nothing reaches the backend.
	f.Clear()
	f.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Times: 1, Err: boom})
	if err := f.DeleteIfMatch(ctx, "k", info.ETag); !errors.Is(err, boom) {
		t.Errorf("DeleteIfMatch with a Before fault = %v", err)
	}
	if !exists("k") {
		t.Errorf("a Before fault let the delete through")
	}

	// After: the object is deleted, the caller gets the error.
	f.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Times: 1, Err: boom, At: backendtest.After})
	if err := f.DeleteIfMatch(ctx, "k", info.ETag); !errors.Is(err, boom) {
		t.Errorf("DeleteIfMatch with an After fault = %v", err)
	}
	if exists("k") {
		t.Errorf("an After fault kept the delete from happening")
	}
	// After, when the wrapped call itself fails: its own error.
	f.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Times: 1, Err: boom, At: backendtest.After})
	if err := f.DeleteIfMatch(ctx, "k", info.ETag); !errors.Is(err, backend.ErrNotFound) || errors.Is(err, boom) {
		t.Errorf("DeleteIfMatch of a missing key with an After fault = %v, want ErrNotFound", err)
	}
	if n := f.Calls(backendtest.OpDeleteIfMatch); n != 3 {
		t.Errorf("Calls(DeleteIfMatch) = %d, want 3", n)
	}

	// IgnoreIfMatch: a stale ETag deletes, a missing key succeeds.
	f.Clear()
	put("k")
	f.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, IgnoreIfMatch: true})
	if err := f.DeleteIfMatch(ctx, "k", "stale"); err != nil {
		t.Errorf("DeleteIfMatch(stale) with the condition dropped = %v", err)
	}
	if exists("k") {
		t.Errorf("DeleteIfMatch with the condition dropped kept the object")
	}
	if err := f.DeleteIfMatch(ctx, "k", "stale"); err != nil {
		t.Errorf("DeleteIfMatch(missing) with the condition dropped = %v", err)
	}

	// A wrapped backend without the capability: ErrUnsupported, and no
	// fault is consumed.
	p := backendtest.NewFaulty(struct{ backend.Backend }{mem})
	p.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Times: 1, Err: boom})
	if err := p.DeleteIfMatch(ctx, "k", "etag"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DeleteIfMatch over a backend without it = %v, want errors.ErrUnsupported", err)
	}
	if n := p.Calls(backendtest.OpDeleteIfMatch); n != 0 {
		t.Errorf("Calls(DeleteIfMatch) = %d for an unsupported call", n)
	}
}

// A Hook runs for each disturbed call, after Delay and before the call
// reaches the wrapped backend or fails with a Before error, so that a test
// can hold a writer at an exact point and act meanwhile.
func TestFaultyHook(t *testing.T) {
	ctx := t.Context()
	mem := membackend.New()
	f := backendtest.NewFaulty(mem)

	// The hook sees the call's op and key, only for the disturbed calls,
	// and runs before a Before error.
	type call struct {
		op  backendtest.Op
		key string
	}
	var seen []call
	record := func(_ context.Context, op backendtest.Op, key string) { seen = append(seen, call{op, key}) }
	boom := backendtest.Permanent("boom", backend.ErrPermissionDenied)
	f.Inject(
		backendtest.Fault{Op: backendtest.OpStat, KeyPrefix: "a/", Skip: 1, Times: 1, Hook: record},
		backendtest.Fault{Op: backendtest.OpDelete, Hook: record, Err: boom},
		backendtest.Fault{Op: backendtest.OpList, Hook: record},
		backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Hook: record},
	)
	for range 3 {
		_, _ = f.Stat(ctx, "a/k")
	}
	_, _ = f.Stat(ctx, "b/k")
	if err := f.Delete(ctx, "a/k"); !errors.Is(err, boom) {
		t.Errorf("Delete = %v, want the injected error", err)
	}
	for range f.List(ctx, "a/") {
	}
	_ = f.DeleteIfMatch(ctx, "a/k", "etag")
	want := []call{{backendtest.OpStat, "a/k"}, {backendtest.OpDelete, "a/k"}, {backendtest.OpList, "a/"}, {backendtest.OpDeleteIfMatch, "a/k"}}
	if !slices.Equal(seen, want) {
		t.Errorf("hook calls = %v, want %v", seen, want)
	}

	// Hold a conditional writer between its read and its write: another
	// writer commits meanwhile, and the held one then loses.
	f.Clear()
	base, err := mem.Put(ctx, "m", strings.NewReader("base"), 4, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	f.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "m", Times: 1, Hook: func(ctx context.Context, _ backendtest.Op, _ string) {
		close(reached)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	done := make(chan error, 1)
	go func() {
		_, err := f.Put(ctx, "m", strings.NewReader("held"), 4, backend.PutOptions{IfMatch: base.ETag})
		done <- err
	}()
	<-reached
	if got := content(t, mem, "m"); got != "base" {
		t.Errorf("while the writer is held the object holds %q: the Put reached the backend before its hook returned", got)
	}
	if _, err := f.Put(ctx, "m", strings.NewReader("other"), 5, backend.PutOptions{IfMatch: base.ETag}); err != nil {
		t.Fatalf("competing Put while the first is held: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("the held Put = %v, want ErrPreconditionFailed", err)
	}
	if got := content(t, mem, "m"); got != "other" {
		t.Errorf("object holds %q, want the competing write", got)
	}

	// The hook runs after the delay, and several run in order.
	f.Clear()
	var order []string
	start := time.Now()
	var waited time.Duration
	f.Inject(
		backendtest.Fault{Op: backendtest.OpGet, Delay: 5 * time.Millisecond, Hook: func(context.Context, backendtest.Op, string) {
			waited = time.Since(start)
			order = append(order, "first")
		}},
		backendtest.Fault{Op: backendtest.OpGet, Hook: func(context.Context, backendtest.Op, string) { order = append(order, "second") }},
	)
	if _, _, err := f.Get(ctx, "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get = %v", err)
	}
	if waited < 5*time.Millisecond {
		t.Errorf("the hook ran %v after the call, before its 5ms delay", waited)
	}
	if !slices.Equal(order, []string{"first", "second"}) {
		t.Errorf("hooks ran in order %v", order)
	}
}

func content(t *testing.T, b backend.Backend, key string) string {
	t.Helper()
	rc, _, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
