package store

import (
	"context"
	"fmt"
	"sync"
)

// UsageTotals counts artifacts, versions and bytes.
type UsageTotals struct {
	Artifacts int64 `json:"artifacts"`
	Versions  int64 `json:"versions"`
	// Bytes is the original (logical) size of the content, as uploaded and
	// downloaded.
	Bytes int64 `json:"bytes"`
	// StoredBytes is what the blobs occupy in the backend (smaller than
	// Bytes when compressed). The quota counts StoredBytes.
	StoredBytes int64 `json:"stored_bytes"`
}

func (t UsageTotals) plus(o UsageTotals) UsageTotals {
	return UsageTotals{t.Artifacts + o.Artifacts, t.Versions + o.Versions, t.Bytes + o.Bytes, t.StoredBytes + o.StoredBytes}
}

func (t UsageTotals) minus(o UsageTotals) UsageTotals {
	return UsageTotals{t.Artifacts - o.Artifacts, t.Versions - o.Versions, t.Bytes - o.Bytes, t.StoredBytes - o.StoredBytes}
}

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
}

func (r *UsageReport) add(m *manifest) {
	t := totalsOf(m)
	r.Total = r.Total.plus(t)
	r.BySpec[m.Spec] = r.BySpec[m.Spec].plus(t)
	r.ByType[m.Type] = r.ByType[m.Type].plus(t)
}

func newUsageReport() UsageReport {
	return UsageReport{BySpec: map[string]UsageTotals{}, ByType: map[string]UsageTotals{}}
}

// Usage computes the exact usage of the store by reading every manifest
// (Config.ListConcurrency at a time): a full walk, meant for operators and
// reports. It is not a snapshot: artifacts changed during the walk count as
// they were when read. Blobs no manifest references (see Reconcile) are not
// counted. The quota check of uploads does not call it; it keeps a counter
// (see QuotaConfig).
func (s *Store) Usage(ctx context.Context) (rep UsageReport, err error) {
	defer func() { s.logResult(ctx, "usage", "", err) }()
	return s.walkUsage(ctx)
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

// RecountUsage computes the exact usage like Usage and resets the usage
// counter the quota check reads (see QuotaConfig) to it. Run it after a
// crash left the counter behind, after enabling the quota on a bucket that
// other stores wrote without one, or periodically. Writes that land during
// the walk may be counted twice or not at all; run it when the store is
// quiet for an exact counter.
func (s *Store) RecountUsage(ctx context.Context) (rep UsageReport, err error) {
	defer func() { s.logResult(ctx, "recount-usage", "", err) }()
	rep, err = s.walkUsage(ctx)
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
