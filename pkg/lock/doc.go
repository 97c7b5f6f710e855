// Package lock defines how artifactstore serializes writers of one artifact
// across goroutines, processes and hosts: the Locker contract, the Lease
// every implementation returns, the shared acquisition loop (Wait) and the
// sentinel errors.
//
// Implementations live in subpackages: redislock (the default: Redsync's
// Redlock over one or several independent Redis masters), filelock (OS file
// locks in a directory: one host, many processes) and memlock (one process,
// for tests and examples). locktest is the conformance suite all of them
// pass unchanged.
//
// A lock is advisory and expires: a holder that pauses longer than
// Config.Expiry loses it without knowing. Every lease therefore carries a
// Fence, strictly increasing per key, and the store makes its commit
// conditional on the object store so that a stale holder cannot overwrite a
// newer commit. The lock makes contention cheap; the conditional write makes
// it safe.
//
// Optional capabilities are one-method interfaces found by type
// assertion: Inspector (who holds a key), ForceUnlocker (break a lock) and
// Pinger (is the lock service reachable: the store's health check). All
// three implementations have them; a decorator should pass them through.
// Only Acquire, TryAcquire, ForceUnlock and the leases they grant write to
// the lock service; a process that never locks writes nothing there.
//
// # Errors
//
// ErrLocked (TryAcquire on a held key), ErrTimeout (Acquire gave up; also
// matches ctx.Err() when the context ended the wait, and ErrUnavailable when
// the servers could not be reached), ErrLeaseLost (expired, broken, taken
// over), ErrNotHeld (already released), ErrUnavailable, ErrPermissionDenied
// (the service refused the credentials; the same value as
// backend.ErrPermissionDenied), ErrInvalidKey and ErrClosed, all matched
// with errors.Is.
//
// # Failing fast
//
// Acquire waits up to Config.Timeout for a holder to release, but not for
// a lock service that is down: once its attempts have failed with
// ErrUnavailable for Config.UnavailableTimeout in a row (2s by default) it
// gives up with an error matching ErrTimeout and ErrUnavailable, and a
// refused password or ACL (ErrPermissionDenied) ends it at the first
// attempt.
//
// # Concurrency
//
// Lockers and Leases are safe for concurrent use. A Lease refreshes itself in
// a background goroutine until it is released or lost; Release always runs
// on a context the caller's cancellation cannot break.
package lock
