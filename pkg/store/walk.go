package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// This file is the internal API for operations over many artifacts
// (listings, search, bulk delete, and the retention, usage, verify-all,
// export and reconcile operations): list the artifacts under a manifest
// prefix, and visit them, or their manifests, with bounded concurrency.

// record is one manifest read by forEachManifest.
type record struct {
	uri  URI       // the artifact (no version)
	m    *manifest // nil when err is set
	etag string
	// modified is the manifest's modification time as the listing reported
	// it (the backend's clock).
	modified time.Time
	// err is set (matching ErrIntegrity) when the manifest exists but is
	// not a valid record; the visitor decides whether to skip or report it.
	err error
}

// listArtifacts returns the artifacts whose manifests are under prefix (see
// manifestPrefix) and pass keep (nil keeps all), in key order. Stray objects
// that are not manifests of valid artifacts are skipped.
func (s *Store) listArtifacts(ctx context.Context, prefix string, keep func(URI) bool) ([]URI, error) {
	var out []URI
	for info, err := range s.b.List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		u, ok := uriFromManifestKey(info.Key)
		if !ok || (keep != nil && !keep(u)) {
			continue
		}
		out = append(out, u)
	}
	if err := ctx.Err(); err != nil {
		return nil, err // a listing may end quietly when cancelled
	}
	return out, nil
}

// forEachArtifact calls fn for every artifact under prefix that passes keep,
// from up to Config.ListConcurrency goroutines at once. The first error
// (listing's or fn's) cancels the rest and is returned.
func (s *Store) forEachArtifact(ctx context.Context, prefix string, keep func(URI) bool, fn func(ctx context.Context, u URI) error) error {
	uris, err := s.listArtifacts(ctx, prefix, keep)
	if err != nil {
		return err
	}
	return s.parallel(ctx, len(uris), func(ctx context.Context, i int) error { return fn(ctx, uris[i]) })
}

// forEachManifest reads the manifest of every artifact under prefix that
// passes keep and calls fn with it, from up to Config.ListConcurrency
// goroutines at once (fn must be safe for concurrent use). A manifest
// deleted between the listing and its reading is skipped; one that is not a
// valid record is passed with record.err set. The first other error cancels
// the rest and is returned.
//
// The reads start while the listing pages (scan.go), and a manifest whose
// listed ETag matches the Store's cache is not read again: it is taken in
// the state the listing saw.
//
// Tombstones (deleted artifacts) are skipped.
func (s *Store) forEachManifest(ctx context.Context, prefix string, keep func(URI) bool, fn func(ctx context.Context, r record) error) error {
	return s.forEachManifestObject(ctx, prefix, keep, func(ctx context.Context, r record) error {
		if r.m != nil && r.m.Deleted {
			return nil
		}
		return fn(ctx, r)
	})
}

// forEachManifestObject is forEachManifest with the tombstones: record.m
// may be one (Deleted).
func (s *Store) forEachManifestObject(ctx context.Context, prefix string, keep func(URI) bool, fn func(ctx context.Context, r record) error) error {
	return s.scanArtifacts(ctx, prefix, keep, func(ctx context.Context, la listedArtifact) error {
		u := la.uri
		if m := s.listedManifest(la); m != nil {
			return fn(ctx, record{uri: u, m: m, etag: la.etag, modified: la.modified})
		}
		m, etag, err := s.readManifestObject(ctx, u)
		switch {
		case errors.Is(err, ErrIntegrity):
			return fn(ctx, record{uri: u, err: err})
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		return fn(ctx, record{uri: u, m: m, etag: etag, modified: la.modified})
	})
}

// parallel calls fn(ctx, i) for i in [0, n) from up to
// Config.ListConcurrency goroutines. The first error cancels the context of
// the calls still running, stops new ones and is returned.
func (s *Store) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	worker := func() {
		defer wg.Done()
		for {
			mu.Lock()
			if firstErr != nil || next >= n {
				mu.Unlock()
				return
			}
			i := next
			next++
			mu.Unlock()
			if err := ctx.Err(); err != nil {
				fail(err)
				return
			}
			if err := fn(ctx, i); err != nil {
				fail(err)
				return
			}
		}
	}
	workers := min(n, s.cfg.ListConcurrency)
	wg.Add(workers)
	for range workers {
		go worker()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = parent.Err() // a cancelled run is never a complete one
	}
	return firstErr
}
