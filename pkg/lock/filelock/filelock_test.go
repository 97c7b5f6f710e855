package filelock_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
	"github.com/necrocode/artifactstore/pkg/lock/locktest"
)

func TestConformance(t *testing.T) {
	locktest.Run(t, func(t *testing.T, cfg lock.Config) lock.Locker {
		return newLocker(t, t.TempDir(), cfg)
	})
}

func newLocker(t *testing.T, dir string, cfg lock.Config) *filelock.Locker {
	t.Helper()
	l, err := filelock.New(filelock.Config{Dir: dir, Lock: cfg})
	if err != nil {
		t.Fatalf("filelock.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]filelock.Config{
		"noDir":      {},
		"badExpiry":  {Dir: t.TempDir(), Lock: lock.Config{Expiry: -time.Second}},
		"badRefresh": {Dir: t.TempDir(), Lock: lock.Config{Expiry: time.Second, RefreshInterval: 2 * time.Second}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); err == nil {
				t.Errorf("Validate accepted %+v", cfg)
			}
			if l, err := filelock.New(cfg); err == nil {
				_ = l.Close()
				t.Errorf("New accepted %+v", cfg)
			}
		})
	}
	if err := (filelock.Config{Dir: "x"}).Validate(); err != nil {
		t.Errorf("Validate of a minimal config: %v", err)
	}
}

// TestFilesStayInDir: any key, path-like or not, maps to one hashed file
// name under Dir/keys; nothing is created elsewhere, and released keys leave
// no file behind.
func TestFilesStayInDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "locks")
	l := newLocker(t, dir, lock.Config{})
	ctx := t.Context()
	keys := []string{"../../escape", "/etc/passwd", "a/../../b", "..", "con", "x\x00y"}
	var leases []*lock.Lease
	for _, k := range keys {
		lease, err := l.TryAcquire(ctx, k)
		if err != nil {
			t.Fatalf("TryAcquire(%q): %v", k, err)
		}
		leases = append(leases, lease)
	}
	if got := names(t, parent); len(got) != 1 || got[0] != "locks" {
		t.Errorf("files beside Dir: %v", got)
	}
	keyFiles := names(t, filepath.Join(dir, "keys"))
	if len(keyFiles) != len(keys) {
		t.Errorf("key files %v, want %d", keyFiles, len(keys))
	}
	hashed := regexp.MustCompile(`^[0-9a-f]{64}\.lock$`)
	for _, name := range keyFiles {
		if !hashed.MatchString(name) {
			t.Errorf("key file %q is not a hashed name", name)
		}
	}
	for _, lease := range leases {
		if err := lease.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if got := names(t, filepath.Join(dir, "keys")); len(got) != 0 {
		t.Errorf("key files left after release: %v", got)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestFencesSurviveRemovalAndRestart: a released key's file is removed, yet
// its next fence is greater, also from a new Locker on the same directory.
func TestFencesSurviveRemovalAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	var last uint64
	for round := range 3 {
		l := newLocker(t, dir, lock.Config{})
		for _, key := range []string{"a", "b", "a"} {
			lease, err := l.TryAcquire(ctx, key)
			if err != nil {
				t.Fatalf("round %d: TryAcquire(%q): %v", round, key, err)
			}
			if lease.Key() == "a" && lease.Fence() <= last {
				t.Errorf("round %d: fence of a %d, not greater than the previous %d", round, lease.Fence(), last)
			}
			if lease.Key() == "a" {
				last = lease.Fence()
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// TestCorruptFiles: a corrupt state or fence file (a torn write after a
// power loss, or tampering) does not block the key, and fences still
// increase: they restart above the wall clock in microseconds.
func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	l := newLocker(t, dir, lock.Config{})
	lease, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	first := lease.Fence()
	files := names(t, filepath.Join(dir, "keys"))
	if len(files) != 1 {
		t.Fatalf("key files %v, want one", files)
	}
	path := filepath.Join(dir, "keys", files[0])
	if err := os.WriteFile(path, []byte(`{"fence":12,"tok`), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, "Refresh with a corrupt state file", lease.Refresh(ctx), lock.ErrLeaseLost)
	if _, err := l.Inspect(ctx, "k"); err == nil {
		t.Errorf("Inspect of a corrupt state file: no error")
	}
	clock := uint64(time.Now().UnixMicro())
	taken, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("TryAcquire over a corrupt state file: %v", err)
	}
	if taken.Fence() <= first || taken.Fence() < clock {
		t.Errorf("fence after corruption %d, want above %d and the clock %d", taken.Fence(), first, clock)
	}
	if err := taken.Release(ctx); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "fence"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = uint64(time.Now().UnixMicro())
	again, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("TryAcquire with a corrupt fence file: %v", err)
	}
	if again.Fence() <= taken.Fence() && again.Fence() < clock {
		t.Errorf("fence with a corrupt fence file %d, want above %d or the clock %d", again.Fence(), taken.Fence(), clock)
	}
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCloseFreesLeases: the leases of a closed Locker are free for others at
// once (no wait for expiry), learn their loss at the next refresh, and a new
// Locker's sweep (at its first acquisition) removes the files they left.
func TestCloseFreesLeases(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	cfg := lock.Config{Expiry: time.Minute, DisableAutoRefresh: true}
	a := newLocker(t, dir, cfg)
	b := newLocker(t, dir, cfg)
	la, err := a.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.TryAcquire(ctx, "k")
	wantErrIs(t, "TryAcquire from another Locker", err, lock.ErrLocked)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = a.TryAcquire(ctx, "k")
	wantErrIs(t, "TryAcquire after Close", err, lock.ErrClosed)
	_, err = a.Inspect(ctx, "k")
	wantErrIs(t, "Inspect after Close", err, lock.ErrClosed)
	wantErrIs(t, "Refresh after Close", la.Refresh(ctx), lock.ErrLeaseLost)

	st, err := b.Inspect(ctx, "k")
	if err != nil || st.Held {
		t.Errorf("Inspect of a closed Locker's key = %+v, %v; want free", st, err)
	}
	// A new Locker sweeps the key file a closed Locker left behind, at
	// its first acquisition (of another key).
	if got := names(t, filepath.Join(dir, "keys")); len(got) != 1 {
		t.Fatalf("key files before the sweep: %v", got)
	}
	c := newLocker(t, dir, cfg)
	if got := names(t, filepath.Join(dir, "keys")); len(got) != 1 {
		t.Fatalf("key files after New, before the first acquisition: %v", got)
	}
	lc, err := c.TryAcquire(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(dir, "keys")); len(got) != 0 {
		t.Errorf("key files after the sweep: %v", got)
	}
	lb, err := b.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("TryAcquire after the holder's Locker closed: %v", err)
	}
	if lb.Fence() <= la.Fence() {
		t.Errorf("fence %d, not greater than the closed Locker's %d", lb.Fence(), la.Fence())
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffAcrossLockers: a waiter in one Locker wakes when another Locker
// on the same directory releases the key (the file-system watch, not this
// Locker's own release), long before its backoff would retry.
func TestHandoffAcrossLockers(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	a := newLocker(t, dir, lock.Config{})
	b := newLocker(t, dir, lock.Config{Timeout: time.Minute, RetryInterval: 10 * time.Second, MaxRetryInterval: time.Minute})
	la, err := a.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		lease *lock.Lease
		at    time.Time
		err   error
	}
	got := make(chan result, 1)
	go func() {
		lease, err := b.Acquire(ctx, "k")
		got <- result{lease, time.Now(), err}
	}()
	// Give the waiter time to fail its first attempt and start a backoff
	// of up to 10s. (If it has not, it gets the key at its first attempt
	// and the check below passes: this pause cannot make the test flaky.)
	time.Sleep(300 * time.Millisecond)
	released := time.Now()
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiter: %v", r.err)
	}
	defer r.lease.Release(ctx)
	// Without a wake-up the waiter would retry after a uniform 0-10s delay.
	if d := r.at.Sub(released); d > 500*time.Millisecond {
		t.Errorf("waiter got the key %v after another Locker released it", d)
	} else {
		t.Logf("handoff across lockers: %v", d)
	}
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want one matching %v", what, err, target)
	}
}

// TestNoWritesUntilFirstLock: New, Inspect and Ping touch no file, so a
// reader needs no write access to Dir; the first acquisition creates Dir
// and registers the holder, and a failed one is not final.
func TestNoWritesUntilFirstLock(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "locks")
	ctx := t.Context()
	if err := os.WriteFile(dir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLocker(t, dir, lock.Config{})
	wantErrIs(t, "Ping with Dir a file", l.Ping(ctx), lock.ErrUnavailable)
	if _, err := l.TryAcquire(ctx, "k"); err == nil {
		t.Fatal("TryAcquire with Dir a file succeeded")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}

	if err := l.Ping(ctx); err != nil {
		t.Errorf("Ping with Dir missing: %v", err)
	}
	st, err := l.Inspect(ctx, "k")
	if err != nil || st.Held {
		t.Errorf("Inspect with Dir missing = %+v, %v; want free", st, err)
	}
	if got := names(t, parent); len(got) != 0 {
		t.Fatalf("New, Ping and Inspect created %v", got)
	}

	lease, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("TryAcquire after Dir became usable: %v", err)
	}
	if err := l.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if holders := names(t, filepath.Join(dir, "holders")); len(holders) != 1 {
		t.Errorf("holder files after the first lock %v, want this Locker's", holders)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if holders := names(t, filepath.Join(dir, "holders")); len(holders) != 0 {
		t.Errorf("holder files after Close %v, want none", holders)
	}
	wantErrIs(t, "Ping after Close", l.Ping(ctx), lock.ErrClosed)
}
