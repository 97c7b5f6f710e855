package store

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/memlock"
)

// env is one backend + locker combination the store's tests run on.
type env struct {
	name       string
	newBackend func(t *testing.T) backend.Backend
	newLocker  func(t *testing.T, b backend.Backend, cfg lock.Config) lock.Locker
}

func memEnv() env {
	return env{
		name: "mem",
		newBackend: func(t *testing.T) backend.Backend {
			b := membackend.New()
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
		newLocker: func(t *testing.T, _ backend.Backend, cfg lock.Config) lock.Locker {
			l, err := memlock.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
}

// envs are the combinations every store test runs on.
func envs() []env { return []env{memEnv(), fileEnv()} }

// forEachEnv runs fn as a subtest per environment.
func forEachEnv(t *testing.T, fn func(t *testing.T, e env)) {
	t.Helper()
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) { fn(t, e) })
	}
}

// fixture is a store with direct access to what is under it.
type fixture struct {
	s      *Store
	b      backend.Backend // the backend under the store (no retry)
	locker lock.Locker
	clock  *fakeClock
	logs   *logRecorder
}

// newFixture builds a Store on e. wrap, when not nil, decorates the backend
// the store sees (the fixture's b stays the plain one).
func newFixture(t *testing.T, e env, cfg Config, wrap func(backend.Backend) backend.Backend) *fixture {
	t.Helper()
	b := e.newBackend(t)
	var l lock.Locker
	if !cfg.DisableLocking {
		l = e.newLocker(t, b, lock.Config{})
	}
	return newFixtureOn(t, b, l, cfg, wrap)
}

func newFixtureOn(t *testing.T, b backend.Backend, l lock.Locker, cfg Config, wrap func(backend.Backend) backend.Backend) *fixture {
	t.Helper()
	f := &fixture{b: b, locker: l, clock: newFakeClock(), logs: &logRecorder{}}
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(f.logs)
	}
	if cfg.WriterID == "" {
		cfg.WriterID = "test-writer"
	}
	if cfg.Catalog.CompactEvery == 0 {
		// Tests compact the catalog themselves: a background compaction
		// would make request counts and logs depend on chance.
		cfg.Catalog.CompactEvery = -1
	}
	if cfg.InlineMaxBytes == 0 {
		// Most tests look at blobs (their keys, counts, faults on their
		// Puts): their small contents would go inside the manifests by
		// default. The tests of that path, and the property tests, set
		// InlineMaxBytes themselves.
		cfg.InlineMaxBytes = -1
	}
	if cfg.Retry.Initial == 0 {
		// Fast retries: the tests inject transient faults on purpose.
		cfg.Retry.Initial = time.Millisecond
	}
	var sb backend.Backend = &clockedBackend{Backend: b, now: cfg.Now, written: map[string]time.Time{}}
	if wrap != nil {
		sb = wrap(sb)
	}
	s, err := New(context.Background(), sb, l, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// The probe runs now, as it did in New before stores opened without
	// writing, so that the faults a test injects next meet the store's
	// own writes only.
	if err := s.PrepareWrites(context.Background()); err != nil {
		t.Fatalf("PrepareWrites: %v", err)
	}
	f.s = s
	return f
}

// clockedBackend reports as the modification time of the objects written
// through it the time of Config.Now when they were written, so that the
// backend's clock (Reconcile's ages) follows the test's clock. Objects
// written to the backend directly keep the backend's own times.
type clockedBackend struct {
	backend.Backend
	now func() time.Time

	mu      sync.Mutex
	written map[string]time.Time
}

func (c *clockedBackend) modified(info backend.ObjectInfo) backend.ObjectInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.written[info.Key]; ok {
		info.Modified = t
	}
	return info
}

func (c *clockedBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	info, err := c.Backend.Put(ctx, key, r, size, opts)
	if err == nil {
		c.mu.Lock()
		c.written[key] = c.now()
		c.mu.Unlock()
		info = c.modified(info)
	}
	return info, err
}

func (c *clockedBackend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	rc, info, err := c.Backend.Get(ctx, key)
	return rc, c.modified(info), err
}

func (c *clockedBackend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	info, err := c.Backend.Stat(ctx, key)
	return c.modified(info), err
}

func (c *clockedBackend) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		for info, err := range c.Backend.List(ctx, prefix) {
			if !yield(c.modified(info), err) {
				return
			}
		}
	}
}

// DeleteIfMatch passes the capability through (embedding hides it).
func (c *clockedBackend) DeleteIfMatch(ctx context.Context, key, etag string) error {
	cd, ok := c.Backend.(backend.ConditionalDeleter)
	if !ok {
		return fmt.Errorf("clockedBackend: %w", errors.ErrUnsupported)
	}
	return cd.DeleteIfMatch(ctx, key, etag)
}

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logRecorder keeps every record logged; failures and messages select
// among them.
type logRecorder struct{ testenv.LogRecorder }

// failures returns the attributes of the records logged for failed
// operations named op.
func (h *logRecorder) failures(op string) []map[string]string {
	var out []map[string]string
	for _, r := range h.Records() {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if attrs["op"] == op && strings.HasSuffix(r.Message, " failed") {
			out = append(out, attrs)
		}
	}
	return out
}

// snapshot is every object of a backend: key -> ETag.
func snapshot(t *testing.T, b backend.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	for info, err := range b.List(context.Background(), "") {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		out[info.Key] = info.ETag
	}
	return out
}

// liveKeys is every key of a backend but the manifests that are
// tombstones (deleted artifacts, removed later by Reconcile) and the
// catalog's objects.
func liveKeys(t *testing.T, b backend.Backend) []string {
	t.Helper()
	var out []string
	for _, k := range sortedKeys(snapshot(t, b)) {
		if strings.HasPrefix(k, "_catalog/") {
			continue
		}
		if u, ok := uriFromManifestKey(k); ok {
			if m := rawManifest(t, b, u.String()); m.Deleted {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func mustUpload(t *testing.T, s *Store, uri string, data []byte, opts UploadOptions) Metadata {
	t.Helper()
	md, err := s.UploadBytes(context.Background(), uri, data, opts)
	if err != nil {
		t.Fatalf("upload %s: %v", uri, err)
	}
	return md
}

func mustDownload(t *testing.T, s *Store, uri string) ([]byte, Metadata) {
	t.Helper()
	data, md, err := s.Download(context.Background(), uri)
	if err != nil {
		t.Fatalf("download %s: %v", uri, err)
	}
	return data, md
}

// rawManifest reads and decodes a manifest straight from the backend.
func rawManifest(t *testing.T, b backend.Backend, uri string) *manifest {
	t.Helper()
	u, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(context.Background(), manifestKey(u))
	if err != nil {
		t.Fatalf("get manifest of %s: %v", uri, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifest(u, data)
	if err != nil {
		t.Fatalf("manifest of %s: %v", uri, err)
	}
	return m
}

// patternReader generates n deterministic bytes without holding them in
// memory: a 64 KiB pseudo-random block repeated, shifted by one byte on each
// repetition so that no two blocks of the stream are equal.
type patternReader struct {
	n, off int64
	seed   uint64
	block  []byte
}

const patternBlock = 64 << 10

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if p.block == nil {
		p.block = make([]byte, patternBlock)
		x := p.seed | 1
		for i := range p.block {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			p.block[i] = byte(x)
		}
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	done := 0
	for done < len(b) {
		pos := p.off + int64(done)
		rep := pos / patternBlock
		i := int((pos + rep) % patternBlock)
		end := min(len(p.block), i+len(b)-done, i+int(patternBlock-pos%patternBlock))
		done += copy(b[done:], p.block[i:end])
	}
	p.off += int64(len(b))
	return len(b), nil
}

// errAfterReader yields n bytes then fails with err.
type errAfterReader struct {
	n   int
	err error
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

// gate is a backend decorator that parks the first call of op on a key
// under prefix after it is armed, until released: the "pause" of a writer.
type gate struct {
	backend.Backend
	op     string // "get", "put", or "" for either
	prefix string

	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newGate(b backend.Backend, op, prefix string) *gate {
	return &gate{Backend: b, op: op, prefix: prefix, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

func (g *gate) pass(ctx context.Context, op, key string) error {
	g.mu.Lock()
	hit := g.armed && (g.op == "" || op == g.op) && strings.HasPrefix(key, g.prefix)
	if hit {
		g.armed = false
	}
	g.mu.Unlock()
	if !hit {
		return nil
	}
	close(g.entered)
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	if err := g.pass(ctx, "get", key); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	return g.Backend.Get(ctx, key)
}

func (g *gate) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := g.pass(ctx, "put", key); err != nil {
		return backend.ObjectInfo{}, err
	}
	return g.Backend.Put(ctx, key, r, size, opts)
}

// content returns distinct test content for writer w, upload i.
func content(w, i int) []byte {
	return []byte(fmt.Sprintf("writer %d upload %d %s", w, i, strings.Repeat("z", (w*7+i)%50)))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sha256Reader(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("read: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func gzipReader(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
