package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	// (schema, URI, fence, writer, commit, history, updated). A next
	// without versions removes the artifact.
	next *manifest
	// remove deletes the artifact: its manifest is replaced by a
	// tombstone.
	remove bool
	// noop: nothing to commit; the current manifest stays.
	noop bool
	// garbage are blob keys that are unreferenced once the change is
	// committed (or, with noop, at once). mutate deletes them, best effort,
	// after releasing the lock.
	garbage []string
	// uses are the blob keys the change newly references (an upload's
	// blob): the commit is refused (ErrConflict) when Reconcile reclaimed
	// one of them.
	uses []string
	// reclaim, with next nil and remove false, is a fencing commit of
	// Reconcile: the manifest (or, when the artifact does not exist, a
	// tombstone) is rewritten unchanged but for these orphan blob keys added
	// to its Reclaimed list, so that no writer can commit a reference to
	// them afterwards; they are garbage once it lands.
	reclaim []string
	// spill are contents that next moves from the manifest to new blobs
	// (spillInline): written before the commit, deleted if it fails.
	spill []spilledContent
}

// spilledContent is a content of a version moving out of its manifest.
type spilledContent struct {
	key         string
	data        []byte
	contentType string
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
	// commit is the id of the commit (none for a noop).
	commit string
	// uncertain is set on failure when the manifest write may have
	// reached the store anyway, or may still (ErrUnknownOutcome). The
	// caller must then not delete blobs the change would have referenced;
	// reconcile removes them if they stay unreferenced.
	uncertain bool
}

// object is the manifest object a commit is conditioned on: its decoded
// content (nil when there is no object; a tombstone is an object) and its
// ETag.
type object struct {
	m    *manifest
	etag string
}

// live is the artifact the object records: nil when there is no object or
// it is a tombstone.
func (o object) live() *manifest {
	if o.m == nil || o.m.Deleted {
		return nil
	}
	return o.m
}

// errPrecondition marks an attempt lost to a concurrent commit: another
// commit landed since the manifest was read, and this one did not land
// and never will.
var errPrecondition = errors.New("manifest changed under the write")

// mutate runs apply under the write protocol for artifact u: acquire the
// lock (unless disabled), read the manifest and its ETag, apply, check the
// lease, conditionally Put the manifest (a tombstone to remove the
// artifact) carrying the lease's fence, release the lock, delete the
// garbage. With locking, a commit that loses the conditional Put is not
// retried: the lease was lost, and the error matches ErrConflict (and
// ErrLeaseLost or backend.ErrPreconditionFailed). Without locking, it is
// retried up to Config.MaxConflictRetries times with backoff, then fails
// with ErrConflict. A Put whose outcome cannot be learned fails with
// ErrUnknownOutcome (outcome.uncertain).
//
// mutate does not log: its callers log their operation's outcome once.
func (s *Store) mutate(ctx context.Context, u URI, in *intent, apply mutation) (out outcome, err error) {
	u = u.Artifact()
	if err := ctx.Err(); err != nil {
		s.endIntent(ctx, in, false, false)
		return outcome{}, causeOf(ctx, err)
	}
	if in == nil {
		in = s.beginIntent(ctx, u)
	}
	defer func() { s.endIntent(ctx, in, err == nil && !out.noop, out.uncertain) }()
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
		out, garbage, err := s.commitOnce(ctx, u, lease, in, apply, marked, attempt == 0)
		if err == nil {
			// The markers of the tags the commit removed go while the lock
			// is held (index.go); never without locking.
			s.deleteTagMarkers(ctx, u, lease, tagsMinus(tagsOf(out.prev), tagsOf(out.m)))
			s.release(ctx, u, lease)
			s.deleteBlobs(ctx, "commit", garbage)
			s.countUsage(ctx, u, out) // quota.go; no-op without a quota
			if !out.noop {
				s.maybeCompact() // catalog.go
			}
			return out, nil
		}
		if errors.Is(err, errPrecondition) {
			s.tel.Conflict(ctx) // counted whether retried or not
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

// acquire takes u's lock within Config.LockTimeout, or returns the lease
// on u that a WithLock of this Store holds in ctx (which release then
// leaves held).
func (s *Store) acquire(ctx context.Context, u URI) (*lock.Lease, error) {
	if lease := s.heldLease(ctx, u); lease != nil {
		return lease, nil
	}
	return s.acquireWithin(ctx, u, s.cfg.LockTimeout)
}

// acquireWithin takes u's lock within timeout. When the timeout (not the
// caller's context) ends the wait, the error says so, with the timeout.
func (s *Store) acquireWithin(ctx context.Context, u URI, timeout time.Duration) (*lock.Lease, error) {
	if err := s.b.(*closeGuard).check(); err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lease, err := s.locker.Acquire(actx, lockKey(u))
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			if !errors.Is(err, ErrLockTimeout) {
				err = fmt.Errorf("%w: %w", ErrLockTimeout, err)
			}
			return nil, fmt.Errorf("lock %s: not acquired within the lock timeout of %v: %w", u, timeout, err)
		}
		return nil, fmt.Errorf("lock %s: %w", u, err)
	}
	return lease, nil
}

// causeOf is err, ctx's error, with the cause of ctx's cancellation when it
// says more (a WithLock whose lease was lost).
func causeOf(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// release frees the lock; a failure only means the key frees itself at
// expiry (or that the lease was lost after the commit, which the
// conditional Put made safe), so it is logged, not returned. A lease held
// by WithLock in ctx stays held: WithLock releases it.
func (s *Store) release(ctx context.Context, u URI, lease *lock.Lease) {
	if lease == nil || s.heldLease(ctx, u) == lease {
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
// Two guesses save the manifest's read, a round trip, when they are
// likely right; the commit's condition makes them safe:
//   - when this Store has never seen the artifact's manifest (a new
//     artifact, most likely) and the mutation can create it, the manifest
//     is Put if-absent;
//   - on a write's first attempt (guess), when the manifest this Store
//     holds is the one it committed itself (an artifact it keeps
//     writing; a read since found it unchanged) and the change built on that copy adds a
//     version (an upload of new content), it is Put if the copy's ETag
//     still matches. Nothing else (a no-op, a delete, a tag change) is
//     decided on a copy.
//
// If the guess was wrong (the condition fails) the protocol continues
// with the manifest read back; if the change built on the copy fails
// before it lands (a bound, a lease check, a failed Put known not to
// land), it is built again on the manifest read.
func (s *Store) commitOnce(ctx context.Context, u URI, lease *lock.Lease, in *intent, apply mutation, marked map[string]bool, guess bool) (outcome, []string, error) {
	var fence uint64
	if lease != nil {
		fence = lease.Fence()
	}
	info := commitInfo{Fence: fence, Writer: s.cfg.WriterID}
	key := manifestKey(u)
	var (
		base object
		read bool
	)
	cached := s.manifests.peek(key)
	switch {
	case cached.m == nil:
		if ch, err := apply(nil, info); err == nil && creates(ch) {
			out, garbage, seen, err := s.commitChange(ctx, u, lease, in, object{}, ch, marked)
			if !errors.Is(err, errPrecondition) {
				return out, garbage, err
			}
			if seen != nil { // the manifest read while checking the commit
				base, read = *seen, true
			}
		}
	case guess && cached.committed && !cached.m.Deleted:
		if ch, err := apply(cached.m, info); err == nil && ch.next != nil && ch.next.NextVersion > cached.m.NextVersion {
			out, garbage, seen, err := s.commitChange(ctx, u, lease, in, object{m: cached.m, etag: cached.etag}, ch, marked)
			switch {
			case err == nil || out.uncertain:
				return out, garbage, err
			case errors.Is(err, errPrecondition) && lease != nil && (lease.Err() != nil || !time.Now().Before(lease.Until())):
				// The condition failed and the lease is known lost: the
				// refusal is the lease's (mutate says so), not the copy's.
				return out, garbage, err
			case seen != nil:
				base, read = *seen, true
			}
		}
	}
	if !read {
		m, etag, err := s.readManifestObject(ctx, u)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return outcome{}, nil, err
		}
		base = object{m: m, etag: etag}
	}
	ch, err := apply(base.live(), info)
	if err != nil {
		return outcome{}, nil, err
	}
	out, garbage, _, err := s.commitChange(ctx, u, lease, in, base, ch, marked)
	return out, garbage, err
}

// creates reports whether ch, built from no manifest, creates one.
func creates(ch change) bool {
	return !ch.noop && !ch.remove && ch.next != nil && len(ch.next.Versions) > 0
}

// commitChange checks the lease and commits ch over base (the manifest
// object read, with its ETag): steps 5 and 6. On a failed condition it also
// returns the manifest object it read to check whether its own commit had
// landed (nil when there is none).
//
// Before the manifest Put it writes the tag index markers of the tags ch
// adds (index.go), except those in marked, and records them there.
//
// A Put that fails is resolved by reading the manifest back: the commit
// landed when its id is in the manifest's history (Commits), even if later
// commits followed it; it did not land, and never will, when the manifest
// changed without it; and while the manifest is still the one read (the
// condition still holds), the same Put (same bytes, same commit id) is sent
// again, at most Config.Retry.MaxRetries times, so that of this Put and any
// earlier attempt still in flight at most one lands. When none of that can
// be learned, the error matches ErrUnknownOutcome and outcome.uncertain is
// set.
func (s *Store) commitChange(ctx context.Context, u URI, lease *lock.Lease, in *intent, base object, ch change, marked map[string]bool) (out outcome, garbage []string, seen *object, err error) {
	if len(ch.spill) == 0 || ch.noop {
		return s.commitManifest(ctx, u, lease, in, base, ch, marked)
	}
	keys := make([]string, len(ch.spill))
	for i, sp := range ch.spill {
		keys[i] = sp.key
	}
	defer func() {
		if err != nil && !out.uncertain {
			s.deleteBlobs(ctx, "commit that did not land", keys)
		}
	}()
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(ch.spill))
		sem  = make(chan struct{}, spillConcurrency)
	)
	for i, sp := range ch.spill {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := s.b.Put(ctx, sp.key, bytes.NewReader(sp.data), int64(len(sp.data)), backend.PutOptions{ContentType: sp.contentType}); err != nil {
				errs[i] = fmt.Errorf("move the content of an older version of %s out of its manifest: %w", u, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return outcome{}, nil, nil, err
	}
	return s.commitManifest(ctx, u, lease, in, base, ch, marked)
}

// commitManifest is commitChange once the blobs ch references exist.
func (s *Store) commitManifest(ctx context.Context, u URI, lease *lock.Lease, in *intent, base object, ch change, marked map[string]bool) (outcome, []string, *object, error) {
	cur := base.live()
	if ch.noop {
		return outcome{m: cur, noop: true}, ch.garbage, nil, nil
	}
	fenceOnly := ch.next == nil && !ch.remove && len(ch.reclaim) > 0
	if !fenceOnly && ch.next != nil && len(ch.next.Versions) == 0 {
		ch.remove, ch.next = true, nil
	}
	if ch.remove && cur == nil {
		return outcome{}, nil, nil, errNotFound(u.Artifact(), nil)
	}
	if base.m != nil {
		for _, k := range ch.uses {
			if slices.Contains(base.m.Reclaimed, k) {
				return outcome{}, nil, nil, fmt.Errorf("%w: %s: the content of this upload (blob %q) was reclaimed by Reconcile: the upload took longer than its grace period between the transfer and the commit", ErrConflict, u, k)
			}
		}
	}
	var fence uint64
	if lease != nil {
		if err := s.checkLease(ctx, u, lease, base.m); err != nil {
			return outcome{}, nil, nil, err
		}
		fence = lease.Fence()
	}
	next, out, garbage := s.nextObject(base, ch, fenceOnly)
	next.Schema = schemaOf(next)
	next.URI, next.Spec, next.Task, next.Type = u.String(), u.Spec, u.Task, u.Type
	next.Fence, next.Writer, next.Commit = fence, s.cfg.WriterID, in.id
	out.commit = next.Commit
	next.Commits = appendBounded(commitsOf(base.m), commitHistory, next.Commit)
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
	if grows := !fenceOnly && !ch.remove && (cur == nil || len(next.Versions) >= len(cur.Versions)); grows {
		switch {
		case len(next.Versions) > MaxVersionsLimit && (cur == nil || len(next.Versions) > len(cur.Versions)):
			return outcome{}, nil, nil, fmt.Errorf("%w: %s would hold %d versions, more than the %d an artifact can hold: prune old versions (Store.PruneVersions, or ARTIFACTSTORE_MAX_VERSIONS) or delete it",
				ErrStorageFull, u, len(next.Versions), MaxVersionsLimit)
		case len(data) > MaxManifestBytes:
			return outcome{}, nil, nil, fmt.Errorf("%w: the record of %s would be %d bytes, more than the %d an artifact's versions, tags and metadata can take: prune old versions (Store.PruneVersions, or ARTIFACTSTORE_MAX_VERSIONS) or store less metadata",
				ErrStorageFull, u, len(data), MaxManifestBytes)
		}
	}
	// The tag index stays a superset of the manifests' tags: the markers
	// of the tags this commit adds exist before it lands (index.go).
	if out.m != nil {
		added := slices.DeleteFunc(tagsMinus(next.Tags, tagsOf(cur)), func(t string) bool { return marked[t] })
		if err := s.putTagMarkers(ctx, u, added); err != nil {
			return outcome{}, nil, nil, err
		}
		for _, t := range added {
			marked[t] = true
		}
	}
	key := manifestKey(u)
	opts := backend.PutOptions{ContentType: "application/json", IfMatch: base.etag, IfAbsent: base.m == nil}
	policy := s.retryPolicy()
	for try := 0; ; try++ {
		// The catalog's log announces the commit before it can land
		// (catalog.go); a re-send checks the horizon again.
		if err := in.ready(ctx, u); err != nil {
			if try == 0 {
				return outcome{}, nil, nil, err
			}
			return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: not sent again: %w", ErrUnknownOutcome, u, err)
		}
		info, err := s.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
		if err == nil {
			s.manifests.putCommitted(key, info.ETag, next)
			return out, garbage, nil, nil
		}
		// The Put may have landed although it reports a failure (a lost
		// reply, a timeout), and may land later still (a request in
		// flight). The manifest's history tells.
		seen, rerr := s.readBack(ctx, u)
		switch {
		case rerr != nil && try == 0 && errors.Is(err, backend.ErrPreconditionFailed):
			// The first attempt refused: another commit came first and
			// this one did not land. (A re-send's refusal may be its
			// earlier attempt landing first.)
			return outcome{}, nil, nil, fmt.Errorf("%w: write manifest of %s: %w (and reading it again failed: %w)", errPrecondition, u, err, rerr)
		case rerr != nil:
			return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: %w (and reading it back failed: %w)", ErrUnknownOutcome, u, err, rerr)
		case seen.m != nil && slices.Contains(seen.m.Commits, next.Commit):
			return out, garbage, nil, nil // landed
		case seen.m == nil && base.m == nil || seen.m != nil && base.m != nil && seen.etag == base.etag:
			// Not landed, and the condition still holds.
			if try > 0 && (errors.Is(err, backend.ErrPreconditionFailed) || !ambiguous(err)) {
				// A definite answer to a re-send says nothing of the
				// earlier attempt, which may still be in flight and land:
				// its outcome is unknown (and so, the blobs it references
				// must stay).
				return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: an earlier attempt may still land, and the last one failed: %w", ErrUnknownOutcome, u, err)
			}
			if errors.Is(err, backend.ErrPreconditionFailed) {
				// A refusal all the same (a server that saw another
				// ETag at that moment): retried as a lost race.
				return outcome{}, nil, &seen, fmt.Errorf("%w: write manifest of %s: %w", errPrecondition, u, err)
			}
			if !ambiguous(err) {
				return outcome{}, nil, nil, fmt.Errorf("write manifest of %s: %w", u, err)
			}
			if try >= s.cfg.Retry.MaxRetries || ctx.Err() != nil {
				return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: not stored yet, but the request may still land: %w", ErrUnknownOutcome, u, err)
			}
			if base.m == nil {
				// "No manifest" is not unique the way an ETag is: the
				// create may have landed, been deleted, and its tombstone
				// removed since.
				if serr := s.notDeletedSince(ctx, lease, ch.uses); serr != nil {
					return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: the artifact does not exist, and %w: the commit may have landed and been deleted since (%w)", ErrUnknownOutcome, u, serr, err)
				}
			}
			s.log.Warn("store: manifest write failed and did not land, sending it again", "uri", u.String(), "attempt", try+1, "err", err)
			if serr := backoff.Sleep(ctx, policy.Delay(try)); serr != nil {
				return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: %w (last attempt: %w)", ErrUnknownOutcome, u, serr, err)
			}
			if lease != nil {
				if lerr := s.checkLease(ctx, u, lease, base.m); lerr != nil {
					// Not ErrConflict (which says "not applied"): the
					// first attempt may still land.
					return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: not sent again, the lease ended meanwhile (%v); the last attempt may still land: %w", ErrUnknownOutcome, u, lerr, err)
				}
			}
		case (ambiguous(err) || try > 0) && !seen.covers(base):
			// More commits followed than the history keeps: ours may be
			// among those it dropped.
			return outcome{uncertain: true}, nil, nil, fmt.Errorf("%w: write manifest of %s: %d commits followed, more than the history keeps: %w", ErrUnknownOutcome, u, commitHistory, err)
		case ambiguous(err) || try > 0 || errors.Is(err, backend.ErrPreconditionFailed):
			// The manifest changed without this commit: none of its
			// attempts can land any more.
			return outcome{}, nil, &seen, fmt.Errorf("%w: write manifest of %s: %w", errPrecondition, u, err)
		default:
			return outcome{}, nil, nil, fmt.Errorf("write manifest of %s: %w", u, err)
		}
	}
}

// nextObject builds the object ch commits over base: the outcome it will
// report and the garbage it leaves once it lands. The identity fields are
// left to the caller.
func (s *Store) nextObject(base object, ch change, fenceOnly bool) (*manifest, outcome, []string) {
	cur := base.live()
	var next *manifest
	switch {
	case fenceOnly:
		if base.m != nil {
			next = base.m.clone()
		} else {
			next = &manifest{manifestHeader: manifestHeader{Tags: []string{}, Deleted: true}}
		}
		next.Reclaimed = appendBounded(base.m.reclaimed(), reclaimHistory, ch.reclaim...)
		return next, outcome{m: cur, prev: cur}, ch.reclaim
	case ch.remove:
		next = &manifest{manifestHeader: manifestHeader{
			Tags: []string{}, Created: cur.Created, NextVersion: cur.NextVersion, Deleted: true,
			Reclaimed: base.m.reclaimed(),
		}}
		return next, outcome{prev: cur}, append(cur.blobs(), ch.garbage...)
	}
	next = ch.next
	next.Deleted = false
	next.Reclaimed = base.m.reclaimed()
	return next, outcome{m: next, prev: cur}, ch.garbage
}

// notDeletedSince checks that a create that may have landed cannot have
// been deleted since, tombstone included, so that sending it again cannot
// bring it back. Its blobs tell: a delete removes them (and if that
// failed, Reconcile fences the orphans in a tombstone it never removes,
// which fails the re-send). A create without blobs (its content in the
// manifest) needs the lease to have been held throughout, which a refresh
// confirms: a delete and a tombstone removal take the lock.
func (s *Store) notDeletedSince(ctx context.Context, lease *lock.Lease, uses []string) error {
	switch {
	case len(uses) > 0:
		return s.blobsExist(ctx, uses)
	case lease == nil:
		return errors.New("without a lock nothing tells whether it was deleted since")
	}
	if err := lease.Refresh(ctx); err != nil {
		return fmt.Errorf("the lock was not held throughout: %w", err)
	}
	return nil
}

// blobsExist checks that every blob of keys exists.
func (s *Store) blobsExist(ctx context.Context, keys []string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, k := range keys {
		if _, err := s.b.Stat(cctx, k); err != nil {
			return fmt.Errorf("blob %q: %w", k, err)
		}
	}
	return nil
}

// appendBounded appends add to a copy of list and keeps the last n.
func appendBounded(list []string, n int, add ...string) []string {
	out := append(slices.Clip(list), add...)
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return slices.Clone(out)
}

// commitsOf is m's commit history (none for nil; a manifest written before
// the history existed counts its last commit).
func commitsOf(m *manifest) []string {
	switch {
	case m == nil:
		return nil
	case len(m.Commits) == 0 && m.Commit != "":
		return []string{m.Commit}
	}
	return m.Commits
}

// reclaimed is m's Reclaimed list (none for nil).
func (m *manifest) reclaimed() []string {
	if m == nil {
		return nil
	}
	return m.Reclaimed
}

// covers reports whether o's history reaches back to the commit of base:
// every commit since base's is in it, so a commit missing from it did not
// land.
func (o object) covers(base object) bool {
	if o.m == nil {
		// No object: the artifact was deleted and its tombstone removed
		// since base, which a commit of ours may have preceded.
		return false
	}
	if base.m == nil {
		return len(o.m.Commits) < commitHistory
	}
	return slices.Contains(commitsOf(o.m), base.m.Commit)
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

// readBack reads u's manifest object after a failed Put, to learn which
// commits are stored (o.m nil when there is none). It works on a context
// detached from ctx's cancellation (bounded), since the answer decides
// whether blobs may be deleted.
//
// The answer is worth more persistence than one read: a failure that may
// pass (the backend's own retries exhausted) is tried again, up to
// Config.Retry.MaxRetries more times with backoff.
func (s *Store) readBack(ctx context.Context, u URI) (object, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	policy := s.retryPolicy()
	for attempt := 0; ; attempt++ {
		m, etag, err := s.readManifestObject(cctx, u)
		switch {
		case errors.Is(err, ErrNotFound):
			return object{}, nil
		case err == nil:
			return object{m: m, etag: etag}, nil
		case !retryable(err) || attempt >= s.cfg.Retry.MaxRetries:
			return object{}, err
		}
		s.log.Warn("store: reading back a manifest after a failed write, again", "uri", u.String(), "attempt", attempt+1, "err", err)
		s.retried(ctx, "read-back", attempt+1, err)
		if serr := backoff.Sleep(cctx, policy.Delay(attempt)); serr != nil {
			return object{}, fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
	}
}

// cleanupTimeout bounds the best-effort work done after an operation, on a
// context its caller's cancellation does not end.
const cleanupTimeout = 30 * time.Second

// deleteBlobs deletes keys, best effort: a failure is logged and left for
// reconcile (issue 5), which removes unreferenced blobs after a grace period.
func (s *Store) deleteBlobs(ctx context.Context, why string, keys []string) {
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "" }) // content in the manifest
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
