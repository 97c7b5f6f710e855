package store

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Expiry is when one version of an artifact expires under
// Config.Retention.
type Expiry struct {
	// Version describes the version.
	Version Metadata `json:"version"`
	// ExpiresAt is when the version expires: its creation time plus its
	// type's retention period. The version is expired (Expired lists it,
	// CleanupExpired deletes it) once Config.Now is past ExpiresAt. Zero
	// when it never expires (a type retained forever, or an artifact with
	// RetentionConfig.ExemptTag).
	ExpiresAt time.Time `json:"expires_at"`
}

// expiresAt is when v of m expires under r, zero for never.
func (r RetentionConfig) expiresAt(m *manifest, v *version) time.Time {
	period := r.Period(m.Type)
	if period == RetainForever || r.exempt(m) {
		return time.Time{}
	}
	return v.Created.Add(period)
}

// ExpiresAt reports when the artifact uri expires under Config.Retention:
// the version the URI names (?version=<n>), or the current version. A
// missing artifact or version matches ErrNotFound.
//
// The result is the version's Expiry: zero ExpiresAt when it never
// expires. It is a reading of the manifest now: adding or removing the
// exempt tag later changes the answer.
func (s *Store) ExpiresAt(ctx context.Context, uri string) (e Expiry, err error) {
	ctx, end := s.begin(ctx, "expires-at", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return Expiry{}, err
	}
	m, _, err := s.readManifest(ctx, u)
	if err != nil {
		return Expiry{}, err
	}
	v := m.find(u.Version)
	if v == nil {
		return Expiry{}, errNotFound(u, nil)
	}
	return Expiry{Version: metadataOf(m, v), ExpiresAt: s.cfg.Retention.expiresAt(m, v)}, nil
}

// ExpiringWithin returns the versions that will be expired window from now
// (Config.Now) under Config.Retention, among the artifacts that match f
// (as for Expired): the versions that are expired already, and those whose
// ExpiresAt comes before now + window. So ExpiringWithin(ctx, 0, f) lists
// what Expired(ctx, f) lists, and the result is what a CleanupExpired run
// window from now would delete if nothing changed meanwhile. Sorted by URI,
// versions oldest first. window must not be negative.
func (s *Store) ExpiringWithin(ctx context.Context, window time.Duration, f Filter) (es []Expiry, err error) {
	ctx, end := s.begin(ctx, "expiring-within", "")
	defer func() { end(err) }()
	if window < 0 {
		return nil, invalidf("expiring within %v: negative window", window)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	at := s.cfg.Now().Add(window)
	sc := scope{f}
	var mu sync.Mutex
	es = []Expiry{}
	err = s.forEachManifest(ctx, manifestPrefix(f.Spec, f.Task), f.matchURI, func(ctx context.Context, r record) error {
		if r.err != nil {
			s.log.Warn("store: skipping invalid manifest", "uri", r.uri.String(), "err", r.err)
			return nil
		}
		vs := s.expiredIn(sc, r.m, at) // the single retention rule, at now + window
		mu.Lock()
		defer mu.Unlock()
		for i := range vs {
			es = append(es, Expiry{Version: metadataOf(r.m, &vs[i]), ExpiresAt: s.cfg.Retention.expiresAt(r.m, &vs[i])})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(es, func(a, b Expiry) int { return compareMetadata(a.Version, b.Version) })
	return es, nil
}
