package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

// Store is the artifact store: every artifact rule lives here, over a
// Backend that stores bytes and a Locker that serializes writers. It is safe
// for concurrent use by many goroutines, and many Stores (in many processes
// and hosts) may share one bucket and one lock service.
type Store struct {
	b      backend.Backend // wrapped in the retry decorator
	locker lock.Locker     // nil when locking is disabled
	cfg    Config
	log    *slog.Logger
	tel    *telemetry.Telemetry // Config.Telemetry; records nothing when it is zero
	// onRetry is Config.Retry.OnRetry joined with the telemetry's count.
	onRetry func(ctx context.Context, op string, retry int, err error)

	manifests *manifestCache
	quota     quotaState // the usage counter's view (quota.go)

	// tagIndexReady is set once the bucket's tag index is known complete
	// (index.go); indexReadLimit is indexReadLimit (tests lower it).
	tagIndexReady  atomic.Bool
	indexReadLimit int

	// gate runs the checks of the first write (probe.go).
	gate *writeGate

	// compactor and background run the catalog's background compactions
	// (catalog.go); Close waits for them.
	compactor  compactor
	background sync.WaitGroup
}

// manifestCacheEntries is the default of Config.ManifestCacheEntries: the
// manifests a Store keeps decoded.
const manifestCacheEntries = 1024

// New returns a Store over b and l. l may be nil only when cfg.DisableLocking
// is set. New checks cfg and reads whether the bucket's tag index is
// complete (one Stat); it writes nothing, neither to b nor to l, and
// neither does any read of the Store (see "Read-only use" in the package
// documentation). The Store's first write proves that b enforces
// conditional writes and refuses a backend that does not with an error
// matching backend.ErrUnfencedWrites, unless cfg.AllowUnfencedWrites;
// PrepareWrites runs that check at once.
// The caller keeps ownership of b and l: the Store never closes them.
func New(ctx context.Context, b backend.Backend, l lock.Locker, cfg Config) (*Store, error) {
	if b == nil {
		return nil, invalidf("store: nil backend")
	}
	if l == nil && !cfg.DisableLocking {
		return nil, invalidf("store: nil locker (set Config.DisableLocking to run without locks)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	cfg = cfg.WithDefaults()
	tel, err := telemetry.New(cfg.Telemetry)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	retry := cfg.Retry
	retry.OnRetry = tel.RetryHook(retry.OnRetry)
	if tel.Enabled() {
		b = tel.WrapBackend(b)
		if l != nil {
			l = tel.WrapLocker(l)
		}
	}
	s := &Store{
		cfg:            cfg,
		log:            cfg.Logger,
		tel:            tel,
		onRetry:        retry.OnRetry,
		manifests:      newManifestCache(cfg.ManifestCacheEntries),
		indexReadLimit: indexReadLimit,
		gate:           newWriteGate(),
	}
	s.b = &closeGuard{Backend: backend.WithRetry(b, retry), beforeWrite: s.prepareWrites}
	if !cfg.DisableLocking {
		s.locker = l
	}
	s.compactor.ctx, s.compactor.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if _, err := s.checkTagIndexReady(ctx); err != nil {
		s.log.Warn("store: open failed", "op", "open", "err", err)
		return nil, fmt.Errorf("store: open: %w", err)
	}
	return s, nil
}

// Close marks the store closed: every later call that would reach the
// backend or the locker fails with an error matching ErrClosed. Calls in
// flight go on. A background compaction of the catalog gets up to 5
// seconds to finish (so that a short-lived process builds the catalog of
// a small bucket) before it is cancelled; Close returns once it stopped. The backend and the locker are the
// caller's and stay open (setup.Opened.Close closes those it opened).
// Close is idempotent and always returns nil.
func (s *Store) Close() error {
	s.compactor.mu.Lock()
	s.compactor.closing = true
	s.compactor.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.background.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		s.compactor.cancel()
		<-done
	}
	s.b.(*closeGuard).closed.Store(true)
	s.compactor.cancel()
	return nil
}

// closeGrace is how long Close lets a background compaction finish before
// it cancels it.
const closeGrace = 5 * time.Second

// closeGuard fails every call once the Store is closed, and runs the
// Store's write gate before every Put and Delete.
type closeGuard struct {
	backend.Backend
	closed      atomic.Bool
	beforeWrite func(context.Context) error
}

func (g *closeGuard) check() error {
	if g.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	return nil
}

// checkWrite is check, then the write gate.
func (g *closeGuard) checkWrite(ctx context.Context) error {
	if err := g.check(); err != nil {
		return err
	}
	return g.beforeWrite(ctx)
}

func (g *closeGuard) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := g.checkWrite(ctx); err != nil {
		return backend.ObjectInfo{}, err
	}
	return g.Backend.Put(ctx, key, r, size, opts)
}

func (g *closeGuard) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	if err := g.check(); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	return g.Backend.Get(ctx, key)
}

func (g *closeGuard) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := g.check(); err != nil {
		return backend.ObjectInfo{}, err
	}
	return g.Backend.Stat(ctx, key)
}

func (g *closeGuard) Delete(ctx context.Context, key string) error {
	if err := g.checkWrite(ctx); err != nil {
		return err
	}
	return g.Backend.Delete(ctx, key)
}

func (g *closeGuard) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	if err := g.check(); err != nil {
		return func(yield func(backend.ObjectInfo, error) bool) { yield(backend.ObjectInfo{}, err) }
	}
	return g.Backend.List(ctx, prefix)
}

// DeleteIfMatch passes the capability through (the retry decorator answers
// errors.ErrUnsupported when the backend lacks it).
func (g *closeGuard) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := g.checkWrite(ctx); err != nil {
		return err
	}
	return g.Backend.(backend.ConditionalDeleter).DeleteIfMatch(ctx, key, etag)
}

// Close of the guard does not close the backend: it is the caller's.
func (g *closeGuard) Close() error { return nil }

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// retryPolicy is the backoff of the store's own retries.
func (s *Store) retryPolicy() backoff.Policy {
	return backoff.Policy{Initial: s.cfg.Retry.Initial, Max: s.cfg.Retry.Max}
}

// newID returns a new ULID (time-ordered by Config.Now, random below).
func (s *Store) newID() string {
	return ulid.MustNew(ulid.Timestamp(s.cfg.Now()), rand.Reader).String()
}

// logResult logs a failed operation once: op, uri and the error, plus the
// backend's own error when the message leaves it out (the storage path of
// a missing artifact). The caller gets the error too, so it is never
// logged at Error: expected outcomes (not found, invalid input,
// cancellation) at Debug, contention (conflict, lock timeout, lock held)
// at Info, the rest (backend, lock service, integrity) at Warn.
func (s *Store) logResult(ctx context.Context, op, uri string, err error) {
	if err == nil {
		return
	}
	level := slog.LevelWarn
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity),
		errors.Is(err, ErrInvalidArgument),
		isContextErr(err):
		level = slog.LevelDebug
	case errors.Is(err, ErrConflict), errors.Is(err, ErrLockTimeout), errors.Is(err, ErrLocked):
		level = slog.LevelInfo
	}
	attrs := []any{"op", op, "uri", uri, "err", err}
	if nf := (*notFoundError)(nil); errors.As(err, &nf) && nf.cause != nil {
		attrs = append(attrs, "cause", nf.cause)
	}
	s.log.Log(ctx, level, "store: "+op+" failed", attrs...)
}

// parseArtifact parses uri and refuses a version in it (writes address the
// artifact as a whole).
func parseArtifact(uri string) (URI, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return URI{}, err
	}
	if u.Version != 0 {
		return URI{}, invalidf("URI %q: a version cannot be given here", uri)
	}
	return u, nil
}
