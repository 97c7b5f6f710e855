package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables naming an external S3 server. They are the names
// s3backend.ConfigFromEnv reads, so one set of variables points both the
// tests and the programs at, for example, the docker-compose MinIO.
const (
	EnvS3Endpoint  = "ARTIFACTSTORE_S3_ENDPOINT"   // host:port, or http(s)://host:port
	EnvS3AccessKey = "ARTIFACTSTORE_S3_ACCESS_KEY" // required with EnvS3Endpoint
	EnvS3SecretKey = "ARTIFACTSTORE_S3_SECRET_KEY" // required with EnvS3Endpoint
	EnvS3Region    = "ARTIFACTSTORE_S3_REGION"     // default us-east-1
	EnvS3UseSSL    = "ARTIFACTSTORE_S3_USE_SSL"    // true/false; default from the endpoint's scheme, else false
)

// VersityGWVersion is the versitygw release scripts/test.sh installs.
const VersityGWVersion = "v1.8.0"

// EnvTestS3 chooses the S3 server StartS3 starts when no external one is
// named: "versitygw" (the default) or "minio". scripts/test.sh runs the
// S3-facing packages once with each.
const EnvTestS3 = "ARTIFACTSTORE_TEST_S3"

// MinIOModule is the MinIO server scripts/test.sh builds from the Go module
// proxy: the newest source (2026-02-12), which has fixes no release tag
// has (a 412 no longer drops the keep-alive connection, minio/minio#21633;
// conditions are not skipped without read quorum, #21603).
const MinIOModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// S3Server describes an S3-compatible server a test can use, and one bucket
// name on it that no other call returned.
type S3Server struct {
	// Endpoint is host:port, without a scheme.
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string
	UseSSL    bool
	// Bucket is a fresh, unique bucket name. The bucket is not created:
	// create it (s3backend.Config.CreateBucket does) before use.
	Bucket string
	// Process is the server started for the test, nil when the server is
	// external.
	Process *Process
	// Kind is "versitygw", "minio" or "external".
	Kind string
}

// External reports whether the server was named by ARTIFACTSTORE_S3_*
// variables rather than started by the test.
func (s S3Server) External() bool { return s.Process == nil }

// URL returns the endpoint with its scheme.
func (s S3Server) URL() string {
	if s.UseSSL {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

// WithFreshBucket returns a copy of s with a new unique bucket name, for
// several isolated tests sharing one server.
func (s S3Server) WithFreshBucket() S3Server {
	s.Bucket = UniqueBucketName()
	return s
}

// UniqueBucketName returns a valid S3 bucket name (3-63 lowercase letters,
// digits and hyphens) that no other call returns.
func UniqueBucketName() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "artifactstore-test-" + hex.EncodeToString(b[:])
}

// StartS3 returns an S3 server for t with a fresh bucket name. When
// ARTIFACTSTORE_S3_ENDPOINT is set it uses that external server; otherwise it
// starts versitygw with its posix backend on a t.TempDir() directory and a
// loopback port, and stops it by PID when t ends. It fails the test, never
// skips it, when the server cannot be used.
func StartS3(t testing.TB) S3Server {
	t.Helper()
	if s, ok, err := externalS3(); ok || err != nil {
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		return s
	}
	p, s, err := startLocalS3(t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Stop)
	return s
}

// startLocalS3 starts the server EnvTestS3 names on dir.
func startLocalS3(dir string) (*Process, S3Server, error) {
	switch kind := strings.TrimSpace(os.Getenv(EnvTestS3)); kind {
	case "", "versitygw":
		return startVersityGW(dir)
	case "minio":
		return startMinIO(dir)
	default:
		return nil, S3Server{}, fmt.Errorf("%s=%q: want versitygw or minio", EnvTestS3, kind)
	}
}

// StartS3Process is StartS3 without a testing.TB, for TestMain and
// benchmarks that share one server: it returns the server and a stop
// function the caller must call (it stops versitygw by PID and removes its
// directory; it does nothing for an external server).
func StartS3Process() (S3Server, func(), error) {
	if s, ok, err := externalS3(); ok || err != nil {
		return s, func() {}, err
	}
	dir, err := os.MkdirTemp("", "artifactstore-s3-")
	if err != nil {
		return S3Server{}, nil, fmt.Errorf("s3 server: temp dir: %w", err)
	}
	p, s, err := startLocalS3(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return S3Server{}, nil, err
	}
	return s, func() { p.Stop(); _ = os.RemoveAll(dir) }, nil
}

// externalS3 reads the ARTIFACTSTORE_S3_* variables; ok is false when no
// external endpoint is configured.
func externalS3() (s S3Server, ok bool, err error) {
	endpoint := strings.TrimSpace(os.Getenv(EnvS3Endpoint))
	if endpoint == "" {
		return S3Server{}, false, nil
	}
	s = S3Server{
		AccessKey: os.Getenv(EnvS3AccessKey),
		SecretKey: os.Getenv(EnvS3SecretKey),
		Region:    os.Getenv(EnvS3Region),
		Bucket:    UniqueBucketName(),
		Kind:      "external",
	}
	s.Endpoint = endpoint
	if rest, found := strings.CutPrefix(endpoint, "https://"); found {
		s.Endpoint, s.UseSSL = rest, true
	} else if rest, found := strings.CutPrefix(endpoint, "http://"); found {
		s.Endpoint = rest
	}
	s.Endpoint = strings.TrimSuffix(s.Endpoint, "/")
	if v := os.Getenv(EnvS3UseSSL); v != "" {
		if s.UseSSL, err = strconv.ParseBool(v); err != nil {
			return S3Server{}, true, fmt.Errorf("%s=%q: %w", EnvS3UseSSL, v, err)
		}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		return S3Server{}, true, fmt.Errorf("%s is set but %s or %s is empty", EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)
	}
	return s, true, nil
}

// VersityGWBinary finds versitygw on PATH or in GoBin().
func VersityGWBinary() (string, error) {
	return findBinary("versitygw", "install it with `go install github.com/versity/versitygw/cmd/versitygw@"+VersityGWVersion+"`")
}

// findBinary finds the program name on PATH or in GoBin(); install says
// how to get it when it is in neither.
func findBinary(name, install string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join(GoBin(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("%s not found on PATH or in %s; %s (scripts/test.sh does)", name, GoBin(), install)
}

// newServer describes a test S3 server of kind with random root
// credentials and a unique bucket; the caller sets its endpoint.
func newServer(kind string) S3Server {
	var key [12]byte
	_, _ = rand.Read(key[:])
	return S3Server{
		AccessKey: "testenv" + hex.EncodeToString(key[:4]),
		SecretKey: hex.EncodeToString(key[4:]) + "secret",
		Region:    "us-east-1",
		Bucket:    UniqueBucketName(),
		Kind:      kind,
	}
}

// StartVersityGW starts versitygw for t whatever EnvTestS3 says, with its
// internal IAM service on, so that AddReadOnlyUser works, and stops it by
// PID when t ends. It fails the test, never skips it, when the server
// cannot be started.
func StartVersityGW(t testing.TB) S3Server {
	t.Helper()
	dir := t.TempDir()
	iam := filepath.Join(dir, "iam")
	if err := os.Mkdir(iam, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p, s, err := startVersityGW(dir, "--iam-dir", iam)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Stop)
	return s
}

// AddReadOnlyUser creates a user on a versitygw started by StartVersityGW
// (its admin API, with the root credentials) and grants it only
// s3:GetObject and s3:ListBucket on s.Bucket (a bucket policy; the bucket
// must exist). It returns s with the user's credentials.
func (s S3Server) AddReadOnlyUser(t testing.TB) S3Server {
	t.Helper()
	if s.Kind != "versitygw" || s.Process == nil {
		t.Fatalf("testenv: AddReadOnlyUser needs a versitygw started by StartVersityGW, not %s", s.Kind)
	}
	bin, err := VersityGWBinary()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var key [12]byte
	_, _ = rand.Read(key[:])
	ro := s
	ro.AccessKey = "reader" + hex.EncodeToString(key[:4])
	ro.SecretKey = hex.EncodeToString(key[4:]) + "secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "admin",
		"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region, "--endpoint-url", s.URL(),
		"create-user", "--access", ro.AccessKey, "--secret", ro.SecretKey, "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: versitygw admin create-user: %v\n%s", err, out)
	}
	policy := fmt.Sprintf(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": %q,
		"Action": ["s3:GetObject", "s3:ListBucket"],
		"Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}`, ro.AccessKey, s.Bucket, s.Bucket)
	client, err := minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: s.UseSSL, Region: s.Region,
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := client.SetBucketPolicy(ctx, s.Bucket, policy); err != nil {
		t.Fatalf("testenv: read-only policy on %s: %v", s.Bucket, err)
	}
	return ro
}

// startVersityGW starts versitygw serving dir (bucket = subdirectory) on a
// free loopback port with random root credentials, and waits until it
// answers S3 requests. extra are global options (before "posix").
func startVersityGW(dir string, extra ...string) (*Process, S3Server, error) {
	bin, err := VersityGWBinary()
	if err != nil {
		return nil, S3Server{}, err
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, S3Server{}, fmt.Errorf("versitygw: %w", err)
	}
	s := newServer("versitygw")
	// The port can be taken between FindFreePort and versitygw's bind; try
	// a few ports before giving up.
	var lastErr error
	for range 3 {
		port, err := FindFreePort()
		if err != nil {
			return nil, S3Server{}, err
		}
		s.Endpoint = Addr(port)
		args := []string{
			"--access", s.AccessKey,
			"--secret", s.SecretKey,
			"--region", s.Region,
			"--port", s.Endpoint,
			"--keep-alive", // without it every response closes its connection
			"--quiet",
		}
		args = append(append(args, extra...), "posix", root)
		p, err := StartProcess("versitygw", bin, args, httpReady("http://"+s.Endpoint+"/"))
		if err == nil {
			s.Process = p
			return p, s, nil
		}
		lastErr = err
	}
	return nil, S3Server{}, lastErr
}

// httpReady succeeds once url answers an HTTP request with a response
// versitygw sent (any status: an anonymous request is refused with 403).
func httpReady(url string) func(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.Header.Get("Server") == "" && resp.StatusCode != http.StatusForbidden {
			return errors.New("unexpected response " + resp.Status)
		}
		return nil
	}
}

// MinIOBinary finds minio on PATH or in GoBin().
func MinIOBinary() (string, error) {
	return findBinary("minio", "build it with `GOFLAGS=-mod=mod go install "+MinIOModule+"`")
}

// startMinIO starts a single-drive MinIO server on dir/data, on free
// loopback ports, with random root credentials, and waits until it is
// ready to serve S3 requests (/minio/health/cluster: write quorum; the
// "ready" check answers before the object layer is initialized).
func startMinIO(dir string) (*Process, S3Server, error) {
	bin, err := MinIOBinary()
	if err != nil {
		return nil, S3Server{}, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, S3Server{}, fmt.Errorf("minio: %w", err)
	}
	s := newServer("minio")
	env := []string{
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_REGION=" + s.Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	}
	var lastErr error
	for range 3 {
		port, err := FindFreePort()
		if err != nil {
			return nil, S3Server{}, err
		}
		console, err := FindFreePort()
		if err != nil {
			return nil, S3Server{}, err
		}
		s.Endpoint = Addr(port)
		args := []string{"server", "--quiet", "--address", s.Endpoint, "--console-address", Addr(console), data}
		p, err := startProcess("minio", bin, args, env, statusReady("http://"+s.Endpoint+"/minio/health/cluster", http.StatusOK))
		if err == nil {
			s.Process = p
			return p, s, nil
		}
		lastErr = err
	}
	return nil, S3Server{}, lastErr
}

// statusReady succeeds once url answers with status want.
func statusReady(url string, want int) func(ctx context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			return errors.New("unexpected response " + resp.Status)
		}
		return nil
	}
}
