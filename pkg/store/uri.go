package store

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scheme is the scheme of every artifact URI.
const Scheme = "artifact"

const uriPrefix = Scheme + "://"

// Built-in artifact types. Custom types are accepted when they follow the
// same rule as spec names and task ids (see ValidateName).
const (
	TypeDiff = "diff"
	TypeLog  = "log"
	TypeTest = "test"
)

// MaxNameLength is the longest spec name, task id or type, in bytes.
const MaxNameLength = 128

// URI identifies an artifact, artifact://<spec>/<task>/<type>, or one of its
// versions, artifact://<spec>/<task>/<type>?version=<n>.
//
// The zero Version means the current (newest) version.
type URI struct {
	Spec    string
	Task    string
	Type    string
	Version int
}

// NewURI returns the URI of the artifact spec/task/typ, or an error matching
// ErrInvalidArgument when a part breaks the naming rule.
func NewURI(spec, task, typ string) (URI, error) {
	u := URI{Spec: spec, Task: task, Type: typ}
	if err := u.Validate(); err != nil {
		return URI{}, err
	}
	return u, nil
}

// ParseURI parses artifact://<spec>/<task>/<type>[?version=<n>] strictly:
// anything else (another scheme, a missing or extra path segment, a character
// outside [A-Za-z0-9._-], "." or "..", percent-encoding, user info, a port, a
// fragment, a query parameter other than version, a version that is not a
// positive decimal integer without leading zeros) gives an error matching
// ErrInvalidArgument. ParseURI(u.String()) == u for every valid u.
func ParseURI(s string) (URI, error) {
	rest, ok := strings.CutPrefix(s, uriPrefix)
	if !ok {
		return URI{}, invalidf("URI %q: want %s<spec>/<task>/<type>[?version=<n>]", s, uriPrefix)
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	parts := strings.Split(path, "/")
	if len(parts) != 3 {
		return URI{}, invalidf("URI %q: want exactly three path parts <spec>/<task>/<type>, got %d", s, len(parts))
	}
	u := URI{Spec: parts[0], Task: parts[1], Type: parts[2]}
	if hasQuery {
		v, ok := strings.CutPrefix(query, "version=")
		if !ok {
			return URI{}, invalidf("URI %q: the only query parameter allowed is version=<n>", s)
		}
		n, err := parseVersion(v)
		if err != nil {
			return URI{}, fmt.Errorf("URI %q: %w", s, err)
		}
		u.Version = n
	}
	if err := u.Validate(); err != nil {
		return URI{}, fmt.Errorf("URI %q: %w", s, err)
	}
	return u, nil
}

// parseVersion accepts a positive decimal integer without sign or leading
// zeros, so that formatting it gives back the same text.
func parseVersion(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || strconv.Itoa(n) != v {
		return 0, invalidf("version %q is not a positive integer", v)
	}
	return n, nil
}

// String formats u as artifact://<spec>/<task>/<type>, followed by
// ?version=<n> when Version is set.
func (u URI) String() string {
	var b strings.Builder
	b.Grow(len(uriPrefix) + len(u.Spec) + len(u.Task) + len(u.Type) + 20)
	b.WriteString(uriPrefix)
	b.WriteString(u.Spec)
	b.WriteByte('/')
	b.WriteString(u.Task)
	b.WriteByte('/')
	b.WriteString(u.Type)
	if u.Version != 0 {
		b.WriteString("?version=")
		b.WriteString(strconv.Itoa(u.Version))
	}
	return b.String()
}

// Artifact returns u without its version: the artifact as a whole.
func (u URI) Artifact() URI {
	u.Version = 0
	return u
}

// WithVersion returns u naming version n (0 names the current version).
func (u URI) WithVersion(n int) URI {
	u.Version = n
	return u
}

// Validate checks every part of u; the error matches ErrInvalidArgument.
func (u URI) Validate() error {
	if err := ValidateName("spec", u.Spec); err != nil {
		return err
	}
	if err := ValidateName("task", u.Task); err != nil {
		return err
	}
	if err := ValidateName("type", u.Type); err != nil {
		return err
	}
	if u.Version < 0 {
		return invalidf("version %d is negative", u.Version)
	}
	return nil
}

// ValidateName checks a spec name, task id or type: 1 to MaxNameLength
// characters of [A-Za-z0-9._-], and not "." or "..". what names the part in
// the error, which matches ErrInvalidArgument.
func ValidateName(what, name string) error {
	switch {
	case name == "":
		return invalidf("empty %s", what)
	case len(name) > MaxNameLength:
		return invalidf("%s is %d bytes, more than %d", what, len(name), MaxNameLength)
	case name == "." || name == "..":
		return invalidf("%s %q is not allowed", what, name)
	}
	for _, r := range name {
		if r >= utf8.RuneSelf || !isNameByte(byte(r)) {
			return invalidf("%s %q: character %q is not one of [A-Za-z0-9._-]", what, name, r)
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Bucket layout, under the backend's own prefix:
//
//	manifests/<spec>/<task>/<type>.json     the artifact record
//	blobs/<spec>/<task>/<type>/<ulid>       the content of one version
//
// (and _usage/, quota.go; _index/, the tag index, index.go).
const (
	manifestRoot   = "manifests/"
	manifestSuffix = ".json"
	blobRoot       = "blobs/"
	probeRoot      = "_probe/"
)

// manifestKey is the key of u's manifest.
func manifestKey(u URI) string {
	return manifestRoot + u.Spec + "/" + u.Task + "/" + u.Type + manifestSuffix
}

// blobPrefix is the prefix of every blob of u, ending in "/".
func blobPrefix(u URI) string {
	return blobRoot + u.Spec + "/" + u.Task + "/" + u.Type + "/"
}

// lockKey is the key of u's lock in the locker's namespace.
func lockKey(u URI) string { return u.Artifact().String() }

// manifestPrefix is the narrowest manifest listing prefix for the given
// spec and task (each may be empty; task is ignored without spec).
func manifestPrefix(spec, task string) string {
	switch {
	case spec == "":
		return manifestRoot
	case task == "":
		return manifestRoot + spec + "/"
	default:
		return manifestRoot + spec + "/" + task + "/"
	}
}

// uriFromManifestKey is the inverse of manifestKey; ok is false for a key
// that no valid artifact has (a stray object under manifests/).
func uriFromManifestKey(key string) (URI, bool) {
	rest, ok := strings.CutPrefix(key, manifestRoot)
	if !ok {
		return URI{}, false
	}
	rest, ok = strings.CutSuffix(rest, manifestSuffix)
	if !ok {
		return URI{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return URI{}, false
	}
	u := URI{Spec: parts[0], Task: parts[1], Type: parts[2]}
	if u.Validate() != nil {
		return URI{}, false
	}
	return u, true
}

// uriFromBlobKey returns the artifact a blob key belongs to; ok is false for
// a key outside the layout.
func uriFromBlobKey(key string) (URI, bool) {
	rest, ok := strings.CutPrefix(key, blobRoot)
	if !ok {
		return URI{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[3] == "" {
		return URI{}, false
	}
	u := URI{Spec: parts[0], Task: parts[1], Type: parts[2]}
	if u.Validate() != nil {
		return URI{}, false
	}
	return u, true
}
