package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

// retries returns the attributes of the "retrying" records of h.
func retries(h *testenv.LogRecorder) []map[string]slog.Value {
	var out []map[string]slog.Value
	for _, rec := range h.Records() {
		if strings.Contains(rec.Message, "retrying") {
			out = append(out, testenv.Attrs(rec))
		}
	}
	return out
}

// fixture is a membackend behind a Faulty behind a Retrying with tiny
// delays.
type fixture struct {
	mem    *membackend.Backend
	faulty *backendtest.Faulty
	retry  *backend.Retrying
	log    *testenv.LogRecorder
}

func newFixture(t *testing.T, cfg backend.RetryConfig) *fixture {
	t.Helper()
	f := &fixture{mem: membackend.New(), log: &testenv.LogRecorder{}}
	f.faulty = backendtest.NewFaulty(f.mem)
	if cfg.Initial == 0 {
		cfg.Initial = time.Microsecond
	}
	if cfg.Max == 0 {
		cfg.Max = 10 * time.Microsecond
	}
	cfg.Logger = slog.New(f.log)
	f.retry = backend.WithRetry(f.faulty, cfg)
	t.Cleanup(func() { _ = f.retry.Close() })
	return f
}

func (f *fixture) content(t *testing.T, key string) string {
	t.Helper()
	rc, _, err := f.mem.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) from the wrapped backend: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var transient = backendtest.Transient("connection reset")

func TestRetryConfig(t *testing.T) {
	d := backend.RetryConfig{}.WithDefaults()
	if d.MaxRetries != 3 || d.Initial != 100*time.Millisecond || d.Max != 5*time.Second || d.Logger == nil {
		t.Errorf("defaults = %+v", d)
	}
	if got := (backend.RetryConfig{Initial: 10 * time.Second}).WithDefaults().Max; got != 10*time.Second {
		t.Errorf("Max with Initial 10s = %v, want 10s", got)
	}
	tests := []struct {
		name string
		cfg  backend.RetryConfig
		ok   bool
	}{
		{"zero", backend.RetryConfig{}, true},
		{"explicit", backend.RetryConfig{MaxRetries: 5, Initial: time.Millisecond, Max: time.Second}, true},
		{"equal bounds", backend.RetryConfig{Initial: time.Second, Max: time.Second}, true},
		{"retries off", backend.RetryConfig{MaxRetries: -1}, true},
		{"negative initial", backend.RetryConfig{Initial: -time.Second}, false},
		{"max below initial", backend.RetryConfig{Initial: time.Second, Max: time.Millisecond}, false},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if tc.ok && err != nil {
			t.Errorf("%s: Validate = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
}

// The decorator passes the whole contract.
func TestRetryingConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		r := backend.WithRetry(membackend.New(), backend.RetryConfig{})
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}

// Under transient faults on every third call (of the first 300 of each
// operation) the contract still holds. MaxRetries is high because the
// concurrent subtests can hand several faulty calls in a row to one caller.
// Conditional Puts bypass the faults: Retrying never re-sends them, so
// their transient failures reach the caller by design (see
// TestRetryConditionalPutNotRetried).
func TestRetryingConformanceUnderFaults(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		mem := membackend.New()
		f := backendtest.NewFaulty(mem)
		for i := range 100 {
			for _, op := range []backendtest.Op{backendtest.OpGet, backendtest.OpStat, backendtest.OpList} {
				f.Inject(backendtest.Fault{Op: op, Skip: 3*i + 2, Times: 1, Err: transient})
			}
			// A lost Delete response is harmless: Delete is idempotent.
			f.Inject(backendtest.Fault{Op: backendtest.OpDelete, Skip: 3*i + 2, Times: 1, Err: transient, At: backendtest.After})
			// Before: no body consumed, so every kind of reader can be
			// sent again.
			f.Inject(backendtest.Fault{Op: backendtest.OpPut, Skip: 3*i + 2, Times: 1, Err: transient})
		}
		r := backend.WithRetry(conditionalBypass{Faulty: f, direct: mem}, backend.RetryConfig{MaxRetries: 10, Initial: time.Microsecond})
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}

// conditionalBypass sends conditional Puts and DeleteIfMatch straight to
// direct, every other call through the Faulty.
type conditionalBypass struct {
	*backendtest.Faulty
	direct *membackend.Backend
}

func (c conditionalBypass) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if opts.IfAbsent || opts.IfMatch != "" {
		return c.direct.Put(ctx, key, r, size, opts)
	}
	return c.Faulty.Put(ctx, key, r, size, opts)
}

func (c conditionalBypass) DeleteIfMatch(ctx context.Context, key, etag string) error {
	return c.direct.DeleteIfMatch(ctx, key, etag)
}

func TestRetryPutSeekable(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 2, Err: transient, At: backendtest.Midway, Offset: 4})
	data := "0123456789abcdef"
	r := strings.NewReader("skip:" + data)
	if _, err := r.Seek(5, io.SeekStart); err != nil { // Put starts mid-reader
		t.Fatal(err)
	}
	info, err := f.retry.Put(t.Context(), "k", r, int64(len(data)), backend.PutOptions{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Size = %d", info.Size)
	}
	if got := f.content(t, "k"); got != data {
		t.Errorf("stored %q, want %q (the body was not rewound to its start offset)", got, data)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 3 {
		t.Errorf("Put calls = %d, want 3", n)
	}
	if n := len(retries(f.log)); n != 2 {
		t.Errorf("retry log records = %d, want 2", n)
	}
}

func TestRetryPutUnseekableConsumed(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: transient, At: backendtest.Midway, Offset: 4})
	body := io.MultiReader(strings.NewReader("0123456789")) // no Seek
	_, err := f.retry.Put(t.Context(), "k", body, 10, backend.PutOptions{})
	if !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Put: err = %v, want the transient error", err)
	}
	if !strings.Contains(err.Error(), "cannot be rewound") {
		t.Errorf("error %q does not say why it was not retried", err)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 1 {
		t.Errorf("Put calls = %d, want 1: a consumed body must not be re-sent", n)
	}
	if _, err := f.mem.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
}

func TestRetryPutUnseekableUntouched(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 2, Err: transient}) // Before: nothing read
	body := io.MultiReader(strings.NewReader("0123456789"))
	if _, err := f.retry.Put(t.Context(), "k", body, 10, backend.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := f.content(t, "k"); got != "0123456789" {
		t.Errorf("stored %q", got)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 3 {
		t.Errorf("Put calls = %d, want 3", n)
	}
}

// A pipe is an *os.File, which implements io.Seeker, but cannot seek: it is
// treated as a stream.
func TestRetryPutPipe(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: transient, At: backendtest.Midway, Offset: 2})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	go func() {
		_, _ = pw.Write([]byte("0123456789"))
		pw.Close()
	}()
	_, err = f.retry.Put(t.Context(), "k", pr, 10, backend.PutOptions{})
	if !errors.Is(err, backend.ErrTransient) {
		t.Fatalf("Put: err = %v, want the transient error", err)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 1 {
		t.Errorf("Put calls = %d, want 1", n)
	}
}

func TestRetryPermanentErrorNotRetried(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	denied := backendtest.Permanent("access denied", backend.ErrPermissionDenied)
	for _, op := range []backendtest.Op{backendtest.OpPut, backendtest.OpGet, backendtest.OpStat, backendtest.OpDelete, backendtest.OpList} {
		f.faulty.Inject(backendtest.Fault{Op: op, Err: denied})
	}
	ctx := t.Context()
	if _, err := f.retry.Put(ctx, "k", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrPermissionDenied) {
		t.Errorf("Put: %v", err)
	}
	if _, _, err := f.retry.Get(ctx, "k"); !errors.Is(err, backend.ErrPermissionDenied) {
		t.Errorf("Get: %v", err)
	}
	if _, err := f.retry.Stat(ctx, "k"); !errors.Is(err, backend.ErrPermissionDenied) {
		t.Errorf("Stat: %v", err)
	}
	if err := f.retry.Delete(ctx, "k"); !errors.Is(err, backend.ErrPermissionDenied) {
		t.Errorf("Delete: %v", err)
	}
	for _, err := range f.retry.List(ctx, "") {
		if !errors.Is(err, backend.ErrPermissionDenied) {
			t.Errorf("List: %v", err)
		}
	}
	for _, op := range []backendtest.Op{backendtest.OpPut, backendtest.OpGet, backendtest.OpStat, backendtest.OpDelete, backendtest.OpList} {
		if n := f.faulty.Calls(op); n != 1 {
			t.Errorf("%s calls = %d, want 1", op, n)
		}
	}
	// Not found and precondition failures are answers, not failures.
	f.faulty.Clear()
	if _, err := f.retry.Stat(ctx, "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(missing): %v", err)
	}
	if n := f.faulty.Calls(backendtest.OpStat); n != 1 {
		t.Errorf("Stat calls = %d, want 1", n)
	}
	if len(retries(f.log)) != 0 {
		t.Errorf("permanent errors were logged as retries")
	}
}

func TestRetryGivesUp(t *testing.T) {
	for _, maxRetries := range []int{1, 3, 5} {
		f := newFixture(t, backend.RetryConfig{MaxRetries: maxRetries})
		f.faulty.Inject(backendtest.Fault{Op: backendtest.OpStat, Err: transient})
		_, err := f.retry.Stat(t.Context(), "k")
		if !errors.Is(err, backend.ErrTransient) || !errors.Is(err, backendtest.ErrInjected) {
			t.Errorf("MaxRetries %d: err = %v, want the injected transient error", maxRetries, err)
		}
		if n := f.faulty.Calls(backendtest.OpStat); n != maxRetries+1 {
			t.Errorf("MaxRetries %d: Stat calls = %d, want %d", maxRetries, n, maxRetries+1)
		}
		if n := len(retries(f.log)); n != maxRetries {
			t.Errorf("MaxRetries %d: retry log records = %d", maxRetries, n)
		}
	}
	// A negative MaxRetries turns retries off.
	f := newFixture(t, backend.RetryConfig{MaxRetries: -1})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpStat, Err: transient})
	if _, err := f.retry.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrTransient) {
		t.Errorf("MaxRetries -1: err = %v", err)
	}
	if n := f.faulty.Calls(backendtest.OpStat); n != 1 {
		t.Errorf("MaxRetries -1: Stat calls = %d, want 1", n)
	}
}

func TestRetryGetStatDelete(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	ctx := t.Context()
	if _, err := f.mem.Put(ctx, "k", strings.NewReader("value"), 5, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []backendtest.Op{backendtest.OpGet, backendtest.OpStat, backendtest.OpDelete} {
		f.faulty.Inject(backendtest.Fault{Op: op, Times: 2, Err: transient})
	}
	rc, info, err := f.retry.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "value" || info.Size != 5 {
		t.Errorf("Get = %q, %+v", data, info)
	}
	if _, err := f.retry.Stat(ctx, "k"); err != nil {
		t.Errorf("Stat: %v", err)
	}
	if err := f.retry.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	for _, op := range []backendtest.Op{backendtest.OpGet, backendtest.OpStat, backendtest.OpDelete} {
		if n := f.faulty.Calls(op); n != 3 {
			t.Errorf("%s calls = %d, want 3", op, n)
		}
	}
	records := retries(f.log)
	if len(records) != 6 {
		t.Fatalf("retry log records = %d, want 6", len(records))
	}
	for i, attrs := range records {
		if attrs["key"].String() != "k" || attrs["op"].String() == "" || attrs["err"].Any() == nil {
			t.Errorf("record %d lacks op, key or err: %v", i, attrs)
		}
		if want := int64(i%2 + 1); attrs["attempt"].Int64() != want {
			t.Errorf("record %d: attempt %v, want %d", i, attrs["attempt"], want)
		}
	}
	// A Delete whose response was lost is retried and stays idempotent.
	f.faulty.Clear()
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpDelete, Times: 1, Err: transient, At: backendtest.After})
	if _, err := f.mem.Put(ctx, "k", strings.NewReader("v"), 1, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.retry.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete after a lost response: %v", err)
	}
}

// The delays follow the policy: each below its ceiling, the ceilings
// doubling from Initial up to Max.
func TestRetryDelays(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{MaxRetries: 6, Initial: 100 * time.Microsecond, Max: 400 * time.Microsecond})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpStat, Err: transient})
	_, _ = f.retry.Stat(t.Context(), "k")
	ceilings := []time.Duration{100, 200, 400, 400, 400, 400}
	records := retries(f.log)
	if len(records) != len(ceilings) {
		t.Fatalf("retries = %d, want %d", len(records), len(ceilings))
	}
	for i, attrs := range records {
		d := attrs["delay"].Duration()
		if d < 0 || d > ceilings[i]*time.Microsecond {
			t.Errorf("delay %d = %v, want within [0, %v]", i, d, ceilings[i]*time.Microsecond)
		}
	}
}

func TestRetryHonoursContext(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{Initial: time.Hour, Max: time.Hour})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpStat, Err: transient})
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Err: transient})
	// A retry delay of up to an hour is cut short by the context; the
	// delay is random, so try until one is long enough to be interrupted.
	for range 20 {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		start := time.Now()
		_, err := f.retry.Stat(ctx, "k")
		cancel()
		if time.Since(start) > 10*time.Second {
			t.Fatalf("Stat waited %v: the context was not honoured", time.Since(start))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			if !errors.Is(err, backend.ErrTransient) {
				t.Errorf("err = %v: the last attempt's error is not in the chain", err)
			}
			if backend.IsTransient(err) {
				t.Errorf("IsTransient(%v) = true for a context error", err)
			}
			break
		}
	}
	// A context cancelled before the call: no attempt reaches the backend
	// beyond the first, which fails with the context's error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.faulty.Clear()
	if _, err := f.retry.Put(ctx, "k", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 1 {
		t.Errorf("Put calls = %d, want 1", n)
	}
}

// A conditional Put that fails with a transient error is not sent again,
// whether the failed attempt landed (After: a lost response) or not
// (Before): a retry of a landed write would fail against its own object.
// The error keeps the transient error and says the outcome is unknown.
func TestRetryConditionalPutNotRetried(t *testing.T) {
	for _, stage := range []backendtest.Stage{backendtest.Before, backendtest.After} {
		for _, cond := range []string{"IfAbsent", "IfMatch"} {
			t.Run(fmt.Sprintf("%s/stage %d", cond, stage), func(t *testing.T) {
				f := newFixture(t, backend.RetryConfig{})
				ctx := t.Context()
				opts := backend.PutOptions{IfAbsent: true}
				want := "old" // what the key holds when the Put did not land
				if cond == "IfMatch" {
					info, err := f.mem.Put(ctx, "k", strings.NewReader("old"), 3, backend.PutOptions{})
					if err != nil {
						t.Fatal(err)
					}
					opts = backend.PutOptions{IfMatch: info.ETag}
				}
				if stage == backendtest.After {
					want = "mine"
				}
				f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: transient, At: stage})
				_, err := f.retry.Put(ctx, "k", strings.NewReader("mine"), 4, opts)
				if !errors.Is(err, backend.ErrTransient) || !errors.Is(err, backendtest.ErrInjected) || !backend.IsTransient(err) {
					t.Fatalf("err = %v, want the injected transient error in the chain", err)
				}
				if errors.Is(err, backend.ErrPreconditionFailed) {
					t.Errorf("err = %v: a false precondition failure", err)
				}
				if !strings.Contains(err.Error(), "outcome") || !strings.Contains(err.Error(), "unknown") {
					t.Errorf("error %q does not say that the outcome is unknown", err)
				}
				if n := f.faulty.Calls(backendtest.OpPut); n != 1 {
					t.Errorf("Put calls = %d, want 1: a conditional Put was re-sent", n)
				}
				if len(retries(f.log)) != 0 {
					t.Errorf("a conditional Put was logged as retried")
				}
				if cond == "IfAbsent" && stage == backendtest.Before {
					if _, err := f.mem.Stat(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
						t.Errorf("Stat = %v, want ErrNotFound", err)
					}
					return
				}
				if got := f.content(t, "k"); got != want {
					t.Errorf("stored %q, want %q", got, want)
				}
			})
		}
	}
	// A definite answer passes through unchanged; an unconditional Put is
	// still retried.
	f := newFixture(t, backend.RetryConfig{})
	ctx := t.Context()
	if _, err := f.mem.Put(ctx, "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := f.retry.Put(ctx, "k", strings.NewReader("y"), 1, backend.PutOptions{IfAbsent: true})
	if !errors.Is(err, backend.ErrPreconditionFailed) || strings.Contains(err.Error(), "unknown") {
		t.Errorf("IfAbsent Put on an existing key: %v, want a plain ErrPreconditionFailed", err)
	}
	f.faulty.Clear()
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: transient, At: backendtest.After})
	if _, err := f.retry.Put(ctx, "k", strings.NewReader("z"), 1, backend.PutOptions{}); err != nil {
		t.Errorf("unconditional Put after a lost response: %v", err)
	}
	if n := f.faulty.Calls(backendtest.OpPut); n != 2 {
		t.Errorf("unconditional Put calls = %d, want 2", n)
	}
}

// DeleteIfMatch is forwarded once: never retried, a transient failure
// says the outcome is unknown, and a wrapped backend without the
// capability gives errors.ErrUnsupported.
func TestRetryDeleteIfMatch(t *testing.T) {
	f := newFixture(t, backend.RetryConfig{})
	ctx := t.Context()
	info, err := f.mem.Put(ctx, "k", strings.NewReader("v"), 1, backend.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.retry.DeleteIfMatch(ctx, "k", "stale"); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("DeleteIfMatch(stale) = %v, want ErrPreconditionFailed", err)
	}
	if err := f.retry.DeleteIfMatch(ctx, "missing", info.ETag); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("DeleteIfMatch(missing) = %v, want ErrNotFound", err)
	}

	// The response is lost: the object is gone, the caller is told the
	// outcome is unknown, and the call is not re-sent (a second attempt
	// would report ErrNotFound).
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Times: 1, Err: transient, At: backendtest.After})
	err = f.retry.DeleteIfMatch(ctx, "k", info.ETag)
	if !errors.Is(err, backend.ErrTransient) || errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("DeleteIfMatch with a lost response = %v, want the transient error, outcome unknown", err)
	}
	if n := f.faulty.Calls(backendtest.OpDeleteIfMatch); n != 3 {
		t.Errorf("DeleteIfMatch calls = %d, want 3 (one per call)", n)
	}
	if _, err := f.mem.Stat(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat after the lost response = %v, want ErrNotFound", err)
	}
	if len(retries(f.log)) != 0 {
		t.Errorf("DeleteIfMatch was logged as retried")
	}

	// Without the capability underneath.
	r := backend.WithRetry(plainBackend{membackend.New()}, backend.RetryConfig{})
	if err := r.DeleteIfMatch(ctx, "k", "etag"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DeleteIfMatch over a backend without it = %v, want errors.ErrUnsupported", err)
	}
}

// plainBackend hides every method of a Backend but the six of the
// interface, so it has no optional capability.
type plainBackend struct{ backend.Backend }

func TestRetryList(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	setup := func(t *testing.T, cfg backend.RetryConfig) *fixture {
		f := newFixture(t, cfg)
		for _, k := range keys {
			if _, err := f.mem.Put(t.Context(), k, strings.NewReader(k), 1, backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	collect := func(seq func(func(backend.ObjectInfo, error) bool)) ([]string, error) {
		var got []string
		for info, err := range seq {
			if err != nil {
				return got, err
			}
			got = append(got, info.Key)
		}
		return got, nil
	}

	t.Run("before the first object", func(t *testing.T) {
		f := setup(t, backend.RetryConfig{})
		f.faulty.Inject(backendtest.Fault{Op: backendtest.OpList, Times: 2, Err: transient})
		got, err := collect(f.retry.List(t.Context(), ""))
		if err != nil || !slices.Equal(got, keys) {
			t.Errorf("List = %q, %v; want %q", got, err, keys)
		}
		if n := f.faulty.Calls(backendtest.OpList); n != 3 {
			t.Errorf("List calls = %d, want 3", n)
		}
	})
	t.Run("midway resumes after the last key", func(t *testing.T) {
		f := setup(t, backend.RetryConfig{MaxRetries: 1})
		// The first listing fails after 2 objects, the second after 4:
		// each failure follows progress, so MaxRetries 1 (consecutive
		// failures without progress) is never exceeded.
		f.faulty.Inject(
			backendtest.Fault{Op: backendtest.OpList, Times: 1, Err: transient, At: backendtest.Midway, Offset: 2},
			backendtest.Fault{Op: backendtest.OpList, Skip: 1, Times: 1, Err: transient, At: backendtest.Midway, Offset: 4},
		)
		got, err := collect(f.retry.List(t.Context(), ""))
		if err != nil || !slices.Equal(got, keys) {
			t.Errorf("List = %q, %v; want %q once each", got, err, keys)
		}
		if n := f.faulty.Calls(backendtest.OpList); n != 3 {
			t.Errorf("List calls = %d, want 3", n)
		}
	})
	t.Run("no progress exhausts the retries", func(t *testing.T) {
		f := setup(t, backend.RetryConfig{MaxRetries: 2})
		// Every listing fails after 2 objects: the first makes progress,
		// the next two do not, and the third failure in a row ends it.
		f.faulty.Inject(backendtest.Fault{Op: backendtest.OpList, Err: transient, At: backendtest.Midway, Offset: 2})
		got, err := collect(f.retry.List(t.Context(), ""))
		if !errors.Is(err, backend.ErrTransient) {
			t.Errorf("err = %v, want the transient error", err)
		}
		if !slices.Equal(got, keys[:2]) {
			t.Errorf("yielded %q before the error, want %q", got, keys[:2])
		}
		if n := f.faulty.Calls(backendtest.OpList); n != 3 {
			t.Errorf("List calls = %d, want 3", n)
		}
	})
	t.Run("early break", func(t *testing.T) {
		f := setup(t, backend.RetryConfig{})
		f.faulty.Inject(backendtest.Fault{Op: backendtest.OpList, Times: 1, Err: transient})
		var got []string
		for info, err := range f.retry.List(t.Context(), "") {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, info.Key)
			if len(got) == 2 {
				break
			}
		}
		if !slices.Equal(got, keys[:2]) {
			t.Errorf("got %q", got)
		}
	})
}

func TestRetryUnwrap(t *testing.T) {
	mem := membackend.New()
	r := backend.WithRetry(mem, backend.RetryConfig{})
	if r.Unwrap() != backend.Backend(mem) {
		t.Errorf("Unwrap did not return the wrapped backend")
	}
	if r.Config().MaxRetries != backend.DefaultMaxRetries {
		t.Errorf("Config().MaxRetries = %d", r.Config().MaxRetries)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Put(t.Context(), "k", bytes.NewReader(nil), 0, backend.PutOptions{}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Close did not close the wrapped backend: %v", err)
	}
}

func TestRetryOnRetryHook(t *testing.T) {
	type call struct {
		op    string
		retry int
	}
	var calls []call // Stat retries run one after another
	cfg := backend.RetryConfig{MaxRetries: 3, OnRetry: func(_ context.Context, op string, retry int, err error) {
		if !errors.Is(err, backend.ErrTransient) {
			t.Errorf("OnRetry err = %v, want the transient error", err)
		}
		calls = append(calls, call{op, retry})
	}}
	f := newFixture(t, cfg)
	f.faulty.Inject(backendtest.Fault{Op: backendtest.OpStat, Times: 2, Err: transient})
	if _, err := f.retry.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat after two transient failures: err = %v, want not found", err)
	}
	if want := []call{{"stat", 1}, {"stat", 2}}; !slices.Equal(calls, want) {
		t.Errorf("OnRetry calls = %v, want %v", calls, want)
	}
	// A permanent failure is not retried and not reported.
	calls = nil
	if _, err := f.retry.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat: err = %v", err)
	}
	if len(calls) != 0 {
		t.Errorf("OnRetry called %v for a permanent failure", calls)
	}
}
