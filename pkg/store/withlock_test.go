package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// countingLocker counts acquisitions (Acquire and TryAcquire).
type countingLocker struct {
	lock.Locker
	n atomic.Int32
}

func (c *countingLocker) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	c.n.Add(1)
	return c.Locker.Acquire(ctx, key)
}

func (c *countingLocker) TryAcquire(ctx context.Context, key string) (*lock.Lease, error) {
	c.n.Add(1)
	return c.Locker.TryAcquire(ctx, key)
}

func (c *countingLocker) Inspect(ctx context.Context, key string) (lock.Status, error) {
	return c.Locker.(lock.Inspector).Inspect(ctx, key)
}

func TestWithLockStoreWritesReuseTheLease(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		b := e.newBackend(t)
		cl := &countingLocker{Locker: e.newLocker(t, b, lock.Config{})}
		f := newFixtureOn(t, b, cl, Config{Versioning: true, LockTimeout: 200 * time.Millisecond}, nil)
		ctx := context.Background()
		const uri = "artifact://s/t/log"
		mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
		cl.n.Store(0)
		var fence uint64
		err := f.s.WithLock(ctx, uri+"?version=1", LockOptions{}, func(ctx context.Context) error {
			st, err := f.s.IsLocked(ctx, uri)
			if err != nil || !st.Held {
				t.Errorf("IsLocked inside WithLock = %+v, %v; want held", st, err)
			}
			fence = st.Fence
			// Every kind of write, under the held lease: none waits.
			if _, err := f.s.UploadBytes(ctx, uri, []byte("v2"), UploadOptions{Tags: []string{"a"}}); err != nil {
				return err
			}
			if _, err := f.s.AddTags(ctx, uri, "b"); err != nil {
				return err
			}
			if _, err := f.s.PruneVersions(ctx, uri, 1); err != nil {
				return err
			}
			// Nested on the same artifact: reuses the lock.
			return f.s.WithLock(ctx, uri, LockOptions{}, func(ctx context.Context) error {
				_, err := f.s.UploadBytes(ctx, uri, []byte("v3"), UploadOptions{})
				return err
			})
		})
		if err != nil {
			t.Fatalf("WithLock: %v", err)
		}
		if n := cl.n.Load(); n != 1 {
			t.Errorf("%d acquisitions, want 1 (the writes inside must reuse the lease)", n)
		}
		m := rawManifest(t, f.b, uri)
		if m.Fence != fence || m.current().Fence != fence {
			t.Errorf("commit fence %d (version %d), want the held lease's %d", m.Fence, m.current().Fence, fence)
		}
		if st, err := f.s.IsLocked(ctx, uri); err != nil || st.Held {
			t.Errorf("after WithLock: IsLocked = %+v, %v; want free", st, err)
		}
		// Another artifact inside WithLock takes its own lock; a write with
		// a context without the lock waits and times out, stating the
		// timeout.
		err = f.s.WithLock(ctx, uri, LockOptions{}, func(lctx context.Context) error {
			if _, err := f.s.UploadBytes(lctx, "artifact://s/t/diff", []byte("d"), UploadOptions{}); err != nil {
				t.Errorf("upload of another artifact: %v", err)
			}
			_, err := f.s.UploadBytes(ctx, uri, []byte("other"), UploadOptions{})
			if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "200ms") {
				t.Errorf("write outside the held lock = %v; want ErrLockTimeout stating 200ms", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestWithLockTimeoutAndErrors(t *testing.T) {
	f := newFixture(t, memEnv(), Config{}, nil)
	ctx := context.Background()
	const uri = "artifact://s/t/log"
	held, err := f.locker.Acquire(ctx, lockKey(mustParse(t, uri)))
	if err != nil {
		t.Fatal(err)
	}
	called := false
	err = f.s.WithLock(ctx, uri, LockOptions{Timeout: 50 * time.Millisecond}, func(context.Context) error {
		called = true
		return nil
	})
	if called || !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "50ms") {
		t.Errorf("WithLock on a held lock: called %v, err %v; want ErrLockTimeout stating 50ms", called, err)
	}
	_ = held.Release(ctx)

	boom := errors.New("boom")
	if err := f.s.WithLock(ctx, uri, LockOptions{}, func(context.Context) error { return boom }); err != boom {
		t.Errorf("fn's error = %v, want it returned as is", err)
	}
	for _, tc := range []struct {
		name string
		uri  string
		opts LockOptions
		fn   func(context.Context) error
	}{
		{"bad uri", "artifact://s/../log", LockOptions{}, func(context.Context) error { return nil }},
		{"nil fn", uri, LockOptions{}, nil},
		{"negative timeout", uri, LockOptions{Timeout: -1}, func(context.Context) error { return nil }},
	} {
		if err := f.s.WithLock(ctx, tc.uri, tc.opts, tc.fn); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	nolock := newFixture(t, memEnv(), Config{DisableLocking: true}, nil)
	if err := nolock.s.WithLock(ctx, uri, LockOptions{}, func(context.Context) error { return nil }); !errors.Is(err, ErrUnsupported) {
		t.Errorf("without locking: %v, want ErrUnsupported", err)
	}
}

func TestWithLockLeaseLostCancelsContext(t *testing.T) {
	e := memEnv()
	b := e.newBackend(t)
	// A short expiry: the broken lease learns of it at its next refresh.
	f := newFixtureOn(t, b, e.newLocker(t, b, lock.Config{Expiry: 300 * time.Millisecond}), Config{}, nil)
	ctx := context.Background()
	const uri = "artifact://s/t/log"
	mustUpload(t, f.s, uri, []byte("v1"), UploadOptions{})
	err := f.s.WithLock(ctx, uri, LockOptions{}, func(ctx context.Context) error {
		if _, err := f.s.ForceUnlock(context.Background(), uri); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("context not cancelled after the lease was lost")
		}
		if cause := context.Cause(ctx); !errors.Is(cause, ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", cause)
		}
		_, err := f.s.UploadBytes(ctx, uri, []byte("late"), UploadOptions{})
		if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, context.Canceled) {
			t.Errorf("write after the lease was lost = %v; want context.Canceled and ErrLeaseLost", err)
		}
		return nil
	})
	if !errors.Is(err, ErrLeaseLost) {
		t.Errorf("WithLock = %v, want ErrLeaseLost (fn returned nil, the lease was lost)", err)
	}
	data, _ := mustDownload(t, f.s, uri)
	if string(data) != "v1" {
		t.Errorf("content %q, want v1", data)
	}
}

func mustParse(t *testing.T, uri string) URI {
	t.Helper()
	u, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
