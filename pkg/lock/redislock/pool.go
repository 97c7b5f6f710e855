package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"
)

// The Redsync adapter.
//
// Redsync runs the Redlock algorithm (parallel attempts on every master,
// quorum, validity time with clock drift, cleanup of a failed attempt,
// extension, unlock) over redsyncredis.Pool, an interface meant to be
// implemented. This package implements it over go-redis so that each
// per-master step Redsync asks for does this lock's extra work in the same
// round trip:
//
//   - SetNX (the acquisition step) runs acquireScript: SET NX PX, plus the
//     fence increment and holder record on success, plus the waiting-queue
//     gate on the key's queue master.
//   - Eval of Redsync's delete script runs releaseScript: the same
//     compare-and-delete, plus the hand-off to the next waiter (on the
//     queue master first; the other masters then hand the key to the same
//     heir) or the wake-up PUBLISH.
//   - Eval of Redsync's touch script runs it unchanged.
//
// Each call records its per-master outcome in the op found in its context,
// which is how errors are classified (held by another holder versus masters
// unreachable) and how the fence is computed. Redsync calls SetNX only in an
// acquisition attempt and Eval only for the delete script (unlock, or the
// cleanup of a failed attempt) and the touch script (extend); the op's kind
// tells which.

type opKind int

const (
	opAcquire opKind = iota + 1 // TryLockContext; Eval is the cleanup of a failed attempt
	opRelease                   // UnlockContext
	opExtend                    // ExtendContext
)

type nodeStatus int

const (
	stPending nodeStatus = iota // no answer (yet)
	stOK                        // acquired, deleted, or extended
	stHeld                      // the key holds another token
	stGone                      // release: the key is gone
	stRefused                   // acquire: the queue let another waiter try first
	stError                     // the master did not answer
)

type nodeResult struct {
	status nodeStatus
	fence  int64  // acquire: this master's fence counter after the increment
	rank   int64  // acquire, refused or held on the queue master: the waiter's place
	ticket string // acquire: the waiter's queue ticket the script removed (acquired) or kept (refused or held)
	err    error
}

// op carries one Redsync call's parameters to the adapter and collects the
// per-master outcomes.
type op struct {
	kind   opKind
	names  keyNames
	waiter string // acquire: the waiting-queue id ('' for TryAcquire)
	ticket string // acquire: the waiter's ticket from an earlier attempt ('' for none)
	holder string // acquire: holder JSON
	since  int64  // acquire: unix ms

	start time.Time     // acquire: when the attempt started
	gate  chan struct{} // acquire, release: closed when the queue master has answered

	mu    sync.Mutex
	nodes []nodeResult
	heir  string // release: the waiter the queue master handed the key to
}

type opCtxKey struct{}

func newOp(kind opKind, names keyNames, n int) *op {
	o := &op{kind: kind, names: names, nodes: make([]nodeResult, n)}
	if kind == opAcquire || kind == opRelease {
		o.gate = make(chan struct{})
	}
	return o
}

func withOp(ctx context.Context, o *op) context.Context {
	return context.WithValue(ctx, opCtxKey{}, o)
}

func opFrom(ctx context.Context) *op {
	o, _ := ctx.Value(opCtxKey{}).(*op)
	return o
}

func (o *op) set(i int, r nodeResult) {
	o.mu.Lock()
	o.nodes[i] = r
	o.mu.Unlock()
}

func (o *op) get(i int) nodeResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nodes[i]
}

// snapshot returns a copy of the outcomes.
func (o *op) snapshot() []nodeResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]nodeResult(nil), o.nodes...)
}

// count returns how many masters ended in each status.
func (o *op) count() map[nodeStatus]int {
	n := make(map[nodeStatus]int, 6)
	for _, r := range o.snapshot() {
		n[r.status]++
	}
	return n
}

// pool is one master as Redsync sees it.
type pool struct {
	idx    int
	client redis.UniversalClient
	l      *Locker
}

var _ redsyncredis.Pool = (*pool)(nil)

func (p *pool) Get(ctx context.Context) (redsyncredis.Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return &conn{p: p, ctx: ctx}, nil
}

// conn is a view of one master bound to the context of one Redsync call
// (Redsync's own adapters store the context the same way).
type conn struct {
	p   *pool
	ctx context.Context
}

var _ redsyncredis.Conn = (*conn)(nil)

func (c *conn) Get(name string) (string, error) {
	v, err := c.p.client.Get(c.ctx, name).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

func (c *conn) Set(name, value string) (bool, error) {
	v, err := c.p.client.Set(c.ctx, name, value, 0).Result()
	return v == "OK", err
}

func (c *conn) PTTL(name string) (time.Duration, error) {
	return c.p.client.PTTL(c.ctx, name).Result()
}

func (c *conn) ScriptLoad(s *redsyncredis.Script) error {
	h, err := c.p.client.ScriptLoad(c.ctx, s.Src).Result()
	if err == nil {
		s.Hash = h
	}
	return err
}

func (c *conn) Close() error { return nil }

// SetNX is Redsync's per-master acquisition step.
func (c *conn) SetNX(name, value string, expiry time.Duration) (bool, error) {
	o := opFrom(c.ctx)
	if o == nil || o.kind != opAcquire {
		return c.p.client.SetNX(c.ctx, name, value, expiry).Result()
	}
	l, i := c.p.l, c.p.idx
	gated := i == o.names.queueNode
	if gated {
		defer close(o.gate)
	} else if l.waitGate(c.ctx, o) && o.get(o.names.queueNode).status == stRefused {
		// The queue gave the turn to another waiter: do not try here.
		o.set(i, nodeResult{status: stRefused})
		return false, nil
	}
	w, g, t := "", "0", ""
	if gated {
		w, g, t = o.waiter, "1", o.ticket
	}
	vals, err := acquireScript.Run(c.ctx, c.p.client, o.names.keys(),
		value, expiry.Milliseconds(), w, g, o.holder, o.since, l.stale.Milliseconds(), t).Slice()
	if err != nil {
		o.set(i, nodeResult{status: stError, err: err})
		return false, err
	}
	r, err := parseAcquire(vals)
	if err != nil {
		o.set(i, nodeResult{status: stError, err: err})
		return false, err
	}
	o.set(i, r)
	return r.status == stOK, nil
}

func parseAcquire(vals []any) (nodeResult, error) {
	if len(vals) != 3 {
		return nodeResult{}, fmt.Errorf("acquire script: unexpected reply %v", vals)
	}
	st, _ := vals[0].(int64)
	f, _ := vals[1].(int64)
	t, _ := vals[2].(string)
	switch st {
	case 1:
		return nodeResult{status: stOK, fence: f, ticket: t}, nil
	case 0:
		return nodeResult{status: stHeld, rank: f, ticket: t}, nil
	case -1:
		return nodeResult{status: stRefused, rank: f, ticket: t}, nil
	}
	return nodeResult{}, fmt.Errorf("acquire script: unexpected status %v", vals[0])
}

// Eval runs Redsync's delete script (as releaseScript) or touch script.
func (c *conn) Eval(s *redsyncredis.Script, keysAndArgs ...any) (any, error) {
	o := opFrom(c.ctx)
	if o == nil || o.kind == opExtend {
		v, err := c.evalRedsync(c.ctx, s, keysAndArgs)
		if o != nil {
			o.set(c.p.idx, extendResult(v, err))
		}
		return v, err
	}
	if len(keysAndArgs) < 2 {
		return nil, fmt.Errorf("redislock: unexpected Redsync script call with %d arguments", len(keysAndArgs))
	}
	token, _ := keysAndArgs[1].(string)
	l, i := c.p.l, c.p.idx
	isQueue := i == o.names.queueNode
	ctx := c.ctx
	restoreWaiter, ticket, passOn, heir := "", "", "1", ""
	switch {
	case o.kind == opRelease && isQueue:
		defer close(o.gate)
	case o.kind == opRelease:
		// Hand the key to the waiter the queue master handed it to.
		if l.waitGate(ctx, o) {
			o.mu.Lock()
			heir = o.heir
			o.mu.Unlock()
		}
	default:
		// Cleanup of a failed attempt. A master that answered that it did
		// not take the key has nothing of ours; any other may have it.
		r := o.get(i)
		if r.status == stHeld || r.status == stRefused {
			return int64(0), nil
		}
		if isQueue && r.status == stOK && r.ticket != "" {
			restoreWaiter, ticket = o.waiter, r.ticket
		}
		// The caller's cancellation must not leave our token behind.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.attemptTimeout)
		defer cancel()
		passOn = "0"
	}
	q := "0"
	if isQueue {
		q = "1"
	}
	vals, err := releaseScript.Run(ctx, c.p.client, o.names.keys(),
		token, restoreWaiter, ticket, l.stale.Milliseconds(), o.names.channel, q, l.wakePrefix, passOn, heir).Slice()
	var st int64
	if err == nil {
		if len(vals) != 2 {
			err = fmt.Errorf("release script: unexpected reply %v", vals)
		} else {
			st, _ = vals[0].(int64)
			heir, _ = vals[1].(string)
		}
	}
	if o.kind == opRelease {
		o.mu.Lock()
		o.nodes[i] = releaseResult(st, err)
		if isQueue {
			o.heir = heir
		}
		o.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

func releaseResult(st int64, err error) nodeResult {
	switch {
	case err != nil:
		return nodeResult{status: stError, err: err}
	case st == 1:
		return nodeResult{status: stOK}
	case st == 0:
		return nodeResult{status: stHeld}
	default:
		return nodeResult{status: stGone}
	}
}

func extendResult(v any, err error) nodeResult {
	if err != nil {
		return nodeResult{status: stError, err: err}
	}
	if n, ok := v.(int64); ok && n != 0 {
		return nodeResult{status: stOK}
	}
	return nodeResult{status: stHeld}
}

// evalRedsync runs one of Redsync's own scripts by hash, loading it on
// NOSCRIPT (a restarted master has an empty script cache).
func (c *conn) evalRedsync(ctx context.Context, s *redsyncredis.Script, keysAndArgs []any) (any, error) {
	if s.KeyCount < 0 || len(keysAndArgs) < s.KeyCount {
		return nil, fmt.Errorf("redislock: Redsync script with %d keys called with %d arguments", s.KeyCount, len(keysAndArgs))
	}
	keys := make([]string, s.KeyCount)
	for i := range keys {
		keys[i], _ = keysAndArgs[i].(string)
	}
	args := keysAndArgs[s.KeyCount:]
	v, err := c.p.client.EvalSha(ctx, s.Hash, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		v, err = c.p.client.Eval(ctx, s.Src, keys, args...).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, err
}

// waitGate waits until the key's queue master has answered o, for at most a
// quarter of the attempt timeout (a hung queue master must not stop the
// others), and reports whether it did.
func (l *Locker) waitGate(ctx context.Context, o *op) bool {
	t := time.NewTimer(l.attemptTimeout / 4)
	defer t.Stop()
	select {
	case <-o.gate:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
