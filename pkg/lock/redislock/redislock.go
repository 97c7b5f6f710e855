package redislock

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Compile-time checks that Locker implements the lock contract.
var (
	_ lock.Locker        = (*Locker)(nil)
	_ lock.Inspector     = (*Locker)(nil)
	_ lock.ForceUnlocker = (*Locker)(nil)
	_ lock.LeaseDriver   = (*driver)(nil)
)

// Locker grants leases with Redsync's Redlock over one or more independent
// Redis masters. It is safe for concurrent use. The zero value is not
// usable; call New or Open.
type Locker struct {
	cfg     lock.Config
	clients []redis.UniversalClient
	owned   bool // Close closes clients (Open made them)
	rs      *redsync.Redsync
	opts    []redsync.Option // of every mutex
	quorum  int
	holder  string // JSON of lock.Holder, recorded with each grant

	// attemptTimeout bounds one attempt on the masters (Redsync's timeout
	// factor) and every cleanup.
	attemptTimeout time.Duration
	// beat is how often the head of a queue (or a waiter outside it)
	// re-checks its turn; idleBeat how often a waiter behind others proves
	// it is alive; stale is how long a silent waiter keeps its entry (it
	// keeps its ticket, hence its place, when it comes back).
	beat, idleBeat, stale time.Duration
	// claimWindow is how long a lock handed to one of this Locker's waiters
	// is set for on the masters until the waiter claims it (extends it to
	// the expiry): the most a waiter that has gone away holds up the
	// queue, and the longest a holder starved of CPU right after the
	// hand-off may go without claiming (a quarter of it in) before its
	// lease ends.
	claimWindow time.Duration
	// wakePrefix starts every Locker's own wake-up channel (see scripts.go).
	wakePrefix string

	hub *hub

	leasesMu sync.Mutex
	leases   map[string]map[*lock.Lease]chan struct{} // granted here, by key; the channel closes once reaped

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a Locker over clients, one per independent Redis master, in
// the same order in every process (the order picks each key's queue master).
// A Redlock quorum is len(clients)/2+1. cfg's zero fields take lock's
// defaults; an invalid cfg is an error. The caller keeps ownership of the
// clients: Close does not close them.
//
// Clients should fail fast on a dead master (Config.Options shows the
// settings Open uses): go-redis's default of several dial retries with a
// back-off delays every attempt while a master is down.
func New(clients []redis.UniversalClient, cfg lock.Config) (*Locker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("redislock: %w", err)
	}
	if len(clients) == 0 {
		return nil, errors.New("redislock: no Redis clients")
	}
	for i, c := range clients {
		if c == nil {
			return nil, fmt.Errorf("redislock: client #%d is nil", i)
		}
	}
	cfg = cfg.WithDefaults()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	holder, err := json.Marshal(lock.Holder{Host: host, PID: os.Getpid()})
	if err != nil {
		return nil, fmt.Errorf("redislock: holder: %w", err)
	}
	l := &Locker{
		cfg:     cfg,
		clients: append([]redis.UniversalClient(nil), clients...),
		quorum:  len(clients)/2 + 1,
		holder:  string(holder),
		closed:  make(chan struct{}),
		leases:  make(map[string]map[*lock.Lease]chan struct{}),
	}
	l.attemptTimeout = attemptTimeout(cfg.Expiry)
	l.beat = min(max(cfg.RetryInterval, 10*time.Millisecond), 500*time.Millisecond)
	l.stale = max(time.Second, 10*l.beat)
	l.idleBeat = max(l.beat, l.stale/4)
	l.claimWindow = max(min(cfg.Expiry, max(l.stale, minClaimWindow)).Truncate(time.Millisecond), time.Millisecond)
	l.wakePrefix = cfg.KeyPrefix + "wake:"
	pools := make([]redsyncredis.Pool, len(clients))
	for i, c := range l.clients {
		pools[i] = &pool{idx: i, client: c, l: l}
	}
	l.rs = redsync.New(pools...)
	l.opts = []redsync.Option{
		redsync.WithExpiry(cfg.Expiry),
		redsync.WithTries(1), // lock.Wait does the retrying
		redsync.WithGenValueFunc(newToken),
		redsync.WithTimeoutFactor(float64(l.attemptTimeout) / float64(cfg.Expiry)),
	}
	l.hub = newHub(l)
	return l, nil
}

// Open connects to the masters described by rc (see ConfigFromEnv) and
// returns a Locker that owns the clients: Close closes them. It logs the
// masters it uses, never the password.
func Open(rc Config, cfg lock.Config) (*Locker, error) {
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	rc = rc.WithDefaults()
	cs := rc.NewClients()
	clients := make([]redis.UniversalClient, len(cs))
	for i, c := range cs {
		clients[i] = c
	}
	l, err := New(clients, cfg)
	if err != nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return nil, err
	}
	l.owned = true
	l.cfg.Logger.Info("redislock: opened", "redis", rc, "quorum", l.quorum)
	return l, nil
}

// attemptTimeout bounds one attempt on the masters: 5% of the expiry
// (Redsync's default factor), at least 250ms or a third of the expiry,
// whichever is less, so that short test expiries still leave a loaded
// machine time to answer.
func attemptTimeout(expiry time.Duration) time.Duration {
	t := expiry / 20
	if floor := min(250*time.Millisecond, expiry/3); t < floor {
		t = floor
	}
	return max(t, time.Millisecond)
}

// newToken is every acquisition's Redsync value: 130 random bits, nothing
// else.
func newToken() (string, error) { return rand.Text(), nil }

// Quorum is how many masters must agree: len(clients)/2+1.
func (l *Locker) Quorum() int { return l.quorum }

// Close stops the locker's pub/sub connections and, for a Locker made by
// Open, closes its clients. Waiting Acquire calls return lock.ErrClosed;
// leases already granted are not released (they expire). Calling it again
// does nothing.
func (l *Locker) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		l.hub.close()
		if l.owned {
			for _, c := range l.clients {
				err = errors.Join(err, c.Close())
			}
		}
	})
	return err
}

func (l *Locker) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// keyNames are the Redis names of one lock (see scripts.go).
type keyNames struct {
	lock, state, q, hb string
	channel            string
	queueNode          int // index of the master that keeps the waiting queue
	all                []string
}

func (k keyNames) keys() []string { return k.all }

func (l *Locker) names(key string) keyNames {
	base := l.cfg.KeyPrefix + "{" + key + "}"
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	k := keyNames{
		lock:      base,
		state:     base + ":state",
		q:         base + ":q",
		hb:        base + ":hb",
		channel:   base + ":released",
		queueNode: int(h.Sum32() % uint32(len(l.clients))),
	}
	k.all = []string{k.lock, k.state, k.q, k.hb}
	return k
}

func (l *Locker) prepare(key, what string) (keyNames, error) {
	if err := lock.ValidateKey(key); err != nil {
		return keyNames{}, fmt.Errorf("redislock: %s: %w", what, err)
	}
	if l.isClosed() {
		return keyNames{}, fmt.Errorf("redislock: %s %q: %w", what, key, lock.ErrClosed)
	}
	return l.names(key), nil
}

// Acquire waits until it holds key, up to Config.Timeout or ctx's deadline,
// whichever comes first. Waiters queue in arrival order on the key's queue
// node and are woken through Redis pub/sub when the holder releases. See
// lock.Locker.
func (l *Locker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	names, err := l.prepare(key, "acquire")
	if err != nil {
		return nil, err
	}
	w := l.hub.newWaiter(names)
	defer w.done()
	try := func(ctx context.Context) (*lock.Lease, error) { return l.attempt(ctx, key, names, w) }
	return lock.Wait(ctx, l.cfg, key, try, w.wake)
}

// TryAcquire makes one attempt: it returns an error matching lock.ErrLocked
// when another lease holds key (or waiters queued for it have the turn), and
// lock.ErrUnavailable when too few masters answered. See lock.Locker.
func (l *Locker) TryAcquire(ctx context.Context, key string) (*lock.Lease, error) {
	names, err := l.prepare(key, "acquire")
	if err != nil {
		return nil, err
	}
	return l.attempt(ctx, key, names, nil)
}

// attempt is one Redlock attempt; w is nil for TryAcquire.
func (l *Locker) attempt(ctx context.Context, key string, names keyNames, w *waiter) (*lock.Lease, error) {
	if l.isClosed() {
		return nil, fmt.Errorf("redislock: acquire %q: %w", key, lock.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redislock: acquire %q: %w", key, err)
	}
	var ticket string
	opts := l.opts
	if w != nil {
		if g, ok := w.takeHandoff(); ok {
			return l.handed(ctx, key, names, w, g)
		}
		var skip bool
		var rank int64
		if skip, rank, ticket = w.beforeAttempt(); skip {
			return nil, fmt.Errorf("redislock: acquire %q: %w: %d waiters queued ahead", key, lock.ErrLocked, rank)
		}
	}
	l.awaitReaped(ctx, key)
	o := newOp(opAcquire, names, len(l.clients))
	o.holder = l.holder
	o.since = time.Now().UnixMilli()
	if w != nil {
		// Every attempt of a waiter uses its token, the one a release
		// hands the lock over with.
		o.waiter, o.ticket = w.id, ticket
		opts = append(slices.Clip(opts), redsync.WithGenValueFunc(func() (string, error) { return w.token, nil }))
	}
	m := l.rs.NewMutex(names.lock, opts...)
	o.start = time.Now()
	err := m.TryLockContext(withOp(ctx, o))
	if w != nil {
		w.afterAttempt(o, err == nil)
	}
	if err != nil {
		return nil, l.acquireError(ctx, key, o, err)
	}
	d := &driver{l: l, m: m, names: names}
	fence, err := l.settleFence(key, names, o, m.Value())
	return l.newLease(ctx, key, d, fence, m.Until(), false, err)
}

// minClaimWindow is the shortest claim window (see Locker.claimWindow):
// with one second, a writer stalled about 0.75 s by a loaded machine right
// after a hand-off lost its lease and had its commit refused.
const minClaimWindow = 5 * time.Second

// handed makes a lease of the lock a release handed to w (see grant in
// scripts.go) without a round trip. A quorum of masters set w's token
// after w's last attempt that left it queued had started (g.after), each
// for w's claim window, so the keys live at least until g.after plus the
// window, less Redlock's clock drift. The lease claims the full expiry a
// quarter of the window later, unless it ended before (see claim); at once,
// before it is returned, when that margin is thin or when the lease does
// not refresh itself (its Until must then be the full expiry).
func (l *Locker) handed(ctx context.Context, key string, names keyNames, w *waiter, g handoff) (*lock.Lease, error) {
	o := newOp(opAcquire, names, len(l.clients))
	for i, f := range g.fences {
		if f > 0 {
			o.set(i, nodeResult{status: stOK, fence: f})
		}
	}
	m := l.rs.NewMutex(names.lock, append(slices.Clip(l.opts), redsync.WithValue(w.token))...)
	d := &driver{l: l, m: m, names: names}
	until := g.after.Add(l.claimWindow - l.claimWindow/100)
	claimNow := l.cfg.DisableAutoRefresh || g.after.IsZero() || time.Until(until) < l.claimWindow/2
	fence, err := l.settleFence(key, names, o, w.token)
	if err == nil && claimNow && ctx.Err() == nil {
		if ok, cerr := m.ExtendContext(withOp(ctx, newOp(opExtend, names, len(l.clients)))); ok {
			until = m.Until()
		} else {
			err = fmt.Errorf("redislock: acquire %q: %w: the lock handed over could not be claimed: %w",
				key, lock.ErrLocked, errors.Join(cerr, redsync.ErrExtendFailed))
		}
	}
	return l.newLease(ctx, key, d, fence, until, !claimNow, err)
}

// newLease makes the lease of a grant, valid until until, or frees the key
// again when err is set, the caller's context ended or the validity has
// already passed. claim: the keys are set for the claim window only, and
// the lease must claim them.
func (l *Locker) newLease(ctx context.Context, key string, d *driver, fence int64, until time.Time, claim bool, err error) (*lock.Lease, error) {
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("redislock: acquire %q: %w", key, ctx.Err())
	}
	if err == nil && !time.Now().Before(until) {
		err = fmt.Errorf("redislock: acquire %q: %w: the quorum was reached too late to be valid", key, lock.ErrUnavailable)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.attemptTimeout)
		defer cancel()
		_, _ = d.m.UnlockContext(withOp(rctx, newOp(opRelease, d.names, len(l.clients))))
		return nil, err
	}
	g := lock.Grant{Key: key, Token: d.m.Value(), Fence: uint64(fence), Until: until}
	ls := lock.NewLease(g, l.cfg, d)
	l.reap(key, ls, d, claim)
	return ls, nil
}

// claim extends a lease that was handed over for the claim window to the
// full expiry (Refresh), a quarter of the window after the hand-off unless
// the lease ended before: short critical sections never pay for it. A
// transient failure is retried until the lease ends.
func (l *Locker) claim(ls *lock.Lease) {
	t := time.NewTimer(l.claimWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ls.Done():
			return
		case <-l.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithDeadline(context.Background(), ls.Until())
		err := ls.Refresh(ctx)
		cancel()
		if err == nil || errors.Is(err, lock.ErrLeaseLost) || errors.Is(err, lock.ErrNotHeld) {
			return
		}
		t.Reset(l.claimWindow / 8)
	}
}

// reap removes a lost lease's token from the masters as soon as the lease
// ends without a release; with claim it first claims the lease (see
// claim). A lease expires here (Until) a little before its keys expire on
// the masters, which Redlock's drift margin keeps conservative; deleting
// the keys (compare-and-delete, so only this lease's) hands the key to the
// next waiter at once instead of leaving the waiters to poll until the
// masters expire it.
func (l *Locker) reap(key string, ls *lock.Lease, d *driver, claim bool) {
	reaped := make(chan struct{})
	l.leasesMu.Lock()
	set := l.leases[key]
	if set == nil {
		set = make(map[*lock.Lease]chan struct{})
		l.leases[key] = set
	}
	set[ls] = reaped
	l.leasesMu.Unlock()
	go func() {
		defer func() {
			l.leasesMu.Lock()
			delete(l.leases[key], ls)
			if len(l.leases[key]) == 0 {
				delete(l.leases, key)
			}
			l.leasesMu.Unlock()
			close(reaped)
		}()
		if claim {
			l.claim(ls)
		}
		select {
		case <-ls.Done():
		case <-l.closed:
			return
		}
		if !errors.Is(ls.Err(), lock.ErrLeaseLost) {
			return // released
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.attemptTimeout)
		defer cancel()
		_, _ = d.m.UnlockContext(withOp(ctx, newOp(opRelease, d.names, len(l.clients))))
	}()
}

// awaitReaped waits until the lost leases of key granted by this locker
// are reaped, so that a process that saw its lease end and asks again does
// not find its own stale token.
func (l *Locker) awaitReaped(ctx context.Context, key string) {
	l.leasesMu.Lock()
	var pending []chan struct{}
	for ls, reaped := range l.leases[key] {
		select {
		case <-ls.Done():
			pending = append(pending, reaped)
		default:
		}
	}
	l.leasesMu.Unlock()
	if len(pending) == 0 {
		return
	}
	t := time.NewTimer(l.attemptTimeout)
	defer t.Stop()
	for _, reaped := range pending {
		select {
		case <-reaped:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// acquireError maps a failed Redsync attempt to the lock errors: a context
// error when the caller's context ended it, ErrUnavailable when too few
// masters answered to form a quorum, ErrLocked when enough answered and
// another holder (or the queue) kept the key. Redsync's error stays in the
// chain.
func (l *Locker) acquireError(ctx context.Context, key string, o *op, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("redislock: acquire %q: %w (%w)", key, cerr, err)
	}
	n := o.count()
	answered := len(l.clients) - n[stError] - n[stPending]
	switch {
	case answered < l.quorum:
		return fmt.Errorf("redislock: acquire %q: %w: %d of %d masters answered, quorum is %d: %w",
			key, lock.ErrUnavailable, answered, len(l.clients), l.quorum, err)
	case n[stRefused] > 0 && o.get(o.names.queueNode).status == stRefused:
		// The queue master answered first and the others were not asked:
		// whether another lease holds the key is not known.
		if o.waiter == "" {
			return fmt.Errorf("redislock: acquire %q: %w: waiters queued for the key have the turn: %w", key, lock.ErrLocked, err)
		}
		return fmt.Errorf("redislock: acquire %q: %w: %d waiters queued ahead: %w",
			key, lock.ErrLocked, o.get(o.names.queueNode).rank, err)
	case n[stHeld] > 0 || n[stRefused] > 0:
		return fmt.Errorf("redislock: acquire %q: %w (%d of %d masters held by another holder, %d reserved for queued waiters): %w",
			key, lock.ErrLocked, n[stHeld], len(l.clients), n[stRefused], err)
	default:
		return fmt.Errorf("redislock: acquire %q: %w: %w", key, lock.ErrUnavailable, err)
	}
}

// settleFence computes the fence of a grant from the per-master counters
// the attempt incremented, and makes sure a quorum of masters records at
// least that value before the grant is used (see the package documentation
// for why this makes fences strictly increase).
func (l *Locker) settleFence(key string, names keyNames, o *op, token string) (int64, error) {
	res := o.snapshot()
	var fence int64
	for _, r := range res {
		if r.status == stOK {
			fence = max(fence, r.fence)
		}
	}
	acks := 0
	var lagging []int
	for i, r := range res {
		switch {
		case r.status != stOK:
		case r.fence == fence:
			acks++
		default:
			lagging = append(lagging, i)
		}
	}
	if acks >= l.quorum {
		return fence, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.attemptTimeout)
	defer cancel()
	errs := make([]error, len(lagging))
	var wg sync.WaitGroup
	for j, i := range lagging {
		wg.Go(func() {
			errs[j] = raiseFenceScript.Run(ctx, l.clients[i], []string{names.state}, fence, token).Err()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			acks++
		}
	}
	if acks < l.quorum {
		return 0, fmt.Errorf("redislock: acquire %q: %w: fence %d recorded on %d masters, quorum is %d: %w",
			key, lock.ErrUnavailable, fence, acks, l.quorum, errors.Join(errs...))
	}
	return fence, nil
}

// driver keeps one lease alive through its Redsync mutex (lock.LeaseDriver).
// Lease serializes its calls, as the mutex requires.
type driver struct {
	l     *Locker
	m     *redsync.Mutex
	names keyNames
}

// Extend runs Redsync's extension. The lease is lost when too few masters
// may still hold its token to form a quorum; otherwise a failure is
// transient (lock.ErrUnavailable) and the lease retries until it expires.
func (d *driver) Extend(ctx context.Context, ls *lock.Lease) (time.Time, error) {
	o := newOp(opExtend, d.names, len(d.l.clients))
	ok, err := d.m.ExtendContext(withOp(ctx, o))
	if ok {
		return d.m.Until(), nil
	}
	if err == nil {
		err = redsync.ErrExtendFailed
	}
	return time.Time{}, d.failure(ctx, "extend", o, err)
}

// Release runs Redsync's unlock, which also wakes the waiters. It reports
// lock.ErrLeaseLost when too few masters still held the token to form a
// quorum.
func (d *driver) Release(ctx context.Context, ls *lock.Lease) error {
	o := newOp(opRelease, d.names, len(d.l.clients))
	ok, err := d.m.UnlockContext(withOp(ctx, o))
	if ok {
		return nil
	}
	if err == nil {
		err = redsync.ErrFailed
	}
	return d.failure(ctx, "release", o, err)
}

func (d *driver) failure(ctx context.Context, what string, o *op, err error) error {
	n := o.count()
	if mayHold := n[stOK] + n[stError] + n[stPending]; mayHold < d.l.quorum {
		return fmt.Errorf("redislock: %s %q: %w: %d of %d masters still hold the token, quorum is %d",
			what, d.names.lock, lock.ErrLeaseLost, n[stOK], len(d.l.clients), d.l.quorum)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("redislock: %s %q: %w: %w", what, d.names.lock, cerr, err)
	}
	return fmt.Errorf("redislock: %s %q: %w: %w", what, d.names.lock, lock.ErrUnavailable, err)
}
