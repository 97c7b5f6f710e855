package s3backend

import (
	"errors"
	"fmt"
	"io"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// maxEmptyReads is how many (0, nil) reads in a row are taken for a broken
// reader, as bufio does.
const maxEmptyReads = 100

// Buffer growth of readChunk.
const (
	firstChunk   = 64 << 10
	growthFactor = 16
)

// maxStreamSize is the longest stream of unknown size that fits in one
// multipart upload of maxParts parts of partSize bytes (S3 allows 10,000
// parts, so 156.25 GiB with the default 16 MiB part size).
func maxStreamSize(partSize, maxParts int64) int64 { return partSize * maxParts }

// peekByte reads one byte from r: ok reports that one arrived, and a nil
// error with !ok that r is at EOF. A failure of r is marked as content.
func peekByte(r io.Reader) (b byte, ok bool, err error) {
	var one [1]byte
	for range maxEmptyReads {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return one[0], true, nil
		case err == io.EOF:
			return 0, false, nil
		case err != nil:
			var ce *contentError
			if errors.As(err, &ce) {
				return 0, false, err
			}
			return 0, false, &contentError{fmt.Errorf("read content: %w", err)}
		}
	}
	return 0, false, &contentError{fmt.Errorf("read content: %w", io.ErrNoProgress)}
}

// peekEOF returns nil when r is at EOF, more when it has another byte, and
// the failure of r otherwise.
func peekEOF(r io.Reader, more error) error {
	_, ok, err := peekByte(r)
	if ok {
		return more
	}
	return err
}

// exactReader delivers exactly size bytes of r and fails when r has fewer or
// more. It withholds the chunk that completes size until it has checked
// that r ends there, and then fails with 0 bytes, so that a consumer that
// ignores an error arriving with a full buffer (minio-go's readFull) cannot
// complete an upload of a longer stream truncated to size. Every failure is
// sticky and marked as a content error.
type exactReader struct {
	r         io.Reader
	size      int64
	remaining int64
	err       error // sticky: io.EOF once done, or the failure
}

func newExactReader(r io.Reader, size int64) *exactReader {
	return &exactReader{r: r, size: size, remaining: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.remaining == 0 {
		return 0, e.finish()
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	switch {
	case err != nil && err != io.EOF:
		e.err = &contentError{fmt.Errorf("read content: %w", err)}
		return 0, e.err
	case e.remaining == 0:
		// The chunk completing size: deliver it only if r ends here.
		if err == nil {
			if ferr := e.finish(); ferr != io.EOF {
				return 0, ferr
			}
		}
		e.err = io.EOF
		return n, nil
	case err == io.EOF:
		e.err = &contentError{fmt.Errorf("%w: the reader ended after %d of %d bytes", backend.ErrSizeMismatch, e.size-e.remaining, e.size)}
		return 0, e.err
	}
	return n, nil
}

// finish checks that r is exhausted and records the outcome: io.EOF, or the
// failure.
func (e *exactReader) finish() error {
	e.err = peekEOF(e.r, &contentError{fmt.Errorf("%w: the reader has more than %d bytes", backend.ErrSizeMismatch, e.size)})
	if e.err == nil {
		e.err = io.EOF
	}
	return e.err
}

// limitReader delivers at most limit bytes of r and fails with an error
// matching backend.ErrTooLarge when r has more: the counting limiter that
// keeps a stream of unknown size from being stored truncated. Failures are
// sticky and marked as content errors.
type limitReader struct {
	r     io.Reader
	limit int64
	n     int64 // bytes delivered
	err   error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.n == l.limit {
		l.err = peekEOF(l.r, &contentError{fmt.Errorf("%w: the stream is longer than %d bytes, the most an upload of unknown size can hold (part size x parts)", backend.ErrTooLarge, l.limit)})
		if l.err == nil {
			l.err = io.EOF
		}
		return 0, l.err
	}
	if int64(len(p)) > l.limit-l.n {
		p = p[:l.limit-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if err != nil && err != io.EOF {
		l.err = &contentError{fmt.Errorf("read content: %w", err)}
		return n, l.err
	}
	if err == io.EOF {
		l.err = io.EOF
	}
	return n, err
}

// readChunk reads from r into buf[:0] until it holds max bytes or r ends,
// growing it when its capacity is short: from 64 KiB, 16 times at a step
// (64 KiB, 1 MiB, 16 MiB ...), so that a small stream does not cost a whole
// part buffer, while a long one leaves little garbage behind (1/15 of the
// part: a doubling growth would leave a whole part's worth, which shows in
// the peak RSS). It returns the bytes read; eof reports that r ended.
func readChunk(r io.Reader, buf []byte, max int) (out []byte, eof bool, err error) {
	buf = buf[:0]
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(max, firstChunk))
	}
	for len(buf) < max {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max, growthFactor*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, rerr := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF: // from io.ReadFull itself: r ended
			return buf, true, nil
		default:
			return buf, false, rerr
		}
	}
	return buf, false, nil
}
