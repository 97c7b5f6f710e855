package s3backend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// TestDeleteIfMatch checks the conditional DELETE against the server: one
// presigned request with a signed, quoted If-Match header, and the answers
// mapped with the server's error kept in the chain.
func TestDeleteIfMatch(t *testing.T) {
	ct := newCountingTransport(t)
	var mu sync.Mutex
	var deletes []*http.Request
	ct.inspect = func(req *http.Request) {
		if req.Method == http.MethodDelete {
			mu.Lock()
			deletes = append(deletes, req)
			mu.Unlock()
		}
	}
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct; c.Prefix = "p" })
	ctx := t.Context()
	first := mustPut(t, b, "cd/key", []byte("one"), backend.PutOptions{})
	second := mustPut(t, b, "cd/key", []byte("two"), backend.PutOptions{})
	ct.take()

	// A stale ETag: 412, the object stays. Community MinIO accepts
	// If-Match on DELETE and deletes anyway (204): ProbeConditionalDelete
	// must say so, below.
	err := b.DeleteIfMatch(ctx, "cd/key", first.ETag)
	if server.Kind == "minio" {
		if err != nil {
			t.Errorf("DeleteIfMatch(stale) on MinIO = %v; it ignored the condition (204) when this test was written: update the package documentation", err)
		}
		wantAbsent(t, b, "cd/key")
		second = mustPut(t, b, "cd/key", []byte("two"), backend.PutOptions{})
	} else {
		if !errors.Is(err, backend.ErrPreconditionFailed) || backend.IsTransient(err) {
			t.Errorf("DeleteIfMatch(stale) = %v, want ErrPreconditionFailed, not transient", err)
		}
		asErrorResponse(t, err, minio.PreconditionFailed)
		if got := mustGet(t, b, "cd/key"); string(got) != "two" {
			t.Errorf("after a refused DeleteIfMatch the object holds %q", got)
		}
	}

	// The current ETag: deleted.
	ct.take()
	if err := b.DeleteIfMatch(ctx, "cd/key", second.ETag); err != nil {
		t.Fatalf("DeleteIfMatch(current) = %v", err)
	}
	if got := ct.take(); len(got) != 1 || got[0] != http.MethodDelete {
		t.Errorf("DeleteIfMatch sent %v, want one DELETE", got)
	}
	wantAbsent(t, b, "cd/key")

	mu.Lock()
	for _, req := range deletes {
		if got, want := req.Header.Get("If-Match"), `"`+second.ETag+`"`; req == deletes[len(deletes)-1] && got != want {
			t.Errorf("If-Match = %q, want %q", got, want)
		}
		if signed := req.URL.Query().Get("X-Amz-SignedHeaders"); !strings.Contains(signed, "if-match") {
			t.Errorf("X-Amz-SignedHeaders = %q: the condition is not signed", signed)
		}
		if !strings.HasSuffix(req.URL.Path, "/p/cd/key") {
			t.Errorf("DELETE %s: the prefix is not applied", req.URL.Path)
		}
	}
	mu.Unlock()

	// A missing key: AWS answers 404 NoSuchKey (backend.ErrNotFound);
	// versitygw v1.8.0 answers 204 as for an unconditional DELETE, which
	// is why ProbeConditionalDelete is false there.
	err = b.DeleteIfMatch(ctx, "cd/missing", second.ETag)
	switch {
	case server.Kind == "versitygw" && err != nil:
		t.Errorf("DeleteIfMatch(missing) on versitygw = %v; it answered 204 when this test was written: update the package documentation", err)
	case err != nil && !errors.Is(err, backend.ErrNotFound):
		t.Errorf("DeleteIfMatch(missing) = %v, want ErrNotFound (or nil from a server that answers 204)", err)
	default:
		t.Logf("DeleteIfMatch(missing) = %v", err)
	}
	ok, err := backend.ProbeConditionalDelete(ctx, b, "probe/cd")
	if err != nil {
		t.Fatalf("ProbeConditionalDelete: %v", err)
	}
	if !server.External() && ok {
		t.Errorf("ProbeConditionalDelete = true on %s: it enforces DeleteIfMatch now; update the package documentation", server.Kind)
	}
	t.Logf("ProbeConditionalDelete = %t", ok)

	// Arguments, cancellation and Close fail without a request.
	ct.take()
	if err := b.DeleteIfMatch(ctx, "cd/key", ""); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("DeleteIfMatch with an empty ETag = %v, want ErrInvalidArgument", err)
	}
	if err := b.DeleteIfMatch(ctx, "cd//key", "e"); !errors.Is(err, backend.ErrInvalidKey) {
		t.Errorf("DeleteIfMatch with an invalid key = %v, want ErrInvalidKey", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.DeleteIfMatch(cctx, "cd/key", "e"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteIfMatch with a cancelled context = %v, want context.Canceled", err)
	}
	if got := ct.take(); len(got) != 0 {
		t.Errorf("invalid calls sent %v", got)
	}
}

// A server that accepts If-Match on DELETE and deletes anyway, as
// community MinIO does, is told apart by ProbeConditionalDelete: the
// transport turns its 412 into 204 after deleting for real.
func TestDeleteIfMatchIgnoredByServer(t *testing.T) {
	ct := newCountingTransport(t)
	raw := rawClient(t, server)
	var bucket string
	ct.rewrite = func(req *http.Request, resp *http.Response) {
		if req.Method == http.MethodDelete && resp.StatusCode == http.StatusPreconditionFailed {
			key := strings.TrimPrefix(req.URL.Path, "/"+bucket+"/")
			if err := raw.RemoveObject(context.Background(), bucket, key, minio.RemoveObjectOptions{}); err != nil {
				t.Errorf("remove %q behind the backend: %v", key, err)
			}
			resp.StatusCode, resp.Status = http.StatusNoContent, "204 No Content"
		}
	}
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
	bucket = b.bucket
	first := mustPut(t, b, "cd/key", []byte("one"), backend.PutOptions{})
	mustPut(t, b, "cd/key", []byte("two"), backend.PutOptions{})
	if err := b.DeleteIfMatch(t.Context(), "cd/key", first.ETag); err != nil {
		t.Fatalf("DeleteIfMatch(stale) through the ignoring server = %v", err)
	}
	wantAbsent(t, b, "cd/key")
	if ok, err := backend.ProbeConditionalDelete(t.Context(), b, "probe/cd"); ok || err != nil {
		t.Errorf("ProbeConditionalDelete = %t, %v; want false, nil", ok, err)
	}
}

// Other failures of the conditional DELETE map like every call's.
func TestDeleteIfMatchErrors(t *testing.T) {
	ctx := t.Context()
	good := newTestBackend(t, MaxParts, nil)
	info := mustPut(t, good, "cd/key", []byte("x"), backend.PutOptions{})

	t.Run("wrong secret", func(t *testing.T) {
		cfg := serverConfig(server)
		cfg.Bucket, cfg.CreateBucket = good.bucket, false
		cfg.SecretKey += "-wrong"
		b, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		err = b.DeleteIfMatch(ctx, "cd/key", info.ETag)
		if !errors.Is(err, backend.ErrPermissionDenied) {
			t.Errorf("DeleteIfMatch = %v, want ErrPermissionDenied", err)
		}
		asErrorResponse(t, err, "")
	})
	t.Run("anonymous", func(t *testing.T) {
		cfg := serverConfig(server)
		cfg.Bucket, cfg.CreateBucket = good.bucket, false
		cfg.AccessKey, cfg.SecretKey, cfg.Credentials = "", "", CredentialsAnonymous
		b, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.DeleteIfMatch(ctx, "cd/key", info.ETag); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("DeleteIfMatch without credentials = %v, want errors.ErrUnsupported", err)
		}
		if ok, err := backend.ProbeConditionalDelete(ctx, b, "probe/cd"); ok || err != nil {
			t.Errorf("ProbeConditionalDelete without credentials = %t, %v; want false, nil", ok, err)
		}
	})
	t.Run("network", func(t *testing.T) {
		b := newTestBackend(t, MaxParts, func(c *Config) {
			c.Transport = roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodDelete {
					return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
				}
				return http.DefaultTransport.RoundTrip(req)
			})
		})
		err := b.DeleteIfMatch(ctx, "cd/key", info.ETag)
		if !errors.Is(err, backend.ErrTransient) {
			t.Errorf("DeleteIfMatch over a broken connection = %v, want ErrTransient", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		b := newTestBackend(t, MaxParts, nil)
		_ = b.Close()
		if err := b.DeleteIfMatch(ctx, "cd/key", info.ETag); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("DeleteIfMatch after Close = %v, want ErrClosed", err)
		}
	})
	if got := mustGet(t, good, "cd/key"); string(got) != "x" {
		t.Errorf("the object was changed: %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
