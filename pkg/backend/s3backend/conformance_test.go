package s3backend

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

// suiteOptions: whether DeleteIfMatch is enforced depends on the server
// (versitygw v1.8.0 does not quite, community MinIO not at all, see the
// package documentation), so the conditional-delete subtests run only
// where ProbeConditionalDelete says it is; and what happens to a key below
// another key, which the backend contract leaves to the server, too.
var suiteOptions = backendtest.Options{ProbeConditionalDelete: true, KeyBelowObjectUnsupported: true}

// TestConformance runs the backend suite against the real server, a fresh
// bucket per subtest.
func TestConformance(t *testing.T) {
	backendtest.RunWith(t, suiteOptions, func(t *testing.T) backend.Backend {
		return newTestBackend(t, MaxParts, nil)
	})
}

// TestConformancePrefix runs the suite again with Config.Prefix: every
// subtest gets a fresh prefix in one shared bucket that also holds objects
// just outside the prefix, which the suite's List checks would report if
// the prefix leaked, and which must be intact afterwards.
func TestConformancePrefix(t *testing.T) {
	s := server.WithFreshBucket()
	owner, err := New(t.Context(), serverConfig(s))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		_ = owner.Close()
		removeBucket(t, rawClient(t, s), s.Bucket)
	})
	raw := rawClient(t, s)
	n := 0
	backendtest.RunWith(t, suiteOptions, func(t *testing.T) backend.Backend {
		n++
		prefix := fmt.Sprintf("tenant-%02d/", n)
		// Neighbours: a key that extends the prefix without its slash, and
		// the same prefix under another tenant. (The bare prefix itself
		// cannot be a key next to it on a POSIX-backed server.)
		neighbours := []string{strings.TrimSuffix(prefix, "/") + "x", "other-tenant/" + prefix + "k"}
		for _, k := range neighbours {
			if _, err := raw.PutObject(context.WithoutCancel(t.Context()), s.Bucket, k, strings.NewReader("neighbour"), 9, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("put neighbour %q: %v", k, err)
			}
		}
		cfg := serverConfig(s)
		cfg.CreateBucket = false
		cfg.Prefix = strings.TrimSuffix(prefix, "/") // New adds the slash
		b, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatalf("New(prefix %q): %v", cfg.Prefix, err)
		}
		t.Cleanup(func() {
			_ = b.Close()
			ctx := context.WithoutCancel(t.Context())
			for _, k := range neighbours {
				if _, err := raw.StatObject(ctx, s.Bucket, k, minio.StatObjectOptions{}); err != nil {
					t.Errorf("neighbour %q outside the prefix: %v", k, err)
				}
			}
			// Remove this subtest's objects, so that the next prefix's
			// neighbours do not collide with them.
			for oi := range raw.ListObjectsIter(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
				if oi.Err == nil {
					_ = raw.RemoveObject(ctx, s.Bucket, oi.Key, minio.RemoveObjectOptions{})
				}
			}
		})
		return b
	})
}
