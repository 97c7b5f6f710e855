package store

import (
	"context"
	"fmt"
	"slices"
)

// PruneVersions deletes the oldest versions of the artifact uri, keeping the
// newest keep (at least 1), and returns how many it deleted.
func (s *Store) PruneVersions(ctx context.Context, uri string, keep int) (n int, err error) {
	ctx, end := s.begin(ctx, "prune-versions", uri)
	defer func() { end(err) }()
	u, err := parseArtifact(uri)
	if err != nil {
		return 0, err
	}
	if keep < 1 {
		return 0, invalidf("prune %s: keep %d, want at least 1 (use Delete to remove the artifact)", u, keep)
	}
	out, err := s.mutate(ctx, u, nil, func(cur *manifest, _ commitInfo) (change, error) {
		if cur == nil {
			return change{}, errNotFound(u, nil)
		}
		drop := len(cur.Versions) - keep
		if drop <= 0 {
			return change{noop: true}, nil
		}
		next := cur.clone()
		next.Versions = slices.Delete(next.Versions, 0, drop)
		var garbage []string
		for _, v := range cur.Versions[:drop] {
			garbage = append(garbage, v.Blob)
		}
		return change{next: next, garbage: garbage}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune %s: %w", u, err)
	}
	if out.noop {
		return 0, nil
	}
	return len(out.prev.Versions) - len(out.m.Versions), nil
}
