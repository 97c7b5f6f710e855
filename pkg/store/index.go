package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// This file is the tag index: one zero-byte marker object per (tag,
// artifact), under
//
//	_index/tags/<base64url(tag), no padding>/<spec>/<task>/<type>
//
// so that a search by tag lists the artifacts that may carry the tag
// instead of reading every manifest. The index is a superset of the truth:
//
//	for every committed manifest and every tag in it, the marker exists.
//
// The write protocol keeps it so: a commit Puts the markers of the tags it
// adds before its conditional manifest Put (a failure aborts the commit, and
// a marker left behind by an aborted commit only makes the superset larger),
// and deletes the markers of the tags it removed after the commit, while it
// still holds the artifact's lock, so that no other writer can re-add the
// tag in between (it would have to take the lock first). Without locking,
// markers are never deleted. A marker without the tag in its manifest
// (stale) costs a manifest read in a search, which checks every result
// against the manifest, never a wrong result. Reconcile re-creates missing
// markers and, with locking, deletes stale ones under the artifact's lock.

const (
	indexRoot    = "_index/"
	tagIndexRoot = indexRoot + "tags/"
	// tagIndexReadyKey marks the tag index complete: it is written by the
	// first write of a Store into a bucket without manifests (every commit since keeps the index)
	// and by Reconcile with Apply once it created every missing marker (a
	// bucket written by a version of the store without the index). Until
	// it exists, Search by tag reads every manifest, as it did before.
	tagIndexReadyKey = indexRoot + "tags-ready"
)

// prepareTagIndex marks the tag index complete in a bucket without
// manifests, through b (the Store's first write runs it, before writing).
func (s *Store) prepareTagIndex(ctx context.Context, b backend.Backend) error {
	if ready, err := s.checkTagIndexReady(ctx); err != nil || ready {
		return err
	}
	for _, err := range b.List(ctx, manifestRoot) {
		if err != nil {
			return fmt.Errorf("list %s: %w", manifestRoot, err)
		}
		// Artifacts from before the index: Search by tag reads every
		// manifest until Reconcile (Apply) builds the index.
		s.log.Warn("store: the bucket's tag index is not built; searches by tag read every manifest until Reconcile with Apply builds it")
		return nil
	}
	return s.markTagIndexReady(ctx, b)
}

// checkTagIndexReady reports whether the tag index is marked complete.
func (s *Store) checkTagIndexReady(ctx context.Context) (bool, error) {
	if s.tagIndexReady.Load() {
		return true, nil
	}
	_, err := s.b.Stat(ctx, tagIndexReadyKey)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", tagIndexReadyKey, err)
	}
	s.tagIndexReady.Store(true)
	return true, nil
}

// markTagIndexReady writes the mark of a complete tag index through b.
func (s *Store) markTagIndexReady(ctx context.Context, b backend.Backend) error {
	if _, err := b.Put(ctx, tagIndexReadyKey, bytes.NewReader(nil), 0, backend.PutOptions{}); err != nil {
		return fmt.Errorf("write %s: %w", tagIndexReadyKey, err)
	}
	s.tagIndexReady.Store(true)
	return nil
}

// encodeTag is a tag as one key segment: tags may contain '/', '.', ':' and
// other characters that a key segment must not (or should not) hold.
func encodeTag(tag string) string { return base64.RawURLEncoding.EncodeToString([]byte(tag)) }

// tagIndexPrefix is the narrowest marker listing prefix of tag for the given
// spec and task (each may be empty; task is ignored without spec). It ends
// in "/".
func tagIndexPrefix(tag, spec, task string) string {
	p := tagIndexRoot + encodeTag(tag) + "/"
	switch {
	case spec == "":
		return p
	case task == "":
		return p + spec + "/"
	default:
		return p + spec + "/" + task + "/"
	}
}

// tagMarkerKey is the key of the marker of tag on artifact u.
func tagMarkerKey(tag string, u URI) string {
	return tagIndexRoot + encodeTag(tag) + "/" + u.Spec + "/" + u.Task + "/" + u.Type
}

// parseTagMarkerKey is the inverse of tagMarkerKey; ok is false for a key
// outside the layout (a stray object under _index/tags/).
func parseTagMarkerKey(key string) (tag string, u URI, ok bool) {
	rest, ok := strings.CutPrefix(key, tagIndexRoot)
	if !ok {
		return "", URI{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return "", URI{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || encodeTag(string(raw)) != parts[0] || ValidateTag(string(raw)) != nil {
		return "", URI{}, false
	}
	u = URI{Spec: parts[1], Task: parts[2], Type: parts[3]}
	if u.Validate() != nil {
		return "", URI{}, false
	}
	return string(raw), u, true
}

// tagsMinus returns the tags of the sorted set a that are not in the sorted
// set b (a nil manifest's tags are empty).
func tagsMinus(a, b []string) []string {
	var out []string
	for _, t := range a {
		if _, ok := slices.BinarySearch(b, t); !ok {
			out = append(out, t)
		}
	}
	return out
}

// tagsOf is m's tags, none for a nil manifest.
func tagsOf(m *manifest) []string {
	if m == nil {
		return nil
	}
	return m.Tags
}

// putTagMarkers writes the markers of tags on u: step 5 of the write
// protocol for the tags a commit adds, before its manifest Put. A Put of an
// existing marker rewrites it, harmlessly.
func (s *Store) putTagMarkers(ctx context.Context, u URI, tags []string) error {
	for _, t := range tags {
		key := tagMarkerKey(t, u)
		if _, err := s.b.Put(ctx, key, bytes.NewReader(nil), 0, backend.PutOptions{}); err != nil {
			return fmt.Errorf("write tag index marker %s of %s: %w", key, u, err)
		}
	}
	return nil
}

// deleteTagMarkers deletes the markers of tags that u's committed manifest
// no longer has, while the lease on u is held (the caller releases it
// after). Best effort: a marker that is not deleted is stale, which search
// tolerates and Reconcile repairs. The deletions stop when the lease ends
// (lost, or past its expiry by this process's clock): another writer may
// then hold the lock and re-add a tag, and its marker must not be deleted.
// (A Delete sent just before the lease ends can still land after; that
// window is the one a lost lease opens for every write, and Reconcile
// re-creates the marker.) Without a lease (locking disabled) nothing is
// deleted.
func (s *Store) deleteTagMarkers(ctx context.Context, u URI, lease *lock.Lease, tags []string) {
	if lease == nil || len(tags) == 0 {
		return
	}
	dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), lease.Until())
	defer cancel()
	for _, t := range tags {
		if lease.Err() != nil || !time.Now().Before(lease.Until()) {
			s.log.Warn("store: lease ended before the stale tag index markers were deleted (left for reconcile)",
				"uri", u.String(), "fence", lease.Fence())
			return
		}
		key := tagMarkerKey(t, u)
		if err := s.b.Delete(dctx, key); err != nil {
			s.log.Warn("store: delete stale tag index marker (left for reconcile)", "key", key, "uri", u.String(), "err", err)
		}
	}
}

// searchByTags is Search for a filter with tags (and not spec, task and
// type all set). When the tag index is not marked complete it reads every
// manifest under the filter's prefix. Otherwise it lists the markers of
// each tag (at once) under the narrowest prefix the filter allows,
// intersects them, and reads only the manifests of the artifacts left,
// checking the whole filter on each (stale markers select artifacts that
// no longer match).
//
// When many artifacts are left (more than indexReadLimit), reading each
// manifest would cost more than one listing of the manifests, whose ETags
// spare the reads of cached manifests: the manifests are then listed and
// only the candidates read.
func (s *Store) searchByTags(ctx context.Context, f Filter) ([]Metadata, error) {
	ready, err := s.checkTagIndexReady(ctx)
	if err != nil {
		return nil, err
	}
	if !ready {
		return s.collect(ctx, manifestPrefix(f.Spec, f.Task), f, nil)
	}
	tags := slices.Clone(f.Tags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	sets := make([]map[URI]bool, len(tags))
	err = s.parallel(ctx, len(tags), func(ctx context.Context, i int) error {
		set, err := s.listTagged(ctx, tags[i], f)
		sets[i] = set
		return err
	})
	if err != nil {
		return nil, err
	}
	candidates := sets[0]
	for _, set := range sets[1:] {
		for u := range candidates {
			if !set[u] {
				delete(candidates, u)
			}
		}
	}
	if len(candidates) > s.indexReadLimit {
		keep := func(u URI) bool { return candidates[u] }
		return s.collect(ctx, manifestPrefix(f.Spec, f.Task), f, keep)
	}
	uris := make([]URI, 0, len(candidates))
	for u := range candidates {
		uris = append(uris, u)
	}
	return s.collectURIs(ctx, uris, f)
}

// indexReadLimit is the number of candidates of a tag search above which
// the manifests are listed rather than each read (a listing page holds
// 1,000 keys; a Store with the manifests cached reads none of them).
const indexReadLimit = 1000

// listTagged lists the markers of tag that pass f's names and returns their
// artifacts.
func (s *Store) listTagged(ctx context.Context, tag string, f Filter) (map[URI]bool, error) {
	prefix := tagIndexPrefix(tag, f.Spec, f.Task)
	set := map[URI]bool{}
	for info, err := range s.b.List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		t, u, ok := parseTagMarkerKey(info.Key)
		if ok && t == tag && f.matchURI(u) {
			set[u] = true
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // a listing may end quietly when cancelled
	}
	return set, nil
}

// tagRef is a tag of an artifact, as Reconcile found it in a manifest.
type tagRef struct {
	tag string
	uri URI
}

// reconcileTagIndex is Reconcile's check of the tag index. want holds the
// marker of every tag of the valid manifests read (by marker key); the
// markers of artifacts in invalid are not judged. It lists _index/tags/,
// confirms each missing and each stale marker against a fresh read of the
// manifest, and with apply creates the missing ones (a superset is always
// safe, so without a lock) and, with locking on, deletes the stale ones
// under the artifact's lock. Failures on single markers are appended to
// errs; the returned error (a listing's, a cancelled context) ends the
// reconcile.
func (s *Store) reconcileTagIndex(ctx context.Context, apply bool, want map[string]tagRef, invalid map[URI]bool, rep *ReconcileReport, errs *[]error) error {
	listed := make(map[string]bool, len(want))
	var stale []tagRef
	for info, err := range s.b.List(ctx, tagIndexRoot) {
		if err != nil {
			return fmt.Errorf("list %s: %w", tagIndexRoot, err)
		}
		tag, u, ok := parseTagMarkerKey(info.Key)
		if !ok {
			rep.Strays = append(rep.Strays, info.Key)
			continue
		}
		rep.TagMarkers++
		listed[info.Key] = true
		if _, ok := want[info.Key]; !ok && !invalid[u] {
			stale = append(stale, tagRef{tag: tag, uri: u})
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var missing []tagRef
	for key, ref := range want {
		if !listed[key] {
			missing = append(missing, ref)
		}
	}
	var mu sync.Mutex
	record := func(ctx context.Context, what string, ref tagRef, err error) error {
		if err == nil {
			return nil
		}
		if isContextErr(err) && ctx.Err() != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		*errs = append(*errs, fmt.Errorf("%s tag index marker %q of %s: %w", what, ref.tag, ref.uri, err))
		return nil
	}
	err := s.parallel(ctx, len(missing), func(ctx context.Context, i int) error {
		ref := missing[i]
		found, created, err := s.confirmMissingMarker(ctx, ref, apply)
		if found {
			mu.Lock()
			rep.MissingTagMarkers = append(rep.MissingTagMarkers, TagMarker{Tag: ref.tag, URI: ref.uri.String()})
			if created {
				rep.TagMarkersCreated++
				s.log.Info("store: reconcile created missing tag index marker", "tag", ref.tag, "uri", ref.uri.String())
			}
			mu.Unlock()
		}
		return record(ctx, "missing", ref, err)
	})
	if err != nil {
		return err
	}
	del := apply && s.locker != nil
	return s.parallel(ctx, len(stale), func(ctx context.Context, i int) error {
		ref := stale[i]
		found, deleted, err := s.confirmStaleMarker(ctx, ref, del)
		if found {
			mu.Lock()
			rep.StaleTagMarkers = append(rep.StaleTagMarkers, TagMarker{Tag: ref.tag, URI: ref.uri.String()})
			if deleted {
				rep.TagMarkersDeleted++
				s.log.Info("store: reconcile deleted stale tag index marker", "tag", ref.tag, "uri", ref.uri.String())
			}
			mu.Unlock()
		}
		return record(ctx, "stale", ref, err)
	})
}

// confirmMissingMarker reads ref's manifest afresh and, when it still has
// the tag, checks that the marker is still missing (found) and, with
// create, writes it. No lock is needed: a marker too many is harmless.
func (s *Store) confirmMissingMarker(ctx context.Context, ref tagRef, create bool) (found, created bool, err error) {
	m, _, err := s.readManifest(ctx, ref.uri)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		return false, false, nil
	case err != nil:
		return false, false, err
	case !hasTag(m, ref.tag):
		return false, false, nil
	}
	key := tagMarkerKey(ref.tag, ref.uri)
	if _, err := s.b.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
		return false, false, err // present after all (nil), or a failure
	}
	if !create {
		return true, false, nil
	}
	if err := s.putTagMarkers(ctx, ref.uri, []string{ref.tag}); err != nil {
		return true, false, err
	}
	return true, true, nil
}

// confirmStaleMarker reads ref's manifest afresh and reports whether it
// lacks the tag (or the artifact is gone): the marker is stale. With del
// the read is made under the artifact's lock, and a stale marker is
// deleted before the lock is released, so that no writer can add the tag
// in between (a writer adds it only while holding the lock, and writes the
// marker before its commit). A manifest that is not a valid record is not
// judged.
func (s *Store) confirmStaleMarker(ctx context.Context, ref tagRef, del bool) (found, deleted bool, err error) {
	var lease *lock.Lease
	if del {
		if lease, err = s.acquire(ctx, ref.uri); err != nil {
			return false, false, err
		}
		defer s.release(ctx, ref.uri, lease)
	}
	m, _, err := s.readManifest(ctx, ref.uri)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity):
		m = nil
	case errors.Is(err, ErrIntegrity):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	if hasTag(m, ref.tag) {
		return false, false, nil
	}
	if !del {
		return true, false, nil
	}
	if err := lease.Err(); err != nil {
		return true, false, fmt.Errorf("%w: lease on %s lost before the marker deletion: %w", ErrConflict, ref.uri, err)
	}
	if until := lease.Until(); !time.Now().Before(until) {
		return true, false, fmt.Errorf("%w: %w: lease on %s expired before the marker deletion", ErrConflict, ErrLeaseLost, ref.uri)
	}
	if err := s.b.Delete(ctx, tagMarkerKey(ref.tag, ref.uri)); err != nil {
		return true, false, err
	}
	return true, true, nil
}

// hasTag reports whether m (nil: no artifact) has tag.
func hasTag(m *manifest, tag string) bool {
	if m == nil {
		return false
	}
	_, ok := slices.BinarySearch(m.Tags, tag)
	return ok
}

// sortTagMarkers sorts by URI, then tag.
func sortTagMarkers(ms []TagMarker) {
	slices.SortFunc(ms, func(a, b TagMarker) int {
		if c := strings.Compare(a.URI, b.URI); c != 0 {
			return c
		}
		return strings.Compare(a.Tag, b.Tag)
	})
}
