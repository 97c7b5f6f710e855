package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Default retention periods, applied by RetentionConfig.WithDefaults.
const (
	DefaultRetentionDiff = 30 * 24 * time.Hour
	DefaultRetentionLog  = 7 * 24 * time.Hour
	DefaultRetentionTest = 14 * 24 * time.Hour
	// RetainForever is a retention period that never runs out. It is the
	// default period of custom types.
	RetainForever time.Duration = 1<<63 - 1
	// DefaultExemptTag marks artifacts that never expire.
	DefaultExemptTag = "retain"
)

// RetentionConfig says how long versions are kept before CleanupExpired
// deletes them. A version expires when it is older than its type's period:
// Config.Now minus its creation time is more than the period. The zero
// value of each field means its default.
type RetentionConfig struct {
	// Periods maps an artifact type to its retention period. Missing (or
	// zero) entries take their default: diff 30 days, log 7 days, test 14
	// days, and Default for custom types. Use RetainForever to keep a type
	// forever. WithDefaults copies the map: the caller's map is never
	// modified.
	Periods map[string]time.Duration
	// Default is the period of custom types (any type without an entry in
	// Periods). Default RetainForever: custom types never expire unless
	// configured, so that no data is deleted by a rule nobody wrote.
	Default time.Duration
	// ExemptTag marks artifacts that never expire, whatever their type and
	// age (tags belong to the artifact, so all its versions are kept).
	// Default "retain".
	ExemptTag string
}

// WithDefaults returns r with every zero field (and every missing or zero
// built-in period) set to its default, on a copy of Periods.
func (r RetentionConfig) WithDefaults() RetentionConfig {
	if r.Default == 0 {
		r.Default = RetainForever
	}
	if r.ExemptTag == "" {
		r.ExemptTag = DefaultExemptTag
	}
	periods := make(map[string]time.Duration, len(r.Periods)+3)
	for typ, p := range r.Periods {
		if p == 0 {
			p = r.Default
		}
		periods[typ] = p
	}
	for typ, p := range map[string]time.Duration{TypeDiff: DefaultRetentionDiff, TypeLog: DefaultRetentionLog, TypeTest: DefaultRetentionTest} {
		if cur, ok := r.Periods[typ]; !ok || cur == 0 {
			periods[typ] = p
		}
	}
	r.Periods = periods
	return r
}

// Validate reports the first invalid field of r, after defaults: a
// negative period, a type that breaks the naming rule, a malformed
// ExemptTag.
func (r RetentionConfig) Validate() error {
	r = r.WithDefaults()
	if r.Default < 0 {
		return fmt.Errorf("Retention.Default %v is negative", r.Default)
	}
	for _, typ := range slices.Sorted(maps.Keys(r.Periods)) {
		if err := ValidateName("type", typ); err != nil {
			return fmt.Errorf("Retention.Periods: %w", err)
		}
		if p := r.Periods[typ]; p < 0 {
			return fmt.Errorf("Retention.Periods[%q] %v is negative", typ, p)
		}
	}
	if err := ValidateTag(r.ExemptTag); err != nil {
		return fmt.Errorf("Retention.ExemptTag: %w", err)
	}
	return nil
}

// Period returns the retention period of artifact type typ (r with
// defaults applied).
func (r RetentionConfig) Period(typ string) time.Duration {
	if p, ok := r.Periods[typ]; ok && p != 0 {
		return p
	}
	switch typ {
	case TypeDiff:
		return DefaultRetentionDiff
	case TypeLog:
		return DefaultRetentionLog
	case TypeTest:
		return DefaultRetentionTest
	}
	if r.Default == 0 {
		return RetainForever
	}
	return r.Default
}

// exempt reports whether m carries the exempt tag.
func (r RetentionConfig) exempt(m *manifest) bool {
	tag := r.ExemptTag
	if tag == "" {
		tag = DefaultExemptTag
	}
	_, found := slices.BinarySearch(m.Tags, tag)
	return found
}

// expiredVersions returns the versions of m that are expired at now (none
// when m is exempt), oldest first. It is the single retention rule: Expired
// and CleanupExpired (before and again inside the mutation) use it.
func (r RetentionConfig) expiredVersions(m *manifest, now time.Time) []version {
	if m == nil {
		return nil
	}
	var out []version
	for i := range m.Versions {
		if at := r.expiresAt(m, &m.Versions[i]); !at.IsZero() && now.After(at) {
			out = append(out, m.Versions[i])
		}
	}
	return out
}

// scope is the part of a Filter the administrative operations apply:
// spec, task and type on the URI, tags on the artifact, and the created
// range on each version (not only the current one, as in Search).
type scope struct{ f Filter }

func (sc scope) artifact(m *manifest) bool {
	if !sc.f.matchURI(m.artifactURI()) {
		return false
	}
	for _, t := range sc.f.Tags {
		if _, ok := slices.BinarySearch(m.Tags, t); !ok {
			return false
		}
	}
	return true
}

func (sc scope) version(v *version) bool {
	if !sc.f.CreatedAfter.IsZero() && v.Created.Before(sc.f.CreatedAfter) {
		return false
	}
	if !sc.f.CreatedBefore.IsZero() && !v.Created.Before(sc.f.CreatedBefore) {
		return false
	}
	return true
}

// expiredIn returns the expired versions of m within the scope.
func (s *Store) expiredIn(sc scope, m *manifest, now time.Time) []version {
	if m == nil || !sc.artifact(m) {
		return nil
	}
	vs := s.cfg.Retention.expiredVersions(m, now)
	return slices.DeleteFunc(vs, func(v version) bool { return !sc.version(&v) })
}

// Expired returns the metadata of every version that is expired now
// (Config.Now) under Config.Retention, among the artifacts that match f:
// Spec, Task, Type and Tags select artifacts, CreatedAfter and
// CreatedBefore bound each version's creation time. The result is sorted
// by URI, versions oldest first. It changes nothing; CleanupExpired
// deletes what it lists.
func (s *Store) Expired(ctx context.Context, f Filter) (mds []Metadata, err error) {
	ctx, end := s.begin(ctx, "expired", "")
	defer func() { end(err) }()
	if err := f.validate(); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	mds = []Metadata{}
	err = s.forEachExpired(ctx, f, s.cfg.Now(), func(ctx context.Context, m *manifest, vs []version) error {
		mu.Lock()
		defer mu.Unlock()
		for i := range vs {
			mds = append(mds, metadataOf(m, &vs[i]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortMetadata(mds)
	return mds, nil
}

// sortMetadata sorts by artifact URI, then version.
func sortMetadata(mds []Metadata) { slices.SortFunc(mds, compareMetadata) }

// compareMetadata orders by artifact URI, then version.
func compareMetadata(a, b Metadata) int {
	ua, _, _ := strings.Cut(a.URI, "?")
	ub, _, _ := strings.Cut(b.URI, "?")
	if c := strings.Compare(ua, ub); c != 0 {
		return c
	}
	return a.Version - b.Version
}

// CleanupOptions are the parameters of CleanupExpired.
type CleanupOptions struct {
	// DryRun reports (and logs) what would be deleted and changes nothing.
	DryRun bool
	// Filter restricts the cleanup as for Expired. Default: every artifact.
	Filter Filter
}

// CleanupReport is what CleanupExpired deleted (or, with DryRun, would
// delete).
type CleanupReport struct {
	DryRun bool
	// Artifacts counts the artifacts removed whole (all their versions
	// expired).
	Artifacts int
	// Versions counts the versions deleted, those of removed artifacts
	// included.
	Versions int
	// Bytes and StoredBytes sum the original and stored sizes of the
	// deleted versions.
	Bytes       int64
	StoredBytes int64
	// Deleted describes every deleted version, sorted by URI.
	Deleted []Metadata
	// Failed counts the artifacts whose cleanup failed (each failure is
	// logged and joined into the returned error).
	Failed int
}

// CleanupExpired deletes every version that Expired lists: a versioned
// artifact loses its expired versions one by one, and an artifact whose
// versions are all expired is deleted whole (manifest and blobs). Each
// artifact is changed under its lock by the write protocol, and the
// expiry is decided again on the manifest read under the lock, so a
// version uploaded while the cleanup runs is never deleted. Each deleted
// version is logged at Info (uri, version, bytes, stored_bytes, dry_run),
// then a summary.
//
// With opts.DryRun nothing changes; the report and the logs say what
// would be deleted. A failure on one artifact does not stop the others: the
// report covers what was done, and the error (matching the failures'
// sentinels) joins the failures. A cancelled context stops the cleanup.
func (s *Store) CleanupExpired(ctx context.Context, opts CleanupOptions) (rep CleanupReport, err error) {
	ctx, end := s.begin(ctx, "cleanup-expired", "")
	defer func() { end(err) }()
	if err := opts.Filter.validate(); err != nil {
		return CleanupReport{}, err
	}
	now := s.cfg.Now()
	sc := scope{opts.Filter}
	rep = CleanupReport{DryRun: opts.DryRun, Deleted: []Metadata{}}
	var (
		mu   sync.Mutex
		errs []error
	)
	note := func(m *manifest, vs []version, whole bool) {
		mu.Lock()
		defer mu.Unlock()
		if whole {
			rep.Artifacts++
		}
		for i := range vs {
			md := metadataOf(m, &vs[i])
			rep.Versions++
			rep.Bytes += md.Size
			rep.StoredBytes += md.StoredSize
			rep.Deleted = append(rep.Deleted, md)
			s.log.Info("store: cleanup deleted expired version", "uri", md.URI, "version", md.Version,
				"bytes", md.Size, "stored_bytes", md.StoredSize, "created", md.CreatedAt, "whole_artifact", whole, "dry_run", opts.DryRun)
		}
	}
	err = s.forEachExpired(ctx, opts.Filter, now, func(ctx context.Context, m *manifest, vs []version) error {
		if opts.DryRun {
			note(m, vs, len(vs) == len(m.Versions))
			return nil
		}
		m, removed, whole, err := s.cleanupArtifact(ctx, m.artifactURI(), sc, now)
		switch {
		case err == nil:
			note(m, removed, whole)
		case isContextErr(err) && ctx.Err() != nil:
			return err
		default:
			mu.Lock()
			rep.Failed++
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	sortMetadata(rep.Deleted)
	s.log.Info("store: cleanup of expired artifacts done", "dry_run", opts.DryRun, "artifacts", rep.Artifacts,
		"versions", rep.Versions, "bytes", rep.Bytes, "stored_bytes", rep.StoredBytes, "failed", rep.Failed)
	if err != nil {
		return rep, fmt.Errorf("cleanup: %w", err)
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("cleanup: %d artifacts failed: %w", len(errs), errors.Join(errs...))
	}
	return rep, nil
}

// cleanupArtifact deletes the expired versions of u under the write
// protocol, deciding again on the manifest read under the lock. It returns
// the manifest the versions were removed from, the removed versions, and
// whether the artifact was removed whole.
func (s *Store) cleanupArtifact(ctx context.Context, u URI, sc scope, now time.Time) (*manifest, []version, bool, error) {
	var (
		from    *manifest
		removed []version
		whole   bool
	)
	_, err := s.mutate(ctx, u, nil, func(cur *manifest, _ commitInfo) (change, error) {
		// Called again on an optimistic retry: start over each time.
		from, removed, whole = cur, s.expiredIn(sc, cur, now), false
		if len(removed) == 0 {
			return change{noop: true}, nil
		}
		if len(removed) == len(cur.Versions) {
			whole = true
			return change{remove: true}, nil
		}
		next := cur.clone()
		garbage := make([]string, 0, len(removed))
		for _, v := range removed {
			garbage = append(garbage, v.Blob)
			i := slices.IndexFunc(next.Versions, func(w version) bool { return w.Version == v.Version })
			next.Versions = slices.Delete(next.Versions, i, i+1)
		}
		return change{next: next, garbage: garbage}, nil
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("cleanup %s: %w", u, err)
	}
	return from, removed, whole, nil
}

// envRetentionPeriods parses ARTIFACTSTORE_RETENTION_PERIODS:
// "type=duration" pairs separated by commas ("log=168h,diff=720h").
func envRetentionPeriods(c *Config, v string) error {
	periods := map[string]time.Duration{}
	for pair := range strings.SplitSeq(v, ",") {
		typ, d, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return fmt.Errorf("%q is not type=duration", pair)
		}
		p, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		periods[strings.TrimSpace(typ)] = p
	}
	c.Retention.Periods = periods
	return nil
}
