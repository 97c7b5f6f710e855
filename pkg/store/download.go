package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
)

// Download returns the content and metadata of uri: the current version, or
// the version named by ?version=<n>. It takes no lock. A missing artifact
// or version matches ErrNotFound; content that fails verification matches
// ErrIntegrity. A transient failure while reading is retried from the start
// (Config.Retry).
func (s *Store) Download(ctx context.Context, uri string) (data []byte, md Metadata, err error) {
	ctx, end := s.begin(ctx, "download", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return nil, Metadata{}, err
	}
	policy := s.retryPolicy()
	for attempt := 0; ; attempt++ {
		data, md, err = s.downloadOnce(ctx, u)
		if err == nil || !retryable(err) || attempt >= s.cfg.Retry.MaxRetries {
			return data, md, err
		}
		s.retried(ctx, "download", attempt+1, err)
		if serr := backoff.Sleep(ctx, policy.Delay(attempt)); serr != nil {
			return nil, Metadata{}, err
		}
	}
}

func (s *Store) downloadOnce(ctx context.Context, u URI) ([]byte, Metadata, error) {
	rc, md, err := s.open(ctx, u, !s.cfg.DisableVerify)
	if err != nil {
		return nil, Metadata{}, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(md.Size, 64<<20)) + bytes.MinRead)
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, Metadata{}, fmt.Errorf("download %s: %w", u, err)
	}
	return buf.Bytes(), md, nil
}

// Open returns a stream of the content of uri (current version, or
// ?version=<n>) and its metadata. The stream decompresses transparently and,
// unless Config.DisableVerify, checks the SHA-256 and size while it is read:
// on a mismatch the Read that reaches the end returns an error matching
// ErrIntegrity instead of io.EOF. The caller must Close it. Memory stays
// bounded whatever the size.
func (s *Store) Open(ctx context.Context, uri string) (rc io.ReadCloser, md Metadata, err error) {
	ctx, end := s.begin(ctx, "open", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return nil, Metadata{}, err
	}
	return s.open(ctx, u, !s.cfg.DisableVerify)
}

// OpenVersion opens the content of the version md describes (as returned by
// Stat, Versions, ListTask, Search or Upload) without reading the manifest
// again: one round trip, the blob's GET, or for a content stored in the
// manifest (md.BlobKey empty) the manifest's. When that version has been
// pruned or replaced since, the error matches ErrNotFound. Verification is
// as for Open.
func (s *Store) OpenVersion(ctx context.Context, md Metadata) (rc io.ReadCloser, err error) {
	ctx, end := s.begin(ctx, "open-version", md.URI)
	defer func() { end(err) }()
	u, err := ParseURI(md.URI)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Version == 0 || u.Version != md.Version:
		return nil, invalidf("metadata of %s names no version", md.URI)
	case !isHexSHA256(md.SHA256) || md.Size < 0:
		return nil, invalidf("metadata of %s: malformed sha256 or size", md.URI)
	case md.BlobKey == "":
		return s.openStoredVersion(ctx, u, md)
	case !strings.HasPrefix(md.BlobKey, blobPrefix(u)) || backend.ValidateKey(md.BlobKey) != nil:
		return nil, invalidf("metadata of %s: blob key %q is not one of its blobs", md.URI, md.BlobKey)
	}
	return s.openBlob(ctx, blobRef{key: md.BlobKey, sha256: md.SHA256, size: md.Size, compressed: md.Compressed}, !s.cfg.DisableVerify)
}

// openStoredVersion is OpenVersion of a version whose content md says is
// stored in the manifest: the manifest's version of that number, if it is
// still the same content (it may have moved to a blob since).
func (s *Store) openStoredVersion(ctx context.Context, u URI, md Metadata) (io.ReadCloser, error) {
	m, _, err := s.readManifest(ctx, u)
	if err != nil {
		return nil, err
	}
	v := m.find(u.Version)
	if v == nil || v.SHA256 != md.SHA256 || v.Size != md.Size || !v.Created.Equal(md.CreatedAt) {
		return nil, errNotFound(u, nil)
	}
	return s.openContent(ctx, v, !s.cfg.DisableVerify)
}

// open is the read protocol: read the manifest (no lock), pick the version,
// open its blob; if the blob vanished because a writer replaced or pruned
// it in between, read the manifest once more.
//
// When the Store holds a decoded copy of the manifest, the blob of the
// version that copy names is opened at the same time as the manifest is
// read, and used only if the manifest just read names the same blob: one
// round trip of latency instead of two for an artifact read before (a
// stale guess costs one wasted request).
func (s *Store) open(ctx context.Context, u URI, verify bool) (io.ReadCloser, Metadata, error) {
	var (
		m   *manifest
		err error
	)
	if guess := s.manifests.peek(manifestKey(u)).m; guess != nil {
		// (A version stored in the manifest needs no second request.)
		if gv := guess.find(u.Version); gv != nil && !gv.inline() {
			var rc io.ReadCloser
			if m, rc, err = s.openSpeculative(ctx, u, refOf(gv), verify); err != nil {
				return nil, Metadata{}, err
			}
			if rc != nil {
				return rc, metadataOf(m, m.find(u.Version)), nil
			}
		}
	}
	for attempt := 0; ; attempt++ {
		if m == nil {
			if m, _, err = s.readManifest(ctx, u); err != nil {
				return nil, Metadata{}, err
			}
		}
		v := m.find(u.Version)
		if v == nil {
			return nil, Metadata{}, errNotFound(u, nil)
		}
		rc, err := s.openContent(ctx, v, verify)
		if err == nil {
			return rc, metadataOf(m, v), nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, Metadata{}, err
		}
		if attempt > 0 {
			return nil, Metadata{}, fmt.Errorf("%w: %s: blob %q of version %d is missing: %w", ErrIntegrity, u.Artifact(), v.Blob, v.Version, err)
		}
		m = nil
	}
}

// openSpeculative reads u's manifest while it opens the blob guessed from a
// cached copy. It returns the manifest and, when the guess was right, the
// open stream; a wrong guess (or a failed speculative open) returns a nil
// stream and the manifest, for the caller to continue with.
func (s *Store) openSpeculative(ctx context.Context, u URI, guess blobRef, verify bool) (*manifest, io.ReadCloser, error) {
	type opened struct {
		rc  io.ReadCloser
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		rc, err := s.openBlob(ctx, guess, verify)
		ch <- opened{rc, err}
	}()
	m, _, err := s.readManifest(ctx, u)
	o := <-ch
	if err == nil && o.err == nil {
		if v := m.find(u.Version); v != nil && v.Blob == guess.key && refOf(v) == guess {
			return m, o.rc, nil
		}
	}
	if o.rc != nil {
		o.rc.Close()
	}
	if err != nil {
		return nil, nil, err
	}
	return m, nil, nil
}

// blobRef is what reading one version's blob needs.
type blobRef struct {
	key        string
	sha256     string
	size       int64
	compressed bool
}

func refOf(v *version) blobRef {
	return blobRef{key: v.Blob, sha256: v.SHA256, size: v.Size, compressed: v.Compression != ""}
}

// String names the content in messages.
func (r blobRef) String() string {
	if r.key == "" {
		return "the content stored in the manifest"
	}
	return fmt.Sprintf("blob %q", r.key)
}

// openContent opens the content of version v: its blob, or the content
// the manifest holds (no request), checked the same way.
func (s *Store) openContent(ctx context.Context, v *version, verify bool) (io.ReadCloser, error) {
	if !v.inline() {
		return s.openBlob(ctx, refOf(v), verify)
	}
	src := &sourceReader{r: bytes.NewReader(v.Inline)}
	vr := &verifyReader{r: src, src: src, closer: io.NopCloser(nil), ref: refOf(v)}
	if verify {
		vr.h = sha256.New()
	}
	return vr, nil
}

// openBlob opens a blob as the verified, decompressed content stream. A
// missing blob matches ErrNotFound.
func (s *Store) openBlob(ctx context.Context, ref blobRef, verify bool) (io.ReadCloser, error) {
	body, info, err := s.b.Get(ctx, ref.key)
	if err != nil {
		return nil, fmt.Errorf("read blob %q: %w", ref.key, err)
	}
	src := &sourceReader{r: body}
	vr := &verifyReader{src: src, closer: body, ref: ref}
	if verify {
		vr.h = sha256.New()
	}
	vr.r = src
	if info.Size >= readAheadMin {
		// Overlap the transfer with the decompression and hashing.
		ra := newReadAhead(src, body)
		vr.r, vr.closer = ra, ra
	}
	if ref.compressed {
		zr, err := gzip.NewReader(vr.r)
		if err != nil {
			vr.closer.Close()
			if src.err != nil {
				return nil, fmt.Errorf("read blob %q: %w", ref.key, src.err)
			}
			return nil, integrityf("blob %q: not gzip: %v", ref.key, err)
		}
		vr.r = zr
	}
	return vr, nil
}

// sourceReader remembers the error of the stored blob's own stream, so a
// network failure is not mistaken for corrupt content.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// verifyReader streams a version's content, checking its length always and
// its SHA-256 when h is set; a failure matches ErrIntegrity and sticks.
type verifyReader struct {
	r      io.Reader // the content (through gzip when compressed)
	src    *sourceReader
	closer io.Closer
	ref    blobRef
	h      hash.Hash // nil: no digest check
	n      int64
	err    error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	return v.consume(p[:n], err)
}

// WriteTo streams the content to w. Over a read-ahead of an uncompressed
// blob it writes the read-ahead's chunks directly, saving a copy.
func (v *verifyReader) WriteTo(w io.Writer) (int64, error) {
	ra, ok := v.r.(*readAhead)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{v}) // hide WriteTo
	}
	var total int64
	for v.err == nil {
		data, err := ra.next()
		n, err := v.consume(data, err)
		if n > 0 {
			m, werr := w.Write(data[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil && err != io.EOF {
			return total, err
		}
	}
	if v.err == io.EOF {
		return total, nil
	}
	return total, v.err
}

// consume accounts for data just read (and the read's error): it counts
// and hashes it and, at the end, checks the size and digest. It returns
// how much of data to deliver and the error to report.
func (v *verifyReader) consume(data []byte, err error) (int, error) {
	n := len(data)
	if v.h != nil {
		v.h.Write(data)
	}
	v.n += int64(n)
	switch {
	case v.n > v.ref.size:
		v.err = integrityf("%s holds more than the recorded %d bytes", v.ref, v.ref.size)
		return 0, v.err
	case err == io.EOF:
		if v.n != v.ref.size {
			v.err = integrityf("%s holds %d bytes, %d recorded", v.ref, v.n, v.ref.size)
			return n, v.err
		}
		if v.h != nil {
			if sum := hex.EncodeToString(v.h.Sum(nil)); sum != v.ref.sha256 {
				v.err = integrityf("%s: sha256 %s, %s recorded", v.ref, sum, v.ref.sha256)
				return n, v.err
			}
		}
		v.err = io.EOF
	case err != nil:
		if v.src.err != nil {
			v.err = fmt.Errorf("read %s: %w", v.ref, err)
		} else {
			// Not the stream's failure: the decompressor's.
			v.err = integrityf("%s: %v", v.ref, err)
		}
		return n, v.err
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.closer.Close() }

// Read-ahead of large blobs: readAheadBuffers buffers of readAheadChunk
// bytes per open stream.
const (
	readAheadMin     = 4 << 20
	readAheadChunk   = 1 << 20
	readAheadBuffers = 3
)

// readAhead reads its source in a goroutine, a bounded number of chunks
// ahead of its consumer, so that the transfer of a blob overlaps with the
// work done on what has arrived (decompression, hashing, the caller's).
type readAhead struct {
	src    io.Reader
	closer io.Closer
	chunks chan chunk
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	cur    []byte // unread part of the current chunk
	curBuf []byte // the current chunk's buffer, returned to free when read
	err    error
}

type chunk struct {
	data, buf []byte
	err       error
}

func newReadAhead(src io.Reader, closer io.Closer) *readAhead {
	ra := &readAhead{
		src: src, closer: closer,
		chunks: make(chan chunk, readAheadBuffers),
		free:   make(chan []byte, readAheadBuffers),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for range readAheadBuffers {
		ra.free <- make([]byte, readAheadChunk)
	}
	go ra.fill()
	return ra
}

func (ra *readAhead) fill() {
	defer close(ra.done)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(ra.src, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.chunks <- chunk{data: buf[:n], buf: buf, err: err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.curBuf != nil {
			ra.free <- ra.curBuf // never blocks: free holds every buffer
			ra.curBuf = nil
		}
		if ra.err != nil {
			return 0, ra.err
		}
		c := <-ra.chunks
		ra.cur, ra.curBuf, ra.err = c.data, c.buf, c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// next returns the next piece of the content, valid until the next call of
// next or Read; at the end it returns io.EOF (or the source's error).
func (ra *readAhead) next() ([]byte, error) {
	if len(ra.cur) > 0 {
		d := ra.cur
		ra.cur = nil
		return d, nil
	}
	if ra.curBuf != nil {
		ra.free <- ra.curBuf // never blocks: free holds every buffer
		ra.curBuf = nil
	}
	if ra.err != nil {
		return nil, ra.err
	}
	c := <-ra.chunks
	ra.curBuf, ra.err = c.buf, c.err
	if len(c.data) == 0 && c.err != nil {
		return nil, c.err
	}
	return c.data, nil
}

// Close stops the reading goroutine and closes the source.
func (ra *readAhead) Close() error {
	var err error
	ra.once.Do(func() {
		close(ra.stop)
		err = ra.closer.Close() // also ends a Read in progress
		<-ra.done
	})
	return err
}
