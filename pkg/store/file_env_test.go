package store

import (
	"os"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/filebackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
)

// fileEnv is filebackend + filelock in temporary directories. The backend
// skips fsync (NoSync): durability across machine crashes is not what these
// tests check, and fsync makes them slow on shared disks.
func fileEnv() env {
	return env{
		name: "file",
		newBackend: func(t *testing.T) backend.Backend {
			b, err := filebackend.New(filebackend.Config{Root: fastTempDir(t), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		},
		newLocker: func(t *testing.T, _ backend.Backend, cfg lock.Config) lock.Locker {
			l, err := filelock.New(filelock.Config{Dir: fastTempDir(t), Lock: cfg})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			return l
		},
	}
}

// fastTempDir is a temporary directory on /dev/shm (tmpfs) when there is
// one, t.TempDir() otherwise: the file tests exercise the backend's and
// lock's semantics, not the speed of the disk under them.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "artifactstore-store-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
