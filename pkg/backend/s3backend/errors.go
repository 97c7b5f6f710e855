package s3backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Operations, as they appear in error messages and decide some mappings.
const (
	opPut    = "put"
	opGet    = "get"
	opStat   = "stat"
	opDelete = "delete"
	// opDeleteIfMatch is a conditional DELETE: NoSuchKey means the key is
	// missing (backend.ErrNotFound), as for the other calls.
	opDeleteIfMatch = "delete if match"
	opList          = "list"
	opRead          = "read"
	opNew           = "new"
	opProbe         = "probe"
)

// codeSentinels returns the sentinels an S3 error code (the <Code> of an
// error response, or one of minio-go's own codes) means, and false for a
// code it does not know, which is then classified by its HTTP status.
func codeSentinels(code string) ([]error, bool) {
	switch code {
	// Missing objects and buckets. NoSuchKey answering a Put is handled by
	// sentinelsFor: it is the answer to If-Match on a missing key.
	case minio.NoSuchKey, minio.NoSuchBucket, minio.NoSuchVersion:
		return []error{backend.ErrNotFound}, true

	// Failed conditions. ConditionalRequestConflict (409) is not one: it
	// means another conditional write on the key was in progress, so the
	// server refused this one without evaluating it; nothing was written
	// and AWS says to retry. It is ErrTransient (the contract lists "a
	// conflicting concurrent conditional write" there), not
	// ErrPreconditionFailed: sent again, the PUT gets the definitive
	// answer, 200 or 412. (Matching both would not work: backend.IsTransient
	// lets ErrPreconditionFailed win, so it would never be sent again.)
	case minio.PreconditionFailed:
		return []error{backend.ErrPreconditionFailed}, true
	case "ConditionalRequestConflict":
		return []error{backend.ErrTransient}, true
	// versitygw's posix backend answers a Put 409 ExistingObjectIsDirectory
	// when it cannot create the key's parent directories or link the file
	// into them, which is also what a concurrent DELETE that removed the
	// emptied parent directory at that moment causes (seen under load on
	// the catalog's log, whose entries come and go in shared directories).
	// Nothing was written and the Put lands when sent again; the keys of
	// this store never name a directory, so the other meaning (the key is
	// a directory with objects under it) fails after the retries all the
	// same.
	case "ExistingObjectIsDirectory":
		return []error{backend.ErrTransient}, true

	// Credentials and permissions. versitygw answers an unknown access key
	// with 404 XAdminUserNotFound.
	case minio.AccessDenied, minio.AllAccessDisabled, minio.InvalidAccessKeyID,
		minio.SignatureDoesNotMatch, "AccountProblem", "InvalidToken",
		"ExpiredToken", "InvalidSecurity", "XAdminUserNotFound", "XAdminAccessDenied":
		return []error{backend.ErrPermissionDenied}, true

	// No room: MinIO's full disks and bucket quotas, versitygw's quota
	// (403) and full disk (507).
	case "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded", "XMinioBucketQuotaExceeded",
		"QuotaExceeded", "InsufficientStorage", "StorageFull":
		return []error{backend.ErrStorageFull}, true

	// Too large for one object (minio-go's own check or the server's).
	case minio.EntityTooLarge, "MaxMessageLengthExceeded":
		return []error{backend.ErrTooLarge}, true

	// Malformed requests.
	case "XMinioInvalidObjectName", "KeyTooLongError":
		return []error{backend.ErrInvalidKey}, true
	case minio.InvalidArgument, minio.InvalidBucketName, minio.InvalidRegion,
		minio.AuthorizationHeaderMalformed: // a wrong Region
		return []error{backend.ErrInvalidArgument}, true

	// Throttling, server trouble, interrupted or garbled transfers, and a
	// multipart upload that vanished (a new Put starts another).
	case "SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException",
		"RequestLimitExceeded", "RequestThrottled", "TooManyRequests", "ServiceUnavailable",
		minio.InternalError, "RequestTimeout", "RequestError", "OperationAborted",
		"XMinioServerNotInitialized", "XMinioReadQuorum", "XMinioWriteQuorum",
		minio.IncompleteBody, minio.BadDigest, minio.XAmzContentSHA256Mismatch, minio.NoSuchUpload:
		return []error{backend.ErrTransient}, true
	}
	return nil, false
}

// sentinelsFor returns the sentinels an S3 error response means for op, or
// nil when it means none of them.
func sentinelsFor(op string, er minio.ErrorResponse) []error {
	// If-Match on a missing key is answered 404 NoSuchKey (AWS, MinIO,
	// versitygw); for the contract it is a failed condition. An
	// unconditional Put cannot get NoSuchKey.
	if op == opPut && er.Code == minio.NoSuchKey {
		return []error{backend.ErrPreconditionFailed}
	}
	if s, ok := codeSentinels(er.Code); ok {
		return s
	}
	switch st := er.StatusCode; {
	case st == http.StatusNotFound:
		return []error{backend.ErrNotFound}
	case st == http.StatusPreconditionFailed:
		return []error{backend.ErrPreconditionFailed}
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return []error{backend.ErrPermissionDenied}
	case st == http.StatusInsufficientStorage:
		return []error{backend.ErrStorageFull}
	case st == http.StatusRequestEntityTooLarge:
		return []error{backend.ErrTooLarge}
	case st == http.StatusRequestTimeout, st == http.StatusTooManyRequests, st == 499, st >= 500:
		return []error{backend.ErrTransient}
	}
	return nil
}

// contentError marks an error that came from the caller's reader (or from
// the size it announced), so that it is reported as such and never taken
// for a network error: net/http wraps it in a *url.Error, which is a
// net.Error, and backend.IsTransient would call it transient.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

// mapError turns the error of a minio-go call made for op on key into the
// error the contract promises: a context error when ctx is done, the
// caller's own reader error when the content failed, and otherwise the
// provider error wrapped with the sentinels it means (fmt.Errorf("...: %w:
// %w", sentinel, err)), so that errors.Is finds the sentinel and errors.As
// finds the minio.ErrorResponse.
func mapError(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return fmt.Errorf("s3backend: %s %q: %w", op, key, err)
		}
		return fmt.Errorf("s3backend: %s %q: %w: %w", op, key, cerr, err)
	}
	var ce *contentError
	if errors.As(err, &ce) {
		return fmt.Errorf("s3backend: %s %q: %w", op, key, ce.err)
	}
	var sentinels []error
	var er minio.ErrorResponse
	switch {
	case errors.As(err, &er):
		sentinels = sentinelsFor(op, er)
	case isTimeout(err):
		// The caller's context is alive (checked above): the request
		// timed out (Config.RequestTimeout, ConnectTimeout).
		sentinels, err = []error{backend.ErrTransient}, requestTimeout{err}
	case isNetworkError(err):
		sentinels = []error{backend.ErrTransient}
	}
	if len(sentinels) == 0 {
		return fmt.Errorf("s3backend: %s %q: %w", op, key, err)
	}
	args := make([]any, 0, len(sentinels)+3)
	args = append(args, op, key)
	for _, s := range sentinels {
		args = append(args, s)
	}
	args = append(args, err)
	return fmt.Errorf("s3backend: %s %q"+strings.Repeat(": %w", len(sentinels)+1), args...)
}

// isNetworkError reports a failure of the connection rather than an answer
// of the server: worth retrying. (The caller's cancellation is handled
// before this is called; an error matching a context error is never
// transient for backend.IsTransient, so it is not counted here either.)
// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// requestTimeout is a request that got no answer in time while the
// caller's context was alive. net/http's error for a response header
// timeout also matches context.DeadlineExceeded, which would read as the
// caller's deadline and never be retried (backend.IsTransient); this keeps
// its message and its net.Error nature without that identity.
type requestTimeout struct{ err error }

func (e requestTimeout) Error() string   { return e.err.Error() }
func (e requestTimeout) Timeout() bool   { return true }
func (e requestTimeout) Temporary() bool { return true }

func isNetworkError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}
