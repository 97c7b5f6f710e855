package redislock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvAddrs                 = "ARTIFACTSTORE_REDIS_ADDRS"                    // comma-separated host:port, redis:// or rediss:// URL of each master
	EnvUsername              = "ARTIFACTSTORE_REDIS_USERNAME"                 // ACL user name
	EnvPassword              = "ARTIFACTSTORE_REDIS_PASSWORD"                 // never logged or printed
	EnvDB                    = "ARTIFACTSTORE_REDIS_DB"                       // database number
	EnvTLS                   = "ARTIFACTSTORE_REDIS_TLS"                      // boolean: TLS to every master
	EnvTLSCAFile             = "ARTIFACTSTORE_REDIS_TLS_CA_FILE"              // PEM CA certificates
	EnvTLSCertFile           = "ARTIFACTSTORE_REDIS_TLS_CERT_FILE"            // PEM client certificate
	EnvTLSKeyFile            = "ARTIFACTSTORE_REDIS_TLS_KEY_FILE"             // PEM client key
	EnvTLSServerName         = "ARTIFACTSTORE_REDIS_TLS_SERVER_NAME"          // name the server certificate must have
	EnvTLSInsecureSkipVerify = "ARTIFACTSTORE_REDIS_TLS_INSECURE_SKIP_VERIFY" // boolean, tests only
	EnvDialTimeout           = "ARTIFACTSTORE_REDIS_DIAL_TIMEOUT"             // Go duration
	EnvReadTimeout           = "ARTIFACTSTORE_REDIS_READ_TIMEOUT"             // Go duration
	EnvWriteTimeout          = "ARTIFACTSTORE_REDIS_WRITE_TIMEOUT"            // Go duration
	EnvPoolSize              = "ARTIFACTSTORE_REDIS_POOL_SIZE"                // connections per master
)

// Defaults of Config, applied by WithDefaults to zero fields.
const (
	DefaultAddr         = "127.0.0.1:6379"
	DefaultPort         = "6379" // of a redis:// or rediss:// URL without one
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 3 * time.Second
	DefaultWriteTimeout = 3 * time.Second
)

// Config says how to reach the Redis masters of the lock: N independent
// masters (not replicas of each other, not a Redis Cluster) form a Redlock
// quorum of N/2+1. The zero value of each field means its default. Print it
// freely: String, Format and LogValue redact the password (also one inside
// a URL).
type Config struct {
	// Addrs lists each independent master as host:port, or as a URL
	// redis://[user[:password]@]host[:port][/db] or rediss://... (TLS; the
	// port defaults to 6379). A URL's user, password and database apply to
	// that master in place of Username, Password and DB; other URL parts
	// (query options) are refused. Every process that locks the same keys
	// must list the same masters in the same order (the order picks each
	// key's queue master). Default ["127.0.0.1:6379"].
	Addrs []string
	// Username is the ACL user for AUTH. Default "" (the default user).
	Username string
	// Password authenticates to every master. Default "" (no AUTH). It is
	// never logged, printed or marshalled.
	Password string `json:"-"`
	// DB is the database number used on every master. Default 0.
	DB int

	// TLS connects to every master over TLS (a rediss:// address does for
	// its master). Default false.
	TLS bool
	// TLSCAFile is a PEM file of the CA certificates that verify the
	// servers. Default "": the system's roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the PEM client certificate and key
	// for servers that ask for one (tls-auth-clients); both or neither.
	// Default "": no client certificate.
	TLSCertFile string
	TLSKeyFile  string
	// TLSServerName is the name the servers' certificates must have.
	// Default: the host of each address.
	TLSServerName string
	// TLSInsecureSkipVerify accepts any server certificate: for tests
	// only, it gives up the server's authentication. Default false.
	TLSInsecureSkipVerify bool

	// DialTimeout bounds connecting to one master (TLS handshake and AUTH
	// included). It also bounds how long a lock keeps retrying an
	// unreachable service when opened by package setup
	// (lock.Config.UnavailableTimeout). Default 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one reply. Default 3s.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one command. Default 3s.
	WriteTimeout time.Duration
	// PoolSize is the number of connections per master. Default go-redis's
	// (10 per GOMAXPROCS).
	PoolSize int
}

// ConfigFromEnv reads ARTIFACTSTORE_REDIS_ADDRS, _USERNAME, _PASSWORD,
// _DB, _TLS, _TLS_CA_FILE, _TLS_CERT_FILE, _TLS_KEY_FILE,
// _TLS_SERVER_NAME, _TLS_INSECURE_SKIP_VERIFY, _DIAL_TIMEOUT,
// _READ_TIMEOUT, _WRITE_TIMEOUT (Go durations, "500ms") and _POOL_SIZE;
// unset or empty variables leave their field at its default. A malformed
// value is an error naming the variable; the result is validated. Errors
// match lock.ErrInvalidArgument. lookup reads one variable: os.LookupEnv
// (when nil), or any layered source a program has.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	getenv := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	c := Config{
		Username:      getenv(EnvUsername),
		TLSCAFile:     getenv(EnvTLSCAFile),
		TLSCertFile:   getenv(EnvTLSCertFile),
		TLSKeyFile:    getenv(EnvTLSKeyFile),
		TLSServerName: getenv(EnvTLSServerName),
	}
	c.Password, _ = lookup(EnvPassword) // as given: spaces may be part of it
	for a := range strings.SplitSeq(getenv(EnvAddrs), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Addrs = append(c.Addrs, a)
		}
	}
	var errs []error
	parseVars(getenv, &errs, "a boolean", strconv.ParseBool,
		envVar[bool]{EnvTLS, &c.TLS}, envVar[bool]{EnvTLSInsecureSkipVerify, &c.TLSInsecureSkipVerify})
	parseVars(getenv, &errs, "a number", strconv.Atoi,
		envVar[int]{EnvDB, &c.DB}, envVar[int]{EnvPoolSize, &c.PoolSize})
	parseVars(getenv, &errs, "a duration such as 2s", time.ParseDuration,
		envVar[time.Duration]{EnvDialTimeout, &c.DialTimeout},
		envVar[time.Duration]{EnvReadTimeout, &c.ReadTimeout},
		envVar[time.Duration]{EnvWriteTimeout, &c.WriteTimeout})
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// envVar binds one environment variable to a Config field of type T.
type envVar[T any] struct {
	name string
	dst  *T
}

// parseVars sets each field whose variable is set, with parse; a
// malformed value adds an error naming the variable and what it should be.
func parseVars[T any](getenv func(string) string, errs *[]error, what string, parse func(string) (T, error), vars ...envVar[T]) {
	for _, ev := range vars {
		v := getenv(ev.name)
		if v == "" {
			continue
		}
		x, err := parse(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("redislock: %w: %s=%q is not %s", lock.ErrInvalidArgument, ev.name, v, what))
			continue
		}
		*ev.dst = x
	}
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

// master is one entry of Addrs, resolved against c's shared settings.
type master struct {
	addr     string // host:port
	host     string
	username string
	password string
	db       int
	tls      bool
}

// masters resolves every address of c (after defaults) into its master.
// Its errors never contain a password.
func (c Config) masters() ([]master, error) {
	ms := make([]master, 0, len(c.Addrs))
	seen := make(map[string]bool, len(c.Addrs))
	for _, a := range c.Addrs {
		m, err := c.parseAddr(a)
		if err != nil {
			return nil, err
		}
		if seen[m.addr] {
			return nil, fmt.Errorf("redislock config: %w: address %q listed twice (Redlock needs independent masters)",
				lock.ErrInvalidArgument, redactAddr(a))
		}
		seen[m.addr] = true
		ms = append(ms, m)
	}
	return ms, nil
}

func (c Config) parseAddr(a string) (master, error) {
	m := master{username: c.Username, password: c.Password, db: c.DB, tls: c.TLS}
	bad := func(why string) (master, error) {
		return master{}, fmt.Errorf("redislock config: %w: address %q %s", lock.ErrInvalidArgument, redactAddr(a), why)
	}
	if !strings.Contains(a, "://") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return bad("is not host:port, redis://host:port or rediss://host:port")
		}
		m.addr, m.host = a, host
		return m, nil
	}
	u, err := url.Parse(a)
	if err != nil {
		return bad("is not a URL")
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		m.tls = true
	default:
		return bad("has scheme " + strconv.Quote(u.Scheme) + ", not redis or rediss")
	}
	if u.Hostname() == "" {
		return bad("has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("has options after the host: use the Config fields (or ARTIFACTSTORE_REDIS_* variables)")
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	}
	m.host = u.Hostname()
	m.addr = net.JoinHostPort(m.host, port)
	if u.User != nil {
		m.username = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			m.password = pw
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return bad("has a database that is not a number")
		}
		m.db = n
	}
	return m, nil
}

// redactAddr is a as errors and logs show it: a URL's password replaced.
func redactAddr(a string) string {
	if !strings.Contains(a, "://") {
		return a
	}
	u, err := url.Parse(a)
	if err != nil {
		return "(unparsable URL)" // it may hold a password
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	return u.String()
}

// tlsConfig is the TLS configuration of a master whose host is host.
func (c Config) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("redislock config: %w: TLS CA file: %w", lock.ErrInvalidArgument, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redislock config: %w: TLS CA file %q holds no PEM certificate", lock.ErrInvalidArgument, c.TLSCAFile)
		}
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("redislock config: %w: TLS client certificate: %w", lock.ErrInvalidArgument, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Validate reports the first invalid field of c after defaults are
// applied, with an error matching lock.ErrInvalidArgument. It reads the TLS
// files to check them. Its errors never contain the password.
func (c Config) Validate() error {
	c = c.WithDefaults()
	ms, err := c.masters()
	if err != nil {
		return err
	}
	anyTLS := false
	for _, m := range ms {
		anyTLS = anyTLS || m.tls
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("redislock config: %w: "+format, append([]any{lock.ErrInvalidArgument}, args...)...)
	}
	switch {
	case c.DB < 0:
		return bad("DB %d is negative", c.DB)
	case c.DialTimeout < 0, c.ReadTimeout < 0, c.WriteTimeout < 0:
		return bad("timeouts must not be negative")
	case c.PoolSize < 0:
		return bad("PoolSize %d is negative", c.PoolSize)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return bad("TLSCertFile and TLSKeyFile must be set together")
	case !anyTLS && (c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify):
		return bad("TLS options are set but TLS is off (set TLS or use rediss:// addresses)")
	case anyTLS:
		if _, err := c.tlsConfig(ms[0].host); err != nil {
			return err
		}
	}
	return nil
}

// Options returns the go-redis options of each master, in Addrs order, for
// a valid c (Open checks). A lock does not retry a failed command on
// another connection more than once nor redial in a loop: Redlock treats a
// master that does not answer at once as missing and decides on the
// others, so a dead master must fail fast. A TLS file that can no longer
// be read makes every dial fail with that error.
func (c Config) Options() []*redis.Options {
	c = c.WithDefaults()
	ms, err := c.masters()
	if err != nil {
		// Only an invalid c gets here: one option per address that
		// fails every dial with the reason.
		ms = make([]master, len(c.Addrs))
		for i, a := range c.Addrs {
			ms[i] = master{addr: redactAddr(a)}
		}
	}
	opts := make([]*redis.Options, len(ms))
	for i, m := range ms {
		o := &redis.Options{
			Addr:            m.addr,
			Username:        m.username,
			Password:        m.password,
			DB:              m.db,
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
		dialErr := err
		if dialErr == nil && m.tls {
			o.TLSConfig, dialErr = c.tlsConfig(m.host)
		}
		if dialErr != nil {
			o.Dialer = func(context.Context, string, string) (net.Conn, error) { return nil, dialErr }
		}
		opts[i] = o
	}
	return opts
}

// NewClients returns one go-redis client per master, in Addrs order, each
// with PermissionHook. The caller closes them.
func (c Config) NewClients() []*redis.Client {
	opts := c.Options()
	clients := make([]*redis.Client, len(opts))
	for i, o := range opts {
		clients[i] = redis.NewClient(o)
		clients[i].AddHook(PermissionHook{})
	}
	return clients
}

const redacted = "REDACTED"

// redactedAddrs is Addrs with the passwords of URLs redacted.
func (c Config) redactedAddrs() []string {
	out := make([]string, len(c.Addrs))
	for i, a := range c.Addrs {
		out[i] = redactAddr(a)
	}
	return out
}

// String describes c with the password redacted.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = redacted
	}
	return fmt.Sprintf("redislock.Config{Addrs:%v Username:%q Password:%q DB:%d TLS:%t TLSCAFile:%q TLSCertFile:%q TLSKeyFile:%q TLSServerName:%q TLSInsecureSkipVerify:%t DialTimeout:%v ReadTimeout:%v WriteTimeout:%v PoolSize:%d}",
		c.redactedAddrs(), c.Username, pw, c.DB, c.TLS, c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSServerName,
		c.TLSInsecureSkipVerify, c.DialTimeout, c.ReadTimeout, c.WriteTimeout, c.PoolSize)
}

// MarshalJSON encodes c without the password, also one inside a URL.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config // without the methods
	p := plain(c)
	p.Addrs = c.redactedAddrs()
	return json.Marshal(p)
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
		slog.String("addrs", strings.Join(c.redactedAddrs(), ",")),
		slog.Int("db", c.DB),
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("username", c.Username))
	}
	if c.Password != "" {
		attrs = append(attrs, slog.String("password", redacted))
	}
	if c.TLS {
		attrs = append(attrs, slog.Bool("tls", true))
	}
	return slog.GroupValue(attrs...)
}
