package catalog

import (
	"encoding/json"
	"slices"
	"time"
)

// Record is one artifact in the catalog: what searches, usage and the
// retention plan need to decide without the manifest, and the manifest
// itself (Manifest, the store's own JSON of it, opaque here) to answer
// with.
type Record struct {
	Spec string `json:"spec"`
	Task string `json:"task"`
	Type string `json:"type"`
	// Tags is the artifact's sorted tag set.
	Tags []string `json:"tags"`
	// Created is when the artifact was created, Updated when its manifest
	// was last committed, Current when its current version was created.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Current time.Time `json:"current"`
	// Versions are the artifact's versions, oldest first.
	Versions []Version `json:"versions"`
	// Manifest is the artifact's manifest as the store encodes it (one
	// line of JSON). A segment holds it on the line after the record's, so
	// that a query decodes only the manifests of the records it keeps.
	Manifest json.RawMessage `json:"-"`
}

// Version is one version of a Record: its number, creation time and sizes.
type Version struct {
	Version    int       `json:"n"`
	Created    time.Time `json:"created"`
	Size       int64     `json:"size"`
	StoredSize int64     `json:"stored_size"`
}

// Key is the record's artifact key, <spec>/<task>/<type>: records are
// sorted by it, and so are search results (it orders like the artifact
// URI).
func (r *Record) Key() string { return ArtifactKey(r.Spec, r.Task, r.Type) }

// ArtifactKey is the catalog key of an artifact.
func ArtifactKey(spec, task, typ string) string { return spec + "/" + task + "/" + typ }

// HasTag reports whether the record carries tag.
func (r *Record) HasTag(tag string) bool {
	_, ok := slices.BinarySearch(r.Tags, tag)
	return ok
}

// Totals counts artifacts, versions and bytes (original and stored).
type Totals struct {
	Artifacts   int64 `json:"artifacts"`
	Versions    int64 `json:"versions"`
	Bytes       int64 `json:"bytes"`
	StoredBytes int64 `json:"stored_bytes"`
}

// Plus is t + o.
func (t Totals) Plus(o Totals) Totals {
	return Totals{t.Artifacts + o.Artifacts, t.Versions + o.Versions, t.Bytes + o.Bytes, t.StoredBytes + o.StoredBytes}
}

// Minus is t - o.
func (t Totals) Minus(o Totals) Totals {
	return Totals{t.Artifacts - o.Artifacts, t.Versions - o.Versions, t.Bytes - o.Bytes, t.StoredBytes - o.StoredBytes}
}

// TotalsOf counts one record (nil counts nothing).
func TotalsOf(r *Record) Totals {
	if r == nil {
		return Totals{}
	}
	t := Totals{Artifacts: 1, Versions: int64(len(r.Versions))}
	for _, v := range r.Versions {
		t.Bytes += v.Size
		t.StoredBytes += v.StoredSize
	}
	return t
}
