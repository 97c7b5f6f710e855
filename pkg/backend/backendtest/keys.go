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
	var keys []string
	for info, err := range b.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v (after %d keys)", prefix, err, len(keys))
		}
		keys = append(keys, info.Key)
	}
	return keys
}
