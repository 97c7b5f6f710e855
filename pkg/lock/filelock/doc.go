// Package filelock is a lock.Locker for the processes of one host: leases on
// string keys kept in a directory with OS file locks (flock). It is the
// embedded default of the store when no Redis is configured.
//
// # Design
//
// Each held key has a small state file, Dir/keys/<sha256 of prefix+key>.lock
// (hashing makes any key a safe file name: no path can escape Dir). The
// file records the lease: token, fence, holder host and PID, the holder's
// Locker instance, since and until. The flock of a state file is held only
// for the few microseconds of a read-modify-write of that record, never for
// the life of the lease, so that a lease can expire: a contender takes the
// key over when the record is absent, its lease expired, or its holder is
// gone. Extend and Release check the token, so a holder that lost its lease
// learns it and cannot free the key of the next holder. Releasing a key
// removes its file (a removed file is detected and reopened by the next
// locker of that key), so the directory holds only the keys in use.
//
// A holder that dies (crash, SIGKILL, OOM kill) frees its
// keys at once, not at expiry: every Locker registers a liveness file,
// Dir/holders/<instance>.holder, at its first Acquire or TryAcquire (New,
// Inspect and Ping write nothing, so a process that only reads needs no
// write access to Dir), keeps it flocked until Close, and the
// kernel drops that lock when the process ends however it ends. A
// contender that finds the liveness file unlocked or missing treats the
// holder as gone. Unlike a PID check this is immune to PID reuse and to PID
// namespaces (containers sharing the directory). A holder that is alive but
// paused past its expiry loses the lease like on every other locker.
//
// Fences strictly increase per key across processes and restarts: a key
// whose file exists continues from the recorded fence; a key whose file was
// removed continues from Dir/fence, the high-water mark of the fences of
// removed files (raised before each removal). A corrupt state or fence file
// (a torn write after a power loss) is taken over with a fence derived from
// the wall clock in microseconds, above any counter value reachable before.
// Records are rewritten in place with one write within the first page, so a
// process killed mid-update leaves the old record or the new one.
//
// Waiters in Acquire wake when the state file changes (inotify on Linux: a
// release by any process wakes them within milliseconds), when a holder's
// Locker closes or its process dies, when the holder's lease expires (a
// timer), and otherwise at their backoff retries. On other Unix systems only
// releases in the same process and expiries wake them. Systems without
// flock (Windows) are not supported: New returns an error matching
// errors.ErrUnsupported.
//
// Limitations: all processes must share one host and one clock (expiry
// compares wall-clock times written by different processes; a clock step
// shortens or lengthens leases). The directory must be on a local file
// system; network file systems are not supported. A process frozen (SIGSTOP,
// debugger) inside the microseconds-long update of a key's record blocks
// that key until it resumes or dies; waiters still honour their timeout and
// context.
//
// Ping (lock.Pinger) checks what it can without writing: Dir is a
// directory or missing (the first acquisition creates it).
//
// # Errors
//
// Errors match the sentinels of package lock with errors.Is:
// lock.ErrLocked from TryAcquire on a held key, lock.ErrTimeout when Acquire
// gives up (also matching ctx.Err() when the context ended the wait),
// lock.ErrLeaseLost from a lease that expired, was broken or was taken over,
// lock.ErrNotHeld from a lease already released, lock.ErrInvalidKey, and
// lock.ErrClosed after Close. File-system failures keep their *fs.PathError
// in the chain (errors.Is(err, fs.ErrPermission) works). A context that has
// already ended fails every call with an error wrapping ctx.Err().
//
// # Concurrency
//
// A Locker and its Leases are safe for concurrent use, and any number of
// Lockers, in one process or many, may share a directory. Each Locker runs
// one goroutine for its file-system watch; each held lease runs one
// goroutine (its refresh and expiry watcher).
package filelock
