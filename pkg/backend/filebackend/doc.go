// Package filebackend is a backend.Backend that keeps objects in a local
// directory. It suits one host, with any number of processes sharing the
// directory; it is not meant for network filesystems (NFS, SMB), whose
// file locks and renames do not give the guarantees below.
//
// # Layout
//
// A key's segments become directories and a file, each with a suffix that
// says what it is, so that, as on S3, the keys "a" and "a/b" can both
// exist, and so that no key can collide with the backend's own files:
//
//	key "a"          ->  <root>/a.obj
//	key "a/b"        ->  <root>/a.d/b.obj
//	key "a.obj/x.d"  ->  <root>/a.obj.d/x.d.obj
//	lock files       ->  <root>/.locks/00.lock ... ff.lock (made by the first write)
//	temporary files  ->  <root>/<dir>/.tmp-<random>.tmp
//
// Only names ending in ".obj" (regular files) and ".d" (directories) are
// objects and key segments; List ignores everything else, so the
// temporary file of a writer that crashed never shows. RemoveStaleTemp
// deletes such leftovers. A key segment may be at most 251 bytes (the
// filesystem's 255-byte name limit minus the suffix); longer segments are
// rejected with backend.ErrInvalidKey. Keys are compared as bytes: on a
// case-insensitive or normalizing filesystem (default macOS volumes) keys
// that differ only in case or Unicode normalization collide, so use a
// case-sensitive one.
//
// Every object file starts with a small header (a magic string, a length,
// and JSON holding the key, the ETag and the content type) followed by the
// content, so the object, its ETag and its content type are replaced
// together by one rename. All paths are resolved through an os.Root, so a
// symbolic link inside the directory cannot lead a read or a write outside
// it; keys with "." or ".." segments are rejected before any file is
// touched (backend.ValidateKey).
//
// # Writes
//
// A Put streams the content (with bounded memory, whatever its size) into a
// temporary file in the object's directory, fsyncs it, takes the key's
// lock, checks the condition, renames the file over the object, releases
// the lock and fsyncs the directory. Readers therefore see the old object
// or the whole new one. The lock is held only for the check and the rename,
// never while bytes are transferred.
//
// ETags are 128-bit random values drawn for every Put: a Put changes the
// ETag even when it stores the same bytes again (S3 would keep the MD5 of
// the content). IfMatch compares against the ETag in the current file's
// header.
//
// # Errors
//
// Errors match the sentinels of package backend with errors.Is, with the
// operating system's error kept in the chain (errors.As to *fs.PathError
// works): ErrInvalidKey and ErrInvalidArgument before any I/O, ErrNotFound
// from Get, Stat and DeleteIfMatch, ErrPreconditionFailed from a
// conditional Put or DeleteIfMatch,
// ErrSizeMismatch, ErrPermissionDenied (EACCES, EPERM, EROFS),
// ErrStorageFull (ENOSPC, EDQUOT), ErrTooLarge (EFBIG) and ErrClosed. A
// cancelled context gives an error matching ctx.Err(); a failing reader's
// error stays in the chain. A failed Put leaves nothing behind but, when
// the process dies mid-write, a temporary file that List ignores.
//
// # Concurrency
//
// A Backend is safe for concurrent use, and any number of Backends, in
// this and other processes of the same host, may share one root.
// Conditional Puts and DeleteIfMatch (the optional
// backend.ConditionalDeleter, which Backend implements) are linearizable
// across all of them: every Put, Delete and DeleteIfMatch of a key runs
// its check-and-rename (or check-and-remove) under an exclusive flock(2) on
// one of 256 lock files (chosen by a hash of the key), taken after an
// in-process semaphore so goroutines do not spin on the file lock. A
// process that dies releases its flock at once. Get and Stat take no lock;
// a reader returned by Get keeps reading the version it opened even when
// the key is replaced or deleted.
package filebackend
