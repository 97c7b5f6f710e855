package memlock

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Compile-time checks that Locker implements the lock contract.
var (
	_ lock.Locker        = (*Locker)(nil)
	_ lock.Inspector     = (*Locker)(nil)
	_ lock.ForceUnlocker = (*Locker)(nil)
	_ lock.Pinger        = (*Locker)(nil)
)

// Locker grants exclusive, expiring leases on keys within one process. The
// zero value is not usable; call New.
type Locker struct {
	cfg    lock.Config
	holder lock.Holder
	driver *driver
	closed chan struct{} // always closed: the wake-up of a free key

	mu      sync.Mutex
	fence   uint64                   // last fence granted, for any key
	held    map[string]*entry        // by key; absent when free
	waiters map[string]chan struct{} // by key; closed when the key may be free
}

// entry is one key's current lease.
type entry struct {
	token  string
	fence  uint64
	since  time.Time
	until  time.Time
	expiry *time.Timer // frees the key at until unless extended
}

// New returns an empty Locker. cfg's zero fields take lock's defaults; an
// invalid cfg is an error.
func New(cfg lock.Config) (*Locker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memlock: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	m := &Locker{
		cfg:     cfg.WithDefaults(),
		holder:  lock.Holder{Host: host, PID: os.Getpid()},
		closed:  make(chan struct{}),
		held:    make(map[string]*entry),
		waiters: make(map[string]chan struct{}),
	}
	close(m.closed)
	m.driver = &driver{m: m}
	return m, nil
}

// Ping reports that the Locker answers: it always does, in-process, unless
// ctx has ended (an error wrapping ctx.Err()). See lock.Pinger.
func (m *Locker) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memlock: ping: %w", err)
	}
	return nil
}

// Acquire waits until it holds key, up to Config.Timeout or ctx's deadline,
// whichever comes first. A waiter is woken as soon as the key is released,
// broken or expires. See lock.Locker.
func (m *Locker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	if err := lock.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("memlock: acquire: %w", err)
	}
	try := func(ctx context.Context) (*lock.Lease, error) { return m.TryAcquire(ctx, key) }
	wake := func() <-chan struct{} { return m.subscribe(key) }
	return lock.Wait(ctx, m.cfg, key, try, wake)
}

// TryAcquire makes one attempt: it returns an error matching lock.ErrLocked
// when another lease holds key. See lock.Locker.
func (m *Locker) TryAcquire(ctx context.Context, key string) (*lock.Lease, error) {
	if err := lock.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("memlock: acquire: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memlock: acquire %q: %w", key, err)
	}
	now := time.Now()
	m.mu.Lock()
	e := m.held[key]
	if e != nil && now.Before(e.until) {
		until := e.until
		m.mu.Unlock()
		return nil, fmt.Errorf("memlock: acquire %q: %w by %s until %s",
			key, lock.ErrLocked, m.holder, until.Format(time.RFC3339Nano))
	}
	if e != nil {
		e.expiry.Stop() // expired: take it over
	}
	m.fence++
	e = &entry{token: rand.Text(), fence: m.fence, since: now, until: now.Add(m.cfg.Expiry)}
	e.expiry = m.expireAt(key, e)
	m.held[key] = e
	g := lock.Grant{Key: key, Token: e.token, Fence: e.fence, Until: e.until}
	m.mu.Unlock()
	return lock.NewLease(g, m.cfg, m.driver), nil
}

// Inspect reports who holds key. A free or expired key gives Held false.
func (m *Locker) Inspect(ctx context.Context, key string) (lock.Status, error) {
	if err := lock.ValidateKey(key); err != nil {
		return lock.Status{}, fmt.Errorf("memlock: inspect: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("memlock: inspect %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status(key, time.Now()), nil
}

// ForceUnlock frees key whoever holds it and returns the status it found.
// The broken lease learns it was lost at its next refresh (Refresh and
// Release return lock.ErrLeaseLost).
func (m *Locker) ForceUnlock(ctx context.Context, key string) (lock.Status, error) {
	if err := lock.ValidateKey(key); err != nil {
		return lock.Status{}, fmt.Errorf("memlock: force unlock: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("memlock: force unlock %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status(key, time.Now())
	if e := m.held[key]; e != nil {
		m.free(key, e)
	}
	if st.Held {
		m.cfg.Logger.Warn("lock broken by force unlock", "key", key, "fence", st.Fence, "holder", st.Holder)
	}
	return st, nil
}

// status describes key at now; m.mu must be held.
func (m *Locker) status(key string, now time.Time) lock.Status {
	e := m.held[key]
	if e == nil || !now.Before(e.until) {
		return lock.Status{Key: key}
	}
	return lock.Status{Key: key, Held: true, Holder: m.holder, Fence: e.fence, Since: e.since, Until: e.until}
}

// free removes key's entry e and wakes the key's waiters; m.mu must be held.
func (m *Locker) free(key string, e *entry) {
	e.expiry.Stop()
	if m.held[key] == e {
		delete(m.held, key)
	}
	if ch := m.waiters[key]; ch != nil {
		close(ch)
		delete(m.waiters, key)
	}
}

// expireAt starts the timer that frees key when e expires unextended, so
// that waiters need not poll for the expiry.
func (m *Locker) expireAt(key string, e *entry) *time.Timer {
	return time.AfterFunc(time.Until(e.until), func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.held[key] == e && !time.Now().Before(e.until) {
			m.free(key, e)
		}
	})
}

// subscribe returns a channel closed when key may have become free: at
// once when it is free now.
func (m *Locker) subscribe(key string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[key] == nil {
		return m.closed
	}
	ch := m.waiters[key]
	if ch == nil {
		ch = make(chan struct{})
		m.waiters[key] = ch
	}
	return ch
}

// driver keeps leases alive in a Locker (lock.LeaseDriver).
type driver struct{ m *Locker }

// current returns key's entry when it is held by token and not expired;
// m.mu must be held.
func (m *Locker) current(key, token string, now time.Time) (*entry, error) {
	e := m.held[key]
	switch {
	case e == nil || e.token != token:
		return nil, fmt.Errorf("memlock: %q: %w: no longer held by this lease", key, lock.ErrLeaseLost)
	case !now.Before(e.until):
		return e, fmt.Errorf("memlock: %q: %w: expired at %s", key, lock.ErrLeaseLost, e.until.Format(time.RFC3339Nano))
	}
	return e, nil
}

func (d *driver) Extend(ctx context.Context, l *lock.Lease) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("memlock: extend %q: %w", l.Key(), err)
	}
	m := d.m
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.current(l.Key(), l.Token(), now)
	if err != nil {
		if e != nil {
			m.free(l.Key(), e)
		}
		return time.Time{}, err
	}
	e.until = now.Add(m.cfg.Expiry)
	e.expiry.Reset(m.cfg.Expiry)
	return e.until, nil
}

func (d *driver) Release(ctx context.Context, l *lock.Lease) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memlock: release %q: %w", l.Key(), err)
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.current(l.Key(), l.Token(), time.Now())
	if e != nil {
		m.free(l.Key(), e)
	}
	return err
}
