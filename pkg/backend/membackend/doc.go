// Package membackend is an in-memory backend.Backend, for tests, examples
// and single-process tools. It has the same semantics as the persistent
// backends: atomic Puts, conditional Puts (IfAbsent, IfMatch) with an ETag
// that changes on every successful Put, not-found reported by Get itself,
// idempotent Delete, a conditional delete (backend.ConditionalDeleter) and
// a List sorted by key bytes. Objects live as long as
// the Backend; nothing is persisted.
//
// A Put reads the whole content into memory before it commits it, so an
// object's size is bounded by the memory of the process.
//
// ETags are hexadecimal numbers from a counter of the Backend: every
// successful Put gets a new one, even when it stores the same bytes again.
//
// # Errors
//
// Every error matches one of the sentinels of package backend with
// errors.Is: ErrInvalidKey and ErrInvalidArgument (checked before any work),
// ErrNotFound from Get, Stat and DeleteIfMatch, ErrPreconditionFailed from a
// conditional Put or DeleteIfMatch, ErrSizeMismatch when the reader delivers fewer or more bytes than the
// size passed to Put, and ErrClosed after Close. A reader's own error and a
// cancelled context stay in the chain (errors.Is(err, context.Canceled)).
// Nothing is stored when a Put fails.
//
// # Concurrency
//
// A Backend is safe for concurrent use by many goroutines. Each Put is
// atomic and conditional Puts are linearizable: of 20 goroutines racing an
// IfAbsent Put on one key exactly one wins, and a DeleteIfMatch checks
// the ETag and removes the object in the same critical section. List works on a snapshot taken
// when the iteration starts and holds no lock while it yields, so the loop
// body may call the Backend. Readers returned by Get read an immutable copy
// and are not affected by later Puts or Deletes of the key.
package membackend
