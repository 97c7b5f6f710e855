package store

import (
	"compress/gzip"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/telemetry"
)

// Defaults of Config, applied by WithDefaults to zero fields.
const (
	DefaultLockTimeout        = 30 * time.Second
	DefaultCompressionMinSize = 1 << 10
	DefaultCompressionLevel   = gzip.BestSpeed
	DefaultMaxMetadataBytes   = 16 << 10
	DefaultMaxTags            = 64
	DefaultMaxConflictRetries = 10
	DefaultConflictBackoff    = 10 * time.Millisecond
	DefaultListConcurrency    = 32
	DefaultInlineMaxBytes     = 8 << 10
)

// MaxInlineBytesLimit bounds Config.InlineMaxBytes: a manifest holds at
// most four times that much content (see Config.InlineMaxBytes), far below
// MaxManifestBytes.
const MaxInlineBytesLimit = 1 << 20

// Config holds the store's settings. It is a plain value: the zero value of
// each field means its default, stated in the field's comment. The locker's
// own lock.Config governs the lock's retry interval, backoff and expiry;
// the store only bounds the whole wait with LockTimeout.
type Config struct {
	// DisableLocking turns the artifact lock off: writes then run the same
	// protocol optimistically, retried on conflict up to
	// MaxConflictRetries. New accepts a nil Locker only with it. Default
	// false (locking on).
	DisableLocking bool
	// LockTimeout bounds how long a write waits for the artifact's lock (a
	// deadline on the context given to Locker.Acquire); it runs out with
	// ErrLockTimeout. The locker's own lock.Config.Timeout applies too,
	// whichever is shorter. Default 30s.
	LockTimeout time.Duration

	// Versioning makes each upload add a version instead of replacing the
	// artifact's content. Default false (replace; version numbers still
	// increase).
	Versioning bool
	// MaxVersions, with Versioning, prunes the oldest versions beyond this
	// many at each upload. At most MaxVersionsLimit (10,000). Default 0:
	// no pruning; an upload that would add a version past
	// MaxVersionsLimit, or make the artifact's record larger than
	// MaxManifestBytes (16 MiB), fails with ErrStorageFull.
	MaxVersions int

	// Compression gzips content of at least CompressionMinSize bytes on
	// upload; downloads decompress transparently whatever the setting.
	// Default false.
	Compression bool
	// CompressionMinSize is the smallest content that is compressed, in
	// bytes. Default 1 KiB.
	CompressionMinSize int64
	// CompressionLevel is the gzip level, gzip.HuffmanOnly (-2) to
	// gzip.BestCompression (9); 0 means the default. Default
	// gzip.BestSpeed (1).
	CompressionLevel int

	// InlineMaxBytes: a content of known size up to this many bytes is
	// stored inside the artifact's manifest (uncompressed, base64 in the
	// JSON) instead of in a blob of its own, so that its upload is one
	// conditional Put and reading the current version one Get. A
	// manifest holds at most 4 x InlineMaxBytes of content: an upload that
	// would pass that moves the oldest versions' contents to blobs (in
	// the same commit, at most 64 of them, 8 Puts at a time) until at most
	// half of it is left. Negative: never
	// (every content is a blob, as before this setting existed). At most
	// MaxInlineBytesLimit (1 MiB). Default 8 KiB.
	InlineMaxBytes int

	// DisableVerify skips the SHA-256 and size check on download
	// (VerifyChecksum always checks). Default false (verify).
	DisableVerify bool

	// Retry configures the retries of transient backend failures (the
	// backend.WithRetry decorator, and the store's own retries of a
	// download, of a blob upload from a rewindable reader and of the read
	// back of a manifest after a failed write, which Retry.OnRetry sees
	// with op "download", "blob-upload" and "read-back"). Default:
	// backend.RetryConfig's defaults (3 retries, exponential backoff from
	// 100ms up to 5s with full jitter), logging to Logger.
	Retry backend.RetryConfig

	// MaxMetadataBytes bounds an artifact's tags plus a version's user
	// metadata, encoded as JSON. At most MaxMetadataBytesLimit (1 MiB): the
	// record of all of an artifact's versions must fit in MaxManifestBytes.
	// Default 16 KiB.
	MaxMetadataBytes int
	// MaxTags bounds the number of tags of an artifact. Default 64.
	MaxTags int

	// MaxConflictRetries bounds the optimistic retries of a commit when
	// locking is disabled. Default 10.
	MaxConflictRetries int
	// ConflictBackoff is the ceiling of the first delay between optimistic
	// retries; later ceilings double up to 100 times it, each delay drawn
	// uniformly below its ceiling. Default 10ms.
	ConflictBackoff time.Duration

	// ListConcurrency is how many manifests listings, Search and bulk
	// operations read at once. Default 32.
	ListConcurrency int
	// ManifestCacheEntries is how many decoded manifests a Store keeps,
	// keyed by ETag: a manifest whose ETag (from a Get, or from the listing
	// of a search or bulk operation) matches is not decoded, or not read,
	// again. About 1 KiB each for a manifest with one version. Default
	// 1024.
	ManifestCacheEntries int

	// Retention sets the per-type retention periods of Expired and
	// CleanupExpired. Default: diff 30 days, log 7 days, test 14 days,
	// custom types never, artifacts tagged "retain" never (see
	// RetentionConfig).
	Retention RetentionConfig
	// Quota bounds the stored bytes of the store. Default: unlimited (see
	// QuotaConfig).
	Quota QuotaConfig
	// Catalog tunes the catalog that answers Search, Usage and the
	// retention plan without reading every manifest (see CatalogConfig).
	Catalog CatalogConfig

	// WriterID is recorded with every commit (for operators). Default
	// "<hostname>:<pid>".
	WriterID string
	// Logger receives one record per failed operation and the results of
	// best-effort cleanups. Default: discard.
	Logger *slog.Logger
	// Now is the clock of creation times and blob ids. Default time.Now.
	Now func() time.Time
	// Telemetry says where the store's Prometheus metrics (a Registerer)
	// and OpenTelemetry spans (a TracerProvider) go: one span per
	// operation with child spans for its lock and backend calls, and the
	// metrics listed in package telemetry. New registers the metrics; Stores
	// that share a Registerer share them too (see telemetry.Config).
	// Default: neither.
	Telemetry telemetry.Config

	// AllowUnfencedWrites lets New accept a backend that fails the
	// conditional-write probe. Such a backend cannot stop a writer whose
	// lock expired from overwriting a newer commit. Default false.
	AllowUnfencedWrites bool
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.CompressionMinSize == 0 {
		c.CompressionMinSize = DefaultCompressionMinSize
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = DefaultCompressionLevel
	}
	if c.MaxMetadataBytes == 0 {
		c.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if c.MaxTags == 0 {
		c.MaxTags = DefaultMaxTags
	}
	if c.MaxConflictRetries == 0 {
		c.MaxConflictRetries = DefaultMaxConflictRetries
	}
	if c.ConflictBackoff == 0 {
		c.ConflictBackoff = DefaultConflictBackoff
	}
	if c.ListConcurrency == 0 {
		c.ListConcurrency = DefaultListConcurrency
	}
	if c.InlineMaxBytes == 0 {
		c.InlineMaxBytes = DefaultInlineMaxBytes
	}
	if c.ManifestCacheEntries == 0 {
		c.ManifestCacheEntries = manifestCacheEntries
	}
	if c.WriterID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown"
		}
		c.WriterID = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Retry.Logger == nil {
		c.Retry.Logger = c.Logger
	}
	c.Retry = c.Retry.WithDefaults()
	c.Retention = c.Retention.WithDefaults()
	c.Quota = c.Quota.WithDefaults()
	c.Catalog = c.Catalog.WithDefaults()
	return c
}

// Validate reports the first invalid field of c, after defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.LockTimeout < 0:
		return fmt.Errorf("store config: LockTimeout %v is negative", c.LockTimeout)
	case c.MaxVersions < 0:
		return fmt.Errorf("store config: MaxVersions %d is negative", c.MaxVersions)
	case c.MaxVersions > MaxVersionsLimit:
		return fmt.Errorf("store config: MaxVersions %d is more than %d (MaxVersionsLimit)", c.MaxVersions, MaxVersionsLimit)
	case c.CompressionMinSize < 0:
		return fmt.Errorf("store config: CompressionMinSize %d is negative", c.CompressionMinSize)
	case c.CompressionMinSize > maxCompressionMinSize:
		return fmt.Errorf("store config: CompressionMinSize %d is more than %d", c.CompressionMinSize, maxCompressionMinSize)
	case c.CompressionLevel < gzip.HuffmanOnly || c.CompressionLevel > gzip.BestCompression:
		return fmt.Errorf("store config: CompressionLevel %d is not a gzip level", c.CompressionLevel)
	case c.MaxMetadataBytes < 0:
		return fmt.Errorf("store config: MaxMetadataBytes %d is negative", c.MaxMetadataBytes)
	case c.MaxMetadataBytes > MaxMetadataBytesLimit:
		return fmt.Errorf("store config: MaxMetadataBytes %d is more than %d (MaxMetadataBytesLimit)", c.MaxMetadataBytes, MaxMetadataBytesLimit)
	case c.InlineMaxBytes > MaxInlineBytesLimit:
		return fmt.Errorf("store config: InlineMaxBytes %d is more than %d (MaxInlineBytesLimit)", c.InlineMaxBytes, MaxInlineBytesLimit)
	case c.MaxTags < 0:
		return fmt.Errorf("store config: MaxTags %d is negative", c.MaxTags)
	case c.MaxConflictRetries < 0:
		return fmt.Errorf("store config: MaxConflictRetries %d is negative", c.MaxConflictRetries)
	case c.ConflictBackoff < 0:
		return fmt.Errorf("store config: ConflictBackoff %v is negative", c.ConflictBackoff)
	case c.ListConcurrency < 0:
		return fmt.Errorf("store config: ListConcurrency %d is negative", c.ListConcurrency)
	case c.ManifestCacheEntries < 0:
		return fmt.Errorf("store config: ManifestCacheEntries %d is negative", c.ManifestCacheEntries)
	case len(c.WriterID) > 256:
		return fmt.Errorf("store config: WriterID is %d bytes, more than 256", len(c.WriterID))
	}
	if err := c.Retry.Validate(); err != nil {
		return fmt.Errorf("store config: Retry: %w", err)
	}
	if err := c.Retention.Validate(); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	if err := c.Quota.Validate(); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	if err := c.Catalog.Validate(); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	return nil
}

// MaxMetadataBytesLimit bounds Config.MaxMetadataBytes, so that a
// manifest holds at least 16 versions carrying the most metadata allowed
// within MaxManifestBytes.
const MaxMetadataBytesLimit = 1 << 20

// maxCompressionMinSize bounds CompressionMinSize: an upload of unknown size
// buffers up to that many bytes to decide whether to compress.
const maxCompressionMinSize = 64 << 20
