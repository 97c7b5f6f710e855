package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
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

// printEnvHelp describes, from the registry (setup.Variables), the
// variables the tool reads that have no global flag, then the config file.
func printEnvHelp(w io.Writer) {
	fmt.Fprint(w, `Configuration (flags > environment > config file):
  Every store setting is an ARTIFACTSTORE_* variable (package setup reads
  them); the global flags above set the variable they name. Besides those:
`)
	flagged := map[string]bool{}
	for _, gf := range globalFlags() {
		flagged[gf.env] = true
	}
	var names []string
	for _, v := range setup.Variables() {
		if !flagged[v.Name] && v.ReadBy != setup.ReadByDemo && v.ReadBy != setup.ReadByTests {
			names = append(names, v.Name)
		}
	}
	printVariables(w, names)
	fmt.Fprint(w, `  Credentials come from the environment or the config file, never from
  flags. An ARTIFACTSTORE_* variable not listed here is an error that names
  the closest one (a typo would otherwise be ignored).

Config file (--config FILE): one KEY=VALUE per line, KEY an ARTIFACTSTORE_*
variable; blank lines and lines starting with # are ignored; an optional
"export " before KEY and single or double quotes around VALUE are allowed.
An empty environment variable counts as unset.
`)
}

// printVariables prints the registered variables names, with their meaning
// and default, as an indented table.
func printVariables(w io.Writer, names []string) {
	vars := map[string]setup.Variable{}
	for _, v := range setup.Variables() {
		vars[v.Name] = v
	}
	plain := strings.NewReplacer("`", "").Replace
	t := newTable(w)
	for _, n := range names {
		v, ok := vars[n]
		if !ok {
			panic("printVariables: " + n + " is not in setup.Variables") // caught by TestHelpVariablesRegistered
		}
		t.row("  "+v.Name, plain(v.Meaning)+" (default "+plain(v.Default)+")")
	}
	_ = t.flush()
}

// loadConfigFile reads a KEY=VALUE file (see printEnvHelp).
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
// (an empty value counts as unset), then the config file. An
// ARTIFACTSTORE_* variable of the environment or the file that nothing
// reads is an error (setup.CheckEnv) naming the closest known one.
func (a *app) lookup() (func(string) (string, bool), error) {
	if err := setup.CheckEnv(a.environ); err != nil {
		return nil, err
	}
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
		entries := make([]string, 0, len(file))
		for k := range file {
			entries = append(entries, k+"=x") // a set key counts even with an empty value
		}
		slices.Sort(entries)
		if err := setup.CheckEnv(entries); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
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
		cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
			return nil, &exitError{code: exitNotFound, msg: fmt.Sprintf("store directory %s does not exist (put creates it)", d.FileDir)}
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
