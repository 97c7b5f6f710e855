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
	created := m.current().Created
	if !f.CreatedAfter.IsZero() && created.Before(f.CreatedAfter) {
		return false
	}
	if !f.CreatedBefore.IsZero() && !created.Before(f.CreatedBefore) {
		return false
	}
	return true
}

// Search returns the metadata of the current version of every artifact that
// matches f, sorted by URI. It lists only the narrowest manifest prefix the
// filter allows (spec, spec and task, or one manifest when spec, task and
// type are all set) and reads manifests Config.ListConcurrency at a time.
// Manifests that are not valid records are skipped (and logged); VerifyAll
// reports them.
func (s *Store) Search(ctx context.Context, f Filter) (mds []Metadata, err error) {
	defer func() { s.logResult(ctx, "search", "", err) }()
	if err := f.validate(); err != nil {
		return nil, err
	}
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
	return s.collect(ctx, manifestPrefix(f.Spec, f.Task), f)
}

// ListTask returns the metadata of the current version of every artifact of
// the task, sorted by URI.
func (s *Store) ListTask(ctx context.Context, spec, task string) (mds []Metadata, err error) {
	defer func() { s.logResult(ctx, "list-task", spec+"/"+task, err) }()
	if err := ValidateName("spec", spec); err != nil {
		return nil, err
	}
	if err := ValidateName("task", task); err != nil {
		return nil, err
	}
	return s.collect(ctx, manifestPrefix(spec, task), Filter{Spec: spec, Task: task})
}

// ListSpec returns the metadata of the current version of every artifact of
// the spec, sorted by URI.
func (s *Store) ListSpec(ctx context.Context, spec string) (mds []Metadata, err error) {
	defer func() { s.logResult(ctx, "list-spec", spec, err) }()
	if err := ValidateName("spec", spec); err != nil {
		return nil, err
	}
	return s.collect(ctx, manifestPrefix(spec, ""), Filter{Spec: spec})
}

// collect reads the manifests under prefix that match f and returns the
// current versions' metadata sorted by URI.
func (s *Store) collect(ctx context.Context, prefix string, f Filter) ([]Metadata, error) {
	var (
		mu  sync.Mutex
		out = []Metadata{}
	)
	err := s.forEachManifest(ctx, prefix, f.matchURI, func(ctx context.Context, r record) error {
		if r.err != nil {
			s.log.Warn("store: skipping invalid manifest", "uri", r.uri.String(), "err", r.err)
			return nil
		}
		if !f.match(r.m) {
			return nil
		}
		md := metadataOf(r.m, r.m.current())
		mu.Lock()
		out = append(out, md)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Metadata) int { return strings.Compare(a.URI, b.URI) })
	return out, nil
}
