//go:build unix

package filelock

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const supported = true

// Lock modes of flock.
const (
	lockShared    = unix.LOCK_SH
	lockExclusive = unix.LOCK_EX
)

// flock locks f in mode how (lockShared or lockExclusive), waiting until ctx
// ends. A lock that is free is taken at once, without a goroutine.
//
// When ctx ends first, the blocked flock call stays in a goroutine until the
// lock comes; the caller's Close of f does not close the descriptor before
// that call returns (the runtime defers it), and closing it then releases
// the lock. So a caller always closes f, as usual, and nothing leaks beyond
// the wait.
func flock(ctx context.Context, f *os.File, how int) error {
	ok, err := tryFlock(f, how)
	if err != nil || ok {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- flockCall(f, how) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryFlock locks f in mode how without waiting; false means another open
// file holds a conflicting lock.
func tryFlock(f *os.File, how int) (bool, error) {
	err := flockCall(f, how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func flockCall(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return cerr
	}
	if ferr != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return nil
}
