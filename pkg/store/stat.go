package store

import (
	"context"
	"errors"
)

// Stat returns the metadata of uri: its current version, or the version
// named by ?version=<n>. A missing artifact or version matches ErrNotFound.
func (s *Store) Stat(ctx context.Context, uri string) (md Metadata, err error) {
	ctx, end := s.begin(ctx, "stat", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return Metadata{}, err
	}
	m, _, err := s.readManifest(ctx, u)
	if err != nil {
		return Metadata{}, err
	}
	v := m.find(u.Version)
	if v == nil {
		return Metadata{}, errNotFound(u, nil)
	}
	return metadataOf(m, v), nil
}

// Exists reports whether uri (the artifact, or the version named by
// ?version=<n>) exists.
func (s *Store) Exists(ctx context.Context, uri string) (ok bool, err error) {
	ctx, end := s.begin(ctx, "exists", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return false, err
	}
	m, _, err := s.readManifest(ctx, u)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		return false, nil
	case err != nil:
		return false, err
	}
	return m.find(u.Version) != nil, nil
}

// Versions returns the metadata of every stored version of the artifact uri
// (any ?version=<n> is ignored), oldest first.
func (s *Store) Versions(ctx context.Context, uri string) (mds []Metadata, err error) {
	ctx, end := s.begin(ctx, "versions", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	m, _, err := s.readManifest(ctx, u.Artifact())
	if err != nil {
		return nil, err
	}
	mds = make([]Metadata, len(m.Versions))
	for i := range m.Versions {
		mds[i] = metadataOf(m, &m.Versions[i])
	}
	return mds, nil
}
