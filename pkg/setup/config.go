package setup

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// Backend kinds, the values of Config.Backend and ARTIFACTSTORE_BACKEND.
const (
	// BackendFile stores objects in a local directory (filebackend): one
	// host, any number of processes.
	BackendFile = "file"
	// BackendS3 stores objects in a bucket of an S3-compatible server
	// (s3backend): any number of hosts.
	BackendS3 = "s3"
	// BackendMemory keeps objects in the memory of the process
	// (membackend): tests, examples, one process.
	BackendMemory = "memory"
)

// Lock kinds, the values of Config.Lock and ARTIFACTSTORE_LOCK.
const (
	// LockFile serializes writers with lock files in a directory
	// (filelock): one host, many processes.
	LockFile = "file"
	// LockRedis serializes writers with Redlock over one or several
	// independent Redis masters (redislock): many hosts.
	LockRedis = "redis"
	// LockMemory serializes the writers of one process (memlock).
	LockMemory = "memory"
	// LockNone disables locking: writes run optimistically, made safe by
	// the conditional commit alone (store.Config.DisableLocking).
	LockNone = "none"
)

// Environment variables read by FromEnv itself. The S3, Redis and store
// settings have their own variables, read by their packages' loaders (see
// FromEnv).
const (
	EnvBackend             = "ARTIFACTSTORE_BACKEND"
	EnvDir                 = "ARTIFACTSTORE_DIR"
	EnvFileNoSync          = "ARTIFACTSTORE_FILE_NO_SYNC"
	EnvLock                = "ARTIFACTSTORE_LOCK"
	EnvLockDir             = "ARTIFACTSTORE_LOCK_DIR"
	EnvLockExpiry          = "ARTIFACTSTORE_LOCK_EXPIRY"
	EnvLockRetryInterval   = "ARTIFACTSTORE_LOCK_RETRY_INTERVAL"
	EnvLockRefreshInterval = "ARTIFACTSTORE_LOCK_REFRESH_INTERVAL"
	EnvLockKeyPrefix       = "ARTIFACTSTORE_LOCK_KEY_PREFIX"
	// EnvLockUnavailableTimeout sets LockConfig.UnavailableTimeout.
	EnvLockUnavailableTimeout = "ARTIFACTSTORE_LOCK_UNAVAILABLE_TIMEOUT"
)

// DefaultLockSubdir is where the file locks of the file backend live when
// Config.LockDir is empty: a subdirectory of Config.FileDir that the file
// backend does not list (its own entries end in ".obj" or ".d").
const DefaultLockSubdir = "locks"

// Config says which backend and which lock a program uses, and how the
// store runs over them. The zero value of each field means its default,
// stated in its comment; with everything zero but FileDir it is the
// embedded default: a local directory with file locks, no server needed.
//
// Config is printed with its credentials redacted by String, every fmt
// verb and LogValue.
type Config struct {
	// Backend is BackendFile, BackendS3 or BackendMemory. Default
	// BackendFile. Env ARTIFACTSTORE_BACKEND.
	Backend string
	// FileDir is the root directory of the file backend, created when
	// missing. Required with BackendFile; no default. Env
	// ARTIFACTSTORE_DIR.
	FileDir string
	// FileNoSync skips the file backend's fsyncs (faster; a machine crash
	// may lose recent writes, a process crash loses nothing). Default
	// false. Env ARTIFACTSTORE_FILE_NO_SYNC.
	FileNoSync bool
	// S3 configures the S3 backend (used with BackendS3). Its zero fields
	// take s3backend's defaults; Endpoint and Bucket are required.
	// Credentials come from AccessKey/SecretKey when set, otherwise from
	// minio-go's chain (AWS_* variables, the shared credentials file and
	// Profile, IAM and web identity); SSE, SSEKMSKeyID, StorageClass,
	// BucketLookup, ConnectTimeout (10s) and RequestTimeout (10s) tune the
	// transport. Env ARTIFACTSTORE_S3_* (s3backend.ConfigFromEnv: ENDPOINT,
	// BUCKET, PREFIX, REGION, CREDENTIALS, PROFILE, CREDENTIALS_FILE,
	// ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, SSE, SSE_KMS_KEY_ID,
	// STORAGE_CLASS, BUCKET_LOOKUP, CONNECT_TIMEOUT, REQUEST_TIMEOUT,
	// USE_SSL, INSECURE_SKIP_VERIFY, CREATE_BUCKET, PART_SIZE,
	// MAX_ATTEMPTS).
	S3 s3backend.Config

	// Lock is LockFile, LockRedis, LockMemory or LockNone. Default: LockNone
	// when Store.DisableLocking is set, otherwise LockFile for BackendFile,
	// LockRedis for BackendS3 and LockMemory for BackendMemory. Env
	// ARTIFACTSTORE_LOCK.
	Lock string
	// LockDir is the directory of the file locks (LockFile). Every process
	// sharing the artifacts must use the same one, on the same host.
	// Default, with BackendFile, FileDir/locks; required otherwise. Env
	// ARTIFACTSTORE_LOCK_DIR.
	LockDir string
	// Redis says how to reach the Redis masters (LockRedis): host:port,
	// redis:// or rediss:// (TLS) addresses, ACL user, password, DB, TLS
	// files, timeouts (dial 2s, read 3s, write 3s) and pool size. Its zero
	// fields take redislock's defaults (one master at 127.0.0.1:6379). Env
	// ARTIFACTSTORE_REDIS_* (redislock.ConfigFromEnv: ADDRS, USERNAME,
	// PASSWORD, DB, TLS, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
	// TLS_SERVER_NAME, TLS_INSECURE_SKIP_VERIFY, DIAL_TIMEOUT,
	// READ_TIMEOUT, WRITE_TIMEOUT, POOL_SIZE).
	Redis redislock.Config
	// LockConfig holds the settings every locker shares: expiry, retry
	// interval, refresh, key prefix. Its zero fields take package lock's
	// defaults (expiry 30s, retry interval 100ms, refresh every expiry/3),
	// except Timeout, which defaults to the store's LockTimeout so that
	// ARTIFACTSTORE_LOCK_TIMEOUT alone bounds the wait, and, with Redis
	// locks, UnavailableTimeout, which defaults to Redis.DialTimeout (2s)
	// so that an unreachable lock service fails about as fast as a dial.
	// Env ARTIFACTSTORE_LOCK_EXPIRY, ARTIFACTSTORE_LOCK_RETRY_INTERVAL,
	// ARTIFACTSTORE_LOCK_REFRESH_INTERVAL,
	// ARTIFACTSTORE_LOCK_UNAVAILABLE_TIMEOUT (Go durations, "30s") and
	// ARTIFACTSTORE_LOCK_KEY_PREFIX.
	LockConfig lock.Config

	// Store configures the store itself: versioning, compression, lock
	// timeout, retries and the rest (see store.Config for every default).
	// Env: the variables of store.ConfigFromEnv.
	Store store.Config

	// Logger is given to the store, the S3 backend and the locker where
	// their own Logger is nil. Default: discard.
	Logger *slog.Logger

	// WrapBackend, when not nil, decorates the backend before the store
	// gets it: instrumentation, fault injection. Default nil.
	WrapBackend func(backend.Backend) backend.Backend
	// WrapLocker, when not nil, decorates the locker before the store gets
	// it (not called with LockNone). A decorator should keep the optional
	// interfaces (lock.Inspector, lock.ForceUnlocker) of what it wraps, as
	// telemetry.Locker does, or the store's IsLocked and ForceUnlock answer
	// ErrUnsupported. Metrics and spans need no wrapper: set
	// Store.Telemetry. Default nil.
	WrapLocker func(lock.Locker) lock.Locker
}

// WithDefaults returns c with the defaults of Backend, Lock, LockDir,
// LockConfig.Timeout and (with Redis locks) LockConfig.UnavailableTimeout
// applied, and Store.DisableLocking set for LockNone.
// The sub-packages' configurations keep their zero fields: their
// constructors apply their own defaults.
func (c Config) WithDefaults() Config {
	if c.Backend == "" {
		c.Backend = BackendFile
	}
	if c.Lock == "" {
		switch {
		case c.Store.DisableLocking:
			c.Lock = LockNone
		case c.Backend == BackendS3:
			c.Lock = LockRedis
		case c.Backend == BackendMemory:
			c.Lock = LockMemory
		default:
			c.Lock = LockFile
		}
	}
	if c.Lock == LockNone {
		c.Store.DisableLocking = true
	}
	if c.LockDir == "" && c.Lock == LockFile && c.Backend == BackendFile && c.FileDir != "" {
		c.LockDir = filepath.Join(c.FileDir, DefaultLockSubdir)
	}
	if c.LockConfig.Timeout == 0 {
		c.LockConfig.Timeout = c.Store.WithDefaults().LockTimeout
	}
	if c.LockConfig.UnavailableTimeout == 0 && c.Lock == LockRedis {
		c.LockConfig.UnavailableTimeout = c.Redis.WithDefaults().DialTimeout
	}
	return c
}

// Validate reports every invalid field of c after defaults; the error
// matches store.ErrInvalidArgument.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("setup config: "+format, args...))
	}
	switch c.Backend {
	case BackendFile:
		if c.FileDir == "" {
			bad("the file backend needs its directory: set %s", EnvDir)
		}
	case BackendS3:
		if err := c.S3.Validate(); err != nil {
			bad("S3: %w", err)
		}
	case BackendMemory:
	default:
		bad("Backend %q (%s) is not %q, %q or %q", c.Backend, EnvBackend, BackendFile, BackendS3, BackendMemory)
	}
	switch c.Lock {
	case LockFile:
		// Without FileDir the file backend's default LockDir is unknown:
		// that error is reported once, above.
		if c.LockDir == "" && (c.Backend != BackendFile || c.FileDir != "") {
			bad("file locks with the %s backend need their directory: set %s", c.Backend, EnvLockDir)
		}
	case LockRedis:
		if err := c.Redis.Validate(); err != nil {
			bad("Redis: %w", err)
		}
	case LockMemory, LockNone:
	default:
		bad("Lock %q (%s) is not %q, %q, %q or %q", c.Lock, EnvLock, LockFile, LockRedis, LockMemory, LockNone)
	}
	if c.Lock != LockNone {
		if err := c.LockConfig.Validate(); err != nil {
			bad("LockConfig: %w", err)
		}
	}
	if c.Store.DisableLocking && c.Lock != LockNone {
		bad("Store.DisableLocking contradicts Lock %q", c.Lock)
	}
	if err := c.Store.Validate(); err != nil {
		bad("Store: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", store.ErrInvalidArgument, err)
	}
	return nil
}

// FromEnv builds a Config from the environment, read through lookup
// (os.LookupEnv when nil), and validates it:
//
//   - ARTIFACTSTORE_BACKEND, ARTIFACTSTORE_DIR, ARTIFACTSTORE_FILE_NO_SYNC,
//     ARTIFACTSTORE_LOCK, ARTIFACTSTORE_LOCK_DIR,
//     ARTIFACTSTORE_LOCK_EXPIRY, ARTIFACTSTORE_LOCK_RETRY_INTERVAL,
//     ARTIFACTSTORE_LOCK_REFRESH_INTERVAL,
//     ARTIFACTSTORE_LOCK_UNAVAILABLE_TIMEOUT and
//     ARTIFACTSTORE_LOCK_KEY_PREFIX are read here;
//   - the store's variables by store.ConfigFromEnv(lookup);
//   - with the S3 backend, ARTIFACTSTORE_S3_* by s3backend.ConfigFromEnv(lookup);
//   - with Redis locks, ARTIFACTSTORE_REDIS_* by redislock.ConfigFromEnv(lookup).
//
// Unset or empty variables leave their field at its default. A malformed
// value is an error naming the variable, matching store.ErrInvalidArgument.
//
// With a nil lookup, or os.LookupEnv, FromEnv reads the process
// environment and first checks it with CheckEnv: an unknown
// ARTIFACTSTORE_* variable (a typo such as ARTIFACTSTORE_VERSIONNG) is an
// *UnknownVariableError, matching store.ErrInvalidArgument, that suggests
// the registered name closest to it. Another lookup cannot list its
// variables, so a caller that passes its own checks them with CheckEnv.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	lookup, err := processEnv(lookup)
	if err != nil {
		return Config{}, err
	}
	get := func(name string) string {
		v, _ := lookup(name)
		return v
	}
	var (
		c    Config
		errs []error
	)
	c.Backend = get(EnvBackend)
	c.FileDir = get(EnvDir)
	c.Lock = get(EnvLock)
	c.LockDir = get(EnvLockDir)
	c.LockConfig.KeyPrefix = get(EnvLockKeyPrefix)
	if v := get(EnvFileNoSync); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a boolean", EnvFileNoSync, v))
		}
		c.FileNoSync = b
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{EnvLockExpiry, &c.LockConfig.Expiry},
		{EnvLockRetryInterval, &c.LockConfig.RetryInterval},
		{EnvLockRefreshInterval, &c.LockConfig.RefreshInterval},
		{EnvLockUnavailableTimeout, &c.LockConfig.UnavailableTimeout},
	} {
		if v := get(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a duration", d.name, v))
				continue
			}
			*d.dst = dur
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("%w: setup: %w", store.ErrInvalidArgument, err)
	}

	sc, err := store.ConfigFromEnv(lookup)
	if err != nil {
		return Config{}, fmt.Errorf("setup: %w", err)
	}
	c.Store = sc

	d := c.WithDefaults()
	if d.Backend == BackendS3 {
		s3c, err := s3backend.ConfigFromEnv(lookup)
		if err != nil {
			return Config{}, fmt.Errorf("%w: setup: %w", store.ErrInvalidArgument, err)
		}
		c.S3 = s3c
	}
	if d.Lock == LockRedis {
		rc, err := redislock.ConfigFromEnv(lookup)
		if err != nil {
			return Config{}, fmt.Errorf("%w: setup: %w", store.ErrInvalidArgument, err)
		}
		c.Redis = rc
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// String describes c with every credential redacted (the S3 secret key and
// session token, the S3 access key, the Redis password). Only the settings
// of the chosen backend and lock are shown.
func (c Config) String() string {
	d := c.WithDefaults()
	s := fmt.Sprintf("setup.Config{Backend:%s", d.Backend)
	switch d.Backend {
	case BackendFile:
		s += fmt.Sprintf(" FileDir:%q FileNoSync:%t", d.FileDir, d.FileNoSync)
	case BackendS3:
		s += " S3:" + d.S3.String()
	}
	s += " Lock:" + d.Lock
	switch d.Lock {
	case LockFile:
		s += fmt.Sprintf(" LockDir:%q", d.LockDir)
	case LockRedis:
		s += " Redis:" + d.Redis.String()
	}
	if d.Lock != LockNone {
		lc := d.LockConfig.WithDefaults()
		s += fmt.Sprintf(" LockConfig:{Timeout:%v UnavailableTimeout:%v RetryInterval:%v Expiry:%v RefreshInterval:%v KeyPrefix:%q}",
			lc.Timeout, lc.UnavailableTimeout, lc.RetryInterval, lc.Expiry, lc.RefreshInterval, lc.KeyPrefix)
	}
	st := d.Store.WithDefaults()
	s += fmt.Sprintf(" Store:{Versioning:%t MaxVersions:%d Compression:%t DisableVerify:%t LockTimeout:%v WriterID:%q}}",
		st.Versioning, st.MaxVersions, st.Compression, st.DisableVerify, st.LockTimeout, st.WriterID)
	return s
}

// Format prints String for every verb, so that no verb (%v, %+v, %#v, %s,
// %q) prints a credential.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// LogValue is the slog form of c, credentials redacted (the S3 and Redis
// configurations log through their own LogValue).
func (c Config) LogValue() slog.Value {
	d := c.WithDefaults()
	attrs := []slog.Attr{slog.String("backend", d.Backend)}
	switch d.Backend {
	case BackendFile:
		attrs = append(attrs, slog.String("dir", d.FileDir))
	case BackendS3:
		attrs = append(attrs, slog.Any("s3", d.S3))
	}
	attrs = append(attrs, slog.String("lock", d.Lock))
	switch d.Lock {
	case LockFile:
		attrs = append(attrs, slog.String("lock_dir", d.LockDir))
	case LockRedis:
		attrs = append(attrs, slog.Any("redis", d.Redis))
	}
	if d.Lock != LockNone {
		lc := d.LockConfig.WithDefaults()
		attrs = append(attrs, slog.Duration("lock_expiry", lc.Expiry), slog.Duration("lock_timeout", lc.Timeout))
	}
	st := d.Store.WithDefaults()
	attrs = append(attrs, slog.Bool("versioning", st.Versioning), slog.Bool("compression", st.Compression))
	return slog.GroupValue(attrs...)
}
