package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Metadata describes one version of an artifact. It is what Upload, Stat,
// Versions, the listings and Search return, and it marshals to JSON with
// the field names of its tags (user metadata under "metadata", {} when
// there is none).
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
	// OriginalSize equals Size.
	//
	// Deprecated: use Size, the length of the content before compression
	// (StoredSize is the length after). OriginalSize stays in the JSON
	// ("original_size") for readers of the original record format.
	OriginalSize int64 `json:"original_size"`
	// Tags are the artifact's tags (shared by all its versions), sorted.
	Tags []string `json:"tags"`
	// Version is this version's number, from 1, never reused.
	Version int `json:"version"`
	// UserMetadata is the user metadata given at upload: JSON values
	// (strings, json.Number for numbers, so that they keep every digit,
	// bool, nil, []any, map[string]any). Never nil in what the store
	// returns; it marshals as "metadata".
	UserMetadata map[string]any `json:"metadata"`
	// Metadata is the user metadata whose values are strings, and the
	// others as their JSON text (a number 42 as "42"); nil when there is
	// none. Not in the JSON (see UserMetadata).
	//
	// Deprecated: use UserMetadata, which keeps the values' JSON types.
	Metadata map[string]string `json:"-"`

	// UpdatedAt is when the artifact's record was last changed (upload,
	// tag change, prune).
	UpdatedAt time.Time `json:"updated_at"`
	// BlobKey is the backend key of the content, for OpenVersion and
	// operators' tools; empty when the content is stored inside the
	// artifact's manifest (Config.InlineMaxBytes).
	BlobKey string `json:"blob_key"`
	// Fence and Writer identify the commit that added this version: the
	// fence token of the writer's lease (0 without locking) and the
	// writer's Config.WriterID.
	Fence  uint64 `json:"fence,omitempty"`
	Writer string `json:"writer,omitempty"`
}

// MarshalJSON encodes md with an empty object for no user metadata and an
// empty array for no tags (never null).
func (md Metadata) MarshalJSON() ([]byte, error) {
	type plain Metadata // without this method
	if md.UserMetadata == nil {
		md.UserMetadata = map[string]any{}
	}
	if md.Tags == nil {
		md.Tags = []string{}
	}
	return json.Marshal(plain(md))
}

// UnmarshalJSON decodes what MarshalJSON encodes: numbers in the user
// metadata as json.Number, and the deprecated Metadata view filled in.
func (md *Metadata) UnmarshalJSON(data []byte) error {
	type plain Metadata // without this method
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*md = Metadata(p)
	md.Metadata = nil
	if len(md.UserMetadata) > 0 {
		md.Metadata = make(map[string]string, len(md.UserMetadata))
		for k, v := range md.UserMetadata {
			if s, ok := v.(string); ok {
				md.Metadata[k] = s
			} else if raw, err := json.Marshal(v); err == nil {
				md.Metadata[k] = string(raw)
			}
		}
	}
	return nil
}

// UploadOptions are the optional parameters of Upload.
type UploadOptions struct {
	// ContentType is the MIME type recorded with the version. Default
	// "application/octet-stream".
	ContentType string
	// Tags are added to the artifact's tags (use SetTags to replace them).
	Tags []string
	// UserMetadata is free-form user metadata of the new version: keys of
	// valid UTF-8 (1 to MaxMetadataKeyLength bytes, no control
	// characters), values anything encoding/json marshals (strings,
	// numbers, booleans, nil, slices, maps, structs, json.RawMessage),
	// nested at most MaxMetadataDepth arrays and objects deep, strings of
	// valid UTF-8. Together with the tags it must encode to at most
	// Config.MaxMetadataBytes of JSON. Values are stored as their JSON
	// encoding and read back as UserMetadata's types.
	UserMetadata map[string]any
	// Metadata is user metadata with string values, merged with
	// UserMetadata (a key in both is an error).
	//
	// Deprecated: use UserMetadata, which takes any JSON value.
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
	// MaxMetadataDepth is how deep arrays and objects may nest in one user
	// metadata value: 1 for [1, 2] or {"a": 1}, 2 for {"a": [1]}.
	MaxMetadataDepth = 16
	// maxContentTypeLength bounds UploadOptions.ContentType.
	maxContentTypeLength = 255
)

// ValidateTag checks one tag: 1 to MaxTagLength characters of
// [A-Za-z0-9._:=+@/-]. The error matches ErrInvalidArgument.
func ValidateTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLength {
		return invalidf("tag %q: want 1 to %d characters", tag, MaxTagLength)
	}
	for _, r := range tag {
		if r >= utf8.RuneSelf || !isNameByte(byte(r)) && !strings.ContainsRune(":=+@/", r) {
			return invalidf("tag %q: character %q is not one of [A-Za-z0-9._:=+@/-]", tag, r)
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

// userMetadata validates opts' user metadata and returns it as the JSON
// encodings of its values (nil when there is none).
func userMetadata(opts UploadOptions) (map[string]json.RawMessage, error) {
	if len(opts.UserMetadata)+len(opts.Metadata) == 0 {
		return nil, nil
	}
	out := make(map[string]json.RawMessage, len(opts.UserMetadata)+len(opts.Metadata))
	for k, v := range opts.Metadata {
		if err := validateMetadataKey(k); err != nil {
			return nil, err
		}
		if _, dup := opts.UserMetadata[k]; dup {
			return nil, invalidf("metadata key %q is in both UploadOptions.UserMetadata and UploadOptions.Metadata", k)
		}
		if !utf8.ValidString(v) {
			return nil, invalidf("metadata value of %q is not valid UTF-8", k)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, invalidf("metadata value of %q: %v", k, err)
		}
		out[k] = raw
	}
	for k, v := range opts.UserMetadata {
		if err := validateMetadataKey(k); err != nil {
			return nil, err
		}
		if err := checkMetadataStrings(v); err != nil {
			return nil, invalidf("metadata value of %q: %v", k, err)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, invalidf("metadata value of %q cannot be encoded as JSON: %v", k, err)
		}
		if d := jsonDepth(raw); d > MaxMetadataDepth {
			return nil, invalidf("metadata value of %q nests %d arrays and objects deep, more than %d", k, d, MaxMetadataDepth)
		}
		out[k] = raw
	}
	return out, nil
}

// validateMetadataKey checks one user metadata key.
func validateMetadataKey(k string) error {
	switch {
	case k == "" || len(k) > MaxMetadataKeyLength:
		return invalidf("metadata key %q: want 1 to %d bytes", k, MaxMetadataKeyLength)
	case !utf8.ValidString(k):
		return invalidf("metadata key %q is not valid UTF-8", k)
	case hasControl(k):
		return invalidf("metadata key %q contains a control character", k)
	}
	return nil
}

// checkMetadataStrings refuses strings (and map keys) that are not valid
// UTF-8 in the plain JSON types of v, which encoding/json would silently
// replace; it stops at MaxMetadataDepth+1 levels (jsonDepth then refuses
// the value). Other types are left to encoding/json.
func checkMetadataStrings(v any) error {
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth > MaxMetadataDepth+1 {
			return nil
		}
		switch v := v.(type) {
		case string:
			if !utf8.ValidString(v) {
				return fmt.Errorf("string %q is not valid UTF-8", v)
			}
		case []any:
			for _, e := range v {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case map[string]any:
			for k, e := range v {
				if !utf8.ValidString(k) {
					return fmt.Errorf("key %q is not valid UTF-8", k)
				}
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case []string:
			for _, e := range v {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		case map[string]string:
			for k, e := range v {
				if err := walk(k, depth+1); err != nil {
					return err
				}
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(v, 0)
}

// jsonDepth is how deep arrays and objects nest in the valid JSON raw.
func jsonDepth(raw []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// userMetadataOf decodes stored user metadata: the values as UserMetadata
// holds them (never nil), and the deprecated string view (nil when empty).
func userMetadataOf(md map[string]json.RawMessage) (map[string]any, map[string]string) {
	values := make(map[string]any, len(md))
	if len(md) == 0 {
		return values, nil
	}
	strs := make(map[string]string, len(md))
	for k, raw := range md {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			// A manifest is validated when read; keep the text.
			v = string(raw)
		}
		values[k] = v
		if s, ok := v.(string); ok {
			strs[k] = s
		} else {
			strs[k] = string(raw)
		}
	}
	return values, strs
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
func checkMetadataSize(tags []string, md map[string]json.RawMessage, max int) error {
	b, err := json.Marshal(struct {
		Tags     []string                   `json:"tags"`
		Metadata map[string]json.RawMessage `json:"metadata"`
	}{tags, md})
	if err != nil {
		return invalidf("metadata: %v", err)
	}
	if len(b) > max {
		return invalidf("tags and metadata encode to %d bytes, more than the limit of %d (ARTIFACTSTORE_MAX_METADATA_BYTES)", len(b), max)
	}
	return nil
}
