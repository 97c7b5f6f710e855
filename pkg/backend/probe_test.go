package backend_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
)

// The scratch keys ProbeConditionalPut and ProbeConditionalDelete use for
// the key "probe/key".
var probeKeys = []string{"probe/key", "probe/key-missing", "probe/key-create", "probe/key-match", "probe/key-delete"}

// wantNoScratch checks that a probe removed its scratch objects.
func wantNoScratch(t *testing.T, mem *membackend.Backend) {
	t.Helper()
	for _, k := range probeKeys {
		if _, err := mem.Stat(t.Context(), k); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("scratch object %q left behind: Stat = %v", k, err)
		}
	}
}

func TestProbeConditionalPut(t *testing.T) {
	tests := []struct {
		name   string
		faults []backendtest.Fault
		want   error  // nil: the probe passes
		says   string // a part of the error message
	}{
		{name: "enforcing backend"},
		{name: "ignores IfAbsent", faults: []backendtest.Fault{{Op: backendtest.OpPut, IgnoreIfAbsent: true}}, want: backend.ErrUnfencedWrites},
		{name: "ignores IfMatch", faults: []backendtest.Fault{{Op: backendtest.OpPut, IgnoreIfMatch: true}}, want: backend.ErrUnfencedWrites},
		{name: "ignores both", faults: []backendtest.Fault{{Op: backendtest.OpPut, IgnoreIfAbsent: true, IgnoreIfMatch: true}}, want: backend.ErrUnfencedWrites},
		{name: "ignores IfMatch on a missing key",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-missing", IgnoreIfMatch: true}},
			want:   backend.ErrUnfencedWrites, says: "created the missing object"},
		{name: "concurrent if-absent puts all win",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-create", IgnoreIfAbsent: true}},
			want:   backend.ErrUnfencedWrites, says: "32 of 32 concurrent if-absent puts won"},
		{name: "concurrent if-match puts all win",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-match", IgnoreIfMatch: true}},
			want:   backend.ErrUnfencedWrites, says: "32 of 32 concurrent if-match puts won"},
		// The losers are told they lost, but their writes land.
		{name: "losing puts overwrite the winner",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-create", Skip: 1, IgnoreIfAbsent: true,
				At: backendtest.After, Err: backendtest.Permanent("lie", backend.ErrPreconditionFailed)}},
			want: backend.ErrUnfencedWrites},
		// The winner's response is lost: no put won, which proves nothing.
		// Every create's response that succeeded is lost (only the
		// winner's), since which racer Faulty counts first is not the
		// one that wins.
		{name: "winner's response lost",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-create", At: backendtest.After, Err: transient}},
			want:   backend.ErrTransient, says: "inconclusive"},
		{name: "first put denied", faults: []backendtest.Fault{{Op: backendtest.OpPut, Times: 1, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)}}, want: backend.ErrPermissionDenied},
		{name: "if-absent put fails otherwise", faults: []backendtest.Fault{{Op: backendtest.OpPut, Skip: 1, Times: 1, Err: backendtest.Permanent("full", backend.ErrStorageFull)}}, want: backend.ErrStorageFull},
		{name: "if-match put fails", faults: []backendtest.Fault{{Op: backendtest.OpPut, Skip: 2, Times: 1, Err: backendtest.Permanent("full", backend.ErrStorageFull)}}, want: backend.ErrStorageFull},
		{name: "a racing put fails otherwise",
			faults: []backendtest.Fault{{Op: backendtest.OpPut, KeyPrefix: "probe/key-match", Skip: 3, Times: 1, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)}},
			want:   backend.ErrPermissionDenied, says: "concurrent if-match puts"},
		{name: "cleanup fails", faults: []backendtest.Fault{{Op: backendtest.OpDelete, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)}}, want: backend.ErrPermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := membackend.New()
			b := backendtest.NewFaulty(mem)
			b.Inject(tc.faults...)
			err := backend.ProbeConditionalPut(t.Context(), b, "probe/key")
			t.Logf("ProbeConditionalPut: %v", err)
			checkProbeErr(t, err, tc.want, tc.says)
			if tc.name != "cleanup fails" {
				wantNoScratch(t, mem)
			}
		})
	}
}

func checkProbeErr(t *testing.T, err, want error, says string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("ProbeConditionalPut = %v, want nil", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("ProbeConditionalPut = %v, want %v", err, want)
	case want != nil && want != backend.ErrUnfencedWrites && errors.Is(err, backend.ErrUnfencedWrites):
		t.Fatalf("ProbeConditionalPut = %v: a failing backend is not an unfenced one", err)
	case says != "" && !strings.Contains(err.Error(), says):
		t.Errorf("ProbeConditionalPut = %q, want it to say %q", err, says)
	}
}

// checkThenAct enforces the conditions of a Put one request at a time but
// not under contention: it checks the condition with a Stat, waits, and
// then stores unconditionally, like a server without a lock around its
// check.
type checkThenAct struct{ *membackend.Backend }

func (c checkThenAct) Put(ctx context.Context, key string, r io.Reader, size int64, opts backend.PutOptions) (backend.ObjectInfo, error) {
	if opts.IfAbsent || opts.IfMatch != "" {
		info, err := c.Stat(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return backend.ObjectInfo{}, err
		}
		if (opts.IfAbsent && exists) || (opts.IfMatch != "" && (!exists || info.ETag != opts.IfMatch)) {
			return backend.ObjectInfo{}, fmt.Errorf("checkThenAct: %w", backend.ErrPreconditionFailed)
		}
		time.Sleep(20 * time.Millisecond) // the other racers check meanwhile
	}
	return c.Backend.Put(ctx, key, r, size, backend.PutOptions{ContentType: opts.ContentType})
}

func TestProbeConditionalPutCheckThenAct(t *testing.T) {
	mem := membackend.New()
	err := backend.ProbeConditionalPut(t.Context(), checkThenAct{mem}, "probe/key")
	checkProbeErr(t, err, backend.ErrUnfencedWrites, "concurrent if-absent puts won")
	wantNoScratch(t, mem)
}

// The sequential probe catches a server that ignores a condition, and
// passes one that checks conditions without atomicity (only the races
// catch that), sending no racing Put.
func TestProbeConditionalPutSequential(t *testing.T) {
	mem := membackend.New()
	b := backendtest.NewFaulty(mem)
	b.Inject(backendtest.Fault{Op: backendtest.OpPut, IgnoreIfAbsent: true})
	err := backend.ProbeConditionalPutSequential(t.Context(), b, "probe/key")
	checkProbeErr(t, err, backend.ErrUnfencedWrites, "IfAbsent replaced the existing object")
	wantNoScratch(t, mem)

	mem = membackend.New()
	b = backendtest.NewFaulty(checkThenAct{mem})
	if err := backend.ProbeConditionalPutSequential(t.Context(), b, "probe/key"); err != nil {
		t.Fatalf("ProbeConditionalPutSequential on a check-then-act backend: %v", err)
	}
	if n := b.Calls(backendtest.OpPut); n != 5 {
		t.Errorf("ProbeConditionalPutSequential sent %d Puts, want the 5 of the sequential checks", n)
	}
	wantNoScratch(t, mem)
}

// ignoresETag has a DeleteIfMatch that deletes whatever the ETag, like an
// S3 server that accepts If-Match on DELETE and ignores it.
type ignoresETag struct{ *membackend.Backend }

func (i ignoresETag) DeleteIfMatch(ctx context.Context, key, _ string) error {
	return i.Delete(ctx, key)
}

// quietOnMissing enforces the ETag but answers a missing key with success,
// as versitygw v1.8.0 does (204, like an unconditional DELETE).
type quietOnMissing struct{ *membackend.Backend }

func (q quietOnMissing) DeleteIfMatch(ctx context.Context, key, etag string) error {
	if err := q.Backend.DeleteIfMatch(ctx, key, etag); !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	return nil
}

func TestProbeConditionalDelete(t *testing.T) {
	denied := backendtest.Permanent("denied", backend.ErrPermissionDenied)
	tests := []struct {
		name   string
		wrap   func(mem *membackend.Backend) backend.Backend
		faults []backendtest.Fault // injected when wrap returns a *Faulty
		want   bool
		err    error
	}{
		{name: "membackend", wrap: func(m *membackend.Backend) backend.Backend { return m }, want: true},
		{name: "Faulty", wrap: faulty, want: true},
		{name: "Retrying", wrap: func(m *membackend.Backend) backend.Backend { return backend.WithRetry(m, backend.RetryConfig{}) }, want: true},
		{name: "no capability", wrap: func(m *membackend.Backend) backend.Backend { return plainBackend{m} }},
		{name: "Retrying without the capability", wrap: func(m *membackend.Backend) backend.Backend {
			return backend.WithRetry(plainBackend{m}, backend.RetryConfig{})
		}},
		{name: "Faulty without the capability", wrap: func(m *membackend.Backend) backend.Backend {
			return backendtest.NewFaulty(plainBackend{m})
		}},
		{name: "Retrying over Faulty without the capability", wrap: func(m *membackend.Backend) backend.Backend {
			return backend.WithRetry(backendtest.NewFaulty(plainBackend{m}), backend.RetryConfig{})
		}},
		{name: "ignores the ETag", wrap: func(m *membackend.Backend) backend.Backend { return ignoresETag{m} }},
		{name: "ignores the ETag (Faulty)", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpDeleteIfMatch, IgnoreIfMatch: true}}},
		{name: "missing key succeeds", wrap: func(m *membackend.Backend) backend.Backend { return quietOnMissing{m} }},
		// Reports the stale ETag but deletes anyway.
		{name: "refuses but deletes", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpDeleteIfMatch, Skip: 1, Times: 1,
			IgnoreIfMatch: true, At: backendtest.After, Err: backendtest.Permanent("lie", backend.ErrPreconditionFailed)}}},
		{name: "put fails", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpPut, Err: denied}}, err: backend.ErrPermissionDenied},
		{name: "delete fails", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpDeleteIfMatch, Skip: 1, Err: denied}}, err: backend.ErrPermissionDenied},
		{name: "transient failure", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpDeleteIfMatch, Err: transient}}, err: backend.ErrTransient},
		{name: "cleanup fails", wrap: faulty, faults: []backendtest.Fault{{Op: backendtest.OpDelete, Err: denied}}, err: backend.ErrPermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := membackend.New()
			b := tc.wrap(mem)
			if f, ok := b.(*backendtest.Faulty); ok {
				f.Inject(tc.faults...)
			}
			got, err := backend.ProbeConditionalDelete(t.Context(), b, "probe/key")
			if got != tc.want {
				t.Errorf("ProbeConditionalDelete = %t, want %t (err %v)", got, tc.want, err)
			}
			switch {
			case tc.err == nil && err != nil:
				t.Errorf("ProbeConditionalDelete: err = %v, want nil", err)
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Errorf("ProbeConditionalDelete: err = %v, want %v", err, tc.err)
			}
			if tc.name != "cleanup fails" {
				wantNoScratch(t, mem)
			}
		})
	}
	// A cancelled context ends the probe, and the scratch object is
	// removed all the same.
	mem := membackend.New()
	f := backendtest.NewFaulty(mem)
	ctx, cancel := context.WithCancel(t.Context())
	f.Inject(backendtest.Fault{Op: backendtest.OpDeleteIfMatch, Skip: 1, Hook: func(context.Context, backendtest.Op, string) { cancel() }})
	if ok, err := backend.ProbeConditionalDelete(ctx, f, "probe/key"); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("ProbeConditionalDelete cancelled midway = %t, %v; want false, context.Canceled", ok, err)
	}
	wantNoScratch(t, mem)
}

func faulty(m *membackend.Backend) backend.Backend { return backendtest.NewFaulty(m) }
