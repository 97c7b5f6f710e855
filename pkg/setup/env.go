package setup

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/agnivade/levenshtein"

	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/store"
)

// Who reads a variable: the value of Variable.ReadBy.
const (
	ReadBySetup = "setup"         // FromEnv itself
	ReadByStore = "store"         // store.ConfigFromEnv, through FromEnv
	ReadByS3    = "s3backend"     // s3backend.ConfigFromEnv, through FromEnv with the S3 backend
	ReadByRedis = "redislock"     // redislock.ConfigFromEnv, through FromEnv with Redis locks
	ReadByCLI   = "artifacts CLI" // the command-line tool only
	ReadByDemo  = "demo"          // cmd/demo only
	ReadByTests = "tests"         // the project's tests only
)

// TestEnvPrefix starts the names of variables that only tests read; CheckEnv
// accepts any of them without registration.
const TestEnvPrefix = store.EnvPrefix + "TEST_"

// Variable documents one ARTIFACTSTORE_* environment variable: the README's
// configuration table is Variables, one row each.
type Variable struct {
	// Name is the full name, ARTIFACTSTORE_ included.
	Name string
	// ReadBy says which code reads it (ReadBySetup, ReadByStore, ...).
	ReadBy string
	// Meaning says what it sets, in a few words.
	Meaning string
	// Default is the value used when it is unset or empty; "" when it has
	// none (required, or off).
	Default string
	// Example is a valid value.
	Example string
}

// Variables returns every ARTIFACTSTORE_* environment variable the
// project's code reads, in documentation order: the registry CheckEnv
// checks names against, and that the README's table shows. Adding a
// variable is adding its line here (a test fails until the README shows it
// and until every variable FromEnv reads is listed).
func Variables() []Variable {
	const p = store.EnvPrefix
	return []Variable{
		// Package setup.
		{EnvBackend, ReadBySetup, "storage kind: `file`, `s3` or `memory`", "`file`", "`s3`"},
		{EnvDir, ReadBySetup, "root directory of the file backend (created by put)", "none; required with `file`", "`/var/lib/artifacts`"},
		{EnvFileNoSync, ReadBySetup, "skip the file backend's fsyncs (a machine crash may lose recent writes)", "`false`", "`true`"},
		{EnvLock, ReadBySetup, "lock kind: `file`, `redis`, `memory` or `none`", "`file` with the file backend, `redis` with s3, `memory` with memory", "`redis`"},
		{EnvLockDir, ReadBySetup, "directory of the file locks, shared by every process on the host", "`<DIR>/locks` with the file backend", "`/run/artifacts/locks`"},
		{EnvLockExpiry, ReadBySetup, "lease of a held lock, refreshed while held", "`30s`", "`1m`"},
		{EnvLockRetryInterval, ReadBySetup, "first delay between lock attempts (exponential, full jitter, up to 2s)", "`100ms`", "`50ms`"},
		{EnvLockRefreshInterval, ReadBySetup, "how often a held lock's lease is renewed", "expiry / 3", "`10s`"},
		{EnvLockKeyPrefix, ReadBySetup, "namespace of the lock keys", "`artifactstore:lock:`", "`team-a:lock:`"},
		{EnvLockUnavailableTimeout, ReadBySetup, "how long an unreachable lock service is waited for before a write fails", "the Redis dial timeout (`2s`)", "`5s`"},

		// Package store (store.ConfigFromEnv).
		{p + "DISABLE_LOCKING", ReadByStore, "no locks: optimistic writes made safe by the conditional commit (same as lock `none`)", "`false`", "`true`"},
		{p + "LOCK_TIMEOUT", ReadByStore, "how long a write waits for its artifact's lock", "`30s`", "`5s`"},
		{p + "VERSIONING", ReadByStore, "uploads add a version instead of replacing the content", "`false`", "`true`"},
		{p + "MAX_VERSIONS", ReadByStore, "versions kept per artifact with versioning (older ones deleted)", "`0` (all)", "`20`"},
		{p + "COMPRESSION", ReadByStore, "gzip uploads of COMPRESSION_MIN_SIZE bytes or more", "`false`", "`true`"},
		{p + "COMPRESSION_MIN_SIZE", ReadByStore, "smallest upload compressed, in bytes", "`1024`", "`65536`"},
		{p + "COMPRESSION_LEVEL", ReadByStore, "gzip level, 1 (fastest) to 9 (smallest)", "`1`", "`6`"},
		{p + "INLINE_MAX_BYTES", ReadByStore, "largest content stored inside its manifest (one request to write or read it); `-1`: never", "`8192`", "`4096`"},
		{p + "DISABLE_VERIFY", ReadByStore, "skip the SHA-256 check of downloads", "`false`", "`true`"},
		{p + "RETRY_MAX", ReadByStore, "retries of a failed backend call (negative: none)", "`3`", "`5`"},
		{p + "RETRY_INITIAL", ReadByStore, "first retry delay (exponential, full jitter)", "`100ms`", "`250ms`"},
		{p + "RETRY_MAX_DELAY", ReadByStore, "longest retry delay", "`5s`", "`10s`"},
		{p + "MAX_METADATA_BYTES", ReadByStore, "largest user metadata of a version, in bytes of JSON", "`16384`", "`65536`"},
		{p + "MAX_TAGS", ReadByStore, "most tags of an artifact", "`64`", "`128`"},
		{p + "MAX_CONFLICT_RETRIES", ReadByStore, "retries of a write that lost a race (without locks)", "`10`", "`20`"},
		{p + "CONFLICT_BACKOFF", ReadByStore, "ceiling of the delay before such a retry", "`10ms`", "`50ms`"},
		{p + "LIST_CONCURRENCY", ReadByStore, "manifests read at once by searches and bulk operations", "`32`", "`8`"},
		{p + "MANIFEST_CACHE_ENTRIES", ReadByStore, "decoded manifests kept in memory (about 1 KiB each)", "`1024`", "`4096`"},
		{p + "WRITER_ID", ReadByStore, "name recorded with every commit, for operators", "`<hostname>:<pid>`", "`ci-runner-3`"},
		{p + "ALLOW_UNFENCED_WRITES", ReadByStore, "accept a backend that ignores conditional writes (unsafe with several writers)", "`false`", "`true`"},
		{p + "RETENTION_PERIODS", ReadByStore, "retention per type, `TYPE=DURATION` pairs (cleanup deletes older versions)", "`diff=720h,log=168h,test=336h`", "`log=72h,diff=2160h`"},
		{p + "RETENTION_DEFAULT", ReadByStore, "retention of custom types", "none (kept forever)", "`720h`"},
		{p + "RETENTION_EXEMPT_TAG", ReadByStore, "tag of artifacts that never expire", "`retain`", "`keep`"},
		{p + "QUOTA_MAX_BYTES", ReadByStore, "most stored bytes; an upload past it fails (storage full)", "`0` (unlimited)", "`10737418240`"},
		{p + "QUOTA_WARN_RATIO", ReadByStore, "fraction of the quota past which uploads log a warning", "`0.8`", "`0.9`"},
		{p + "QUOTA_REFRESH_INTERVAL", ReadByStore, "how long the measured usage is trusted before uploads measure again", "`1s`", "`30s`"},

		// Package s3backend (s3backend.ConfigFromEnv), with the S3 backend.
		{s3backend.EnvEndpoint, ReadByS3, "S3 server, `host:port` or `http(s)://host:port`", "none; required with `s3`", "`https://s3.eu-west-1.amazonaws.com`"},
		{s3backend.EnvBucket, ReadByS3, "bucket of the artifacts", "none; required with `s3`", "`ci-artifacts`"},
		{s3backend.EnvPrefix, ReadByS3, "key prefix inside the bucket, so that stores can share it", "none (the bucket's root)", "`team-a/`"},
		{s3backend.EnvRegion, ReadByS3, "bucket region, for request signing", "`us-east-1`", "`eu-west-1`"},
		{s3backend.EnvCredentials, ReadByS3, "where credentials come from: `static` (the keys below), `chain` (AWS_* variables, shared file and profile, IAM/web identity) or `anonymous`", "`static` with an access key, else `chain`", "`chain`"},
		{s3backend.EnvProfile, ReadByS3, "profile of the shared credentials file (with `chain`)", "`AWS_PROFILE`, else `default`", "`ci`"},
		{s3backend.EnvCredentialsFile, ReadByS3, "shared credentials file (with `chain`)", "`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`", "`/etc/artifacts/aws-credentials`"},
		{s3backend.EnvAccessKey, ReadByS3, "access key id", "none (then `chain`)", "`AKIAIOSFODNN7EXAMPLE`"},
		{s3backend.EnvSecretKey, ReadByS3, "secret access key; never printed", "none", "`wJalrXUtnFEMI/K7MDENG`"},
		{s3backend.EnvSessionToken, ReadByS3, "session token of temporary credentials; never printed", "none", "`FwoGZXIvYXdzE...`"},
		{s3backend.EnvSSE, ReadByS3, "server-side encryption: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS)", "none (the bucket's default)", "`aws:kms`"},
		{s3backend.EnvSSEKMSKeyID, ReadByS3, "KMS key of SSE-KMS", "the account's default S3 key", "`alias/artifacts`"},
		{s3backend.EnvStorageClass, ReadByS3, "storage class of new objects", "the server's (`STANDARD`)", "`STANDARD_IA`"},
		{s3backend.EnvBucketLookup, ReadByS3, "bucket addressing: `auto`, `path` (host/bucket/key) or `dns` (bucket.host/key)", "`auto`", "`path`"},
		{s3backend.EnvConnectTimeout, ReadByS3, "bound of a TCP connect and TLS handshake", "`10s`", "`3s`"},
		{s3backend.EnvRequestTimeout, ReadByS3, "wait for the answer to a sent request (a hung server then fails with a retried transient error)", "`10s`", "`30s`"},
		{s3backend.EnvUseSSL, ReadByS3, "use HTTPS", "`true` for an `https://` endpoint, else `false`", "`true`"},
		{s3backend.EnvInsecureSkipVerify, ReadByS3, "accept any TLS certificate (tests only)", "`false`", "`true`"},
		{s3backend.EnvCreateBucket, ReadByS3, "create the bucket when missing", "`false`", "`true`"},
		{s3backend.EnvPartSize, ReadByS3, "multipart part size in bytes, 5 MiB to 5 GiB", "`16777216`", "`67108864`"},
		{s3backend.EnvMaxAttempts, ReadByS3, "HTTP attempts per request inside minio-go (the store retries itself)", "`1`", "`3`"},

		// Package redislock (redislock.ConfigFromEnv), with Redis locks.
		{redislock.EnvAddrs, ReadByRedis, "comma-separated independent Redis masters (quorum N/2+1), each `host:port`, `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS)", "`127.0.0.1:6379`", "`r1:6379,r2:6379,r3:6379`"},
		{redislock.EnvUsername, ReadByRedis, "Redis ACL user", "the default user", "`artifacts`"},
		{redislock.EnvPassword, ReadByRedis, "Redis password; never printed", "none (no AUTH)", "`s3cret`"},
		{redislock.EnvDB, ReadByRedis, "Redis database number", "`0`", "`2`"},
		{redislock.EnvTLS, ReadByRedis, "TLS to every master (`rediss://` turns it on for its master)", "`false`", "`true`"},
		{redislock.EnvTLSCAFile, ReadByRedis, "PEM CA certificates that sign the servers' certificates", "the system's roots", "`/etc/redis/ca.pem`"},
		{redislock.EnvTLSCertFile, ReadByRedis, "PEM client certificate", "none", "`/etc/redis/client.pem`"},
		{redislock.EnvTLSKeyFile, ReadByRedis, "PEM key of the client certificate", "none", "`/etc/redis/client-key.pem`"},
		{redislock.EnvTLSServerName, ReadByRedis, "name the servers' certificates must have", "each address's host", "`redis.internal`"},
		{redislock.EnvTLSInsecureSkipVerify, ReadByRedis, "accept any server certificate (tests only)", "`false`", "`true`"},
		{redislock.EnvDialTimeout, ReadByRedis, "bound of connecting to one master", "`2s`", "`500ms`"},
		{redislock.EnvReadTimeout, ReadByRedis, "bound of waiting for one reply", "`3s`", "`1s`"},
		{redislock.EnvWriteTimeout, ReadByRedis, "bound of sending one command", "`3s`", "`1s`"},
		{redislock.EnvPoolSize, ReadByRedis, "connections per master", "go-redis's (10 per CPU)", "`20`"},

		// Programs.
		{p + "CONFIG", ReadByCLI, "file of `KEY=VALUE` lines read below the environment (`--config`)", "none", "`/etc/artifacts.env`"},
		{p + "DEMO_WORKER", ReadByDemo, "set by the demo in its worker processes: the worker's number", "none (the parent)", "`2`"},
		{p + "DEMO_PLAN", ReadByDemo, "set by the demo in its workers: the JSON plan of the run", "none", "`{...}`"},
		{p + "DEMO_FAULT", ReadByDemo, "set by the demo in its workers: the fault to inject", "none", "`drop-blob`"},
		{p + "DEMO_VERBOSE", ReadByDemo, "log the store's warnings and errors to stderr", "none (quiet)", "`1`"},

		// Tests (variables starting with ARTIFACTSTORE_TEST_ need no line).
		{p + "IT_WORKER", ReadByTests, "set by the integration tests in their worker processes", "none", "`upload`"},
		{p + "SOAK", ReadByTests, "run the full reconcile soak (1,000 cycles)", "none (40 cycles)", "`1`"},
		{p + "FAULTHISTORY_SEED", ReadByTests, "seed of the fault-history test", "several fixed seeds", "`42`"},
		{p + "FAULTHISTORY_OPS", ReadByTests, "operations per seed of the fault-history test", "`200`", "`2000`"},
		{p + "S3BACKEND_RSS_CHILD", ReadByTests, "set by the s3backend memory benchmark in its child process", "none", "`1`"},
		{p + "S3BACKEND_RSS_KEY", ReadByTests, "object key of that benchmark's child", "none", "`rss/1`"},
		{p + "S3BACKEND_RSS_SIZE", ReadByTests, "object size of that benchmark's child", "none", "`1073741824`"},
	}
}

// UnknownVariableError reports an ARTIFACTSTORE_* variable that nothing
// reads: a typo, or a setting of another version. It matches
// store.ErrInvalidArgument.
type UnknownVariableError struct {
	// Name is the variable as set.
	Name string
	// Suggestion is the registered variable closest to Name, "" when none
	// is close.
	Suggestion string
}

func (e *UnknownVariableError) Error() string {
	if e.Suggestion != "" {
		return fmt.Sprintf("unknown variable %s (did you mean %s?)", e.Name, e.Suggestion)
	}
	return fmt.Sprintf("unknown variable %s (see the table of variables in the README)", e.Name)
}

// Is makes the error match store.ErrInvalidArgument.
func (e *UnknownVariableError) Is(target error) bool { return target == store.ErrInvalidArgument }

// CheckEnv reports every variable of environ ("NAME=value" entries, the
// form of os.Environ) whose name starts with ARTIFACTSTORE_ but is neither
// in Variables nor starts with TestEnvPrefix, as UnknownVariableErrors
// joined (each matching store.ErrInvalidArgument), each with the closest
// registered name when one is close. Entries with an empty value count as
// unset and are not checked; other variables are ignored.
func CheckEnv(environ []string) error {
	known := map[string]bool{}
	for _, v := range Variables() {
		known[v.Name] = true
	}
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if value == "" || !strings.HasPrefix(name, store.EnvPrefix) || strings.HasPrefix(name, TestEnvPrefix) || known[name] {
			continue
		}
		errs = append(errs, &UnknownVariableError{Name: name, Suggestion: closestVariable(name)})
	}
	return errors.Join(errs...)
}

// closestVariable returns the registered name with the smallest edit
// distance to name, when that distance is small enough to be a typo (at
// most a third of the part after the prefix, and at most 3).
func closestVariable(name string) string {
	best, bestDist := "", 0
	for _, v := range Variables() {
		d := levenshtein.ComputeDistance(name, v.Name)
		if best == "" || d < bestDist {
			best, bestDist = v.Name, d
		}
	}
	limit := min(3, max(1, (len(name)-len(store.EnvPrefix))/3))
	if bestDist > limit {
		return ""
	}
	return best
}

// processEnv returns FromEnv's source for lookup: the process environment
// when lookup is nil or os.LookupEnv itself, checked with CheckEnv first
// (the one source whose names can be listed); lookup otherwise.
func processEnv(lookup func(string) (string, bool)) (func(string) (string, bool), error) {
	if lookup != nil && reflect.ValueOf(lookup).Pointer() != reflect.ValueOf(os.LookupEnv).Pointer() {
		return lookup, nil
	}
	if err := CheckEnv(os.Environ()); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	return os.LookupEnv, nil
}
