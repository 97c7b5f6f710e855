package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/catalog"
)

// This file reads the catalog: a view is the root plus the artifacts the
// log names (read from their manifests, the truth), and the queries walk
// it in key order, reading only the segments that may hold an answer.

// errNoCatalog means the bucket has no usable catalog (none yet, or a root
// that is not valid): queries fall back to reading the manifests.
var errNoCatalog = errors.New("no usable catalog")

// errSegmentGone means a segment the view's root lists was deleted: a
// compaction replaced the root since. The query starts again on a new
// view.
var errSegmentGone = errors.New("catalog segment replaced by a compaction")

// viewAttempts bounds how often a query starts again on a new view.
const viewAttempts = 5

// catalogView is the catalog as one query sees it.
type catalogView struct {
	root     *catalog.Root
	rootETag string // "" when there is no root
	// dirty are the artifacts the log names, by catalog key, in their
	// manifests' state; dirtyKeys sorted.
	dirty     map[string]*dirtyArtifact
	dirtyKeys []string
}

// dirtyArtifact is an artifact written since the root was built.
type dirtyArtifact struct {
	u   URI
	obj object // the manifest object read (obj.m nil: none)
	// rec is its record now (nil when it does not exist, is a tombstone
	// or is not a valid record: invalid is then set).
	rec     *catalog.Record
	invalid error
	// entries are its log entries.
	entries []backend.ObjectInfo
}

// openView lists the log, then reads the root and the manifests the log
// names. The log is listed first: an entry a compaction deletes meanwhile
// was folded into the root read after. Without a usable root the error
// matches errNoCatalog, and the view holds the log (not its manifests) and
// the ETag of the root object when there is one.
func (s *Store) openView(ctx context.Context) (*catalogView, error) {
	v := &catalogView{dirty: map[string]*dirtyArtifact{}}
	for info, err := range s.b.List(ctx, catalog.LogPrefix) {
		if err != nil {
			return nil, fmt.Errorf("list the catalog's log: %w", err)
		}
		key, _, ok := catalog.ParseEntryKey(info.Key)
		if !ok {
			continue
		}
		d := v.dirty[key]
		if d == nil {
			u, err := parseCatalogKey(key)
			if err != nil {
				continue
			}
			d = &dirtyArtifact{u: u}
			v.dirty[key] = d
			v.dirtyKeys = append(v.dirtyKeys, key)
		}
		d.entries = append(d.entries, info)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(v.dirtyKeys)
	root, etag, err := s.readRoot(ctx)
	v.root, v.rootETag = root, etag
	if errors.Is(err, errNoCatalog) {
		return v, err
	}
	if err != nil {
		return nil, err
	}
	return v, s.readDirty(ctx, v)
}

// readDirty reads the manifests of the artifacts of v's log.
func (s *Store) readDirty(ctx context.Context, v *catalogView) error {
	return s.parallel(ctx, len(v.dirtyKeys), func(ctx context.Context, i int) error {
		d := v.dirty[v.dirtyKeys[i]]
		m, etag, err := s.readManifestObject(ctx, d.u)
		switch {
		case errors.Is(err, ErrIntegrity):
			d.invalid = err
			return nil
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		d.obj = object{m: m, etag: etag}
		d.rec, err = catalogRecord(m)
		return err
	})
}

// parseCatalogKey parses <spec>/<task>/<type>.
func parseCatalogKey(key string) (URI, error) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return URI{}, invalidf("catalog key %q", key)
	}
	u := URI{Spec: parts[0], Task: parts[1], Type: parts[2]}
	for _, p := range []struct{ what, v string }{{"spec", u.Spec}, {"task", u.Task}, {"type", u.Type}} {
		if err := ValidateName(p.what, p.v); err != nil {
			return URI{}, err
		}
	}
	return u, nil
}

// readRoot reads the catalog's root. No root, or one that is not valid
// (logged), matches errNoCatalog; the ETag is that of the object read.
func (s *Store) readRoot(ctx context.Context) (*catalog.Root, string, error) {
	rc, info, err := s.b.Get(ctx, catalog.RootKey)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, "", errNoCatalog
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the catalog's root: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRootBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read the catalog's root: %w", err)
	}
	if len(data) > maxRootBytes {
		err = fmt.Errorf("%w: root is more than %d bytes", catalog.ErrCorrupt, maxRootBytes)
	}
	var root *catalog.Root
	if err == nil {
		root, err = catalog.DecodeRoot(data)
	}
	if err != nil {
		s.catalogDamaged(err.Error())
		return nil, info.ETag, fmt.Errorf("%w: %w", errNoCatalog, err)
	}
	return root, info.ETag, nil
}

// catalogDamaged records that this Store found the catalog damaged: its
// queries read the manifests, and its next compaction rebuilds the
// catalog.
func (s *Store) catalogDamaged(why string) {
	s.log.Warn("store: the catalog is damaged: queries read the manifests until a compaction rebuilds it", "why", why)
	s.compactor.damaged.Store(true)
}

// maxRootBytes bounds the root read.
const maxRootBytes = 256 << 20

// readSegment reads and checks one segment, decoding only the records
// that hold every needle (all without needles). A missing segment matches
// errSegmentGone; a corrupt one catalog.ErrCorrupt (and errNoCatalog).
func (s *Store) readSegment(ctx context.Context, si *catalog.SegmentInfo, needles ...catalog.Needle) ([]catalog.Record, error) {
	return readCatalogObject(ctx, s, si.Key, si.Bytes, func(data []byte) ([]catalog.Record, error) {
		return catalog.DecodeSegmentMatching(data, *si, needles)
	})
}

// readUsage reads and checks the usage object root names (errors as
// readSegment's).
func (s *Store) readUsage(ctx context.Context, root *catalog.Root) (map[catalog.UsageKey]catalog.Totals, error) {
	if root.Usage.Key == "" {
		return catalog.DecodeUsage(nil, root.Usage)
	}
	return readCatalogObject(ctx, s, root.Usage.Key, root.Usage.Bytes, func(data []byte) (map[catalog.UsageKey]catalog.Totals, error) {
		return catalog.DecodeUsage(data, root.Usage)
	})
}

// readCatalogObject reads the immutable catalog object key (size bytes,
// says the root) and decodes it. A missing object matches errSegmentGone;
// one that decode finds corrupt errNoCatalog (and the Store notes the
// catalog damaged).
func readCatalogObject[T any](ctx context.Context, s *Store, key string, size int64, decode func([]byte) (T, error)) (T, error) {
	var zero T
	rc, _, err := s.b.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return zero, fmt.Errorf("%w: %s", errSegmentGone, key)
	}
	if err != nil {
		return zero, fmt.Errorf("read catalog object %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, size+1)); err != nil {
		return zero, fmt.Errorf("read catalog object %s: %w", key, err)
	}
	out, err := decode(buf.Bytes())
	if err != nil {
		s.catalogDamaged(err.Error())
		return zero, fmt.Errorf("%w: %w", errNoCatalog, err)
	}
	return out, nil
}

// item is one artifact a catalog walk yields: its record and, when known,
// its decoded manifest.
type item struct {
	key string
	rec *catalog.Record
	m   *manifest
}

// manifest decodes the item's manifest (once).
func (it *item) manifest() (*manifest, error) {
	if it.m == nil {
		m, err := manifestOf(it.rec)
		if err != nil {
			return nil, err
		}
		it.m = m
	}
	return it.m, nil
}

// walk calls fn for every artifact of v after the key after, in key order,
// whose segment read(si) accepts (read nil accepts all), whose record line
// holds every needle and that keep accepts, until fn returns false.
// Artifacts in the log are taken from their manifests whatever read and
// the needles say. Segments are read a few at a time ahead of fn.
func (s *Store) walk(ctx context.Context, v *catalogView, after string, read func(si *catalog.SegmentInfo) bool, needles []catalog.Needle, keep func(r *catalog.Record) bool, fn func(it *item) (bool, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type rangeItems struct {
		items []item
		err   error
		done  chan struct{}
	}
	n := max(len(v.root.Segments), 1)
	// The ranges to visit: segment i covers keys from its First (or
	// anything, for the first) to the next one's First.
	var todo []int
	for i := range n {
		if i+1 < len(v.root.Segments) && v.root.Segments[i+1].First <= after {
			continue
		}
		todo = append(todo, i)
	}
	load := func(i int) *rangeItems {
		ri := &rangeItems{done: make(chan struct{})}
		go func() {
			defer close(ri.done)
			var items []item
			if i < len(v.root.Segments) {
				si := &v.root.Segments[i]
				if read == nil || read(si) {
					recs, err := s.readSegment(ctx, si, needles...)
					if err != nil {
						ri.err = err
						return
					}
					for j := range recs {
						r := &recs[j]
						k := r.Key()
						if k > after && v.dirty[k] == nil && (keep == nil || keep(r)) {
							items = append(items, item{key: k, rec: r})
						}
					}
				}
			}
			for _, k := range v.dirtyKeys {
				d := v.dirty[k]
				if k <= after || d.rec == nil || v.root.Locate(k) != i && !(i == 0 && len(v.root.Segments) == 0) {
					continue
				}
				if keep == nil || keep(d.rec) {
					items = append(items, item{key: k, rec: d.rec, m: d.obj.live()})
				}
			}
			slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
			ri.items = items
		}()
		return ri
	}
	const ahead = 2 // segments read ahead of fn
	var queue []*rangeItems
	for next := 0; len(queue) > 0 || next < len(todo); {
		for len(queue) < ahead && next < len(todo) {
			queue = append(queue, load(todo[next]))
			next++
		}
		ri := queue[0]
		queue = queue[1:]
		<-ri.done
		if ri.err != nil {
			return ri.err
		}
		for j := range ri.items {
			more, err := fn(&ri.items[j])
			if err != nil || !more {
				return err
			}
		}
	}
	return ctx.Err()
}

// withView runs q on a view of the catalog, again on a new view when a
// compaction replaced a segment under it (up to viewAttempts times). It
// returns errNoCatalog when there is no usable catalog.
//
// A segment missing under a root that did not change since is not a
// compaction's doing: the catalog is not valid (errNoCatalog), and the
// query falls back to the manifests.
func (s *Store) withView(ctx context.Context, q func(v *catalogView) error) error {
	prev := ""
	for attempt := 1; ; attempt++ {
		v, err := s.openView(ctx)
		if err == nil && v.rootETag == prev {
			s.catalogDamaged("a segment the root lists is missing")
			return fmt.Errorf("%w: a segment the root lists is missing", errNoCatalog)
		}
		if err == nil {
			err = q(v)
		}
		if !errors.Is(err, errSegmentGone) || attempt >= viewAttempts {
			return err
		}
		prev = v.rootETag
	}
}

// matchRecord reports whether a catalog record passes the whole filter
// (the same rule as match on its manifest).
func (f Filter) matchRecord(r *catalog.Record) bool {
	if !f.matchURI(URI{Spec: r.Spec, Task: r.Task, Type: r.Type}) {
		return false
	}
	for _, t := range f.Tags {
		if !r.HasTag(t) {
			return false
		}
	}
	return inRange(r.Current, f.CreatedAfter, f.CreatedBefore) && inRange(r.Updated, f.UpdatedAfter, f.UpdatedBefore)
}

// needles are what a matching record's catalog line must contain.
func (f Filter) needles() []catalog.Needle {
	var out []catalog.Needle
	for _, t := range f.Tags {
		out = append(out, catalog.TagNeedle(t))
	}
	if f.Type != "" {
		out = append(out, catalog.TypeNeedle(f.Type))
	}
	return out
}

// maySegment reports whether a segment may hold an artifact that passes
// the filter, by its statistics.
func (f Filter) maySegment(si *catalog.SegmentInfo) bool {
	if f.Type != "" && si.Types[f.Type] == 0 {
		return false
	}
	if !si.MayHaveTags(f.Tags) {
		return false
	}
	return overlaps(si.CurrentMin, si.CurrentMax, f.CreatedAfter, f.CreatedBefore) &&
		overlaps(si.UpdatedMin, si.UpdatedMax, f.UpdatedAfter, f.UpdatedBefore)
}

// inRange reports after <= t < before (zero bounds are open).
func inRange(t, after, before time.Time) bool {
	return (after.IsZero() || !t.Before(after)) && (before.IsZero() || t.Before(before))
}

// overlaps reports whether [lo, hi] meets [after, before).
func overlaps(lo, hi, after, before time.Time) bool {
	return (after.IsZero() || !hi.Before(after)) && (before.IsZero() || lo.Before(before))
}

// usageFromCatalog is the usage by spec and type from the root's totals,
// corrected for the artifacts in the log: their records in the segments
// are subtracted and their manifests added.
func (s *Store) usageFromCatalog(ctx context.Context, v *catalogView) (map[catalog.UsageKey]catalog.Totals, error) {
	usage, err := s.readUsage(ctx, v.root)
	if err != nil {
		return nil, err
	}
	old, err := s.oldRecords(ctx, v)
	if err != nil {
		return nil, err
	}
	for _, k := range v.dirtyKeys {
		catalog.AddUsage(usage, old[k], -1)
		catalog.AddUsage(usage, v.dirty[k].rec, 1)
	}
	return usage, nil
}

// oldRecords returns the records the root's segments hold for the
// artifacts in the log (reading only their segments).
func (s *Store) oldRecords(ctx context.Context, v *catalogView) (map[string]*catalog.Record, error) {
	bySegment := map[int][]string{}
	for _, k := range v.dirtyKeys {
		if i := v.root.Locate(k); i >= 0 {
			bySegment[i] = append(bySegment[i], k)
		}
	}
	segs := make([]int, 0, len(bySegment))
	for i := range bySegment {
		segs = append(segs, i)
	}
	var mu sync.Mutex
	old := map[string]*catalog.Record{}
	err := s.parallel(ctx, len(segs), func(ctx context.Context, j int) error {
		i := segs[j]
		recs, err := s.readSegment(ctx, &v.root.Segments[i])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range bySegment[i] {
			if at, ok := slices.BinarySearchFunc(recs, k, func(r catalog.Record, k string) int { return strings.Compare(r.Key(), k) }); ok {
				old[k] = &recs[at]
			}
		}
		return nil
	})
	return old, err
}
