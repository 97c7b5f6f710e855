// Package s3backend implements backend.Backend on any S3-compatible server
// (AWS S3, MinIO, versitygw ...) through minio-go v7.
//
// A Backend stores objects in one bucket, under an optional key prefix
// (Config.Prefix) so that several stores can share a bucket. It is
// configured by a Config struct whose zero fields mean their documented
// defaults, which ConfigFromEnv loads from ARTIFACTSTORE_S3_* variables and
// which prints and logs with its credentials redacted:
//
//	cfg, err := s3backend.ConfigFromEnv(os.LookupEnv)
//	...
//	b, err := s3backend.New(ctx, cfg)
//	...
//	defer b.Close()
//	if err := b.Probe(ctx); err != nil { // the server must enforce conditional PUTs
//		...
//	}
//
// Each call costs one request where S3 allows it: Get is one GET (the
// object's info comes from the response headers, and a missing key is
// reported by Get, not by the first Read), Stat one HEAD, Delete one
// DELETE, a Put up to Config.PartSize one PUT. Larger Puts are multipart
// uploads of PartSize parts.
//
// # Credentials and transport
//
// Config.Credentials picks the signing keys: CredentialsStatic (AccessKey,
// SecretKey, SessionToken), CredentialsChain (minio-go's providers in turn:
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
// MINIO_ACCESS_KEY/MINIO_SECRET_KEY, the shared credentials file
// (CredentialsFile, Profile), then IAM: web identity as EKS IRSA sets it
// up, the ECS container endpoint, EC2 instance metadata; temporary
// credentials are refreshed) or CredentialsAnonymous. The default is static
// when AccessKey is set and the chain otherwise; a chain that finds nothing
// sends unsigned requests, after asking the instance metadata service on
// each request, so set CredentialsAnonymous for a public bucket.
//
// SSE (SSES3 "AES256" or SSEKMS "aws:kms" with SSEKMSKeyID) and
// StorageClass go with every upload, multipart ones included; reads need
// nothing. BucketLookup chooses path-style or virtual-host-style URLs.
// ConnectTimeout (10s) bounds a connection and its TLS handshake;
// RequestTimeout (10s) bounds the wait for the answer once a request is
// sent, so that a server that accepts connections and never answers fails
// the call with backend.ErrTransient (a conditional PUT, which first waits
// up to half of it for "100 Continue", after 1.5 x RequestTimeout). The
// time to send or receive a body is not bounded: it is the object's.
//
// # Memory and size limits
//
// Put always passes a known size through to minio-go. A Put holds at most
// one PartSize buffer (16 MiB by default): none for a seekable reader of
// known size (an *os.File, a *bytes.Reader), which is read in place, one
// for any other reader larger than PartSize and for a stream of unknown
// size (backend.SizeUnknown), whose buffer grows from 64 KiB so that small
// streams stay cheap. A stream of unknown size that ends within PartSize is
// stored by one PUT.
//
// A multipart upload has at most 10,000 parts (MaxParts), so a stream of
// unknown size may hold at most PartSize x 10,000 bytes: 156.25 GiB with
// the default part size, 5 MiB x 10,000 = 48.8 GiB with the smallest. A
// longer stream fails with backend.ErrTooLarge when its byte number
// PartSize x 10,000 + 1 arrives (a counting reader watches for it); it is
// never stored truncated. Raise PartSize to store larger streams of unknown
// size, or pass the size.
//
// # Conditional writes
//
// PutOptions.IfAbsent is sent as "If-None-Match: *", PutOptions.IfMatch as
// "If-Match: <etag>". S3 servers, and minio-go, apply these conditions only
// to single PUT requests, not to multipart uploads, so a conditional Put is
// always one PUT: up to MaxSinglePutSize (5 GiB, S3's limit for one PUT)
// when its size is known, and up to PartSize, buffered in memory, when it
// is not. A larger conditional Put fails before any request with an error
// matching both backend.ErrTooLarge and backend.ErrInvalidArgument. The
// store's manifests, the only objects it writes conditionally, are a few
// KiB.
//
// Not every S3-compatible server enforces the conditions; one that ignores
// them would let a writer whose lock expired overwrite a newer commit.
// Probe proves that the server enforces both, one request at a time and
// under contention (backend.ProbeConditionalPut on scratch keys), and
// fails with backend.ErrUnfencedWrites otherwise.
//
// # Conditional delete
//
// Backend implements backend.ConditionalDeleter: DeleteIfMatch sends one
// DELETE with "If-Match: <etag>". minio-go has no option for a condition
// on DELETE, so the request is presigned by minio-go (PresignHeader, with
// If-Match among the signed headers, valid 5 minutes) and sent through the
// Backend's own transport; without credentials nothing can be presigned
// and DeleteIfMatch fails with errors.ErrUnsupported. 204 is success, 412
// backend.ErrPreconditionFailed, 404 backend.ErrNotFound, and the other
// answers map as below.
//
// Whether the server enforces the condition is the server's business. AWS
// S3 documents it (since 2025: 412 on a stale ETag, 404 NoSuchKey on a
// missing key; not tested here). Other servers, community MinIO among
// them, accept the header and delete anyway, and versitygw v1.8.0 falls
// short (see Server differences). backend.ProbeConditionalDelete tells;
// the store must ask it before relying on DeleteIfMatch, and the
// conformance test runs the conditional-delete subtests only where it
// says true.
//
// # Errors
//
// Errors match the sentinels of package backend with errors.Is, and the
// minio-go error stays in the chain, so errors.As(err, &minio.ErrorResponse{})
// (with a value target: var er minio.ErrorResponse; errors.As(err, &er))
// reaches the server's code, message and request id:
//
//   - NoSuchKey, NoSuchBucket, other 404s: backend.ErrNotFound, except that
//     NoSuchKey answering a Put is the server's answer to If-Match on a
//     missing key, hence backend.ErrPreconditionFailed.
//   - PreconditionFailed (412): backend.ErrPreconditionFailed.
//   - ConditionalRequestConflict (409: a concurrent conditional write on
//     the same key was in progress, the condition was not evaluated and
//     nothing was written): backend.ErrTransient. Sent again, the request
//     gets the definitive answer (success or PreconditionFailed); the
//     retry decorator of package backend does not send a conditional
//     write again, since it cannot tell this error from a lost answer,
//     so the caller reads the object back (or tries again itself).
//   - AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, expired or
//     invalid tokens, 401/403: backend.ErrPermissionDenied. A Put refused
//     with a plain 403 AccessDenied is first sent once more (from a body
//     that can rewind, conditional or not): MinIO gives that answer, having
//     written nothing, to a Put racing the removal of its emptied parent
//     directory by a concurrent DELETE.
//   - ExistingObjectIsDirectory (409, versitygw): backend.ErrTransient;
//     versitygw gives it, having written nothing, to a Put racing the
//     removal of its emptied parent directory (a key that really names a
//     directory fails again).
//   - XMinioStorageFull, bucket quotas (MinIO, versitygw QuotaExceeded),
//     InsufficientStorage/507: backend.ErrStorageFull.
//   - EntityTooLarge, 413: backend.ErrTooLarge.
//   - SlowDown and other throttling, InternalError, ServiceUnavailable,
//     RequestTimeout, 408/429/5xx, a broken connection, a body cut short,
//     no answer within Config.RequestTimeout: backend.ErrTransient.
//   - A failure of the caller's reader is returned as it is (wrapped), and
//     a reader delivering fewer or more bytes than the size passed to Put
//     gives backend.ErrSizeMismatch; neither is transient.
//   - A cancelled or expired ctx gives an error matching ctx.Err().
//
// Keys are checked with backend.ValidateKey before any request
// (backend.ErrInvalidKey). minio-go's own retries are off by default
// (Config.MaxAttempts): retrying transient errors is the job of package
// backend's retry decorator.
//
// # Server differences
//
// The tests run against versitygw (posix backend) or MinIO. Seen on
// versitygw v1.8.0, and harmless to the store's layout:
//
//   - A key and a key below it ("a" and "a/b") cannot both exist: the
//     second Put fails with 409 ObjectParentIsFile or
//     ExistingObjectIsDirectory, a permanent error matching no sentinel.
//   - A failed condition is checked before the body is read; for a body of
//     several MiB the server then resets the connection, and the Put fails
//     with backend.ErrTransient instead of backend.ErrPreconditionFailed
//     (nothing is written either way). Manifests are small enough not to
//     hit this.
//   - A HEAD (Stat) with an unknown access key is answered 404 without a
//     body, so it reads as backend.ErrNotFound; the other calls get
//     backend.ErrPermissionDenied.
//   - If-Match on DELETE is evaluated, but DeleteIfMatch does not hold
//     there, and backend.ProbeConditionalDelete is false: a stale ETag is
//     answered 412 and the object kept, the current ETag deletes, but a
//     missing key is answered 204 as for an unconditional DELETE (so 16
//     concurrent DeleteIfMatch calls of one version all succeed), and the
//     check is not made under the lock that serializes conditional PUTs of
//     the key (posix backend: DeleteObject reads the ETag, then removes the
//     file, without the object publish lock): in about one round of a
//     hundred, a DeleteIfMatch and an IfMatch Put of the same version
//     both succeed.
//     Conditional PUTs themselves are atomic (32 concurrent IfAbsent or
//     IfMatch Puts have exactly one winner).
//
// Seen on MinIO (source of 2026-02-12, testenv.MinIOModule, which
// scripts/test.sh builds):
//
//   - A key and a key below it can both be stored, but a listing leaves
//     the one below out ("p/q" next to "p"; upstream calls it intended,
//     minio/minio#18148). The backend contract says callers never store
//     such pairs.
//   - A List prefix whose last segment is "." or ".." is refused with 400
//     XMinioInvalidResourceName; List then lists the parent folder and
//     filters (see List).
//   - If-Match on DELETE is ignored: DeleteIfMatch deletes whatever the
//     ETag, and backend.ProbeConditionalDelete is false.
//   - Releases before 2025-10-24 (RELEASE.2025-09-07 among them) drop the
//     keep-alive connection after a 412 without saying so
//     (minio/minio#21633), and skip the conditions when they lack read
//     quorum (#21603). Every conditional write is therefore sent on a
//     connection that is closed after its answer (see conditionalCloser
//     in s3backend.go); the second bug needs a newer server.
//
// # Concurrency
//
// A Backend is safe for concurrent use by many goroutines; it holds no lock
// of its own, only minio-go's client and its connection pool. A Put is
// atomic on S3: readers see the old object or the whole new one, and a
// failed or cancelled Put leaves the previous object untouched (a failed
// multipart upload is aborted). Conditional Puts and DeleteIfMatch are
// the only synchronization, and they hold across processes and hosts as
// far as the server enforces them (see Probe and
// backend.ProbeConditionalDelete).
package s3backend
