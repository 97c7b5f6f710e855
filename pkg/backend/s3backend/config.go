package s3backend

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Part-size bounds. S3 refuses a non-final multipart part smaller than
// MinPartSize, and any part larger than MaxPartSize.
const (
	// DefaultPartSize is the PartSize used when Config.PartSize is zero.
	DefaultPartSize int64 = 16 << 20
	// MinPartSize is the smallest PartSize S3 accepts (5 MiB).
	MinPartSize int64 = 5 << 20
	// MaxPartSize is the largest PartSize S3 accepts (5 GiB).
	MaxPartSize int64 = 5 << 30
	// MaxParts is the most parts one S3 multipart upload may have.
	MaxParts int64 = 10_000
	// MaxSinglePutSize is the largest object S3 accepts in one PUT request
	// (5 GiB); it bounds conditional Puts, which are always single PUTs.
	MaxSinglePutSize int64 = 5 << 30
	// DefaultRegion is the Region used when Config.Region is empty.
	DefaultRegion = "us-east-1"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvEndpoint           = "ARTIFACTSTORE_S3_ENDPOINT"
	EnvBucket             = "ARTIFACTSTORE_S3_BUCKET"
	EnvPrefix             = "ARTIFACTSTORE_S3_PREFIX"
	EnvRegion             = "ARTIFACTSTORE_S3_REGION"
	EnvAccessKey          = "ARTIFACTSTORE_S3_ACCESS_KEY"
	EnvSecretKey          = "ARTIFACTSTORE_S3_SECRET_KEY"
	EnvSessionToken       = "ARTIFACTSTORE_S3_SESSION_TOKEN"
	EnvUseSSL             = "ARTIFACTSTORE_S3_USE_SSL"
	EnvInsecureSkipVerify = "ARTIFACTSTORE_S3_INSECURE_SKIP_VERIFY"
	EnvCreateBucket       = "ARTIFACTSTORE_S3_CREATE_BUCKET"
	EnvPartSize           = "ARTIFACTSTORE_S3_PART_SIZE"
	EnvMaxAttempts        = "ARTIFACTSTORE_S3_MAX_ATTEMPTS"
	EnvCredentials        = "ARTIFACTSTORE_S3_CREDENTIALS"      // static, chain or anonymous
	EnvProfile            = "ARTIFACTSTORE_S3_PROFILE"          // shared credentials file profile
	EnvCredentialsFile    = "ARTIFACTSTORE_S3_CREDENTIALS_FILE" // shared credentials file
	EnvSSE                = "ARTIFACTSTORE_S3_SSE"              // AES256 or aws:kms
	EnvSSEKMSKeyID        = "ARTIFACTSTORE_S3_SSE_KMS_KEY_ID"
	EnvStorageClass       = "ARTIFACTSTORE_S3_STORAGE_CLASS"
	EnvBucketLookup       = "ARTIFACTSTORE_S3_BUCKET_LOOKUP" // auto, path or dns
	EnvConnectTimeout     = "ARTIFACTSTORE_S3_CONNECT_TIMEOUT"
	EnvRequestTimeout     = "ARTIFACTSTORE_S3_REQUEST_TIMEOUT"
)

// Values of Config.Credentials.
const (
	// CredentialsStatic signs with AccessKey, SecretKey and SessionToken
	// (anonymous requests when they are empty).
	CredentialsStatic = "static"
	// CredentialsChain takes the first credentials found by minio-go's
	// providers, in this order: the AWS_ACCESS_KEY_ID /
	// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables, the
	// MINIO_ACCESS_KEY / MINIO_SECRET_KEY variables, the shared credentials
	// file (CredentialsFile, Profile), then IAM: web identity
	// (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as EKS IRSA sets
	// them), the ECS container endpoint (AWS_CONTAINER_CREDENTIALS_*), and
	// the EC2 instance metadata service. Temporary credentials are
	// refreshed before they expire. When none is found, requests are
	// anonymous.
	CredentialsChain = "chain"
	// CredentialsAnonymous sends unsigned requests.
	CredentialsAnonymous = "anonymous"
)

// Values of Config.SSE, the x-amz-server-side-encryption header.
const (
	// SSES3 encrypts objects with keys the server manages (SSE-S3).
	SSES3 = "AES256"
	// SSEKMS encrypts objects with a KMS key (SSE-KMS), SSEKMSKeyID or the
	// bucket's default key.
	SSEKMS = "aws:kms"
)

// Values of Config.BucketLookup.
const (
	// BucketLookupAuto lets minio-go choose: virtual-host style for
	// Amazon S3 and a few known providers, path style otherwise.
	BucketLookupAuto = "auto"
	// BucketLookupPath sends https://endpoint/bucket/key (MinIO,
	// versitygw, most S3-compatible servers).
	BucketLookupPath = "path"
	// BucketLookupDNS sends https://bucket.endpoint/key (virtual-host
	// style).
	BucketLookupDNS = "dns"
)

// Transport defaults, applied to the transport New builds.
const (
	// DefaultConnectTimeout bounds a TCP connection and its TLS handshake.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds the wait for the answer to one request
	// once it is sent. S3 answers in well under a second; the store
	// retries a timed-out request (3 times by default), so a hung server
	// fails a store call after about 4 x 10s.
	DefaultRequestTimeout = 10 * time.Second
)

// redacted replaces a credential that is set in String and LogValue.
const redacted = "[REDACTED]"

// Config configures a Backend. The zero value of every field except
// Endpoint and Bucket means its documented default. Config is comparable
// with == when Transport and Logger are (they usually are pointers).
type Config struct {
	// Endpoint is the server's address: "host:port", or a URL
	// "http://host:port" / "https://host:port" whose scheme must agree with
	// UseSSL. Required; no default.
	Endpoint string
	// Bucket is the bucket holding the objects. Required; no default.
	Bucket string
	// Prefix is prepended to every key, so that several stores can share
	// one bucket; List strips it from the keys it yields. A "/" is added
	// when it does not end with one. Default "" (the bucket's root).
	Prefix string
	// Region is the bucket's region, used for request signing. Setting it
	// spares minio-go a GetBucketLocation request. Default "us-east-1".
	Region string
	// Credentials says where the request signing keys come from:
	// CredentialsStatic (AccessKey, SecretKey, SessionToken),
	// CredentialsChain (the environment, the shared credentials file,
	// IAM: see CredentialsChain) or CredentialsAnonymous. Default "":
	// CredentialsStatic when AccessKey is set, CredentialsChain otherwise.
	Credentials string
	// Profile is the profile read from the shared credentials file with
	// CredentialsChain. Default "": AWS_PROFILE, else "default".
	Profile string
	// CredentialsFile is the shared credentials file read with
	// CredentialsChain. Default "": AWS_SHARED_CREDENTIALS_FILE, else
	// ~/.aws/credentials (merged over ~/.aws/config).
	CredentialsFile string
	// AccessKey is the access key id, used with CredentialsStatic (set
	// together with SecretKey). Default "".
	AccessKey string
	// SecretKey is the secret access key. Never printed or logged.
	// Default "" (anonymous).
	SecretKey string
	// SessionToken is the session token of temporary credentials. Never
	// printed or logged. Default "" (long-term credentials).
	SessionToken string
	// SSE asks the server to encrypt every object it stores: SSES3
	// ("AES256") or SSEKMS ("aws:kms"). Reads need nothing more. Default
	// "": the bucket's own default encryption.
	SSE string
	// SSEKMSKeyID is the KMS key of SSEKMS (an id, ARN or alias). Default
	// "": the account's default key for S3.
	SSEKMSKeyID string
	// StorageClass is the storage class of every object, for example
	// "STANDARD_IA" or "REDUCED_REDUNDANCY"; the server refuses one it
	// does not know. Default "": the server's default (STANDARD).
	StorageClass string
	// BucketLookup is the URL style: BucketLookupAuto, BucketLookupPath
	// or BucketLookupDNS. Default BucketLookupAuto.
	BucketLookup string
	// ConnectTimeout bounds opening a connection to the server, TLS
	// handshake included. It needs the default Transport. Default
	// DefaultConnectTimeout (10s).
	ConnectTimeout time.Duration
	// RequestTimeout bounds the wait for the server's answer (its
	// response headers) once a request is sent, so that a server that
	// accepts connections but does not answer fails the call with a
	// transient error after RequestTimeout instead of hanging (a
	// conditional PUT, which first waits up to RequestTimeout/2 for "100
	// Continue", after 1.5 x RequestTimeout). It does not
	// bound sending a body or reading a downloaded one, which take as long
	// as the object needs. The store retries such a failure like any
	// transient one (store.Config.Retry). It needs the default Transport.
	// Default DefaultRequestTimeout (10s).
	RequestTimeout time.Duration
	// UseSSL selects HTTPS. Default false (plain HTTP).
	UseSSL bool
	// InsecureSkipVerify disables the verification of the server's TLS
	// certificate; only for tests against self-signed servers. It needs
	// UseSSL and cannot be combined with Transport. Default false.
	InsecureSkipVerify bool
	// CreateBucket makes New create the bucket when it does not exist.
	// Default false: a missing bucket makes every call fail with
	// backend.ErrNotFound.
	CreateBucket bool
	// PartSize is the size of one part of a multipart upload, between
	// MinPartSize (5 MiB) and MaxPartSize (5 GiB). It bounds memory: an
	// upload holds at most one PartSize buffer, and only when it does not
	// get a seekable reader of known size. It also bounds objects: an
	// unknown-size stream may be at most PartSize x 10,000 bytes, and a
	// conditional Put of unknown size at most PartSize. Default
	// DefaultPartSize (16 MiB).
	PartSize int64
	// MaxAttempts is how many times minio-go sends one HTTP request before
	// giving up. Default 1: minio-go does not retry, because retrying
	// transient errors (backend.IsTransient) is the job of the retry
	// decorator of package backend, and a retry hidden in minio-go would
	// multiply its attempts.
	MaxAttempts int
	// Transport carries the HTTP requests. Default: a transport owned by the
	// Backend, built like minio-go's DefaultTransport, whose idle
	// connections Close releases. An injected transport is not closed.
	Transport http.RoundTripper
	// Logger receives a record of every failed call (Debug for expected
	// outcomes such as not-found and precondition failures, Warn for the
	// others). Credentials are never logged. Default: records are
	// discarded.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field replaced by its default and
// the prefix normalized.
func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 1
	}
	c.Credentials = c.credentialsMode()
	if c.BucketLookup == "" {
		c.BucketLookup = BucketLookupAuto
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// credentialsMode is Credentials with its default applied.
func (c Config) credentialsMode() string {
	switch {
	case c.Credentials != "":
		return c.Credentials
	case c.AccessKey != "":
		return CredentialsStatic
	default:
		return CredentialsChain
	}
}

// hostAndScheme splits Endpoint into host:port and the scheme it names
// ("" when it has none).
func (c Config) hostAndScheme() (host, scheme string) {
	for _, s := range []string{"https", "http"} {
		if rest, ok := strings.CutPrefix(c.Endpoint, s+"://"); ok {
			return strings.TrimSuffix(rest, "/"), s
		}
	}
	return c.Endpoint, ""
}

// Validate reports every problem of c, each matching
// backend.ErrInvalidArgument. A zero field stands for its default.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("s3backend: config: %w: "+format, append([]any{backend.ErrInvalidArgument}, args...)...))
	}
	host, scheme := c.hostAndScheme()
	switch {
	case c.Endpoint == "":
		bad("Endpoint is empty")
	case host == "" || strings.ContainsAny(host, "/?#@ "):
		bad("Endpoint %q is not host:port or http(s)://host:port", c.Endpoint)
	case scheme == "https" && !c.UseSSL:
		bad("Endpoint %q is https but UseSSL is false", c.Endpoint)
	case scheme == "http" && c.UseSSL:
		bad("Endpoint %q is http but UseSSL is true", c.Endpoint)
	}
	if c.Bucket == "" {
		bad("Bucket is empty")
	} else if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		bad("Bucket %q: %v", c.Bucket, err)
	}
	if c.Prefix != "" {
		if err := backend.ValidatePrefix(c.Prefix); err != nil {
			bad("Prefix: %v", err)
		}
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		bad("PartSize %d is outside [%d, %d]", c.PartSize, MinPartSize, MaxPartSize)
	}
	if c.MaxAttempts < 0 {
		bad("MaxAttempts %d is negative", c.MaxAttempts)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		bad("AccessKey and SecretKey must be set together")
	}
	if c.SessionToken != "" && c.AccessKey == "" {
		bad("SessionToken needs AccessKey and SecretKey")
	}
	switch mode := c.credentialsMode(); mode {
	case CredentialsStatic:
	case CredentialsChain, CredentialsAnonymous:
		if c.AccessKey != "" {
			bad("AccessKey is set but Credentials is %q: keys are only used with %q", mode, CredentialsStatic)
		}
	default:
		bad("Credentials %q is not %q, %q or %q", mode, CredentialsStatic, CredentialsChain, CredentialsAnonymous)
	}
	if (c.Profile != "" || c.CredentialsFile != "") && c.credentialsMode() != CredentialsChain {
		bad("Profile and CredentialsFile are only used with Credentials %q", CredentialsChain)
	}
	switch c.SSE {
	case "", SSES3:
		if c.SSEKMSKeyID != "" {
			bad("SSEKMSKeyID needs SSE %q", SSEKMS)
		}
	case SSEKMS:
	default:
		bad("SSE %q is not %q (SSE-S3) or %q (SSE-KMS)", c.SSE, SSES3, SSEKMS)
	}
	if c.StorageClass != "" && strings.ContainsFunc(c.StorageClass, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) {
		bad("StorageClass %q is not an S3 storage class (capitals, digits and _, such as STANDARD_IA)", c.StorageClass)
	}
	switch c.BucketLookup {
	case "", BucketLookupAuto, BucketLookupPath, BucketLookupDNS:
	default:
		bad("BucketLookup %q is not %q, %q or %q", c.BucketLookup, BucketLookupAuto, BucketLookupPath, BucketLookupDNS)
	}
	if c.ConnectTimeout < 0 || c.RequestTimeout < 0 {
		bad("ConnectTimeout and RequestTimeout must not be negative")
	}
	if (c.ConnectTimeout != 0 || c.RequestTimeout != 0) && c.Transport != nil {
		bad("ConnectTimeout and RequestTimeout cannot be applied to an injected Transport")
	}
	if c.InsecureSkipVerify && !c.UseSSL {
		bad("InsecureSkipVerify needs UseSSL")
	}
	if c.InsecureSkipVerify && c.Transport != nil {
		bad("InsecureSkipVerify cannot be applied to an injected Transport")
	}
	return errors.Join(errs...)
}

// ConfigFromEnv returns the Config described by the ARTIFACTSTORE_S3_*
// environment variables (EnvEndpoint ... EnvRequestTimeout). An unset or empty
// variable leaves its field at the zero value, that is its default;
// ARTIFACTSTORE_S3_USE_SSL defaults to true when the endpoint is an
// https:// URL. Boolean variables take strconv.ParseBool values,
// ARTIFACTSTORE_S3_PART_SIZE a number of bytes, and the timeouts Go
// durations ("30s"). A malformed value is an
// error matching backend.ErrInvalidArgument; the result is not validated
// (New does that). lookup reads one variable: os.LookupEnv, or any layered
// source a program has (flags over a config file, say).
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	getenv := func(name string) string {
		v, _ := lookup(name)
		return v
	}
	c := Config{
		Endpoint:        getenv(EnvEndpoint),
		Bucket:          getenv(EnvBucket),
		Prefix:          getenv(EnvPrefix),
		Region:          getenv(EnvRegion),
		Credentials:     getenv(EnvCredentials),
		Profile:         getenv(EnvProfile),
		CredentialsFile: getenv(EnvCredentialsFile),
		AccessKey:       getenv(EnvAccessKey),
		SecretKey:       getenv(EnvSecretKey),
		SessionToken:    getenv(EnvSessionToken),
		SSE:             getenv(EnvSSE),
		SSEKMSKeyID:     getenv(EnvSSEKMSKeyID),
		StorageClass:    getenv(EnvStorageClass),
		BucketLookup:    getenv(EnvBucketLookup),
	}
	_, scheme := c.hostAndScheme()
	c.UseSSL = scheme == "https"
	var errs []error
	parseBool := func(name string, dst *bool) {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("s3backend: %w: %s=%q is not a boolean", backend.ErrInvalidArgument, name, v))
				return
			}
			*dst = b
		}
	}
	parseInt := func(name string, bits int, set func(int64)) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, bits)
			if err != nil {
				errs = append(errs, fmt.Errorf("s3backend: %w: %s=%q is not an integer", backend.ErrInvalidArgument, name, v))
				return
			}
			set(n)
		}
	}
	parseBool(EnvUseSSL, &c.UseSSL)
	parseBool(EnvInsecureSkipVerify, &c.InsecureSkipVerify)
	parseBool(EnvCreateBucket, &c.CreateBucket)
	parseInt(EnvPartSize, 64, func(n int64) { c.PartSize = n })
	parseInt(EnvMaxAttempts, 32, func(n int64) { c.MaxAttempts = int(n) })
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvConnectTimeout, &c.ConnectTimeout}, {EnvRequestTimeout, &c.RequestTimeout}} {
		if v := getenv(d.name); v != "" {
			dur, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("s3backend: %w: %s=%q is not a duration such as 30s", backend.ErrInvalidArgument, d.name, v))
				continue
			}
			*d.dst = dur
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// redact hides a credential that is set.
func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// String describes c with its credentials redacted. It is also what %v,
// %+v and %#v print.
func (c Config) String() string {
	transport := "default"
	if c.Transport != nil {
		transport = fmt.Sprintf("%T", c.Transport)
	}
	return fmt.Sprintf("s3backend.Config{Endpoint:%q Bucket:%q Prefix:%q Region:%q Credentials:%q Profile:%q CredentialsFile:%q AccessKey:%q SecretKey:%q SessionToken:%q SSE:%q SSEKMSKeyID:%q StorageClass:%q BucketLookup:%q ConnectTimeout:%v RequestTimeout:%v UseSSL:%t InsecureSkipVerify:%t CreateBucket:%t PartSize:%d MaxAttempts:%d Transport:%s}",
		c.Endpoint, c.Bucket, c.Prefix, c.Region, c.Credentials, c.Profile, c.CredentialsFile,
		redact(c.AccessKey), redact(c.SecretKey), redact(c.SessionToken), c.SSE, c.SSEKMSKeyID, c.StorageClass,
		c.BucketLookup, c.ConnectTimeout, c.RequestTimeout, c.UseSSL, c.InsecureSkipVerify, c.CreateBucket, c.PartSize, c.MaxAttempts, transport)
}

// Format implements fmt.Formatter so that every verb, including %+v and
// %#v, prints the redacted String.
func (c Config) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte(c.String()))
}

// LogValue implements slog.LogValuer: c logged as a group with its
// credentials redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.String("credentials", c.Credentials),
		slog.String("access_key", redact(c.AccessKey)),
		slog.String("secret_key", redact(c.SecretKey)),
		slog.String("session_token", redact(c.SessionToken)),
		slog.String("sse", c.SSE),
		slog.String("storage_class", c.StorageClass),
		slog.String("bucket_lookup", c.BucketLookup),
		slog.Duration("connect_timeout", c.ConnectTimeout),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Bool("use_ssl", c.UseSSL),
		slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
		slog.Bool("create_bucket", c.CreateBucket),
		slog.Int64("part_size", c.PartSize),
		slog.Int("max_attempts", c.MaxAttempts),
	)
}
