package filebackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
)

// Backend stores objects in a directory. Make one with New.
type Backend struct {
	cfg    Config
	root   *os.Root
	closed atomic.Bool
	// shards are in-process semaphores (capacity 1), one per lock file, so
	// that goroutines of one process queue on a channel rather than poll
	// the file lock.
	shards [lockShards]chan struct{}
}

var (
	_ backend.Backend            = (*Backend)(nil)
	_ backend.ConditionalDeleter = (*Backend)(nil)
)

// The backoff between attempts to take a file lock held by another
// process.
const (
	lockPollInitial = 500 * time.Microsecond
	lockPollMax     = 20 * time.Millisecond
)

// copyBufferSize is the buffer of a Put's copy: the memory a Put uses,
// whatever the size of the content.
const copyBufferSize = 256 << 10

// New opens the directory cfg.Root (creating it when cfg.CreateRoot is set)
// and returns a Backend storing objects in it. The Backend holds the
// directory open until Close.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !flockSupported {
		return nil, fmt.Errorf("filebackend: %s: %w: flock(2) is needed for conditional writes across processes", runtime.GOOS, backend.ErrInvalidArgument)
	}
	cfg = cfg.WithDefaults()
	abs, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("filebackend: root %q: %w: %w", cfg.Root, backend.ErrInvalidArgument, err)
	}
	cfg.Root = abs
	if cfg.CreateRoot {
		if err := os.MkdirAll(abs, cfg.DirPerm); err != nil {
			return nil, mapErr("create root", abs, err)
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, mapErr("open root", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("filebackend: root %q: %w: not a directory", abs, backend.ErrInvalidArgument)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, mapErr("open root", abs, err)
	}
	b := &Backend{cfg: cfg, root: root}
	for i := range b.shards {
		b.shards[i] = make(chan struct{}, 1)
	}
	return b, nil
}

// Root returns the absolute path of the directory the Backend stores
// objects in.
func (b *Backend) Root() string { return b.cfg.Root }

// Put implements backend.Backend. See the package documentation for the
// steps of a write.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if err := backend.ValidatePut(key, r, size, opts); err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("filebackend: put %q: %w", key, err)
	}
	dir, file, err := objectPath(key)
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("filebackend: put %q: %w", key, err)
	}
	if err := b.check(ctx, "put", key); err != nil {
		return backend.ObjectInfo{}, err
	}
	info := backend.ObjectInfo{Key: key, ETag: newETag(), ContentType: opts.ContentType}
	if info.ContentType == "" {
		info.ContentType = backend.DefaultContentType
	}
	hdr, err := header{Key: key, ETag: info.ETag, ContentType: info.ContentType}.encode()
	if err != nil {
		return backend.ObjectInfo{}, fmt.Errorf("filebackend: put %q: %w", key, err)
	}

	// Fail fast, before the transfer, when the condition already fails; it
	// is checked again under the lock before the commit.
	if err := b.checkCondition(key, file, opts); err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}

	f, tmp, created, err := b.createTemp(dir)
	if err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = b.root.Remove(tmp)
		}
	}()
	if _, err := f.Write(hdr); err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}
	n, err := copyBody(ctx, f, r, size)
	if err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}
	info.Size = n
	if !b.cfg.NoSync {
		if err := f.Sync(); err != nil {
			return backend.ObjectInfo{}, mapErr("put", key, err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}
	info.Modified = fi.ModTime()
	if err := f.Close(); err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}

	err = b.withLock(ctx, key, func() error {
		if err := b.checkCondition(key, file, opts); err != nil {
			return err
		}
		// The last moment a cancellation can prevent the commit.
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.root.Rename(tmp, file); err != nil {
			return err
		}
		committed = true
		return nil
	})
	if err != nil {
		return backend.ObjectInfo{}, mapErr("put", key, err)
	}
	if !b.cfg.NoSync {
		if err := b.syncDirs(dir, created); err != nil {
			return backend.ObjectInfo{}, mapErr("put", key, fmt.Errorf("stored, but syncing its directory failed: %w", err))
		}
	}
	return info, nil
}

// createTemp creates a new temporary file in dir, creating dir first. It
// also reports whether it had to create dir. A concurrent Delete may
// remove an empty dir between the two steps; it then tries again.
func (b *Backend) createTemp(dir string) (f *os.File, name string, created bool, err error) {
	for range 10 {
		if dir != "." {
			if _, serr := b.root.Stat(dir); serr != nil {
				created = true
				if err = b.root.MkdirAll(dir, b.cfg.DirPerm); err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					return nil, "", false, err
				}
			}
		}
		name = path.Join(dir, tmpPrefix+hex.EncodeToString(randomBytes(8))+tmpSuffix)
		f, err = b.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, b.cfg.FilePerm)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, created, err
	}
	return nil, "", false, err
}

// copyBody copies the content of a Put into w: exactly size bytes followed
// by EOF, or everything up to EOF when size is backend.SizeUnknown. It
// checks ctx before every read.
func copyBody(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	src := &ctxReader{ctx: ctx, r: r}
	buf := make([]byte, copyBufferSize)
	if size == backend.SizeUnknown {
		n, err := io.CopyBuffer(onlyWriter{w}, src, buf)
		if err != nil {
			return n, fmt.Errorf("copy content: %w", err)
		}
		return n, nil
	}
	n, err := io.CopyBuffer(onlyWriter{w}, io.LimitReader(src, size), buf)
	if err != nil {
		return n, fmt.Errorf("copy content: %w", err)
	}
	if n < size {
		return n, fmt.Errorf("%w: got %d bytes, want %d", backend.ErrSizeMismatch, n, size)
	}
	var one [1]byte
	m, err := io.ReadAtLeast(src, one[:], 1)
	if m > 0 {
		return n, fmt.Errorf("%w: more than %d bytes", backend.ErrSizeMismatch, size)
	}
	if !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("copy content: %w", err)
	}
	return n, nil
}

// onlyWriter hides the ReadFrom method of an *os.File, so that
// io.CopyBuffer uses the given buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// ctxReader fails with the context's error once ctx is done. It is bound
// to the call that made it (a Put's body, a reader returned by Get), which
// is why it holds a context.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkCondition checks opts against the current object file. It runs
// under the key's lock.
func (b *Backend) checkCondition(key, file string, opts backend.PutOptions) error {
	if !opts.IfAbsent && opts.IfMatch == "" {
		return nil
	}
	h, _, _, err := b.readObject(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if opts.IfMatch != "" {
			return fmt.Errorf("%w: no object to match ETag %q", backend.ErrPreconditionFailed, opts.IfMatch)
		}
		return nil
	case err != nil:
		return err
	case opts.IfAbsent:
		return fmt.Errorf("%w: object exists", backend.ErrPreconditionFailed)
	case h.ETag != opts.IfMatch:
		return fmt.Errorf("%w: ETag is %q, not %q", backend.ErrPreconditionFailed, h.ETag, opts.IfMatch)
	}
	return nil
}

// readObject reads the header of the object file file and returns it
// with the content's offset in the file and the file's info.
func (b *Backend) readObject(file string) (header, int64, fs.FileInfo, error) {
	f, err := b.root.Open(file)
	if err != nil {
		return header{}, 0, nil, err
	}
	defer f.Close()
	return readOpen(f)
}

// readOpen reads the header of an open object file and stats it; the file
// is left at the first byte of content.
func readOpen(f *os.File) (header, int64, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return header{}, 0, nil, err
	}
	if !fi.Mode().IsRegular() {
		return header{}, 0, nil, errCorrupt
	}
	h, off, err := readHeader(f)
	if err != nil {
		return header{}, 0, nil, err
	}
	if fi.Size() < off {
		return header{}, 0, nil, errCorrupt
	}
	return h, off, fi, nil
}

// Get implements backend.Backend. The returned reader reads the version
// that was current when Get opened it; it fails with the context's error
// once ctx is done.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, backend.ObjectInfo, error) {
	f, info, err := b.open(ctx, "get", key)
	if err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	return &objectReader{ctxReader: ctxReader{ctx: ctx, r: f}, f: f}, info, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	f, info, err := b.open(ctx, "stat", key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	f.Close()
	return info, nil
}

// open opens key's object file for Get and Stat, positioned at the start
// of the content.
func (b *Backend) open(ctx context.Context, op, key string) (*os.File, backend.ObjectInfo, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, backend.ObjectInfo{}, fmt.Errorf("filebackend: %s %q: %w", op, key, err)
	}
	_, file, err := objectPath(key)
	if err != nil {
		return nil, backend.ObjectInfo{}, fmt.Errorf("filebackend: %s %q: %w", op, key, err)
	}
	if err := b.check(ctx, op, key); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	f, err := b.root.Open(file)
	if err != nil {
		if notFound(err) {
			return nil, backend.ObjectInfo{}, fmt.Errorf("filebackend: %s %q: %w: %w", op, key, backend.ErrNotFound, err)
		}
		return nil, backend.ObjectInfo{}, mapErr(op, key, err)
	}
	h, off, fi, err := readOpen(f)
	if err != nil {
		f.Close()
		return nil, backend.ObjectInfo{}, mapErr(op, key, err)
	}
	return f, backend.ObjectInfo{
		Key:         key,
		Size:        fi.Size() - off,
		ETag:        h.ETag,
		ContentType: h.ContentType,
		Modified:    fi.ModTime(),
	}, nil
}

// objectReader is the reader Get returns.
type objectReader struct {
	ctxReader
	f *os.File
}

func (o *objectReader) Close() error { return o.f.Close() }

// Delete implements backend.Backend. Deleting a missing key succeeds. The
// directories the object leaves empty are removed.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return fmt.Errorf("filebackend: delete %q: %w", key, err)
	}
	return b.remove(ctx, "delete", key, nil)
}

// DeleteIfMatch implements backend.ConditionalDeleter. The ETag in the
// object's header is read and the file removed under the key's lock, the
// cross-process flock that conditional Puts take, so the check and the
// removal are atomic for every Backend sharing the root.
func (b *Backend) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := backend.ValidateDeleteIfMatch(key, etag); err != nil {
		return fmt.Errorf("filebackend: delete %q if ETag %q: %w", key, etag, err)
	}
	return b.remove(ctx, "delete if match", key, func(file string) error {
		h, _, _, err := b.readObject(file)
		switch {
		case notFound(err):
			return fmt.Errorf("%w: %w", backend.ErrNotFound, err)
		case err != nil:
			return err
		case h.ETag != etag:
			return fmt.Errorf("%w: ETag is %q, not %q", backend.ErrPreconditionFailed, h.ETag, etag)
		}
		return nil
	})
}

// remove deletes key's object file under the key's lock, after check
// (when not nil) approved the current file, then syncs and prunes its
// directory. A missing file is not an error unless check says so.
func (b *Backend) remove(ctx context.Context, op, key string, check func(file string) error) error {
	dir, file, err := objectPath(key)
	if err != nil {
		return fmt.Errorf("filebackend: %s %q: %w", op, key, err)
	}
	if err := b.check(ctx, op, key); err != nil {
		return err
	}
	removed := false
	err = b.withLock(ctx, key, func() error {
		if check != nil {
			if err := check(file); err != nil {
				return err
			}
		}
		err := b.root.Remove(file)
		if notFound(err) {
			return nil
		}
		removed = err == nil
		return err
	})
	if err != nil {
		return mapErr(op, key, err)
	}
	if !removed {
		return nil
	}
	if !b.cfg.NoSync {
		if err := b.syncDir(dir); err != nil && !notFound(err) {
			return mapErr(op, key, fmt.Errorf("deleted, but syncing its directory failed: %w", err))
		}
	}
	b.prune(dir)
	return nil
}

// prune removes dir and its ancestors below the root while they are
// empty. Failures end it quietly: a directory that is not empty (or that a
// concurrent Put just filled) stays.
func (b *Backend) prune(dir string) {
	for dir != "." && dir != "" {
		if err := b.root.Remove(dir); err != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// List implements backend.Backend. It walks the directory tree in key
// order, reading one directory at a time, and yields the objects that
// exist when it reaches them; a Put or Delete during the walk may or may
// not be seen.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backend.ObjectInfo, error] {
	return func(yield func(backend.ObjectInfo, error) bool) {
		if err := backend.ValidatePrefix(prefix); err != nil {
			yield(backend.ObjectInfo{}, fmt.Errorf("filebackend: list %q: %w", prefix, err))
			return
		}
		if err := b.check(ctx, "list", prefix); err != nil {
			yield(backend.ObjectInfo{}, err)
			return
		}
		var segs []string
		partial := prefix
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			segs, partial = strings.Split(prefix[:i], "/"), prefix[i+1:]
		}
		base := ""
		if len(segs) > 0 {
			base = strings.Join(segs, "/") + "/"
		}
		if _, err := b.walk(ctx, dirPath(segs), base, partial, yield); err != nil {
			yield(backend.ObjectInfo{}, mapErr("list", prefix, err))
		}
	}
}

// entry is one object or key directory found by walk.
type entry struct {
	name string // file or directory name
	// key is the object's key, or the directory's key prefix (ending in
	// "/"). Sorting entries by it sorts their keys: every key below a
	// directory "a/" sorts after an object "a" and after "a-b" or "a.b"
	// ('-' and '.' are below '/'), and before "a0".
	key string
	dir bool
}

// walk yields the objects below dir (whose keys start with base) in key
// order, keeping only the entries of dir itself whose segment starts with
// filter. It returns false when yield asked to stop.
func (b *Backend) walk(ctx context.Context, dir, base, filter string, yield func(backend.ObjectInfo, error) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if b.closed.Load() {
		return false, backend.ErrClosed
	}
	d, err := b.root.Open(dir)
	if err != nil {
		if notFound(err) || errors.Is(err, syscall.ENAMETOOLONG) {
			return true, nil
		}
		return false, err
	}
	des, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		if notFound(err) {
			return true, nil // removed by a Delete since it was opened
		}
		return false, err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		seg, isDir, ok := segmentOf(de.Name(), de.IsDir(), de.Type().IsRegular())
		if !ok || !strings.HasPrefix(seg, filter) {
			continue
		}
		e := entry{name: de.Name(), key: base + seg, dir: isDir}
		if isDir {
			e.key += "/"
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(x, y entry) int { return strings.Compare(x.key, y.key) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		p := path.Join(dir, e.name)
		if e.dir {
			more, err := b.walk(ctx, p, e.key, "", yield)
			if !more || err != nil {
				return more, err
			}
			continue
		}
		h, off, fi, err := b.readObject(p)
		if notFound(err) {
			continue // deleted since the directory was read
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", e.key, err)
		}
		info := backend.ObjectInfo{
			Key:         e.key,
			Size:        fi.Size() - off,
			ETag:        h.ETag,
			ContentType: h.ContentType,
			Modified:    fi.ModTime(),
		}
		if !yield(info, nil) {
			return false, nil
		}
	}
	return true, nil
}

// RemoveStaleTemp deletes the temporary files that writers left behind
// when they died mid-Put (they are invisible to List but take space), and
// reports how many it removed. Only files not written to for olderThan are
// touched, so that Puts in progress, in this or another process, keep
// theirs: pass a duration longer than the longest pause of a writer's
// source (an hour is generous). A Put whose temporary file was removed
// fails; it never stores a partial object.
func (b *Backend) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	if err := b.check(ctx, "remove stale temporary files", ""); err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := fs.WalkDir(b.root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() {
			if p == locksDir {
				return fs.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() || !isTemp(de.Name()) {
			return nil
		}
		fi, err := de.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			return nil
		}
		if err := b.root.Remove(p); err == nil {
			removed++
		}
		return nil
	})
	if err != nil {
		return removed, mapErr("remove stale temporary files", "", err)
	}
	return removed, nil
}

// Close releases the directory. Later calls fail with backend.ErrClosed;
// readers returned by Get keep working. A second Close returns nil.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.root.Close()
}

// check reports a done context or a closed Backend before an operation
// starts.
func (b *Backend) check(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filebackend: %s %q: %w", op, key, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("filebackend: %s %q: %w", op, key, backend.ErrClosed)
	}
	return nil
}

// withLock runs fn holding key's lock: the in-process semaphore of its
// shard, then an exclusive flock on the shard's lock file. Waiting honours
// ctx.
func (b *Backend) withLock(ctx context.Context, key string, fn func() error) error {
	h := fnv.New32a()
	h.Write([]byte(key))
	shard := h.Sum32() % lockShards
	select {
	case b.shards[shard] <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.shards[shard] }()

	// The lock directory is made by the first write, so that a Backend
	// that only reads needs no write access to the root.
	name := path.Join(locksDir, fmt.Sprintf("%02x.lock", shard))
	f, err := b.root.OpenFile(name, os.O_RDWR|os.O_CREATE, b.cfg.FilePerm)
	if errors.Is(err, fs.ErrNotExist) {
		if err := b.root.Mkdir(locksDir, b.cfg.DirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		f, err = b.root.OpenFile(name, os.O_RDWR|os.O_CREATE, b.cfg.FilePerm)
	}
	if err != nil {
		return err
	}
	defer f.Close() // closing also drops the flock
	poll := backoff.Policy{Initial: lockPollInitial, Max: lockPollMax}
	for attempt := 0; ; attempt++ {
		ok, err := tryLock(f)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if err := backoff.Sleep(ctx, poll.Delay(attempt)); err != nil {
			return err
		}
	}
	ferr := fn()
	if err := unlock(f); err != nil && ferr == nil {
		return err
	}
	return ferr
}

// syncDir fsyncs the directory dir.
func (b *Backend) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncDirs fsyncs dir and, when the Put created it, its ancestors up to the
// root, so that the new directory entries are durable too.
func (b *Backend) syncDirs(dir string, created bool) error {
	for {
		if err := b.syncDir(dir); err != nil {
			return err
		}
		if !created || dir == "." {
			return nil
		}
		dir = path.Dir(dir)
	}
}

func newETag() string { return hex.EncodeToString(randomBytes(16)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// mapErr wraps err for op on key with the sentinel it corresponds to,
// keeping err in the chain. Context errors and errors that already match a
// sentinel are wrapped as they are.
func mapErr(op, key string, err error) error {
	var sentinel error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.Is(err, backend.ErrClosed), errors.Is(err, backend.ErrPreconditionFailed),
		errors.Is(err, backend.ErrSizeMismatch), errors.Is(err, backend.ErrInvalidArgument),
		errors.Is(err, backend.ErrInvalidKey), errors.Is(err, backend.ErrNotFound):
	case errors.Is(err, os.ErrClosed):
		sentinel = backend.ErrClosed
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		sentinel = backend.ErrStorageFull
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		sentinel = backend.ErrPermissionDenied
	case errors.Is(err, syscall.EFBIG):
		sentinel = backend.ErrTooLarge
	}
	if sentinel != nil {
		return fmt.Errorf("filebackend: %s %q: %w: %w", op, key, sentinel, err)
	}
	return fmt.Errorf("filebackend: %s %q: %w", op, key, err)
}
