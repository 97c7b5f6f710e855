package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/necrocode/artifactstore/pkg/catalog"
)

// UsageTotals counts artifacts, versions and bytes: Bytes is the original
// (logical) size of the content, as uploaded and downloaded; StoredBytes
// what the blobs occupy in the backend (smaller than Bytes when
// compressed), which the quota counts. The catalog keeps the same totals.
type UsageTotals = catalog.Totals

// totalsOf counts one manifest (nil counts nothing).
func totalsOf(m *manifest) UsageTotals {
	if m == nil {
		return UsageTotals{}
	}
	t := UsageTotals{Artifacts: 1, Versions: int64(len(m.Versions))}
	for _, v := range m.Versions {
		t.Bytes += v.Size
		t.StoredBytes += v.StoredSize
	}
	return t
}

// UsageReport is the store's usage: in total, by spec name and by
// artifact type. Every version counts, not only the current ones.
type UsageReport struct {
	Total  UsageTotals
	BySpec map[string]UsageTotals
	ByType map[string]UsageTotals
	// BySpecType is by spec, then by type.
	BySpecType map[string]map[string]UsageTotals
}

func (r *UsageReport) add(m *manifest) { r.addTotals(m.Spec, m.Type, totalsOf(m)) }

func (r *UsageReport) addTotals(spec, typ string, t UsageTotals) {
	r.Total = r.Total.Plus(t)
	r.BySpec[spec] = r.BySpec[spec].Plus(t)
	r.ByType[typ] = r.ByType[typ].Plus(t)
	if r.BySpecType[spec] == nil {
		r.BySpecType[spec] = map[string]UsageTotals{}
	}
	r.BySpecType[spec][typ] = r.BySpecType[spec][typ].Plus(t)
}

func newUsageReport() UsageReport {
	return UsageReport{BySpec: map[string]UsageTotals{}, ByType: map[string]UsageTotals{}, BySpecType: map[string]map[string]UsageTotals{}}
}

// Usage reports the exact usage of the store, in total, by spec, by type
// and by spec and type. It reads the catalog's root, the manifests of the
// artifacts written since the last compaction and the segments that held
// them (see "Catalog" in the package documentation), so its cost does not
// grow with the store; without a usable catalog it reads every manifest
// (Config.ListConcurrency at a time). It is not a snapshot: artifacts
// changed while it runs count as they were when read. Blobs no manifest
// references (see Reconcile) are not counted. The quota check of uploads
// does not call it; it keeps a counter (see QuotaConfig).
func (s *Store) Usage(ctx context.Context) (rep UsageReport, err error) {
	ctx, end := s.begin(ctx, "usage", "")
	defer func() { end(err) }()
	return s.usage(ctx)
}

// usage is Usage from the catalog, or from a walk without one.
func (s *Store) usage(ctx context.Context) (UsageReport, error) {
	rep, err := s.usageFromView(ctx)
	if errors.Is(err, errNoCatalog) {
		return s.walkUsage(ctx)
	}
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage: %w", err)
	}
	return rep, nil
}

func (s *Store) walkUsage(ctx context.Context) (UsageReport, error) {
	rep := newUsageReport()
	var mu sync.Mutex
	err := s.forEachManifest(ctx, manifestRoot, nil, func(ctx context.Context, r record) error {
		if r.err != nil {
			s.log.Warn("store: usage skips invalid manifest", "uri", r.uri.String(), "err", r.err)
			return nil
		}
		mu.Lock()
		rep.add(r.m)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage: %w", err)
	}
	return rep, nil
}

// RecountUsage computes the exact usage like Usage (from the catalog) and
// resets the usage counter the quota check reads (see QuotaConfig) to it.
// Run it after a crash left the counter behind, after enabling the quota
// on a bucket that other stores wrote without one, or periodically. Writes
// that land while it runs may be counted twice or not at all; run it when
// the store is quiet for an exact counter.
func (s *Store) RecountUsage(ctx context.Context) (rep UsageReport, err error) {
	ctx, end := s.begin(ctx, "recount-usage", "")
	defer func() { end(err) }()
	rep, err = s.usage(ctx)
	if err != nil {
		return UsageReport{}, err
	}
	if err := s.resetUsageCounter(ctx, rep.Total, false); err != nil {
		return rep, err
	}
	s.log.Info("store: usage counter reset", "artifacts", rep.Total.Artifacts, "versions", rep.Total.Versions,
		"bytes", rep.Total.Bytes, "stored_bytes", rep.Total.StoredBytes)
	return rep, nil
}
