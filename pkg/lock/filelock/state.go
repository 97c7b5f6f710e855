package filelock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// maxRecord bounds a record of a state or fence file. A record is written by
// one pwrite at offset 0 that stays within the first page, so a process that
// dies (even by SIGKILL) leaves either the old record or the new one, never
// a torn one; a shorter record is followed by a truncate, and the readers
// ignore whatever follows the first record should the truncate not happen.
const maxRecord = 4096

// maxStoredKey is the longest key kept in a state file (for people reading
// the directory; the lock itself uses the file name).
const maxStoredKey = 512

// state is the record of a key file: who holds the key until when. A key
// file exists while its key is held (or was held by a holder that vanished);
// releasing the key removes it.
type state struct {
	Fence    uint64      `json:"fence"`
	Token    string      `json:"token,omitempty"` // empty: free
	Holder   lock.Holder `json:"holder,omitzero"`
	Instance string      `json:"instance,omitempty"` // the holder's Locker
	Since    time.Time   `json:"since,omitzero"`
	Until    time.Time   `json:"until,omitzero"`
	Key      string      `json:"key,omitempty"` // omitted when long
}

// readRecord reads the first record of f into v. It reports false for an
// empty file.
func readRecord(f *os.File, v any) (bool, error) {
	buf := make([]byte, maxRecord)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if n == 0 {
		return false, nil
	}
	if err := json.NewDecoder(bytes.NewReader(buf[:n])).Decode(v); err != nil {
		return false, fmt.Errorf("%s: corrupt record: %w", f.Name(), err)
	}
	return true, nil
}

// writeRecord replaces the record of f with v.
func writeRecord(f *os.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if len(b) > maxRecord {
		return fmt.Errorf("%s: record of %d bytes, more than %d", f.Name(), len(b), maxRecord)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// openLocked opens path and locks it in mode how, retrying when the file was
// removed between the open and the lock (a key file is removed under its
// lock, so a lock taken on a removed file guards nothing). With create false
// a missing file gives a nil file and no error.
func openLocked(ctx context.Context, path string, flag, how int) (*os.File, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, flag, 0o644)
		if err != nil {
			if flag&os.O_CREATE == 0 && errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		if err := flock(ctx, f, how); err != nil {
			_ = f.Close()
			return nil, err
		}
		same, err := isCurrent(f, path)
		if err != nil || same {
			if err != nil {
				_ = f.Close()
				return nil, err
			}
			return f, nil
		}
		_ = f.Close()
	}
}

// isCurrent reports whether f is still the file at path.
func isCurrent(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// The fence file keeps the greatest fence of every key file removed so far
// (its high-water mark), so that a key whose file was removed on release
// starts again above all its earlier fences. It holds one decimal number.

// readFence returns the high-water mark. A missing or empty file is a new
// directory (0). A corrupt one (a torn write after a power loss) falls back
// to the wall clock in microseconds, which exceeds every counter a
// directory can have reached and still fits a JSON number exactly.
func (l *Locker) readFence(ctx context.Context) (uint64, error) {
	f, err := openLocked(ctx, l.fencePath, os.O_RDONLY, lockShared)
	if err != nil || f == nil {
		return 0, err
	}
	defer f.Close()
	return l.parseFence(f)
}

func (l *Locker) parseFence(f *os.File) (uint64, error) {
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	v, err := strconv.ParseUint(string(line), 10, 64)
	if err != nil {
		floor := uint64(time.Now().UnixMicro())
		l.logger.Error("filelock: corrupt fence file, fences restart from the clock", "path", f.Name(), "fence", floor, "err", err)
		return floor, nil
	}
	return v, nil
}

// raiseFence makes the high-water mark at least fence.
func (l *Locker) raiseFence(ctx context.Context, fence uint64) error {
	f, err := openLocked(ctx, l.fencePath, os.O_RDWR|os.O_CREATE, lockExclusive)
	if err != nil {
		return err
	}
	defer f.Close()
	cur, err := l.parseFence(f)
	if err != nil || cur >= fence {
		return err
	}
	b := strconv.AppendUint(nil, fence, 10)
	b = append(b, '\n')
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}
