package s3backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// TestConnectionDroppedAfter412 plays a server that, like MinIO releases
// before minio/minio#21633, answers a failed condition with 412 and keeps
// the connection open without "Connection: close", only to drop the next
// request sent on it without an answer. The request after a refused
// conditional write must not be that one.
func TestConnectionDroppedAfter412(t *testing.T) {
	var conns, dropped atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conditional := r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != ""
		if r.Method != http.MethodPut || !conditional {
			w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
			w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
			w.Header().Set("Content-Length", "1")
			w.WriteHeader(http.StatusOK)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`
		fmt.Fprintf(buf, "HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		if err := buf.Flush(); err != nil {
			t.Errorf("write 412: %v", err)
		}
		go func() {
			defer conn.Close()
			if _, err := http.ReadRequest(buf.Reader); err == nil {
				dropped.Add(1) // a request came on this connection: drop it
			}
		}()
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	b := newPlayedBackend(t, srv)
	ctx := t.Context()
	for i := range 10 {
		for _, opts := range []backend.PutOptions{{IfMatch: "stale"}, {IfAbsent: true}} {
			if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, opts); !errors.Is(err, backend.ErrPreconditionFailed) {
				t.Fatalf("round %d: conditional Put %+v = %v, want ErrPreconditionFailed", i, opts, err)
			}
			if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
				t.Fatalf("round %d: the Put after a 412 failed: %v", i, err)
			}
			if _, err := b.Stat(ctx, "k"); err != nil && !errors.Is(err, backend.ErrNotFound) {
				t.Fatalf("round %d: the Stat after it failed: %v", i, err)
			}
		}
	}
	if n := dropped.Load(); n != 0 {
		t.Errorf("%d requests were sent on a connection after its 412", n)
	}
	t.Logf("%d connections for 20 refused conditional Puts and 40 other requests", conns.Load())
}

// newPlayedBackend returns a Backend on the server srv plays (a handler
// answering as an S3 server would), closed when t ends.
func newPlayedBackend(t *testing.T, srv *httptest.Server) *Backend {
	t.Helper()
	b, err := New(t.Context(), Config{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "bucket", Region: "us-east-1",
		AccessKey: "access", SecretKey: "secret-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
