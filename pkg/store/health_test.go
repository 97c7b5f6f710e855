package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/membackend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// downLocker is a locker whose service does not answer.
type downLocker struct{ lock.Locker }

func (downLocker) Ping(context.Context) error {
	return fmt.Errorf("test: %w: 0 of 3 masters answered", lock.ErrUnavailable)
}

func TestPing(t *testing.T) {
	ctx := t.Context()
	mem := membackend.New()
	fb := backendtest.NewFaulty(mem)
	clock := newFakeClock()
	s, err := New(ctx, fb, mustMemlock(t), Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Ping(ctx)
	if err != nil || !h.OK() {
		t.Fatalf("Ping of a new store = %+v, %v", h, err)
	}
	if !h.LockChecked || h.Probe.State != ProbeNotRun || !h.ProbeRecord.IsZero() || h.TagIndexReady {
		t.Errorf("Ping of a store that never wrote = %+v", h)
	}
	if n := writes(fb); n != 0 {
		t.Errorf("Ping wrote %d times", n)
	}
	mustUpload(t, s, "artifact://s/t/log", []byte("x"), UploadOptions{})
	h, err = s.Ping(ctx)
	if err != nil || h.Probe.State != ProbePassed || !h.ProbeRecord.Equal(clock.Now()) || !h.TagIndexReady {
		t.Errorf("Ping after a write = %+v, %v; want the probe passed and recorded, the tag index ready", h, err)
	}

	// A backend that refuses the credentials.
	fb.Inject(backendtest.Fault{Op: backendtest.OpList, Err: backendtest.Permanent("denied", backend.ErrPermissionDenied)})
	h, err = s.Ping(ctx)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrPermissionDenied) || !errors.Is(h.Backend, ErrPermissionDenied) || h.OK() {
		t.Errorf("Ping with listing denied = %+v, %v; want ErrUnhealthy and ErrPermissionDenied", h, err)
	}
	fb.Clear()

	// A lock service that does not answer.
	s2, err := New(ctx, mem, downLocker{mustMemlock(t)}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err = s2.Ping(ctx)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, lock.ErrUnavailable) || h.Backend != nil || !h.LockChecked {
		t.Errorf("Ping with the lock service down = %+v, %v; want ErrUnhealthy and lock.ErrUnavailable", h, err)
	}

	// A backend the probe refused.
	ub := backendtest.NewFaulty(membackend.New())
	ub.Inject(backendtest.Fault{Op: backendtest.OpPut, IgnoreIfAbsent: true})
	s3, err := New(ctx, ub, nil, Config{DisableLocking: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.PrepareWrites(ctx); !errors.Is(err, backend.ErrUnfencedWrites) {
		t.Fatalf("PrepareWrites: %v", err)
	}
	h, err = s3.Ping(ctx)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, backend.ErrUnfencedWrites) || h.LockChecked {
		t.Errorf("Ping of a refused backend without locking = %+v, %v; want ErrUnhealthy and ErrUnfencedWrites", h, err)
	}

	// Closed, and a cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with a cancelled context: %v", err)
	}
	_ = s.Close()
	if _, err := s.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}
