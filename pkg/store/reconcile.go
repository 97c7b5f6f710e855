package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/lock"
)

// DefaultReconcileGracePeriod is the default of
// ReconcileOptions.GracePeriod.
const DefaultReconcileGracePeriod = time.Hour

// ReconcileOptions are the parameters of Reconcile.
type ReconcileOptions struct {
	// Apply deletes the orphan blobs, repairs the tag index (and, with a
	// quota, resets the usage counter). Default false: a dry run that only
	// reports.
	Apply bool
	// GracePeriod is how old an unreferenced blob must be to count as an
	// orphan, and a tombstone to be removed. Ages are measured on the
	// backend's clock: against the modification time of a scratch object
	// written when Apply is set, against Config.Now in a dry run. It should
	// be longer than any upload takes from the end of its blob transfer to
	// its commit (the lock wait, at most Config.LockTimeout, plus the
	// commit): an upload slower than that is not lost, it fails with
	// ErrConflict (its blob was reclaimed). Default 1h.
	GracePeriod time.Duration
}

// MissingBlob is a version whose blob does not exist.
type MissingBlob struct {
	URI     string // artifact://<spec>/<task>/<type>?version=<n>
	Version int
	BlobKey string
}

// ReconcileReport is what Reconcile found and did. Its lists are sorted.
type ReconcileReport struct {
	Applied bool
	// Manifests and Blobs count the artifacts' manifests read under
	// manifests/ (tombstones apart) and the objects listed under blobs/.
	Manifests int
	Blobs     int
	// Tombstones counts the tombstones of deleted artifacts found;
	// TombstonesRemoved those removed (Apply: tombstones older than the
	// grace period that record no reclaimed blob).
	Tombstones        int
	TombstonesRemoved int
	// OrphanBlobs are blobs no manifest references, older than the grace
	// period; OrphanBytes their total size.
	OrphanBlobs []string
	OrphanBytes int64
	// Pending counts the unreferenced blobs younger than the grace period
	// (uploads in flight, most likely); they are left alone.
	Pending int
	// MissingBlobs are versions whose blob does not exist (confirmed
	// against a fresh read of the manifest).
	MissingBlobs []MissingBlob
	// InvalidManifests are artifacts whose manifest is not a valid record.
	// Their blobs are never counted as orphans.
	InvalidManifests []string
	// Strays are keys under blobs/ or _index/tags/ outside the store's
	// layout. They are reported, never deleted.
	Strays []string
	// TagMarkers counts the markers listed under _index/tags/ (the tag
	// index, see "Layout" in the package documentation).
	TagMarkers int
	// MissingTagMarkers are tags of manifests whose marker does not exist
	// (confirmed against a fresh read of the manifest and of the marker);
	// a search by such a tag would miss the artifact. With Apply they are
	// created (TagMarkersCreated counts them).
	MissingTagMarkers []TagMarker
	// StaleTagMarkers are markers whose artifact does not have the tag (or
	// does not exist), confirmed against a fresh read of the manifest.
	// Search tolerates them (it costs a manifest read). With Apply and
	// locking on, each is deleted under its artifact's lock, right after
	// that read (TagMarkersDeleted counts them); without locking they are
	// only reported.
	StaleTagMarkers   []TagMarker
	TagMarkersCreated int
	TagMarkersDeleted int
	// TagIndexReady reports that the tag index is marked complete (found
	// so, or marked by this Apply: a bucket written by a version of the
	// store without the index), so that searches by tag use it.
	TagIndexReady bool
	// Deleted and DeletedBytes count the orphans deleted (Apply).
	Deleted      int
	DeletedBytes int64
	// Usage is the usage the manifests add up to (as Usage reports it).
	Usage UsageTotals
	// UsageReset reports that the usage counter of the quota was reset to
	// Usage (Apply with a quota).
	UsageReset bool
	// UsageDrift is what the usage counter of the quota held minus Usage,
	// before a reset (zero without a quota): the drift that a lost counter
	// update left, which Apply repairs. Exact when the store is quiet.
	UsageDrift UsageTotals
	// Catalog is what rebuilding the catalog from the manifests did
	// (Apply).
	Catalog CatalogReport
}

// TagMarker is one entry of the tag index: Tag on the artifact URI
// (artifact://<spec>/<task>/<type>).
type TagMarker struct {
	Tag string
	URI string
}

// blobRefInfo is a version referencing a blob.
type blobRefInfo struct {
	uri     URI
	version int
}

// Reconcile compares the blobs with the manifests: it reads every manifest,
// then lists blobs/, and reports blobs that no manifest references (orphans:
// left by a writer killed between its blob upload and its commit, or by a
// best-effort deletion that failed) and versions whose blob is missing. Only
// blobs older than opts.GracePeriod are orphans. With opts.Apply each orphan
// is checked once more against its artifact's manifest, read under the
// artifact's lock by the write protocol, right before it is deleted, a
// quota's usage counter is reset to the usage the manifests add up to, and
// the catalog is rebuilt from the manifests (see CompactCatalog).
//
// Reconcile also checks the tag index: it reports the markers missing for
// tags of the manifests and the stale markers (confirmed against a fresh
// read of the manifest), and with opts.Apply creates the missing ones and,
// with locking on, deletes the stale ones under the artifact's lock; see
// "Reconcile" in the package documentation.
//
// Reconcile holds every referenced blob key and every tag marker key in
// memory (about 100 bytes per version and per tag). A failure to delete one orphan is logged and joined into the
// returned error; the report covers the rest.
func (s *Store) Reconcile(ctx context.Context, opts ReconcileOptions) (rep ReconcileReport, err error) {
	ctx, end := s.begin(ctx, "reconcile", "")
	defer func() { end(err) }()
	switch {
	case opts.GracePeriod < 0:
		return ReconcileReport{}, invalidf("reconcile: negative grace period %v", opts.GracePeriod)
	case opts.GracePeriod == 0:
		opts.GracePeriod = DefaultReconcileGracePeriod
	}
	rep.Applied = opts.Apply

	// 0. The backend's clock, when the result deletes anything.
	now := s.cfg.Now()
	if opts.Apply {
		if now, err = s.backendNow(ctx); err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
	}

	// 1. Every manifest, and the blobs it references.
	var (
		mu         sync.Mutex
		refs       = map[string]blobRefInfo{}
		protected  []string // blob prefixes of invalid manifests
		invalid    = map[URI]bool{}
		marks      = map[string]tagRef{} // marker key -> the tag a manifest has
		tombstones []listedArtifact      // old enough to remove
	)
	err = s.forEachManifestObject(ctx, manifestRoot, nil, func(ctx context.Context, r record) error {
		mu.Lock()
		defer mu.Unlock()
		if r.err == nil && r.m.Deleted {
			rep.Tombstones++
			if len(r.m.Reclaimed) == 0 && !r.modified.IsZero() && now.Sub(r.modified) > opts.GracePeriod {
				tombstones = append(tombstones, listedArtifact{uri: r.uri, etag: r.etag})
			}
			return nil
		}
		rep.Manifests++
		if r.err != nil {
			rep.InvalidManifests = append(rep.InvalidManifests, r.uri.String())
			protected = append(protected, blobPrefix(r.uri))
			invalid[r.uri] = true
			return nil
		}
		for _, t := range r.m.Tags {
			marks[tagMarkerKey(t, r.uri)] = tagRef{tag: t, uri: r.uri}
		}
		rep.Usage = rep.Usage.Plus(totalsOf(r.m))
		for _, v := range r.m.Versions {
			if !v.inline() {
				refs[v.Blob] = blobRefInfo{uri: r.uri, version: v.Version}
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}

	// 2. Every blob: referenced, orphan, pending or stray.
	var orphans []orphan
	seen := make(map[string]bool, len(refs))
	for info, lerr := range s.b.List(ctx, blobRoot) {
		if lerr != nil {
			return rep, fmt.Errorf("reconcile: list %s: %w", blobRoot, lerr)
		}
		rep.Blobs++
		if _, ok := refs[info.Key]; ok {
			seen[info.Key] = true
			continue
		}
		u, ok := uriFromBlobKey(info.Key)
		if !ok {
			rep.Strays = append(rep.Strays, info.Key)
			continue
		}
		if slices.ContainsFunc(protected, func(p string) bool { return strings.HasPrefix(info.Key, p) }) {
			continue
		}
		modified := info.Modified
		if modified.IsZero() {
			st, serr := s.b.Stat(ctx, info.Key)
			if serr == nil {
				modified = st.Modified
			}
		}
		if modified.IsZero() || now.Sub(modified) <= opts.GracePeriod {
			rep.Pending++
			continue
		}
		orphans = append(orphans, orphan{key: info.Key, uri: u, size: info.Size})
	}

	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("reconcile: %w", err) // a listing may end quietly when cancelled
	}

	// 3. Referenced blobs not listed: missing, unless the version went away
	// since its manifest was read.
	var missing []string
	for key := range refs {
		if !seen[key] {
			missing = append(missing, key)
		}
	}
	slices.Sort(missing)
	err = s.parallel(ctx, len(missing), func(ctx context.Context, i int) error {
		key := missing[i]
		ref := refs[key]
		still, err := s.stillReferenced(ctx, ref.uri, &version{Version: ref.version, Blob: key})
		if err != nil || !still {
			return err
		}
		if _, err := s.b.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			return err // present after all (nil), or a failure
		}
		mu.Lock()
		rep.MissingBlobs = append(rep.MissingBlobs, MissingBlob{URI: ref.uri.WithVersion(ref.version).String(), Version: ref.version, BlobKey: key})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}

	// 4. Confirm the orphans of each artifact against a fresh manifest
	// read; with Apply, under the artifact's lock, fence them (a commit
	// that records them as reclaimed, so that no writer still holding one
	// can commit it afterwards), then delete them.
	byArtifact := map[URI][]orphan{}
	var artifacts []URI
	for _, o := range orphans {
		if byArtifact[o.uri] == nil {
			artifacts = append(artifacts, o.uri)
		}
		byArtifact[o.uri] = append(byArtifact[o.uri], o)
	}
	var errs []error
	err = s.parallel(ctx, len(artifacts), func(ctx context.Context, i int) error {
		u := artifacts[i]
		found, err := s.reclaimOrphans(ctx, u, byArtifact[u], opts.Apply)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && isContextErr(err) && ctx.Err() != nil {
			return err
		}
		for _, o := range found {
			rep.OrphanBlobs = append(rep.OrphanBlobs, o.key)
			rep.OrphanBytes += o.size
			if opts.Apply && o.err == nil {
				rep.Deleted++
				rep.DeletedBytes += o.size
				s.log.Info("store: reconcile deleted orphan blob", "key", o.key, "uri", o.uri.String(), "bytes", o.size)
			}
			if o.err != nil {
				errs = append(errs, fmt.Errorf("orphan %s: %w", o.key, o.err)) // logged once, with the result
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("orphans of %s: %w", u, err))
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}

	// 4b. Tombstones older than the grace period.
	if opts.Apply {
		err = s.parallel(ctx, len(tombstones), func(ctx context.Context, i int) error {
			removed, err := s.removeTombstone(ctx, tombstones[i].uri, tombstones[i].etag)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && isContextErr(err) && ctx.Err() != nil:
				return err
			case err != nil:
				errs = append(errs, fmt.Errorf("tombstone of %s: %w", tombstones[i].uri, err))
			case removed:
				rep.TombstonesRemoved++
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
	}

	// 5. The tag index: markers missing for the tags of the manifests just
	// read, and markers without their tag.
	failed := len(errs)
	if err := s.reconcileTagIndex(ctx, opts.Apply, marks, invalid, &rep, &errs); err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}
	ready, err := s.checkTagIndexReady(ctx)
	switch {
	case err != nil:
		errs = append(errs, err)
	case !ready && opts.Apply && len(errs) == failed:
		// Every manifest read has its markers now, and every commit
		// since keeps them.
		if err := s.markTagIndexReady(ctx, s.b); err != nil {
			errs = append(errs, err)
		} else {
			rep.TagIndexReady = true
			s.log.Info("store: reconcile built the tag index")
		}
	default:
		rep.TagIndexReady = ready
	}

	// 6. The quota's counter, from the manifests just read.
	if s.quotaOn() {
		shards, present, err := s.readUsageShards(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("read usage counter: %w", err))
		} else if present > 0 {
			var counted UsageTotals
			for _, c := range shards {
				counted = counted.Plus(c.UsageTotals)
			}
			rep.UsageDrift = counted.Minus(rep.Usage)
		}
	}
	if opts.Apply && s.quotaOn() {
		if err := s.resetUsageCounter(ctx, rep.Usage, false); err != nil {
			errs = append(errs, fmt.Errorf("reset usage counter: %w", err))
		} else {
			rep.UsageReset = true
		}
	}

	// 7. The catalog, rebuilt from the manifests (compact.go).
	if opts.Apply {
		crep, err := s.compactCatalog(ctx, compactRebuild)
		rep.Catalog = crep
		if err != nil {
			errs = append(errs, err)
		}
	}

	slices.Sort(rep.OrphanBlobs)
	slices.Sort(rep.InvalidManifests)
	slices.Sort(rep.Strays)
	sortTagMarkers(rep.MissingTagMarkers)
	sortTagMarkers(rep.StaleTagMarkers)
	slices.SortFunc(rep.MissingBlobs, func(a, b MissingBlob) int { return strings.Compare(a.BlobKey, b.BlobKey) })
	for _, m := range rep.MissingBlobs {
		s.log.Error("store: reconcile: missing blob", "uri", m.URI, "blob", m.BlobKey)
	}
	s.log.Info("store: reconcile done", "applied", opts.Apply, "manifests", rep.Manifests, "blobs", rep.Blobs,
		"orphans", len(rep.OrphanBlobs), "orphan_bytes", rep.OrphanBytes, "pending", rep.Pending,
		"missing", len(rep.MissingBlobs), "invalid_manifests", len(rep.InvalidManifests), "strays", len(rep.Strays),
		"deleted", rep.Deleted, "usage_reset", rep.UsageReset, "usage_drift_stored_bytes", rep.UsageDrift.StoredBytes,
		"tombstones", rep.Tombstones, "tombstones_removed", rep.TombstonesRemoved, "tag_markers", rep.TagMarkers,
		"missing_tag_markers", len(rep.MissingTagMarkers), "stale_tag_markers", len(rep.StaleTagMarkers),
		"tag_markers_created", rep.TagMarkersCreated, "tag_markers_deleted", rep.TagMarkersDeleted)
	if len(errs) > 0 {
		return rep, fmt.Errorf("reconcile: %d failures: %w", len(errs), errors.Join(errs...))
	}
	return rep, nil
}

// orphan is an unreferenced blob older than the grace period, and what
// became of it (err: its deletion failed).
type orphan struct {
	key  string
	uri  URI
	size int64
	err  error
}

// reclaimOrphans confirms the orphans of artifact u against a fresh read of
// its manifest and returns those still unreferenced. With apply the read is
// the write protocol's, under the artifact's lock, and the confirmed
// orphans are fenced by a commit that adds them to the manifest's Reclaimed
// list (or to a tombstone's, when the artifact does not exist), before they
// are deleted: a writer that still means to commit one of them (an upload
// paused past the grace period) then either fails its conditional Put (it
// read the manifest before the fence) or reads the fence and refuses (after
// it). The deletion waits until the fence is known to have landed.
func (s *Store) reclaimOrphans(ctx context.Context, u URI, candidates []orphan, apply bool) ([]orphan, error) {
	unreferenced := func(m *manifest) []orphan {
		return slices.DeleteFunc(slices.Clone(candidates), func(o orphan) bool {
			return m != nil && slices.ContainsFunc(m.Versions, func(v version) bool { return v.Blob == o.key })
		})
	}
	if !apply {
		m, _, err := s.readManifest(ctx, u)
		if err != nil && !(errors.Is(err, ErrNotFound) && !errors.Is(err, ErrIntegrity)) {
			return nil, err
		}
		return unreferenced(m), nil
	}
	var found []orphan
	_, err := s.mutate(ctx, u, nil, func(cur *manifest, _ commitInfo) (change, error) {
		found = unreferenced(cur)
		if len(found) > reclaimHistory {
			found = found[:reclaimHistory] // the rest at the next pass
		}
		if len(found) == 0 {
			return change{noop: true}, nil
		}
		keys := make([]string, len(found))
		for i, o := range found {
			keys[i] = o.key
		}
		return change{reclaim: keys}, nil
	})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i := range found {
		found[i].err = s.b.Delete(cctx, found[i].key)
	}
	return found, nil
}

// removeTombstone removes the tombstone of u when it is still the object
// listed (etag) and records no reclaimed blob, under u's lock. Where the
// backend honours conditional deletes (probed by New) the delete is
// conditional on etag; elsewhere it is unconditional, right after a read
// under the lock and a check that the lease is still valid. The window
// that remains there: a writer whose lease was lost (or one without locks)
// that commits over the tombstone between that read and the delete loses
// its commit.
func (s *Store) removeTombstone(ctx context.Context, u URI, etag string) (bool, error) {
	var lease *lock.Lease
	if s.locker != nil {
		var err error
		if lease, err = s.acquire(ctx, u); err != nil {
			return false, err
		}
		defer s.release(ctx, u, lease)
	}
	m, cur, err := s.readManifestObject(ctx, u)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case !m.Deleted || len(m.Reclaimed) > 0 || cur != etag:
		return false, nil // changed since the listing
	}
	key := manifestKey(u)
	cd, err := s.conditionalDeletes(ctx)
	if err != nil {
		return false, err
	}
	if cd {
		err := s.b.(backend.ConditionalDeleter).DeleteIfMatch(ctx, key, etag)
		switch {
		case errors.Is(err, backend.ErrPreconditionFailed), errors.Is(err, ErrNotFound):
			return false, nil
		case err != nil:
			return false, err
		}
	} else {
		if lease != nil {
			if err := lease.Err(); err != nil {
				return false, fmt.Errorf("%w: lease on %s lost before removing its tombstone: %w", ErrConflict, u, err)
			}
		}
		if err := s.b.Delete(ctx, key); err != nil {
			return false, err
		}
	}
	s.manifests.remove(key)
	return true, nil
}

// backendNow is the backend's clock: the modification time of a scratch
// object written for the purpose (and deleted).
func (s *Store) backendNow(ctx context.Context) (time.Time, error) {
	key := probeRoot + "clock-" + s.newID()
	info, err := s.b.Put(ctx, key, strings.NewReader(""), 0, backend.PutOptions{})
	if err == nil && info.Modified.IsZero() {
		info, err = s.b.Stat(ctx, key)
	}
	if derr := s.b.Delete(context.WithoutCancel(ctx), key); derr != nil {
		s.log.Warn("store: delete scratch object", "key", key, "err", derr)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the backend's clock: %w", err)
	}
	if info.Modified.IsZero() {
		return s.cfg.Now(), nil // a backend that keeps no times
	}
	return info.Modified, nil
}
