package lock

import "errors"

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
	// ErrInvalidKey: the key is empty, too long or not valid UTF-8.
	ErrInvalidKey = errors.New("invalid lock key")
	// ErrClosed: the locker was closed.
	ErrClosed = errors.New("locker closed")
)
