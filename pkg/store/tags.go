package store

import (
	"context"
	"slices"
)

// AddTags adds tags to the artifact uri and returns its current metadata.
func (s *Store) AddTags(ctx context.Context, uri string, tags ...string) (md Metadata, err error) {
	ctx, end := s.begin(ctx, "add-tags", uri)
	defer func() { end(err) }()
	return s.changeTags(ctx, uri, tags, func(cur, tags []string) []string { return mergeTags(cur, tags) })
}

// SetTags replaces the tags of the artifact uri (none removes them all) and
// returns its current metadata.
func (s *Store) SetTags(ctx context.Context, uri string, tags ...string) (md Metadata, err error) {
	ctx, end := s.begin(ctx, "set-tags", uri)
	defer func() { end(err) }()
	return s.changeTags(ctx, uri, tags, func(_, tags []string) []string { return tags })
}

// RemoveTags removes tags from the artifact uri (absent ones are ignored)
// and returns its current metadata.
func (s *Store) RemoveTags(ctx context.Context, uri string, tags ...string) (md Metadata, err error) {
	ctx, end := s.begin(ctx, "remove-tags", uri)
	defer func() { end(err) }()
	return s.changeTags(ctx, uri, tags, func(cur, tags []string) []string {
		return slices.DeleteFunc(slices.Clone(cur), func(t string) bool {
			_, found := slices.BinarySearch(tags, t)
			return found
		})
	})
}

// changeTags commits edit(current tags, normalized tags) under the write
// protocol; an unchanged set is a no-op.
func (s *Store) changeTags(ctx context.Context, uri string, tags []string, edit func(cur, tags []string) []string) (Metadata, error) {
	u, err := parseArtifact(uri)
	if err != nil {
		return Metadata{}, err
	}
	norm, err := normalizeTags(tags)
	if err != nil {
		return Metadata{}, err
	}
	out, err := s.mutate(ctx, u, nil, func(cur *manifest, _ commitInfo) (change, error) {
		if cur == nil {
			return change{}, errNotFound(u, nil)
		}
		next := edit(cur.Tags, norm)
		if next == nil {
			next = []string{}
		}
		if slices.Equal(next, cur.Tags) {
			return change{noop: true}, nil
		}
		if len(next) > s.cfg.MaxTags {
			return change{}, invalidf("%d tags, more than the limit of %d (ARTIFACTSTORE_MAX_TAGS)", len(next), s.cfg.MaxTags)
		}
		if err := checkMetadataSize(next, cur.current().Metadata, s.cfg.MaxMetadataBytes); err != nil {
			return change{}, err
		}
		m := cur.clone()
		m.Tags = next
		return change{next: m}, nil
	})
	if err != nil {
		return Metadata{}, wrapOp("tags of", u, err)
	}
	return metadataOf(out.m, out.m.current()), nil
}
