package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/lock"
)

// Helpers of the tests of the administrative operations (retention, usage
// and quota, verify-all, export, reconcile).

// setClock moves the fake clock to t.
func setClock(c *fakeClock, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// messages counts the records logged with message msg.
func (h *logRecorder) messages(msg string) int {
	n := 0
	for _, r := range h.Records() {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// lockGate is a lock.Locker decorator that parks the first Acquire after
// it is armed until released: a writer paused between deciding and
// taking the lock.
type lockGate struct {
	lock.Locker

	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newLockGate(l lock.Locker) *lockGate {
	return &lockGate{Locker: l, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *lockGate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

func (g *lockGate) Acquire(ctx context.Context, key string) (*lock.Lease, error) {
	g.mu.Lock()
	hit := g.armed
	g.armed = false
	g.mu.Unlock()
	if hit {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Locker.Acquire(ctx, key)
}

// waitFor receives from ch or fails the test after a generous deadline (a
// hang guard, not a timing assumption).
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// day is 24 hours.
const day = 24 * time.Hour
