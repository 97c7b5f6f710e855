package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// listedArtifact is one manifest found by a listing, with the ETag the
// listing reported.
type listedArtifact struct {
	uri      URI
	etag     string
	modified time.Time
}

// scanArtifacts lists the manifests under prefix that pass keep (nil keeps
// all) and calls fn for each, from Config.ListConcurrency goroutines that
// start while the listing is still paging, so that the reads overlap the
// listing instead of waiting for its end. The first error (the listing's
// or fn's) cancels the rest and is returned.
func (s *Store) scanArtifacts(ctx context.Context, prefix string, keep func(URI) bool, fn func(ctx context.Context, la listedArtifact) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		once.Do(func() {
			firstErr = err
			cancel(err)
		})
	}
	work := make(chan listedArtifact, 4*s.cfg.ListConcurrency)
	for range s.cfg.ListConcurrency {
		wg.Go(func() {
			for la := range work {
				if ctx.Err() != nil {
					continue // drain after a failure
				}
				if err := fn(ctx, la); err != nil {
					fail(err)
				}
			}
		})
	}
	func() {
		defer close(work)
		for info, err := range s.b.List(ctx, prefix) {
			if err != nil {
				fail(fmt.Errorf("list %q: %w", prefix, err))
				return
			}
			u, ok := uriFromManifestKey(info.Key)
			if !ok || (keep != nil && !keep(u)) {
				continue
			}
			select {
			case work <- listedArtifact{uri: u, etag: info.ETag, modified: info.Modified}:
			case <-ctx.Done():
				fail(context.Cause(ctx))
				return
			}
		}
	}()
	wg.Wait()
	if firstErr == nil {
		// Workers skip what is left once ctx ends, and a listing may end
		// quietly: a cancelled scan is never a complete one.
		firstErr = parent.Err()
	}
	return firstErr
}

// listedManifest returns the decoded manifest of la when the Store's cache
// holds the version the listing reported (same ETag), so that it need not
// be read again; nil otherwise.
func (s *Store) listedManifest(la listedArtifact) *manifest {
	return s.manifests.get(manifestKey(la.uri), la.etag)
}
