package s3backend

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/necrocode/artifactstore/internal/testenv"
)

// server is the S3 server every test of this binary shares: an external
// one named by ARTIFACTSTORE_S3_* variables, or a versitygw TestMain starts
// and stops. Tests isolate themselves by bucket (or prefix), not by server.
var server testenv.S3Server

func TestMain(m *testing.M) {
	if mode := os.Getenv(rssChildEnv); mode != "" {
		// A child process of BenchmarkPeakRSS: it uses the parent's server.
		os.Exit(rssChild(mode))
	}
	s, stop, err := testenv.StartS3Process()
	if err != nil {
		fmt.Fprintf(os.Stderr, "s3backend tests: %v\n", err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	stop()
	os.Exit(code)
}

// serverConfig returns a Config for s that creates its bucket.
func serverConfig(s testenv.S3Server) Config {
	return Config{
		Endpoint:     s.Endpoint,
		Bucket:       s.Bucket,
		Region:       s.Region,
		AccessKey:    s.AccessKey,
		SecretKey:    s.SecretKey,
		UseSSL:       s.UseSSL,
		CreateBucket: true,
	}
}

// rawClient returns a plain minio-go client of s, for checks behind the
// backend's back and for the benchmarks' baseline.
func rawClient(tb testing.TB, s testenv.S3Server) *minio.Client {
	tb.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: s.UseSSL,
		Region: s.Region,
	})
	if err != nil {
		tb.Fatalf("minio.New: %v", err)
	}
	return c
}

// newTestBackend returns a Backend on a fresh bucket of the shared server,
// with cfg adjusted by mutate (when not nil) and built with maxParts parts
// at most. The backend is closed and the bucket removed when t ends.
func newTestBackend(t testing.TB, maxParts int64, mutate func(*Config)) *Backend {
	t.Helper()
	s := server.WithFreshBucket()
	cfg := serverConfig(s)
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := newBackend(t.Context(), cfg, maxParts)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		removeBucket(t, rawClient(t, s), cfg.Bucket)
	})
	return b
}

// removeBucket deletes every object and unfinished upload of bucket, then
// the bucket, so that an external server does not fill up with test
// buckets.
func removeBucket(t testing.TB, c *minio.Client, bucket string) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	for oi := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Errorf("cleanup: list %s: %v", bucket, oi.Err)
			return
		}
		if err := c.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("cleanup: remove %s/%s: %v", bucket, oi.Key, err)
		}
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			_ = c.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
	}
	if err := c.RemoveBucket(ctx, bucket); err != nil {
		t.Errorf("cleanup: remove bucket %s: %v", bucket, err)
	}
}
