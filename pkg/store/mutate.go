package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/necrocode/artifactstore/internal/backoff"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// This file is the write protocol (DESIGN.md, "Write protocol"), steps 3 to
// 7, shared by every operation that changes an artifact: upload, tag
// changes, prune, delete, and the operations in other files (retention,
// reconcile). Step 2 (streaming the content to a new blob with no lock held)
// belongs to Upload.

// change is what a mutation decides, given the current manifest.
type change struct {
	// next is the manifest to commit. mutate fills its identity fields
	// (schema, URI, fence, writer, commit, updated). A next without
	// versions removes the artifact.
	next *manifest
	// remove deletes the manifest: the artifact is gone.
	remove bool
	// noop: nothing to commit; the current manifest stays.
	noop bool
	// garbage are blob keys that are unreferenced once the change is
	// committed (or, with noop, at once). mutate deletes them, best effort,
	// after releasing the lock.
	garbage []string
}

// commitInfo identifies the commit a mutation is building.
type commitInfo struct {
	// Fence is the fence token of the writer's lease; 0 without locking.
	Fence uint64
	// Writer is Config.WriterID.
	Writer string
}

// mutation builds a change from the current manifest, nil when the artifact
// does not exist. It may be called several times (optimistic retries), must
// not modify cur (clone it) and must not do I/O. Versions it adds carry
// c.Fence and c.Writer. An error aborts the write with nothing changed.
type mutation func(cur *manifest, c commitInfo) (change, error)

// outcome is what mutate reports.
type outcome struct {
	// m is the manifest stored after the write: the new one, the current one
	// for a noop, nil after a remove (prev then holds the removed one).
	m    *manifest
	prev *manifest
	noop bool
	// uncertain is set on failure when the manifest write may have
	// reached the store anyway (a failed Put whose effect could not be
	// checked). The caller must then not delete blobs the change would
	// have referenced; reconcile removes them if they stay unreferenced.
	uncertain bool
}

// errPrecondition marks an attempt lost to a concurrent commit.
var errPrecondition = errors.New("manifest changed under the write")

// mutate runs apply under the write protocol for artifact u: acquire the
// lock (unless disabled), read the manifest and its ETag, apply, check the
// lease, conditionally Put (or delete) the manifest carrying the lease's
// fence, release the lock, delete the garbage. With locking, a commit that
// loses the conditional Put is not retried: the lease was lost, and the
// error matches ErrConflict (and ErrLeaseLost or
// backend.ErrPreconditionFailed). Without locking, it is retried up to
// Config.MaxConflictRetries times with backoff, then fails with ErrConflict.
//
// mutate does not log: its callers log their operation's outcome once.
func (s *Store) mutate(ctx context.Context, u URI, apply mutation) (outcome, error) {
	u = u.Artifact()
	if err := ctx.Err(); err != nil {
		return outcome{}, err
	}
	var lease *lock.Lease
	if s.locker != nil {
		var err error
		if lease, err = s.acquire(ctx, u); err != nil {
			return outcome{}, err
		}
	}
	policy := backoff.Policy{Initial: s.cfg.ConflictBackoff, Max: 100 * s.cfg.ConflictBackoff}
	// marked are the tags whose index markers this write has written, so
	// that a commit after a failed create, or a retry, does not write them
	// again (markers are deleted only under the lock, which this write
	// holds, or not at all).
	marked := map[string]bool{}
	for attempt := 0; ; attempt++ {
		out, garbage, err := s.commitOnce(ctx, u, lease, apply, marked)
		if err == nil {
			// The markers of the tags the commit removed go while the lock
			// is held (index.go); never without locking.
			s.deleteTagMarkers(ctx, u, lease, tagsMinus(tagsOf(out.prev), tagsOf(out.m)))
			s.release(ctx, u, lease)
			s.deleteBlobs(ctx, "commit", garbage)
			s.countUsage(ctx, u, out) // quota.go; no-op without a quota
			return out, nil
		}
		if !errors.Is(err, errPrecondition) || lease != nil || attempt >= s.cfg.MaxConflictRetries {
			var lerr error
			if lease != nil {
				lerr = lease.Err() // before the release ends the lease
			}
			s.release(ctx, u, lease)
			if errors.Is(err, errPrecondition) {
				if lease != nil {
					if lerr != nil {
						err = fmt.Errorf("%w: %w", err, lerr)
					}
					return out, fmt.Errorf("%w: commit of %s refused, the lock lease was lost: %w", ErrConflict, u, err)
				}
				return out, fmt.Errorf("%w: commit of %s lost to concurrent writers %d times: %w", ErrConflict, u, attempt+1, err)
			}
			return out, err
		}
		if err := backoff.Sleep(ctx, policy.Delay(attempt)); err != nil {
			return outcome{}, err
		}
	}
}

// acquire takes u's lock within Config.LockTimeout.
func (s *Store) acquire(ctx context.Context, u URI) (*lock.Lease, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.LockTimeout)
	defer cancel()
	lease, err := s.locker.Acquire(actx, lockKey(u))
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil && !errors.Is(err, ErrLockTimeout) {
			return nil, fmt.Errorf("lock %s: %w after %v: %w", u, ErrLockTimeout, s.cfg.LockTimeout, err)
		}
		return nil, fmt.Errorf("lock %s: %w", u, err)
	}
	return lease, nil
}

// release frees the lock; a failure only means the key frees itself at
// expiry (or that the lease was lost after the commit, which the
// conditional Put made safe), so it is logged, not returned.
func (s *Store) release(ctx context.Context, u URI, lease *lock.Lease) {
	if lease == nil {
		return
	}
	if err := lease.Release(ctx); err != nil {
		s.log.Warn("store: lock release", "uri", u.String(), "fence", lease.Fence(), "err", err)
	}
}

// commitOnce is steps 4 to 6 of the write protocol, once. It returns the
// garbage to delete after the lock is released. An error matching
// errPrecondition means another commit landed since the manifest was read.
//
// When this Store has never seen the artifact's manifest (a new artifact,
// most likely) and the mutation can create it, the manifest is first Put
// if-absent without being read: the condition makes that safe, and it
// saves a round trip. If the artifact exists after all, the protocol
// continues with the manifest read back.
func (s *Store) commitOnce(ctx context.Context, u URI, lease *lock.Lease, apply mutation, marked map[string]bool) (outcome, []string, error) {
	var fence uint64
	if lease != nil {
		fence = lease.Fence()
	}
	info := commitInfo{Fence: fence, Writer: s.cfg.WriterID}
	key := manifestKey(u)
	var (
		cur  *manifest
		etag string
		read bool
	)
	if !s.manifests.known(key) {
		if ch, err := apply(nil, info); err == nil && creates(ch) {
			out, garbage, seen, err := s.commitChange(ctx, u, lease, nil, "", ch, marked)
			if !errors.Is(err, errPrecondition) {
				return out, garbage, err
			}
			if seen != nil { // the manifest read while checking the commit
				cur, etag, read = seen.m, seen.etag, true
			}
		}
	}
	if !read {
		var err error
		cur, etag, err = s.readManifest(ctx, u)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				return outcome{}, nil, err
			}
			cur, etag = nil, ""
		}
	}
	ch, err := apply(cur, info)
	if err != nil {
		return outcome{}, nil, err
	}
	out, garbage, _, err := s.commitChange(ctx, u, lease, cur, etag, ch, marked)
	return out, garbage, err
}

// creates reports whether ch, built from no manifest, creates one.
func creates(ch change) bool {
	return !ch.noop && !ch.remove && ch.next != nil && len(ch.next.Versions) > 0
}

// seenManifest is a manifest read back after a failed conditional Put.
type seenManifest struct {
	m    *manifest
	etag string
}

// commitChange checks the lease and commits ch over cur (read with etag;
// nil when absent): steps 5 and 6. On a failed condition it also returns
// the manifest it read to check whether its own commit had landed (nil when
// there is none).
//
// Before the manifest Put it writes the tag index markers of the tags ch
// adds (index.go), except those in marked, and records them there.
func (s *Store) commitChange(ctx context.Context, u URI, lease *lock.Lease, cur *manifest, etag string, ch change, marked map[string]bool) (outcome, []string, *seenManifest, error) {
	if ch.noop {
		return outcome{m: cur, noop: true}, ch.garbage, nil, nil
	}
	if ch.next != nil && len(ch.next.Versions) == 0 {
		ch.remove, ch.next = true, nil
	}
	if ch.remove && cur == nil {
		return outcome{}, nil, nil, fmt.Errorf("%s: %w", u, ErrNotFound)
	}
	var fence uint64
	if lease != nil {
		if err := s.checkLease(ctx, u, lease, cur); err != nil {
			return outcome{}, nil, nil, err
		}
		fence = lease.Fence()
	}
	key := manifestKey(u)
	if ch.remove {
		// The backend has no conditional delete: a commit that lands
		// between the read above and this delete is deleted with it. Under
		// the lock only a writer whose lease was lost can do that.
		s.manifests.remove(key)
		if err := s.b.Delete(ctx, key); err != nil {
			return outcome{uncertain: true}, nil, nil, fmt.Errorf("delete manifest of %s: %w", u, err)
		}
		return outcome{prev: cur}, append(cur.blobs(), ch.garbage...), nil, nil
	}
	next := ch.next
	next.Schema = manifestSchema
	next.URI, next.Spec, next.Task, next.Type = u.String(), u.Spec, u.Task, u.Type
	next.Fence, next.Writer, next.Commit = fence, s.cfg.WriterID, s.newID()
	next.Updated = s.cfg.Now().UTC()
	if next.Created.IsZero() {
		next.Created = next.Updated
	}
	if err := next.validate(u); err != nil {
		return outcome{}, nil, nil, fmt.Errorf("store: internal error: invalid manifest for %s: %v", u, err)
	}
	data, err := encodeManifest(next)
	if err != nil {
		return outcome{}, nil, nil, fmt.Errorf("encode manifest of %s: %w", u, err)
	}
	// The tag index stays a superset of the manifests' tags: the markers
	// of the tags this commit adds exist before it lands (index.go).
	added := slices.DeleteFunc(tagsMinus(next.Tags, tagsOf(cur)), func(t string) bool { return marked[t] })
	if err := s.putTagMarkers(ctx, u, added); err != nil {
		return outcome{}, nil, nil, err
	}
	for _, t := range added {
		marked[t] = true
	}
	opts := backend.PutOptions{ContentType: "application/json", IfMatch: etag, IfAbsent: cur == nil}
	info, err := s.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
	if err == nil {
		s.manifests.put(key, info.ETag, next)
		return outcome{m: next, prev: cur}, ch.garbage, nil, nil
	}
	// The Put (or one of the retry decorator's attempts) may have landed
	// even though it reports a failure: a lost response retried into a
	// precondition failure, or a timeout. Our commit id tells.
	seen, cerr := s.readBack(ctx, u)
	switch {
	case seen != nil && seen.m.Commit == next.Commit:
		return outcome{m: next, prev: cur}, ch.garbage, nil, nil
	case errors.Is(err, backend.ErrPreconditionFailed) && cerr == nil:
		return outcome{}, nil, seen, fmt.Errorf("%w: write manifest of %s: %w", errPrecondition, u, err)
	default:
		// Not stored now; a Put still in flight (a timeout, a cancelled
		// or broken connection) might land later.
		maybeLater := backend.IsTransient(err) || isContextErr(err)
		return outcome{uncertain: cerr != nil || maybeLater}, nil, nil, fmt.Errorf("write manifest of %s: %w", u, err)
	}
}

// checkLease refuses a commit by a writer whose lease is lost: lost as the
// lease knows it, past its expiry by this process's clock (a paused process
// resumes before its lease's watcher runs), or with a fence older than the
// fence of the manifest's last commit (another holder came after it).
//
// An older fence has one innocent cause: the lock service lost its fence
// counters (a Redis master restarted without persistence). The lease is
// then refreshed: a lease the service still grants to this holder is held,
// so the commit goes on (logged), recording the lower fence, and later
// holders compare with it; a stale lease fails the refresh and the commit
// is refused.
func (s *Store) checkLease(ctx context.Context, u URI, lease *lock.Lease, cur *manifest) error {
	if err := lease.Err(); err != nil {
		return fmt.Errorf("%w: lease on %s lost before the commit: %w", ErrConflict, u, err)
	}
	if until := lease.Until(); !time.Now().Before(until) {
		return fmt.Errorf("%w: %w: lease on %s expired at %s, before the commit",
			ErrConflict, ErrLeaseLost, u, until.Format(time.RFC3339Nano))
	}
	if cur == nil || lease.Fence() >= cur.Fence {
		return nil
	}
	if err := lease.Refresh(ctx); err != nil {
		return fmt.Errorf("%w: %w: lease fence %d is older than the fence %d of the last commit of %s: %w",
			ErrConflict, ErrLeaseLost, lease.Fence(), cur.Fence, u, err)
	}
	s.log.Warn("store: lease fence older than the last commit's, but the lease is confirmed held: the lock service's fence counter was reset",
		"uri", u.String(), "fence", lease.Fence(), "last_fence", cur.Fence)
	return nil
}

// readBack reads u's manifest after a failed Put, to learn which commit is
// stored (nil when none). It works on a context detached from ctx's
// cancellation (bounded), since the answer decides whether blobs may be
// deleted.
func (s *Store) readBack(ctx context.Context, u URI) (*seenManifest, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	m, etag, err := s.readManifest(cctx, u)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &seenManifest{m: m, etag: etag}, nil
}

// cleanupTimeout bounds the best-effort work done after an operation, on a
// context its caller's cancellation does not end.
const cleanupTimeout = 30 * time.Second

// deleteBlobs deletes keys, best effort: a failure is logged and left for
// reconcile (issue 5), which removes unreferenced blobs after a grace period.
func (s *Store) deleteBlobs(ctx context.Context, why string, keys []string) {
	if len(keys) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, k := range keys {
		if err := s.b.Delete(cctx, k); err != nil {
			s.log.Warn("store: delete unreferenced blob (left for reconcile)", "why", why, "key", k, "err", err)
		}
	}
}
