package store

import (
	"encoding/json"
	"mime"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Metadata describes one version of an artifact (R3). It is what Upload,
// Stat, Versions, the listings and Search return, and it marshals to the
// JSON the requirements name.
type Metadata struct {
	// URI names this version: artifact://<spec>/<task>/<type>?version=<n>.
	URI      string `json:"uri"`
	TaskID   string `json:"task_id"`
	SpecName string `json:"spec_name"`
	Type     string `json:"type"`
	// Size is the length of the content as uploaded and downloaded.
	Size int64 `json:"size"`
	// StoredSize is the length of the stored blob (smaller than Size when
	// compressed).
	StoredSize int64 `json:"stored_size"`
	// SHA256 is the hex digest of the content as uploaded.
	SHA256 string `json:"sha256"`
	// CreatedAt is when this version was uploaded (Config.Now).
	CreatedAt time.Time `json:"created_at"`
	// MimeType is the content type given at upload.
	MimeType string `json:"mime_type"`
	// Compressed reports whether the blob is gzip-compressed.
	Compressed bool `json:"compressed"`
	// OriginalSize equals Size; kept as its own field for R3.
	OriginalSize int64 `json:"original_size"`
	// Tags are the artifact's tags (shared by all its versions), sorted.
	Tags []string `json:"tags"`
	// Version is this version's number, from 1, never reused.
	Version int `json:"version"`
	// Metadata is the user metadata given at upload.
	Metadata map[string]string `json:"metadata"`

	// UpdatedAt is when the artifact's record was last changed (upload,
	// tag change, prune).
	UpdatedAt time.Time `json:"updated_at"`
	// BlobKey is the backend key of the content, for OpenVersion and
	// operators' tools.
	BlobKey string `json:"blob_key"`
	// Fence and Writer identify the commit that added this version: the
	// fence token of the writer's lease (0 without locking) and the
	// writer's Config.WriterID.
	Fence  uint64 `json:"fence,omitempty"`
	Writer string `json:"writer,omitempty"`
}

// UploadOptions are the optional parameters of Upload.
type UploadOptions struct {
	// ContentType is the MIME type recorded with the version. Default
	// "application/octet-stream".
	ContentType string
	// Tags are added to the artifact's tags (use SetTags to replace them).
	Tags []string
	// Metadata is free-form user metadata of the new version: valid UTF-8
	// keys (1-128 bytes, no control characters) and values. Together with
	// the tags it must encode to at most Config.MaxMetadataBytes of JSON.
	Metadata map[string]string
}

// DefaultContentType is recorded when UploadOptions.ContentType is empty.
const DefaultContentType = "application/octet-stream"

// Limits on tags and metadata.
const (
	// MaxTagLength is the longest tag, in bytes.
	MaxTagLength = 128
	// MaxMetadataKeyLength is the longest user metadata key, in bytes.
	MaxMetadataKeyLength = 128
	// maxContentTypeLength bounds UploadOptions.ContentType.
	maxContentTypeLength = 255
)

// ValidateTag checks one tag: 1 to MaxTagLength characters of
// [A-Za-z0-9._:=+@/-]. The error matches ErrInvalidArgument.
func ValidateTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLength {
		return invalidf("tag %q: want 1 to %d characters", tag, MaxTagLength)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !isNameByte(c) && c != ':' && c != '=' && c != '+' && c != '@' && c != '/' {
			return invalidf("tag %q: character %q is not one of [A-Za-z0-9._:=+@/-]", tag, c)
		}
	}
	return nil
}

// normalizeTags validates tags and returns them as a sorted set.
func normalizeTags(tags []string) ([]string, error) {
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(tags)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// mergeTags returns the sorted union of two sorted sets.
func mergeTags(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// validateContentType checks a MIME type and returns it, or the default when
// empty.
func validateContentType(ct string) (string, error) {
	if ct == "" {
		return DefaultContentType, nil
	}
	if len(ct) > maxContentTypeLength {
		return "", invalidf("content type is %d bytes, more than %d", len(ct), maxContentTypeLength)
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil {
		return "", invalidf("content type %q: %v", ct, err)
	}
	return ct, nil
}

// validateUserMetadata checks metadata keys and values.
func validateUserMetadata(md map[string]string) error {
	for k, v := range md {
		switch {
		case k == "" || len(k) > MaxMetadataKeyLength:
			return invalidf("metadata key %q: want 1 to %d bytes", k, MaxMetadataKeyLength)
		case !utf8.ValidString(k):
			return invalidf("metadata key %q is not valid UTF-8", k)
		case !utf8.ValidString(v):
			return invalidf("metadata value of %q is not valid UTF-8", k)
		case hasControl(k):
			return invalidf("metadata key %q contains a control character", k)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// checkMetadataSize refuses tags and metadata that encode to more than max
// bytes of JSON.
func checkMetadataSize(tags []string, md map[string]string, max int) error {
	b, err := json.Marshal(struct {
		Tags     []string          `json:"tags"`
		Metadata map[string]string `json:"metadata"`
	}{tags, md})
	if err != nil {
		return invalidf("metadata: %v", err)
	}
	if len(b) > max {
		return invalidf("tags and metadata encode to %d bytes, more than %d (Config.MaxMetadataBytes)", len(b), max)
	}
	return nil
}
