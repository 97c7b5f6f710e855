package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Tree describes every entry under dir, one line per entry: its path,
// mode, size and modification time, in walk order. Two Trees of a
// directory are equal when nothing was created, removed or written under
// it in between (a rewrite of the same bytes still changes the time).
func Tree(t testing.TB, dir string) []string {
	t.Helper()
	var lines []string
	walk(t, dir, func(p string, fi fs.FileInfo) error {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	return lines
}

// ChmodTree sets the permissions of every entry under dir, dir included,
// to mode of its current ones.
func ChmodTree(t testing.TB, dir string, mode func(fs.FileMode) fs.FileMode) {
	t.Helper()
	walk(t, dir, func(p string, fi fs.FileInfo) error { return os.Chmod(p, mode(fi.Mode().Perm())) })
}

// walk calls fn with every entry under dir and its info, and fails t on
// an error.
func walk(t testing.TB, dir string, fn func(path string, fi fs.FileInfo) error) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, fi)
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
}
