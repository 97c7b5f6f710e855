package store

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// EnvPrefix starts the name of every environment variable ConfigFromEnv
// reads.
const EnvPrefix = "ARTIFACTSTORE_"

// envVar binds one environment variable (without EnvPrefix) to a Config
// field.
type envVar struct {
	name string
	set  func(c *Config, v string) error
}

func envBool(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		*field(c) = b
		return nil
	}
}

func envInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

func envInt64(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		*field(c) = n
		return nil
	}
}

func envDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*field(c) = d
		return nil
	}
}

// envVars lists the variables ConfigFromEnv reads, with EnvPrefix before
// each name.
func envVars() []envVar {
	return []envVar{
		{"DISABLE_LOCKING", envBool(func(c *Config) *bool { return &c.DisableLocking })},
		{"LOCK_TIMEOUT", envDuration(func(c *Config) *time.Duration { return &c.LockTimeout })},
		{"VERSIONING", envBool(func(c *Config) *bool { return &c.Versioning })},
		{"MAX_VERSIONS", envInt(func(c *Config) *int { return &c.MaxVersions })},
		{"COMPRESSION", envBool(func(c *Config) *bool { return &c.Compression })},
		{"COMPRESSION_MIN_SIZE", envInt64(func(c *Config) *int64 { return &c.CompressionMinSize })},
		{"COMPRESSION_LEVEL", envInt(func(c *Config) *int { return &c.CompressionLevel })},
		{"INLINE_MAX_BYTES", envInt(func(c *Config) *int { return &c.InlineMaxBytes })},
		{"DISABLE_VERIFY", envBool(func(c *Config) *bool { return &c.DisableVerify })},
		{"RETRY_MAX", envInt(func(c *Config) *int { return &c.Retry.MaxRetries })},
		{"RETRY_INITIAL", envDuration(func(c *Config) *time.Duration { return &c.Retry.Initial })},
		{"RETRY_MAX_DELAY", envDuration(func(c *Config) *time.Duration { return &c.Retry.Max })},
		{"MAX_METADATA_BYTES", envInt(func(c *Config) *int { return &c.MaxMetadataBytes })},
		{"MAX_TAGS", envInt(func(c *Config) *int { return &c.MaxTags })},
		{"MAX_CONFLICT_RETRIES", envInt(func(c *Config) *int { return &c.MaxConflictRetries })},
		{"CONFLICT_BACKOFF", envDuration(func(c *Config) *time.Duration { return &c.ConflictBackoff })},
		{"LIST_CONCURRENCY", envInt(func(c *Config) *int { return &c.ListConcurrency })},
		{"MANIFEST_CACHE_ENTRIES", envInt(func(c *Config) *int { return &c.ManifestCacheEntries })},
		{"WRITER_ID", func(c *Config, v string) error { c.WriterID = v; return nil }},
		{"ALLOW_UNFENCED_WRITES", envBool(func(c *Config) *bool { return &c.AllowUnfencedWrites })},
		{"RETENTION_PERIODS", envRetentionPeriods}, // retention.go
		{"RETENTION_DEFAULT", envDuration(func(c *Config) *time.Duration { return &c.Retention.Default })},
		{"RETENTION_EXEMPT_TAG", func(c *Config, v string) error { c.Retention.ExemptTag = v; return nil }},
		{"QUOTA_MAX_BYTES", envInt64(func(c *Config) *int64 { return &c.Quota.MaxBytes })},
		{"QUOTA_WARN_RATIO", envQuotaWarnRatio}, // quota.go
		{"QUOTA_REFRESH_INTERVAL", envDuration(func(c *Config) *time.Duration { return &c.Quota.RefreshInterval })},
	}
}

// ConfigFromEnv builds a Config from ARTIFACTSTORE_* variables read through
// lookup (os.LookupEnv when nil): DISABLE_LOCKING, LOCK_TIMEOUT (a Go
// duration, "30s"), VERSIONING, MAX_VERSIONS, COMPRESSION,
// COMPRESSION_MIN_SIZE (bytes), COMPRESSION_LEVEL, INLINE_MAX_BYTES
// (bytes, -1 for never), DISABLE_VERIFY, RETRY_MAX,
// RETRY_INITIAL, RETRY_MAX_DELAY, MAX_METADATA_BYTES, MAX_TAGS,
// MAX_CONFLICT_RETRIES, CONFLICT_BACKOFF, LIST_CONCURRENCY,
// MANIFEST_CACHE_ENTRIES, WRITER_ID,
// ALLOW_UNFENCED_WRITES, RETENTION_PERIODS (type=duration pairs separated by
// commas, "log=168h,diff=720h"), RETENTION_DEFAULT, RETENTION_EXEMPT_TAG,
// QUOTA_MAX_BYTES, QUOTA_WARN_RATIO (a fraction, "0.8") and
// QUOTA_REFRESH_INTERVAL. Unset or empty variables leave the field at its
// default; a malformed one is an error naming it. The result is validated.
// Logger and Now cannot come from the environment.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var c Config
	for _, ev := range envVars() {
		v, ok := lookup(EnvPrefix + ev.name)
		if !ok || v == "" {
			continue
		}
		if err := ev.set(&c, v); err != nil {
			return Config{}, fmt.Errorf("%w: %s%s=%q: %v", ErrInvalidArgument, EnvPrefix, ev.name, v, err)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return c, nil
}
