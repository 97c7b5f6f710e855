package backend

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxKeyLength is the longest key, in bytes, that every backend accepts
// (S3's limit).
const MaxKeyLength = 1024

// ValidateKey checks the rules every backend enforces on keys: not empty, at
// most MaxKeyLength bytes, valid UTF-8 without control characters, no leading
// or trailing "/", and no empty, "." or ".." segment between slashes (so no
// key can escape a directory root or a bucket prefix). The error matches
// ErrInvalidKey.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: key is %d bytes, more than %d", ErrInvalidKey, len(key), MaxKeyLength)
	}
	return validateKeyText(key)
}

// validateKeyText checks the rules of ValidateKey other than the length.
func validateKeyText(key string) error {
	switch {
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: key %q contains a control character", ErrInvalidKey, key)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: key %q has an empty segment (leading, trailing or double slash)", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w: key %q has a %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or the beginning of some
// valid key, at most MaxKeyLength bytes. A prefix is compared with keys as a
// string, so its last segment may be partial: "a/b/", "a/b", "a/." (keys
// such as "a/.hidden") and "a/.." (keys such as "a/..x") are valid, while
// "/a", "a//", "../" and "a/./" are not. The error matches ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLength {
		return fmt.Errorf("%w: prefix is %d bytes, more than %d", ErrInvalidKey, len(prefix), MaxKeyLength)
	}
	// Completing the last segment with a letter gives a key that starts
	// with the prefix; the prefix is valid when that key is.
	if err := validateKeyText(prefix + "x"); err != nil {
		return fmt.Errorf("%w: prefix %q begins no valid key (empty, \".\" or \"..\" segment, control character or invalid UTF-8)", ErrInvalidKey, prefix)
	}
	return nil
}

// ValidatePut checks the key and arguments of a Put: the key, a non-nil
// reader, a size of SizeUnknown or more, and that IfAbsent and IfMatch are
// not both set.
func ValidatePut(key string, r io.Reader, size int64, opts PutOptions) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil reader for key %q", ErrInvalidArgument, key)
	case size < SizeUnknown:
		return fmt.Errorf("%w: negative size %d for key %q", ErrInvalidArgument, size, key)
	case opts.IfAbsent && opts.IfMatch != "":
		return fmt.Errorf("%w: IfAbsent and IfMatch together for key %q", ErrInvalidArgument, key)
	}
	return nil
}

// ValidateDeleteIfMatch checks the arguments of
// ConditionalDeleter.DeleteIfMatch: the key, and an etag that is not empty
// (ErrInvalidArgument).
func ValidateDeleteIfMatch(key, etag string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if etag == "" {
		return fmt.Errorf("%w: empty ETag for a conditional delete of key %q", ErrInvalidArgument, key)
	}
	return nil
}
