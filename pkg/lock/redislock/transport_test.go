package redislock_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/redislock"
)

// TestOptionsFromAddresses: host:port and redis:// / rediss:// URLs give
// each master its address, credentials, database and TLS; a URL's parts
// win over the shared fields for its master only.
func TestOptionsFromAddresses(t *testing.T) {
	c := redislock.Config{
		Addrs:    []string{"10.0.0.1:6379", "redis://alice:pw1@10.0.0.2/4", "rediss://10.0.0.3:6380", "rediss://bob@[::1]"},
		Username: "shared", Password: "shared-pw", DB: 1,
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := c.Options()
	want := []struct {
		addr, user, pw string
		db             int
		serverName     string // "" for no TLS
	}{
		{"10.0.0.1:6379", "shared", "shared-pw", 1, ""},
		{"10.0.0.2:6379", "alice", "pw1", 4, ""},
		{"10.0.0.3:6380", "shared", "shared-pw", 1, "10.0.0.3"},
		{"[::1]:6379", "bob", "shared-pw", 1, "::1"},
	}
	if len(opts) != len(want) {
		t.Fatalf("%d options, want %d", len(opts), len(want))
	}
	for i, w := range want {
		o := opts[i]
		if o.Addr != w.addr || o.Username != w.user || o.Password != w.pw || o.DB != w.db || (o.TLSConfig != nil) != (w.serverName != "") {
			t.Errorf("master %d: Addr %q Username %q Password %q DB %d TLS %v, want %+v",
				i, o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil, w)
		}
		if o.TLSConfig != nil && (o.TLSConfig.ServerName != w.serverName || o.TLSConfig.InsecureSkipVerify) {
			t.Errorf("master %d: TLS ServerName %q InsecureSkipVerify %v, want %q, verified",
				i, o.TLSConfig.ServerName, o.TLSConfig.InsecureSkipVerify, w.serverName)
		}
	}
	tlsAll := redislock.Config{Addrs: []string{"h1:1", "h2:2"}, TLS: true, TLSServerName: "redis.internal"}
	for i, o := range tlsAll.Options() {
		if o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.internal" {
			t.Errorf("TLS for all, master %d: %+v, want TLS with ServerName redis.internal", i, o.TLSConfig)
		}
	}
}

// TestURLPasswordRedacted: a password inside a URL is never printed,
// logged, marshalled or put in an error.
func TestURLPasswordRedacted(t *testing.T) {
	const secret = "url-s3cret-do-not-print"
	c := redislock.Config{Addrs: []string{"redis://u:" + secret + "@h1:6379", "redis://u:" + secret + "@h1:6379"}}
	verr := c.Validate() // listed twice: the error names the address
	if verr == nil {
		t.Fatal("Validate accepted the same master twice")
	}
	if printed := printedForms(t, c, verr.Error()); strings.Contains(printed, secret) {
		t.Fatalf("URL password printed:\n%s", printed)
	}
	if !strings.Contains(c.String(), "u:REDACTED@h1:6379") {
		t.Fatalf("String() = %q, want the address with its password redacted", c.String())
	}
}

// TestUnreachableFailsFast: with nothing listening, Acquire fails with
// lock.ErrUnavailable after UnavailableTimeout, not after its own (hour
// long) timeout: the test's deadline never ends it.
func TestUnreachableFailsFast(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	l, err := redislock.Open(redislock.Config{Addrs: []string{testenv.Addr(port)}, DialTimeout: 200 * time.Millisecond},
		lock.Config{Timeout: time.Hour, UnavailableTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	_, err = l.Acquire(t.Context(), "k")
	if !errors.Is(err, lock.ErrUnavailable) || !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Acquire with nothing listening: %v, want ErrUnavailable and ErrTimeout", err)
	}
	if errors.Is(err, lock.ErrPermissionDenied) || t.Context().Err() != nil {
		t.Fatalf("Acquire with nothing listening: %v, want the unavailability reported before the test's deadline", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Acquire with nothing listening: %v, want the dial error in the chain", err)
	}
}

// TestRefusedCredentialsFailAtOnce: a wrong password, an unknown ACL user
// and an ACL user without the rights the lock needs fail the first attempt
// with lock.ErrPermissionDenied, with no wait.
func TestRefusedCredentialsFailAtOnce(t *testing.T) {
	srv := testenv.StartRedis(t, "--requirepass", "right-password",
		"--user", "reader", "on", ">reader-pw", "~*", "&*", "+@read", "+ping", "+hello", "+auth",
		"--user", "locker", "on", ">locker-pw", "~*", "&*", "+@all")
	for _, tc := range []struct {
		name string
		rc   redislock.Config
		ok   bool
	}{
		{"right password", redislock.Config{Password: "right-password"}, true},
		{"ACL user in URL", redislock.Config{Addrs: []string{"redis://locker:locker-pw@" + srv.Addr()}}, true},
		{"wrong password", redislock.Config{Password: "wrong-password"}, false},
		{"no password", redislock.Config{}, false},
		{"unknown user", redislock.Config{Username: "nobody", Password: "x"}, false},
		{"user without rights", redislock.Config{Username: "reader", Password: "reader-pw"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.rc.Addrs) == 0 {
				tc.rc.Addrs = []string{srv.Addr()}
			}
			l, err := redislock.Open(tc.rc, lock.Config{Timeout: time.Hour, UnavailableTimeout: time.Hour, KeyPrefix: "auth:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			ls, err := l.Acquire(t.Context(), "k")
			if tc.ok {
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				if err := ls.Release(t.Context()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, lock.ErrPermissionDenied) || errors.Is(err, lock.ErrTimeout) {
				t.Fatalf("Acquire: %v, want ErrPermissionDenied at once (no timeout)", err)
			}
			if strings.Contains(err.Error(), "reader-pw") || strings.Contains(err.Error(), "right-password") {
				t.Fatalf("error shows a password: %v", err)
			}
		})
	}
}

// printedForms is every way c can be printed, logged or marshalled, and
// extra, one per line.
func printedForms(t *testing.T, c redislock.Config, extra ...string) string {
	t.Helper()
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(append(extra,
		c.String(), fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c, c), fmt.Sprint(c.LogValue()), string(js)), "\n")
}

// tlsFiles are PEM files made by newTLSFiles.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey, otherCA string
}

// newTLSFiles writes a CA, a server certificate for 127.0.0.1 and
// "redis.test", a client certificate, both signed by the CA, and an
// unrelated CA, into a temporary directory.
func newTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
	}
	sign := func(tmpl, parent *x509.Certificate, k, parentKey *ecdsa.PrivateKey) []byte {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		k := newKey()
		tmpl := template(cn)
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		return tmpl, k, sign(tmpl, tmpl, k, k)
	}
	leaf := func(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage, certFile, keyFile string) (string, string) {
		k := newKey()
		tmpl := template(name)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{name}
		}
		der := sign(tmpl, ca, k, caKey)
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(certFile, "CERTIFICATE", der), write(keyFile, "EC PRIVATE KEY", kder)
	}
	ca, caKey, caDER := newCA("artifactstore test CA")
	_, _, otherDER := newCA("some other CA")
	var f tlsFiles
	f.ca = write("ca.pem", "CERTIFICATE", caDER)
	f.otherCA = write("other-ca.pem", "CERTIFICATE", otherDER)
	f.serverCert, f.serverKey = leaf("redis.test", ca, caKey, x509.ExtKeyUsageServerAuth, "server.pem", "server-key.pem")
	f.clientCert, f.clientKey = leaf("artifacts client", ca, caKey, x509.ExtKeyUsageClientAuth, "client.pem", "client-key.pem")
	return f
}

// startTLSRedis starts a redis-server that speaks TLS only (--port 0) on a
// loopback port and requires a client certificate signed by f.ca; it is
// stopped by PID when t ends.
func startTLSRedis(t *testing.T, f tlsFiles) string {
	t.Helper()
	port := testenv.FreePort(t)
	addr := testenv.Addr(port)
	args := []string{
		"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", f.serverCert, "--tls-key-file", f.serverKey, "--tls-ca-cert-file", f.ca,
		"--tls-auth-clients", "yes",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning",
	}
	testenv.Start(t, "redis-server (TLS) "+addr, testenv.RedisBinary, args, testenv.DialReady(addr))
	return addr
}

// TestTLS: a lock over a TLS-only redis-server works with the CA and a
// client certificate, through rediss:// or the TLS field, and fails
// without them, with another CA, or with a server name the certificate
// does not have; certificate checks are never skipped by default.
func TestTLS(t *testing.T) {
	f := newTLSFiles(t)
	addr := startTLSRedis(t, f)
	good := redislock.Config{TLSCAFile: f.ca, TLSCertFile: f.clientCert, TLSKeyFile: f.clientKey, DialTimeout: 2 * time.Second}
	for _, tc := range []struct {
		name   string
		change func(c *redislock.Config)
		ok     bool
	}{
		{"rediss URL", func(c *redislock.Config) { c.Addrs = []string{"rediss://" + addr} }, true},
		{"TLS field", func(c *redislock.Config) { c.TLS = true }, true},
		{"server name in the certificate", func(c *redislock.Config) { c.TLS, c.TLSServerName = true, "redis.test" }, true},
		{"plain redis URL", func(c *redislock.Config) {
			c.Addrs = []string{"redis://" + addr}
			c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile = "", "", ""
		}, false},
		{"no client certificate", func(c *redislock.Config) { c.TLS, c.TLSCertFile, c.TLSKeyFile = true, "", "" }, false},
		{"system roots", func(c *redislock.Config) { c.TLS, c.TLSCAFile = true, "" }, false},
		{"other CA", func(c *redislock.Config) { c.TLS, c.TLSCAFile = true, f.otherCA }, false},
		{"wrong server name", func(c *redislock.Config) { c.TLS, c.TLSServerName = true, "elsewhere.test" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := good
			rc.Addrs = []string{addr}
			tc.change(&rc)
			l, err := redislock.Open(rc, lock.Config{Timeout: time.Hour, UnavailableTimeout: 500 * time.Millisecond, KeyPrefix: "tls:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			ls, err := l.Acquire(t.Context(), "k")
			if !tc.ok {
				if err == nil || !errors.Is(err, lock.ErrUnavailable) {
					t.Fatalf("Acquire: %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Acquire over TLS: %v", err)
			}
			st, err := l.Inspect(t.Context(), "k")
			if err != nil || !st.Held || st.Fence != ls.Fence() {
				t.Fatalf("Inspect over TLS = %+v, %v; want held with fence %d", st, err, ls.Fence())
			}
			if err := ls.Release(t.Context()); err != nil {
				t.Fatalf("Release over TLS: %v", err)
			}
		})
	}
}
