package lock_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/lock"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"artifact://spec/task/diff", true},
		{"../../etc/passwd", true}, // keys are opaque; lockers make them safe
		{"ключ", true},
		{strings.Repeat("k", lock.MaxKeyLength), true},
		{"", false},
		{strings.Repeat("k", lock.MaxKeyLength+1), false},
		{"bad\xffutf8", false},
	}
	for _, tc := range tests {
		err := lock.ValidateKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("ValidateKey(%.20q) = %v, want nil", tc.key, err)
		}
		if !tc.ok && !errors.Is(err, lock.ErrInvalidKey) {
			t.Errorf("ValidateKey(%.20q) = %v, want ErrInvalidKey", tc.key, err)
		}
	}
}

func TestHolderString(t *testing.T) {
	if got := (lock.Holder{}).String(); got != "unknown" {
		t.Errorf("zero Holder = %q", got)
	}
	if got := (lock.Holder{Host: "h", PID: 7}).String(); got != "h:7" {
		t.Errorf("Holder = %q", got)
	}
}
