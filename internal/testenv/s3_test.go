package testenv

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

func TestUniqueBucketName(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		name := UniqueBucketName()
		if !bucketName.MatchString(name) {
			t.Fatalf("%q is not a valid bucket name", name)
		}
		if seen[name] {
			t.Fatalf("%q returned twice", name)
		}
		seen[name] = true
	}
}

func TestExternalS3(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    S3Server
		wantErr string
	}{
		{"host:port", map[string]string{EnvS3Endpoint: "127.0.0.1:9000", EnvS3AccessKey: "ak", EnvS3SecretKey: "sk"},
			S3Server{Endpoint: "127.0.0.1:9000", AccessKey: "ak", SecretKey: "sk", Region: "us-east-1", Kind: "external"}, ""},
		{"https URL", map[string]string{EnvS3Endpoint: "https://s3.local:9000/", EnvS3AccessKey: "ak", EnvS3SecretKey: "sk", EnvS3Region: "eu-1"},
			S3Server{Endpoint: "s3.local:9000", AccessKey: "ak", SecretKey: "sk", Region: "eu-1", UseSSL: true, Kind: "external"}, ""},
		{"http URL, explicit TLS", map[string]string{EnvS3Endpoint: "http://127.0.0.1:9000", EnvS3AccessKey: "ak", EnvS3SecretKey: "sk", EnvS3UseSSL: "true"},
			S3Server{Endpoint: "127.0.0.1:9000", AccessKey: "ak", SecretKey: "sk", Region: "us-east-1", UseSSL: true, Kind: "external"}, ""},
		{"no credentials", map[string]string{EnvS3Endpoint: "127.0.0.1:9000"}, S3Server{}, "is empty"},
		{"bad USE_SSL", map[string]string{EnvS3Endpoint: "127.0.0.1:9000", EnvS3AccessKey: "ak", EnvS3SecretKey: "sk", EnvS3UseSSL: "maybe"}, S3Server{}, EnvS3UseSSL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey, EnvS3Region, EnvS3UseSSL} {
				t.Setenv(k, tc.env[k])
			}
			got, ok, err := externalS3()
			if !ok {
				t.Fatalf("externalS3 ignored %s", EnvS3Endpoint)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bucketName.MatchString(got.Bucket) {
				t.Errorf("bucket %q", got.Bucket)
			}
			got.Bucket = ""
			if got != tc.want || !got.External() {
				t.Errorf("externalS3() = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Setenv(EnvS3Endpoint, "")
	if _, ok, err := externalS3(); ok || err != nil {
		t.Errorf("externalS3() without %s = %v, %v", EnvS3Endpoint, ok, err)
	}
}

// TestStartVersityGW starts versitygw (ignoring any external server), checks
// that it answers on loopback, and that it is stopped when the test ends.
func TestStartVersityGW(t *testing.T) {
	t.Setenv(EnvS3Endpoint, "")
	t.Setenv(EnvTestS3, "")
	var s S3Server
	t.Run("start", func(t *testing.T) {
		s = StartS3(t)
		if s.External() || !strings.HasPrefix(s.Endpoint, "127.0.0.1:") || s.AccessKey == "" || s.SecretKey == "" {
			t.Fatalf("StartS3 = %+v", s)
		}
		if other := s.WithFreshBucket(); other.Bucket == s.Bucket || other.Endpoint != s.Endpoint {
			t.Errorf("WithFreshBucket = %+v", other)
		}
		resp, err := http.Get(s.URL() + "/")
		if err != nil {
			t.Fatalf("GET %s: %v", s.URL(), err)
		}
		resp.Body.Close()
		if resp.Header.Get("Server") == "" || resp.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous GET / = %s, Server %q; want 403 from versitygw", resp.Status, resp.Header.Get("Server"))
		}
	})
	select {
	case <-s.Process.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("versitygw (pid %d) still running after its test ended", s.Process.PID())
	}
	if err := DialReady(s.Endpoint)(context.Background()); err == nil {
		t.Errorf("%s still accepts connections", s.Endpoint)
	}
}

func TestContainsCredential(t *testing.T) {
	const bucket = "artifactstore-test-0123456789abcdef"
	for _, tc := range []struct {
		out, cred string
		benign    []string
		want      bool
	}{
		{`{"bucket":"` + bucket + `"}`, "artifactstore", []string{bucket}, false},
		{`{"bucket":"` + bucket + `","key":"artifactstore"}`, "artifactstore", []string{bucket}, true},
		{"artifactstore demo: 3 workers", "artifactstore", []string{"artifactstore demo"}, false},
		{"artifactstore demo: secret artifactstore-secret", "artifactstore-secret", []string{"artifactstore demo", bucket}, true},
		{"no credential here", "", nil, false},
		{"AccessKey:testenv1234", "testenv1234", []string{bucket}, true},
	} {
		if got := ContainsCredential(tc.out, tc.cred, tc.benign...); got != tc.want {
			t.Errorf("ContainsCredential(%q, %q, %q) = %v, want %v", tc.out, tc.cred, tc.benign, got, tc.want)
		}
	}
}

// TestStartMinIO starts MinIO (EnvTestS3=minio, ignoring any external
// server), checks that it answers S3 on loopback, and that it is stopped
// when the test ends. A missing minio binary fails it: scripts/test.sh
// builds one.
func TestStartMinIO(t *testing.T) {
	t.Setenv(EnvS3Endpoint, "")
	t.Setenv(EnvTestS3, "minio")
	var s S3Server
	t.Run("start", func(t *testing.T) {
		s = StartS3(t)
		if s.Kind != "minio" || s.External() || !strings.HasPrefix(s.Endpoint, "127.0.0.1:") {
			t.Fatalf("StartS3 = %+v", s)
		}
		resp, err := http.Get(s.URL() + "/")
		if err != nil {
			t.Fatalf("GET %s: %v", s.URL(), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Server"), "MinIO") {
			t.Errorf("anonymous GET / = %s, Server %q; want 403 from MinIO", resp.Status, resp.Header.Get("Server"))
		}
	})
	select {
	case <-s.Process.Exited():
	case <-time.After(10 * time.Second):
		t.Fatalf("minio (pid %d) still running after its test ended", s.Process.PID())
	}
}
