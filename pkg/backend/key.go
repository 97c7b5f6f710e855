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

// ValidatePrefix checks a List prefix: empty, or a string that would be a
// valid key if it did not end with "/". The error matches ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	trimmed := strings.TrimSuffix(prefix, "/")
	if trimmed == "" {
		return fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	return ValidateKey(trimmed)
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
