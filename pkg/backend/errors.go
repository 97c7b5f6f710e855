package backend

import (
	"context"
	"errors"
	"net"
	"syscall"
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

// permanentErrors are definite answers: retrying cannot change them, even
// when the error also carries an OS or network error.
var permanentErrors = [...]error{
	ErrNotFound, ErrPreconditionFailed, ErrInvalidKey, ErrInvalidArgument,
	ErrPermissionDenied, ErrStorageFull, ErrTooLarge, ErrSizeMismatch, ErrClosed,
}

// IsTransient reports whether err is worth retrying: it matches ErrTransient,
// or it is a network failure (a *net.OpError or *net.DNSError, a connection
// reset, refused or broken, or a timeout). Context cancellation and
// deadlines, and errors matching one of the definite sentinels (ErrNotFound,
// ErrPreconditionFailed, ErrInvalidKey, ErrInvalidArgument,
// ErrPermissionDenied, ErrStorageFull, ErrTooLarge, ErrSizeMismatch,
// ErrClosed), are never transient. A local file-system error such as
// ENOENT is not a network failure, although syscall.Errno satisfies
// net.Error.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, permanent := range permanentErrors {
		if errors.Is(err, permanent) {
			return false
		}
	}
	if errors.Is(err, ErrTransient) {
		return true
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) {
		return true
	}
	for _, errno := range [...]syscall.Errno{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
