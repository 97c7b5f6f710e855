// Package backendtest is the conformance suite of the backend.Backend
// contract and the test doubles built on it.
//
// Every implementation's test is a few lines:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend {
//			b := membackend.New()
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Run calls the factory once per named subtest, so every subtest starts from
// an empty backend, and uses nothing but the Backend interface. It covers
// round trips (content, size, content type, ETag), zero-byte, multi-MiB and
// unknown-size objects, size mismatches, not-found from Get and Stat,
// idempotent Delete, List order, prefixes and early break, odd and invalid
// keys, overwrites, IfAbsent and IfMatch alone and under contention
// (ConcurrentIfAbsent, ConcurrentIfMatch, and ConditionalPutRaces: rounds
// of 16 racers with exactly one winner each), failing readers and cancelled
// contexts (nothing stored, the previous object intact), concurrent writers
// and readers, ProbeConditionalPut, ProbeConditionalDelete, and Close.
//
// When the backend under test implements backend.ConditionalDeleter, the
// DeleteIfMatch* subtests and ConcurrentDeleteIfMatch check it: the
// current ETag deletes, a stale one fails with ErrPreconditionFailed and
// keeps the object, a missing key fails with ErrNotFound, invalid
// arguments, cancellation and Close are reported, a DeleteIfMatch racing
// an IfMatch Put of the same version loses or wins alone, and of 16
// concurrent DeleteIfMatch calls exactly one succeeds. RunWith with
// Options.ProbeConditionalDelete runs them only when
// backend.ProbeConditionalDelete says the backend enforces the condition,
// for backends whose server decides (s3backend); otherwise a
// backend.ConditionalDeleter must pass them.
//
// Objects are at most 8 MiB and the whole suite runs in seconds against a
// local S3 server; it assumes nothing about timestamps beyond a minute of
// agreement between the backend's clock and the test's.
//
// Faulty wraps any Backend and injects errors, latency or ignored
// conditions into chosen calls (by operation, key prefix and call count),
// for the tests of the retry decorator and of the store. It forwards
// DeleteIfMatch (OpDeleteIfMatch) when the wrapped backend has it, and a
// Fault's Hook runs at an exact point of a call, before it reaches the
// wrapped backend, so that a test can hold a writer there (block on a
// channel) or act meanwhile (free a lease, commit a competing write).
//
// # Errors
//
// Run reports failures through the testing.T it is given; it never skips
// (a conditional-delete subtest that does not apply passes with a log
// line). Faulty's injected errors are the ones given in each Fault; Transient and
// Permanent build errors that also match ErrInjected.
//
// # Concurrency
//
// Run's subtests run one after the other; several of them start 16 or 20
// goroutines against one backend. Faulty is safe for concurrent use, and
// faults may be injected or cleared while calls are in flight.
package backendtest
