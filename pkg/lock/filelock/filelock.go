package filelock

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// Config configures a Locker.
type Config struct {
	// Dir is the directory of the lock files, created (mode 0755) when
	// missing. Every process that shares the locks uses the same Dir, on
	// the same host, and needs write access to it (files are created with
	// mode 0644: run the sharing processes as one user). Required.
	Dir string
	// Lock holds the settings every locker shares: timeout, retry
	// intervals, expiry, refresh, key prefix and logger. Its zero fields
	// take the defaults of package lock.
	Lock lock.Config
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("filelock config: Dir is empty")
	}
	return c.Lock.Validate()
}

// Locker grants exclusive, expiring leases on keys to the processes of one
// host that share a directory. The zero value is not usable; call New.
type Locker struct {
	cfg      lock.Config
	logger   *slog.Logger
	holder   lock.Holder
	instance string // names this Locker's liveness file

	dir, keysDir, holdersDir, fencePath string

	notify *notifier
	driver *driver

	startMu sync.Mutex  // guards live and the start and end of the watch
	started atomic.Bool // start succeeded: live is set
	live    *os.File    // this Locker's liveness file, locked until Close

	closeOnce sync.Once
	closed    atomic.Bool
}

// Layout of Dir.
const (
	keysSubdir    = "keys"    // <sha256 of prefix+key>.lock: one state file per held key
	holdersSubdir = "holders" // <instance>.holder: locked while its Locker lives
	fenceFile     = "fence"   // high-water mark of the fences of removed key files
	keySuffix     = ".lock"
	holderSuffix  = ".holder"
	tempPrefix    = "tmp-"
)

// New returns a Locker over the lock directory cfg.Dir. It touches no
// file: the Locker registers as a live holder (creating Dir when missing)
// and removes what vanished holders left behind at its first Acquire or
// TryAcquire, so that a process that only inspects locks, or opens a store
// only to read, needs no write access to Dir. Call Close when done.
func New(cfg Config) (*Locker, error) {
	if !supported {
		return nil, fmt.Errorf("filelock: %w: no flock on this system", errors.ErrUnsupported)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("filelock: %w", err)
	}
	lcfg := cfg.Lock.WithDefaults()
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	l := &Locker{
		cfg:        lcfg,
		logger:     lcfg.Logger,
		holder:     lock.Holder{Host: host, PID: os.Getpid()},
		instance:   rand.Text(),
		dir:        cfg.Dir,
		keysDir:    filepath.Join(cfg.Dir, keysSubdir),
		holdersDir: filepath.Join(cfg.Dir, holdersSubdir),
		fencePath:  filepath.Join(cfg.Dir, fenceFile),
		notify:     newNotifier(),
	}
	l.driver = &driver{l: l}
	return l, nil
}

// start registers this Locker as a live holder, once: it creates the
// directories, the liveness file and the watch, and sweeps. A failure
// (Dir not writable) is returned and the next acquisition tries again.
func (l *Locker) start() error {
	if l.started.Load() {
		return nil
	}
	l.startMu.Lock()
	defer l.startMu.Unlock()
	switch {
	case l.started.Load():
		return nil
	case l.closed.Load():
		return lock.ErrClosed
	}
	for _, dir := range []string{l.keysDir, l.holdersDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	live, err := l.register()
	if err != nil {
		return fmt.Errorf("register holder: %w", err)
	}
	l.live = live
	l.notify.watch(l.keysDir, l.holdersDir, l.logger)
	l.sweep()
	l.started.Store(true)
	return nil
}

// register creates and locks this Locker's liveness file. It is locked
// before it gets its final name, so that no other process ever sees it
// unlocked while this Locker lives.
func (l *Locker) register() (*os.File, error) {
	tmp := filepath.Join(l.holdersDir, tempPrefix+l.instance)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if ok, err := tryFlock(f, lockExclusive); err != nil {
		return fail(err)
	} else if !ok {
		return fail(fmt.Errorf("%s: locked by another process", tmp))
	}
	info := struct {
		lock.Holder
		Started time.Time `json:"started"`
	}{l.holder, time.Now()}
	if err := writeRecord(f, info); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, l.holderPath(l.instance)); err != nil {
		return fail(err)
	}
	return f, nil
}

// Close unregisters this Locker. Leases still held lose their keys to other
// processes at once (this process no longer counts as alive) and learn it at
// their next refresh; release them first. Close is idempotent.
func (l *Locker) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.startMu.Lock()
		defer l.startMu.Unlock()
		l.closed.Store(true)
		l.notify.close()
		if l.live == nil {
			return // never registered
		}
		err = os.Remove(l.holderPath(l.instance))
		if cerr := l.live.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("filelock: close: %w", err)
		}
	})
	return err
}

// Acquire waits until it holds key, up to Config.Timeout or ctx's deadline,
// whichever comes first. A waiter wakes when the key's file changes (Linux:
// inotify; elsewhere only on this process's releases), when the holder's
// lease expires, and at its backoff retries. See lock.Locker.
func (l *Locker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	if err := l.checkAcquire(key); err != nil {
		return nil, err
	}
	name := fileName(l.cfg.KeyPrefix, key)
	var expiry *time.Timer // wakes the waiters when the holder's lease expires
	defer func() {
		if expiry != nil {
			expiry.Stop()
		}
	}()
	try := func(ctx context.Context) (*lock.Lease, error) {
		lease, heldUntil, err := l.try(ctx, key, name)
		if errors.Is(err, lock.ErrLocked) && !heldUntil.IsZero() {
			if expiry != nil {
				expiry.Stop()
			}
			expiry = time.AfterFunc(time.Until(heldUntil), func() { l.notify.fire(name) })
		}
		return lease, err
	}
	wake := func() <-chan struct{} { return l.notify.subscribe(name) }
	return lock.Wait(ctx, l.cfg, key, try, wake)
}

// TryAcquire makes one attempt: it returns an error matching lock.ErrLocked
// when a live holder's unexpired lease holds key. See lock.Locker.
func (l *Locker) TryAcquire(ctx context.Context, key string) (*lock.Lease, error) {
	if err := l.checkAcquire(key); err != nil {
		return nil, err
	}
	lease, _, err := l.try(ctx, key, fileName(l.cfg.KeyPrefix, key))
	return lease, err
}

// try makes one attempt on key; when the key is held it also returns when
// the holder's lease expires.
func (l *Locker) try(ctx context.Context, key, name string) (*lock.Lease, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, err)
	}
	if l.closed.Load() {
		return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, lock.ErrClosed)
	}
	path := filepath.Join(l.keysDir, name)
	f, err := openLocked(ctx, path, os.O_RDWR|os.O_CREATE, lockExclusive)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, err)
	}
	defer f.Close()
	var st state
	found, rerr := readRecord(f, &st)
	now := time.Now()
	var fence uint64
	switch {
	case rerr != nil:
		// Unknown previous fence: start above the high-water mark and the
		// clock (see parseFence), so fences still increase.
		l.logger.Error("filelock: corrupt state file, taking the key over", "key", key, "path", path, "err", rerr)
		hwm, err := l.readFence(ctx)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, err)
		}
		fence = max(hwm+1, uint64(now.UnixMicro()))
	case !found:
		hwm, err := l.readFence(ctx)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, err)
		}
		fence = hwm + 1
	default:
		if l.heldAt(st, now) {
			return nil, st.Until, fmt.Errorf("filelock: acquire %q: %w by %s until %s",
				key, lock.ErrLocked, st.Holder, st.Until.Format(time.RFC3339Nano))
		}
		if st.Token != "" {
			l.logger.Info("filelock: taking over a lease that expired or whose holder vanished",
				"key", key, "holder", st.Holder, "fence", st.Fence, "until", st.Until)
		}
		fence = st.Fence + 1
	}
	st = state{
		Fence:    fence,
		Token:    rand.Text(),
		Holder:   l.holder,
		Instance: l.instance,
		Since:    now,
		Until:    now.Add(l.cfg.Expiry),
	}
	if len(key) <= maxStoredKey {
		st.Key = key
	}
	if err := writeRecord(f, st); err != nil {
		return nil, time.Time{}, fmt.Errorf("filelock: acquire %q: %w", key, err)
	}
	g := lock.Grant{Key: key, Token: st.Token, Fence: st.Fence, Until: now.Add(l.cfg.Expiry)}
	return lock.NewLease(g, l.cfg, l.driver), time.Time{}, nil
}

// Inspect reports who holds key. A key whose lease expired, or whose holder
// process is gone, is free.
func (l *Locker) Inspect(ctx context.Context, key string) (lock.Status, error) {
	if err := l.check(key, "inspect"); err != nil {
		return lock.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("filelock: inspect %q: %w", key, err)
	}
	f, err := openLocked(ctx, filepath.Join(l.keysDir, fileName(l.cfg.KeyPrefix, key)), os.O_RDONLY, lockShared)
	if err != nil {
		return lock.Status{}, fmt.Errorf("filelock: inspect %q: %w", key, err)
	}
	if f == nil {
		return lock.Status{Key: key}, nil
	}
	defer f.Close()
	var st state
	if _, err := readRecord(f, &st); err != nil {
		return lock.Status{}, fmt.Errorf("filelock: inspect %q: %w", key, err)
	}
	return l.status(key, st, time.Now()), nil
}

// ForceUnlock frees key whoever holds it and returns the status it found.
// The broken lease learns it was lost at its next refresh (Refresh and
// Release return lock.ErrLeaseLost). A corrupt state file is removed too.
func (l *Locker) ForceUnlock(ctx context.Context, key string) (lock.Status, error) {
	if err := l.check(key, "force unlock"); err != nil {
		return lock.Status{}, err
	}
	if err := ctx.Err(); err != nil {
		return lock.Status{}, fmt.Errorf("filelock: force unlock %q: %w", key, err)
	}
	name := fileName(l.cfg.KeyPrefix, key)
	path := filepath.Join(l.keysDir, name)
	f, err := openLocked(ctx, path, os.O_RDWR, lockExclusive)
	if err != nil {
		return lock.Status{}, fmt.Errorf("filelock: force unlock %q: %w", key, err)
	}
	if f == nil {
		return lock.Status{Key: key}, nil
	}
	defer f.Close()
	var st state
	if _, err := readRecord(f, &st); err != nil {
		l.logger.Error("filelock: removing a corrupt state file", "key", key, "path", path, "err", err)
		// Unknown fence: the next acquisition starts above the clock.
		st = state{Fence: uint64(time.Now().UnixMicro())}
	}
	status := l.status(key, st, time.Now())
	if err := l.remove(ctx, f, path, st); err != nil {
		return lock.Status{}, fmt.Errorf("filelock: force unlock %q: %w", key, err)
	}
	l.notify.fire(name)
	if status.Held {
		l.logger.Warn("filelock: lock broken by force unlock", "key", key, "holder", status.Holder, "fence", status.Fence)
	}
	return status, nil
}

// remove frees the key file f at path, locked exclusively, whose record is
// st: it raises the fence high-water mark to st.Fence, then removes the file.
// When the mark cannot be raised, it keeps the file, marked free, so that the
// fence survives.
func (l *Locker) remove(ctx context.Context, f *os.File, path string, st state) error {
	if err := l.raiseFence(ctx, st.Fence); err != nil {
		l.logger.Warn("filelock: cannot raise the fence mark, keeping the key file", "path", path, "err", err)
		return writeRecord(f, state{Fence: st.Fence})
	}
	return os.Remove(path)
}

// status describes the record st of key at now.
func (l *Locker) status(key string, st state, now time.Time) lock.Status {
	if !l.heldAt(st, now) {
		return lock.Status{Key: key}
	}
	return lock.Status{Key: key, Held: true, Holder: st.Holder, Fence: st.Fence, Since: st.Since, Until: st.Until}
}

// heldAt reports whether st is a lease that holds its key at now: granted,
// not expired, and its holder's Locker still alive.
func (l *Locker) heldAt(st state, now time.Time) bool {
	return st.Token != "" && now.Before(st.Until) && l.alive(st.Instance)
}

// alive reports whether the Locker instance is still registered: its
// liveness file exists and is locked. A process that dies, however it dies,
// loses that lock, so its leases free at once rather than at expiry. When
// liveness cannot be decided the holder counts as alive (the lease then
// ends at its expiry).
func (l *Locker) alive(instance string) bool {
	if instance == l.instance {
		return !l.closed.Load()
	}
	if !validInstance(instance) {
		return true
	}
	path := l.holderPath(instance)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		l.logger.Warn("filelock: cannot check a holder", "path", path, "err", err)
		return true
	}
	defer f.Close()
	free, err := tryFlock(f, lockShared)
	if err != nil {
		l.logger.Warn("filelock: cannot check a holder", "path", path, "err", err)
		return true
	}
	if free {
		_ = os.Remove(path) // its process is gone: tidy up
	}
	return !free
}

// sweep removes what vanished processes left behind: liveness files no
// longer locked, and key files that no live lease holds. It is best effort
// and never waits for a lock.
func (l *Locker) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if entries, err := os.ReadDir(l.holdersDir); err == nil {
		for _, e := range entries {
			name := e.Name()
			if id, ok := strings.CutSuffix(name, holderSuffix); ok {
				l.alive(id) // removes the file of a dead holder
				continue
			}
			// A temporary file of a Locker that died while registering.
			if info, err := e.Info(); err == nil && strings.HasPrefix(name, tempPrefix) && time.Since(info.ModTime()) > time.Minute {
				_ = os.Remove(filepath.Join(l.holdersDir, name))
			}
		}
	}
	entries, err := os.ReadDir(l.keysDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), keySuffix) {
			continue
		}
		path := filepath.Join(l.keysDir, e.Name())
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if ok, err := tryFlock(f, lockExclusive); err == nil && ok {
			if cur, err := isCurrent(f, path); err == nil && cur {
				var st state
				found, rerr := readRecord(f, &st)
				if rerr == nil && (!found || !l.heldAt(st, time.Now())) {
					_ = l.remove(ctx, f, path, st)
				}
			}
		}
		_ = f.Close()
	}
}

func (l *Locker) check(key, op string) error {
	if err := lock.ValidateKey(key); err != nil {
		return fmt.Errorf("filelock: %s: %w", op, err)
	}
	if l.closed.Load() {
		return fmt.Errorf("filelock: %s %q: %w", op, key, lock.ErrClosed)
	}
	return nil
}

// Ping reports whether the lock directory is usable as far as can be seen
// without writing: Dir is a directory, or is missing (the first
// acquisition creates it). Anything else (Dir is a file, cannot be
// stat'ed) fails with an error matching lock.ErrUnavailable, with the
// *fs.PathError in the chain. It does not prove that Dir is writable.
// See lock.Pinger.
func (l *Locker) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filelock: ping: %w", err)
	}
	if l.closed.Load() {
		return fmt.Errorf("filelock: ping: %w", lock.ErrClosed)
	}
	fi, err := os.Stat(l.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("filelock: ping: %w: %w", lock.ErrUnavailable, err)
	case !fi.IsDir():
		return fmt.Errorf("filelock: ping: %w: %s is not a directory", lock.ErrUnavailable, l.dir)
	}
	return nil
}

// checkAcquire is check, then start: a Locker registers at its first
// acquisition.
func (l *Locker) checkAcquire(key string) error {
	if err := l.check(key, "acquire"); err != nil {
		return err
	}
	if err := l.start(); err != nil {
		return fmt.Errorf("filelock: acquire %q: %w", key, err)
	}
	return nil
}

func (l *Locker) holderPath(instance string) string {
	return filepath.Join(l.holdersDir, instance+holderSuffix)
}

// fileName maps a key to the name of its state file: the SHA-256 of the
// prefixed key in hex, so that any key is a safe file name.
func fileName(prefix, key string) string {
	sum := sha256.Sum256([]byte(prefix + key))
	return hex.EncodeToString(sum[:]) + keySuffix
}

// validInstance reports whether s can be an instance name (rand.Text's
// alphabet), so that a tampered state file cannot point outside Dir.
func validInstance(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// driver keeps leases alive in a lock directory (lock.LeaseDriver).
type driver struct{ l *Locker }

// open locks the key file of lease le and checks that it still records le.
func (d *driver) open(ctx context.Context, le *lock.Lease, op string) (*os.File, string, state, error) {
	l := d.l
	path := filepath.Join(l.keysDir, fileName(l.cfg.KeyPrefix, le.Key()))
	f, err := openLocked(ctx, path, os.O_RDWR, lockExclusive)
	if err != nil {
		return nil, "", state{}, fmt.Errorf("filelock: %s %q: %w", op, le.Key(), err)
	}
	if f == nil {
		return nil, "", state{}, fmt.Errorf("filelock: %s %q: %w: the key is free", op, le.Key(), lock.ErrLeaseLost)
	}
	var st state
	if _, err := readRecord(f, &st); err != nil {
		_ = f.Close()
		return nil, "", state{}, fmt.Errorf("filelock: %s %q: %w: %w", op, le.Key(), lock.ErrLeaseLost, err)
	}
	if st.Token != le.Token() {
		_ = f.Close()
		return nil, "", state{}, fmt.Errorf("filelock: %s %q: %w: now held by %s with fence %d", op, le.Key(), lock.ErrLeaseLost, st.Holder, st.Fence)
	}
	return f, path, st, nil
}

func (d *driver) Extend(ctx context.Context, le *lock.Lease) (time.Time, error) {
	l := d.l
	if l.closed.Load() {
		return time.Time{}, fmt.Errorf("filelock: extend %q: %w: %w", le.Key(), lock.ErrLeaseLost, lock.ErrClosed)
	}
	f, _, st, err := d.open(ctx, le, "extend")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	now := time.Now()
	if !now.Before(st.Until) {
		return time.Time{}, fmt.Errorf("filelock: extend %q: %w: expired at %s", le.Key(), lock.ErrLeaseLost, st.Until.Format(time.RFC3339Nano))
	}
	until := now.Add(l.cfg.Expiry)
	st.Until = until
	if err := writeRecord(f, st); err != nil {
		return time.Time{}, fmt.Errorf("filelock: extend %q: %w", le.Key(), err)
	}
	return until, nil
}

func (d *driver) Release(ctx context.Context, le *lock.Lease) error {
	l := d.l
	f, path, st, err := d.open(ctx, le, "release")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := l.remove(ctx, f, path, st); err != nil {
		return fmt.Errorf("filelock: release %q: %w", le.Key(), err)
	}
	l.notify.fire(filepath.Base(path))
	if !time.Now().Before(st.Until) {
		return fmt.Errorf("filelock: release %q: %w: expired at %s", le.Key(), lock.ErrLeaseLost, st.Until.Format(time.RFC3339Nano))
	}
	return nil
}
