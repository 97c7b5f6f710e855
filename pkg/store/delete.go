package store

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
)

// Delete removes the artifact uri, its metadata and every version's content,
// under the write protocol. With ?version=<n> it removes only that version
// (and the artifact when it was the last one). A missing artifact or version
// matches ErrNotFound.
//
// Removal is a commit like any other: the manifest is replaced by a
// tombstone, conditionally on the ETag read under the lock, so a Delete
// decided on an older manifest (a lost lease, no locking) fails with
// ErrConflict instead of removing a commit made after its decision. The
// blobs go after the commit; the tombstone goes later (Reconcile).
func (s *Store) Delete(ctx context.Context, uri string) (err error) {
	ctx, end := s.begin(ctx, "delete", uri)
	defer func() { end(err) }()
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	return s.deleteArtifact(ctx, u)
}

// deleteArtifact deletes u (or, when u names a version, that version).
func (s *Store) deleteArtifact(ctx context.Context, u URI) error {
	_, err := s.mutate(ctx, u, nil, func(cur *manifest, _ commitInfo) (change, error) {
		if cur == nil {
			return change{}, errNotFound(u.Artifact(), nil)
		}
		if u.Version == 0 {
			return change{remove: true}, nil
		}
		i := slices.IndexFunc(cur.Versions, func(v version) bool { return v.Version == u.Version })
		if i < 0 {
			return change{}, errNotFound(u, nil)
		}
		next := cur.clone()
		next.Versions = slices.Delete(next.Versions, i, i+1)
		return change{next: next, garbage: []string{cur.Versions[i].Blob}}, nil
	})
	if err != nil {
		return wrapOp("delete", u, err)
	}
	return nil
}

// DeleteByTask deletes every artifact of the task and returns how many it
// deleted. With spec empty it deletes the task's artifacts in every spec
// (a scan of all the manifests' keys). Artifacts deleted concurrently by
// others are not counted. On error the count covers what was deleted
// before it.
func (s *Store) DeleteByTask(ctx context.Context, spec, task string) (n int, err error) {
	ctx, end := s.begin(ctx, "delete-task", spec+"/"+task)
	defer func() { end(err) }()
	if spec != "" {
		if err := ValidateName("spec", spec); err != nil {
			return 0, err
		}
	}
	if err := ValidateName("task", task); err != nil {
		return 0, err
	}
	return s.deleteUnder(ctx, manifestPrefix(spec, task), taskFilter(spec, task))
}

// taskFilter selects the artifacts of task in every spec when spec is
// empty (manifestPrefix then lists all of them); nil otherwise.
func taskFilter(spec, task string) func(URI) bool {
	if spec != "" || task == "" {
		return nil
	}
	return func(u URI) bool { return u.Task == task }
}

// DeleteBySpec deletes every artifact of the spec and returns how many it
// deleted, like DeleteByTask.
func (s *Store) DeleteBySpec(ctx context.Context, spec string) (n int, err error) {
	ctx, end := s.begin(ctx, "delete-spec", spec)
	defer func() { end(err) }()
	if err := ValidateName("spec", spec); err != nil {
		return 0, err
	}
	return s.deleteUnder(ctx, manifestPrefix(spec, ""), nil)
}

// deleteUnder deletes every artifact under a manifest prefix, each under its
// own lock, Config.ListConcurrency at a time.
func (s *Store) deleteUnder(ctx context.Context, prefix string, keep func(URI) bool) (int, error) {
	var n atomic.Int64
	err := s.forEachArtifact(ctx, prefix, keep, func(ctx context.Context, u URI) error {
		err := s.deleteArtifact(ctx, u)
		switch {
		case err == nil:
			n.Add(1)
		case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
			// deleted by someone else meanwhile
		default:
			return err
		}
		return nil
	})
	return int(n.Load()), err
}
