package filelock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
)

// The multi-process tests re-run this test binary as child processes; the
// environment tells a child what to do.
const (
	envRole   = "FILELOCK_TEST_ROLE"   // "increment" or "hold"
	envDir    = "FILELOCK_TEST_DIR"    // the lock directory
	envFile   = "FILELOCK_TEST_FILE"   // increment: the shared counter file
	envRounds = "FILELOCK_TEST_ROUNDS" // increment: how many increments
	envExpiry = "FILELOCK_TEST_EXPIRY" // hold: lease expiry
	envAuto   = "FILELOCK_TEST_AUTO"   // hold: "1" for automatic refresh
	sharedKey = "artifact://spec/task/diff"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(envRole); role != "" {
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(role string) error {
	switch role {
	case "increment":
		return childIncrement()
	case "hold":
		return childHold()
	}
	return fmt.Errorf("unknown role %q", role)
}

// childIncrement adds 1 to the counter file rounds times under the lock,
// with a read-modify-write that loses updates when not serialized. An
// "inside" marker file created with O_EXCL detects two holders at once, and
// the counter file's second field checks that fences increase.
func childIncrement() error {
	rounds, err := strconv.Atoi(os.Getenv(envRounds))
	if err != nil {
		return err
	}
	counter := os.Getenv(envFile)
	l, err := filelock.New(filelock.Config{Dir: os.Getenv(envDir), Lock: lock.Config{Timeout: time.Minute, Expiry: 10 * time.Second}})
	if err != nil {
		return err
	}
	defer l.Close()
	ctx := context.Background()
	for i := range rounds {
		lease, err := l.Acquire(ctx, sharedKey)
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		marker, err := os.OpenFile(counter+".inside", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("round %d: another holder inside the critical section: %w", i, err)
		}
		_ = marker.Close()
		b, err := os.ReadFile(counter)
		if err != nil {
			return err
		}
		var n int
		var fence uint64
		if _, err := fmt.Sscan(string(b), &n, &fence); err != nil {
			return fmt.Errorf("round %d: counter file %q: %w", i, b, err)
		}
		if lease.Fence() <= fence {
			return fmt.Errorf("round %d: fence %d, not greater than the last holder's %d", i, lease.Fence(), fence)
		}
		time.Sleep(200 * time.Microsecond) // widen the read-modify-write window
		if err := os.WriteFile(counter, fmt.Appendf(nil, "%d %d\n", n+1, lease.Fence()), 0o644); err != nil {
			return err
		}
		if err := os.Remove(counter + ".inside"); err != nil {
			return err
		}
		if err := lease.Release(ctx); err != nil {
			return fmt.Errorf("round %d: release: %w", i, err)
		}
	}
	return nil
}

// childHold takes the shared key, prints "held <fence>", and waits for the
// lease to end; then it prints "lost" when Err matches ErrLeaseLost, and the
// outcome of Release ("release lost" when it matches ErrLeaseLost).
func childHold() error {
	expiry, err := time.ParseDuration(os.Getenv(envExpiry))
	if err != nil {
		return err
	}
	cfg := lock.Config{Expiry: expiry, DisableAutoRefresh: os.Getenv(envAuto) != "1"}
	if !cfg.DisableAutoRefresh {
		cfg.RefreshInterval = 5 * time.Millisecond // refresh often: a kill may land mid-update
	}
	l, err := filelock.New(filelock.Config{Dir: os.Getenv(envDir), Lock: cfg})
	if err != nil {
		return err
	}
	defer l.Close()
	ctx := context.Background()
	lease, err := l.TryAcquire(ctx, sharedKey)
	if err != nil {
		return err
	}
	fmt.Printf("held %d\n", lease.Fence())
	<-lease.Done()
	if errors.Is(lease.Err(), lock.ErrLeaseLost) {
		fmt.Println("lost")
	}
	if err := lease.Release(ctx); errors.Is(err, lock.ErrLeaseLost) {
		fmt.Println("release lost")
	} else {
		fmt.Printf("release %v\n", err)
	}
	return nil
}

// startChild runs this test binary in role with env; it is killed when the
// test ends. Its stdout lines arrive on the returned channel.
func startChild(t *testing.T, role string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, envRole+"="+role)...)
	cmd.Stderr = &testWriter{t: t, prefix: role + ": "}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, lines
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, strings.TrimSpace(string(b)))
	return len(b), nil
}

// line waits up to 20s for the child's next line.
func line(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case s, ok := <-lines:
		if !ok {
			t.Fatal("child closed its output")
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no line from the child within 20s")
	}
	return ""
}

func heldFence(t *testing.T, s string) uint64 {
	t.Helper()
	f, ok := strings.CutPrefix(s, "held ")
	if !ok {
		t.Fatalf("child said %q, want held <fence>", s)
	}
	n, err := strconv.ParseUint(f, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestProcessesExclude: processes incrementing a shared file under the lock
// lose no increment.
func TestProcessesExclude(t *testing.T) {
	const procs, rounds = 4, 30
	dir := t.TempDir()
	counter := filepath.Join(dir, "counter")
	if err := os.WriteFile(counter, []byte("0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for range procs {
		cmd, _ := startChild(t, "increment", envDir+"="+filepath.Join(dir, "locks"), envFile+"="+counter, envRounds+"="+strconv.Itoa(rounds))
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(string(b), &n); err != nil || n != procs*rounds {
		t.Errorf("counter %q after %d increments by %d processes", b, procs*rounds, procs)
	}
}

// TestKilledHolderFreesKey: when the holding process dies (SIGKILL, while
// refreshing every 5ms), a waiter gets the key at once, long before the
// lease's one-minute expiry.
func TestKilledHolderFreesKey(t *testing.T) {
	dir := t.TempDir()
	cmd, lines := startChild(t, "hold", envDir+"="+dir, envExpiry+"=1m", envAuto+"=1")
	fence := heldFence(t, line(t, lines))
	l := newLocker(t, dir, lock.Config{Timeout: 30 * time.Second})
	ctx := t.Context()
	st, err := l.Inspect(ctx, sharedKey)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.Holder.PID != cmd.Process.Pid || st.Fence != fence {
		t.Fatalf("Inspect = %+v, want held by pid %d with fence %d", st, cmd.Process.Pid, fence)
	}
	_, err = l.TryAcquire(ctx, sharedKey)
	wantErrIs(t, "TryAcquire while the child holds the key", err, lock.ErrLocked)

	type result struct {
		lease *lock.Lease
		err   error
	}
	got := make(chan result, 1)
	go func() {
		lease, err := l.Acquire(ctx, sharedKey)
		got <- result{lease, err}
	}()
	time.Sleep(100 * time.Millisecond) // not an assertion: lets the waiter start waiting
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	r := <-got
	if r.err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", r.err)
	}
	defer r.lease.Release(ctx)
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("key free %v after the holder died", d)
	} else {
		t.Logf("key taken %v after the holder died", d)
	}
	if r.lease.Fence() <= fence {
		t.Errorf("fence %d, not greater than the killed holder's %d", r.lease.Fence(), fence)
	}
	if holders := names(t, filepath.Join(dir, "holders")); len(holders) != 1 {
		t.Errorf("holder files %v: want only this process's", holders)
	}
}

// TestPausedHolderLosesLease: a holder that is alive but paused (SIGSTOP)
// past its expiry loses the key to a waiter; once resumed it learns the
// lease was lost, and its Release does not free the new holder's key.
func TestPausedHolderLosesLease(t *testing.T) {
	const expiry = 500 * time.Millisecond
	dir := t.TempDir()
	cmd, lines := startChild(t, "hold", envDir+"="+dir, envExpiry+"="+expiry.String())
	fence := heldFence(t, line(t, lines))
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	l := newLocker(t, dir, lock.Config{Timeout: 30 * time.Second})
	ctx := t.Context()
	lease, err := l.Acquire(ctx, sharedKey)
	if err != nil {
		t.Fatalf("Acquire while the holder is paused: %v", err)
	}
	defer lease.Release(ctx)
	if lease.Fence() <= fence {
		t.Errorf("fence %d, not greater than the paused holder's %d", lease.Fence(), fence)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if s := line(t, lines); s != "lost" {
		t.Errorf("resumed holder said %q, want lost", s)
	}
	if s := line(t, lines); s != "release lost" {
		t.Errorf("resumed holder said %q, want release lost", s)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
	st, err := l.Inspect(ctx, sharedKey)
	if err != nil || !st.Held || st.Fence != lease.Fence() {
		t.Errorf("after the stale holder's Release: Inspect = %+v, %v; want held with fence %d", st, err, lease.Fence())
	}
	if err := lease.Refresh(ctx); err != nil {
		t.Errorf("Refresh of the new lease: %v", err)
	}
}

// TestContextEndsStuckStateLock: a process stuck inside the short update of
// a key's state file (stood in for by a flock held here) cannot make
// TryAcquire ignore its context.
func TestContextEndsStuckStateLock(t *testing.T) {
	dir := t.TempDir()
	l := newLocker(t, dir, lock.Config{})
	ctx := t.Context()
	lease, err := l.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	files := names(t, filepath.Join(dir, "keys"))
	f, err := os.Open(filepath.Join(dir, "keys", files[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = l.TryAcquire(cctx, "k")
	wantErrIs(t, "TryAcquire while the state file is stuck", err, context.DeadlineExceeded)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("TryAcquire returned %v after it started", d)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	_, err = l.TryAcquire(ctx, "k")
	wantErrIs(t, "TryAcquire once the stuck update ended", err, lock.ErrLocked)
}

var _ io.Writer = (*testWriter)(nil)
