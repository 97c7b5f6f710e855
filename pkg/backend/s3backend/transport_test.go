package s3backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// recordingTransport answers every request with 200 and an ETag, without
// a server, and keeps the requests it saw.
type recordingTransport struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	h := http.Header{"Etag": {`"0123456789abcdef0123456789abcdef"`}, "Last-Modified": {time.Now().UTC().Format(http.TimeFormat)}}
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func (r *recordingTransport) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request was sent")
	}
	return r.reqs[len(r.reqs)-1]
}

// newRecordingBackend returns a Backend of cfg (static keys, path style
// unless set) whose requests go to a recordingTransport.
func newRecordingBackend(t *testing.T, cfg Config) (*Backend, *recordingTransport) {
	t.Helper()
	rt := &recordingTransport{}
	cfg.Transport = rt
	if cfg.Endpoint == "" {
		cfg.Endpoint = "s3.example.test:9000"
	}
	cfg.Bucket, cfg.AccessKey, cfg.SecretKey = "artifacts", "AK", "SK"
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, rt
}

// TestUploadEncryptionAndStorageClass: SSE-S3, SSE-KMS and the storage
// class go with every upload, conditional ones included.
func TestUploadEncryptionAndStorageClass(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          Config
		sse, kmsKey  string
		storageClass string
	}{
		{"none", Config{}, "", "", ""},
		{"sse-s3", Config{SSE: SSES3}, "AES256", "", ""},
		{"sse-kms", Config{SSE: SSEKMS, SSEKMSKeyID: "alias/artifacts", StorageClass: "STANDARD_IA"}, "aws:kms", "alias/artifacts", "STANDARD_IA"},
		{"sse-kms default key", Config{SSE: SSEKMS}, "aws:kms", "", ""},
		{"storage class", Config{StorageClass: "REDUCED_REDUNDANCY"}, "", "", "REDUCED_REDUNDANCY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, rt := newRecordingBackend(t, tc.cfg)
			for _, opts := range []backend.PutOptions{{}, {IfAbsent: true}} {
				if _, err := b.Put(t.Context(), "k", bytes.NewReader([]byte("data")), 4, opts); err != nil {
					t.Fatalf("Put(%+v): %v", opts, err)
				}
				h := rt.last(t).Header
				if h.Get("X-Amz-Server-Side-Encryption") != tc.sse ||
					h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != tc.kmsKey ||
					h.Get("X-Amz-Storage-Class") != tc.storageClass {
					t.Errorf("Put(%+v) headers: SSE %q, KMS key %q, storage class %q; want %q, %q, %q", opts,
						h.Get("X-Amz-Server-Side-Encryption"), h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"),
						h.Get("X-Amz-Storage-Class"), tc.sse, tc.kmsKey, tc.storageClass)
				}
			}
		})
	}
}

// TestBucketLookup: path style puts the bucket in the path, DNS style in
// the host name.
func TestBucketLookup(t *testing.T) {
	for _, tc := range []struct {
		lookup, host, path string
	}{
		{BucketLookupPath, "s3.example.test:9000", "/artifacts/k"},
		{BucketLookupDNS, "artifacts.s3.example.test:9000", "/k"},
		{BucketLookupAuto, "s3.example.test:9000", "/artifacts/k"}, // not a known virtual-host provider
	} {
		t.Run(tc.lookup, func(t *testing.T) {
			b, rt := newRecordingBackend(t, Config{BucketLookup: tc.lookup})
			if _, err := b.Put(t.Context(), "k", bytes.NewReader([]byte("x")), 1, backend.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if u := rt.last(t).URL; u.Host != tc.host || u.Path != tc.path {
				t.Errorf("request to %s%s, want %s%s", u.Host, u.Path, tc.host, tc.path)
			}
		})
	}
}

// clearCredentialEnv unsets every variable minio-go's chain reads before
// the shared file and IAM, for t.
func clearCredentialEnv(t *testing.T) {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
		"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} {
		t.Setenv(name, "")
	}
}

// TestCredentialChain: without keys in the Config, the backend signs with
// the AWS_* variables, or with a profile of a shared credentials file;
// wrong keys from the chain are a permission error.
func TestCredentialChain(t *testing.T) {
	ctx := t.Context()
	roundTrip := func(t *testing.T, mutate func(*Config)) error {
		b := newTestBackend(t, MaxParts, func(c *Config) {
			c.AccessKey, c.SecretKey = "", ""
			mutate(c)
		})
		if _, err := b.Put(ctx, "chain/k", bytes.NewReader([]byte("v")), 1, backend.PutOptions{}); err != nil {
			return err
		}
		rc, _, err := b.Get(ctx, "chain/k")
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err == nil && string(got) != "v" {
			t.Fatalf("read back %q, want v", got)
		}
		return err
	}
	t.Run("AWS variables", func(t *testing.T) {
		clearCredentialEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", server.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", server.SecretKey)
		if err := roundTrip(t, func(*Config) {}); err != nil {
			t.Fatalf("with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: %v", err)
		}
	})
	t.Run("shared file profile", func(t *testing.T) {
		clearCredentialEnv(t)
		file := filepath.Join(t.TempDir(), "credentials")
		content := "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n" +
			"[ci]\naws_access_key_id = " + server.AccessKey + "\naws_secret_access_key = " + server.SecretKey + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, func(c *Config) { c.CredentialsFile, c.Profile = file, "ci" }); err != nil {
			t.Fatalf("with profile ci of %s: %v", file, err)
		}
	})
	t.Run("wrong keys", func(t *testing.T) {
		clearCredentialEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", server.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-"+server.SecretKey)
		s := server.WithFreshBucket()
		cfg := serverConfig(s)
		cfg.AccessKey, cfg.SecretKey, cfg.CreateBucket = "", "", false
		b, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Stat(ctx, "k"); !errors.Is(err, backend.ErrPermissionDenied) {
			t.Fatalf("Stat with a wrong secret from the environment: %v, want ErrPermissionDenied", err)
		}
	})
}

// hungServer accepts TCP connections on loopback and never answers; it
// closes them and stops listening when t ends.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// TestHungServerFailsWithinRequestTimeout: a server that accepts the
// connection and never answers fails each call with a transient error
// after RequestTimeout; the test's own deadline never ends them.
func TestHungServerFailsWithinRequestTimeout(t *testing.T) {
	b, err := New(t.Context(), Config{
		Endpoint: hungServer(t), Bucket: "artifacts", AccessKey: "AK", SecretKey: "SK",
		RequestTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	calls := map[string]func() error{
		"Stat": func() error { _, err := b.Stat(ctx, "k"); return err },
		"Get":  func() error { _, _, err := b.Get(ctx, "k"); return err },
		"Put": func() error {
			_, err := b.Put(ctx, "k", bytes.NewReader([]byte("v")), 1, backend.PutOptions{IfAbsent: true})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, backend.ErrTransient) || !backend.IsTransient(err) {
			t.Errorf("%s on a hung server: %v, want a transient error", name, err)
		}
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s on a hung server ended by the test's deadline: %v", name, err)
		}
	}
}
