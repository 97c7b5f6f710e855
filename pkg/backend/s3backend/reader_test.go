package s3backend

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestMaxStreamSize(t *testing.T) {
	cases := []struct {
		part, parts, want int64
	}{
		{DefaultPartSize, MaxParts, 160_000 << 20}, // 156.25 GiB
		{MinPartSize, MaxParts, 50_000 << 20},      // 48.8 GiB
		{MaxPartSize, MaxParts, 50_000 << 30},      // 48.8 TiB
		{MinPartSize, 2, 10 << 20},
	}
	for _, tc := range cases {
		if got := maxStreamSize(tc.part, tc.parts); got != tc.want {
			t.Errorf("maxStreamSize(%d, %d) = %d, want %d", tc.part, tc.parts, got, tc.want)
		}
	}
}

// readAllBy reads r with reads of at most chunk bytes, like a consumer with
// a small buffer.
func readAllBy(r io.Reader, chunk int) ([]byte, error) {
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestExactReader(t *testing.T) {
	data := []byte("0123456789")
	errBoom := errors.New("boom")
	cases := []struct {
		name    string
		r       io.Reader
		size    int64
		wantErr error // nil: the whole data must come out
	}{
		{"exact", bytes.NewReader(data), 10, nil},
		{"exact, one byte at a time", iotest.OneByteReader(bytes.NewReader(data)), 10, nil},
		{"exact, data with EOF", iotest.DataErrReader(bytes.NewReader(data)), 10, nil},
		{"empty", strings.NewReader(""), 0, nil},
		{"shorter", bytes.NewReader(data[:9]), 10, backend.ErrSizeMismatch},
		{"longer", bytes.NewReader(data), 9, backend.ErrSizeMismatch},
		{"longer, one byte at a time", iotest.OneByteReader(bytes.NewReader(data)), 9, backend.ErrSizeMismatch},
		{"content where none was announced", bytes.NewReader(data), 0, backend.ErrSizeMismatch},
		{"reader fails", io.MultiReader(bytes.NewReader(data[:5]), iotest.ErrReader(errBoom)), 10, errBoom},
		{"reader fails at the end", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errBoom)), 10, errBoom},
		{"timeout", iotest.TimeoutReader(bytes.NewReader(data)), 10, iotest.ErrTimeout},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 3, 10, 64} {
			er := newExactReader(tc.r, tc.size)
			got, err := readAllBy(er, chunk)
			if tc.wantErr == nil {
				if err != nil || !bytes.Equal(got, data[:tc.size]) {
					t.Errorf("%s (chunk %d): %q, %v; want %q", tc.name, chunk, got, err, data[:tc.size])
				}
			} else {
				var ce *contentError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &ce) {
					t.Errorf("%s (chunk %d): err = %v, want %v marked as content", tc.name, chunk, err, tc.wantErr)
				}
				// The failure is sticky.
				if _, err2 := er.Read(make([]byte, 4)); !errors.Is(err2, tc.wantErr) {
					t.Errorf("%s (chunk %d): next Read err = %v", tc.name, chunk, err2)
				}
			}
			// Rewind the sources that can be rewound for the next chunk size.
			if s, ok := tc.r.(io.Seeker); ok {
				_, _ = s.Seek(0, io.SeekStart)
			} else {
				break
			}
		}
	}
}

// TestExactReaderFullBuffer is minio-go's case: it reads a part into a
// buffer exactly as long as what remains and ignores an error that comes
// with a full buffer. The extra byte must be reported with 0 bytes, so
// that the buffer is not full.
func TestExactReaderFullBuffer(t *testing.T) {
	data := []byte("0123456789X")
	er := newExactReader(bytes.NewReader(data), 10)
	buf := make([]byte, 10)
	n, err := io.ReadFull(er, buf)
	if err == nil || !errors.Is(err, backend.ErrSizeMismatch) || n == len(buf) {
		t.Errorf("ReadFull = %d, %v; want a short read with ErrSizeMismatch", n, err)
	}
	// The exact case fills the buffer and then reports EOF.
	er = newExactReader(bytes.NewReader(data[:10]), 10)
	if n, err := io.ReadFull(er, buf); n != 10 || err != nil {
		t.Errorf("ReadFull of an exact reader = %d, %v", n, err)
	}
	if n, err := er.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v; want EOF", n, err)
	}
}

func TestLimitReader(t *testing.T) {
	errBoom := errors.New("boom")
	cases := []struct {
		name    string
		r       io.Reader
		limit   int64
		want    string
		wantErr error
	}{
		{"below", strings.NewReader("abc"), 10, "abc", nil},
		{"exactly", strings.NewReader("0123456789"), 10, "0123456789", nil},
		{"exactly, one byte at a time", iotest.OneByteReader(strings.NewReader("0123456789")), 10, "0123456789", nil},
		{"one more", strings.NewReader("0123456789X"), 10, "0123456789", backend.ErrTooLarge},
		{"much more", strings.NewReader(strings.Repeat("x", 100)), 10, strings.Repeat("x", 10), backend.ErrTooLarge},
		{"empty", strings.NewReader(""), 10, "", nil},
		{"zero limit, empty", strings.NewReader(""), 0, "", nil},
		{"zero limit, one byte", strings.NewReader("x"), 0, "", backend.ErrTooLarge},
		{"reader fails", io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errBoom)), 10, "ab", errBoom},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 4, 64} {
			lr := &limitReader{r: tc.r, limit: tc.limit}
			got, err := readAllBy(lr, chunk)
			if string(got) != tc.want {
				t.Errorf("%s (chunk %d): read %q, want %q", tc.name, chunk, got, tc.want)
			}
			var ce *contentError
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("%s (chunk %d): err = %v", tc.name, chunk, err)
			case tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || !errors.As(err, &ce)):
				t.Errorf("%s (chunk %d): err = %v, want %v marked as content", tc.name, chunk, err, tc.wantErr)
			}
			if s, ok := tc.r.(io.Seeker); ok {
				_, _ = s.Seek(0, io.SeekStart)
			} else {
				break
			}
		}
	}
}

func TestReadChunk(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 40<<10) // 320 KiB
	cases := []struct {
		name    string
		n, max  int
		wantLen int
		wantEOF bool
	}{
		{"empty", 0, 1 << 20, 0, true},
		{"small", 10, 1 << 20, 10, true},
		{"grows past the first buffer", 200 << 10, 1 << 20, 200 << 10, true},
		{"exactly max", 256 << 10, 256 << 10, 256 << 10, false},
		{"more than max", 320 << 10, 256 << 10, 256 << 10, false},
	}
	for _, tc := range cases {
		buf, eof, err := readChunk(iotest.HalfReader(bytes.NewReader(data[:tc.n])), nil, tc.max)
		if err != nil || len(buf) != tc.wantLen || eof != tc.wantEOF || !bytes.Equal(buf, data[:tc.wantLen]) {
			t.Errorf("%s: readChunk = %d bytes, eof %v, %v; want %d bytes, eof %v", tc.name, len(buf), eof, err, tc.wantLen, tc.wantEOF)
		}
		if cap(buf) > tc.max {
			t.Errorf("%s: buffer grew to %d, above max %d", tc.name, cap(buf), tc.max)
		}
	}
	// A reused buffer is filled in place.
	buf := make([]byte, 0, 100)
	out, eof, err := readChunk(bytes.NewReader(data), buf[:0], 100)
	if err != nil || eof || len(out) != 100 || &out[0] != &buf[:1][0] {
		t.Errorf("reused buffer: %d bytes, eof %v, %v, same array %v", len(out), eof, err, len(out) > 0 && &out[0] == &buf[:1][0])
	}
	// A failing reader's error comes back.
	errBoom := errors.New("boom")
	if _, _, err := readChunk(&limitReader{r: iotest.ErrReader(errBoom), limit: 10}, nil, 100); !errors.Is(err, errBoom) {
		t.Errorf("failing reader: %v", err)
	}
}

func TestPeekByte(t *testing.T) {
	if b, ok, err := peekByte(strings.NewReader("xy")); b != 'x' || !ok || err != nil {
		t.Errorf("peekByte(xy) = %q, %v, %v", b, ok, err)
	}
	if _, ok, err := peekByte(strings.NewReader("")); ok || err != nil {
		t.Errorf("peekByte(empty) = %v, %v", ok, err)
	}
	if _, ok, err := peekByte(emptyReads{}); ok || !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("peekByte of a reader that never progresses = %v, %v", ok, err)
	}
}

type emptyReads struct{}

func (emptyReads) Read([]byte) (int, error) { return 0, nil }
