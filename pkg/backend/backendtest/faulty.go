package backendtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
)

// Op names a method of backend.Backend (or of an optional capability), to
// aim a Fault at it.
type Op string

// The operations a Fault can target.
const (
	OpPut    Op = "Put"
	OpGet    Op = "Get"
	OpStat   Op = "Stat"
	OpDelete Op = "Delete"
	OpList   Op = "List"
	// OpDeleteIfMatch is backend.ConditionalDeleter's DeleteIfMatch.
	OpDeleteIfMatch Op = "DeleteIfMatch"
)

// Stage says at which point of a call a Fault's error strikes.
type Stage int

const (
	// Before: the call fails before it reaches the wrapped backend, which
	// sees nothing; a Put reads none of its body. The default.
	Before Stage = iota
	// After: the wrapped backend completes the call and then the error is
	// returned instead of its result, like a response lost on the network:
	// the effect (a stored or deleted object) happened. A Get's reader is
	// closed; a List yields the error after the whole listing.
	After
	// Midway: a Put's body fails with the error after Offset bytes (the
	// wrapped backend sees a failing reader), a Get's reader fails after
	// Offset bytes, a List yields the error after Offset objects. For Stat,
	// Delete and DeleteIfMatch it is the same as Before.
	Midway
)

// ErrInjected is in the chain of the errors made by Transient and
// Permanent, so that a test can tell an injected failure from a real one.
var ErrInjected = errors.New("backendtest: injected fault")

// Transient returns an injected error that matches backend.ErrTransient
// (and ErrInjected): a failure the retry decorator retries.
func Transient(msg string) error {
	return fmt.Errorf("%w: %s: %w", ErrInjected, msg, backend.ErrTransient)
}

// Permanent returns an injected error that matches sentinel (and
// ErrInjected), for example backend.ErrPermissionDenied.
func Permanent(msg string, sentinel error) error {
	return fmt.Errorf("%w: %s: %w", ErrInjected, msg, sentinel)
}

// Fault describes what to do to some calls of one operation. A call is
// matched by Op and KeyPrefix; of the matching calls, the first Skip pass
// untouched and the next Times (all of them when Times is 0) get the fault:
// they are the disturbed calls. A disturbed call first waits Delay, then
// runs Hook, then fails with Err when At is Before; otherwise it reaches
// the wrapped backend, with the Ignore fields applied, and Err strikes at
// stage At.
type Fault struct {
	// Op is the operation to disturb. Required.
	Op Op
	// KeyPrefix restricts the fault to keys (List: prefixes) that start
	// with it. Default "" (every key).
	KeyPrefix string
	// Skip is the number of matching calls to let through before the
	// fault starts. Default 0.
	Skip int
	// Times is the number of calls disturbed after Skip. Default 0: every
	// later matching call.
	Times int
	// Delay is a latency added before the call reaches the wrapped
	// backend; a context that ends during it fails the call with the
	// context's error. Default 0.
	Delay time.Duration
	// Err is the error injected at stage At. Default nil: no error (Delay
	// and the Ignore fields still apply).
	Err error
	// At is when Err strikes. Default Before.
	At Stage
	// Offset is, for At == Midway, the number of body bytes (Put, Get) or
	// objects (List) that pass before Err. Default 0.
	Offset int64
	// IgnoreIfAbsent drops PutOptions.IfAbsent before a Put reaches the
	// wrapped backend, simulating a server that ignores the condition.
	// Default false.
	IgnoreIfAbsent bool
	// IgnoreIfMatch drops PutOptions.IfMatch likewise. With Op
	// OpDeleteIfMatch it turns DeleteIfMatch into the wrapped backend's
	// unconditional Delete, like an S3 server that accepts If-Match on
	// DELETE and deletes anyway (a missing key then succeeds too). Default
	// false.
	IgnoreIfMatch bool
	// Hook, when not nil, is called with the call's context, operation and
	// key (List: prefix) for every disturbed call, after Delay and before
	// the call reaches the wrapped backend (or fails with a Before-stage
	// Err), in the caller's goroutine. A test uses it to act at an exact
	// point: block on a channel to hold a writer between two calls, or
	// run another operation (free a lease, write a competing object)
	// before this one proceeds. A Hook that blocks should watch ctx. When
	// several faults with a Hook match one call, the hooks run in the
	// order the faults were added. A List's Hook runs when its iteration
	// starts. Default nil.
	Hook func(ctx context.Context, op Op, key string)
}

type faultState struct {
	Fault
	seen int
}

// Faulty is a backend.Backend decorator that injects errors, latency and
// ignored conditions into chosen calls of the backend it wraps, in the
// style of thanos' WithDelay; tests use it instead of mocks. It is safe for
// concurrent use; faults may be added while calls are in flight.
type Faulty struct {
	b backend.Backend

	mu     sync.Mutex
	faults []*faultState
	calls  map[Op]int
}

var (
	_ backend.Backend            = (*Faulty)(nil)
	_ backend.ConditionalDeleter = (*Faulty)(nil)
)

// NewFaulty wraps b; until Inject is called every call passes through.
func NewFaulty(b backend.Backend) *Faulty {
	return &Faulty{b: b, calls: make(map[Op]int)}
}

// Inject adds faults. When several match one call, their delays add up,
// their Ignore fields combine, and the first one added with an Err decides
// the error.
func (f *Faulty) Inject(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range faults {
		f.faults = append(f.faults, &faultState{Fault: ft})
	}
}

// Clear removes every fault and resets the call counters.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
	f.calls = make(map[Op]int)
}

// Calls returns how many calls of op Faulty received since it was made or
// last cleared, disturbed or not.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Unwrap returns the wrapped backend.
func (f *Faulty) Unwrap() backend.Backend { return f.b }

// plan is what happens to one call: the merge of its active faults.
type plan struct {
	delay          time.Duration
	err            error
	at             Stage
	offset         int64
	ignoreIfAbsent bool
	ignoreIfMatch  bool
	hooks          []func(ctx context.Context, op Op, key string)
}

// begin counts a call and merges the faults active for it.
func (f *Faulty) begin(op Op, key string) plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var p plan
	for _, fs := range f.faults {
		if fs.Op != op || !strings.HasPrefix(key, fs.KeyPrefix) {
			continue
		}
		fs.seen++
		if fs.seen <= fs.Skip || (fs.Times > 0 && fs.seen > fs.Skip+fs.Times) {
			continue
		}
		p.delay += fs.Delay
		p.ignoreIfAbsent = p.ignoreIfAbsent || fs.IgnoreIfAbsent
		p.ignoreIfMatch = p.ignoreIfMatch || fs.IgnoreIfMatch
		if fs.Hook != nil {
			p.hooks = append(p.hooks, fs.Hook)
		}
		if p.err == nil && fs.Err != nil {
			p.err, p.at, p.offset = fs.Err, fs.At, fs.Offset
		}
	}
	return p
}

// wait applies the plan's delay, runs its hooks and, for Stage Before,
// returns its error.
func (p plan) wait(ctx context.Context, op Op, key string) error {
	if p.delay > 0 {
		if err := backoff.Sleep(ctx, p.delay); err != nil {
			return fmt.Errorf("backendtest: %s %q: injected delay: %w", op, key, err)
		}
	}
	for _, hook := range p.hooks {
		hook(ctx, op, key)
	}
	if p.err != nil && p.at == Before {
		return fmt.Errorf("backendtest: %s %q: %w", op, key, p.err)
	}
	return nil
}

// Put implements backend.Backend.
func (f *Faulty) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	p := f.begin(OpPut, key)
	if err := p.wait(ctx, OpPut, key); err != nil {
		return backend.ObjectInfo{}, err
	}
	if p.ignoreIfAbsent {
		opts.IfAbsent = false
	}
	if p.ignoreIfMatch {
		opts.IfMatch = ""
	}
	if p.err != nil && p.at == Midway && r != nil {
		r = &failingReader{r: r, left: p.offset, err: p.err}
	}
	info, err := f.b.Put(ctx, key, r, size, opts)
	switch {
	case p.err == nil:
		return info, err
	case p.at == After && err == nil:
		return backend.ObjectInfo{}, fmt.Errorf("backendtest: put %q: %w", key, p.err)
	case p.at == Midway && err != nil && !errors.Is(err, p.err):
		return backend.ObjectInfo{}, fmt.Errorf("backendtest: put %q: %w: %w", key, p.err, err)
	}
	return info, err
}

// Get implements backend.Backend.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	p := f.begin(OpGet, key)
	if err := p.wait(ctx, OpGet, key); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	rc, info, err := f.b.Get(ctx, key)
	if err != nil || p.err == nil {
		return rc, info, err
	}
	if p.at == After {
		_ = rc.Close()
		return nil, backend.ObjectInfo{}, fmt.Errorf("backendtest: get %q: %w", key, p.err)
	}
	return &failingReadCloser{failingReader: failingReader{r: rc, left: p.offset, err: p.err}, c: rc}, info, nil
}

// Stat implements backend.Backend.
func (f *Faulty) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	p := f.begin(OpStat, key)
	if p.at == Midway {
		p.at = Before
	}
	if err := p.wait(ctx, OpStat, key); err != nil {
		return backend.ObjectInfo{}, err
	}
	info, err := f.b.Stat(ctx, key)
	if err == nil && p.err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("backendtest: stat %q: %w", key, p.err)
	}
	return info, err
}

// Delete implements backend.Backend.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	p := f.begin(OpDelete, key)
	if p.at == Midway {
		p.at = Before
	}
	if err := p.wait(ctx, OpDelete, key); err != nil {
		return err
	}
	err := f.b.Delete(ctx, key)
	if err == nil && p.err != nil {
		return fmt.Errorf("backendtest: delete %q: %w", key, p.err)
	}
	return err
}

// DeleteIfMatch implements backend.ConditionalDeleter with the faults
// aimed at OpDeleteIfMatch. When the wrapped backend is not a
// backend.ConditionalDeleter it fails with an error matching
// errors.ErrUnsupported, before any fault is counted or applied. A fault
// with IgnoreIfMatch calls the wrapped backend's Delete instead.
func (f *Faulty) DeleteIfMatch(ctx context.Context, key, etag string) error {
	cd, ok := f.b.(backend.ConditionalDeleter)
	if !ok {
		return fmt.Errorf("backendtest: delete %q if ETag %q: %T is not a backend.ConditionalDeleter: %w", key, etag, f.b, errors.ErrUnsupported)
	}
	p := f.begin(OpDeleteIfMatch, key)
	if p.at == Midway {
		p.at = Before
	}
	if err := p.wait(ctx, OpDeleteIfMatch, key); err != nil {
		return err
	}
	var err error
	if p.ignoreIfMatch {
		err = f.b.Delete(ctx, key)
	} else {
		err = cd.DeleteIfMatch(ctx, key, etag)
	}
	if err == nil && p.err != nil {
		return fmt.Errorf("backendtest: delete %q if ETag %q: %w", key, etag, p.err)
	}
	return err
}

// List implements backend.Backend. The faults are chosen when the
// iteration starts, not when List is called.
func (f *Faulty) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		p := f.begin(OpList, prefix)
		if err := p.wait(ctx, OpList, prefix); err != nil {
			yield(backend.ObjectInfo{}, err)
			return
		}
		var n int64
		for info, err := range f.b.List(ctx, prefix) {
			if err == nil && p.err != nil && p.at == Midway && n == p.offset {
				yield(backend.ObjectInfo{}, fmt.Errorf("backendtest: list %q: %w", prefix, p.err))
				return
			}
			if !yield(info, err) || err != nil {
				return
			}
			n++
		}
		if p.err != nil && (p.at == After || (p.at == Midway && n >= p.offset)) {
			yield(backend.ObjectInfo{}, fmt.Errorf("backendtest: list %q: %w", prefix, p.err))
		}
	}
}

// Close implements backend.Backend; it closes the wrapped backend.
func (f *Faulty) Close() error { return f.b.Close() }

// failingReader passes left bytes of r, then fails with err.
type failingReader struct {
	r    io.Reader
	left int64
	err  error
}

func (fr *failingReader) Read(p []byte) (int, error) {
	if fr.left <= 0 {
		return 0, fr.err
	}
	if int64(len(p)) > fr.left {
		p = p[:fr.left]
	}
	n, err := fr.r.Read(p)
	fr.left -= int64(n)
	return n, err
}

type failingReadCloser struct {
	failingReader
	c io.Closer
}

func (f *failingReadCloser) Close() error { return f.c.Close() }
