package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// envConfig names the config file when --config is not given.
const envConfig = "ARTIFACTSTORE_CONFIG"

// globals are the flags every command accepts, before or after its name.
// Each store setting is the value of an ARTIFACTSTORE_* variable: a flag
// sets it above the environment and the config file.
type globals struct {
	config      string            // --config FILE
	set         map[string]string // variable -> value, from flags
	verbose     bool
	metricsAddr string // --metrics-addr HOST:PORT
}

// globalFlag maps a flag to the variable it sets.
type globalFlag struct {
	name, env, usage string
	bool             bool
}

// globalFlags lists the store settings available as flags. Every other
// ARTIFACTSTORE_* variable is read from the environment or --config file.
func globalFlags() []globalFlag {
	return []globalFlag{
		{name: "backend", env: setup.EnvBackend, usage: "storage `KIND`: file (default), s3 or memory (memory lasts one invocation)"},
		{name: "dir", env: setup.EnvDir, usage: "directory `DIR` of the file backend (required with it)"},
		{name: "lock", env: setup.EnvLock, usage: "lock `KIND`: file, redis, memory or none (default: file with the file backend, redis with s3)"},
		{name: "lock-dir", env: setup.EnvLockDir, usage: "directory `DIR` of the file locks (default: the backend DIR/locks)"},
		{name: "lock-timeout", env: store.EnvPrefix + "LOCK_TIMEOUT", usage: "how long a write waits for the artifact's lock (`DURATION`, default 30s)"},
		{name: "versioning", env: store.EnvPrefix + "VERSIONING", usage: "uploads add a version instead of replacing", bool: true},
		{name: "compression", env: store.EnvPrefix + "COMPRESSION", usage: "gzip uploads of 1 KiB or more", bool: true},
		{name: "s3-endpoint", env: s3backend.EnvEndpoint, usage: "S3 `HOST:PORT` or URL (with --backend s3)"},
		{name: "s3-bucket", env: s3backend.EnvBucket, usage: "S3 `BUCKET`"},
		{name: "s3-prefix", env: s3backend.EnvPrefix, usage: "key `PREFIX` inside the bucket"},
		{name: "redis", env: redislock.EnvAddrs, usage: "comma-separated Redis master `ADDRS` (with --lock redis)"},
	}
}

// envFlag is a flag.Value that records its value under a variable name.
type envFlag struct {
	g    *globals
	env  string
	bool bool
}

func (f *envFlag) String() string {
	if f == nil || f.g == nil {
		return ""
	}
	return f.g.set[f.env]
}

func (f *envFlag) Set(v string) error {
	if f.bool {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		v = strconv.FormatBool(b)
	}
	f.g.set[f.env] = v
	return nil
}

func (f *envFlag) IsBoolFlag() bool { return f.bool }

// otherEnvHelp describes the variables that have no flag.
const otherEnvHelp = `Configuration (flags > environment > config file):
  Every store setting is an ARTIFACTSTORE_* variable (package setup reads
  them); the global flags above set the variable they name. Besides those:
  ARTIFACTSTORE_CONFIG                    config file when --config is not given
  ARTIFACTSTORE_FILE_NO_SYNC              skip the file backend's fsyncs (true/false)
  ARTIFACTSTORE_LOCK_EXPIRY               lock lease expiry (default 30s)
  ARTIFACTSTORE_LOCK_RETRY_INTERVAL       first lock retry delay (default 100ms)
  ARTIFACTSTORE_LOCK_REFRESH_INTERVAL     lease refresh period (default expiry/3)
  ARTIFACTSTORE_LOCK_KEY_PREFIX           lock key namespace
  ARTIFACTSTORE_MAX_VERSIONS              versions kept with versioning (default 0: all)
  ARTIFACTSTORE_COMPRESSION_MIN_SIZE, ARTIFACTSTORE_COMPRESSION_LEVEL
  ARTIFACTSTORE_DISABLE_VERIFY            skip SHA-256 checks on download
  ARTIFACTSTORE_DISABLE_LOCKING           same as --lock none
  ARTIFACTSTORE_RETRY_MAX, ARTIFACTSTORE_RETRY_INITIAL, ARTIFACTSTORE_RETRY_MAX_DELAY
  ARTIFACTSTORE_MAX_METADATA_BYTES, ARTIFACTSTORE_MAX_TAGS, ARTIFACTSTORE_LIST_CONCURRENCY
  ARTIFACTSTORE_MAX_CONFLICT_RETRIES, ARTIFACTSTORE_CONFLICT_BACKOFF
  ARTIFACTSTORE_WRITER_ID, ARTIFACTSTORE_ALLOW_UNFENCED_WRITES
  ARTIFACTSTORE_S3_REGION, ARTIFACTSTORE_S3_ACCESS_KEY, ARTIFACTSTORE_S3_SECRET_KEY,
  ARTIFACTSTORE_S3_SESSION_TOKEN, ARTIFACTSTORE_S3_USE_SSL,
  ARTIFACTSTORE_S3_INSECURE_SKIP_VERIFY, ARTIFACTSTORE_S3_CREATE_BUCKET,
  ARTIFACTSTORE_S3_PART_SIZE, ARTIFACTSTORE_S3_MAX_ATTEMPTS
  ARTIFACTSTORE_REDIS_USERNAME, ARTIFACTSTORE_REDIS_PASSWORD, ARTIFACTSTORE_REDIS_DB
  Credentials come from the environment or the config file, never from flags.

Config file (--config FILE): one KEY=VALUE per line, KEY an ARTIFACTSTORE_*
variable; blank lines and lines starting with # are ignored; an optional
"export " before KEY and single or double quotes around VALUE are allowed.
An empty environment variable counts as unset.
`

// loadConfigFile reads a KEY=VALUE file (see otherEnvHelp).
func loadConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrf("", "--config: %v", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case !ok:
			return nil, usageErrf("", "--config %s:%d: want KEY=VALUE", path, n)
		case !strings.HasPrefix(key, store.EnvPrefix) || key == store.EnvPrefix:
			return nil, usageErrf("", "--config %s:%d: %q is not an %s* variable", path, n, key, store.EnvPrefix)
		case key == envConfig:
			return nil, usageErrf("", "--config %s:%d: %s cannot be set in a config file", path, n, envConfig)
		}
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		vars[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, usageErrf("", "--config %s: %v", path, err)
	}
	return vars, nil
}

// lookup returns the layered variable lookup: flags, then the environment
// (an empty value counts as unset), then the config file.
func (a *app) lookup() (func(string) (string, bool), error) {
	path := a.g.config
	if path == "" {
		path, _ = a.env(envConfig)
	}
	file := map[string]string{}
	if path != "" {
		var err error
		if file, err = loadConfigFile(path); err != nil {
			return nil, err
		}
	}
	flags := a.g.set
	return func(name string) (string, bool) {
		if v, ok := flags[name]; ok {
			return v, true
		}
		if v, ok := a.env(name); ok && v != "" {
			return v, true
		}
		v, ok := file[name]
		return v, ok
	}, nil
}

// config builds the setup configuration from the layered lookup (flags over
// the environment over the config file).
func (a *app) config() (setup.Config, error) {
	lookup, err := a.lookup()
	if err != nil {
		return setup.Config{}, err
	}
	cfg, err := setup.FromEnv(lookup)
	if err != nil {
		return setup.Config{}, err
	}
	if a.g.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		redis.SetLogger(redislock.GoRedisLogger{Logger: cfg.Logger})
	}
	return cfg, nil
}

// openOpts are what a command needs of the store it opens.
type openOpts struct {
	// create lets a missing file-backend directory be created (put only):
	// other commands report it as not found rather than make an empty
	// store in a mistyped directory.
	create bool
	// adjust changes the configuration before the store opens
	// (cleanup's retention overrides).
	adjust func(*setup.Config)
}

// open opens the store the configuration describes. The caller closes it.
func (a *app) open(ctx context.Context, o openOpts) (*setup.Opened, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if o.adjust != nil {
		o.adjust(&cfg)
	}
	if d := cfg.WithDefaults(); d.Backend == setup.BackendFile && !o.create {
		if _, err := os.Stat(d.FileDir); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store directory %q does not exist (put creates it): %w", d.FileDir, store.ErrNotFound)
		}
	}
	return setup.Open(ctx, cfg)
}

// withStore opens the store, runs fn and closes the store, joining a close
// failure to fn's error.
func (a *app) withStore(ctx context.Context, o openOpts, fn func(s *store.Store, opened *setup.Opened) error) (err error) {
	stop, err := a.serveMetrics(&o)
	if err != nil {
		return err
	}
	defer stop()
	opened, err := a.open(ctx, o)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := opened.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	return fn(opened.Store, opened)
}
