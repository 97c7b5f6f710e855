package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// The versions of the manifest JSON this package writes: schemaBlobs when
// every version's content is a blob, schemaInline when a version's content
// is inside the manifest (version.Inline), which earlier releases would
// misread as a version without content. A manifest with a newer schema is
// refused rather than misread.
const (
	schemaBlobs  = 1
	schemaInline = 2
)

// schemaOf is the schema m is written with.
func schemaOf(m *manifest) int {
	for i := range m.Versions {
		if m.Versions[i].inline() {
			return schemaInline
		}
	}
	return schemaBlobs
}

// maxManifestBytes bounds how much of a manifest object is read, so a stray
// huge object under manifests/ cannot exhaust memory. It is four times
// MaxManifestBytes, the bound on what a commit may write, so that every
// manifest this package writes stays readable.
const maxManifestBytes = 4 * MaxManifestBytes

// MaxManifestBytes bounds the JSON manifest of one artifact (its tags and
// the records of all its versions, user metadata included). A commit that
// would write a larger manifest fails with ErrStorageFull and changes
// nothing, unless it shrinks the manifest (a version delete, a prune, a
// delete of the artifact), so an artifact at the bound stays readable,
// prunable and deletable.
const MaxManifestBytes = 16 << 20

// MaxVersionsLimit bounds the versions one artifact holds: an upload that
// would add one more fails with ErrStorageFull (prune old versions, or set
// Config.MaxVersions to prune them on upload); Config.MaxVersions cannot
// be larger.
const MaxVersionsLimit = 10000

// commitHistory is how many recent commit ids a manifest keeps (Commits):
// a writer whose manifest Put had an unknown outcome finds its own commit
// there, even after later commits replaced its manifest.
const commitHistory = 64

// reclaimHistory is how many reclaimed blob keys a manifest keeps
// (Reclaimed): the blobs Reconcile deleted while they were unreferenced,
// which no later commit may reference.
const reclaimHistory = 1024

// maxDrainBytes bounds how much of an unneeded body is read before it is
// closed, so that an HTTP connection can be reused.
const maxDrainBytes = 1 << 20

// compressionGzip is the only compression the store writes.
const compressionGzip = "gzip"

// manifest is the artifact record stored (as JSON) under manifestKey. It is
// the only mutable object of an artifact and is written only by conditional
// Puts (see mutate). A tombstone (Deleted) records that the artifact was
// deleted: readers treat it as not found, and the next upload replaces it.
type manifest struct {
	manifestHeader
	// Versions are in ascending order of Version; never empty, except in a
	// tombstone, which has none.
	Versions []version `json:"versions"`
}

// manifestHeader is the manifest without its versions: encodeManifest
// encodes it once and appends the versions' cached encodings.
type manifestHeader struct {
	Schema int    `json:"schema"`
	URI    string `json:"uri"`
	Spec   string `json:"spec"`
	Task   string `json:"task"`
	Type   string `json:"type"`
	// Tags is a sorted set.
	Tags []string `json:"tags"`
	// Created is when the artifact was first uploaded; Updated when the
	// manifest was last committed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// NextVersion is the number the next version gets. Numbers are never
	// reused while the artifact exists, even when versions are pruned or
	// replaced; an artifact uploaded again after a Delete starts again at
	// version 1 (its tombstone keeps the old NextVersion, for operators).
	NextVersion int `json:"next_version"`
	// Fence and Writer identify the commit that wrote this manifest: the
	// fence token of the writer's lease (0 without locking) and its
	// Config.WriterID. Commit is unique per commit.
	Fence  uint64 `json:"fence"`
	Writer string `json:"writer"`
	Commit string `json:"commit"`
	// Commits are the ids of the last commits of the artifact (at most
	// commitHistory), oldest first, Commit last: how a writer whose
	// manifest Put had an unknown outcome learns that it landed.
	Commits []string `json:"commits,omitempty"`
	// Deleted marks a tombstone: the artifact was deleted by the commit
	// Commit. It has no versions and no tags.
	Deleted bool `json:"deleted,omitempty"`
	// Reclaimed are the blob keys of this artifact that Reconcile deleted
	// as orphans (at most reclaimHistory, oldest first). A commit that
	// would reference one of them is refused: its upload outlived the
	// grace period and its content is gone.
	Reclaimed []string `json:"reclaimed,omitempty"`
}

// version is one stored content of an artifact. A version is immutable
// once built: mutations add and remove versions, never change one (its
// Metadata map is shared between clones of a manifest).
type version struct {
	Version int `json:"version"`
	// Blob is the key of the blob holding the content; empty when the
	// content is Inline.
	Blob string `json:"blob"`
	// Inline is the content itself, uncompressed (base64 in the JSON), for
	// a content of at most Config.InlineMaxBytes stored inside the
	// manifest (Blob empty). The catalog's copy of a manifest leaves it
	// out.
	Inline []byte `json:"inline,omitempty"`
	// SHA256 is the hex digest of the original (uncompressed) content.
	SHA256 string `json:"sha256"`
	// Size is the original length; StoredSize the length of the blob.
	Size        int64     `json:"size"`
	StoredSize  int64     `json:"stored_size"`
	Compression string    `json:"compression,omitempty"`
	ContentType string    `json:"content_type"`
	Created     time.Time `json:"created"`
	// Metadata is the user metadata: each value's JSON encoding (a
	// manifest written when values were strings holds JSON strings).
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
	// Fence and Writer of the commit that added this version.
	Fence  uint64 `json:"fence"`
	Writer string `json:"writer"`

	// raw caches the version's JSON encoding and checked records that it
	// passed validation, so that a commit to an artifact with many
	// versions re-encodes and re-checks only what changed.
	raw     []byte
	checked bool
}

// artifactURI is the manifest's artifact, without version.
func (m *manifest) artifactURI() URI { return URI{Spec: m.Spec, Task: m.Task, Type: m.Type} }

// current is the newest version.
func (m *manifest) current() *version { return &m.Versions[len(m.Versions)-1] }

// find returns version n, or the current version when n is 0; nil when the
// manifest has no such version (a tombstone has none).
func (m *manifest) find(n int) *version {
	if len(m.Versions) == 0 {
		return nil
	}
	if n == 0 {
		return m.current()
	}
	i, ok := slices.BinarySearchFunc(m.Versions, n, func(v version, n int) int { return v.Version - n })
	if !ok {
		return nil
	}
	return &m.Versions[i]
}

// clone returns a copy whose tags and version list a mutation may change
// freely (the versions themselves are immutable and shared).
func (m *manifest) clone() *manifest {
	c := *m
	c.Tags = slices.Clone(m.Tags)
	c.Versions = slices.Clone(m.Versions)
	return &c
}

// inline reports whether v's content is inside the manifest.
func (v *version) inline() bool { return v.Blob == "" }

// blobs returns the blob keys of every version whose content is a blob.
func (m *manifest) blobs() []string {
	keys := make([]string, 0, len(m.Versions))
	for _, v := range m.Versions {
		if !v.inline() {
			keys = append(keys, v.Blob)
		}
	}
	return keys
}

// inlineBytes is the size of the content m holds inline.
func (m *manifest) inlineBytes() int64 {
	var n int64
	for _, v := range m.Versions {
		if v.inline() {
			n += v.Size
		}
	}
	return n
}

// validate checks that m is a well-formed record of the artifact u.
func (m *manifest) validate(u URI) error {
	switch {
	case m.Schema != schemaBlobs && m.Schema != schemaInline:
		return fmt.Errorf("schema %d, this version of the store reads %d and %d", m.Schema, schemaBlobs, schemaInline)
	case m.Spec != u.Spec || m.Task != u.Task || m.Type != u.Type || m.URI != u.Artifact().String():
		return fmt.Errorf("records artifact %q, stored as %q", m.URI, u.Artifact())
	case m.Deleted && (len(m.Versions) > 0 || len(m.Tags) > 0):
		return fmt.Errorf("a tombstone with versions or tags")
	case !m.Deleted && len(m.Versions) == 0:
		return fmt.Errorf("no versions")
	case !slices.IsSorted(m.Tags) || len(slices.Compact(slices.Clone(m.Tags))) != len(m.Tags):
		return fmt.Errorf("tags are not a sorted set")
	}
	prefix := blobPrefix(u)
	prev := 0
	for i := range m.Versions {
		v := &m.Versions[i]
		switch {
		case v.Version <= prev:
			return fmt.Errorf("version %d after version %d", v.Version, prev)
		case v.Version >= m.NextVersion:
			return fmt.Errorf("version %d not below next_version %d", v.Version, m.NextVersion)
		}
		prev = v.Version
		if v.checked {
			continue
		}
		switch {
		case v.inline() && (m.Schema != schemaInline || v.Compression != "" || v.StoredSize != v.Size):
			return fmt.Errorf("version %d: no blob key, and not inline content", v.Version)
		case !v.inline() && len(v.Inline) > 0:
			return fmt.Errorf("version %d: both a blob and inline content", v.Version)
		case !v.inline() && (len(v.Blob) <= len(prefix) || v.Blob[:len(prefix)] != prefix || backend.ValidateKey(v.Blob) != nil):
			return fmt.Errorf("version %d: blob key %q outside %q", v.Version, v.Blob, prefix)
		case !isHexSHA256(v.SHA256):
			return fmt.Errorf("version %d: malformed sha256 %q", v.Version, v.SHA256)
		case v.Size < 0 || v.StoredSize < 0:
			return fmt.Errorf("version %d: negative size", v.Version)
		case v.Compression != "" && v.Compression != compressionGzip:
			return fmt.Errorf("version %d: unknown compression %q", v.Version, v.Compression)
		}
		v.checked = true
	}
	return nil
}

// isHexSHA256 reports whether s is a SHA-256 digest in lower-case hex.
func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// encodeManifest encodes m as the JSON object decodeManifest reads, reusing
// (and filling) each version's cached encoding.
func encodeManifest(m *manifest) ([]byte, error) {
	head, err := json.Marshal(m.manifestHeader)
	if err != nil {
		return nil, err
	}
	size := len(head) + 16
	for i := range m.Versions {
		v := &m.Versions[i]
		if v.raw == nil {
			if v.raw, err = json.Marshal(v); err != nil {
				return nil, err
			}
		}
		size += len(v.raw) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, head[:len(head)-1]...) // without the closing brace
	out = append(out, `,"versions":[`...)
	for i, v := range m.Versions {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, v.raw...)
	}
	return append(out, "]}"...), nil
}

// decodeManifest parses and validates the manifest of u. A malformed record
// matches ErrIntegrity.
func decodeManifest(u URI, data []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, integrityf("manifest of %s: %v", u.Artifact(), err)
	}
	if err := m.validate(u); err != nil {
		return nil, integrityf("manifest of %s: %v", u.Artifact(), err)
	}
	return &m, nil
}

// readManifest reads u's manifest and its ETag. A missing manifest (or a
// tombstone) gives an error matching ErrNotFound. The manifest returned may
// be shared (cached): callers clone it before changing it.
func (s *Store) readManifest(ctx context.Context, u URI) (*manifest, string, error) {
	m, etag, err := s.readManifestObject(ctx, u)
	if err != nil {
		return nil, "", err
	}
	if m.Deleted {
		return nil, "", errNotFound(u.Artifact(), nil)
	}
	return m, etag, nil
}

// readManifestObject is readManifest, tombstones included: what the write
// protocol conditions its commits on. Only a missing object gives
// ErrNotFound.
func (s *Store) readManifestObject(ctx context.Context, u URI) (*manifest, string, error) {
	key := manifestKey(u)
	rc, info, err := s.b.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, "", errNotFound(u.Artifact(), err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read manifest of %s: %w", u.Artifact(), err)
	}
	defer rc.Close()
	if m := s.manifests.get(key, info.ETag); m != nil {
		// Drain the body so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxDrainBytes))
		return m, info.ETag, nil
	}
	var buf bytes.Buffer
	if info.Size > 0 && info.Size <= maxManifestBytes {
		buf.Grow(int(info.Size) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read manifest of %s: %w", u.Artifact(), err)
	}
	if n > maxManifestBytes {
		return nil, "", integrityf("manifest of %s is larger than %d bytes", u.Artifact(), maxManifestBytes)
	}
	m, err := decodeManifest(u, buf.Bytes())
	if err != nil {
		return nil, "", err
	}
	s.manifests.put(key, info.ETag, m)
	return m, info.ETag, nil
}

// manifestCache keeps recently read or written manifests by key and ETag,
// so that reading a manifest that did not change costs a Get but no
// decoding (the Get still decides: a manifest is only reused when the
// backend reports the same ETag). Entries are immutable; the cache holds at
// most maxEntries of them and evicts arbitrary ones beyond.
type manifestCache struct {
	mu         sync.Mutex
	maxEntries int
	entries    map[string]cachedManifest
}

type cachedManifest struct {
	etag string
	m    *manifest
	// committed: this Store wrote it (rather than read it).
	committed bool
}

func newManifestCache(maxEntries int) *manifestCache {
	return &manifestCache{maxEntries: maxEntries, entries: make(map[string]cachedManifest)}
}

func (c *manifestCache) get(key, etag string) *manifest {
	if c == nil || etag == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.etag == etag {
		return e.m
	}
	return nil
}

// peek returns the cached entry of key whatever its ETag is now (it may be
// stale); its m is nil when there is none.
func (c *manifestCache) peek(key string) cachedManifest {
	if c == nil {
		return cachedManifest{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key]
}

// put caches m, read with etag.
func (c *manifestCache) put(key, etag string, m *manifest) {
	c.add(key, cachedManifest{etag: etag, m: m})
}

// putCommitted caches m, which this Store committed, stored with etag.
func (c *manifestCache) putCommitted(key, etag string, m *manifest) {
	c.add(key, cachedManifest{etag: etag, m: m, committed: true})
}

func (c *manifestCache) add(key string, e cachedManifest) {
	if c == nil || e.etag == "" || c.maxEntries <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.maxEntries {
		for k := range c.entries { // evict one arbitrary entry
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = e
}

func (c *manifestCache) remove(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// metadataOf describes version v of m.
func metadataOf(m *manifest, v *version) Metadata {
	u := m.artifactURI().WithVersion(v.Version)
	values, strs := userMetadataOf(v.Metadata)
	return Metadata{
		URI:          u.String(),
		TaskID:       m.Task,
		SpecName:     m.Spec,
		Type:         m.Type,
		Size:         v.Size,
		StoredSize:   v.StoredSize,
		SHA256:       v.SHA256,
		CreatedAt:    v.Created,
		MimeType:     v.ContentType,
		Compressed:   v.Compression != "",
		OriginalSize: v.Size,
		Tags:         slices.Clone(m.Tags),
		Version:      v.Version,
		UserMetadata: values,
		Metadata:     strs,
		UpdatedAt:    m.Updated,
		BlobKey:      v.Blob,
		Fence:        v.Fence,
		Writer:       v.Writer,
	}
}
