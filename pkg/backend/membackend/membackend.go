package membackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Backend is an in-memory backend.Backend. The zero value is not usable;
// call New.
type Backend struct {
	mu      sync.RWMutex
	objects map[string]*object // nil after Close
	seq     uint64             // last ETag number handed out
}

// object is one stored version. It is never modified once stored: a Put
// replaces the pointer in the map, so readers holding it are unaffected.
type object struct {
	data []byte
	info backend.ObjectInfo
}

var (
	_ backend.Backend            = (*Backend)(nil)
	_ backend.ConditionalDeleter = (*Backend)(nil)
)

// New returns an empty Backend.
func New() *Backend {
	return &Backend{objects: make(map[string]*object)}
}

// Put implements backend.Backend. It reads the whole content into memory
// first, then checks the condition and stores the object in one step under
// the Backend's lock.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := backend.ValidatePut(key, r, size, opts); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w", key, err)
	}
	if err := b.check(ctx, "put", key); err != nil {
		return backend.ObjectInfo{}, err
	}
	data, err := readBody(ctx, r, size)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w", key, err)
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = backend.DefaultContentType
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objects == nil {
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w", key, backend.ErrClosed)
	}
	// The last moment a cancellation can still prevent the commit.
	if err := ctx.Err(); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w", key, err)
	}
	cur, exists := b.objects[key]
	switch {
	case opts.IfAbsent && exists:
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w: object exists", key, backend.ErrPreconditionFailed)
	case opts.IfMatch != "" && !exists:
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w: no object to match ETag %q", key, backend.ErrPreconditionFailed, opts.IfMatch)
	case opts.IfMatch != "" && cur.info.ETag != opts.IfMatch:
		return backend.ObjectInfo{}, fmt.Errorf("membackend: put %q: %w: ETag is %q, not %q", key, backend.ErrPreconditionFailed, cur.info.ETag, opts.IfMatch)
	}
	b.seq++
	obj := &object{
		data: data,
		info: backend.ObjectInfo{
			Key:         key,
			Size:        int64(len(data)),
			ETag:        fmt.Sprintf("%016x", b.seq),
			ContentType: contentType,
			Modified:    time.Now(),
		},
	}
	b.objects[key] = obj
	return obj.info, nil
}

// Get implements backend.Backend. The returned reader reads a snapshot of
// the object; it fails with the context's error once ctx is done.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	obj, err := b.lookup(ctx, "get", key)
	if err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	return &reader{ctx: ctx, r: bytes.NewReader(obj.data)}, obj.info, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	obj, err := b.lookup(ctx, "stat", key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return obj.info, nil
}

// Delete implements backend.Backend. Deleting a missing key succeeds.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return fmt.Errorf("membackend: delete %q: %w", key, err)
	}
	if err := b.check(ctx, "delete", key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objects == nil {
		return fmt.Errorf("membackend: delete %q: %w", key, backend.ErrClosed)
	}
	delete(b.objects, key)
	return nil
}

// DeleteIfMatch implements backend.ConditionalDeleter: it checks the ETag
// and removes the object in one step under the Backend's lock.
func (b *Backend) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := backend.ValidateDeleteIfMatch(key, etag); err != nil {
		return fmt.Errorf("membackend: delete %q if ETag %q: %w", key, etag, err)
	}
	if err := b.check(ctx, "delete", key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objects == nil {
		return fmt.Errorf("membackend: delete %q if ETag %q: %w", key, etag, backend.ErrClosed)
	}
	cur, ok := b.objects[key]
	switch {
	case !ok:
		return fmt.Errorf("membackend: delete %q if ETag %q: %w", key, etag, backend.ErrNotFound)
	case cur.info.ETag != etag:
		return fmt.Errorf("membackend: delete %q: %w: ETag is %q, not %q", key, backend.ErrPreconditionFailed, cur.info.ETag, etag)
	}
	delete(b.objects, key)
	return nil
}

// List implements backend.Backend. It yields a snapshot of the objects
// under prefix taken when the iteration starts, in ascending byte order of
// their keys; no lock is held while yielding.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		if err := backend.ValidatePrefix(prefix); err != nil {
			yield(backend.ObjectInfo{}, fmt.Errorf("membackend: list %q: %w", prefix, err))
			return
		}
		if err := b.check(ctx, "list", prefix); err != nil {
			yield(backend.ObjectInfo{}, err)
			return
		}
		b.mu.RLock()
		if b.objects == nil {
			b.mu.RUnlock()
			yield(backend.ObjectInfo{}, fmt.Errorf("membackend: list %q: %w", prefix, backend.ErrClosed))
			return
		}
		var infos []backend.ObjectInfo
		for k, obj := range b.objects {
			if strings.HasPrefix(k, prefix) {
				infos = append(infos, obj.info)
			}
		}
		b.mu.RUnlock()
		slices.SortFunc(infos, func(x, y backend.ObjectInfo) int { return strings.Compare(x.Key, y.Key) })
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				yield(backend.ObjectInfo{}, fmt.Errorf("membackend: list %q: %w", prefix, err))
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}

// Close drops every object. Later calls fail with backend.ErrClosed; a
// second Close does nothing and returns nil.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects = nil
	return nil
}

// check reports a done context or a closed Backend before an operation
// starts.
func (b *Backend) check(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("membackend: %s %q: %w", op, key, err)
	}
	b.mu.RLock()
	closed := b.objects == nil
	b.mu.RUnlock()
	if closed {
		return fmt.Errorf("membackend: %s %q: %w", op, key, backend.ErrClosed)
	}
	return nil
}

// lookup finds the object of Get and Stat.
func (b *Backend) lookup(ctx context.Context, op, key string) (*object, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("membackend: %s %q: %w", op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("membackend: %s %q: %w", op, key, err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.objects == nil {
		return nil, fmt.Errorf("membackend: %s %q: %w", op, key, backend.ErrClosed)
	}
	obj, ok := b.objects[key]
	if !ok {
		return nil, fmt.Errorf("membackend: %s %q: %w", op, key, backend.ErrNotFound)
	}
	return obj, nil
}

// readBody reads the content of a Put: exactly size bytes followed by EOF,
// or everything up to EOF when size is backend.SizeUnknown. It checks ctx
// before every read.
func readBody(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	src := &reader{ctx: ctx, r: r}
	var buf bytes.Buffer
	if size == backend.SizeUnknown {
		if _, err := buf.ReadFrom(src); err != nil {
			return nil, fmt.Errorf("read content: %w", err)
		}
		return buf.Bytes(), nil
	}
	buf.Grow(int(min(size, 1<<20)))
	n, err := io.CopyN(&buf, src, size)
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", backend.ErrSizeMismatch, n, size)
	}
	if err != nil {
		return nil, fmt.Errorf("read content: %w", err)
	}
	var one [1]byte
	m, err := io.ReadAtLeast(src, one[:], 1)
	if m > 0 {
		return nil, fmt.Errorf("%w: more than %d bytes", backend.ErrSizeMismatch, size)
	}
	if !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read content: %w", err)
	}
	return buf.Bytes(), nil
}

// reader fails with the context's error once ctx is done. It is bound to the
// call that created it (a Put's body, or the reader Get returns, like an
// HTTP response body), which is why it holds a context.
type reader struct {
	ctx context.Context
	r   io.Reader
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Close implements io.Closer for the readers returned by Get.
func (r *reader) Close() error { return nil }
