package backend_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"manifests/spec/task/diff.json", true},
		{"blobs/spec/task/log/01HZX3", true},
		{"with space/and ünïcödé/日本語", true},
		{".hidden", true},
		{"a/.hidden", true},
		{"...", true},
		{"..a", true},
		{"a..", true},
		{"a/b.c/d", true},
		{`back\slash`, true},
		{"punct!$&'()*+,;=@~%?#", true},
		{strings.Repeat("k", backend.MaxKeyLength), true},
		{strings.Repeat("k/", backend.MaxKeyLength/2-1) + "kk", true},

		{"", false},
		{strings.Repeat("k", backend.MaxKeyLength+1), false},
		{"/", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"../a", false},
		{"a/..", false},
		{"a/../b", false},
		{"./a", false},
		{"a/./b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\tb", false},
		{"\x1f", false},
		{"a\x7f", false},
		{"\xff", false},
		{"a\xc3", false}, // truncated UTF-8
	}
	for _, tc := range tests {
		err := backend.ValidateKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", tc.key, err)
		}
		if !tc.ok && !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", tc.key, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"a", true},
		{"a/", true},
		{"a/b", true},
		{"a/b/", true},
		{".", true},  // keys such as ".hidden"
		{"..", true}, // keys such as "..a"
		{"a/.", true},
		{"a/..", true},
		{"a-", true},
		{strings.Repeat("k", backend.MaxKeyLength), true},

		{"/", false},
		{"/a", false},
		{"a//", false},
		{"a//b", false},
		{"./", false},
		{"../", false},
		{"a/../", false},
		{"a/./b", false},
		{"a\x00", false},
		{"\xff", false},
		{strings.Repeat("k", backend.MaxKeyLength+1), false},
	}
	for _, tc := range tests {
		err := backend.ValidatePrefix(tc.prefix)
		if tc.ok && err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", tc.prefix, err)
		}
		if !tc.ok && !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", tc.prefix, err)
		}
	}
}

func TestValidatePut(t *testing.T) {
	r := strings.NewReader("x")
	tests := []struct {
		name string
		key  string
		body *strings.Reader
		size int64
		opts backend.PutOptions
		want error
	}{
		{"ok", "k", r, 1, backend.PutOptions{}, nil},
		{"unknown size", "k", r, backend.SizeUnknown, backend.PutOptions{}, nil},
		{"zero size", "k", r, 0, backend.PutOptions{}, nil},
		{"if absent", "k", r, 1, backend.PutOptions{IfAbsent: true}, nil},
		{"if match", "k", r, 1, backend.PutOptions{IfMatch: "e"}, nil},
		{"bad key", "../k", r, 1, backend.PutOptions{}, backend.ErrInvalidKey},
		{"bad key before nil reader", "", nil, 1, backend.PutOptions{}, backend.ErrInvalidKey},
		{"nil reader", "k", nil, 1, backend.PutOptions{}, backend.ErrInvalidArgument},
		{"negative size", "k", r, -2, backend.PutOptions{}, backend.ErrInvalidArgument},
		{"both conditions", "k", r, 1, backend.PutOptions{IfAbsent: true, IfMatch: "e"}, backend.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body interface{ Read([]byte) (int, error) }
			if tc.body != nil {
				body = tc.body
			}
			err := backend.ValidatePut(tc.key, body, tc.size, tc.opts)
			if tc.want == nil && err != nil {
				t.Errorf("ValidatePut = %v, want nil", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("ValidatePut = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidateDeleteIfMatch(t *testing.T) {
	if err := backend.ValidateDeleteIfMatch("a/b", "etag"); err != nil {
		t.Errorf("valid arguments: %v", err)
	}
	if err := backend.ValidateDeleteIfMatch("a/b", ""); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("empty ETag: %v, want ErrInvalidArgument", err)
	}
	if err := backend.ValidateDeleteIfMatch("a//b", "etag"); !errors.Is(err, backend.ErrInvalidKey) {
		t.Errorf("invalid key: %v, want ErrInvalidKey", err)
	}
}
