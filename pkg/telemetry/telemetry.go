package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// ErrInvalidArgument: the Config cannot be used (a constant label that is
// not a valid label name or is named like a metric's own label: op, kind,
// result; or a metric name already registered on the Registerer with other
// label names or by another collector). Nothing stays registered. The same
// value as backend.ErrInvalidArgument, so store.ErrInvalidArgument too.
var ErrInvalidArgument = backend.ErrInvalidArgument

// Namespace is the prefix of every metric name.
const Namespace = "artifactstore"

// TracerName is the instrumentation scope of the spans: the name given to
// TracerProvider.Tracer.
const TracerName = "github.com/necrocode/artifactstore"

// Attribute keys set on the spans.
const (
	AttrOperation = attribute.Key("artifactstore.operation")
	AttrURI       = attribute.Key("artifactstore.uri")
	AttrKey       = attribute.Key("artifactstore.backend.key")
	AttrSize      = attribute.Key("artifactstore.backend.size")
	AttrLockKey   = attribute.Key("artifactstore.lock.key")
	AttrFence     = attribute.Key("artifactstore.lock.fence")
	AttrErrorKind = attribute.Key("error.type")
)

// Config says where the telemetry goes. The zero value turns it off.
type Config struct {
	// Registerer receives the metrics (see the package documentation for
	// their names). The library registers nothing anywhere else. Several
	// Telemetry values (several Stores) may share one Registerer: the
	// second finds the collectors of the first and shares them, so their
	// series add up, unless their ConstLabels tell them apart. Default nil:
	// no metrics.
	Registerer prometheus.Registerer
	// ConstLabels are added to every metric, for example {"store":
	// "builds"} to tell apart two Stores (two buckets) that share a
	// Registerer. Stores that share a Registerer must use the same label
	// names (values may differ). Default none.
	ConstLabels prometheus.Labels
	// TracerProvider makes the spans: one per store operation, with child
	// spans for lock and backend calls. Default nil: no spans.
	TracerProvider trace.TracerProvider
}

// Telemetry records the metrics and spans of one Store. A nil *Telemetry,
// and one made from a zero Config, records nothing. It is safe for
// concurrent use.
type Telemetry struct {
	m      *metrics     // nil without a Registerer
	tracer trace.Tracer // nil without a TracerProvider
}

// New registers the metrics of cfg on cfg.Registerer (sharing those that an
// earlier New with the same ConstLabels registered there) and returns the
// Telemetry. An error matches ErrInvalidArgument, and leaves nothing
// registered by this call.
func New(cfg Config) (*Telemetry, error) {
	t := &Telemetry{}
	if cfg.TracerProvider != nil {
		t.tracer = cfg.TracerProvider.Tracer(TracerName)
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer, cfg.ConstLabels)
		if err != nil {
			return nil, err
		}
		t.m = m
	}
	return t, nil
}

// Enabled reports whether t records anything.
func (t *Telemetry) Enabled() bool { return t != nil && (t.m != nil || t.tracer != nil) }

// metrics returns t's collectors, nil without a Registerer.
func (t *Telemetry) metrics() *metrics {
	if t == nil {
		return nil
	}
	return t.m
}

// start begins a span named name when tracing is on.
func (t *Telemetry) start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil || t.tracer == nil {
		return ctx, nil
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// endSpan records err (with its kind, when known) on span and ends it.
func endSpan(span trace.Span, err error, kind string) {
	if span == nil {
		return
	}
	if err != nil {
		if kind != "" {
			span.SetAttributes(AttrErrorKind.String(kind))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Op is one store operation in progress, from Start to End.
type Op struct {
	t     *Telemetry
	name  string
	begin time.Time
	span  trace.Span
}

// Start begins the store operation op ("upload", "download", ...) on uri
// (empty for operations on many artifacts): a span named
// "artifactstore."+op, a child of ctx's span, that the returned context
// carries, so the lock and backend calls made with it are its children.
// End it with Op.End.
func (t *Telemetry) Start(ctx context.Context, op, uri string) (context.Context, *Op) {
	if !t.Enabled() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{AttrOperation.String(op)}
	if uri != "" {
		attrs = append(attrs, AttrURI.String(uri))
	}
	ctx, span := t.start(ctx, Namespace+"."+op, attrs...)
	return ctx, &Op{t: t, name: op, begin: time.Now(), span: span}
}

// End ends the operation: it counts it, observes its duration, counts its
// error under kind (a short snake_case name such as "not_found" or
// "conflict"; "other" when empty) and ends its span with an error status
// when err is not nil. End on a nil *Op does nothing.
func (o *Op) End(err error, kind string) {
	if o == nil {
		return
	}
	if err != nil && kind == "" {
		kind = "other"
	}
	if m := o.t.m; m != nil {
		m.ops.WithLabelValues(o.name).Inc()
		m.opSeconds.WithLabelValues(o.name).Observe(time.Since(o.begin).Seconds())
		if err != nil {
			m.opErrors.WithLabelValues(o.name, kind).Inc()
		}
	}
	endSpan(o.span, err, kind)
}

// RetryHook returns a backend.RetryConfig.OnRetry that counts each retry
// (artifactstore_retries_total), adds an event to the current span, then
// calls next (when not nil).
func (t *Telemetry) RetryHook(next func(ctx context.Context, op string, retry int, err error)) func(ctx context.Context, op string, retry int, err error) {
	if !t.Enabled() {
		return next
	}
	return func(ctx context.Context, op string, retry int, err error) {
		if m := t.metrics(); m != nil {
			m.retries.WithLabelValues(op).Inc()
		}
		trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(
			AttrOperation.String(op), attribute.Int("retry", retry), attribute.String("error", err.Error())))
		if next != nil {
			next(ctx, op, retry, err)
		}
	}
}

// Conflict counts a commit that lost its conditional write to a concurrent
// commit (artifactstore_commit_conflicts_total), whether or not it was
// retried, and adds an event to the current span.
func (t *Telemetry) Conflict(ctx context.Context) {
	if !t.Enabled() {
		return
	}
	if m := t.metrics(); m != nil {
		m.conflicts.Inc()
	}
	trace.SpanFromContext(ctx).AddEvent("commit conflict")
}

// QuotaUse records the stored bytes the quota counter holds and the quota
// (artifactstore_quota_used_bytes, artifactstore_quota_limit_bytes).
func (t *Telemetry) QuotaUse(used, limit int64) {
	if m := t.metrics(); m != nil {
		m.quotaUsed.Set(float64(used))
		m.quotaLimit.Set(float64(limit))
	}
}

// metrics are the collectors of one Registerer and set of const labels.
type metrics struct {
	ops        *prometheus.CounterVec
	opErrors   *prometheus.CounterVec
	opSeconds  *prometheus.HistogramVec
	backendOps *prometheus.HistogramVec
	backendErr *prometheus.CounterVec
	readBytes  prometheus.Counter
	wroteBytes prometheus.Counter
	retries    *prometheus.CounterVec
	lockWait   *prometheus.HistogramVec
	lockHold   prometheus.Histogram
	leasesLost prometheus.Counter
	conflicts  prometheus.Counter
	quotaUsed  prometheus.Gauge
	quotaLimit prometheus.Gauge
}

// latencyBuckets span 1ms to about 65s, for operations and lock waits
// alike (a lock wait runs up to the 30s default lock timeout).
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)

// newMetrics makes the collectors and registers them on reg, adopting the
// identical collectors an earlier call registered there.
func newMetrics(reg prometheus.Registerer, labels prometheus.Labels) (*metrics, error) {
	counter := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: labels}
	}
	hist := func(name, help string) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: labels, Buckets: latencyBuckets}
	}
	gauge := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: labels}
	}
	r := &registrar{reg: reg}
	m := &metrics{
		ops: register(r, prometheus.NewCounterVec(counter("operations_total",
			"Store operations completed, by operation."), []string{"op"})),
		opErrors: register(r, prometheus.NewCounterVec(counter("operation_errors_total",
			"Store operations that failed, by operation and error kind."), []string{"op", "kind"})),
		opSeconds: register(r, prometheus.NewHistogramVec(hist("operation_duration_seconds",
			"Duration of store operations, by operation."), []string{"op"})),
		backendOps: register(r, prometheus.NewHistogramVec(hist("backend_request_duration_seconds",
			"Duration of backend calls (each attempt), by operation."), []string{"op"})),
		backendErr: register(r, prometheus.NewCounterVec(counter("backend_errors_total",
			"Backend calls (each attempt) that failed, by operation and error kind."), []string{"op", "kind"})),
		readBytes: register(r, prometheus.NewCounter(counter("backend_read_bytes_total",
			"Bytes read from the backend (stored bytes: compressed content and records included)."))),
		wroteBytes: register(r, prometheus.NewCounter(counter("backend_written_bytes_total",
			"Bytes stored in the backend by successful Puts."))),
		retries: register(r, prometheus.NewCounterVec(counter("retries_total",
			"Retries after a transient failure, by operation: backend calls (put, get, stat, delete, list) and the store's own (download, blob-upload, read-back)."), []string{"op"})),
		lockWait: register(r, prometheus.NewHistogramVec(hist("lock_wait_seconds",
			"Time spent acquiring locks, by call (acquire, try-acquire) and result (acquired, failed)."), []string{"op", "result"})),
		lockHold: register(r, prometheus.NewHistogram(hist("lock_hold_seconds",
			"Time from the grant of a lock lease to its end (released or lost)."))),
		leasesLost: register(r, prometheus.NewCounter(counter("lock_leases_lost_total",
			"Lock leases lost before their release (expired, broken, taken over)."))),
		conflicts: register(r, prometheus.NewCounter(counter("commit_conflicts_total",
			"Commits that lost their conditional write to a concurrent commit (retried or not)."))),
		quotaUsed: register(r, prometheus.NewGauge(gauge("quota_used_bytes",
			"Stored bytes counted against the quota, as this process last saw them."))),
		quotaLimit: register(r, prometheus.NewGauge(gauge("quota_limit_bytes",
			"The quota in stored bytes (store Config.Quota.MaxBytes)."))),
	}
	if r.err != nil {
		for _, c := range r.added {
			reg.Unregister(c)
		}
		return nil, fmt.Errorf("%w: telemetry: register metrics: %w", ErrInvalidArgument, r.err)
	}
	return m, nil
}

// registrar registers collectors until the first failure, remembering
// those it added so that a failure can take them back.
type registrar struct {
	reg   prometheus.Registerer
	added []prometheus.Collector
	err   error
}

// register registers c, or returns the identical collector (same names,
// labels and constant label values) already registered: that is how two
// Stores share a Registerer. After a failure it does nothing.
func register[C prometheus.Collector](r *registrar, c C) C {
	if r.err != nil {
		return c
	}
	err := r.reg.Register(c)
	if err == nil {
		r.added = append(r.added, c)
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	r.err = err
	return c
}
