package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/store"
)

const progName = "artifacts"

// Exit statuses, one per kind of failure (documented in doc.go and by
// --help).
const (
	exitOK          = 0   // success
	exitFailure     = 1   // any other failure (I/O, backend unreachable, declined confirmation)
	exitUsage       = 2   // bad flags or arguments, malformed URI, invalid configuration
	exitNotFound    = 3   // no such artifact, version, file or store directory
	exitIntegrity   = 4   // stored content does not match its checksum; verify found corrupt or missing blobs
	exitStorageFull = 5   // quota or backend full
	exitLocked      = 6   // lock timeout, lock held, lease lost, conflicting concurrent write
	exitPermission  = 7   // permission denied
	exitUnsupported = 8   // the configured lock cannot do it (lock status/break with --lock none)
	exitUnknown     = 9   // the write may or may not have taken effect (store.ErrUnknownOutcome)
	exitUnavailable = 10  // the lock service could not be reached (lock.ErrUnavailable)
	exitInterrupted = 130 // interrupted by SIGINT/SIGTERM
)

// exitCodesHelp is the table printed by --help.
const exitCodesHelp = `Exit status:
  0    success
  1    failure (I/O, backend unreachable, confirmation declined, cleanup failures)
  2    usage error: bad flags or arguments, malformed URI, invalid configuration
  3    not found: artifact, version, input file or store directory
  4    integrity: content does not match its SHA-256; verify found corrupt or missing blobs
  5    storage full: quota or backend out of space
  6    lock: lock wait timed out, lock held, lease lost, conflicting concurrent write
  7    permission denied
  8    unsupported by the configured lock (lock status/break with --lock none)
  9    outcome unknown: the write may or may not have taken effect; read to find out
  10   lock service unavailable: too few Redis masters could be reached
  130  interrupted (Ctrl-C/SIGINT, SIGTERM), also while put - waits for stdin
`

// usageError is a mistake on the command line: exit status 2.
type usageError struct {
	cmd string // the command, "" for the top level
	msg string
}

func (e *usageError) Error() string {
	hint := progName + " --help"
	if e.cmd != "" {
		hint = progName + " " + e.cmd + " --help"
		return fmt.Sprintf("%s: %s (see '%s')", e.cmd, e.msg, hint)
	}
	return fmt.Sprintf("%s (see '%s')", e.msg, hint)
}

func usageErr(cmd, msg string) error { return &usageError{cmd: cmd, msg: msg} }

func usageErrf(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitError carries its own exit status: verify's findings, a declined
// confirmation.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exitCode maps err to the exit status. ctx is the invocation's context:
// when it was cancelled (SIGINT), a context error means interrupted.
func exitCode(ctx context.Context, err error) int {
	var (
		ue *usageError
		ee *exitError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	// An unknown outcome may wrap a cancellation: it says more.
	case errors.Is(err, store.ErrUnknownOutcome):
		return exitUnknown
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return exitInterrupted
	// A missing blob matches ErrIntegrity and ErrNotFound: integrity first.
	case errors.Is(err, store.ErrIntegrity):
		return exitIntegrity
	// A Redis master that refuses the password also counts as unavailable:
	// permission first.
	case errors.Is(err, store.ErrPermissionDenied), errors.Is(err, fs.ErrPermission):
		return exitPermission
	// An unreachable lock service ends the wait with ErrLockTimeout too:
	// unavailable first.
	case errors.Is(err, lock.ErrUnavailable):
		return exitUnavailable
	// A lock timeout may match context.DeadlineExceeded too: before context.
	case errors.Is(err, store.ErrLockTimeout), errors.Is(err, store.ErrLocked),
		errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrConflict):
		return exitLocked
	case errors.Is(err, store.ErrStorageFull):
		return exitStorageFull
	case errors.Is(err, store.ErrInvalidArgument), errors.Is(err, backend.ErrInvalidKey), errors.Is(err, lock.ErrInvalidKey):
		return exitUsage
	case errors.Is(err, store.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return exitNotFound
	case errors.Is(err, store.ErrUnsupported):
		return exitUnsupported
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitFailure
}
