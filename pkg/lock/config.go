package lock

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config, applied by WithDefaults to zero fields.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultUnavailableTimeout is redislock's default dial timeout: an
	// unreachable lock service fails about as fast as one dial.
	DefaultUnavailableTimeout = 2 * time.Second
	DefaultRetryInterval      = 100 * time.Millisecond
	DefaultMaxRetryInterval   = 2 * time.Second
	DefaultExpiry             = 30 * time.Second
	DefaultKeyPrefix          = "artifactstore:lock:"
)

// Config holds the settings every Locker shares. The zero value of each
// field means its default.
type Config struct {
	// Timeout bounds how long Acquire waits. Default 30s.
	Timeout time.Duration
	// UnavailableTimeout bounds how long Acquire keeps retrying while the
	// lock service is unavailable (attempts failing with ErrUnavailable:
	// nothing listening, too few masters for a quorum): once attempts have
	// failed that way for this long in a row, Acquire gives up with an
	// error matching ErrTimeout and ErrUnavailable instead of waiting for
	// Timeout. A restart shorter than it goes unnoticed; a service that is
	// down fails fast. Timeout still bounds the whole wait. Default 2s
	// (package setup uses the Redis dial timeout).
	UnavailableTimeout time.Duration
	// RetryInterval is the ceiling of the first backoff delay between
	// attempts; later ceilings double up to MaxRetryInterval and each delay
	// is drawn uniformly below its ceiling (full jitter). Default 100ms.
	RetryInterval time.Duration
	// MaxRetryInterval caps the backoff ceiling. Default 2s.
	MaxRetryInterval time.Duration
	// Expiry is how long a lease lives without a refresh: a holder that
	// vanishes frees the key after at most Expiry. Default 30s.
	Expiry time.Duration
	// RefreshInterval is how often a held lease is refreshed automatically.
	// Default Expiry/3.
	RefreshInterval time.Duration
	// DisableAutoRefresh turns the automatic refresh off: the lease then
	// expires Expiry after it was granted or last refreshed by Refresh.
	// Default false (refresh on).
	DisableAutoRefresh bool
	// KeyPrefix is prepended to every key in the lock service's namespace
	// (Redis keys, lock file names). Default "artifactstore:lock:".
	KeyPrefix string
	// Logger receives lease losses and refresh failures. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UnavailableTimeout == 0 {
		c.UnavailableTimeout = DefaultUnavailableTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = max(DefaultMaxRetryInterval, c.RetryInterval)
	}
	if c.Expiry == 0 {
		c.Expiry = DefaultExpiry
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = c.Expiry / 3
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("lock config: Timeout %v is negative", c.Timeout)
	case c.UnavailableTimeout < 0:
		return fmt.Errorf("lock config: UnavailableTimeout %v is negative", c.UnavailableTimeout)
	case c.RetryInterval < 0:
		return fmt.Errorf("lock config: RetryInterval %v is negative", c.RetryInterval)
	case c.MaxRetryInterval < c.RetryInterval:
		return fmt.Errorf("lock config: MaxRetryInterval %v is less than RetryInterval %v", c.MaxRetryInterval, c.RetryInterval)
	case c.Expiry < time.Millisecond:
		return fmt.Errorf("lock config: Expiry %v is under 1ms", c.Expiry)
	case c.RefreshInterval <= 0 || c.RefreshInterval >= c.Expiry:
		return fmt.Errorf("lock config: RefreshInterval %v must be positive and less than Expiry %v", c.RefreshInterval, c.Expiry)
	}
	return nil
}
