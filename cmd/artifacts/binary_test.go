package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
	"github.com/necrocode/artifactstore/pkg/setup"
)

// buildBinary compiles the command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "artifacts")
	cmd := exec.Command(goTool(t), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// goTool finds the go command: on PATH, else in GOROOT.
func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	for _, root := range []string{os.Getenv("GOROOT"), runtime.GOROOT()} {
		if p := filepath.Join(root, "bin", "go"); root != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("the go command is neither on PATH nor in GOROOT")
	return ""
}

// proc runs the built binary with a clean ARTIFACTSTORE_* environment.
type proc struct {
	t   *testing.T
	bin string
	env []string
	// cred, when set, runs the binary as another user.
	cred *syscall.Credential
}

func newProc(t *testing.T, bin string, env ...string) *proc {
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARTIFACTSTORE_") {
			base = append(base, kv)
		}
	}
	return &proc{t: t, bin: bin, env: append(base, env...)}
}

func (p *proc) cmd(stdin io.Reader, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}

// run runs args and returns the real exit status and output.
func (p *proc) run(stdin io.Reader, args ...string) result {
	p.t.Helper()
	cmd, out, errb := p.cmd(stdin, args...)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		p.t.Fatalf("run %s: %v", strings.Join(args, " "), err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (p *proc) ok(stdin io.Reader, args ...string) result {
	p.t.Helper()
	r := p.run(stdin, args...)
	if r.code != 0 {
		p.t.Fatalf("artifacts %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func (p *proc) fails(code int, stdin io.Reader, args ...string) result {
	p.t.Helper()
	r := p.run(stdin, args...)
	checkFailure(p.t, r, code, args)
	return r
}

// TestBinary runs the compiled command as operators do: real exit
// statuses, stdin and stdout pipes, signals, and a lock held by another
// process (this test) on the same directory.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)

	t.Run("put stdin get stdout", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
		data := content(7, 1<<20)
		r := p.ok(bytes.NewReader(data), "put", "artifact://bin/t1/log", "-", "--tag", "e2e")
		if strings.TrimSpace(r.stdout) != "artifact://bin/t1/log?version=1" || r.stderr != "" {
			t.Fatalf("put: stdout %q stderr %q", r.stdout, r.stderr)
		}
		if r = p.ok(nil, "get", "artifact://bin/t1/log"); r.stdout != string(data) {
			t.Fatalf("get returned %d bytes, want %d identical ones", len(r.stdout), len(data))
		}
		var mds []map[string]any
		if err := json.Unmarshal([]byte(p.ok(nil, "search", "--tag", "e2e", "--json").stdout), &mds); err != nil || len(mds) != 1 {
			t.Fatalf("search --json: %v %v", mds, err)
		}
		// /dev/null is not a terminal: rm refuses without --yes.
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		p.fails(exitUsage, devnull, "rm", "artifact://bin/t1/log")
		p.ok(nil, "rm", "--yes", "artifact://bin/t1/log")
		p.fails(exitNotFound, nil, "get", "artifact://bin/t1/log")
	})

	t.Run("exit statuses", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
		p.ok(strings.NewReader("x"), "put", "artifact://bin/t/log", "-")
		p.fails(exitUsage, nil)
		p.fails(exitUsage, nil, "frobnicate")
		p.fails(exitUsage, nil, "ls", "--frob")
		p.fails(exitUsage, nil, "get", "artifact://../x/y")
		p.fails(exitUsage, nil, "get", "")
		p.fails(exitUsage, nil, "put", "artifact://bin/t/log")
		p.fails(exitNotFound, nil, "stat", "artifact://bin/t/diff")
		if r := p.ok(nil, "--help"); !strings.Contains(r.stdout, "Exit status:") || r.stderr != "" {
			t.Fatalf("--help: stdout %q stderr %q", r.stdout, r.stderr)
		}
		if r := p.ok(nil, "verify"); !strings.Contains(r.stdout, "checked 1 versions") {
			t.Fatalf("verify: %q", r.stdout)
		}
	})

	t.Run("lock status and break", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
		const uri = "artifact://bin/t/log"
		p.ok(strings.NewReader("v1"), "put", uri, "-")
		if r := p.ok(nil, "lock", "status", uri); strings.TrimSpace(r.stdout) != uri+" is not locked" {
			t.Fatalf("lock status of a free lock: %q", r.stdout)
		}

		// Hold the artifact's lock from this process, as a writer on
		// another process would: same directory, same key and prefix as
		// the store (the artifact's URI under package lock's default prefix).
		cfg := setup.Config{FileDir: dir}.WithDefaults()
		l, err := filelock.New(filelock.Config{Dir: cfg.LockDir, Lock: lock.Config{Expiry: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		lease, err := l.TryAcquire(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		host, _ := os.Hostname()
		holder := fmt.Sprintf("%s:%d", host, os.Getpid())

		r := p.ok(nil, "lock", "status", uri)
		if !strings.HasPrefix(r.stdout, uri+" is locked by "+holder+" (fence ") {
			t.Fatalf("lock status of a held lock: %q (holder %s)", r.stdout, holder)
		}
		var st lockJSON
		decode(t, p.ok(nil, "lock", "status", uri+"?version=1", "--json").stdout, &st)
		if !st.Held || st.Holder == nil || st.Holder.PID != os.Getpid() || st.Fence != lease.Fence() {
			t.Fatalf("lock status --json = %+v, want held by pid %d fence %d", st, os.Getpid(), lease.Fence())
		}
		// A writer waits for the lock and times out: the lock status.
		p.fails(exitLocked, strings.NewReader("v2"), "--lock-timeout", "300ms", "put", uri, "-")
		// Breaking it needs --yes without a terminal.
		p.fails(exitUsage, nil, "lock", "break", uri)
		r = p.ok(nil, "lock", "break", "--yes", uri)
		if !strings.HasPrefix(r.stdout, "broke the lock of "+uri+" held by "+holder) {
			t.Fatalf("lock break printed %q", r.stdout)
		}
		if err := lease.Refresh(ctx); !errors.Is(err, lock.ErrLeaseLost) {
			t.Fatalf("the broken lease still refreshes: %v", err)
		}
		p.ok(nil, "lock", "status", uri)
		if r := p.ok(nil, "lock", "break", "-y", uri); !strings.Contains(r.stdout, "was not locked") {
			t.Fatalf("lock break of a free lock: %q", r.stdout)
		}
		p.ok(strings.NewReader("v2"), "--lock-timeout", "5s", "put", uri, "-")
	})

	t.Run("integrity", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A blob (the test damages it), not content in the manifest.
		c := &cli{t: t, dir: dir, env: map[string]string{"ARTIFACTSTORE_DIR": dir, "ARTIFACTSTORE_INLINE_MAX_BYTES": "-1"}}
		c.ok("put", "artifact://bin/t/test", writeFile(t, "r.xml", content(9, 4096)))
		corruptBlob(t, c, "artifact://bin/t/test")
		p := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir)
		if r := p.fails(exitIntegrity, nil, "verify"); !strings.Contains(r.stdout, "CORRUPT") {
			t.Fatalf("verify stdout %q", r.stdout)
		}
		p.fails(exitIntegrity, nil, "get", "artifact://bin/t/test", "-o", filepath.Join(t.TempDir(), "out"))
	})

	t.Run("SIGINT cancels", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
		pr, pw := io.Pipe()
		cmd, _, errb := p.cmd(pr, "put", "artifact://bin/t/log", "-")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Feed the upload slowly so that it is in progress, then interrupt.
		stop := make(chan struct{})
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			defer pw.Close()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					if _, err := pw.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
						return
					}
				}
			}
		}()
		time.Sleep(500 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		close(stop)
		<-fed
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Fatalf("put interrupted: %v (stderr %q), want exit %d", err, errb.String(), exitInterrupted)
		}
		checkFailure(t, result{code: exitInterrupted, stderr: errb.String()}, exitInterrupted, []string{"put"})
		p.fails(exitNotFound, nil, "stat", "artifact://bin/t/log")
	})
}
