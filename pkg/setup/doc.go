// Package setup wires an artifact store from one configuration: which
// backend (a local directory, an S3-compatible bucket, memory), which lock
// (file locks, Redis/Redlock, in-process, none) and the store's own
// settings. Programs (cmd/demo, the artifacts CLI) build a Config from
// flags or from ARTIFACTSTORE_* environment variables with FromEnv, then
// call Open and use Opened.Store; libraries that embed the store can do the
// same or call store.New themselves.
//
// The embedded default needs no server: Config{FileDir: dir} stores the
// artifacts under dir and serializes writers (any number of processes on
// the host) with lock files in dir/locks. For many hosts, use
// Backend: BackendS3 with S3 set (Lock then defaults to LockRedis, with
// Redis listing one or several independent masters).
//
// # Configuration
//
// Every field's comment states its default and its environment variable.
// FromEnv reads ARTIFACTSTORE_BACKEND, ARTIFACTSTORE_DIR,
// ARTIFACTSTORE_FILE_NO_SYNC, ARTIFACTSTORE_LOCK, ARTIFACTSTORE_LOCK_DIR and
// ARTIFACTSTORE_LOCK_{EXPIRY,RETRY_INTERVAL,REFRESH_INTERVAL,
// UNAVAILABLE_TIMEOUT,KEY_PREFIX} itself and delegates the rest to the loaders of the packages that own the
// settings: store.ConfigFromEnv, s3backend.ConfigFromEnv and
// redislock.ConfigFromEnv. Credentials (S3 keys, the Redis password) are
// never printed or logged: Config's String, Format and LogValue redact
// them.
//
// Variables lists every ARTIFACTSTORE_* variable the project reads (these
// loaders, the artifacts CLI, the demo and the tests), with its meaning,
// default and an example: the one registry of names, from which the
// README's table is generated and against which a test checks what
// FromEnv reads. Adding a variable is adding its line there. CheckEnv
// refuses an ARTIFACTSTORE_* variable that is not registered (names
// starting with ARTIFACTSTORE_TEST_ are left to tests) with an
// *UnknownVariableError naming the closest registered one ("did you mean
// ARTIFACTSTORE_VERSIONING?"); FromEnv(nil) and FromEnv(os.LookupEnv)
// check the process environment with it before reading.
//
// # Credentials and transport
//
// S3 credentials are the configured keys when ARTIFACTSTORE_S3_ACCESS_KEY
// is set, and otherwise minio-go's chain: AWS_ACCESS_KEY_ID and friends,
// the shared credentials file (ARTIFACTSTORE_S3_CREDENTIALS_FILE,
// ARTIFACTSTORE_S3_PROFILE), then IAM (web identity as on EKS, ECS, EC2
// instance metadata). Server-side encryption, storage class, bucket
// lookup style and the connect and request timeouts are s3backend.Config
// fields. Redis masters may be given as redis:// or rediss:// URLs, with
// TLS files, timeouts and pool size in redislock.Config.
//
// # Failing fast
//
// With Redis locks, a write fails within about Redis.DialTimeout (2s)
// when the lock service cannot be reached, with an error matching
// store.ErrLockTimeout and lock.ErrUnavailable, and at once when a master
// refuses the password or ACL, with store.ErrPermissionDenied; reads take
// no lock and keep working. A hung S3 server fails each request after
// S3.RequestTimeout (10s) with a transient error, which the store retries.
//
// # Errors
//
// An invalid Config, a malformed environment variable, or an unknown
// ARTIFACTSTORE_* variable (*UnknownVariableError) gives an error matching
// store.ErrInvalidArgument. Open's other errors are those of the backend,
// locker and store constructors, wrapped. Open writes nothing (unless
// S3.CreateBucket, or a file backend's directory is missing and made): a
// server that ignores conditional writes is refused at the store's first
// write (backend.ErrUnfencedWrites; see "Read-only use" in package store).
//
// # Concurrency
//
// Open and FromEnv are safe to call concurrently. An Opened's Store is safe
// for concurrent use; Close must be called once the store is no longer
// used, and may be called more than once.
package setup
