package filebackend

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Names in the root directory tree. See the package documentation.
const (
	objSuffix  = ".obj"
	dirSuffix  = ".d"
	tmpPrefix  = ".tmp-"
	tmpSuffix  = ".tmp"
	locksDir   = ".locks"
	lockShards = 256

	// maxSegment is the longest key segment: a file name is at most 255
	// bytes on the filesystems this backend supports, and ".obj" is
	// appended.
	maxSegment = 255 - len(objSuffix)
)

// objectPath returns the slash-separated path, relative to the root, of
// key's object file and of the directory that holds it ("." for the root).
// key must have passed backend.ValidateKey.
func objectPath(key string) (dir, file string, err error) {
	segs := strings.Split(key, "/")
	for _, s := range segs {
		if len(s) > maxSegment {
			return "", "", fmt.Errorf("%w: key %q has a segment of %d bytes, more than the %d a file name allows", backend.ErrInvalidKey, key, len(s), maxSegment)
		}
	}
	dir = dirPath(segs[:len(segs)-1])
	return dir, path.Join(dir, segs[len(segs)-1]+objSuffix), nil
}

// dirPath returns the directory of the key segments segs.
func dirPath(segs []string) string {
	if len(segs) == 0 {
		return "."
	}
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = s + dirSuffix
	}
	return strings.Join(parts, "/")
}

// segmentOf decodes a directory entry name: the key segment it holds and
// whether it is a directory. ok is false for the backend's own files and
// anything else that is not an object or a key directory.
func segmentOf(name string, isDir, isRegular bool) (seg string, dir bool, ok bool) {
	switch {
	case isRegular && strings.HasSuffix(name, objSuffix):
		seg = strings.TrimSuffix(name, objSuffix)
	case isDir && strings.HasSuffix(name, dirSuffix):
		seg, dir = strings.TrimSuffix(name, dirSuffix), true
	default:
		return "", false, false
	}
	if seg == "" || seg == "." || seg == ".." {
		return "", false, false
	}
	return seg, dir, true
}

// isTemp tells the names of temporary files.
func isTemp(name string) bool {
	return strings.HasPrefix(name, tmpPrefix) && strings.HasSuffix(name, tmpSuffix)
}

// The object file header: magic, a big-endian uint32 length, then that many
// bytes of JSON.
const (
	magic        = "ASOBJ1\n\x00"
	maxHeaderLen = 1 << 20
)

// header is the metadata stored in front of an object's content.
type header struct {
	Key         string `json:"key"`
	ETag        string `json:"etag"`
	ContentType string `json:"contentType"`
}

var errCorrupt = errors.New("not an object file of this backend (bad header)")

// encode returns the bytes of h as written at the start of an object file.
func (h header) encode() ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(js) > maxHeaderLen {
		return nil, fmt.Errorf("%w: content type of %d bytes is too long", backend.ErrInvalidArgument, len(h.ContentType))
	}
	buf := make([]byte, 0, len(magic)+4+len(js))
	buf = append(buf, magic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(js)))
	return append(buf, js...), nil
}

// readHeader reads the header at the start of r and returns it with the
// number of bytes it took, leaving r at the first byte of content.
func readHeader(r io.Reader) (header, int64, error) {
	var fixed [len(magic) + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return header{}, 0, errCorrupt
		}
		return header{}, 0, err
	}
	if string(fixed[:len(magic)]) != magic {
		return header{}, 0, errCorrupt
	}
	n := binary.BigEndian.Uint32(fixed[len(magic):])
	if n > maxHeaderLen {
		return header{}, 0, errCorrupt
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return header{}, 0, errCorrupt
		}
		return header{}, 0, err
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil || h.ETag == "" {
		return header{}, 0, errCorrupt
	}
	return h, int64(len(fixed)) + int64(n), nil
}
