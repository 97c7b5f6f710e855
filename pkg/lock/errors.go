package lock

import (
	"errors"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Sentinel errors of the lock contract, matched with errors.Is. Underlying
// causes (a Redis error, an OS error) stay in the chain.
var (
	// ErrLocked: TryAcquire found the key held by another lease.
	ErrLocked = errors.New("lock is held by another holder")
	// ErrTimeout: Acquire gave up waiting. When the caller's context ended
	// the wait, the error also matches ctx.Err(); when the lock servers
	// were unreachable, it also matches ErrUnavailable.
	ErrTimeout = errors.New("timed out acquiring lock")
	// ErrLeaseLost: the lease expired, was broken by ForceUnlock, or was
	// taken over; the holder no longer has the lock.
	ErrLeaseLost = errors.New("lock lease lost")
	// ErrNotHeld: the operation needs a lease that was already released.
	ErrNotHeld = errors.New("lock not held")
	// ErrUnavailable: the lock servers could not be reached, or too few of
	// them answered to form a quorum; nothing was granted.
	ErrUnavailable = errors.New("lock service unavailable")
	// ErrPermissionDenied: the lock service refused the credentials (a
	// wrong password, an unknown ACL user, an ACL that forbids the lock's
	// commands). Retrying cannot help, so Acquire fails at once. The same
	// value as backend.ErrPermissionDenied and store.ErrPermissionDenied,
	// so one errors.Is check covers storage and lock credentials.
	ErrPermissionDenied = backend.ErrPermissionDenied
	// ErrInvalidArgument: a lock configuration is malformed (an address
	// that is neither host:port nor a redis:// URL, an unreadable TLS
	// file, a negative timeout). The same value as
	// backend.ErrInvalidArgument and store.ErrInvalidArgument.
	ErrInvalidArgument = backend.ErrInvalidArgument
	// ErrInvalidKey: the key is empty, too long or not valid UTF-8.
	ErrInvalidKey = errors.New("invalid lock key")
	// ErrClosed: the locker was closed.
	ErrClosed = errors.New("locker closed")
)
