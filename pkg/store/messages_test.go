package store

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
)

// TestMessages checks the messages of the common failures: they name the
// artifact once and the cause in a user's words (no storage key, file path
// or Go field name), non-ASCII input is quoted as typed, and the
// sentinels and the backend's error stay reachable.
func TestMessages(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fileEnv(), Config{Quota: QuotaConfig{MaxBytes: 10}}, nil)
	if _, err := f.s.UploadBytes(ctx, "artifact://s/t/log", []byte("hello"), UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		call     func() error
		want     string
		sentinel error
	}{
		{"open a missing artifact", func() error { _, _, err := f.s.Open(ctx, "artifact://nope/t1/log"); return err },
			"artifact://nope/t1/log: no such artifact", ErrNotFound},
		{"stat a missing version", func() error { _, err := f.s.Stat(ctx, "artifact://s/t/log?version=9"); return err },
			"artifact://s/t/log: no version 9", ErrNotFound},
		{"delete a missing artifact", func() error { return f.s.Delete(ctx, "artifact://nope/t1/log") },
			"artifact://nope/t1/log: no such artifact", ErrNotFound},
		{"tag a missing artifact", func() error { _, err := f.s.AddTags(ctx, "artifact://nope/t1/log", "x"); return err },
			"artifact://nope/t1/log: no such artifact", ErrNotFound},
		{"a non-ASCII tag", func() error { _, err := f.s.AddTags(ctx, "artifact://s/t/log", "ü"); return err },
			`invalid argument: tag "ü": character 'ü' is not one of [A-Za-z0-9._:=+@/-]`, ErrInvalidArgument},
		{"a non-ASCII task", func() error {
			_, err := f.s.UploadBytes(ctx, "artifact://s/tâche/log", []byte("x"), UploadOptions{})
			return err
		},
			`character 'â'`, ErrInvalidArgument},
		{"over the quota", func() error {
			_, err := f.s.UploadBytes(ctx, "artifact://s/t/diff", []byte("0123456789"), UploadOptions{})
			return err
		},
			"storage full: artifact://s/t/diff needs 10 B, over the quota of 10 B (ARTIFACTSTORE_QUOTA_MAX_BYTES): 5 B stored, 0 B reserved by uploads in progress", ErrStorageFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q lacks %q", msg, tt.want)
			}
			if strings.Count(msg, "artifact://") > 1 {
				t.Errorf("message %q names the artifact more than once", msg)
			}
			for _, leak := range []string{"filebackend", "manifests", ".obj", "openat", "Config.", "object not found", "Ã"} {
				if strings.Contains(msg, leak) {
					t.Errorf("message %q shows %q", msg, leak)
				}
			}
		})
	}

	// The file backend's error stays in the chain, and in the log at Debug,
	// not at Error.
	_, _, err := f.s.Open(ctx, "artifact://nope/t1/log")
	var pathErr *fs.PathError
	if !errors.As(err, &pathErr) {
		t.Errorf("errors.As(%v, *fs.PathError) = false: the backend's error left the chain", err)
	}
	var found bool
	for _, r := range f.logs.Records() {
		if r.Level >= slog.LevelError {
			t.Errorf("a returned error was logged at %v: %s", r.Level, r.Message)
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "cause" && strings.Contains(a.Value.String(), "manifests/nope/t1/log") {
				found = r.Level == slog.LevelDebug
			}
			return true
		})
	}
	if !found {
		t.Errorf("the log lacks a Debug record with the backend's error as its cause")
	}
}
