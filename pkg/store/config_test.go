package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	switch {
	case c.LockTimeout != 30*time.Second,
		c.CompressionMinSize != 1024,
		c.CompressionLevel != 1,
		c.MaxMetadataBytes != 16<<10,
		c.MaxTags != 64,
		c.MaxConflictRetries != 10,
		c.ConflictBackoff != 10*time.Millisecond,
		c.ListConcurrency != 32,
		c.Retry.MaxRetries != backend.DefaultMaxRetries,
		c.WriterID == "" || !strings.Contains(c.WriterID, ":"),
		c.Logger == nil, c.Now == nil, c.Retry.Logger == nil,
		c.Versioning, c.Compression, c.DisableLocking, c.DisableVerify, c.AllowUnfencedWrites, c.MaxVersions != 0:
		t.Fatalf("defaults: %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	// Explicit values are kept.
	c = Config{LockTimeout: time.Second, MaxTags: 3, WriterID: "w"}.WithDefaults()
	if c.LockTimeout != time.Second || c.MaxTags != 3 || c.WriterID != "w" {
		t.Fatalf("explicit values lost: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]Config{
		"negative lock timeout":   {LockTimeout: -1},
		"negative max versions":   {MaxVersions: -1},
		"negative min size":       {CompressionMinSize: -1},
		"huge min size":           {CompressionMinSize: 1 << 40},
		"bad level":               {CompressionLevel: 10},
		"negative metadata bytes": {MaxMetadataBytes: -1},
		"negative tags":           {MaxTags: -1},
		"negative conflict tries": {MaxConflictRetries: -1},
		"negative backoff":        {ConflictBackoff: -time.Second},
		"negative concurrency":    {ListConcurrency: -1},
		"long writer id":          {WriterID: strings.Repeat("w", 300)},
		"retry max below initial": {Retry: backend.RetryConfig{Initial: time.Second, Max: time.Millisecond}},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	// A negative Retry.MaxRetries turns retries off (backend.RetryConfig).
	if err := (Config{Retry: backend.RetryConfig{MaxRetries: -1}}).Validate(); err != nil {
		t.Errorf("negative retries (no retries): %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"ARTIFACTSTORE_DISABLE_LOCKING":       "true",
		"ARTIFACTSTORE_LOCK_TIMEOUT":          "5s",
		"ARTIFACTSTORE_VERSIONING":            "1",
		"ARTIFACTSTORE_MAX_VERSIONS":          "7",
		"ARTIFACTSTORE_COMPRESSION":           "true",
		"ARTIFACTSTORE_COMPRESSION_MIN_SIZE":  "4096",
		"ARTIFACTSTORE_COMPRESSION_LEVEL":     "6",
		"ARTIFACTSTORE_DISABLE_VERIFY":        "false",
		"ARTIFACTSTORE_RETRY_MAX":             "5",
		"ARTIFACTSTORE_RETRY_INITIAL":         "20ms",
		"ARTIFACTSTORE_RETRY_MAX_DELAY":       "1s",
		"ARTIFACTSTORE_MAX_METADATA_BYTES":    "2048",
		"ARTIFACTSTORE_MAX_TAGS":              "8",
		"ARTIFACTSTORE_MAX_CONFLICT_RETRIES":  "20",
		"ARTIFACTSTORE_CONFLICT_BACKOFF":      "5ms",
		"ARTIFACTSTORE_LIST_CONCURRENCY":      "16",
		"ARTIFACTSTORE_WRITER_ID":             "worker-3",
		"ARTIFACTSTORE_ALLOW_UNFENCED_WRITES": "false",
		"ARTIFACTSTORE_S3_SECRET_KEY":         "not ours, ignored",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{DisableLocking: true, LockTimeout: 5 * time.Second, Versioning: true, MaxVersions: 7, Compression: true,
		CompressionMinSize: 4096, CompressionLevel: 6, Retry: backend.RetryConfig{MaxRetries: 5, Initial: 20 * time.Millisecond, Max: time.Second},
		MaxMetadataBytes: 2048, MaxTags: 8, MaxConflictRetries: 20, ConflictBackoff: 5 * time.Millisecond, ListConcurrency: 16, WriterID: "worker-3"}
	if c.DisableLocking != want.DisableLocking || c.LockTimeout != want.LockTimeout || c.Versioning != want.Versioning ||
		c.MaxVersions != want.MaxVersions || c.Compression != want.Compression || c.CompressionMinSize != want.CompressionMinSize ||
		c.CompressionLevel != want.CompressionLevel || c.Retry.MaxRetries != 5 || c.Retry.Initial != want.Retry.Initial ||
		c.Retry.Max != want.Retry.Max || c.MaxMetadataBytes != want.MaxMetadataBytes || c.MaxTags != want.MaxTags ||
		c.MaxConflictRetries != want.MaxConflictRetries || c.ConflictBackoff != want.ConflictBackoff ||
		c.ListConcurrency != want.ListConcurrency || c.WriterID != want.WriterID || c.AllowUnfencedWrites {
		t.Fatalf("ConfigFromEnv = %+v\nwant %+v", c, want)
	}
	empty, err := ConfigFromEnv(func(string) (string, bool) { return "", false })
	if err != nil || empty.LockTimeout != 0 || empty.Versioning {
		t.Fatalf("empty environment: %+v, %v", empty, err)
	}
	for k, v := range map[string]string{
		"ARTIFACTSTORE_LOCK_TIMEOUT": "soon", "ARTIFACTSTORE_VERSIONING": "maybe",
		"ARTIFACTSTORE_COMPRESSION_MIN_SIZE": "1k",
	} {
		_, err := ConfigFromEnv(func(key string) (string, bool) { return v, key == k })
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
	// Parsed but invalid: Validate's error.
	_, err = ConfigFromEnv(func(key string) (string, bool) { return "-3", key == "ARTIFACTSTORE_MAX_VERSIONS" })
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "MaxVersions") {
		t.Errorf("MAX_VERSIONS=-3: %v", err)
	}
}
