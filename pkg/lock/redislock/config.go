package redislock

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvAddrs    = "ARTIFACTSTORE_REDIS_ADDRS"    // comma-separated host:port of each master
	EnvUsername = "ARTIFACTSTORE_REDIS_USERNAME" // ACL user name
	EnvPassword = "ARTIFACTSTORE_REDIS_PASSWORD" // never logged or printed
	EnvDB       = "ARTIFACTSTORE_REDIS_DB"       // database number
)

// Defaults of Config, applied by WithDefaults to zero fields.
const (
	DefaultAddr         = "127.0.0.1:6379"
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 3 * time.Second
	DefaultWriteTimeout = 3 * time.Second
)

// Config says how to reach the Redis masters of the lock: N independent
// masters (not replicas of each other, not a Redis Cluster) form a Redlock
// quorum of N/2+1. The zero value of each field means its default. Print it
// freely: String, Format and LogValue redact the password.
type Config struct {
	// Addrs lists host:port of each independent master. Every process that
	// locks the same keys must list the same masters in the same order (the
	// order picks each key's queue master). Default ["127.0.0.1:6379"].
	Addrs []string
	// Username is the ACL user for AUTH. Default "" (the default user).
	Username string
	// Password authenticates to every master. Default "" (no AUTH). It is
	// never logged, printed or marshalled.
	Password string `json:"-"`
	// DB is the database number used on every master. Default 0.
	DB int
	// DialTimeout bounds connecting to one master. Default 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one reply. Default 3s.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one command. Default 3s.
	WriteTimeout time.Duration
	// PoolSize is the number of connections per master. Default go-redis's
	// (10 per GOMAXPROCS).
	PoolSize int
}

// ConfigFromEnv reads ARTIFACTSTORE_REDIS_ADDRS, ARTIFACTSTORE_REDIS_USERNAME,
// ARTIFACTSTORE_REDIS_PASSWORD and ARTIFACTSTORE_REDIS_DB; unset variables
// leave their field at its default. The result is validated. lookup reads
// one variable: os.LookupEnv, or any layered source a program has.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	getenv := func(name string) string {
		v, _ := lookup(name)
		return v
	}
	var c Config
	if v := getenv(EnvAddrs); v != "" {
		for a := range strings.SplitSeq(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Addrs = append(c.Addrs, a)
			}
		}
	}
	c.Username = getenv(EnvUsername)
	c.Password = getenv(EnvPassword)
	if v := strings.TrimSpace(getenv(EnvDB)); v != "" {
		db, err := strconv.Atoi(v)
		if err != nil {
			return Config{}, fmt.Errorf("redislock: %s=%q is not a number", EnvDB, v)
		}
		c.DB = db
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{DefaultAddr}
	} else {
		c.Addrs = append([]string(nil), c.Addrs...)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
// Its errors never contain the password.
func (c Config) Validate() error {
	c = c.WithDefaults()
	seen := make(map[string]bool, len(c.Addrs))
	for _, a := range c.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("redislock config: address %q is not host:port", a)
		}
		if seen[a] {
			return fmt.Errorf("redislock config: address %q listed twice (Redlock needs independent masters)", a)
		}
		seen[a] = true
	}
	switch {
	case c.DB < 0:
		return fmt.Errorf("redislock config: DB %d is negative", c.DB)
	case c.DialTimeout < 0, c.ReadTimeout < 0, c.WriteTimeout < 0:
		return errors.New("redislock config: timeouts must not be negative")
	case c.PoolSize < 0:
		return fmt.Errorf("redislock config: PoolSize %d is negative", c.PoolSize)
	}
	return nil
}

// Options returns the go-redis options of each master, in Addrs order. A
// lock does not retry a failed command on another connection more than once
// nor redial in a loop: Redlock treats a master that does not answer at once
// as missing and decides on the others, so a dead master must fail fast.
func (c Config) Options() []*redis.Options {
	c = c.WithDefaults()
	opts := make([]*redis.Options, len(c.Addrs))
	for i, a := range c.Addrs {
		opts[i] = &redis.Options{
			Addr:            a,
			Username:        c.Username,
			Password:        c.Password,
			DB:              c.DB,
			DialTimeout:     c.DialTimeout,
			ReadTimeout:     c.ReadTimeout,
			WriteTimeout:    c.WriteTimeout,
			PoolSize:        c.PoolSize,
			MaxRetries:      1,  // one retry, on a fresh connection after a restart
			MinRetryBackoff: -1, // at once
			DialerRetries:   1,
			// Let context deadlines bound socket reads, so that a hung
			// master cannot hold an attempt past Redsync's per-attempt
			// timeout.
			ContextTimeoutEnabled: true,
		}
	}
	return opts
}

// NewClients returns one go-redis client per master, in Addrs order. The
// caller closes them.
func (c Config) NewClients() []*redis.Client {
	opts := c.Options()
	clients := make([]*redis.Client, len(opts))
	for i, o := range opts {
		clients[i] = redis.NewClient(o)
	}
	return clients
}

const redacted = "REDACTED"

// String describes c with the password redacted.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = redacted
	}
	return fmt.Sprintf("redislock.Config{Addrs:%v Username:%q Password:%q DB:%d DialTimeout:%v ReadTimeout:%v WriteTimeout:%v PoolSize:%d}",
		c.Addrs, c.Username, pw, c.DB, c.DialTimeout, c.ReadTimeout, c.WriteTimeout, c.PoolSize)
}

// Format prints String for every verb (%v, %+v, %#v, %s, %q), so no verb
// prints the password.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	fmt.Fprint(f, c.String())
}

// LogValue is the slog form of c, with the password redacted.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("addrs", strings.Join(c.Addrs, ",")),
		slog.Int("db", c.DB),
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("username", c.Username))
	}
	if c.Password != "" {
		attrs = append(attrs, slog.String("password", redacted))
	}
	return slog.GroupValue(attrs...)
}
