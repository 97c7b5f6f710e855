package backend_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestIsTransient(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"transient sentinel", backend.ErrTransient, true},
		{"wrapped transient", fmt.Errorf("s3backend: put %q: %w: %w", "k", backend.ErrTransient, errors.New("503 SlowDown")), true},
		{"network error", netErr, true},
		{"wrapped network error", fmt.Errorf("get: %w", netErr), true},
		{"deadline on a network error", fmt.Errorf("%w: %w", netErr, context.DeadlineExceeded), false},
		{"cancelled", context.Canceled, false},
		{"cancelled with transient", fmt.Errorf("%w: %w", backend.ErrTransient, context.Canceled), false},
		{"deadline", context.DeadlineExceeded, false},
		{"os timeout", os.ErrDeadlineExceeded, true}, // a net.Error with Timeout() true
		{"not found", backend.ErrNotFound, false},
		{"precondition", backend.ErrPreconditionFailed, false},
		{"plain", errors.New("boom"), false},
		{"file not found", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, false},
		{"permission on a file", &os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, false},
		{"not found with a network error", fmt.Errorf("%w: %w", backend.ErrNotFound, netErr), false},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"DNS failure", &net.DNSError{Err: "no such host", Name: "s3.local"}, true},
	}
	for _, tc := range tests {
		if got := backend.IsTransient(tc.err); got != tc.want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
