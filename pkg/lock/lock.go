package lock

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Locker grants exclusive, expiring leases on string keys.
//
// Implementations must be safe for concurrent use. Every lease of a key has
// a Fence strictly greater than the fence of every earlier lease of the same
// key, across processes and hosts.
type Locker interface {
	// Acquire waits until it holds the lock on key, up to Config.Timeout or
	// the deadline of ctx, whichever comes first, retrying with exponential
	// backoff and full jitter from Config.RetryInterval. When the wait ends
	// without the lock the error matches ErrTimeout (and also ctx.Err() when
	// the context ended it, or ErrUnavailable when the servers could not be
	// reached).
	Acquire(ctx context.Context, key string) (*Lease, error)

	// TryAcquire makes one attempt: it returns ErrLocked at once when
	// another holder has the key.
	TryAcquire(ctx context.Context, key string) (*Lease, error)
}

// Inspector is implemented by lockers that can report who holds a key.
type Inspector interface {
	// Inspect reports the state of key's lock; a free key gives a Status
	// with Held false and no error.
	Inspect(ctx context.Context, key string) (Status, error)
}

// ForceUnlocker is implemented by lockers that let an operator break a lock
// held by another process, for recovery. The broken holder's lease is lost:
// its Refresh and Release return ErrLeaseLost and its Done channel closes no
// later than its next refresh.
type ForceUnlocker interface {
	// ForceUnlock frees key whoever holds it and returns the status it
	// found before breaking it (Held false when the key was already free).
	ForceUnlock(ctx context.Context, key string) (Status, error)
}

// Pinger is implemented by lockers that can check their lock service
// without taking or changing a lock, for health checks.
type Pinger interface {
	// Ping reports whether the lock service answers well enough to grant
	// leases (for Redlock: a quorum of masters answers). A failure matches
	// ErrUnavailable with the cause in the chain, or ctx.Err() when the
	// context ended first, or ErrClosed after Close. Ping writes nothing.
	Ping(ctx context.Context) error
}

// Status is the observable state of one key's lock.
type Status struct {
	// Key is the lock key as passed to Inspect.
	Key string
	// Held reports whether some lease holds the key now.
	Held bool
	// Holder identifies the process holding the lease (zero when free).
	Holder Holder
	// Fence is the fence of the current lease (zero when free).
	Fence uint64
	// Since is when the current lease was granted; Until is when it expires
	// unless refreshed. Both are zero when free.
	Since, Until time.Time
}

// Holder identifies the process that holds a lease.
type Holder struct {
	// Host is the holder's host name.
	Host string `json:"host"`
	// PID is the holder's process id.
	PID int `json:"pid"`
}

func (h Holder) String() string {
	if h.Host == "" && h.PID == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", h.Host, h.PID)
}

// MaxKeyLength is the longest lock key, in bytes.
const MaxKeyLength = 1024

// ValidateKey checks a lock key: not empty, at most MaxKeyLength bytes, valid
// UTF-8. The error matches ErrInvalidKey.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: key is %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLength)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidKey, key)
	}
	return nil
}
