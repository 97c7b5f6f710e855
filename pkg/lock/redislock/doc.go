// Package redislock is artifactstore's default lock.Locker: Redsync's
// implementation of Redlock over one or more independent Redis masters
// (go-redis v9 clients), with fencing tokens, a fair waiting queue and
// pub/sub wake-ups.
//
// Open connects to the masters of a Config, which ConfigFromEnv reads from
// the environment (see Configuration below); New takes clients the caller
// made. With N masters a grant needs a quorum of
// N/2+1: three masters survive the loss of one, five the loss of two. The
// masters must be independent (not replicas of each other, not one Redis
// Cluster), and every process must list them in the same order.
//
// # Configuration
//
// Each master is host:port or a URL, redis://[user[:password]@]host[:port][/db]
// or rediss://... for TLS; a URL's user, password and database override
// Config.Username, Password and DB for that master. Config.TLS turns TLS on
// for every master; TLSCAFile (default: the system roots), TLSCertFile and
// TLSKeyFile (a client certificate, for servers with tls-auth-clients) and
// TLSServerName (default: each address's host) tune it. Server
// certificates are always verified unless TLSInsecureSkipVerify is set
// (tests only). DialTimeout (2s), ReadTimeout (3s), WriteTimeout (3s) and
// PoolSize (go-redis's default) bound each master's connections.
//
// ConfigFromEnv reads ARTIFACTSTORE_REDIS_ADDRS (comma-separated
// addresses), ARTIFACTSTORE_REDIS_USERNAME, ARTIFACTSTORE_REDIS_PASSWORD,
// ARTIFACTSTORE_REDIS_DB, ARTIFACTSTORE_REDIS_TLS,
// ARTIFACTSTORE_REDIS_TLS_CA_FILE, ARTIFACTSTORE_REDIS_TLS_CERT_FILE,
// ARTIFACTSTORE_REDIS_TLS_KEY_FILE, ARTIFACTSTORE_REDIS_TLS_SERVER_NAME,
// ARTIFACTSTORE_REDIS_TLS_INSECURE_SKIP_VERIFY,
// ARTIFACTSTORE_REDIS_DIAL_TIMEOUT, ARTIFACTSTORE_REDIS_READ_TIMEOUT,
// ARTIFACTSTORE_REDIS_WRITE_TIMEOUT (Go durations) and
// ARTIFACTSTORE_REDIS_POOL_SIZE. A malformed value, a URL with options
// after the host, or a TLS file that cannot be read is an error matching
// lock.ErrInvalidArgument.
//
// # Failing fast
//
// A lock service that cannot be reached (nothing listening, a host that
// does not answer, TLS refused) fails Acquire with lock.ErrUnavailable
// (and lock.ErrTimeout) once its attempts have failed that way for
// lock.Config.UnavailableTimeout, 2s by default, which package setup sets
// to DialTimeout: not after the whole lock timeout. A refused password or
// ACL (WRONGPASS, NOAUTH, NOPERM replies) fails the first attempt with
// lock.ErrPermissionDenied, the same value as store.ErrPermissionDenied:
// clients made by Open mark those replies with PermissionHook.
//
// go-redis logs failed dials itself, through one process-wide logger.
// GoRedisLogger routes those lines into a slog.Logger; programs install it
// once with redis.SetLogger (cmd/artifacts and cmd/demo route it into their
// own logger), since a library must not change process-wide state.
//
// # How a lock is taken
//
// Each acquisition attempt is one Redsync mutex with a fresh random value
// (crypto/rand, 130 bits, nothing else in it), tried once: Redsync sets the
// key on every master in parallel (after the key's queue master, see
// below), counts the masters that took it, checks
// the validity time (expiry minus elapsed time minus clock drift) and
// removes its value from every master when it did not win. Acquire repeats
// attempts through lock.Wait (timeout, backoff, wake-ups), all with the same
// value, the one a release hands the lock over with (see Hand-off below);
// TryAcquire makes one. Leases are extended with Redsync's extension and
// freed with its unlock, on a context the caller's cancellation cannot
// break (the cleanup of a failed attempt too).
//
// The package implements Redsync's connection-pool interface over go-redis
// so that every per-master step does this package's extra work in the same
// round trip, as one Lua script: the SET NX PX of an attempt also
// increments the master's fence counter and records the holder (host, pid,
// since) when it succeeds; the compare-and-delete of an unlock also hands
// the key to the next waiter, or publishes the release. With one master an
// uncontended acquire and release therefore costs two round trips, as with
// Redsync alone; with several, one more for each (see the waiting queue
// and the hand-off below).
//
// The Redis keys of a lock on key K, with Config.KeyPrefix P (the braces
// make a hash tag that keeps one lock's keys in one hash slot):
//
//	P{K}           the Redlock key: the holder's random value, with its expiry
//	P{K}:state     hash without expiry: the fence counter and the last grant's
//	               value, holder, since and fence
//	P{K}:q, :hb    the waiting queue and its heartbeats (queue master only;
//	               they expire when nobody waits); a waiter's member is
//	               <locker id>.<value>.<claim window ms>.<holder JSON>
//	P{K}:released  a pub/sub channel: releases no queued waiter was told of
//	Pwake:<id>     a pub/sub channel per Locker: "your turn" or "the lock
//	               is yours" for its waiters
//
// # Fencing tokens
//
// Every lease has a Fence that strictly increases across the acquisitions
// of a key, across processes, even when a master is lost.
//
// Each master i keeps a counter c_i in P{K}:state. The per-master step of
// an attempt increments c_i only on the masters where its SET NX succeeded,
// and returns the new value. A grant G won on a quorum Q_G takes as fence
// F_G the largest value returned by Q_G. Before Acquire returns, G makes
// sure that a quorum M_G of the masters of Q_G has c_i >= F_G: the masters
// that returned F_G already do, and the others are raised to F_G (a
// compare-and-raise script, one more round trip, needed only when the
// counters differ, as after a master restarts empty). If fewer than a
// quorum confirm, G is released and Acquire fails with lock.ErrUnavailable.
//
// Claim: when a grant H follows a grant G (H is granted after G's lease
// ended, which is Redlock's mutual exclusion), F_H > F_G. M_G and Q_H are
// both majorities of the same N masters, so some master i is in both. As i
// is in Q_G, G's key was set on i; as i is in Q_H, H's SET NX succeeded on
// i. H's step on i cannot have come first: H's key would then have stayed
// on i for H's whole validity, which ends after G's lease, and G's SET NX on
// i would have failed. So H's step on i ran after G's key on i was gone:
// after G released it or it expired, in both cases after G had raised c_i
// to at least F_G (before Acquire returned, within the validity time). H's
// increment on i thus returned at least F_G+1, and F_H >= F_G+1.
//
// The argument needs what Redlock itself needs (clocks that drift by less
// than the drift factor, 1% of the expiry) and that the master shared by
// M_G and Q_H kept its counter. A master that restarts without persistence
// comes back with empty counters (they are raised again at the next grant
// that includes it). When all N masters confirmed G's fence, any minority of
// them may restart empty before the next grant; when one was already down
// at G, one fewer. ForceUnlock of a lease still being granted (between its
// quorum and its fence) voids the ordering for that lease. A gap in the
// fences is normal: failed attempts also increment.
//
// # Fairness and wake-ups
//
// Redsync alone lets a holder that releases and asks again win at once
// while others sleep for a random 50-250ms retry delay, which starves them.
// Here each key has a FIFO waiting queue on one master chosen by a hash of
// the key (its queue master). The queue only decides who tries; mutual
// exclusion always comes from the Redlock quorum. On the queue master the
// attempt script lets a waiter try only when the queue is empty or the
// waiter is at its head, and puts a refused waiter at the tail; the other
// masters are asked only after the queue master answered (one extra round
// trip with several masters). A holder that asks again queues behind the
// waiters already there. TryAcquire never queues and is refused while
// waiters have the turn.
//
// Each Locker has one pub/sub connection per master and one channel of its
// own, subscribed once (at its first wait) and multiplexed over all its
// waiters and keys. A release hands the key to the head of the queue and
// tells that waiter alone, on its Locker's channel (see Hand-off), so it
// wakes one waiter, not every waiting process. A waiter outside the queue
// (its queue master did not answer) also subscribes to the key's release
// channel, where the other masters announce releases; that subscription is
// kept one second after its last waiter. The confirmation of a new
// subscription makes the waiters it serves try again, so a release just
// before it is not missed.
//
// The head of the queue (and a waiter outside it) also re-checks its turn
// every Config.RetryInterval (clamped to 10ms..500ms), the beat; a waiter
// behind others only proves it is alive, every quarter of the heartbeat
// lifetime, since it cannot win before it is named the head. An entry
// whose waiter stopped beating for ten beats (at least one second) is
// dropped, so a crashed waiter cannot block the queue for longer (nor,
// once the key was handed to it, for longer than its claim window). A waiter
// that was only starved of CPU for that long comes back with its ticket,
// at its place, not at the tail: under CPU starvation a queue that sent
// its slow waiters to the back could keep a waiter from its turn for ever.
// Queued waiters cost the masters and their process one attempt per beat
// at the head and a few per second behind it, not one per retry interval
// each: N waiters polling would take CPU from the holder and lengthen the
// critical section they wait for. A lease that ends without a release
// (expired or lost) has its value deleted from the masters at once, which
// hands the key to the head of the queue. Subscriptions are made off the
// waiter's path, so an Acquire on a loaded machine ends at its timeout.
//
// # Hand-off
//
// A release does not just free the key for the head of the queue to try:
// it hands the key over, so that a hand-off costs one wake-up instead of
// three (the release, the delivery of a wake-up, the head's own attempt).
// The release script on the queue master deletes the holder's value, takes
// the head out of the queue, sets the key to the head's value (queued with
// it) for the head's claim window only, increments the fence counter,
// records the head as the holder and publishes the grant, with the fence,
// on the head's Locker channel. With several masters the releaser then
// runs the release on the others, which hand the key to the same heir and
// publish their grants. The waiter holds the lock once grants from a
// quorum have arrived, without asking Redis: each master set the key after
// the waiter's last attempt that left it queued had started, so the keys
// live at least until that start plus the claim window, less Redlock's
// drift, which is the lease's Until. The fence is computed and settled on a
// quorum as for an attempt (see Fencing tokens: the hand-off increments a
// master's counter in the script that deleted the previous holder's value,
// and an attempt that finds its own value returns the counter that the
// setting of that value incremented, so the argument holds unchanged).
//
// The claim window is ten beats, at least five seconds (a holder starved
// of CPU for a few seconds right after the hand-off still claims in time)
// and at most the expiry. A quarter of it after the hand-off the lease claims the full
// expiry (a Refresh), unless it was released before: short critical
// sections cost no more than the release that ends them. A lease that does
// not refresh itself (Config.DisableAutoRefresh), or whose window is more
// than half gone when the grant is taken, claims before Acquire returns. A
// waiter that has gone away (crashed, frozen, or gave up just as the key
// was handed to it) therefore holds the queue up for its claim window at
// most: the key then expires on the masters, and the waiter that is now at
// the head takes it at its next re-check (a waiter behind others re-checks
// every quarter of the heartbeat lifetime). A waiter that gives up frees
// a key handed to it on the queue master at once (and hands it on). A
// grant that is missed (the waiter's Locker was still subscribing, or an
// attempt of its own was under way) is found by the waiter's next attempt:
// the attempt script treats a key that holds the attempt's own value as
// won, with the full expiry.
//
// # Caveats
//
// Redlock is a lease, not a guarantee: a holder paused longer than its
// expiry, or a clock jump, lets a second holder in. The fence exists for
// that case; artifactstore's store makes its commits conditional so that a
// stale holder cannot overwrite a newer commit. A master restarted without
// persistence forgets the keys it held, which can let a second holder win a
// quorum while the first still holds: keep masters down for at least the
// expiry after a crash, or run them with appendonly yes and appendfsync
// always. A master that hangs (rather than dies) delays every attempt by
// the attempt timeout (5% of the expiry, at least 250ms or a third of it).
// go-redis stops dialling a master after repeated failures and probes it
// every second, so a master that comes back is used again within about a
// second. Clients made by Open fail fast (one dial attempt, one retry);
// clients given to New should be configured likewise (see Config.Options).
//
// # Errors
//
// Errors match the sentinels of package lock with errors.Is, and keep the
// cause in the chain (Redsync's *redsync.ErrTaken, *redsync.RedisError and
// go-redis errors can be found with errors.As):
//
//   - lock.ErrLocked: enough masters answered, and another holder has the
//     key on them (or waiters queued before have the turn).
//   - lock.ErrUnavailable: fewer masters than a quorum answered, the
//     quorum came too late to be valid, or the fence could not be recorded
//     on a quorum; nothing was granted. Extend and Release report it when
//     masters did not answer but the lease may still hold.
//   - lock.ErrTimeout: Acquire gave up; it also matches the last attempt's
//     ErrLocked or ErrUnavailable, and the context's error when the
//     caller's context ended the wait.
//   - context.Canceled, context.DeadlineExceeded: TryAcquire, Inspect and
//     ForceUnlock return the context's error (not a lock error) when the
//     context ended.
//   - lock.ErrPermissionDenied: a master refused the password, the ACL
//     user or its rights (clients with PermissionHook); Acquire does not
//     retry it.
//   - lock.ErrLeaseLost: Extend or Release found too few masters still
//     holding the lease's value to form a quorum (expired, broken by
//     ForceUnlock, or forgotten by restarted masters).
//   - lock.ErrInvalidKey, lock.ErrClosed.
//
// Passwords never appear in errors or logs: Config's String, Format,
// LogValue and MarshalJSON redact them, also inside a redis:// URL.
//
// # Concurrency
//
// A Locker is safe for concurrent use by any number of goroutines, and so
// is each Lease. A Locker holds, per master, the clients it was given (or
// made) and one pub/sub connection; Close stops the pub/sub connections
// (and closes the clients Open made). Each lease has a goroutine that
// refreshes it (package lock) and one that removes its value if it is lost.
package redislock
