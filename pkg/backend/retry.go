package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
)

// Defaults of RetryConfig, applied by WithDefaults to zero fields.
const (
	DefaultMaxRetries   = 3
	DefaultRetryInitial = 100 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
)

// RetryConfig configures the retry decorator made by WithRetry. The zero
// value of each field means its default.
type RetryConfig struct {
	// MaxRetries is how many times a failed call is retried after its first
	// attempt, so a call makes at most MaxRetries+1 attempts; a negative
	// value turns retries off (zero means the default). Default 3.
	MaxRetries int
	// Initial is the ceiling of the delay before the first retry; the
	// ceiling doubles for every later retry, up to Max, and each delay is
	// drawn uniformly between zero and its ceiling (full jitter). Default
	// 100ms.
	Initial time.Duration
	// Max caps the ceiling of the delay between two attempts. Default 5s
	// (or Initial, when Initial is larger).
	Max time.Duration
	// Logger receives one Warn record per retry (operation, key, attempt,
	// delay, error) and one when a call gives up after retrying. Default:
	// discard.
	Logger *slog.Logger
	// OnRetry, when not nil, is called once per retry, just before its
	// delay, with the operation ("put", "get", "stat", "delete", "list"),
	// the retry's number (1 for the first retry) and the error that caused
	// it; package telemetry counts retries with it (and package store
	// calls it for its own retries too, see store.Config.Retry). It must be
	// quick and safe for concurrent use. Default nil.
	OnRetry func(ctx context.Context, op string, retry int, err error)
}

// WithDefaults returns c with every zero field set to its default.
func (c RetryConfig) WithDefaults() RetryConfig {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.Initial == 0 {
		c.Initial = DefaultRetryInitial
	}
	if c.Max == 0 {
		c.Max = max(DefaultRetryMax, c.Initial)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c after defaults are
// applied. The error matches ErrInvalidArgument.
func (c RetryConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Initial < 0:
		return fmt.Errorf("%w: retry config: Initial %v is negative", ErrInvalidArgument, c.Initial)
	case c.Max < c.Initial:
		return fmt.Errorf("%w: retry config: Max %v is less than Initial %v", ErrInvalidArgument, c.Max, c.Initial)
	}
	return nil
}

// Retrying is a Backend decorator that retries the calls of another
// Backend that fail with a transient error (IsTransient), waiting an
// exponential backoff with full jitter between attempts. It retries only
// what can be sent again without changing its meaning:
//
//   - Get, Stat and Delete are retried as they are. A Get is retried only
//     while it is opening the object: a reader that fails later is the
//     caller's to handle. Delete is idempotent for the keys it is meant
//     for, but it is unconditional: a retry removes whatever the key holds
//     by then, so an object re-created between two attempts (by another
//     writer) is deleted too. Call Delete only on keys nobody re-creates
//     concurrently, such as the store's write-once blobs, and
//     DeleteIfMatch on the others.
//   - An unconditional Put is retried only when its body can be sent
//     again: a reader that is an io.Seeker (and whose Seek works) is
//     rewound to where it was when Put was called; any other reader only
//     when the failed attempt read none of it. Otherwise the first error
//     is returned.
//   - A conditional Put (PutOptions.IfAbsent or IfMatch) is never
//     retried. Its transient failure may hide a write that landed (a lost
//     response), and a second attempt would then fail with
//     ErrPreconditionFailed against the caller's own object, a false
//     conflict. The error keeps the transient error in the chain (so
//     IsTransient still holds) and says that the outcome is unknown; the
//     caller resolves it by reading the object back and looking for its
//     own write.
//   - DeleteIfMatch (ConditionalDeleter) is never retried either, for the
//     same reason: a re-sent conditional delete whose first attempt landed
//     fails with ErrNotFound (or ErrPreconditionFailed, when the key was
//     written again since). When the wrapped Backend is not a
//     ConditionalDeleter it fails with an error matching
//     errors.ErrUnsupported.
//   - List is retried when it fails, resuming after the last key it
//     yielded (keys come in ascending order, so none is yielded twice);
//     MaxRetries bounds the consecutive failures without progress.
//   - Close is not retried.
//
// Cancellation of the context ends the waiting at once, with an error that
// matches ctx.Err() and keeps the last attempt's error in the chain. After
// the last attempt the error is the last attempt's, annotated.
type Retrying struct {
	b      Backend
	cfg    RetryConfig
	policy backoff.Policy
}

var (
	_ Backend            = (*Retrying)(nil)
	_ ConditionalDeleter = (*Retrying)(nil)
)

// WithRetry wraps b in a Retrying configured by cfg, with defaults applied
// to its zero fields. It does not validate cfg (call RetryConfig.Validate
// for that) and tolerates invalid values: a negative Initial means no
// delay, and a Max below Initial caps every delay at Max.
func WithRetry(b Backend, cfg RetryConfig) *Retrying {
	cfg = cfg.WithDefaults()
	return &Retrying{b: b, cfg: cfg, policy: backoff.Policy{Initial: cfg.Initial, Max: cfg.Max}}
}

// Unwrap returns the wrapped Backend.
func (r *Retrying) Unwrap() Backend { return r.b }

// Config returns the configuration in use, with defaults applied.
func (r *Retrying) Config() RetryConfig { return r.cfg }

// retry decides what follows the failed attempt number attempt (0-based)
// of op on key: nil when the caller should try again (after the backoff
// delay, already waited), or the error to return. blocked, when not nil, is
// why a transient failure cannot be retried.
func (r *Retrying) retry(ctx context.Context, op, key string, attempt int, err, blocked error) error {
	if !IsTransient(err) {
		if attempt > 0 {
			return fmt.Errorf("backend: %s %q: attempt %d of %d: %w", op, key, attempt+1, r.cfg.MaxRetries+1, err)
		}
		return err
	}
	if attempt >= r.cfg.MaxRetries {
		if attempt > 0 {
			r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "backend: giving up after retries",
				slog.String("op", op), slog.String("key", key), slog.Int("attempts", attempt+1), slog.Any("err", err))
			return fmt.Errorf("backend: %s %q: giving up after %d attempts: %w", op, key, attempt+1, err)
		}
		return err
	}
	if blocked != nil {
		return fmt.Errorf("backend: %s %q: not retried: %w: %w", op, key, blocked, err)
	}
	delay := r.policy.Delay(attempt)
	r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "backend: retrying after a transient error",
		slog.String("op", op), slog.String("key", key), slog.Int("attempt", attempt+1),
		slog.Duration("delay", delay), slog.Any("err", err))
	if r.cfg.OnRetry != nil {
		r.cfg.OnRetry(ctx, op, attempt+1, err)
	}
	if cerr := backoff.Sleep(ctx, delay); cerr != nil {
		return fmt.Errorf("backend: %s %q: %w while waiting to retry (last attempt: %w)", op, key, cerr, err)
	}
	return nil
}

// unknownOutcome annotates (and logs) the transient failure of a
// conditional write, which Retrying never sends again.
func (r *Retrying) unknownOutcome(ctx context.Context, op, key string, err error) error {
	r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "backend: conditional write not retried, outcome unknown",
		slog.String("op", op), slog.String("key", key), slog.Any("err", err))
	return fmt.Errorf("backend: %s %q: not retried: the outcome of a conditional write that failed this way is unknown, it may have landed (read the object back to learn it): %w", op, key, err)
}

// Put implements Backend. See Retrying for when it retries.
func (r *Retrying) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	if opts.IfAbsent || opts.IfMatch != "" {
		info, err := r.b.Put(ctx, key, body, size, opts)
		if err != nil && IsTransient(err) {
			return ObjectInfo{}, r.unknownOutcome(ctx, "conditional put", key, err)
		}
		return info, err
	}
	seeker, start := Rewindable(body)
	for attempt := 0; ; attempt++ {
		send := body
		var counter *countingReader
		if seeker == nil && body != nil {
			counter = &countingReader{r: body}
			send = counter
		}
		info, err := r.b.Put(ctx, key, send, size, opts)
		if err == nil {
			return info, nil
		}
		var blocked error
		if counter != nil && counter.n > 0 {
			blocked = fmt.Errorf("the failed attempt read %d bytes of a body that cannot be rewound", counter.n)
		}
		if rerr := r.retry(ctx, "put", key, attempt, err, blocked); rerr != nil {
			return ObjectInfo{}, rerr
		}
		if seeker != nil {
			if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
				return ObjectInfo{}, fmt.Errorf("backend: put %q: not retried: rewind the body: %w (last attempt: %w)", key, serr, err)
			}
		}
	}
}

// Rewindable returns body as an io.Seeker and its current offset when it
// can seek (a *os.File on a pipe implements io.Seeker but cannot), so that
// a request that failed without writing can send it again from there.
func Rewindable(body io.Reader) (io.Seeker, int64) {
	s, ok := body.(io.Seeker)
	if !ok {
		return nil, 0
	}
	off, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0
	}
	return s, off
}

// Get implements Backend. Only the opening of the object is retried.
func (r *Retrying) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	for attempt := 0; ; attempt++ {
		rc, info, err := r.b.Get(ctx, key)
		if err == nil {
			return rc, info, nil
		}
		if rerr := r.retry(ctx, "get", key, attempt, err, nil); rerr != nil {
			return nil, ObjectInfo{}, rerr
		}
	}
}

// Stat implements Backend.
func (r *Retrying) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	for attempt := 0; ; attempt++ {
		info, err := r.b.Stat(ctx, key)
		if err == nil {
			return info, nil
		}
		if rerr := r.retry(ctx, "stat", key, attempt, err, nil); rerr != nil {
			return ObjectInfo{}, rerr
		}
	}
}

// Delete implements Backend.
func (r *Retrying) Delete(ctx context.Context, key string) error {
	for attempt := 0; ; attempt++ {
		err := r.b.Delete(ctx, key)
		if err == nil {
			return nil
		}
		if rerr := r.retry(ctx, "delete", key, attempt, err, nil); rerr != nil {
			return rerr
		}
	}
}

// DeleteIfMatch implements ConditionalDeleter by calling the wrapped
// Backend's DeleteIfMatch once; see Retrying for why it is never retried.
// When the wrapped Backend is not a ConditionalDeleter it fails with an
// error matching errors.ErrUnsupported.
func (r *Retrying) DeleteIfMatch(ctx context.Context, key, etag string) error {
	cd, ok := r.b.(ConditionalDeleter)
	if !ok {
		return fmt.Errorf("backend: delete %q if ETag %q: %T is not a ConditionalDeleter: %w", key, etag, r.b, errors.ErrUnsupported)
	}
	err := cd.DeleteIfMatch(ctx, key, etag)
	if err != nil && IsTransient(err) {
		return r.unknownOutcome(ctx, "delete if match", key, err)
	}
	return err
}

// List implements Backend. A failed listing is restarted and resumes after
// the last key it yielded.
func (r *Retrying) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		var last string
		started := false
		for attempt := 0; ; attempt++ {
			var failed error
			progressed := false
			for info, err := range r.b.List(ctx, prefix) {
				if err != nil {
					failed = err
					break
				}
				if started && info.Key <= last {
					continue // yielded by an earlier attempt
				}
				started, last, progressed = true, info.Key, true
				if !yield(info, nil) {
					return
				}
			}
			if failed == nil {
				return
			}
			if progressed {
				attempt = 0
			}
			if rerr := r.retry(ctx, "list", prefix, attempt, failed, nil); rerr != nil {
				yield(ObjectInfo{}, rerr)
				return
			}
		}
	}
}

// Close implements Backend; it closes the wrapped Backend.
func (r *Retrying) Close() error { return r.b.Close() }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
