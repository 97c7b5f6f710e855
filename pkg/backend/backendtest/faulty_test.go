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
