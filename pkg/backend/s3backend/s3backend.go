package s3backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// abortTimeout bounds the request that aborts a failed multipart upload. It
// runs on a context detached from the caller's, so that a cancelled Put
// does not leave its parts behind.
const abortTimeout = 30 * time.Second

// Backend stores objects in one bucket of an S3-compatible server, under an
// optional key prefix. Create it with New; it is safe for concurrent use.
type Backend struct {
	client    *minio.Client
	core      minio.Core
	bucket    string
	prefix    string
	partSize  int64
	maxParts  int64
	logger    *slog.Logger
	transport *http.Transport // created by New and closed by Close; nil when injected
	// httpClient sends the requests minio-go has no call for (the
	// conditional DELETE), through the same transport as minio-go's.
	httpClient *http.Client
	// sse and storageClass go with every upload (nil and "": the
	// server's defaults).
	sse          encrypt.ServerSide
	storageClass string
	closed       atomic.Bool
}

var (
	_ backend.Backend            = (*Backend)(nil)
	_ backend.ConditionalDeleter = (*Backend)(nil)
)

// New validates cfg, builds the minio-go client and, when cfg.CreateBucket
// is set, creates the bucket unless it exists. Without CreateBucket it does
// no I/O. A failure to create the bucket is mapped like every other error
// (for example backend.ErrPermissionDenied).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	return newBackend(ctx, cfg, MaxParts)
}

// newBackend is New with the number of parts an upload may have, which
// tests lower to reach the unknown-size limit cheaply.
func newBackend(ctx context.Context, cfg Config, maxParts int64) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	host, _ := cfg.hostAndScheme()

	b := &Backend{
		bucket:   cfg.Bucket,
		prefix:   cfg.Prefix,
		partSize: cfg.PartSize,
		maxParts: maxParts,
		logger:   cfg.Logger,
	}
	rt := cfg.Transport
	if rt == nil {
		tr, err := minio.DefaultTransport(cfg.UseSSL)
		if err != nil {
			return nil, fmt.Errorf("s3backend: new: transport: %w", err)
		}
		if cfg.InsecureSkipVerify && tr.TLSClientConfig != nil {
			tr.TLSClientConfig.InsecureSkipVerify = true
		}
		tr.DialContext = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = cfg.ConnectTimeout
		tr.ResponseHeaderTimeout = cfg.RequestTimeout
		// A conditional PUT waits this long for 100 Continue (see
		// conditionalCloser) before it sends its body anyway; then
		// RequestTimeout bounds the answer: 1.5 x RequestTimeout in all
		// against a server that never answers.
		tr.ExpectContinueTimeout = min(tr.ExpectContinueTimeout, cfg.RequestTimeout/2)
		b.transport, rt = tr, tr
	}
	rt = conditionalCloser{rt}
	b.httpClient = &http.Client{
		Transport: rt,
		// A redirect is returned as it is, like minio-go does, rather
		// than followed with the presigned URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	sse, err := serverSideEncryption(cfg)
	if err != nil {
		b.closeIdle()
		return nil, fmt.Errorf("s3backend: new: %w: %w", backend.ErrInvalidArgument, err)
	}
	b.sse, b.storageClass = sse, cfg.StorageClass
	client, err := minio.New(host, &minio.Options{
		Creds:        newCredentials(cfg, b.httpClient),
		Secure:       cfg.UseSSL,
		Transport:    rt,
		Region:       cfg.Region,
		BucketLookup: bucketLookups[cfg.BucketLookup],
		MaxRetries:   cfg.MaxAttempts,
		UploadLimits: &minio.UploadLimits{MaxPartsCount: maxParts},
	})
	if err != nil {
		b.closeIdle()
		return nil, fmt.Errorf("s3backend: new: %w: %w", backend.ErrInvalidArgument, err)
	}
	b.client = client
	b.core = minio.Core{Client: client}

	if cfg.CreateBucket {
		if err := b.createBucket(ctx, cfg.Region); err != nil {
			b.closeIdle()
			return nil, err
		}
	}
	b.logger.Debug("s3backend: opened", "config", cfg)
	return b, nil
}

// bucketLookups maps Config.BucketLookup to minio-go's lookup types.
var bucketLookups = map[string]minio.BucketLookupType{
	BucketLookupAuto: minio.BucketLookupAuto,
	BucketLookupPath: minio.BucketLookupPath,
	BucketLookupDNS:  minio.BucketLookupDNS,
}

// newCredentials returns the credentials provider cfg (with defaults)
// asks for. The IAM provider fetches temporary credentials through
// client, hence with the same timeouts as every request.
func newCredentials(cfg Config, client *http.Client) *credentials.Credentials {
	switch cfg.Credentials {
	case CredentialsStatic:
		if cfg.AccessKey != "" {
			return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
		}
	case CredentialsChain:
		return credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{Filename: cfg.CredentialsFile, Profile: cfg.Profile},
			&credentials.IAM{Client: client},
		})
	}
	return credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
}

// serverSideEncryption returns the encryption of cfg.SSE; nil for none.
func serverSideEncryption(cfg Config) (encrypt.ServerSide, error) {
	switch cfg.SSE {
	case SSES3:
		return encrypt.NewSSE(), nil
	case SSEKMS:
		return encrypt.NewSSEKMS(cfg.SSEKMSKeyID, nil)
	}
	return nil, nil
}

// anonymous reports whether requests go unsigned: no credentials were
// configured or found.
func (b *Backend) anonymous() (bool, error) {
	v, err := b.client.GetCreds()
	if err != nil {
		return false, fmt.Errorf("credentials: %w", err)
	}
	return v.SignerType.IsAnonymous(), nil
}

// createBucket creates the bucket, and succeeds when it already exists and
// is ours.
func (b *Backend) createBucket(ctx context.Context, region string) error {
	err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: region})
	if err == nil {
		return nil
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code == minio.BucketAlreadyOwnedByYou {
		return nil
	}
	// Some servers answer BucketAlreadyExists (or nothing useful) for a
	// bucket the caller owns: accept any bucket we can reach.
	if ok, eerr := b.client.BucketExists(ctx, b.bucket); eerr == nil && ok {
		return nil
	}
	return b.fail(ctx, opNew, b.bucket, fmt.Errorf("create bucket: %w", err))
}

// Put implements backend.Backend.
//
// With a known size, the size is passed through to minio-go: up to
// PartSize bytes go in one PUT, larger objects in a multipart upload of
// PartSize parts. A reader that is an io.ReaderAt and an io.Seeker (a file,
// a bytes.Reader) is checked against size before any request and uploaded
// without a buffer; any other reader is counted as it is read, and a
// reader with fewer or more than size bytes fails the upload with
// backend.ErrSizeMismatch before anything is committed.
//
// With backend.SizeUnknown, the first PartSize bytes are buffered: a stream
// that ends within them is stored by one PUT; a longer one by a multipart
// upload that reuses that buffer for every part. A stream longer than
// PartSize x 10,000 bytes fails with backend.ErrTooLarge; it is never
// stored truncated. A failed multipart upload is aborted, even when ctx was
// cancelled.
//
// A conditional Put (IfAbsent, IfMatch) is always one PUT request, because
// S3 servers and minio-go do not apply conditions to multipart uploads: up
// to MaxSinglePutSize (5 GiB) with a known size, up to PartSize with an
// unknown size (buffered). Beyond that it fails, before any request, with an
// error matching both backend.ErrTooLarge and backend.ErrInvalidArgument.
//
// S3 does not return the stored object's Last-Modified from a PUT: the
// Modified of the returned ObjectInfo is the client's clock when the upload
// completed; Stat, Get and List report the server's.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := backend.ValidatePut(key, r, size, opts); err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opPut, key, err)
	}
	if err := b.check(ctx); err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opPut, key, err)
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = backend.DefaultContentType
	}
	po := minio.PutObjectOptions{
		ContentType:          contentType,
		PartSize:             uint64(b.partSize),
		ServerSideEncryption: b.sse,
		StorageClass:         b.storageClass,
	}
	conditional := opts.IfAbsent || opts.IfMatch != ""
	switch {
	case opts.IfAbsent:
		po.SetMatchETagExcept("*")
	case opts.IfMatch != "":
		po.SetMatchETag(opts.IfMatch)
	}

	var (
		info minio.UploadInfo
		err  error
	)
	seeker, start := backend.Rewindable(r)
	for attempt := 0; ; attempt++ {
		if size == backend.SizeUnknown {
			info, err = b.putStream(ctx, b.prefix+key, r, po, conditional)
		} else {
			info, err = b.putSized(ctx, b.prefix+key, r, size, po, conditional)
		}
		if err == nil || attempt > 0 || seeker == nil || !deniedByDirectoryRace(err) {
			break
		}
		// MinIO answers a Put 403 AccessDenied now and then when a
		// concurrent DELETE removes the key's emptied parent directory
		// (about one Put in 800 while the catalog's log entries come and
		// go); nothing was written, so even a conditional Put may be
		// sent again. A real denial is refused again, and reported
		// (ErrPermissionDenied) after this one more request.
		if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
			break
		}
	}
	if err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opPut, key, err)
	}
	return backend.ObjectInfo{
		Key:         key,
		Size:        info.Size,
		ETag:        info.ETag,
		ContentType: contentType,
		Modified:    time.Now(),
	}, nil
}

// errConditionalTooLarge is the failure of a conditional Put that cannot be
// one PUT request.
func errConditionalTooLarge(what string, limit int64) error {
	return fmt.Errorf("%w: %w: a conditional put must be a single PUT request (conditions are not applied to multipart uploads) and %s exceeds its limit of %d bytes",
		backend.ErrTooLarge, backend.ErrInvalidArgument, what, limit)
}

// putSized uploads size bytes of r.
func (b *Backend) putSized(ctx context.Context, key string, r io.Reader, size int64, po minio.PutObjectOptions, conditional bool) (minio.UploadInfo, error) {
	if conditional {
		if size > MaxSinglePutSize {
			return minio.UploadInfo{}, errConditionalTooLarge(fmt.Sprintf("the size %d", size), MaxSinglePutSize)
		}
		po.DisableMultipart = true
	} else if limit := maxStreamSize(b.partSize, b.maxParts); size > limit {
		return minio.UploadInfo{}, fmt.Errorf("%w: %d bytes is more than part size x parts (%d)", backend.ErrTooLarge, size, limit)
	}
	body, err := sizedBody(r, size)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	if size == 0 {
		return b.putEmpty(ctx, key, po)
	}
	return b.client.PutObject(ctx, b.bucket, key, body, size, po)
}

// emptySHA256 is the hex SHA-256 of no bytes.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// putEmpty stores an empty object. minio-go signs an empty PUT over plain
// HTTP with a streaming signature whose final chunk goes out as a chunked
// body the server does not expect (Content-Length 0): versitygw leaves it
// on the connection and answers it with an unsolicited 400, which the next
// request on that connection can receive as its own answer. A plain
// signed PUT with the empty payload's hash and no body avoids that.
func (b *Backend) putEmpty(ctx context.Context, key string, po minio.PutObjectOptions) (minio.UploadInfo, error) {
	po.DisableContentSha256 = true
	return b.core.PutObject(ctx, b.bucket, key, bytes.NewReader(nil), 0, "", emptySHA256, po)
}

// sizedBody returns the reader to hand minio-go for size bytes of r. A
// seekable io.ReaderAt is measured now and passed as an io.SectionReader,
// which minio-go uploads without buffering (in parallel when multipart);
// anything else is wrapped in an exactReader.
func sizedBody(r io.Reader, size int64) (io.Reader, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		if cur, err := ra.Seek(0, io.SeekCurrent); err == nil {
			end, err := ra.Seek(0, io.SeekEnd)
			if err == nil {
				if _, err := ra.Seek(cur, io.SeekStart); err != nil {
					return nil, fmt.Errorf("read content: seek: %w", err)
				}
				if end-cur != size {
					return nil, fmt.Errorf("%w: the reader holds %d bytes, not %d", backend.ErrSizeMismatch, end-cur, size)
				}
				return io.NewSectionReader(ra, cur, size), nil
			}
		}
	}
	if size == 0 {
		// minio-go does not read the body of an empty object; check here
		// that r is empty.
		if err := peekEOF(r, fmt.Errorf("%w: the reader has more than 0 bytes", backend.ErrSizeMismatch)); err != nil {
			return nil, err
		}
		return bytes.NewReader(nil), nil
	}
	return newExactReader(r, size), nil
}

// putStream uploads a stream of unknown length.
func (b *Backend) putStream(ctx context.Context, key string, r io.Reader, po minio.PutObjectOptions, conditional bool) (minio.UploadInfo, error) {
	lr := &limitReader{r: r, limit: maxStreamSize(b.partSize, b.maxParts)}
	buf, eof, err := readChunk(lr, nil, int(b.partSize))
	if err != nil {
		return minio.UploadInfo{}, err
	}
	if !eof {
		next, more, err := peekByte(lr)
		if err != nil {
			return minio.UploadInfo{}, err
		}
		if more {
			if conditional {
				return minio.UploadInfo{}, errConditionalTooLarge("a stream of unknown size longer than the part size", b.partSize)
			}
			return b.putMultipart(ctx, key, lr, buf, next, po)
		}
	}
	if len(buf) == 0 {
		return b.putEmpty(ctx, key, po)
	}
	return b.client.PutObject(ctx, b.bucket, key, bytes.NewReader(buf), int64(len(buf)), po)
}

// putMultipart uploads first, then the rest of r starting with the byte
// next, as PartSize parts, reusing first's buffer for every part.
func (b *Backend) putMultipart(ctx context.Context, key string, r io.Reader, first []byte, next byte, po minio.PutObjectOptions) (info minio.UploadInfo, err error) {
	uploadID, err := b.core.NewMultipartUpload(ctx, b.bucket, key, minio.PutObjectOptions{
		ContentType: po.ContentType, ServerSideEncryption: po.ServerSideEncryption, StorageClass: po.StorageClass,
	})
	if err != nil {
		return minio.UploadInfo{}, err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			if aerr := b.core.AbortMultipartUpload(actx, b.bucket, key, uploadID); aerr != nil {
				b.logger.Warn("s3backend: abort multipart upload", "bucket", b.bucket, "key", key, "upload_id", uploadID, "err", aerr)
			}
		}
	}()

	var (
		parts []minio.CompletePart
		total int64
		part  = first
		more  = true
	)
	for num := 1; ; num++ {
		p, err := b.core.PutObjectPart(ctx, b.bucket, key, uploadID, num, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
		if err != nil {
			return minio.UploadInfo{}, err
		}
		parts = append(parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
		total += int64(len(part))
		if !more {
			break
		}
		// The next part: the byte peeked after this one, then the rest.
		part = part[:cap(part)]
		part[0] = next
		rest, eof, err := readChunk(r, part[1:1], len(part)-1)
		if err != nil {
			return minio.UploadInfo{}, err
		}
		part = part[:1+len(rest)]
		more = false
		if !eof {
			if next, more, err = peekByte(r); err != nil {
				return minio.UploadInfo{}, err
			}
		}
	}
	info, err = b.core.CompleteMultipartUpload(ctx, b.bucket, key, uploadID, parts, minio.PutObjectOptions{})
	if err != nil {
		return minio.UploadInfo{}, err
	}
	info.Size = total
	return info, nil
}

// Get implements backend.Backend with one GET request: the object's info
// comes from the response headers, and a missing key is reported by Get
// itself. Read errors of the returned body are mapped like the errors of
// the calls (a broken connection matches backend.ErrTransient, a cancelled
// ctx its error).
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, backend.ObjectInfo{}, b.fail(ctx, opGet, key, err)
	}
	if err := b.check(ctx); err != nil {
		return nil, backend.ObjectInfo{}, b.fail(ctx, opGet, key, err)
	}
	body, oi, _, err := b.core.GetObject(ctx, b.bucket, b.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, backend.ObjectInfo{}, b.fail(ctx, opGet, key, err)
	}
	return &bodyReader{ctx: ctx, key: key, body: body}, objectInfo(key, oi), nil
}

// bodyReader maps the read errors of a GET response body.
type bodyReader struct {
	ctx  context.Context
	key  string
	body io.ReadCloser
}

func (r *bodyReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = mapError(r.ctx, opRead, r.key, err)
	}
	return n, err
}

func (r *bodyReader) Close() error { return r.body.Close() }

// Stat implements backend.Backend with one HEAD request.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := backend.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opStat, key, err)
	}
	if err := b.check(ctx); err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opStat, key, err)
	}
	oi, err := b.client.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return backend.ObjectInfo{}, b.fail(ctx, opStat, key, err)
	}
	return objectInfo(key, oi), nil
}

// Delete implements backend.Backend. Deleting a missing key succeeds; a
// missing bucket is an error matching backend.ErrNotFound.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return b.fail(ctx, opDelete, key, err)
	}
	if err := b.check(ctx); err != nil {
		return b.fail(ctx, opDelete, key, err)
	}
	err := b.client.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{})
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code == minio.NoSuchKey {
		return nil
	}
	if err != nil {
		return b.fail(ctx, opDelete, key, err)
	}
	return nil
}

// presignExpiry is how long the presigned URL of a conditional DELETE is
// valid. It is sent at once; the margin covers clock skew between the
// client and the server.
const presignExpiry = 5 * time.Minute

// DeleteIfMatch implements backend.ConditionalDeleter with one DELETE
// request carrying "If-Match: <etag>". minio-go has no option for a
// condition on DELETE, so the request is presigned by minio-go (with the
// If-Match header among the signed headers) and sent through the
// Backend's own transport. The answers map like every other call's: 204
// is success, 412 PreconditionFailed backend.ErrPreconditionFailed, 404
// NoSuchKey backend.ErrNotFound, 409 ConditionalRequestConflict
// backend.ErrTransient, and the minio.ErrorResponse stays in the chain.
//
// Whether the server enforces the condition is another matter: many
// servers accept the header and delete anyway, and some answer a missing
// key with 204 (see the package documentation). Only
// backend.ProbeConditionalDelete tells. Anonymous requests cannot be
// presigned: without credentials DeleteIfMatch fails with an error
// matching errors.ErrUnsupported.
func (b *Backend) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := backend.ValidateDeleteIfMatch(key, etag); err != nil {
		return b.fail(ctx, opDeleteIfMatch, key, err)
	}
	if err := b.check(ctx); err != nil {
		return b.fail(ctx, opDeleteIfMatch, key, err)
	}
	if anon, err := b.anonymous(); err != nil || anon {
		if err == nil {
			err = fmt.Errorf("a conditional delete is a presigned request, which needs credentials: %w", errors.ErrUnsupported)
		}
		return b.fail(ctx, opDeleteIfMatch, key, err)
	}
	ifMatch := etag
	if !strings.HasPrefix(ifMatch, `"`) {
		ifMatch = `"` + ifMatch + `"`
	}
	header := http.Header{"If-Match": {ifMatch}}
	u, err := b.client.PresignHeader(ctx, http.MethodDelete, b.bucket, b.prefix+key, presignExpiry, nil, header)
	if err != nil {
		return b.fail(ctx, opDeleteIfMatch, key, fmt.Errorf("presign: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return b.fail(ctx, opDeleteIfMatch, key, err)
	}
	req.Header = header
	resp, err := b.httpClient.Do(req)
	if err != nil {
		return b.fail(ctx, opDeleteIfMatch, key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
		return nil
	}
	return b.fail(ctx, opDeleteIfMatch, key, errorResponse(resp, b.bucket, b.prefix+key))
}

// errorResponse reads the S3 error of resp, as minio-go would: the XML
// body when there is one, otherwise a code made from the status.
func errorResponse(resp *http.Response, bucket, object string) error {
	er := minio.ErrorResponse{
		StatusCode: resp.StatusCode,
		Server:     resp.Header.Get("Server"),
		RequestID:  resp.Header.Get("x-amz-request-id"),
		HostID:     resp.Header.Get("x-amz-id-2"),
		Region:     resp.Header.Get("x-amz-bucket-region"),
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read the %s answer: %w", resp.Status, err)
	}
	if xerr := xml.Unmarshal(body, &er); xerr != nil || er.Code == "" {
		er.Code, er.Message = resp.Status, resp.Status
		switch resp.StatusCode {
		case http.StatusNotFound:
			er.Code = minio.NoSuchKey
		case http.StatusPreconditionFailed:
			er.Code = minio.PreconditionFailed
		case http.StatusForbidden:
			er.Code = minio.AccessDenied
		}
	}
	if er.BucketName == "" {
		er.BucketName = bucket
	}
	if er.Key == "" {
		er.Key = object
	}
	return er
}

// List implements backend.Backend with ListObjectsV2 requests (1,000 keys
// each), in the server's order, which S3 defines as ascending UTF-8 byte
// order. Listings carry no content type: the ObjectInfo it yields has an
// empty ContentType. Stopping the iteration early stops the listing; no
// goroutine is left behind.
//
// A prefix whose last segment is "." or ".." ("dots/.", a valid prefix of
// the key "dots/.hidden") is refused by MinIO (400
// XMinioInvalidResourceName, and so is a start-after there), so it is
// listed as its parent folder ("dots/"), skipping the keys before the
// prefix and stopping at the first key past it: the same keys, at the cost
// of listing the parent's keys that sort before them.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		if err := backend.ValidatePrefix(prefix); err != nil {
			yield(backend.ObjectInfo{}, b.fail(ctx, opList, prefix, err))
			return
		}
		if err := b.check(ctx); err != nil {
			yield(backend.ObjectInfo{}, b.fail(ctx, opList, prefix, err))
			return
		}
		// minio-go's iterator returns without an error when its context is
		// cancelled; the check after the loop turns that into one.
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fetchOwner := false
		full := b.prefix + prefix
		opts := minio.ListObjectsOptions{Prefix: full, Recursive: true, FetchOwner: &fetchOwner}
		if dotSegment(full) {
			opts.Prefix = full[:strings.LastIndexByte(full, '/')+1]
		}
		for oi := range b.client.ListObjectsIter(lctx, b.bucket, opts) {
			if oi.Err != nil {
				yield(backend.ObjectInfo{}, b.fail(ctx, opList, prefix, oi.Err))
				return
			}
			if !strings.HasPrefix(oi.Key, full) {
				if oi.Key > full {
					break // sorted: nothing under full comes after
				}
				continue
			}
			key, ok := strings.CutPrefix(oi.Key, b.prefix)
			if !ok || key == "" || strings.HasSuffix(key, "/") {
				continue // a directory marker, never one of our keys
			}
			if !yield(objectInfo(key, oi), nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(backend.ObjectInfo{}, b.fail(ctx, opList, prefix, err))
		}
	}
}

// conditionalCloser sends every conditional write (a PUT or DELETE with
// If-Match or If-None-Match) on a connection of its own, closed after the
// response ("Connection: close"), and a conditional PUT with "Expect:
// 100-continue".
//
// MinIO releases before 2025-10-24 (minio/minio#21633; the one
// docker-compose used to pin among them) answer a failed condition with 412
// and then drop the keep-alive connection without a "Connection: close":
// the next request sent on it fails at random with EOF or a reset. The
// store's manifest commits are exactly these requests, and backend.Retrying
// never re-sends a conditional write (its outcome would be ambiguous), so
// a broken next request would surface as a failed or unknown commit.
//
// A server that answers 412 before it reads the body may close the
// connection under a client still sending it; the reset can then destroy
// the 412 before the client reads it ("write: broken pipe" on MinIO). With
// "Expect: 100-continue" the body waits for the server's 100 Continue, and
// after a 412 it is not sent at all. (It waits at most the transport's
// ExpectContinueTimeout, Config.RequestTimeout/2 capped at minio-go's 10s,
// for a server that ignores Expect; an injected transport without one
// sends the body at once.)
//
// The cost is one new connection per conditional write (a TCP handshake,
// and a TLS one over https) and, for a PUT, one round trip before the body;
// every other request keeps its connection.
type conditionalCloser struct{ rt http.RoundTripper }

func (c conditionalCloser) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method == http.MethodPut || req.Method == http.MethodDelete) &&
		(req.Header.Get("If-Match") != "" || req.Header.Get("If-None-Match") != "") {
		req = req.Clone(req.Context()) // a RoundTripper must not change its request
		req.Close = true
		if req.Method == http.MethodPut && req.ContentLength != 0 {
			req.Header.Set("Expect", "100-continue")
		}
	}
	return c.rt.RoundTrip(req)
}

// dotSegment reports whether the last segment of prefix is "." or "..".
func dotSegment(prefix string) bool {
	last := prefix[strings.LastIndexByte(prefix, '/')+1:]
	return last == "." || last == ".."
}

// Close releases the idle connections of the transport New created (an
// injected Config.Transport is left alone). Calls after Close fail with
// backend.ErrClosed; readers returned by Get before Close keep working.
// Close is idempotent.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.closeIdle()
	return nil
}

// closeIdle closes the idle connections of the transport New created.
func (b *Backend) closeIdle() {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
}

// Probe proves that the server enforces conditional PUTs, one request at a
// time and under contention, with backend.ProbeConditionalPut on scratch
// keys under the prefix that it deletes afterwards. A server that ignores
// a condition gives an error matching backend.ErrUnfencedWrites.
func (b *Backend) Probe(ctx context.Context) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := ".s3backend-probe-" + hex.EncodeToString(rnd[:])
	if err := backend.ProbeConditionalPut(ctx, b, key); err != nil {
		err = fmt.Errorf("s3backend: probe bucket %q: %w", b.bucket, err)
		b.logger.Warn("s3backend: conditional put probe failed", "bucket", b.bucket, "err", err)
		return err
	}
	return nil
}

// check fails when the backend is closed or ctx is done.
func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// fail maps err (see mapError), logs it and returns it.
func (b *Backend) fail(ctx context.Context, op, key string, err error) error {
	err = mapError(ctx, op, key, err)
	level := slog.LevelWarn
	if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrPreconditionFailed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		level = slog.LevelDebug
	}
	b.logger.Log(ctx, level, "s3backend: "+op+" failed", "bucket", b.bucket, "key", key, "err", err)
	return err
}

// objectInfo converts minio-go's ObjectInfo of the object stored under
// key (without the prefix).
func objectInfo(key string, oi minio.ObjectInfo) backend.ObjectInfo {
	return backend.ObjectInfo{
		Key:         key,
		Size:        oi.Size,
		ETag:        oi.ETag,
		ContentType: oi.ContentType,
		Modified:    oi.LastModified,
	}
}

// deniedByDirectoryRace reports whether err is the plain 403 AccessDenied
// that MinIO gives a Put racing the removal of its parent directory (see
// Put); other denials (a wrong key, a signature) are never sent again.
func deniedByDirectoryRace(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == minio.AccessDenied && er.StatusCode == http.StatusForbidden
}
