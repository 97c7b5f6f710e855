package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// Errors returned by the store, matched with errors.Is through every wrapper.
// Those shared with pkg/backend and pkg/lock are the same values, so a
// backend.ErrNotFound and a store.ErrNotFound are interchangeable.
var (
	// ErrNotFound: no artifact (or no such version of it) exists. The same
	// value as backend.ErrNotFound.
	ErrNotFound = backend.ErrNotFound
	// ErrInvalidArgument: a malformed URI, type, tag, metadata, version,
	// reader or size. Nothing was changed. The same value as
	// backend.ErrInvalidArgument.
	ErrInvalidArgument = backend.ErrInvalidArgument
	// ErrIntegrity: stored content does not match its recorded SHA-256 or
	// size, compressed content does not decompress, or a version's blob is
	// missing (then the error also matches ErrNotFound).
	ErrIntegrity = errors.New("integrity check failed")
	// ErrStorageFull: the backend (or the store's quota) has no room. The
	// same value as backend.ErrStorageFull.
	ErrStorageFull = backend.ErrStorageFull
	// ErrPermissionDenied: the backend refused the credentials. The same
	// value as backend.ErrPermissionDenied.
	ErrPermissionDenied = backend.ErrPermissionDenied
	// ErrLockTimeout: the artifact's lock could not be acquired within
	// Config.LockTimeout. The same value as lock.ErrTimeout.
	ErrLockTimeout = lock.ErrTimeout
	// ErrLocked: the artifact's lock is held by another holder. The same
	// value as lock.ErrLocked.
	ErrLocked = lock.ErrLocked
	// ErrLeaseLost: the writer's lock lease expired or was broken before its
	// commit. The same value as lock.ErrLeaseLost; a write refused for that
	// reason matches ErrConflict too.
	ErrLeaseLost = lock.ErrLeaseLost
	// ErrConflict: another writer committed first and this write was not
	// applied (its content never became visible). With locking it means the
	// lease was lost (the error also matches ErrLeaseLost or
	// backend.ErrPreconditionFailed); without locking, that the optimistic
	// retries were exhausted.
	ErrConflict = errors.New("conflicting concurrent write")
	// ErrUnknownOutcome: a write reached the backend, but whether it took
	// effect could not be learned (its reply was lost and the read-back
	// failed, or its request may still be in flight). The write may appear
	// later or never; nothing it may reference was deleted (Reconcile
	// removes what stays unreferenced). Read the artifact to find out.
	ErrUnknownOutcome = errors.New("outcome of the write is unknown")
	// ErrUnsupported: the locker does not offer the operation (Inspect,
	// ForceUnlock), or locking is disabled. The same value as
	// errors.ErrUnsupported.
	ErrUnsupported = errors.ErrUnsupported
	// ErrClosed: the store was closed. The same value as backend.ErrClosed.
	ErrClosed = backend.ErrClosed
)

// notFoundError is the error of an artifact, or a version of one, that
// does not exist. Its message names it in the user's words
// ("artifact://s/t/log: no such artifact", "artifact://s/t/log: no
// version 3"); it matches ErrNotFound, and the backend's error it came
// from, kept out of the message (a storage path says nothing to the user),
// stays in the chain for errors.As and in the store's log.
type notFoundError struct {
	msg   string
	cause error // the backend's error, or nil
}

// errNotFound returns the error of u (an artifact, or a version when
// u.Version is set) that does not exist; cause is the backend's error, or
// nil.
func errNotFound(u URI, cause error) error {
	if u.Version != 0 {
		return &notFoundError{msg: fmt.Sprintf("%s: no version %d", u.Artifact(), u.Version), cause: cause}
	}
	return &notFoundError{msg: u.String() + ": no such artifact", cause: cause}
}

func (e *notFoundError) Error() string { return e.msg }

func (e *notFoundError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrNotFound}
	}
	return []error{ErrNotFound, e.cause}
}

// wrapOp prefixes err with what the call was doing and its artifact, "op
// URI: err", unless err already names the artifact ("artifact://s/t/log:
// no such artifact"): a message names the artifact once.
func wrapOp(op string, u URI, err error) error {
	if strings.Contains(err.Error(), u.Artifact().String()) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, u, err)
}

// invalidf returns an error matching ErrInvalidArgument.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// integrityf returns an error matching ErrIntegrity.
func integrityf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIntegrity, fmt.Sprintf(format, args...))
}

// definiteErrors are the backend's definite answers to a write: it did not
// take effect.
var definiteErrors = [...]error{
	backend.ErrNotFound, backend.ErrPreconditionFailed, backend.ErrInvalidKey, backend.ErrInvalidArgument,
	backend.ErrPermissionDenied, backend.ErrStorageFull, backend.ErrTooLarge, backend.ErrSizeMismatch,
	backend.ErrClosed,
}

// ambiguous reports whether a failed write may still have taken effect (or
// may yet): a transport error, a timeout, a 5xx, a cancellation, anything
// that is not a definite answer of the backend.
func ambiguous(err error) bool {
	for _, d := range definiteErrors {
		if errors.Is(err, d) {
			return false
		}
	}
	return true
}

// isContextErr reports whether err is (or wraps) a context error.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// retryable reports whether the store's own retries (of a download, of a
// blob upload) should try err again: a transient failure by
// backend.IsTransient (which already rules out the backend's definite
// answers: not found, invalid argument, permission, storage full,
// precondition) that is not an integrity failure, since re-reading
// corrupted bytes gives the same answer.
func retryable(err error) bool {
	return backend.IsTransient(err) && !errors.Is(err, ErrIntegrity)
}
