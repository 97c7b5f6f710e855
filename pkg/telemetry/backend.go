package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Backend is a backend.Backend decorator that records one span
// ("artifactstore.backend."+op, with the key) and the backend metrics per
// call. It keeps the optional capabilities of what it wraps: it implements
// backend.ConditionalDeleter whatever it wraps, and DeleteIfMatch fails
// with an error matching errors.ErrUnsupported when the wrapped Backend
// lacks it, as the decorators of package backend do. Unwrap returns the
// wrapped Backend.
type Backend struct {
	b backend.Backend
	t *Telemetry
}

var (
	_ backend.Backend            = (*Backend)(nil)
	_ backend.ConditionalDeleter = (*Backend)(nil)
)

// WrapBackend returns b decorated with t's spans and metrics.
func (t *Telemetry) WrapBackend(b backend.Backend) *Backend { return &Backend{b: b, t: t} }

// Unwrap returns the wrapped Backend.
func (d *Backend) Unwrap() backend.Backend { return d.b }

// call is one backend call in progress.
type call struct {
	t     *Telemetry
	op    string
	begin time.Time
	span  trace.Span
}

func (d *Backend) begin(ctx context.Context, op, key string, attrs ...attribute.KeyValue) (context.Context, call) {
	ctx, span := d.t.start(ctx, Namespace+".backend."+op, append(attrs, AttrKey.String(key))...)
	return ctx, call{t: d.t, op: op, begin: time.Now(), span: span}
}

func (c call) end(err error) {
	if m := c.t.metrics(); m != nil {
		m.backendOps.WithLabelValues(c.op).Observe(time.Since(c.begin).Seconds())
		if err != nil {
			m.backendErr.WithLabelValues(c.op, ErrorKind(err)).Inc()
		}
	}
	endSpan(c.span, err, ErrorKind(err))
}

// Put implements backend.Backend.
func (d *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	ctx, c := d.begin(ctx, "put", key, AttrSize.Int64(size))
	info, err := d.b.Put(ctx, key, r, size, opts)
	if m := d.t.metrics(); m != nil && err == nil {
		m.wroteBytes.Add(float64(info.Size))
	}
	c.end(err)
	return info, err
}

// Get implements backend.Backend. The span covers the opening of the
// object; the bytes read through the returned reader are counted as they
// are read.
func (d *Backend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	ctx, c := d.begin(ctx, "get", key)
	rc, info, err := d.b.Get(ctx, key)
	c.end(err)
	if m := d.t.metrics(); m != nil && err == nil {
		rc = &countingReadCloser{ReadCloser: rc, bytes: m.readBytes}
	}
	return rc, info, err
}

// Stat implements backend.Backend.
func (d *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	ctx, c := d.begin(ctx, "stat", key)
	info, err := d.b.Stat(ctx, key)
	c.end(err)
	return info, err
}

// Delete implements backend.Backend.
func (d *Backend) Delete(ctx context.Context, key string) error {
	ctx, c := d.begin(ctx, "delete", key)
	err := d.b.Delete(ctx, key)
	c.end(err)
	return err
}

// DeleteIfMatch implements backend.ConditionalDeleter by calling the
// wrapped Backend's. When the wrapped Backend is not a ConditionalDeleter
// it fails with an error matching errors.ErrUnsupported.
func (d *Backend) DeleteIfMatch(ctx context.Context, key, etag string) error {
	cd, ok := d.b.(backend.ConditionalDeleter)
	if !ok {
		return fmt.Errorf("telemetry: delete %q if ETag %q: %T is not a ConditionalDeleter: %w", key, etag, d.b, errors.ErrUnsupported)
	}
	ctx, c := d.begin(ctx, "delete-if-match", key)
	err := cd.DeleteIfMatch(ctx, key, etag)
	c.end(err)
	return err
}

// List implements backend.Backend. The span runs from the start of the
// iteration to its end.
func (d *Backend) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		ctx, c := d.begin(ctx, "list", prefix)
		var failed error
		defer func() { c.end(failed) }()
		for info, err := range d.b.List(ctx, prefix) {
			if err != nil {
				failed = err
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// Close implements backend.Backend; it closes the wrapped Backend.
func (d *Backend) Close() error { return d.b.Close() }

// countingReadCloser counts the bytes read through it.
type countingReadCloser struct {
	io.ReadCloser
	bytes prometheus.Counter
}

func (r *countingReadCloser) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.bytes.Add(float64(n))
	return n, err
}
