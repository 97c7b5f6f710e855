package backend

import (
	"context"
	"errors"
	"net"
)

// Sentinel errors of the backend contract. Implementations wrap them with
// the provider's own error kept in the chain, for example
// fmt.Errorf("s3backend: put %q: %w: %w", key, backend.ErrNotFound, err), so
// that callers match them with errors.Is and can still reach the provider
// error with errors.As.
var (
	// ErrNotFound: no object is stored under the key.
	ErrNotFound = errors.New("object not found")
	// ErrPreconditionFailed: a conditional Put found the key present
	// (IfAbsent) or with another ETag (IfMatch); nothing was written.
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrInvalidKey: the key is empty, too long, not valid UTF-8, contains
	// a NUL or control character, or has an empty, "." or ".." segment.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidArgument: a parameter other than the key is malformed, for
	// example IfAbsent together with IfMatch, a negative size, or a nil
	// reader.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPermissionDenied: the credentials do not allow the operation.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrStorageFull: the server or disk has no room for the object.
	ErrStorageFull = errors.New("storage full")
	// ErrTooLarge: the content exceeds what the backend can store in one
	// object (for example an unknown-size stream longer than part size x
	// 10,000 on S3).
	ErrTooLarge = errors.New("object too large")
	// ErrSizeMismatch: the reader delivered fewer or more bytes than the
	// size passed to Put.
	ErrSizeMismatch = errors.New("content length does not match size")
	// ErrTransient: a failure that may succeed when retried (network error,
	// 5xx, throttling, a conflicting concurrent conditional write).
	ErrTransient = errors.New("transient backend error")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("backend closed")
)

// IsTransient reports whether err is worth retrying: it matches
// ErrTransient, or it is a network error that is not a context error.
// Context cancellation and deadlines are never transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrTransient) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
