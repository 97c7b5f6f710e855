package testenv

import (
	"fmt"
	"io/fs"
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
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return lines
}
