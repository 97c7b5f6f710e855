package s3backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
)

// The S3-specific tests, against the server TestMain started. The contract
// itself is TestConformance's.

// countingTransport counts the requests it carries, by method, and may
// rewrite responses.
type countingTransport struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	methods []string
	inspect func(*http.Request)
	rewrite func(*http.Request, *http.Response)
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.methods = append(c.methods, req.Method)
	c.mu.Unlock()
	if c.inspect != nil {
		c.inspect(req)
	}
	resp, err := c.rt.RoundTrip(req)
	if err == nil && c.rewrite != nil {
		c.rewrite(req, resp)
	}
	return resp, err
}

// take returns the methods seen since the last call and forgets them.
func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.methods
	c.methods = nil
	return m
}

func newCountingTransport(t testing.TB) *countingTransport {
	tr, err := minio.DefaultTransport(server.UseSSL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &countingTransport{rt: tr}
}

// asErrorResponse checks that err reaches a minio.ErrorResponse with code.
func asErrorResponse(t *testing.T, err error, code string) {
	t.Helper()
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		t.Errorf("errors.As(%v, &minio.ErrorResponse{}) = false", err)
		return
	}
	if code != "" && er.Code != code {
		t.Errorf("ErrorResponse.Code = %q, want %q (%v)", er.Code, code, err)
	}
}

func mustPut(t *testing.T, b *Backend, key string, data []byte, opts backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
	return info
}

func mustGet(t *testing.T, b *Backend, key string) []byte {
	t.Helper()
	rc, info, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Get(%q): Size %d, read %d bytes", key, info.Size, len(data))
	}
	return data
}

func wantAbsent(t *testing.T, b *Backend, key string) {
	t.Helper()
	if _, err := b.Stat(t.Context(), key); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(%q): err = %v, want ErrNotFound", key, err)
	}
}

// wantNoUploads checks that no multipart upload was left behind.
func wantNoUploads(t *testing.T, b *Backend) {
	t.Helper()
	res, err := b.core.ListMultipartUploads(t.Context(), b.bucket, "", "", "", "", 100)
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(res.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind: %+v", len(res.Uploads), res.Uploads)
	}
}

func TestServerErrorsMapped(t *testing.T) {
	b := newTestBackend(t, MaxParts, nil)
	ctx := t.Context()
	first := mustPut(t, b, "errors/key", []byte("one"), backend.PutOptions{})

	_, _, err := b.Get(ctx, "errors/missing")
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	asErrorResponse(t, err, minio.NoSuchKey)

	_, err = b.Put(ctx, "errors/key", strings.NewReader("two"), 3, backend.PutOptions{IfAbsent: true})
	if !errors.Is(err, backend.ErrPreconditionFailed) || backend.IsTransient(err) {
		t.Errorf("IfAbsent on existing key: %v, want ErrPreconditionFailed, not transient", err)
	}
	asErrorResponse(t, err, minio.PreconditionFailed)

	_, err = b.Put(ctx, "errors/missing", strings.NewReader("two"), 3, backend.PutOptions{IfMatch: first.ETag})
	if !errors.Is(err, backend.ErrPreconditionFailed) || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("IfMatch on missing key: %v, want ErrPreconditionFailed and not ErrNotFound", err)
	}
	asErrorResponse(t, err, minio.NoSuchKey)

	// A bucket that does not exist: not found, from every call.
	cfg := serverConfig(server.WithFreshBucket())
	cfg.CreateBucket = false
	missing, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New without CreateBucket: %v", err)
	}
	defer missing.Close()
	if _, _, err := missing.Get(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get in missing bucket: %v, want ErrNotFound", err)
	} else {
		asErrorResponse(t, err, minio.NoSuchBucket)
	}
	if _, err := missing.Put(ctx, "k", strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Put in missing bucket: %v, want ErrNotFound", err)
	}
	if err := missing.Delete(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Delete in missing bucket: %v, want ErrNotFound", err)
	}
	for _, err := range missing.List(ctx, "") {
		if !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("List in missing bucket: %v, want ErrNotFound", err)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	good := newTestBackend(t, MaxParts, nil)
	mustPut(t, good, "creds/key", []byte("x"), backend.PutOptions{})
	ctx := t.Context()

	for _, tc := range []struct {
		name        string
		access, key string
	}{
		{"wrong secret", server.AccessKey, server.SecretKey + "-wrong"},
		{"unknown access key", "nobody-" + server.AccessKey, server.SecretKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverConfig(server)
			cfg.Bucket = good.bucket
			cfg.AccessKey, cfg.SecretKey = tc.access, tc.key
			cfg.CreateBucket = false
			b, err := New(ctx, cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer b.Close()
			_, _, err = b.Get(ctx, "creds/key")
			if !errors.Is(err, backend.ErrPermissionDenied) || backend.IsTransient(err) {
				t.Errorf("Get: %v, want ErrPermissionDenied, not transient", err)
			}
			asErrorResponse(t, err, "")
			_, err = b.Put(ctx, "creds/new", strings.NewReader("x"), 1, backend.PutOptions{})
			if !errors.Is(err, backend.ErrPermissionDenied) {
				t.Errorf("Put: %v, want ErrPermissionDenied", err)
			}
			for _, err := range b.List(ctx, "") {
				if !errors.Is(err, backend.ErrPermissionDenied) {
					t.Errorf("List: %v, want ErrPermissionDenied", err)
				}
			}
			// New with CreateBucket fails the same way.
			cfg.CreateBucket = true
			if _, err := New(ctx, cfg); !errors.Is(err, backend.ErrPermissionDenied) {
				t.Errorf("New(CreateBucket): %v, want ErrPermissionDenied", err)
			}
		})
	}
	wantAbsent(t, good, "creds/new")
}

func TestCreateBucketTwice(t *testing.T) {
	b := newTestBackend(t, MaxParts, nil)
	mustPut(t, b, "k", []byte("kept"), backend.PutOptions{})
	cfg := serverConfig(server)
	cfg.Bucket = b.bucket
	again, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New on an existing bucket with CreateBucket: %v", err)
	}
	defer again.Close()
	if got := mustGet(t, again, "k"); string(got) != "kept" {
		t.Errorf("Get = %q", got)
	}
}

// TestOneRequestPerCall counts the HTTP requests of each call.
func TestOneRequestPerCall(t *testing.T) {
	ct := newCountingTransport(t)
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
	ctx := t.Context()
	ct.take() // bucket creation

	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"Put known size", func() error {
			_, err := b.Put(ctx, "req/a", strings.NewReader("hello"), 5, backend.PutOptions{})
			return err
		}, "PUT"},
		{"Put unknown size, small", func() error {
			_, err := b.Put(ctx, "req/b", onlyRead{strings.NewReader("hello")}, backend.SizeUnknown, backend.PutOptions{})
			return err
		}, "PUT"},
		{"Put IfAbsent", func() error {
			_, err := b.Put(ctx, "req/c", strings.NewReader("hello"), 5, backend.PutOptions{IfAbsent: true})
			return err
		}, "PUT"},
		{"Get", func() error {
			rc, _, err := b.Get(ctx, "req/a")
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			return err
		}, "GET"},
		{"Get missing", func() error {
			if _, _, err := b.Get(ctx, "req/missing"); !errors.Is(err, backend.ErrNotFound) {
				return err
			}
			return nil
		}, "GET"},
		{"Stat", func() error { _, err := b.Stat(ctx, "req/a"); return err }, "HEAD"},
		{"Delete", func() error { return b.Delete(ctx, "req/a") }, "DELETE"},
		{"List", func() error {
			for _, err := range b.List(ctx, "req/") {
				if err != nil {
					return err
				}
			}
			return nil
		}, "GET"},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
		if got := ct.take(); len(got) != 1 || got[0] != st.want {
			t.Errorf("%s sent %v, want one %s", st.name, got, st.want)
		}
	}
}

// smallParts is a config with the smallest part size S3 allows (5 MiB),
// so that multipart paths run with small objects.
func smallParts(c *Config) { c.PartSize = MinPartSize }

func TestMultipart(t *testing.T) {
	b := newTestBackend(t, MaxParts, smallParts)
	ctx := t.Context()
	data := benchData(12<<20 + 5)

	// Known size from a seekable reader, from a stream, and unknown size.
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"seekable", bytes.NewReader(data), int64(len(data))},
		{"stream", onlyRead{bytes.NewReader(data)}, int64(len(data))},
		{"unknown", onlyRead{bytes.NewReader(data)}, backend.SizeUnknown},
	} {
		key := "multipart/" + tc.name
		info, err := b.Put(ctx, key, tc.r, tc.size, backend.PutOptions{ContentType: "application/x-big"})
		if err != nil {
			t.Fatalf("%s: Put: %v", tc.name, err)
		}
		if info.Size != int64(len(data)) || !strings.HasSuffix(info.ETag, "-3") {
			t.Errorf("%s: Put = %+v, want size %d and a 3-part ETag", tc.name, info, len(data))
		}
		if got := mustGet(t, b, key); !bytes.Equal(got, data) {
			t.Errorf("%s: content differs", tc.name)
		}
		st, err := b.Stat(ctx, key)
		if err != nil || st.ETag != info.ETag || st.ContentType != "application/x-big" {
			t.Errorf("%s: Stat = %+v, %v; want ETag %q and the content type", tc.name, st, err, info.ETag)
		}
	}

	// Wrong sizes fail before the upload completes, also when the size is
	// a whole number of parts and the reader has one byte more: the case
	// minio-go's readFull would not notice.
	whole := data[:10<<20]
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"stream shorter", onlyRead{bytes.NewReader(data[:len(data)-1])}, int64(len(data))},
		{"stream longer", onlyRead{bytes.NewReader(data)}, int64(len(data)) - 1},
		{"stream one byte longer than whole parts", onlyRead{bytes.NewReader(data[:len(whole)+1])}, int64(len(whole))},
		{"seekable shorter", bytes.NewReader(data[:len(data)-1]), int64(len(data))},
		{"seekable longer", bytes.NewReader(data), int64(len(data)) - 1},
	} {
		_, err := b.Put(ctx, "multipart/mismatch", tc.r, tc.size, backend.PutOptions{})
		if !errors.Is(err, backend.ErrSizeMismatch) || backend.IsTransient(err) {
			t.Errorf("%s: Put: %v, want ErrSizeMismatch, not transient", tc.name, err)
		}
	}
	wantAbsent(t, b, "multipart/mismatch")

	// Exactly whole parts.
	if _, err := b.Put(ctx, "multipart/whole", onlyRead{bytes.NewReader(whole)}, int64(len(whole)), backend.PutOptions{}); err != nil {
		t.Errorf("Put of whole parts: %v", err)
	}
	if _, err := b.Put(ctx, "multipart/whole-unknown", onlyRead{bytes.NewReader(whole)}, backend.SizeUnknown, backend.PutOptions{}); err != nil {
		t.Errorf("Put of whole parts, unknown size: %v", err)
	}
	for _, k := range []string{"multipart/whole", "multipart/whole-unknown"} {
		if got := mustGet(t, b, k); !bytes.Equal(got, whole) {
			t.Errorf("%s: content differs", k)
		}
	}
	wantNoUploads(t, b)
}

// TestUnknownSizeTooLarge lowers the part limit to 2 (the real limit,
// 10,000 parts of at least 5 MiB, is 48.8 GiB), so that the stream one byte
// longer than PartSize x parts is cheap.
func TestUnknownSizeTooLarge(t *testing.T) {
	b := newTestBackend(t, 2, smallParts)
	ctx := t.Context()
	limit := maxStreamSize(MinPartSize, 2)
	prev := mustPut(t, b, "limit/key", []byte("previous"), backend.PutOptions{})

	// Exactly the limit fits.
	if _, err := b.Put(ctx, "limit/exact", &patternReader{n: limit}, backend.SizeUnknown, backend.PutOptions{}); err != nil {
		t.Fatalf("Put of exactly the limit: %v", err)
	}
	// One byte more fails, on a new key and on an existing one.
	for _, key := range []string{"limit/new", "limit/key"} {
		_, err := b.Put(ctx, key, &patternReader{n: limit + 1}, backend.SizeUnknown, backend.PutOptions{})
		if !errors.Is(err, backend.ErrTooLarge) || backend.IsTransient(err) {
			t.Errorf("Put(%q) of limit+1 bytes: %v, want ErrTooLarge, not transient", key, err)
		}
	}
	wantAbsent(t, b, "limit/new")
	if got := mustGet(t, b, "limit/key"); string(got) != "previous" {
		t.Errorf("previous object = %q", got)
	}
	if st, err := b.Stat(ctx, "limit/key"); err != nil || st.ETag != prev.ETag {
		t.Errorf("previous object: %+v, %v", st, err)
	}
	// A known size above the limit is refused before any request.
	if _, err := b.Put(ctx, "limit/known", onlyRead{strings.NewReader("x")}, limit+1, backend.PutOptions{}); !errors.Is(err, backend.ErrTooLarge) {
		t.Errorf("Put of known size limit+1: %v, want ErrTooLarge", err)
	}
	wantNoUploads(t, b)
}

func TestConditionalPutIsSinglePart(t *testing.T) {
	ct := newCountingTransport(t)
	b := newTestBackend(t, MaxParts, func(c *Config) { smallParts(c); c.Transport = ct })
	ctx := t.Context()
	big := benchData(int(MinPartSize) + 1<<20) // above the part size

	// A known size above the part size is one conditional PUT.
	ct.take()
	first := mustPut(t, b, "cond/big", big, backend.PutOptions{IfAbsent: true})
	if got := ct.take(); len(got) != 1 {
		t.Errorf("conditional Put of %d bytes sent %v, want one PUT", len(big), got)
	}
	if strings.Contains(first.ETag, "-") {
		t.Errorf("conditional Put made a multipart object (ETag %q)", first.ETag)
	}
	// A failed condition on a large body: versitygw checks the condition
	// before it reads the body, answers 412 and closes the connection
	// without draining it, so the client may see its write reset instead
	// of the 412 (then the error is transient). Either way nothing changes.
	wantRefused := func(what string, err error) {
		t.Helper()
		switch {
		case errors.Is(err, backend.ErrPreconditionFailed):
		case errors.Is(err, backend.ErrTransient):
			t.Logf("%s: the server reset the connection instead of answering 412: %v", what, err)
		default:
			t.Errorf("%s: %v, want ErrPreconditionFailed (or ErrTransient)", what, err)
		}
	}
	_, err := b.Put(ctx, "cond/big", onlyRead{bytes.NewReader(big)}, int64(len(big)), backend.PutOptions{IfAbsent: true})
	wantRefused("second IfAbsent Put of a large body", err)
	second := mustPut(t, b, "cond/big", big[1:], backend.PutOptions{IfMatch: first.ETag})
	_, err = b.Put(ctx, "cond/big", bytes.NewReader(big), int64(len(big)), backend.PutOptions{IfMatch: first.ETag})
	wantRefused("stale IfMatch Put of a large body", err)
	if st, err := b.Stat(ctx, "cond/big"); err != nil || st.ETag != second.ETag {
		t.Errorf("after refused Puts: Stat = %+v, %v; want ETag %q", st, err, second.ETag)
	}

	// An unknown size above the part size cannot be one PUT: refused,
	// nothing written.
	for _, opts := range []backend.PutOptions{{IfAbsent: true}, {IfMatch: second.ETag}} {
		_, err := b.Put(ctx, "cond/big", onlyRead{bytes.NewReader(big)}, backend.SizeUnknown, opts)
		if !errors.Is(err, backend.ErrTooLarge) || !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("conditional Put (%+v) of an unknown size above the part size: %v, want ErrTooLarge and ErrInvalidArgument", opts, err)
		}
	}
	if got := mustGet(t, b, "cond/big"); !bytes.Equal(got, big[1:]) {
		t.Errorf("object changed by a refused Put")
	}
	// An unknown size within the part size is buffered and conditional.
	if _, err := b.Put(ctx, "cond/big", onlyRead{strings.NewReader("small")}, backend.SizeUnknown, backend.PutOptions{IfMatch: second.ETag}); err != nil {
		t.Errorf("IfMatch Put of a small unknown size: %v", err)
	}
	if _, err := b.Put(ctx, "cond/big", onlyRead{strings.NewReader("small")}, backend.SizeUnknown, backend.PutOptions{IfMatch: second.ETag}); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("stale IfMatch Put of a small unknown size: %v, want ErrPreconditionFailed", err)
	}
	// Above S3's single-PUT limit: refused before any request.
	ct.take()
	if _, err := b.Put(ctx, "cond/huge", onlyRead{strings.NewReader("")}, MaxSinglePutSize+1, backend.PutOptions{IfAbsent: true}); !errors.Is(err, backend.ErrTooLarge) || !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("conditional Put above 5 GiB: %v, want ErrTooLarge and ErrInvalidArgument", err)
	}
	if got := ct.take(); len(got) != 0 {
		t.Errorf("refused Put sent %v", got)
	}
}

// cancelAfter cancels a context once n bytes have been read, then goes on.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// cancelAtReaderAt is a seekable reader (an io.ReaderAt) that cancels a
// context once n bytes have been read through ReadAt.
type cancelAtReaderAt struct {
	*bytes.Reader
	mu     sync.Mutex
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAtReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Reader.ReadAt(p, off)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// TestCancelledMultipartAborted cancels multipart uploads after their
// first part: the error is the context's, and the upload is aborted
// although its context is gone (by s3backend for an unknown size, by
// minio-go for a known one).
func TestCancelledMultipartAborted(t *testing.T) {
	b := newTestBackend(t, MaxParts, smallParts)
	data := benchData(int(3 * MinPartSize))
	kinds := []struct {
		name string
		body func(cancel context.CancelFunc) io.Reader
		size int64
	}{
		{"unknown size", func(cancel context.CancelFunc) io.Reader {
			return &cancelAfter{r: bytes.NewReader(data), n: MinPartSize + 1<<20, cancel: cancel}
		}, backend.SizeUnknown},
		{"stream", func(cancel context.CancelFunc) io.Reader {
			return &cancelAfter{r: bytes.NewReader(data), n: MinPartSize + 1<<20, cancel: cancel}
		}, int64(len(data))},
		{"seekable", func(cancel context.CancelFunc) io.Reader {
			return &cancelAtReaderAt{Reader: bytes.NewReader(data), n: MinPartSize + 1<<20, cancel: cancel}
		}, int64(len(data))},
	}
	for _, kind := range kinds {
		ctx, cancel := context.WithCancel(t.Context())
		_, err := b.Put(ctx, "cancel/multipart", kind.body(cancel), kind.size, backend.PutOptions{})
		cancel()
		if !errors.Is(err, context.Canceled) || backend.IsTransient(err) {
			t.Errorf("%s: Put: %v, want context.Canceled, not transient", kind.name, err)
		}
	}
	wantAbsent(t, b, "cancel/multipart")
	wantNoUploads(t, b)
}

// TestFailingReaderMultipart: the reader's own error comes back, is not
// transient, and the upload is aborted.
func TestFailingReaderMultipart(t *testing.T) {
	b := newTestBackend(t, MaxParts, smallParts)
	errBroken := errors.New("broken stream")
	for _, size := range []int64{3 * MinPartSize, backend.SizeUnknown} {
		r := io.MultiReader(&patternReader{n: 2*MinPartSize + 7}, iotestErrReader{errBroken})
		_, err := b.Put(t.Context(), "failing/multipart", r, size, backend.PutOptions{})
		if !errors.Is(err, errBroken) || backend.IsTransient(err) {
			t.Errorf("Put(size %d): %v, want the reader's error, not transient", size, err)
		}
	}
	wantAbsent(t, b, "failing/multipart")
	wantNoUploads(t, b)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestProbe(t *testing.T) {
	t.Run("enforced", func(t *testing.T) {
		b := newTestBackend(t, MaxParts, nil)
		if err := b.Probe(t.Context()); err != nil {
			t.Fatalf("Probe: %v", err)
		}
		for info, err := range b.List(t.Context(), "") {
			t.Errorf("Probe left %q behind (%v)", info.Key, err)
		}
	})
	t.Run("enforced under a prefix", func(t *testing.T) {
		b := newTestBackend(t, MaxParts, func(c *Config) { c.Prefix = "p/q" })
		if err := b.Probe(t.Context()); err != nil {
			t.Fatalf("Probe: %v", err)
		}
	})
	// A server that answers a failed condition with success, as one that
	// ignores If-None-Match would: the transport turns 412 into 200.
	t.Run("ignored by the server", func(t *testing.T) {
		ct := newCountingTransport(t)
		ct.rewrite = func(req *http.Request, resp *http.Response) {
			if req.Method == http.MethodPut && resp.StatusCode == http.StatusPreconditionFailed {
				resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
				resp.Header.Set("ETag", `"fake"`)
			}
		}
		b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
		if err := b.Probe(t.Context()); !errors.Is(err, backend.ErrUnfencedWrites) {
			t.Errorf("Probe: %v, want ErrUnfencedWrites", err)
		}
	})
	// The same check through the decorator that drops the conditions.
	for _, fault := range []backendtest.Fault{
		{Op: backendtest.OpPut, IgnoreIfAbsent: true},
		{Op: backendtest.OpPut, IgnoreIfMatch: true},
	} {
		t.Run("decorator", func(t *testing.T) {
			f := backendtest.NewFaulty(newTestBackend(t, MaxParts, nil))
			f.Inject(fault)
			if err := backend.ProbeConditionalPut(t.Context(), f, "probe/scratch"); !errors.Is(err, backend.ErrUnfencedWrites) {
				t.Errorf("ProbeConditionalPut with %+v: %v, want ErrUnfencedWrites", fault, err)
			}
		})
	}
}

// TestLogsNoCredentials logs every record at Debug and checks that the
// secret never appears, while failures are logged.
func TestLogsNoCredentials(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Logger = logger })
	_, _, _ = b.Get(t.Context(), "missing")
	_, _ = b.Put(t.Context(), "bad//key", strings.NewReader("x"), 1, backend.PutOptions{})
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, secret := range []string{server.SecretKey, server.AccessKey} {
		// The bucket name may contain the access key by chance.
		if testenv.ContainsCredential(out, secret, b.bucket) {
			t.Errorf("log contains a credential:\n%s", out)
		}
	}
	for _, want := range []string{`"s3backend: opened"`, `"secret_key":"[REDACTED]"`, `"s3backend: get failed"`, `"s3backend: put failed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCloseKeepsInjectedTransport: Close leaves an injected transport
// usable, and calls after Close fail without a request.
func TestCloseKeepsInjectedTransport(t *testing.T) {
	ct := newCountingTransport(t)
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ct.take()
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Stat after Close: %v, want ErrClosed", err)
	}
	if got := ct.take(); len(got) != 0 {
		t.Errorf("Stat after Close sent %v", got)
	}
	other := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
	if _, err := other.Put(t.Context(), "k", strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
		t.Errorf("Put through the transport of a closed backend: %v", err)
	}
	if got := ct.take(); len(got) == 0 {
		t.Errorf("the injected transport carried no request")
	}
}

// TestEmptyPutSendsNoBody: an empty object goes out as a PUT without a
// body. (minio-go's streaming signature sends an unexpected chunked body
// for it, which versitygw leaves on the connection and answers with an
// unsolicited 400 that the next request may take for its own answer.)
func TestEmptyPutSendsNoBody(t *testing.T) {
	ct := newCountingTransport(t)
	var mu sync.Mutex
	var bad []string
	ct.inspect = func(req *http.Request) {
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/empty/") &&
			(req.ContentLength != 0 || (req.Body != nil && req.Body != http.NoBody) || len(req.TransferEncoding) != 0) {
			mu.Lock()
			bad = append(bad, req.URL.Path)
			mu.Unlock()
		}
	}
	b := newTestBackend(t, MaxParts, func(c *Config) { c.Transport = ct })
	ctx := t.Context()
	steps := []struct {
		key  string
		r    io.Reader
		size int64
		opts backend.PutOptions
	}{
		{"empty/known", strings.NewReader(""), 0, backend.PutOptions{}},
		{"empty/stream", onlyRead{strings.NewReader("")}, 0, backend.PutOptions{}},
		{"empty/unknown", onlyRead{strings.NewReader("")}, backend.SizeUnknown, backend.PutOptions{}},
		{"empty/absent", strings.NewReader(""), 0, backend.PutOptions{IfAbsent: true}},
	}
	for _, st := range steps {
		info, err := b.Put(ctx, st.key, st.r, st.size, st.opts)
		if err != nil || info.Size != 0 || info.ETag == "" {
			t.Errorf("Put(%q) = %+v, %v", st.key, info, err)
			continue
		}
		if got := mustGet(t, b, st.key); len(got) != 0 {
			t.Errorf("Get(%q) = %q", st.key, got)
		}
	}
	first, _ := b.Stat(ctx, "empty/absent")
	if _, err := b.Put(ctx, "empty/absent", strings.NewReader(""), 0, backend.PutOptions{IfAbsent: true}); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("second empty IfAbsent Put: %v, want ErrPreconditionFailed", err)
	}
	if _, err := b.Put(ctx, "empty/absent", strings.NewReader(""), 0, backend.PutOptions{IfMatch: first.ETag}); err != nil {
		t.Errorf("empty IfMatch Put: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) != 0 {
		t.Errorf("empty Puts sent a body: %v", bad)
	}
}
