package s3backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// TestPutRacingDeletesInOneDirectory: writers Put and Delete keys that
// share a parent "directory", as the catalog's log entries do. versitygw's
// posix backend stores keys as files and removes a parent directory once
// it is empty, and a Put that meets that removal fails with 409
// ExistingObjectIsDirectory (about one Put in ten here) having written
// nothing. That answer must be transient, so that the retry decorator
// sends the Put again; through it, every Put lands. (MinIO answers such a
// Put 403 AccessDenied, about once in 800 here; Put sends it once more
// itself: TestPutDeniedByDirectoryRace.)
func TestPutRacingDeletesInOneDirectory(t *testing.T) {
	raw := newTestBackend(t, 0, nil)
	retrying := backend.WithRetry(raw, backend.RetryConfig{MaxRetries: 10, Initial: time.Millisecond, Max: 20 * time.Millisecond})
	ctx := context.Background()
	var (
		wg                 sync.WaitGroup
		refused, failed    atomic.Int64
		firstUntyped       atomic.Value
		writers, perWriter = 4, 100
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("_catalog/log/s/t/log/k-%d-%d", w, i)
				var b backend.Backend = raw
				if i%2 == 1 { // half through the retry decorator
					b = retrying
				}
				_, err := b.Put(ctx, key, bytes.NewReader(nil), 0, backend.PutOptions{})
				switch {
				case err == nil:
				case b == raw && errors.Is(err, backend.ErrTransient):
					refused.Add(1)
					continue
				case b == raw:
					firstUntyped.CompareAndSwap(nil, err.Error())
					continue
				default:
					failed.Add(1)
					firstUntyped.CompareAndSwap(nil, err.Error())
					continue
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("delete %s: %v", key, err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%s: %d of %d plain Puts refused (transient)", server.Kind, refused.Load(), writers*perWriter/2)
	if v := firstUntyped.Load(); v != nil {
		t.Errorf("a Put failed with an error that is not transient: %v", v)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d Puts through the retry decorator failed", n)
	}
}
