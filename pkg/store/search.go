package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// Filter selects artifacts for Search. Zero fields match everything; the
// set fields must all match.
type Filter struct {
	// Spec, Task and Type match the URI's parts exactly.
	Spec string
	Task string
	Type string
	// Tags: the artifact has all of them.
	Tags []string
	// CreatedAfter and CreatedBefore bound the creation time of the
	// artifact's current version: CreatedAfter <= CreatedAt < CreatedBefore.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// UpdatedAfter and UpdatedBefore bound when the artifact's record was
	// last changed (Metadata.UpdatedAt) the same way. Search only: the
	// retention operations ignore them.
	UpdatedAfter  time.Time
	UpdatedBefore time.Time
}

// validate checks the filter's names and tags.
func (f Filter) validate() error {
	for _, p := range []struct{ what, v string }{{"spec", f.Spec}, {"task", f.Task}, {"type", f.Type}} {
		if p.v != "" {
			if err := ValidateName(p.what, p.v); err != nil {
				return err
			}
		}
	}
	for _, t := range f.Tags {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

// matchURI reports whether u passes the name parts of the filter.
func (f Filter) matchURI(u URI) bool {
	return (f.Spec == "" || u.Spec == f.Spec) && (f.Task == "" || u.Task == f.Task) && (f.Type == "" || u.Type == f.Type)
}

// match reports whether the current version of m passes the whole filter.
func (f Filter) match(m *manifest) bool {
	if !f.matchURI(m.artifactURI()) {
		return false
	}
	for _, t := range f.Tags {
		if _, ok := slices.BinarySearch(m.Tags, t); !ok {
			return false
		}
	}
	return inRange(m.current().Created, f.CreatedAfter, f.CreatedBefore) && inRange(m.Updated, f.UpdatedAfter, f.UpdatedBefore)
}

// Search returns the metadata of the current version of every artifact that
// matches f, sorted by URI: all of SearchSeq's results. Use SearchSeq or
// SearchPage for result sets of unknown size.
func (s *Store) Search(ctx context.Context, f Filter) (mds []Metadata, err error) {
	mds = []Metadata{}
	for md, err := range s.SearchSeq(ctx, f, Page{}) {
		if err != nil {
			return nil, err
		}
		mds = append(mds, md)
	}
	return mds, nil
}

// searchManifests answers a search by reading manifests: with a spec in
// the filter (and always without a usable catalog). It lists only the
// narrowest manifest prefix the filter allows (spec, spec and task, or one
// manifest when spec, task and type are all set), or with tags the tag
// index, and reads manifests Config.ListConcurrency at a time. Manifests
// that are not valid records are skipped (and logged); VerifyAll reports
// them.
func (s *Store) searchManifests(ctx context.Context, f Filter) ([]Metadata, error) {
	if f.Spec != "" && f.Task != "" && f.Type != "" {
		u := URI{Spec: f.Spec, Task: f.Task, Type: f.Type}
		m, _, err := s.readManifest(ctx, u)
		switch {
		case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
			return []Metadata{}, nil
		case err != nil:
			return nil, err
		case !f.match(m):
			return []Metadata{}, nil
		}
		return []Metadata{metadataOf(m, m.current())}, nil
	}
	if len(f.Tags) > 0 {
		return s.searchByTags(ctx, f) // index.go
	}
	return s.collect(ctx, manifestPrefix(f.Spec, f.Task), f, nil)
}

// ListTask returns the metadata of the current version of every artifact of
// the task, sorted by URI.
func (s *Store) ListTask(ctx context.Context, spec, task string) (mds []Metadata, err error) {
	ctx, end := s.begin(ctx, "list-task", spec+"/"+task)
	defer func() { end(err) }()
	if err := ValidateName("spec", spec); err != nil {
		return nil, err
	}
	if err := ValidateName("task", task); err != nil {
		return nil, err
	}
	return s.collect(ctx, manifestPrefix(spec, task), Filter{Spec: spec, Task: task}, nil)
}

// ListSpec returns the metadata of the current version of every artifact of
// the spec, sorted by URI.
func (s *Store) ListSpec(ctx context.Context, spec string) (mds []Metadata, err error) {
	ctx, end := s.begin(ctx, "list-spec", spec)
	defer func() { end(err) }()
	if err := ValidateName("spec", spec); err != nil {
		return nil, err
	}
	return s.collect(ctx, manifestPrefix(spec, ""), Filter{Spec: spec}, nil)
}

// collect reads the manifests under prefix that match f (and pass keep,
// when not nil) and returns the current versions' metadata sorted by URI.
func (s *Store) collect(ctx context.Context, prefix string, f Filter, keep func(URI) bool) ([]Metadata, error) {
	var results searchResults
	err := s.forEachManifest(ctx, prefix, func(u URI) bool {
		return f.matchURI(u) && (keep == nil || keep(u))
	}, func(ctx context.Context, r record) error {
		results.add(s, f, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results.sorted(), nil
}

// collectURIs reads the manifests of uris, Config.ListConcurrency at a time,
// and returns the current versions' metadata of those that match f, sorted
// by URI. An artifact that does not exist is skipped.
func (s *Store) collectURIs(ctx context.Context, uris []URI, f Filter) ([]Metadata, error) {
	var results searchResults
	err := s.parallel(ctx, len(uris), func(ctx context.Context, i int) error {
		u := uris[i]
		m, etag, err := s.readManifest(ctx, u)
		switch {
		case errors.Is(err, ErrIntegrity):
			results.add(s, f, record{uri: u, err: err})
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			results.add(s, f, record{uri: u, m: m, etag: etag})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results.sorted(), nil
}

// searchResults gathers the matches of a search from concurrent readers.
type searchResults struct {
	mu  sync.Mutex
	out []Metadata
}

// add keeps r when it matches f; an invalid manifest is skipped (logged).
func (rs *searchResults) add(s *Store, f Filter, r record) {
	if r.err != nil {
		s.log.Warn("store: skipping invalid manifest", "uri", r.uri.String(), "err", r.err)
		return
	}
	if !f.match(r.m) {
		return
	}
	md := metadataOf(r.m, r.m.current())
	rs.mu.Lock()
	rs.out = append(rs.out, md)
	rs.mu.Unlock()
}

// sorted returns the matches sorted by URI (never nil).
func (rs *searchResults) sorted() []Metadata {
	out := rs.out
	if out == nil {
		out = []Metadata{}
	}
	slices.SortFunc(out, func(a, b Metadata) int { return strings.Compare(a.URI, b.URI) })
	return out
}
