package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/catalog"
)

// This file is the write path's side of the catalog (package catalog):
// every commit is announced by an entry in the catalog's log, Put before
// the commit, so that no commit can land without the catalog knowing that
// its artifact changed. The queries are in catalogquery.go, compaction
// in compact.go.

// Defaults of CatalogConfig.
const (
	DefaultCompactEvery   = 512
	DefaultSegmentRecords = 2048
)

// intentHorizon bounds a write: a log entry older than this (by the
// backend's clock) whose commit is not in its manifest is dropped by
// compaction, and a writer refuses to commit more than half of it after
// it wrote its entry (by its own monotonic clock), so a dropped entry's
// commit can never land.
const intentHorizon = 24 * time.Hour

// CatalogConfig tunes the catalog. The zero value is the default.
type CatalogConfig struct {
	// CompactEvery: after each commit, a Store compacts the catalog in the
	// background (when no other Store is) with probability 1/CompactEvery,
	// so that the log holds about that many entries whatever the number
	// of writers; a query reads one manifest per artifact in the log.
	// Negative: never (run CompactCatalog yourself). Default 512.
	CompactEvery int
	// SegmentRecords is how many artifacts a segment holds (at most).
	// Default 2048.
	SegmentRecords int
}

// WithDefaults returns c with every zero field set to its default.
func (c CatalogConfig) WithDefaults() CatalogConfig {
	if c.CompactEvery == 0 {
		c.CompactEvery = DefaultCompactEvery
	}
	if c.SegmentRecords == 0 {
		c.SegmentRecords = DefaultSegmentRecords
	}
	return c
}

// Validate reports the first invalid field of c, after defaults.
func (c CatalogConfig) Validate() error {
	c = c.WithDefaults()
	if c.SegmentRecords < 1 || c.SegmentRecords > 1<<20 {
		return fmt.Errorf("Catalog.SegmentRecords %d is not in [1, %d]", c.SegmentRecords, 1<<20)
	}
	return nil
}

// intent is one write's entry in the catalog's log. Its id is the id of
// the commit the write makes (every attempt of the write sends the same
// id; at most one lands).
type intent struct {
	key     string
	id      string
	started time.Time // this process's monotonic clock
	done    chan struct{}
	err     error // the entry's Put, valid once done is closed
}

// beginIntent starts writing the log entry of a new write to u, in the
// background: the write must wait for it (intent.ready) before it
// commits.
func (s *Store) beginIntent(ctx context.Context, u URI) *intent {
	id := s.newID()
	in := &intent{key: catalog.EntryKey(catalogKey(u), id), id: id, started: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		_, in.err = s.b.Put(ctx, in.key, bytes.NewReader(nil), 0, backend.PutOptions{})
	}()
	return in
}

// ready waits for the entry's Put. A write whose entry is not stored, or
// whose entry is older than half the intent horizon, must not commit.
func (in *intent) ready(ctx context.Context, u URI) error {
	select {
	case <-in.done:
	case <-ctx.Done():
		return causeOf(ctx, ctx.Err())
	}
	if in.err != nil {
		return fmt.Errorf("announce the write of %s in the catalog's log: %w", u, in.err)
	}
	if age := time.Since(in.started); age > intentHorizon/2 {
		return fmt.Errorf("%w: %s: the write took %v between its start and its commit, more than %v: refused, since the catalog may have dropped its log entry",
			ErrConflict, u, age.Round(time.Second), intentHorizon/2)
	}
	return nil
}

// endIntent removes the entry of a write that committed nothing (a no-op,
// or a failure known not to have landed), best effort: a stray entry
// costs queries one manifest read until compaction drops it.
func (s *Store) endIntent(ctx context.Context, in *intent, committed, uncertain bool) {
	if in == nil || committed || uncertain {
		return
	}
	<-in.done
	if in.err != nil {
		return // a failed Put may have stored it all the same: compaction drops it
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.b.Delete(cctx, in.key); err != nil {
		s.log.Debug("store: delete the log entry of a write that committed nothing (left for compaction)", "key", in.key, "err", err)
	}
}

// catalogKey is u's artifact key in the catalog.
func catalogKey(u URI) string { return catalog.ArtifactKey(u.Spec, u.Task, u.Type) }

// catalogRecord is m's record in the catalog (nil for nil or a
// tombstone): its manifest without the commit history, the reclaimed list
// and the content stored in it, which no query needs.
func catalogRecord(m *manifest) (*catalog.Record, error) {
	if m == nil || m.Deleted {
		return nil, nil
	}
	c := *m
	c.Commits, c.Reclaimed = nil, nil
	// m may be shared (the manifest cache): encodeManifest fills the
	// versions' cached encodings, so it gets copies of them.
	c.Versions = slices.Clone(m.Versions)
	for i := range c.Versions {
		if v := &c.Versions[i]; len(v.Inline) > 0 {
			v.Inline, v.raw = nil, nil
		}
	}
	data, err := encodeManifest(&c)
	if err != nil {
		return nil, fmt.Errorf("encode the catalog record of %s: %w", m.URI, err)
	}
	r := &catalog.Record{
		Spec: m.Spec, Task: m.Task, Type: m.Type, Tags: m.Tags,
		Created: m.Created, Updated: m.Updated, Current: m.current().Created,
		Versions: make([]catalog.Version, len(m.Versions)),
		Manifest: data,
	}
	for i, v := range m.Versions {
		r.Versions[i] = catalog.Version{Version: v.Version, Created: v.Created, Size: v.Size, StoredSize: v.StoredSize}
	}
	return r, nil
}

// manifestOf decodes the manifest a catalog record holds.
func manifestOf(r *catalog.Record) (*manifest, error) {
	return decodeManifest(URI{Spec: r.Spec, Task: r.Task, Type: r.Type}, r.Manifest)
}

// compactor runs the background compactions of a Store: at most one at a
// time, on a context Close cancels (a compaction is safe to interrupt).
type compactor struct {
	running   atomic.Bool
	committed atomic.Bool // the Store has committed once
	damaged   atomic.Bool // a query found the catalog damaged: rebuild it
	mu        sync.Mutex  // orders starts with Close
	closing   bool        // Close was called: start no more
	ctx       context.Context
	cancel    context.CancelFunc
}

// maybeCompact starts a background compaction with probability
// 1/Catalog.CompactEvery, and after the Store's first commit when the
// bucket has no catalog yet; never while one of this Store's runs.
func (s *Store) maybeCompact() {
	every := s.cfg.Catalog.CompactEvery
	if every < 0 {
		return
	}
	first := s.compactor.committed.CompareAndSwap(false, true)
	if !first && rand.IntN(every) != 0 || !s.compactor.running.CompareAndSwap(false, true) {
		return
	}
	s.compactor.mu.Lock()
	defer s.compactor.mu.Unlock()
	if s.compactor.closing {
		s.compactor.running.Store(false)
		return
	}
	s.background.Go(func() {
		defer s.compactor.running.Store(false)
		ctx := s.compactor.ctx
		if first {
			if _, err := s.b.Stat(ctx, catalog.RootKey); !errors.Is(err, backend.ErrNotFound) {
				return
			}
		}
		if _, err := s.compactCatalog(ctx, compactBackground); err != nil {
			s.log.Debug("store: background catalog compaction", "err", err)
		}
	})
}
