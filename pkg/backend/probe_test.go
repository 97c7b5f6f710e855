package backend_test

import (
	"errors"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

func TestProbeConditionalPut(t *testing.T) {
	tests := []struct {
		name  string
		fault *backendtest.Fault
		want  error // nil: the probe passes
	}{
		{"enforcing backend", nil, nil},
		{"ignores IfAbsent", &backendtest.Fault{Op: backendtest.OpPut, IgnoreIfAbsent: true}, backend.ErrUnfencedWrites},
		{"ignores IfMatch", &backendtest.Fault{Op: backendtest.OpPut, IgnoreIfMatch: true}, backend.ErrUnfencedWrites},
		{"ignores both", &backendtest.Fault{Op: backendtest.OpPut, IgnoreIfAbsent: true, IgnoreIfMatch: true}, backend.ErrUnfencedWrites},
		{"first put denied", &backendtest.Fault{Op: backendtest.OpPut, Times: 1, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)}, backend.ErrPermissionDenied},
		{"if-absent put fails otherwise", &backendtest.Fault{Op: backendtest.OpPut, Skip: 1, Times: 1, Err: backendtest.Permanent("full", backend.ErrStorageFull)}, backend.ErrStorageFull},
		{"if-match put fails", &backendtest.Fault{Op: backendtest.OpPut, Skip: 2, Times: 1, Err: backendtest.Permanent("full", backend.ErrStorageFull)}, backend.ErrStorageFull},
		{"cleanup fails", &backendtest.Fault{Op: backendtest.OpDelete, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)}, backend.ErrPermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := membackend.New()
			b := backendtest.NewFaulty(mem)
			if tc.fault != nil {
				b.Inject(*tc.fault)
			}
			err := backend.ProbeConditionalPut(t.Context(), b, "probe/key")
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("ProbeConditionalPut = %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("ProbeConditionalPut = %v, want %v", err, tc.want)
			case tc.want != nil && tc.want != backend.ErrUnfencedWrites && errors.Is(err, backend.ErrUnfencedWrites):
				t.Fatalf("ProbeConditionalPut = %v: a failing backend is not an unfenced one", err)
			}
			if tc.name == "cleanup fails" {
				return
			}
			// The scratch object is removed whatever the outcome.
			if _, err := mem.Stat(t.Context(), "probe/key"); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("scratch object left behind: Stat = %v", err)
			}
		})
	}
}
