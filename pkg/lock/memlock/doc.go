// Package memlock is an in-process lock.Locker: leases on string keys that
// serialize goroutines of one process. It is meant for tests, examples and
// single-process programs; it shares nothing with other processes (use
// filelock for one host, redislock for many).
//
// It honours the whole lock contract, so code tested against it behaves the
// same on the other lockers: fences strictly increase per key (one counter
// per Locker, starting at 1), a lease not refreshed for Config.Expiry frees
// its key for others (and the lease's Done closes), a waiter in Acquire is
// woken at once when the key is released, broken or expires, and the Locker
// also implements lock.Inspector and lock.ForceUnlocker. Every lease names
// this process (host name and PID) as its holder.
//
// A Locker keeps state only for keys that are held; a released key costs
// nothing.
//
// # Errors
//
// All errors match the sentinels of package lock with errors.Is:
// lock.ErrLocked from TryAcquire on a held key, lock.ErrTimeout when Acquire
// gives up (also matching ctx.Err() when the context ended the wait),
// lock.ErrLeaseLost from a lease that expired or was broken,
// lock.ErrNotHeld from a lease already released, and lock.ErrInvalidKey. A
// context that has already ended fails every call with an error wrapping
// ctx.Err().
//
// # Concurrency
//
// A Locker and its Leases are safe for concurrent use. Each held lease runs
// one goroutine (its refresh and expiry watcher) and one timer until it is
// released or lost.
package memlock
