package store

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/necrocode/artifactstore/pkg/catalog"
)

// This file answers Search, Usage and the retention plan from the catalog
// (catalogview.go), falling back to reading the manifests when the bucket
// has no usable catalog.

// Page selects one page of search results.
type Page struct {
	// Limit is the most results the page holds; 0 means no limit.
	Limit int
	// After is the cursor: the URI of the last result of the previous
	// page (with or without ?version). Results start after it.
	After string
}

// SearchSeq yields the metadata of the current version of every artifact
// that matches f, in URI order, from after p.After, at most p.Limit of
// them. Without a spec in the filter it reads the catalog (see "Catalog"
// in the package documentation): the root, the segments that may hold a
// match, and the manifests of the artifacts written since the last
// compaction, so a page costs about the same at any store size. The
// iteration stops at the first error, which it yields (with a zero
// Metadata); a filter or cursor that is not valid yields
// ErrInvalidArgument.
func (s *Store) SearchSeq(ctx context.Context, f Filter, p Page) iter.Seq2[Metadata, error] {
	return func(yield func(Metadata, error) bool) {
		ctx, end := s.begin(ctx, "search", "")
		err := s.search(ctx, f, p, func(md Metadata) bool { return yield(md, nil) })
		end(err)
		if err != nil {
			yield(Metadata{}, err)
		}
	}
}

// SearchPage returns one page of SearchSeq's results and the cursor of
// the next page: "" when there are no more results.
func (s *Store) SearchPage(ctx context.Context, f Filter, p Page) (mds []Metadata, next string, err error) {
	if p.Limit < 0 {
		return nil, "", invalidf("search: negative page limit %d", p.Limit)
	}
	want := p.Limit
	if want > 0 {
		p.Limit++ // one more, to learn whether there is a next page
	}
	mds = []Metadata{}
	for md, err := range s.SearchSeq(ctx, f, p) {
		if err != nil {
			return nil, "", err
		}
		mds = append(mds, md)
	}
	if want > 0 && len(mds) > want {
		mds = mds[:want]
		next = artifactOf(mds[want-1].URI)
	}
	return mds, next, nil
}

// artifactOf is a version URI without its ?version.
func artifactOf(uri string) string {
	u, _, _ := strings.Cut(uri, "?")
	return u
}

// search calls yield for each result of SearchSeq until it returns false.
func (s *Store) search(ctx context.Context, f Filter, p Page, yield func(Metadata) bool) error {
	if err := f.validate(); err != nil {
		return err
	}
	if p.Limit < 0 {
		return invalidf("search: negative page limit %d", p.Limit)
	}
	after := ""
	if p.After != "" {
		u, err := ParseURI(p.After)
		if err != nil {
			return invalidf("search: the cursor %q is not an artifact URI: %v", p.After, err)
		}
		after = catalogKey(u)
	}
	n := 0
	emit := func(md Metadata) bool {
		n++
		return yield(md) && (p.Limit == 0 || n < p.Limit)
	}
	if f.Spec == "" {
		err := s.withView(ctx, func(v *catalogView) error {
			return s.walk(ctx, v, after, f.maySegment, f.needles(), f.matchRecord, func(it *item) (bool, error) {
				m, err := it.manifest()
				if err != nil {
					return false, err
				}
				after = it.key
				return emit(metadataOf(m, m.current())), nil
			})
		})
		if !errors.Is(err, errNoCatalog) {
			return err
		}
	}
	// With a spec, its manifests are listed (the narrowest prefix); without
	// a usable catalog, every manifest is.
	mds, err := s.searchManifests(ctx, f)
	if err != nil {
		return err
	}
	for _, md := range mds {
		if catalog.ArtifactKey(md.SpecName, md.TaskID, md.Type) > after && !emit(md) {
			break
		}
	}
	return nil
}

// usageReport builds a UsageReport from the totals by spec and type.
func usageReport(usage map[catalog.UsageKey]catalog.Totals) UsageReport {
	rep := newUsageReport()
	for k, t := range usage {
		if t == (UsageTotals{}) {
			continue
		}
		rep.addTotals(k.Spec, k.Type, t)
	}
	return rep
}

// usageFromView is Usage from the catalog (errNoCatalog without one).
func (s *Store) usageFromView(ctx context.Context) (UsageReport, error) {
	var rep UsageReport
	err := s.withView(ctx, func(v *catalogView) error {
		usage, err := s.usageFromCatalog(ctx, v)
		rep = usageReport(usage)
		return err
	})
	return rep, err
}

// forEachExpired calls fn with every artifact matching f that has versions
// expired at now (within the scope of f), from up to
// Config.ListConcurrency goroutines. It reads the catalog's segments that
// may hold an expired version, and the manifests of the artifacts written
// since the last compaction; with a spec in the filter, or without a usable
// catalog, every manifest under the filter's prefix. fn gets the manifest as read and its expired
// versions.
func (s *Store) forEachExpired(ctx context.Context, f Filter, now time.Time, fn func(ctx context.Context, m *manifest, vs []version) error) error {
	sc := scope{f}
	after := ""
	err := errNoCatalog // with a spec, its manifests are listed (the narrowest prefix)
	if f.Spec == "" {
		err = s.withView(ctx, func(v *catalogView) error {
			exempt := v.root.ExemptTag == s.exemptTag()
			var batch []*manifest
			flush := func() error {
				b := batch
				batch = nil
				return s.parallel(ctx, len(b), func(ctx context.Context, i int) error {
					return fn(ctx, b[i], s.expiredIn(sc, b[i], now))
				})
			}
			mayExpire := func(si *catalog.SegmentInfo) bool {
				if !si.MayHaveTags(f.Tags) {
					return false
				}
				for typ := range si.Types {
					if f.Type != "" && typ != f.Type {
						continue
					}
					period := s.cfg.Retention.Period(typ)
					if period == RetainForever {
						continue
					}
					oldest, ok := si.Oldest[typ]
					if !exempt || ok && now.After(oldest.Add(period)) {
						return true
					}
				}
				return false
			}
			recMayExpire := func(r *catalog.Record) bool {
				period := s.cfg.Retention.Period(r.Type)
				return f.matchURI(URI{Spec: r.Spec, Task: r.Task, Type: r.Type}) && period != RetainForever &&
					slices.ContainsFunc(r.Versions, func(v catalog.Version) bool { return now.After(v.Created.Add(period)) })
			}
			err := s.walk(ctx, v, after, mayExpire, f.needles(), recMayExpire, func(it *item) (bool, error) {
				after = it.key // a walk started again on a new view resumes here
				m, err := it.manifest()
				if err != nil {
					s.log.Warn("store: skipping invalid catalog record", "key", it.key, "err", err)
					return true, nil
				}
				if len(s.expiredIn(sc, m, now)) > 0 {
					batch = append(batch, m)
				}
				if len(batch) >= 4*s.cfg.ListConcurrency {
					return true, flush()
				}
				return true, nil
			})
			if ferr := flush(); err == nil {
				err = ferr
			}
			return err
		})
	}
	if !errors.Is(err, errNoCatalog) {
		return err
	}
	return s.forEachManifest(ctx, manifestPrefix(f.Spec, f.Task), f.matchURI, func(ctx context.Context, r record) error {
		if r.err != nil {
			s.log.Warn("store: skipping invalid manifest", "uri", r.uri.String(), "err", r.err)
			return nil
		}
		if vs := s.expiredIn(sc, r.m, now); len(vs) > 0 {
			return fn(ctx, r.m, vs)
		}
		return nil
	})
}
