// Package catalog is the format of artifactstore's catalog: an index of
// every artifact that lives in the same bucket as the artifacts, so that
// searches by tag, type or time, usage reports and the retention plan read a
// few catalog objects instead of every manifest. The manifests stay the
// truth; the catalog is derived from them, kept current by the write path,
// and rebuilt from them whenever it is missing or damaged. Package store
// writes and reads it; this package holds the objects' format and the pure
// operations on them (no I/O).
//
// # Layout
//
// Under the backend's prefix, next to manifests/ and blobs/:
//
//	_catalog/root.json                               the root (JSON, mutable)
//	_catalog/segments/<ulid>.jsonl.gz                a segment (immutable)
//	_catalog/segments/usage-<ulid>.json.gz           the usage totals (immutable)
//	_catalog/log/<spec>/<task>/<type>/<commit id>    a log entry (empty, immutable)
//
// A segment is gzip-compressed JSON lines, two per Record, sorted by
// artifact key (<spec>/<task>/<type>, which orders like the artifact URI):
// first the record (the artifact's names, tags, creation and update times,
// its versions' numbers, creation times and sizes), then its whole
// manifest (as package store encodes it, without the commit history), so
// that a query decodes the manifests of the records it keeps only.
// `zcat segment | jq` reads it.
//
// The root (Root) lists the segments in key order, each with its length,
// SHA-256, first and last keys and statistics (records by type and by tag,
// the ranges of current-version creation and update times, and by type
// the oldest version of the artifacts that are not exempt from
// retention), and names (with length and SHA-256) the usage object: the
// totals by spec and type as one gzip JSON array, which only usage
// reports and compactions read, so that every query's read of the root
// stays small however many specs there are. The segments
// partition the key space: segment i covers the keys from its First up to
// the next segment's First (the first one also those below its First), so
// an artifact's record, if any, is in exactly one segment (Locate).
//
// A log entry announces one write: its key names the artifact and the id
// of the commit the write makes (the id the manifest records in its commit
// history). Listing the log tells which artifacts changed since the root
// was built without reading any entry.
//
// # Protocol (package store)
//
//   - A write puts its log entry before its commit can land (a small
//     upload puts it while its content travels), and refuses to commit
//     when the entry is not stored. A commit therefore never lands
//     unannounced, whatever fails or crashes after.
//   - A query lists the log, then reads the root (in that order: an entry
//     a concurrent compaction deletes was folded into the root read
//     after), reads the manifests of the artifacts the log names (the
//     truth for them), and reads only the segments whose statistics may
//     hold an answer, skipping their records of logged artifacts. Usage
//     is the root's totals, minus the segment records of the logged
//     artifacts, plus their manifests.
//   - Compaction (under a lock, and conditional on the root's ETag, so a
//     stale compactor cannot commit) reads the manifests the log names,
//     rewrites the segments that hold them into new segment objects,
//     commits the new root, then deletes the log entries whose commit id
//     its manifest reads showed (and those older than a horizon, 24h,
//     whose write can no longer commit: writers refuse to commit more than
//     half of it after writing their entry), then the replaced segments.
//     Interrupted anywhere, it leaves a catalog that is still exact: new
//     segments no root lists (deleted by a later rebuild), or entries
//     already folded (read again, harmlessly, until the next compaction).
//   - A root that does not decode, a segment whose length or SHA-256
//     differs from the root's, or a segment the root lists that is gone
//     under an unchanged root, is never trusted: queries read the
//     manifests instead, and the next compaction rebuilds the catalog from
//     a walk of every manifest (streamed, one segment at a time).
package catalog
