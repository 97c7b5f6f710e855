// Package store is artifactstore's artifact store: the portable type *Store
// that keeps the code diffs, execution logs and test results of an agent
// pipeline in any backend.Backend (S3, a local directory, memory), with
// writers of one artifact serialized by a lock.Locker (Redis/Redlock, file
// locks, in-process) and made safe by conditional writes on the object
// store.
//
// An artifact is named by a URI, artifact://<spec>/<task>/<type>, optionally
// ?version=<n> (see ParseURI). Types diff, log and test are built in; custom
// types follow the same rule as spec names and task ids: 1 to 128
// characters of [A-Za-z0-9._-], not "." or "..".
//
// # Layout
//
// Under the backend (which applies its own prefix):
//
//	manifests/<spec>/<task>/<type>.json    the artifact record (JSON, mutable)
//	blobs/<spec>/<task>/<type>/<ulid>      the content of one version (write-once)
//	_usage/shard-<n>.json                  the usage counter of the quota (only with Config.Quota)
//	_index/tags/<tag>/<spec>/<task>/<type> tag index: a zero-byte marker per tag of an artifact
//	_index/tags-ready                      marks the tag index complete (zero bytes)
//	_catalog/                              the catalog (see "Catalog" and package catalog)
//	_probe/conditional-writes.json         when the conditional-write race probe last passed
//
// In a marker key, <tag> is the tag in unpadded base64url (RFC 4648 §5), so
// that a tag holding '/', '.', ':' and the like is one key segment. The tag
// index is a superset of the manifests' tags: for every committed manifest
// and every tag in it, the marker exists (see "Write protocol"). A marker
// whose artifact lacks the tag (stale) is harmless: Search checks every
// result against its manifest. A Store's first write puts
// _index/tags-ready into a bucket without manifests; a bucket written by a
// version of this package without the index has no markers, and until
// Reconcile with Apply builds them (and writes _index/tags-ready) a search
// by tag reads every manifest, as before (the first write of each Store
// logs a warning). Walks of the manifests (Usage, the quota's count,
// VerifyAll, Export, retention) never look under _index/.
//
// The manifest holds the artifact's tags, creation and update times, the
// next version number and its versions; each version has its number, blob
// key (or its content, see below), the SHA-256 (hex) and size of the
// original content, the stored size,
// the compression ("gzip" or none), the MIME type, the creation time, the
// user metadata and the fence token and writer id of the commit that added
// it. The manifest also keeps the ids of its last 64 commits ("commits"),
// the blob keys Reconcile reclaimed ("reclaimed", at most 1,024) and, for a
// deleted artifact, "deleted": true (a tombstone, with no versions and no
// tags). Blobs are the raw content or its gzip stream, so plain S3 tools can
// read the bucket. A manifest is only ever written by a conditional Put
// (if-absent for a new artifact, if-ETag-matches otherwise), and only
// Reconcile removes one (an old tombstone).
//
// Small contents live in the manifest: an upload of known size up to
// Config.InlineMaxBytes (8 KiB) stores its content, uncompressed, in the
// version's "inline" field (base64, as encoding/json writes bytes:
// `jq -r '.versions[-1].inline' | base64 -d` reads it), with an empty
// "blob" and "schema": 2 in the manifest (schema 1 manifests have no such
// version; a release that reads only schema 1 refuses them rather than
// misread them). Such an upload is one conditional Put (plus its entry
// in the catalog's log) and a read of the current version one Get. A
// manifest holds at most 4 x InlineMaxBytes of content: the upload that
// would pass that moves the contents of the oldest versions to new blobs,
// written before its commit and referenced by it, until at most half is
// left (at most 64 per commit, 8 Puts at a time: a manifest written with a
// larger limit gets there over several commits), so the manifest's size
// stays bounded whatever the number of versions. Verify, Export, Reconcile, the catalog (whose segments leave
// the content out) and the quota (stored size = size) treat such a
// version like any other.
//
// User metadata (UploadOptions.UserMetadata) maps keys to JSON values of
// any type; each version stores each value's JSON encoding (a manifest
// written when values were only strings holds JSON strings, read as they
// were), and Metadata.UserMetadata returns them decoded, numbers as
// json.Number, {} when there are none. A value nests at most
// MaxMetadataDepth (16) arrays and objects; the tags and user metadata of a
// version encode to at most Config.MaxMetadataBytes (16 KiB) of JSON.
//
// A manifest is at most MaxManifestBytes (16 MiB) of JSON, read with a
// limit of four times that; an artifact holds at most MaxVersionsLimit
// (10,000) versions, and Config.MaxMetadataBytes is at most
// MaxMetadataBytesLimit (1 MiB). A commit that would pass either bound
// fails with ErrStorageFull and changes nothing, unless it shrinks the
// manifest: an artifact at a bound stays readable, prunable and deletable.
// Each commit rewrites the whole manifest, so its cost grows with the
// number of versions (see BENCHMARKS.md).
//
// # Write protocol
//
// Upload, tag changes, PruneVersions and Delete all run the same protocol:
//
//  1. Validate the input (URI, tags, metadata, reader, size).
//  2. Upload only: stream the content to a new blob with no lock held,
//     gzip-compressing it when configured, computing its SHA-256 and sizes on
//     the way, with bounded memory.
//  3. Acquire the artifact's lock, waiting at most Config.LockTimeout
//     (ErrLockTimeout, with a message stating the timeout). Skipped when
//     Config.DisableLocking, and when the write runs inside a WithLock of
//     the same Store on the same artifact: it then uses the lease WithLock
//     holds (and leaves it held).
//  4. Read the manifest and its ETag. (When this Store has never seen the
//     artifact, an upload first tries to create the manifest with an
//     if-absent Put, saving the read; if the artifact exists after all, the
//     protocol continues from the manifest read back. Likewise, on a
//     write's first attempt, when the manifest this Store holds is the
//     one it committed (or read back unchanged since) and the write
//     adds a version, the new manifest is built on that copy and Put if
//     its ETag still matches; a failed condition continues from the manifest read back.
//     No-ops, deletes and tag changes are always decided on a read.)
//     Meanwhile the write announces itself in the catalog's log (an
//     empty object naming the artifact and the commit id; for a small
//     upload, Put while its content travels in step 2), which step 6
//     waits for: no commit is sent before its entry is stored, and none
//     more than 12 hours after (see "Catalog").
//  5. Build the new manifest. An upload of the content, content type and
//     metadata of the current version is an idempotent no-op; otherwise it
//     adds a version (Config.Versioning, pruning beyond Config.MaxVersions) or
//     replaces the current one (the number still increases).
//     When the new manifest adds tags (an upload with tags the artifact
//     did not have, AddTags, SetTags), step 6 Puts their tag index
//     markers after the lease check and before the manifest; a failure
//     aborts the write with nothing committed (a marker left behind only
//     widens the superset). Writes that keep the tags write no marker.
//  6. Refuse to commit (ErrConflict and ErrLeaseLost) when the lease is
//     already lost, past its expiry by this process's clock, or when its
//     fence is older than the fence of the manifest's last commit and a
//     refresh of the lease fails (a refresh that succeeds proves the lease
//     held: the lock service lost its fence counters, as when a Redis master
//     restarts without persistence; logged). Refuse (ErrConflict) an upload
//     whose blob the manifest lists as reclaimed. Else Put the manifest
//     conditionally on the ETag read in step 4 (if-absent when there was no
//     object), carrying the lease's fence, the writer id and a new commit
//     id appended to the manifest's history. A removal (Delete, the
//     cleanup of an artifact whose versions all expired) is such a Put too:
//     of a tombstone.
//     A Put that fails is never retried blindly (the backend's retry
//     decorator does not re-send conditional Puts); it is resolved by
//     reading the manifest back: its commit id in the history means it
//     landed (even when later commits followed) and the write succeeded;
//     the manifest unchanged means it did not land, and the same bytes are
//     sent again under the same condition (at most Config.Retry.MaxRetries
//     times, re-checking the lease, and, for a create, only while the new
//     blob exists, or for a content stored in the manifest only while a
//     refresh confirms the lease held throughout (without a lock:
//     ErrUnknownOutcome): an absent manifest may also be a deleted one), so that
//     of all the attempts at most one lands; the manifest changed without
//     it means it did not land and
//     never will: another writer committed since step 4, so the lease was
//     lost, and the write fails with ErrConflict (without locking, it is
//     retried from step 4). When none of this can be learned (the read-back
//     fails, the request may still be in flight, more than 64 commits
//     followed, the manifest is gone, a re-send failed for good while an
//     earlier attempt may still land) the write fails with
//     ErrUnknownOutcome, and nothing it may reference is deleted. (A first
//     attempt refused with 412 did not land, even when its read-back
//     fails: ErrConflict under a lock.)
//  7. When the commit removed tags (RemoveTags, SetTags, Delete, the
//     cleanup of expired artifacts), delete their markers while still
//     holding the lock, so that no other writer can re-add a tag in between
//     (it would need the lock, and Puts the marker before its commit); best
//     effort, and only while the lease is valid by this process's clock: a
//     marker left is stale, never wrong. (A deletion still in flight when
//     the lease is lost could remove the marker of a tag that the next
//     holder re-adds at that moment, as a lost lease can for Delete;
//     Reconcile reports and re-creates such a marker.) Release the lock,
//     then delete the blobs no manifest references any more (best effort;
//     leftovers are found by reconcile).
//
// Content of known size up to 1 MiB (and any UploadBytes content) is held in
// memory and handed to the backend as a seekable body, which S3 uploads in
// one request (or parallel parts) and the retry decorator can resend;
// larger streams go through with bounded memory (one gzip writer and the
// backend's part buffer), and are retried by the store when the caller's
// reader can seek.
//
// Whenever the write fails after step 2, the new blob is deleted and nothing
// of it is visible: readers see the old manifest or the new one, never a
// partial artifact. When the outcome of the manifest Put is unknown
// (ErrUnknownOutcome) the blob is kept, for Reconcile to judge.
//
// With Config.DisableLocking, steps 4 to 6 run optimistically: a failed
// condition re-reads, re-applies and retries, up to Config.MaxConflictRetries
// times with backoff, then fails with ErrConflict. Mixing locked and
// unlocked writers on one bucket is not supported. Without locking, tag
// index markers are never deleted (a writer cannot know that no other one
// is re-adding the tag): the stale markers cost searches a manifest read
// each, and Reconcile reports them but deletes them only with locking on.
//
// Before its first write a Store proves that the backend enforces
// conditional Puts (see "Read-only use"), and refuses one that does not
// (backend.ErrUnfencedWrites) unless Config.AllowUnfencedWrites; before
// Reconcile removes its first tombstone it probes whether the backend
// honours If-Match on Delete (backend.ProbeConditionalDelete).
//
// What a party may do after losing its lease (a pause, a partition, a
// broken lock), and the windows that remain:
//
//   - A writer: nothing. Every commit, removal included, is conditional on
//     the ETag read under the lease, so it fails once another holder has
//     committed; a commit of its own that landed before is kept. A stale
//     writer's upload that commits before anyone else does is a valid
//     commit (the lock only makes contention cheap).
//   - Reconcile deleting orphans: nothing either. An orphan is deleted only
//     after a conditional commit recording it as reclaimed has landed, and
//     no later commit may reference a reclaimed blob. Only a writer paused
//     while more than 1,024 later blobs of the same artifact were reclaimed
//     could commit a missing blob.
//   - Reconcile removing an old tombstone: on a backend without
//     conditional deletes (versitygw, MinIO), the tombstone is deleted
//     unconditionally right after a read and a lease check under the lock;
//     a writer whose lease was lost (or one without locks) that commits
//     over the tombstone between that read and the delete loses that
//     commit. With conditional deletes (AWS S3, probed) there is no window.
//   - Deleting tag index markers: see step 7.
//
// # Holding a lock
//
// WithLock runs a function while holding an artifact's lock, for a
// critical section of the caller's own (a read-modify-write, several
// changes that no other writer may interleave). The Store's writes to that
// artifact made with the function's context reuse the held lease: no
// second acquisition, no deadlock, and their commits carry its fence, so
// they are refused once it is lost; the function's context is cancelled
// when the lease is lost. An Upload inside it streams its content while the
// lock is held (step 2 above runs inside the critical section), so keep
// large transfers outside when other writers wait. The lock key of an
// artifact is its URI without version (artifact://<spec>/<task>/<type>), in
// the locker's key namespace (lock.Config.KeyPrefix); IsLocked and
// ForceUnlock take the URI.
//
// # Read protocol
//
// Reads take no lock: read the manifest, pick the version (the newest, or
// ?version=<n>), open the blob, decompress, and check the size and (unless
// Config.DisableVerify) the SHA-256 while streaming; a mismatch is reported
// by the Read that reaches the end (ErrIntegrity instead of io.EOF). When the
// blob vanished because a writer replaced it in between, the manifest is
// read once more. OpenVersion skips the manifest read for a version whose
// Metadata the caller already has. Blobs of 4 MiB or more are read ahead by
// a goroutine (at most 3 MiB buffered per stream) so that the transfer
// overlaps with decompression, hashing and the caller's work.
//
// A Store keeps up to Config.ManifestCacheEntries (1024) decoded manifests,
// keyed by backend key and ETag: a manifest is still read on every
// operation on one artifact, but decoded only when its ETag changed; the
// listings of Search and the bulk operations report each manifest's ETag,
// so a cached manifest whose ETag is listed is not read at all. When reading
// an artifact whose manifest it holds, a Store opens the blob that copy
// names while it reads the manifest, and serves it only if the fresh
// manifest names the same blob: one round trip of latency for hot
// artifacts; a stale guess costs one wasted request, never a wrong answer.
//
// # Retention
//
// Config.Retention gives each type a retention period: diff 30 days, log 7
// days, test 14 days by default, custom types never (RetentionConfig.Default,
// RetainForever) unless configured. A version expires when it is older than
// its type's period, by its creation time and Config.Now; an artifact tagged
// with RetentionConfig.ExemptTag ("retain") never expires. Expired lists the
// expired versions; ExpiresAt tells when one version expires, and
// ExpiringWithin lists the versions that will be expired a window from now
// (the same rule, applied at Config.Now plus the window). Expired and
// CleanupExpired read the catalog's segments that may hold an expired
// version (see "Catalog"), so their cost follows the expired count, not the
// store's size. CleanupExpired deletes them, each artifact under its
// lock by the write protocol: a versioned artifact loses its expired
// versions, and an artifact whose versions all expired is deleted whole. The
// expiry is decided again on the manifest read under the lock, so a version
// uploaded during the cleanup is never deleted. With CleanupOptions.DryRun
// nothing changes. Each deleted version is logged at Info (uri, version,
// bytes, stored_bytes), then a summary, and the report counts artifacts,
// versions and bytes. Removing an artifact whose versions all expired is a
// tombstone commit, like Delete: it fails (ErrConflict) rather than remove
// an upload that landed after its decision.
//
// # Usage and quota
//
// Usage adds up every version of every artifact, in total, by spec, by
// type and by spec and type, in original and stored bytes: exact, not a
// snapshot, from the catalog (a full walk of the manifests without one).
//
// Config.Quota.MaxBytes bounds the stored bytes (after compression: what
// fills the bucket). An upload is checked before its transfer when its
// stored size is known in advance (known size, no compression), so that
// what cannot fit is refused at once, and again after its transfer, before
// its commit, with its exact stored size. The new blob counts whole, even
// when it replaces a version (whose blob is freed only after the commit).
// A refused upload fails with ErrStorageFull and changes nothing (its blob
// is deleted). The check never
// lists the bucket: it reads a usage counter kept in the bucket, 8 small
// shards under _usage/, to which every commit (upload, delete, prune,
// cleanup) adds its change by a conditional Put on a random shard, retried
// on another shard when it loses (a GET and a PUT after each commit, only
// with a quota). A Store reuses the counter it read for
// Quota.RefreshInterval (1s) while usage is below Quota.WarnRatio ×
// MaxBytes, and reads it again (the 8 shards in parallel) before every
// upload above that.
//
// How exact the check is: the uploads of one Store never overshoot the
// quota together, since each reserves its stored size from its check until
// its commit is counted. Across Stores (hosts), a check does not see the
// uploads that other Stores have checked but not counted yet, so usage can
// exceed MaxBytes by at most the stored bytes of the uploads in flight on
// other hosts between their check (after their transfer) and their
// counter update (the lock wait and the commit), plus, while the checking
// Store's last reading was below WarnRatio × MaxBytes, what other hosts
// committed during the last RefreshInterval. With 10 hosts each committing
// one 4 MiB artifact at a time, that is at most 36 MiB.
//
// A warning is logged (Warn, "usage passed the quota warning threshold")
// each time the usage a Store sees rises past WarnRatio × MaxBytes, and
// again only after it fell back below; each Store logs the crossings it
// sees. Each shard remembers the ids of the last 64 commits it counted, so
// an update whose reply was lost is recognised by reading the shard again,
// never counted twice; a removal is a conditional commit, so two deletes
// of one artifact subtract once. The counter falls behind when a process
// dies between a commit and its count, when a write's outcome stays unknown
// (ErrUnknownOutcome), or when a Store without a quota writes to the bucket;
// RecountUsage, or Reconcile with Apply, resets it from the manifests (exact
// when the store is quiet). A Store with a quota that finds no counter
// counts the bucket once, at its first check.
//
// # Verification
//
// VerifyAll reads every version of every artifact (or those a Filter
// selects), VerifyOptions.Concurrency blobs at a time (8), through the same
// verifying reader as downloads and VerifyChecksum, and reports the corrupt
// versions (SHA-256, size or gzip mismatch; invalid manifests), the missing
// blobs (confirmed against a fresh read of the manifest, so a version
// pruned meanwhile is not reported) and the versions it could not read.
//
// # Export
//
// Export writes the artifacts of a spec, or of one task of it, or of one
// task in every spec (ExportOptions.Task alone), to any io.Writer as a ZIP
// archive; ExportFile writes it to a file atomically
// (temporary file, fsync, rename) and returns its path. Entries, in URI
// order, each artifact's content entries first:
//
//	<spec>/<task>/<type>                  the current version's content, decompressed
//	<spec>/<task>/<type>@v<n>             with ExportOptions.AllVersions: each version instead
//	<spec>/<task>/<type>@metadata.json    JSON array of the exported versions' Metadata
//
// Spec, task and type use only [A-Za-z0-9._-], so '@' keeps the names apart
// and every name is a relative path that cannot leave the directory it is
// extracted to (checked again before each entry is written). Names differing
// only in case collide on case-insensitive file systems. Entries are
// deflated unless ExportOptions.NoCompression. Content streams from the
// backend through the verifying reader into the archive with bounded
// memory; ExportOptions.Progress reports artifacts and bytes done and
// total.
//
// # Reconcile
//
// A writer killed between its blob upload and its commit, or a best-effort
// blob deletion that failed, leaves a blob no manifest references.
// Reconcile reads every manifest, then lists blobs/, and reports these
// orphans, and the versions whose blob is missing. Only blobs older than
// ReconcileOptions.GracePeriod (1h) are orphans; ages are measured on the
// backend's clock (with Apply, against the Last-Modified of a scratch
// object it writes; a dry run uses Config.Now). It is a dry run unless
// ReconcileOptions.Apply: then the orphans of each artifact are checked once
// more against its manifest, read under the artifact's lock, and fenced
// before they are deleted: a conditional commit adds them to the manifest's
// reclaimed list (to a tombstone's when the artifact does not exist), so
// that an upload still holding one of them (paused past the grace period,
// or run on a clock far behind) fails with ErrConflict instead of
// committing a version without content. Apply also removes the tombstones
// older than the grace period that record no reclaimed blob (see "Write
// protocol" for the window on backends without conditional deletes) and,
// with a quota, resets the usage counter (ReconcileReport.UsageDrift says
// how far it was off). Keys under blobs/ or _index/tags/ outside the
// layout, and the blobs of artifacts whose manifest is not valid, are
// reported and never deleted.
//
// Reconcile also checks the tag index (after the walk of the manifests, it
// lists _index/tags/): missing markers (a tag of a manifest without its
// marker: a search by that tag would miss the artifact) and stale markers
// (a marker whose artifact lacks the tag, or is gone), each confirmed
// against a fresh read of the manifest. With Apply, missing markers are
// created (no lock needed: a marker too many is harmless) and, with locking
// on, each stale marker is deleted under its artifact's lock, right after
// the manifest read under it shows the tag absent; then, when no marker
// failed, _index/tags-ready is written (building the index of a bucket
// written before it existed).
//
// # Catalog
//
// The catalog (package catalog documents its objects) indexes every
// artifact in the bucket, so that Search without a spec, Usage and the
// retention plan (Expired, CleanupExpired) do not read every manifest: a
// query lists the catalog's log (the artifacts written since the last
// compaction), reads its root, the manifests of the logged artifacts
// (the truth for them) and only the segments whose statistics (types,
// tags, time ranges, oldest version by type) may hold an answer. Its
// answers equal a walk of the manifests after any history of writes,
// failures and crashes: every commit is announced in the log before it
// can land (step 4 of "Write protocol"), and an entry leaves the log only
// once a compaction saw its commit in the manifest and committed a root
// that holds it.
//
// Stores keep it compact as they write: after a commit, with probability
// 1/CatalogConfig.CompactEvery (512), a Store compacts it in the
// background if no other process is (the catalog lock, then a conditional
// Put of the root); after its first commit, a Store builds the catalog of
// a bucket that has none. CompactCatalog (the CLI's "compact") does it
// at once, and Reconcile with Apply rebuilds it from the manifests. A
// compaction reads one manifest per logged artifact and rewrites the
// segments that hold them (CatalogConfig.SegmentRecords, 2048 artifacts
// each); it is safe to run from any number of processes and to interrupt
// anywhere. A root, segment or log entry that is missing or damaged is
// detected (lengths and SHA-256 in the root) and never trusted: queries
// read the manifests, and the next compaction rebuilds the catalog. A
// bucket without a catalog (new, or written by a version of this package
// without one) is answered from the manifests until one is built.
//
// All writers of a bucket must be of a version that writes the catalog's
// log (or the catalog must be rebuilt, by Reconcile with Apply, after
// older writers wrote).
//
// # Read-only use
//
// New and every read (Download, Open, Stat, Exists, Versions, Search,
// SearchSeq, SearchPage, the listings, Usage, VerifyChecksum, VerifyAll,
// Export, ExpiresAt, ExpiringWithin, Expired, IsLocked, CleanupExpired
// with DryRun, Reconcile without Apply, Ping) write nothing, to the bucket
// or to the lock service: credentials that may only read (an S3 user with
// a read-only policy, a read-only directory) can read everything.
//
// The first write of a Store of any kind (a Put or Delete, also the
// scratch objects of Reconcile and PrepareWrites) runs the write checks
// first, once per Store, however many goroutines write at once:
//
//  1. The conditional-write probe. When the bucket's record
//     _probe/conditional-writes.json ({"checked": <time>, "writer":
//     <WriterID>}) says the race probe passed less than a day ago (by
//     Config.Now), only the sequential checks run
//     (backend.ProbeConditionalPutSequential, five Puts and their
//     cleanup); otherwise the whole probe runs (backend.ProbeConditionalPut,
//     about 70 requests with 64 racing Puts) and, when it passes, rewrites
//     the record. The sequential checks still catch a server that ignores
//     the conditions (a bucket copied to another server); a server that
//     checks them without atomicity is caught within a day. Scratch
//     objects live under _probe/ and are deleted afterwards.
//  2. In a bucket without manifests, _index/tags-ready is written.
//
// A backend that fails the probe is refused for good: that write and
// every later one of the Store fail with backend.ErrUnfencedWrites,
// before anything is stored (unless Config.AllowUnfencedWrites, which
// logs a warning and writes no record). Any other failure of the checks
// (permission denied, a network error, a cancelled context) fails that
// write only; the next one checks again. ProbeStatus tells where the
// checks stand; PrepareWrites runs them at once, for programs that write
// and want to fail at startup. Locks are taken only by writes (and
// WithLock), and the lockers of this module write nothing before their
// first acquisition (filelock registers its holder then).
//
// Ping is the health check: a Stat and one listing page of the backend, a
// ping of the lock service (a quorum of Redis masters; the locker must
// implement lock.Pinger), the probe's state and the bucket's probe
// record; its error matches ErrUnhealthy and the failure's own sentinel.
//
// # Search
//
// Search, SearchSeq and SearchPage (a page of Page.Limit results after
// the cursor Page.After, an artifact URI) return results in URI order.
// Without a spec in the filter they read the catalog (see "Catalog"): a
// first page costs the root, a few segments and the logged manifests
// whatever the size of the store, and the whole result set the segments
// that may hold matches. With a spec, or without a usable catalog, Search
// lists only the narrowest manifest prefix the filter allows (spec,
// spec and task, or one manifest when spec, task and type are all set).
// With tags (and a complete tag index), it lists instead the markers of
// each tag under _index/tags/<tag>/, narrowed by spec and task, keeps the
// artifacts that every tag names and that pass the type, reads only their
// manifests (Config.ListConcurrency at a time) and checks the whole filter
// on them, so a stale marker costs a read and never a wrong result. When
// more than 1,000 artifacts are left, it lists the manifests instead and
// reads the candidates whose cached copy is not current. Over 10,000
// artifacts of which 100 carry the tag, a search costs one listing page
// and 100 reads, cold or warm (see BENCHMARKS.md).
//
// # Errors
//
// Errors match these values with errors.Is, through every wrapper:
// ErrNotFound (the same value as backend.ErrNotFound), ErrInvalidArgument
// (backend.ErrInvalidArgument), ErrIntegrity, ErrStorageFull and
// ErrPermissionDenied (the backend's), ErrLockTimeout (lock.ErrTimeout),
// ErrLocked (lock.ErrLocked), ErrLeaseLost (lock.ErrLeaseLost), ErrConflict,
// ErrUnsupported (errors.ErrUnsupported), ErrClosed (backend.ErrClosed) and,
// from Ping, ErrUnhealthy.
// The backend's and lock service's own errors stay in the chain for
// errors.As, and a cancelled context gives an error matching ctx.Err().
// Transient backend failures are retried (Config.Retry) before they are
// returned. Every failed public call is logged once on Config.Logger with
// its op, uri and error (and the backend's own error when the message
// leaves it out), never at Error since the caller gets the error: expected
// outcomes (not found, invalid input, cancellation) at Debug, contention
// (conflict, lock timeout, lock held) at Info, other failures at Warn.
// Credentials are never logged (the store has none).
//
// Messages name the artifact once and the cause in a user's words: a
// missing artifact or version is "artifact://s/t/log: no such artifact" or
// "artifact://s/t/log: no version 3" (no storage key or file path; the
// backend's error stays in the chain for errors.As), limits are named by
// their environment variable (ARTIFACTSTORE_MAX_TAGS,
// ARTIFACTSTORE_QUOTA_MAX_BYTES), and a name or tag with a character
// outside its alphabet quotes that character as typed.
//
// # Metrics and traces
//
// Config.Telemetry gives a Prometheus Registerer and an OpenTelemetry
// TracerProvider (package telemetry); New wraps the backend and the locker
// in telemetry's decorators, which keep their optional capabilities. Each
// public call is then one span named "artifactstore."+op (op as in the log
// records: upload, download, open, stat, search, delete, add-tags,
// with-lock, ...) whose children are the lock and backend calls it made,
// and counts in artifactstore_operations_total,
// artifactstore_operation_errors_total (by error kind: not_found,
// conflict, lock_timeout, ...) and artifactstore_operation_duration_seconds;
// with bytes, retries, lock wait and hold times, lost leases, commit
// conflicts and the quota counter besides. The calls made inside WithLock's
// function count on their own and trace as children of its span. The zero Config.Telemetry records nothing and wraps
// nothing.
//
// # Concurrency
//
// A Store is safe for concurrent use, and any number of Stores in any
// number of processes and hosts may share one bucket and one lock service.
// Every upload that returned success is present afterwards, as the current
// content or, with versioning, as a version with a unique number (numbers
// have no gaps except where versions were pruned or deleted). Reads never
// block on writers. Listings and Search read manifests
// Config.ListConcurrency at a time; they are not snapshots: an artifact
// changed during the listing appears in its state at the time it was read.
//
// # Configuration
//
// Config's zero value is the default: locking on with a 30s LockTimeout
// (the locker's own lock.Config sets its retry interval, backoff and
// expiry), versioning off, MaxVersions 0 (unlimited), compression off
// (when on: content of CompressionMinSize 1 KiB or more, gzip level
// CompressionLevel gzip.BestSpeed), checksum verification on download on,
// Retry as backend.RetryConfig's defaults (3 retries, exponential backoff
// with full jitter), MaxMetadataBytes 16 KiB, MaxTags 64,
// MaxConflictRetries 10 with ConflictBackoff 10ms, ListConcurrency 32,
// ManifestCacheEntries 1024, WriterID "<hostname>:<pid>", Logger
// discarding, Now time.Now, AllowUnfencedWrites false, Retention diff 30
// days, log 7 days, test 14 days, custom types never, tag "retain" exempt,
// Quota unlimited (when set: WarnRatio 0.8, RefreshInterval 1s), Telemetry
// none.
// ConfigFromEnv reads the same fields from ARTIFACTSTORE_* environment
// variables.
package store
