package backend

import (
	"context"
	"io"
	"iter"
	"time"
)

// SizeUnknown is passed as the size to Put when the length of the content is
// not known in advance. Backends must then stream it with bounded memory.
const SizeUnknown int64 = -1

// Backend stores opaque bytes under string keys. It knows nothing about
// artifacts; every artifact rule lives in package store.
//
// Implementations must be safe for concurrent use, must honour ctx on every
// call (a cancelled call returns an error wrapping ctx.Err()) and must map
// their provider errors to the sentinels of this package at the boundary,
// keeping the provider error in the chain.
//
// Keys are not folders: callers never store a key that is also the
// folder of another key ("p" next to "p/q"), and the store's layout never
// does. What a backend does with such a pair is its own: membackend and
// filebackend store and list both, AWS S3 too, S3 servers on a POSIX
// filesystem (versitygw's posix backend) refuse the second Put without a
// change, and MinIO stores both but leaves "p/q" out of listings
// (minio/minio#18148). backendtest.Options.KeyBelowObjectUnsupported tells
// the conformance suite which promise to check.
type Backend interface {
	// Put stores size bytes read from r under key, atomically: readers see
	// either the previous object or the whole new one, never a part. size is
	// SizeUnknown when the length is not known. When r fails, the context is
	// cancelled or fewer/more than size bytes arrive, nothing is stored and
	// the previous object (if any) is untouched. A failed Condition returns
	// an error matching ErrPreconditionFailed and changes nothing.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)

	// Get opens the object stored under key. A missing object is reported by
	// Get itself (ErrNotFound), never by the first Read. The caller must
	// close the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)

	// Stat returns the object's info without its content, ErrNotFound when
	// it does not exist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// Delete removes the object. Deleting a missing key is not an error.
	// It is unconditional: it removes whatever is stored under key when it
	// runs, so use it only on keys nobody re-creates concurrently (the
	// store's write-once blobs), and ConditionalDeleter.DeleteIfMatch
	// otherwise.
	Delete(ctx context.Context, key string) error

	// List yields the objects whose keys start with prefix, in ascending
	// byte order of their keys. An error ends the sequence: it is yielded
	// once with a zero ObjectInfo. Stopping the iteration early releases
	// every resource the listing held.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]

	// Close releases the backend's resources. Calls after Close fail.
	Close() error
}

// PutOptions are the optional parameters of Put. The zero value stores
// unconditionally with the default content type.
type PutOptions struct {
	// ContentType is the MIME type recorded with the object. Default
	// "application/octet-stream".
	ContentType string
	// IfAbsent makes the Put fail with ErrPreconditionFailed when an object
	// already exists under the key.
	IfAbsent bool
	// IfMatch, when not empty, makes the Put fail with ErrPreconditionFailed
	// unless the current object exists and its ETag equals IfMatch. A
	// missing key also fails with ErrPreconditionFailed, never with
	// ErrNotFound (S3 servers answer 404 NoSuchKey there; the
	// implementations normalize it). IfAbsent and IfMatch are mutually
	// exclusive.
	IfMatch string
}

// ConditionalDeleter is implemented by backends that can delete an object
// only while its ETag matches. It is an optional capability, found by type
// assertion; the decorators of this package and of backendtest implement
// it whatever they wrap and fail with an error matching
// errors.ErrUnsupported when the wrapped Backend lacks it. Implementing it
// is a claim about the code, not about the server behind it: an S3 server
// may accept the condition and delete anyway. ProbeConditionalDelete tells
// whether a Backend really enforces it.
type ConditionalDeleter interface {
	// DeleteIfMatch deletes key only when it exists and its ETag equals etag.
	// A different ETag fails with an error matching ErrPreconditionFailed, a missing key with one matching ErrNotFound; either way nothing changes.
	// An empty etag fails with ErrInvalidArgument. The check and the
	// removal are one atomic step with respect to Puts and Deletes of the
	// key.
	DeleteIfMatch(ctx context.Context, key, etag string) error
}

// DefaultContentType is the content type recorded when PutOptions.ContentType
// is empty.
const DefaultContentType = "application/octet-stream"

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object's key, as passed to Put.
	Key string
	// Size is the length of the content in bytes.
	Size int64
	// ETag identifies this version of the object's content and is what
	// PutOptions.IfMatch compares against. A Put that stores different
	// bytes always gets a new ETag; a Put of identical bytes may keep the
	// old one (S3's single-part ETag is the MD5 of the content) or get a
	// new one (filebackend and membackend change it on every Put). Opaque:
	// compare it, do not parse it.
	ETag string
	// ContentType is the MIME type stored with the object. List may leave
	// it empty: S3 listings do not carry it.
	ContentType string
	// Modified is when the object was last written. Backends may round it
	// (S3 reports whole seconds); the ObjectInfo returned by Put may leave
	// it zero.
	Modified time.Time
}
