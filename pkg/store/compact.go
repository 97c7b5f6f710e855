package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/catalog"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// This file folds the catalog's log into its segments (CompactCatalog),
// and rebuilds the catalog from the manifests when it has none or it is
// not valid.

// catalogLockKey is the lock of the catalog's compaction, in the locker's
// namespace (artifact keys are URIs, so it cannot collide with one).
const catalogLockKey = "artifactstore-catalog"

// segmentGrace is how old a segment no root lists must be before a
// rebuild deletes it: a compaction running without locks may be about to
// commit a root that lists it.
const segmentGrace = time.Hour

// CatalogReport is what CompactCatalog did.
type CatalogReport struct {
	// Rebuilt: there was no usable catalog, and it was built from a walk of
	// every manifest.
	Rebuilt bool
	// Generation, Artifacts and Segments describe the root committed.
	Generation int64
	Artifacts  int64
	Segments   int
	// Folded counts the log entries folded into the segments (and
	// deleted), Pending those kept because their write has not committed
	// (yet), Dropped those deleted because their write can no longer
	// commit (older than the intent horizon, 24h).
	Folded  int
	Pending int
	Dropped int
	// SegmentsWritten and SegmentsDeleted count segment objects.
	SegmentsWritten int
	SegmentsDeleted int
}

// CompactCatalog folds the catalog's log into its segments: it reads the
// manifest of every artifact the log names, rewrites the segments that
// hold them, commits a new root (conditionally on the one it read, and
// under the catalog's lock when locking is on) and then deletes the log
// entries whose commit it saw and the replaced segments. Without a usable
// catalog (none yet, a root that is not valid, or a segment this Store
// found missing or corrupt) it builds one from a walk of every manifest. Stores run it in the background as they write (see
// CatalogConfig.CompactEvery); it is safe to run from any number of
// processes at once and to interrupt at any point.
//
// A compaction that loses the race for the root (another one committed
// first) changes nothing the catalog reads and starts over, up to 5
// times; then it fails with ErrConflict.
func (s *Store) CompactCatalog(ctx context.Context) (rep CatalogReport, err error) {
	ctx, end := s.begin(ctx, "compact-catalog", "")
	defer func() { end(err) }()
	return s.compactCatalog(ctx, compactFold)
}

// compactMode says how compactCatalog runs.
type compactMode int

const (
	// compactFold folds the log, rebuilding only a catalog that is not
	// usable.
	compactFold compactMode = iota
	// compactBackground is compactFold that gives up at once when another
	// process holds the catalog's lock.
	compactBackground
	// compactRebuild always rebuilds from the manifests (Reconcile).
	compactRebuild
)

// compactAttempts bounds how often a compaction that is not in the
// background starts over after losing the root to another one.
const compactAttempts = 5

// compactCatalog is CompactCatalog in the given mode. Outside the
// background, a compaction that lost the root to another one (without
// locking, or after a lost lease) starts over on the new root.
func (s *Store) compactCatalog(ctx context.Context, mode compactMode) (CatalogReport, error) {
	for attempt := 1; ; attempt++ {
		rep, err := s.compactOnce(ctx, mode)
		if mode == compactBackground || !errors.Is(err, ErrConflict) || attempt >= compactAttempts || ctx.Err() != nil {
			return rep, err
		}
		s.log.Debug("store: catalog compaction lost the root to another one, starting over", "attempt", attempt, "err", err)
	}
}

// compactOnce is one attempt of compactCatalog.
func (s *Store) compactOnce(ctx context.Context, mode compactMode) (CatalogReport, error) {
	var lease *lock.Lease
	if s.locker != nil {
		var err error
		if mode == compactBackground {
			lease, err = s.locker.TryAcquire(ctx, catalogLockKey)
		} else {
			lease, err = s.acquireCatalog(ctx)
		}
		if err != nil {
			return CatalogReport{}, fmt.Errorf("compact the catalog: %w", err)
		}
		defer func() {
			if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("store: catalog lock release", "err", err)
			}
		}()
	}
	v, err := s.openView(ctx)
	switch {
	case errors.Is(err, errNoCatalog) || err == nil && (mode == compactRebuild || s.compactor.damaged.Load()):
		return s.rebuildCatalog(ctx, lease, v)
	case err != nil:
		return CatalogReport{}, fmt.Errorf("compact the catalog: %w", err)
	}
	rep, err := s.foldLog(ctx, lease, v)
	if errors.Is(err, errNoCatalog) || errors.Is(err, errSegmentGone) { // a corrupt or missing segment
		return s.rebuildCatalog(ctx, lease, v)
	}
	return rep, err
}

// acquireCatalog takes the catalog's lock within Config.LockTimeout.
func (s *Store) acquireCatalog(ctx context.Context) (*lock.Lease, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.LockTimeout)
	defer cancel()
	lease, err := s.locker.Acquire(actx, catalogLockKey)
	if err != nil {
		return nil, fmt.Errorf("lock the catalog: %w", err)
	}
	return lease, nil
}

// foldLog rewrites the segments that hold the artifacts of v's log and
// commits the new root.
func (s *Store) foldLog(ctx context.Context, lease *lock.Lease, v *catalogView) (CatalogReport, error) {
	rep := CatalogReport{Generation: v.root.Generation, Segments: len(v.root.Segments), Artifacts: artifactsIn(v.root)}
	if len(v.dirtyKeys) == 0 {
		return rep, nil
	}
	// The changes, by the segment whose range holds them (-1 when there
	// are no segments).
	bySegment := map[int][]catalog.Change{}
	for _, k := range v.dirtyKeys {
		i := v.root.Locate(k)
		bySegment[i] = append(bySegment[i], catalog.Change{Key: k, Record: v.dirty[k].rec})
	}
	usage, err := s.readUsage(ctx, v.root)
	if err != nil {
		return rep, err
	}
	w := s.newSegmentWriter(ctx)
	var segments []catalog.SegmentInfo
	var replaced []string
	rewrite := func(old []catalog.Record, changes []catalog.Change) error {
		for _, c := range changes {
			if at, ok := slices.BinarySearchFunc(old, c.Key, func(r catalog.Record, k string) int { return strings.Compare(r.Key(), k) }); ok {
				catalog.AddUsage(usage, &old[at], -1)
			}
			catalog.AddUsage(usage, c.Record, 1)
		}
		for _, chunk := range catalog.Chunk(catalog.Apply(old, changes), s.cfg.Catalog.SegmentRecords) {
			info, err := w.write(chunk)
			if err != nil {
				return err
			}
			segments = append(segments, info)
		}
		return nil
	}
	if len(v.root.Segments) == 0 {
		if err := rewrite(nil, bySegment[-1]); err != nil {
			return rep, w.abort(err)
		}
	}
	for i := range v.root.Segments {
		si := &v.root.Segments[i]
		changes, ok := bySegment[i]
		if !ok {
			segments = append(segments, *si)
			continue
		}
		old, err := s.readSegment(ctx, si)
		if err == nil {
			err = rewrite(old, changes)
		}
		if err != nil {
			return rep, w.abort(err)
		}
		replaced = append(replaced, si.Key)
	}
	root := &catalog.Root{Schema: catalog.Schema, Generation: v.root.Generation + 1, Segments: segments}
	if err := s.publishRoot(ctx, lease, v, w, root, usage, &rep); err != nil {
		return rep, err
	}
	if v.root.Usage.Key != "" {
		replaced = append(replaced, v.root.Usage.Key)
	}
	rep.SegmentsDeleted = s.deleteSegments(ctx, replaced)
	return rep, nil
}

// publishRoot commits root, with the usage totals, over v's root, then
// trims v's log (after the commit, never before) and reports the new
// root in rep. When the commit fails, the segments w wrote are deleted
// (unless the commit may have landed).
func (s *Store) publishRoot(ctx context.Context, lease *lock.Lease, v *catalogView, w *segmentWriter, root *catalog.Root, usage map[catalog.UsageKey]catalog.Totals, rep *CatalogReport) error {
	data, ref, err := catalog.EncodeUsage(usage)
	if err == nil {
		ref.Key = catalog.SegmentPrefix + "usage-" + s.newID() + ".json.gz"
		err = w.put(ref.Key, data, "application/gzip")
	}
	if err != nil {
		return w.abort(err)
	}
	root.Usage = ref
	if err := s.commitRoot(ctx, lease, root, v.rootETag); err != nil {
		return w.abort(err)
	}
	rep.Generation, rep.Segments, rep.SegmentsWritten = root.Generation, len(root.Segments), len(w.written)
	rep.Artifacts = artifactsIn(root)
	s.trimLog(ctx, v, rep)
	return nil
}

// artifactsIn counts the records of root.
func artifactsIn(root *catalog.Root) int64 {
	var n int64
	for _, si := range root.Segments {
		n += int64(si.Records)
	}
	return n
}

// commitRoot writes root conditionally on etag (if-absent for ""), after
// checking the catalog's lease, with this Store's identity.
func (s *Store) commitRoot(ctx context.Context, lease *lock.Lease, root *catalog.Root, etag string) error {
	root.Built, root.Writer, root.ExemptTag = s.cfg.Now().UTC(), s.cfg.WriterID, s.exemptTag()
	if lease != nil {
		if err := lease.Err(); err != nil {
			return fmt.Errorf("%w: commit the catalog's root: the lock lease was lost: %w", ErrConflict, err)
		}
		if !time.Now().Before(lease.Until()) {
			return fmt.Errorf("%w: %w: commit the catalog's root: the lease expired", ErrConflict, ErrLeaseLost)
		}
		root.Fence = lease.Fence()
	}
	data, err := root.Encode()
	if err != nil {
		return err
	}
	_, err = s.b.Put(ctx, catalog.RootKey, bytes.NewReader(data), int64(len(data)), backend.PutOptions{
		ContentType: "application/json", IfMatch: etag, IfAbsent: etag == "",
	})
	if errors.Is(err, backend.ErrPreconditionFailed) {
		return fmt.Errorf("%w: commit the catalog's root: another compaction committed first: %w", ErrConflict, err)
	}
	if err != nil {
		return fmt.Errorf("commit the catalog's root: %w", err)
	}
	return nil
}

// exemptTag is the retention's exempt tag.
func (s *Store) exemptTag() string {
	if t := s.cfg.Retention.ExemptTag; t != "" {
		return t
	}
	return DefaultExemptTag
}

// trimLog deletes, after a root that holds v's artifacts was committed,
// the log entries whose commit v's manifests show, and those older than
// the intent horizon (their write can no longer commit: see intent). It
// counts them in rep; a failed delete is logged (the entry stays, costing
// queries a manifest read until the next compaction).
func (s *Store) trimLog(ctx context.Context, v *catalogView, rep *CatalogReport) {
	var now time.Time // the backend's clock, read once when needed
	var del []string
	for _, k := range v.dirtyKeys {
		d := v.dirty[k]
		commits := commitsOf(d.obj.m)
		for _, e := range d.entries {
			_, id, _ := catalog.ParseEntryKey(e.Key)
			if slices.Contains(commits, id) {
				rep.Folded++
				del = append(del, e.Key)
				continue
			}
			if now.IsZero() {
				var err error
				if now, err = s.backendNow(ctx); err != nil {
					s.log.Warn("store: catalog compaction keeps the log entries of uncommitted writes", "err", err)
					now = time.Unix(0, 0)
				}
			}
			if !e.Modified.IsZero() && now.Sub(e.Modified) > intentHorizon {
				rep.Dropped++
				del = append(del, e.Key)
			} else {
				rep.Pending++
			}
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.parallel(cctx, len(del), func(ctx context.Context, i int) error {
		if err := s.b.Delete(ctx, del[i]); err != nil && !errors.Is(err, backend.ErrNotFound) {
			s.log.Warn("store: delete a folded catalog log entry (left for the next compaction)", "key", del[i], "err", err)
		}
		return nil
	})
}

// deleteSegments deletes segments no root lists any more, best effort,
// and counts those deleted. A query still reading one starts again on the
// new root.
func (s *Store) deleteSegments(ctx context.Context, keys []string) int {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var n atomic.Int64
	_ = s.parallel(cctx, len(keys), func(ctx context.Context, i int) error {
		if err := s.b.Delete(ctx, keys[i]); err != nil && !errors.Is(err, backend.ErrNotFound) {
			s.log.Warn("store: delete a replaced catalog segment (left for a rebuild)", "key", keys[i], "err", err)
			return nil
		}
		n.Add(1)
		return nil
	})
	return int(n.Load())
}

// segmentWriter writes new segments; abort deletes them when their root
// is not committed.
type segmentWriter struct {
	s       *Store
	ctx     context.Context
	written []string
}

func (s *Store) newSegmentWriter(ctx context.Context) *segmentWriter {
	return &segmentWriter{s: s, ctx: ctx}
}

// write stores one segment of recs and returns its SegmentInfo.
func (w *segmentWriter) write(recs []catalog.Record) (catalog.SegmentInfo, error) {
	data, info, err := catalog.EncodeSegment(recs, w.s.exemptTag())
	if err != nil {
		return catalog.SegmentInfo{}, err
	}
	info.Key = catalog.SegmentPrefix + w.s.newID() + ".jsonl.gz"
	if err := w.put(info.Key, data, "application/gzip"); err != nil {
		return catalog.SegmentInfo{}, err
	}
	return info, nil
}

// put stores one new catalog object (a segment or a usage object).
func (w *segmentWriter) put(key string, data []byte, contentType string) error {
	if _, err := w.s.b.Put(w.ctx, key, bytes.NewReader(data), int64(len(data)), backend.PutOptions{ContentType: contentType}); err != nil {
		return fmt.Errorf("write catalog object %s: %w", key, err)
	}
	w.written = append(w.written, key)
	return nil
}

// abort deletes the segments written and returns err. When err leaves
// the root's outcome unknown, the segments are kept (a rebuild deletes
// them if no root lists them).
func (w *segmentWriter) abort(err error) error {
	if !ambiguous(err) {
		w.s.deleteSegments(w.ctx, w.written)
	}
	return fmt.Errorf("compact the catalog: %w", err)
}

// rebuildCatalog builds the catalog from a walk of every manifest, in key
// order, with bounded memory (one segment at a time), and commits its root
// over v's (if-absent when there is none). The log entries v lists whose
// commit the manifests show are deleted after, and so are the segments no
// root lists that are older than segmentGrace.
func (s *Store) rebuildCatalog(ctx context.Context, lease *lock.Lease, v *catalogView) (CatalogReport, error) {
	rep := CatalogReport{Rebuilt: true}
	// The manifests of the log's artifacts, read before the walk: an
	// entry whose commit they show is folded into what the walk reads.
	if err := s.readDirty(ctx, v); err != nil {
		return rep, fmt.Errorf("compact the catalog: %w", err)
	}
	w := s.newSegmentWriter(ctx)
	usage := map[catalog.UsageKey]catalog.Totals{}
	var segments []catalog.SegmentInfo
	var buf []catalog.Record
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		info, err := w.write(buf)
		if err != nil {
			return err
		}
		segments = append(segments, info)
		buf = buf[:0]
		return nil
	}
	err := s.walkInOrder(ctx, func(r record) error {
		if r.err != nil {
			s.log.Warn("store: the catalog leaves out an invalid manifest", "uri", r.uri.String(), "err", r.err)
			return nil
		}
		rec, err := catalogRecord(r.m)
		if err != nil || rec == nil {
			return err
		}
		catalog.AddUsage(usage, rec, 1)
		buf = append(buf, *rec)
		if len(buf) >= s.cfg.Catalog.SegmentRecords {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, w.abort(err)
	}
	gen := int64(1)
	if v.root != nil {
		gen = v.root.Generation + 1
	}
	root := &catalog.Root{Schema: catalog.Schema, Generation: gen, Segments: segments}
	if err := s.publishRoot(ctx, lease, v, w, root, usage, &rep); err != nil {
		return rep, err
	}
	rep.SegmentsDeleted = s.deleteStraySegments(ctx, root)
	s.compactor.damaged.Store(false)
	s.log.Info("store: catalog rebuilt from the manifests", "artifacts", rep.Artifacts, "segments", rep.Segments)
	return rep, nil
}

// deleteStraySegments deletes the segments root does not list that are
// older than segmentGrace (by the backend's clock).
func (s *Store) deleteStraySegments(ctx context.Context, root *catalog.Root) int {
	listed := map[string]bool{root.Usage.Key: true}
	for _, si := range root.Segments {
		listed[si.Key] = true
	}
	now, err := s.backendNow(ctx)
	if err != nil {
		s.log.Warn("store: stray catalog segments left for the next rebuild", "err", err)
		return 0
	}
	var stray []string
	for info, err := range s.b.List(ctx, catalog.SegmentPrefix) {
		if err != nil {
			s.log.Warn("store: stray catalog segments left for the next rebuild", "err", err)
			break
		}
		if !listed[info.Key] && now.Sub(info.Modified) > segmentGrace {
			stray = append(stray, info.Key)
		}
	}
	return s.deleteSegments(ctx, stray)
}

// walkInOrder calls fn for every manifest (tombstones included) in
// catalog key order, from one goroutine, reading them
// Config.ListConcurrency at a time a batch ahead. A manifest key orders
// like its artifact key except within one task (the ".json" suffix), so a
// batch ends only where a task does.
func (s *Store) walkInOrder(ctx context.Context, fn func(r record) error) error {
	const batchSize = 512
	var batch []listedArtifact
	process := func() error {
		recs := make([]record, len(batch))
		err := s.parallel(ctx, len(batch), func(ctx context.Context, i int) error {
			la := batch[i]
			recs[i] = record{uri: la.uri, etag: la.etag, modified: la.modified}
			if m := s.listedManifest(la); m != nil {
				recs[i].m = m
				return nil
			}
			m, etag, err := s.readManifestObject(ctx, la.uri)
			switch {
			case errors.Is(err, ErrIntegrity):
				recs[i].err = err
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			default:
				recs[i].m, recs[i].etag = m, etag
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(recs, func(a, b record) int { return strings.Compare(catalogKey(a.uri), catalogKey(b.uri)) })
		for _, r := range recs {
			if r.m == nil && r.err == nil {
				continue // deleted since the listing
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for info, err := range s.b.List(ctx, manifestRoot) {
		if err != nil {
			return fmt.Errorf("list %q: %w", manifestRoot, err)
		}
		u, ok := uriFromManifestKey(info.Key)
		if !ok {
			continue
		}
		if n := len(batch); n >= batchSize && (batch[n-1].uri.Spec != u.Spec || batch[n-1].uri.Task != u.Task) {
			if err := process(); err != nil {
				return err
			}
		}
		batch = append(batch, listedArtifact{uri: u, etag: info.ETag, modified: info.Modified})
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return process()
}
