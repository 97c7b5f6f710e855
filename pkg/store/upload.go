package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"reflect"
	"slices"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
)

// Upload stores the content read from r as artifact uri (without version),
// size bytes long, or of unknown length when size is SizeUnknown.
// With Config.Versioning it adds a version, otherwise it replaces the
// artifact's content (the version number still increases).
//
// Uploading the current version's content again (same SHA-256 and content
// type) changes nothing and returns the current version's metadata, when
// the upload gives no user metadata (the current version's is kept) or the
// same user metadata; new tags are still added. Other user metadata makes
// a new version (with versioning) or replaces the current one.
//
// The content is streamed to a new write-once blob with bounded memory and
// no lock held, then committed under the write protocol. On any failure
// nothing becomes visible: the artifact is unchanged and the new blob is
// deleted. A reader that fails is reported in the chain (errors.Is(err,
// readErr)); r delivering more or fewer than size bytes matches
// ErrInvalidArgument. The returned Metadata names the new version.
func (s *Store) Upload(ctx context.Context, uri string, r io.Reader, size int64, opts UploadOptions) (md Metadata, err error) {
	ctx, end := s.begin(ctx, "upload", uri)
	defer func() { end(err) }()
	u, err := parseArtifact(uri)
	if err != nil {
		return Metadata{}, err
	}
	switch {
	case r == nil:
		return Metadata{}, invalidf("upload %s: nil reader", u)
	case size < backend.SizeUnknown:
		return Metadata{}, invalidf("upload %s: negative size %d", u, size)
	}
	ct, err := validateContentType(opts.ContentType)
	if err != nil {
		return Metadata{}, err
	}
	tags, err := normalizeTags(opts.Tags)
	if err != nil {
		return Metadata{}, err
	}
	if len(tags) > s.cfg.MaxTags {
		return Metadata{}, invalidf("%d tags, more than the limit of %d (ARTIFACTSTORE_MAX_TAGS)", len(tags), s.cfg.MaxTags)
	}
	userMD, err := userMetadata(opts)
	if err != nil {
		return Metadata{}, err
	}
	if err := checkMetadataSize(tags, userMD, s.cfg.MaxMetadataBytes); err != nil {
		return Metadata{}, err
	}
	if err := ctx.Err(); err != nil {
		return Metadata{}, causeOf(ctx, err)
	}
	if err := s.checkQuota(ctx, u, size); err != nil { // quota.go; no-op without a quota
		return Metadata{}, wrapOp("upload", u, err)
	}

	// A small upload announces its commit in the catalog's log while its
	// content travels (catalog.go), or while the lock is taken when the
	// content goes inside the manifest; a large one after, so that a long
	// transfer does not age its entry.
	var in *intent
	inline, err := s.inlineContent(r, size)
	if err != nil {
		return Metadata{}, wrapOp("upload", u, err)
	}
	if _, ok := r.(*bytesContent); ok || size != backend.SizeUnknown && size <= smallBlobSize {
		in = s.beginIntent(ctx, u)
	}
	var blob blobInfo
	if inline != nil {
		sum := sha256.Sum256(inline)
		blob = blobInfo{sha256: hex.EncodeToString(sum[:]), size: int64(len(inline)), storedSize: int64(len(inline))}
	} else if blob, err = s.writeBlobRetrying(ctx, u, r, size, ct); err != nil {
		s.endIntent(ctx, in, false, false)
		return Metadata{}, wrapOp("upload", u, err)
	}
	// The exact quota check, now that the stored size is known; the
	// reservation lasts until the commit is counted (or failed).
	releaseQuota, err := s.reserveQuota(ctx, u, blob.storedSize)
	if err != nil {
		s.endIntent(ctx, in, false, false)
		s.deleteBlobs(ctx, "upload over quota", []string{blob.key})
		return Metadata{}, wrapOp("upload", u, err)
	}
	defer releaseQuota()
	v := version{
		Blob:        blob.key,
		Inline:      inline,
		SHA256:      blob.sha256,
		Size:        blob.size,
		StoredSize:  blob.storedSize,
		Compression: blob.compression,
		ContentType: ct,
		Created:     s.cfg.Now().UTC(),
		Metadata:    userMD,
	}
	out, err := s.mutate(ctx, u, in, func(cur *manifest, c commitInfo) (change, error) {
		v.Fence, v.Writer = c.Fence, c.Writer
		return s.applyUpload(cur, v, tags)
	})
	if err != nil {
		if out.uncertain {
			s.log.Warn("store: upload outcome uncertain, new blob kept for reconcile", "uri", u.String(), "key", blob.key)
		} else {
			s.deleteBlobs(ctx, "failed upload", []string{blob.key})
		}
		return Metadata{}, wrapOp("upload", u, err)
	}
	// The new version, or (no-op, or only new tags) the current one.
	return metadataOf(out.m, out.m.current()), nil
}

// UploadBytes is Upload of data.
func (s *Store) UploadBytes(ctx context.Context, uri string, data []byte, opts UploadOptions) (Metadata, error) {
	return s.Upload(ctx, uri, &bytesContent{Reader: bytes.NewReader(data), data: data}, int64(len(data)), opts)
}

// bytesContent is UploadBytes' reader: writeBlob recognizes it and uses the
// bytes directly (hashing them while the backend uploads them, from a
// seekable reader it can send in parallel parts and retry).
type bytesContent struct {
	*bytes.Reader
	data []byte
}

// maxSpill bounds the contents one commit moves out of its manifest, and
// spillConcurrency the blob Puts it runs at once to do so.
const (
	maxSpill         = 64
	spillConcurrency = 8
)

// inlineContent returns the content of an upload that goes inside the
// manifest (Config.InlineMaxBytes): r's bytes (a copy: the manifest
// outlives the call) when r's size is known and small enough, else nil.
// A non-nil result is never nil for empty content.
func (s *Store) inlineContent(r io.Reader, size int64) ([]byte, error) {
	limit := int64(s.cfg.InlineMaxBytes)
	if bc, ok := r.(*bytesContent); ok && bc.Len() == len(bc.data) {
		size = int64(len(bc.data))
		if size > limit {
			return nil, nil
		}
		return append([]byte{}, bc.data...), nil
	}
	if size == backend.SizeUnknown || size > limit {
		return nil, nil
	}
	data, err := readExactly(r, size)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// smallBlobSize is the largest content of known size that writeBlob reads
// into memory first, so that the backend gets a seekable body (one plain
// request, retried by the decorator) instead of a stream.
const smallBlobSize = 1 << 20

// maxBufferedGzip is the largest content UploadBytes compresses into memory
// before the Put; larger content is compressed while it streams.
const maxBufferedGzip = 16 << 20

// jsonEqual reports whether two stored metadata values are the same JSON:
// byte for byte, or, when the bytes differ (a manifest written by another
// encoder: other escapes, spaces), as decoded values (numbers compared by
// their text).
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	decode := func(raw json.RawMessage) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	va, oka := decode(a)
	vb, okb := decode(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

// applyUpload is Upload's mutation: add (versioning) or replace with v.
func (s *Store) applyUpload(cur *manifest, v version, tags []string) (change, error) {
	var uses []string
	if !v.inline() {
		uses = []string{v.Blob}
	}
	if cur == nil {
		v.Version = 1
		m := &manifest{manifestHeader: manifestHeader{Tags: tags, Created: v.Created, NextVersion: 2}, Versions: []version{v}}
		if m.Tags == nil {
			m.Tags = []string{}
		}
		return change{next: m, uses: uses}, nil
	}
	newTags := mergeTags(cur.Tags, tags)
	if len(newTags) > s.cfg.MaxTags {
		return change{}, invalidf("%d tags, more than the limit of %d (ARTIFACTSTORE_MAX_TAGS)", len(newTags), s.cfg.MaxTags)
	}
	if err := checkMetadataSize(newTags, v.Metadata, s.cfg.MaxMetadataBytes); err != nil {
		return change{}, err
	}
	c := cur.current()
	if c.SHA256 == v.SHA256 && c.Size == v.Size && c.ContentType == v.ContentType &&
		(len(v.Metadata) == 0 || maps.EqualFunc(c.Metadata, v.Metadata, jsonEqual)) {
		// Idempotent: the content is already the current version (and
		// no metadata given keeps the current version's).
		if len(newTags) == len(cur.Tags) {
			return change{noop: true, garbage: []string{v.Blob}}, nil
		}
		next := cur.clone()
		next.Tags = newTags
		return change{next: next, garbage: []string{v.Blob}}, nil
	}
	next := cur.clone()
	next.Tags = newTags
	v.Version = cur.NextVersion
	next.NextVersion++
	var garbage []string
	if s.cfg.Versioning {
		next.Versions = append(next.Versions, v)
		if n := s.cfg.MaxVersions; n > 0 && len(next.Versions) > n {
			drop := len(next.Versions) - n
			for _, old := range next.Versions[:drop] {
				garbage = append(garbage, old.Blob)
			}
			next.Versions = slices.Delete(next.Versions, 0, drop)
		}
	} else {
		garbage = next.blobs()
		next.Versions = []version{v}
	}
	ch := change{next: next, garbage: garbage, uses: uses}
	s.spillInline(&ch)
	return ch, nil
}

// spillInline keeps the content a manifest holds within 4 x
// Config.InlineMaxBytes: when ch.next holds more, the contents of its
// oldest versions stored inside it move to new blobs (written before the
// commit, see commitChange) until at most half of that is left, at most
// maxSpill of them per commit (a manifest written under a larger limit,
// or holding many tiny contents, gets there over several commits).
func (s *Store) spillInline(ch *change) {
	m := ch.next
	budget := 4 * int64(max(s.cfg.InlineMaxBytes, 0))
	held := m.inlineBytes()
	if held <= budget {
		return
	}
	prefix := blobPrefix(m.artifactURI())
	for i := range m.Versions {
		if held <= budget/2 || len(ch.spill) == maxSpill {
			break
		}
		v := m.Versions[i] // versions are shared with cur: replace, never change
		if !v.inline() {
			continue
		}
		ch.spill = append(ch.spill, spilledContent{key: prefix + s.newID(), data: v.Inline, contentType: v.ContentType})
		held -= v.Size
		v.Blob, v.Inline, v.raw, v.checked = ch.spill[len(ch.spill)-1].key, nil, nil, false
		m.Versions[i] = v
		ch.uses = append(ch.uses, v.Blob)
	}
}

// writeBlobRetrying is writeBlob, retried on a transient failure when r can
// be rewound (the retry decorator cannot replay a stream it did not get
// whole: the content reaches it through the digest or the compressor).
func (s *Store) writeBlobRetrying(ctx context.Context, u URI, r io.Reader, size int64, ct string) (blobInfo, error) {
	seeker, start := backend.Rewindable(r)
	policy := s.retryPolicy()
	for attempt := 0; ; attempt++ {
		blob, err := s.writeBlob(ctx, u, r, size, ct)
		if err == nil || seeker == nil || !retryable(err) || attempt >= s.cfg.Retry.MaxRetries {
			return blob, err
		}
		s.log.Warn("store: retrying blob upload after a transient error", "uri", u.String(), "attempt", attempt+1, "err", err)
		s.retried(ctx, "blob-upload", attempt+1, err)
		if serr := backoff.Sleep(ctx, policy.Delay(attempt)); serr != nil {
			return blobInfo{}, fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
		if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
			return blobInfo{}, err
		}
	}
}

// blobInfo describes a blob just written.
type blobInfo struct {
	key         string
	sha256      string
	size        int64 // original bytes
	storedSize  int64 // bytes of the blob
	compression string
}

// writeBlob streams r to a new blob of u (step 2 of the write protocol),
// gzip-compressed when configured, computing the SHA-256 and both sizes on
// the way. Memory stays bounded whatever the length.
func (s *Store) writeBlob(ctx context.Context, u URI, r io.Reader, size int64, ct string) (blobInfo, error) {
	key := blobPrefix(u) + s.newID()
	if bc, ok := r.(*bytesContent); ok && bc.Len() == len(bc.data) {
		return s.writeBlobBytes(ctx, key, bc.data, ct)
	}
	if size >= 0 && size <= smallBlobSize {
		data, err := readExactly(r, size)
		if err != nil {
			return blobInfo{}, err
		}
		return s.writeBlobBytes(ctx, key, data, ct)
	}
	src := &digestReader{r: r, h: sha256.New(), want: size}
	var body io.Reader = src
	compress := false
	if s.cfg.Compression {
		if size >= 0 {
			compress = size >= s.cfg.CompressionMinSize
		} else {
			// Unknown length: read up to the threshold to decide.
			head := make([]byte, s.cfg.CompressionMinSize)
			n, err := io.ReadFull(src, head)
			switch {
			case err == nil:
				compress = true
				body = io.MultiReader(bytes.NewReader(head), src)
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				if src.err != nil {
					return blobInfo{}, src.err
				}
				body, size = bytes.NewReader(head[:n]), int64(n)
			default:
				return blobInfo{}, err
			}
		}
	}

	var (
		info   backend.ObjectInfo
		err    error
		stored int64
	)
	if compress {
		info, stored, err = s.putCompressed(ctx, key, body)
	} else {
		info, err = s.b.Put(ctx, key, body, size, backend.PutOptions{ContentType: ct})
		stored = info.Size
	}
	if err != nil {
		// Put stores nothing when it fails (backend contract).
		if src.err != nil {
			return blobInfo{}, src.err
		}
		return blobInfo{}, fmt.Errorf("write blob: %w", err)
	}
	if !src.complete() {
		// The backend stopped reading before the end: never commit a
		// blob that may be short.
		s.deleteBlobs(ctx, "short blob write", []string{key})
		return blobInfo{}, fmt.Errorf("store: internal error: backend stored %q before the end of the content", key)
	}
	out := blobInfo{key: key, sha256: hex.EncodeToString(src.h.Sum(nil)), size: src.n, storedSize: stored}
	if compress {
		out.compression = compressionGzip
	}
	return out, nil
}

// writeBlobBytes writes data, held in memory, to a new blob under key: as it
// is (hashed while the backend uploads it) or gzip-compressed.
func (s *Store) writeBlobBytes(ctx context.Context, key string, data []byte, ct string) (blobInfo, error) {
	out := blobInfo{key: key, size: int64(len(data))}
	compress := s.cfg.Compression && int64(len(data)) >= s.cfg.CompressionMinSize
	var (
		info backend.ObjectInfo
		err  error
	)
	switch {
	case compress && len(data) > maxBufferedGzip:
		src := &digestReader{r: bytes.NewReader(data), h: sha256.New(), want: int64(len(data))}
		info, out.storedSize, err = s.putCompressed(ctx, key, src)
		if err == nil && !src.complete() {
			s.deleteBlobs(ctx, "short blob write", []string{key})
			return blobInfo{}, fmt.Errorf("store: internal error: backend stored %q before the end of the content", key)
		}
		out.sha256 = hex.EncodeToString(src.h.Sum(nil))
	case compress:
		var buf bytes.Buffer
		zw, zerr := gzip.NewWriterLevel(&buf, s.cfg.CompressionLevel)
		if zerr != nil {
			return blobInfo{}, zerr
		}
		if _, zerr = zw.Write(data); zerr == nil {
			zerr = zw.Close()
		}
		if zerr != nil {
			return blobInfo{}, fmt.Errorf("compress: %w", zerr)
		}
		sum := sha256.Sum256(data)
		out.sha256 = hex.EncodeToString(sum[:])
		info, err = s.b.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), backend.PutOptions{ContentType: "application/gzip"})
		out.storedSize = int64(buf.Len())
	default:
		// Hash while the backend uploads: both only read data.
		hashed := make(chan [sha256.Size]byte, 1)
		go func() { hashed <- sha256.Sum256(data) }()
		info, err = s.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{ContentType: ct})
		sum := <-hashed
		out.sha256 = hex.EncodeToString(sum[:])
		out.storedSize = int64(len(data))
	}
	if err != nil {
		return blobInfo{}, fmt.Errorf("write blob: %w", err)
	}
	if info.Size != out.storedSize {
		s.deleteBlobs(ctx, "short blob write", []string{key})
		return blobInfo{}, fmt.Errorf("store: internal error: backend stored %d of the %d bytes of %q", info.Size, out.storedSize, key)
	}
	if compress {
		out.compression = compressionGzip
	}
	return out, nil
}

// readExactly reads exactly size bytes from r and checks that r ends there.
// More or fewer bytes match ErrInvalidArgument (and
// backend.ErrSizeMismatch); r's own failure is kept in the chain.
func readExactly(r io.Reader, size int64) ([]byte, error) {
	data := make([]byte, size)
	n, err := io.ReadFull(r, data)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: %w: the reader delivered %d bytes, %d announced", ErrInvalidArgument, backend.ErrSizeMismatch, n, size)
	case err != nil:
		return nil, fmt.Errorf("read content: %w", err)
	}
	var probe [1]byte
	n, err = io.ReadFull(r, probe[:])
	switch {
	case n > 0:
		return nil, fmt.Errorf("%w: %w: the reader delivered more than the announced %d bytes", ErrInvalidArgument, backend.ErrSizeMismatch, size)
	case err != io.EOF:
		return nil, fmt.Errorf("read content: %w", err)
	}
	return data, nil
}

// putCompressed gzips body into a Put of unknown size through a pipe.
func (s *Store) putCompressed(ctx context.Context, key string, body io.Reader) (backend.ObjectInfo, int64, error) {
	pr, pw := io.Pipe()
	counted := &countWriter{w: pw}
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw, err := gzip.NewWriterLevel(counted, s.cfg.CompressionLevel)
		if err == nil {
			_, err = io.Copy(zw, body)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	info, err := s.b.Put(ctx, key, pr, backend.SizeUnknown, backend.PutOptions{ContentType: "application/gzip"})
	// Unblock the compressor if the backend stopped reading early.
	pr.CloseWithError(errors.New("store: blob write ended"))
	<-done
	return info, counted.n, err
}

// digestReader hashes and counts what is read through it, enforces the
// announced size and remembers the source's own failure.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want int64 // SizeUnknown or the announced size
	eof  bool
	err  error // the first error: the source's, or a size mismatch
}

func (d *digestReader) Read(p []byte) (int, error) {
	switch {
	case d.err != nil:
		return 0, d.err
	case d.eof:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if d.want >= 0 && d.n == d.want {
		// All announced bytes arrived: the source must be at its end.
		var probe [1]byte
		n, err := io.ReadFull(d.r, probe[:])
		switch {
		case n > 0:
			d.err = fmt.Errorf("%w: %w: the reader delivered more than the announced %d bytes", ErrInvalidArgument, backend.ErrSizeMismatch, d.want)
		case err == io.EOF:
			d.eof = true
			return 0, io.EOF
		default:
			d.err = fmt.Errorf("read content: %w", err)
		}
		return 0, d.err
	}
	if d.want >= 0 && int64(len(p)) > d.want-d.n {
		p = p[:d.want-d.n]
	}
	n, err := d.r.Read(p)
	if n < 0 || n > len(p) {
		n, err = 0, fmt.Errorf("%w: reader returned %d bytes for a %d-byte buffer", ErrInvalidArgument, n, len(p))
	}
	d.h.Write(p[:n])
	d.n += int64(n)
	switch {
	case err == io.EOF:
		if d.want >= 0 && d.n != d.want {
			d.err = fmt.Errorf("%w: %w: the reader delivered %d bytes, %d announced", ErrInvalidArgument, backend.ErrSizeMismatch, d.n, d.want)
			return n, d.err
		}
		d.eof = true
	case err != nil:
		d.err = fmt.Errorf("read content: %w", err)
		return n, d.err
	}
	return n, err
}

// complete reports whether the whole content went through: the source
// reached its end, or (announced size) every announced byte arrived.
func (d *digestReader) complete() bool {
	return d.err == nil && (d.eof || d.want >= 0 && d.n == d.want)
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// SizeUnknown is the size to pass to Upload for content of unknown length
// (a pipe, a stream): the same value as backend.SizeUnknown, so that
// callers need not import pkg/backend.
const SizeUnknown = backend.SizeUnknown
