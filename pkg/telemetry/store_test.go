package telemetry_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/store"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

const uri = "artifact://spec-1/task-7/log"

// children returns the spans whose parent is p.
func children(spans tracetest.SpanStubs, p tracetest.SpanStub) []string {
	var out []string
	for _, s := range spans {
		if s.Parent.SpanID() == p.SpanContext.SpanID() {
			out = append(out, s.Name)
		}
	}
	return out
}

func TestStoreSpans(t *testing.T) {
	r := newRig(t)
	s := r.newStore(t, membackend.New(), store.Config{})
	ctx := t.Context()
	if _, err := s.UploadBytes(ctx, uri, []byte("build ok\n"), store.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	up := r.one(t, "artifactstore.upload")
	if got := attr(up, telemetry.AttrURI); got != uri {
		t.Errorf("upload span %s = %q, want %q", telemetry.AttrURI, got, uri)
	}
	if up.Status.Code == codes.Error {
		t.Errorf("upload span status = %v, want not an error", up.Status)
	}
	kids := children(r.spans.GetSpans(), up)
	for _, want := range []string{"artifactstore.lock.acquire", "artifactstore.backend.put"} {
		if !slices.Contains(kids, want) {
			t.Errorf("upload span's children %v lack %q", kids, want)
		}
	}
	acq := r.named("artifactstore.lock.acquire")[0]
	if attr(acq, telemetry.AttrLockKey) == "" || attr(acq, telemetry.AttrFence) == "" {
		t.Errorf("lock span attributes %v lack the key or the fence", acq.Attributes)
	}
	for _, put := range r.named("artifactstore.backend.put") {
		if attr(put, telemetry.AttrKey) == "" {
			t.Errorf("backend span %v lacks the key", put.Attributes)
		}
	}

	// A failed operation: error status and kind, on its own span.
	r.spans.Reset()
	_, _, err := s.Download(ctx, "artifact://spec-1/task-7/diff")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Download of a missing artifact: %v", err)
	}
	down := r.one(t, "artifactstore.download")
	if down.Status.Code != codes.Error || attr(down, telemetry.AttrErrorKind) != "not_found" {
		t.Errorf("failed download span: status %v, %s %q; want Error, not_found",
			down.Status, telemetry.AttrErrorKind, attr(down, telemetry.AttrErrorKind))
	}
	if len(down.Events) == 0 || down.Events[0].Name != "exception" {
		t.Errorf("failed download span events = %v, want the recorded error", down.Events)
	}

	// An operation on many artifacts has no URI attribute; nested calls
	// are children of the caller's span.
	r.spans.Reset()
	if _, err := s.Search(ctx, store.Filter{Spec: "spec-1"}); err != nil {
		t.Fatal(err)
	}
	search := r.one(t, "artifactstore.search")
	if got := attr(search, telemetry.AttrURI); got != "" {
		t.Errorf("search span has a URI %q", got)
	}
	if kids := children(r.spans.GetSpans(), search); !slices.Contains(kids, "artifactstore.backend.list") {
		t.Errorf("search span's children %v lack a backend list", kids)
	}
	r.spans.Reset()
	err = s.WithLock(ctx, uri, store.LockOptions{}, func(ctx context.Context) error {
		_, err := s.AddTags(ctx, uri, "ci")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	with := r.one(t, "artifactstore.with-lock")
	if kids := children(r.spans.GetSpans(), with); !slices.Contains(kids, "artifactstore.add-tags") {
		t.Errorf("with-lock span's children %v lack the add-tags inside it", kids)
	}
}

// counter reads the value of the series of name with labels in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func TestStoreMetrics(t *testing.T) {
	r := newRig(t)
	s := r.newStore(t, membackend.New(), store.Config{Quota: store.QuotaConfig{MaxBytes: 1 << 20}})
	ctx := t.Context()
	content := strings.Repeat("x", 1000)
	if _, err := s.UploadBytes(ctx, uri, []byte(content), store.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _, err := s.Download(ctx, uri)
	if err != nil || string(data) != content {
		t.Fatalf("Download = %d bytes, %v", len(data), err)
	}
	if _, _, err := s.Download(ctx, "artifact://spec-1/task-7/diff"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Download of a missing artifact: %v", err)
	}
	if _, err := s.UploadBytes(ctx, "artifact://spec-1/../etc", nil, store.UploadOptions{}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("Upload with a bad URI: %v", err)
	}
	if _, err := s.UploadBytes(ctx, "artifact://spec-1/task-8/log", make([]byte, 2<<20), store.UploadOptions{}); !errors.Is(err, store.ErrStorageFull) {
		t.Fatalf("Upload past the quota: %v", err)
	}

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"artifactstore_operations_total", map[string]string{"op": "upload"}, 3},
		{"artifactstore_operations_total", map[string]string{"op": "download"}, 2},
		{"artifactstore_operation_duration_seconds", map[string]string{"op": "upload"}, 3},
		{"artifactstore_operation_errors_total", map[string]string{"op": "download", "kind": "not_found"}, 1},
		{"artifactstore_operation_errors_total", map[string]string{"op": "upload", "kind": "invalid_argument"}, 1},
		{"artifactstore_operation_errors_total", map[string]string{"op": "upload", "kind": "storage_full"}, 1},
		{"artifactstore_lock_wait_seconds", map[string]string{"op": "acquire", "result": "acquired"}, 1},
		{"artifactstore_quota_limit_bytes", nil, 1 << 20},
	} {
		if got := counter(t, r.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"artifactstore_backend_written_bytes_total", "artifactstore_backend_read_bytes_total", "artifactstore_quota_used_bytes"} {
		if got := counter(t, r.reg, name, nil); got < float64(len(content)) {
			t.Errorf("%s = %v, want at least the %d bytes of content", name, got, len(content))
		}
	}
	if got := counter(t, r.reg, "artifactstore_backend_request_duration_seconds", map[string]string{"op": "put"}); got == 0 {
		t.Error("no backend put observed")
	}
	// The hold time is observed when the lease ends, by a goroutine.
	waitFor(t, "the upload's lock hold time", func() bool {
		return counter(t, r.reg, "artifactstore_lock_hold_seconds", nil) >= 1
	})
	if got := counter(t, r.reg, "artifactstore_lock_leases_lost_total", nil); got != 0 {
		t.Errorf("leases lost = %v after a released lease", got)
	}
	if n, err := testutil.GatherAndCount(r.reg); err != nil || n == 0 {
		t.Errorf("GatherAndCount = %d, %v: the registry does not gather", n, err)
	}
}

// waitFor polls cond for up to 10s: a bound on a background goroutine, not
// a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestLeaseLostCounted(t *testing.T) {
	r := newRig(t)
	tel, err := telemetry.New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := tel.WrapLocker(newLocker(t, lock.Config{}))
	lease, err := l.Acquire(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ForceUnlock(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(t.Context()); !errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Release after ForceUnlock: %v", err)
	}
	waitFor(t, "the lost lease's count", func() bool {
		return counter(t, r.reg, "artifactstore_lock_leases_lost_total", nil) == 1
	})
	if _, err := l.TryAcquire(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(t.Context(), "k"); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("TryAcquire of a held key: %v", err)
	}
	if got := counter(t, r.reg, "artifactstore_lock_wait_seconds", map[string]string{"op": "try-acquire", "result": "failed"}); got != 1 {
		t.Errorf("failed try-acquires = %v, want 1", got)
	}
	if got := attr(r.named("artifactstore.lock.try-acquire")[1], telemetry.AttrErrorKind); got != "locked" {
		t.Errorf("failed try-acquire span error.type = %q, want locked", got)
	}
}

// Retries of transient backend failures, and commits that lose their
// conditional write, are counted and show as events on the operation's
// span.
func TestStoreRetriesAndConflicts(t *testing.T) {
	r := newRig(t)
	faulty := backendtest.NewFaulty(membackend.New())
	var mu sync.Mutex
	var seen []string // the ops Config.Retry.OnRetry saw
	onRetry := func(_ context.Context, op string, _ int, _ error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op)
	}
	// Blobs: the test cuts a blob's stream.
	cfg := store.Config{Telemetry: r.cfg, DisableLocking: true, InlineMaxBytes: -1, Retry: backend.RetryConfig{Initial: time.Microsecond, OnRetry: onRetry}}
	s, err := store.New(t.Context(), faulty, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.UploadBytes(ctx, uri, []byte("v1"), store.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	// The next manifest write loses to a concurrent writer once.
	faulty.Inject(backendtest.Fault{Op: backendtest.OpPut, KeyPrefix: "manifests/", Times: 1,
		Err: backendtest.Permanent("a concurrent commit", backend.ErrPreconditionFailed)})
	if _, err := s.AddTags(ctx, uri, "ci"); err != nil {
		t.Fatalf("AddTags after one lost commit: %v", err)
	}
	if got := counter(t, r.reg, "artifactstore_commit_conflicts_total", nil); got != 1 {
		t.Errorf("commit conflicts = %v, want 1", got)
	}
	// Two transient failures of the manifest's Get.
	faulty.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "manifests/", Times: 2, Err: backendtest.Transient("flaky")})
	r.spans.Reset()
	if _, _, err := s.Download(ctx, uri); err != nil {
		t.Fatalf("Download after two transient failures: %v", err)
	}
	if got := counter(t, r.reg, "artifactstore_retries_total", map[string]string{"op": "get"}); got != 2 {
		t.Errorf("get retries = %v, want 2", got)
	}
	if got := counter(t, r.reg, "artifactstore_backend_errors_total", map[string]string{"op": "get", "kind": "transient"}); got != 2 {
		t.Errorf("transient get errors = %v, want 2", got)
	}
	down := r.one(t, "artifactstore.download")
	retries := 0
	for _, e := range down.Events {
		if e.Name == "retry" {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("download span has %d retry events, want 2 (events %v)", retries, down.Events)
	}

	// A blob whose reading fails after it opened is beyond the backend's
	// retries: the store retries the whole download, and says so to the
	// same hook.
	faulty.Inject(backendtest.Fault{Op: backendtest.OpGet, KeyPrefix: "blobs/", Times: 1, At: backendtest.Midway, Err: backendtest.Transient("cut")})
	if _, _, err := s.Download(ctx, uri); err != nil {
		t.Fatalf("Download after a cut stream: %v", err)
	}
	for op, want := range map[string]float64{"get": 2, "download": 1} {
		if got := counter(t, r.reg, "artifactstore_retries_total", map[string]string{"op": op}); got != want {
			t.Errorf("%s retries = %v, want %v", op, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"get", "get", "download"}; !slices.Equal(seen, want) {
		t.Errorf("Config.Retry.OnRetry saw %v, want %v", seen, want)
	}
}

// Two Stores on one Registerer share the collectors (no panic, no error);
// constant labels tell them apart.
func TestTwoStoresOneRegistry(t *testing.T) {
	r := newRig(t)
	a := r.newStore(t, membackend.New(), store.Config{})
	b := r.newStore(t, membackend.New(), store.Config{})
	for _, s := range []*store.Store{a, b} {
		if _, err := s.UploadBytes(t.Context(), uri, []byte("x"), store.UploadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := counter(t, r.reg, "artifactstore_operations_total", map[string]string{"op": "upload"}); got != 2 {
		t.Errorf("uploads of two Stores sharing a registry = %v, want 2", got)
	}

	reg := prometheus.NewRegistry()
	var wg sync.WaitGroup
	for _, name := range []string{"builds", "tests"} {
		wg.Go(func() {
			cfg := store.Config{Telemetry: telemetry.Config{Registerer: reg, ConstLabels: prometheus.Labels{"store": name}}}
			s, err := store.New(t.Context(), membackend.New(), newLocker(t, lock.Config{}), cfg)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.UploadBytes(t.Context(), uri, []byte("x"), store.UploadOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"builds", "tests"} {
		if got := counter(t, reg, "artifactstore_operations_total", map[string]string{"op": "upload", "store": name}); got != 1 {
			t.Errorf("uploads of store %q = %v, want 1", name, got)
		}
	}
}

// Bad telemetry configuration is a typed error that registers nothing.
func TestNewInvalid(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(reg *prometheus.Registry)
		cfg   func(reg *prometheus.Registry) telemetry.Config
	}{
		{"a constant label named like a metric's label", nil, func(reg *prometheus.Registry) telemetry.Config {
			return telemetry.Config{Registerer: reg, ConstLabels: prometheus.Labels{"op": "x"}}
		}},
		{"other label names than a Store on the same registry", func(reg *prometheus.Registry) {
			if _, err := telemetry.New(telemetry.Config{Registerer: reg}); err != nil {
				t.Fatal(err)
			}
		}, func(reg *prometheus.Registry) telemetry.Config {
			return telemetry.Config{Registerer: reg, ConstLabels: prometheus.Labels{"store": "b"}}
		}},
		{"a foreign collector under a metric's name", func(reg *prometheus.Registry) {
			reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "artifactstore_quota_limit_bytes", Help: "foreign"}))
		}, func(reg *prometheus.Registry) telemetry.Config {
			return telemetry.Config{Registerer: reg}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if c.setup != nil {
				c.setup(reg)
			}
			before := families(t, reg)
			_, err := telemetry.New(c.cfg(reg))
			if !errors.Is(err, telemetry.ErrInvalidArgument) || !errors.Is(err, store.ErrInvalidArgument) {
				t.Fatalf("New: err = %v, want ErrInvalidArgument", err)
			}
			if after := families(t, reg); !slices.Equal(after, before) {
				t.Errorf("a failed New changed the registry: it gathered %v, then %v", before, after)
			}
			scfg := store.Config{Telemetry: c.cfg(reg)}
			if _, err := store.New(t.Context(), membackend.New(), newLocker(t, lock.Config{}), scfg); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("store.New: err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// families returns the names of the metric families reg gathers.
func families(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	return out
}

// A zero Config records nothing and its decorators still work.
func TestZeroConfig(t *testing.T) {
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Enabled() {
		t.Error("a zero Config is enabled")
	}
	var nilTel *telemetry.Telemetry
	ctx, op := nilTel.Start(t.Context(), "upload", uri)
	op.End(errors.New("boom"), "other")
	if ctx != t.Context() {
		t.Error("Start of a nil Telemetry changed the context")
	}
	b := tel.WrapBackend(membackend.New())
	if _, err := b.Put(t.Context(), "k", strings.NewReader("v"), 1, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("x"), "other"},
		{backend.ErrNotFound, "not_found"},
		{lock.ErrTimeout, "lock_timeout"},
		{errors.Join(lock.ErrTimeout, context.DeadlineExceeded), "lock_timeout"},
		{context.Canceled, "canceled"},
		{backend.ErrInvalidKey, "invalid_key"},
		{lock.ErrInvalidKey, "invalid_key"},
		{backendtest.Transient("flaky"), "transient"},
		{errors.ErrUnsupported, "unsupported"},
		{backend.ErrPermissionDenied, "permission_denied"},
	} {
		if got := telemetry.ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
