// Package backend defines the byte-storage contract that artifactstore's
// store is built on, the sentinel errors every implementation maps its
// provider errors to, key validation shared by all implementations, a retry
// decorator for transient failures, and probes that prove a backend
// enforces conditional writes (ProbeConditionalPut) and conditional
// deletes (ProbeConditionalDelete).
//
// Implementations live in subpackages: s3backend (any S3-compatible server,
// through minio-go), filebackend (a local directory) and membackend (in
// memory, for tests and examples). backendtest is the conformance suite they
// all pass unchanged.
//
// A Backend stores opaque bytes under keys and knows nothing about
// artifacts. Optional capabilities beyond the six methods are one-method
// interfaces discovered by type assertion. The one so far is
// ConditionalDeleter (DeleteIfMatch: delete only while the ETag matches),
// which membackend, filebackend and s3backend implement; on S3 whether it
// holds depends on the server, and only ProbeConditionalDelete tells.
// Decorators (Retrying, backendtest.Faulty) implement it whatever they
// wrap and answer errors.ErrUnsupported when the wrapped Backend lacks it.
//
// # Keys
//
// Keys are slash-separated UTF-8 strings of at most MaxKeyLength bytes with
// no empty, "." or ".." segment and no control characters; see ValidateKey.
// Every implementation rejects other keys with ErrInvalidKey before any I/O.
//
// # Errors
//
// Failures match one of the sentinels (ErrNotFound, ErrPreconditionFailed,
// ErrInvalidKey, ErrInvalidArgument, ErrPermissionDenied, ErrStorageFull,
// ErrTooLarge, ErrSizeMismatch, ErrTransient, ErrClosed) with errors.Is; the
// provider's original error stays in the chain for errors.As. A cancelled
// context yields an error that matches ctx.Err(). IsTransient tells the
// failures worth retrying from the permanent ones.
//
// A transient failure of a conditional write (a conditional Put,
// DeleteIfMatch) is an unknown outcome, not a failure: the request may
// have landed and only its answer been lost. Retrying never re-sends such
// a call, because a re-sent conditional write whose first attempt landed
// fails against its own effect (ErrPreconditionFailed, ErrNotFound); it
// returns the transient error, annotated, and the caller reads the object
// back to learn what happened.
//
// # Concurrency
//
// Every Backend is safe for concurrent use by many goroutines. Put is atomic:
// a reader sees the old object or the whole new one. Conditional Puts
// (PutOptions.IfAbsent, PutOptions.IfMatch) and DeleteIfMatch are the only
// synchronization the contract offers; they hold across processes for
// s3backend (as far as the server enforces them) and filebackend.
// ProbeConditionalPut races 32 conditional Puts on one key, twice, to
// prove it; ProbeConditionalDelete checks DeleteIfMatch's answers one
// request at a time and cannot prove that a server's check and removal
// are atomic against a concurrent Put (backendtest's suite races them,
// and versitygw v1.8.0's are not; see s3backend).
package backend
