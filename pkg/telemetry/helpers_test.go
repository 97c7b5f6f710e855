package telemetry_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/store"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

// rig is a registry and an in-memory span exporter, and the telemetry.Config
// that feeds them.
type rig struct {
	reg   *prometheus.Registry
	spans *tracetest.InMemoryExporter
	cfg   telemetry.Config
}

func newRig(t *testing.T) *rig {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reg := prometheus.NewRegistry()
	return &rig{reg: reg, spans: exp, cfg: telemetry.Config{Registerer: reg, TracerProvider: tp}}
}

// named returns the ended spans called name, oldest first.
func (r *rig) named(name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range r.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only ended span called name.
func (r *rig) one(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	spans := r.named(name)
	if len(spans) != 1 {
		t.Fatalf("%d spans named %q, want 1 (all: %v)", len(spans), name, r.names())
	}
	return spans[0]
}

func (r *rig) names() []string {
	var out []string
	for _, s := range r.spans.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}

// attr returns the value of the span's attribute key ("" when absent).
func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// newLocker returns a memlock with cfg.
func newLocker(t *testing.T, cfg lock.Config) *memlock.Locker {
	t.Helper()
	l, err := memlock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newStore opens a store over b and a memlock with the rig's telemetry.
func (r *rig) newStore(t *testing.T, b backend.Backend, cfg store.Config) *store.Store {
	t.Helper()
	cfg.Telemetry = r.cfg
	s, err := store.New(t.Context(), b, newLocker(t, lock.Config{}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// bareBackend has the methods of backend.Backend and nothing else.
type bareBackend struct{ backend.Backend }

// bareLocker has the methods of lock.Locker and nothing else.
type bareLocker struct{ lock.Locker }
