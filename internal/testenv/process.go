package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a server started by a test, stopped by PID when the test ends.
type Process struct {
	Name string
	Cmd  *exec.Cmd

	mu     sync.Mutex
	output bytes.Buffer
	exited chan struct{}
}

// Output returns what the process printed so far (stdout and stderr).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.Write(b)
}

// PID is the process id.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process (SIGSTOP, SIGCONT, SIGKILL ...).
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop kills the process by PID and waits for it to exit, at most 10s.
// Calling it again, or on an exited process, does nothing.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die of SIGTERM
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.Cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Start runs bin with args, registers t.Cleanup to stop it by PID, and waits
// up to 30s for ready to return nil. It fails the test (never skips) when
// the binary is missing or the server does not become ready.
func Start(t testing.TB, name, bin string, args []string, ready func(ctx context.Context) error) *Process {
	t.Helper()
	p, err := StartProcess(name, bin, args, ready)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

// StartProcess is Start without a testing.TB, for TestMain and benchmarks'
// shared servers. The caller must call Stop.
func StartProcess(name, bin string, args []string, ready func(ctx context.Context) error) (*Process, error) {
	return startProcess(name, bin, args, nil, ready)
}

// startProcess is StartProcess with variables added to the environment.
func startProcess(name, bin string, args, env []string, ready func(ctx context.Context) error) (*Process, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %q not found (run scripts/test.sh, which installs it): %w", name, bin, err)
	}
	p := &Process{Name: name, Cmd: exec.Command(path, args...), exited: make(chan struct{})}
	if env != nil {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	p.Cmd.Stdout = p
	p.Cmd.Stderr = p
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, path, err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		err = ready(rctx)
		rcancel()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, err, p.Output())
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("%s not ready after 30s: %v\n%s", name, err, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := FindFreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

// FindFreePort is FreePort without a testing.TB.
func FindFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DialReady returns a readiness check that succeeds once addr accepts TCP
// connections.
func DialReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// GoBin returns the directory `go install` puts binaries in, so tests find
// versitygw even when it is not on PATH.
func GoBin() string {
	if b := os.Getenv("GOBIN"); b != "" {
		return b
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "bin")
}

// Addr formats a loopback address for port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
