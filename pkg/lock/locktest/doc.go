// Package locktest is the conformance suite of the lock contract: every
// lock.Locker of artifactstore (memlock, filelock, redislock) passes it
// unchanged, and an implementation's test file is a few lines:
//
//	func TestConformance(t *testing.T) {
//		locktest.Run(t, func(t *testing.T, cfg lock.Config) lock.Locker {
//			l, err := mylock.New(cfg)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { l.Close() })
//			return l
//		})
//	}
//
// Run has one named subtest per property, each on a fresh locker: mutual
// exclusion under contention, TryAcquire on a held key, Acquire's timeout,
// context cancellation and deadline (errors matching both lock.ErrTimeout and
// the context's error), expiry of a holder that vanished, Done closing on
// loss, manual and automatic refresh, Release after loss and twice, strictly
// increasing fences, independent and unusual keys, invalid keys, Inspect,
// ForceUnlock (with and without automatic refresh), the handoff from a
// releasing holder to a waiter, and Ping.
//
// The suite uses only the interfaces of package lock, so it runs unchanged
// against lock servers: keys are unique per run and subtest, and every
// timing bound is generous (seconds, not milliseconds) so that the suite
// passes under -race on a loaded machine and over loopback networks. The
// lockers must implement lock.Inspector, lock.ForceUnlocker and
// lock.Pinger as well;
// subtests that need them fail otherwise. Waiters must be woken when the key
// is released: the Handoff subtest gives its waiter a 30s retry interval
// and allows one second from Release to the waiter's grant, so a locker
// that only polls fails it (by chance it may pass, about once in 25 runs).
// The whole suite takes about 8 seconds per locker.
//
// # Errors
//
// Failures are reported through testing.T; Run returns nothing.
//
// # Concurrency
//
// Subtests run one after another (timing bounds stay meaningful on a loaded
// machine); several of them use many goroutines on one locker. Lockers from
// separate Run calls must not share keys with each other unless they use
// different Config.KeyPrefix values, which the suite sets per run.
package locktest
