package backendtest

import (
	"context"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// Keys lists the keys under prefix in b, in the backend's order, and fails
// t on a listing error. It is for the tests of code built on a Backend (the
// store, the integration tests), which check what a bucket holds.
func Keys(t testing.TB, b backend.Backend, prefix string) []string {
	t.Helper()
	return listLines(t, b, prefix, func(info backend.ObjectInfo) string { return info.Key })
}

// Objects is Keys with each key followed by a space and its ETag: two
// Objects of a bucket are equal when nothing was created, removed or
// rewritten with other content in between.
func Objects(t testing.TB, b backend.Backend, prefix string) []string {
	t.Helper()
	return listLines(t, b, prefix, func(info backend.ObjectInfo) string { return info.Key + " " + info.ETag })
}

func listLines(t testing.TB, b backend.Backend, prefix string, line func(backend.ObjectInfo) string) []string {
	t.Helper()
	var out []string
	for info, err := range b.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v (after %d keys)", prefix, err, len(out))
		}
		out = append(out, line(info))
	}
	return out
}
