package telemetry_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
	"github.com/necrocode/artifactstore/pkg/store"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

// BenchmarkTelemetryOverhead measures an upload (1 KiB) and a download of
// it on the in-memory backend and lock, with telemetry off, with metrics,
// and with metrics and spans (the SDK's tracer, sampling every span,
// exporting none): the cost of the instrumentation against the cheapest
// store there is. See BENCHMARKS.md.
func BenchmarkTelemetryOverhead(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, c := range []struct {
		name string
		cfg  func() telemetry.Config
	}{
		{"off", func() telemetry.Config { return telemetry.Config{} }},
		{"metrics", func() telemetry.Config { return telemetry.Config{Registerer: prometheus.NewRegistry()} }},
		{"metrics+spans", func() telemetry.Config {
			return telemetry.Config{Registerer: prometheus.NewRegistry(), TracerProvider: tp}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l, err := memlock.New(lock.Config{})
			if err != nil {
				b.Fatal(err)
			}
			s, err := store.New(b.Context(), membackend.New(), l, store.Config{Telemetry: c.cfg()})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 1<<10)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.UploadBytes(b.Context(), uri, data, store.UploadOptions{}); err != nil {
					b.Fatal(err)
				}
				if _, _, err := s.Download(b.Context(), uri); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
