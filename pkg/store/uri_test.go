package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestParseURI(t *testing.T) {
	long := strings.Repeat("a", MaxNameLength)
	valid := []struct {
		in   string
		want URI
	}{
		{"artifact://spec/task/diff", URI{Spec: "spec", Task: "task", Type: "diff"}},
		{"artifact://spec-1/task_7/log", URI{Spec: "spec-1", Task: "task_7", Type: "log"}},
		{"artifact://s.v2/T.1/test?version=1", URI{Spec: "s.v2", Task: "T.1", Type: "test", Version: 1}},
		{"artifact://a/b/custom-type?version=123456", URI{Spec: "a", Task: "b", Type: "custom-type", Version: 123456}},
		{"artifact://.../..a/a..", URI{Spec: "...", Task: "..a", Type: "a.."}},
		{"artifact://" + long + "/" + long + "/" + long, URI{Spec: long, Task: long, Type: long}},
	}
	for _, tc := range valid {
		t.Run("valid/"+tc.in[:min(len(tc.in), 40)], func(t *testing.T) {
			got, err := ParseURI(tc.in)
			if err != nil {
				t.Fatalf("ParseURI(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseURI(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Fatalf("String() = %q, want %q", s, tc.in)
			}
		})
	}
	invalid := []struct{ name, in string }{
		{"empty", ""},
		{"scheme only", "artifact://"},
		{"other scheme", "s3://spec/task/diff"},
		{"upper-case scheme", "ARTIFACT://spec/task/diff"},
		{"no slashes", "artifact:spec/task/diff"},
		{"two parts", "artifact://spec/task"},
		{"four parts", "artifact://spec/task/diff/extra"},
		{"trailing slash", "artifact://spec/task/diff/"},
		{"leading slash", "artifact:///spec/task/diff"},
		{"empty task", "artifact://spec//diff"},
		{"empty type", "artifact://spec/task/"},
		{"dot spec", "artifact://./task/diff"},
		{"dotdot task", "artifact://spec/../diff"},
		{"dotdot type", "artifact://spec/task/.."},
		{"traversal", "artifact://spec/task/../../etc/passwd"},
		{"space", "artifact://spec/ta sk/diff"},
		{"percent-encoding", "artifact://spec/ta%2Fsk/diff"},
		{"encoded dotdot", "artifact://spec/%2e%2e/diff"},
		{"userinfo", "artifact://user@spec/task/diff"},
		{"port", "artifact://spec:80/task/diff"},
		{"fragment", "artifact://spec/task/diff#frag"},
		{"backslash", "artifact://spec/task\\x/diff"},
		{"unicode", "artifact://spéc/task/diff"},
		{"NUL", "artifact://spec/ta\x00sk/diff"},
		{"newline", "artifact://spec/task/diff\n"},
		{"too long", "artifact://" + long + "a/task/diff"},
		{"empty query", "artifact://spec/task/diff?"},
		{"other param", "artifact://spec/task/diff?v=1"},
		{"extra param", "artifact://spec/task/diff?version=1&x=2"},
		{"two versions", "artifact://spec/task/diff?version=1&version=2"},
		{"version zero", "artifact://spec/task/diff?version=0"},
		{"version negative", "artifact://spec/task/diff?version=-1"},
		{"version plus", "artifact://spec/task/diff?version=+1"},
		{"version leading zero", "artifact://spec/task/diff?version=01"},
		{"version empty", "artifact://spec/task/diff?version="},
		{"version not a number", "artifact://spec/task/diff?version=latest"},
		{"version overflow", "artifact://spec/task/diff?version=99999999999999999999999"},
		{"query in path", "artifact://spec/task?version=1/diff"},
	}
	for _, tc := range invalid {
		t.Run("invalid/"+tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.in)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("ParseURI(%q) = %+v, %v; want ErrInvalidArgument", tc.in, u, err)
			}
		})
	}
}

func TestNewURIAndHelpers(t *testing.T) {
	u, err := NewURI("spec", "task", TypeLog)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.WithVersion(3).String(); got != "artifact://spec/task/log?version=3" {
		t.Fatalf("WithVersion(3) = %q", got)
	}
	if got := u.WithVersion(3).Artifact(); got != u {
		t.Fatalf("Artifact() = %+v, want %+v", got, u)
	}
	for _, bad := range [][3]string{{"", "t", "diff"}, {"s", "..", "diff"}, {"s", "t", "a/b"}, {"s", "t", "."}} {
		if _, err := NewURI(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("NewURI(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	if err := (URI{Spec: "s", Task: "t", Type: "x", Version: -1}).Validate(); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative version: %v", err)
	}
}

func TestKeyLayout(t *testing.T) {
	u := URI{Spec: "spec", Task: "task", Type: "diff", Version: 4}
	if got, want := manifestKey(u), "manifests/spec/task/diff.json"; got != want {
		t.Errorf("manifestKey = %q, want %q", got, want)
	}
	if got, want := blobPrefix(u), "blobs/spec/task/diff/"; got != want {
		t.Errorf("blobPrefix = %q, want %q", got, want)
	}
	if got, want := lockKey(u), "artifact://spec/task/diff"; got != want {
		t.Errorf("lockKey = %q, want %q", got, want)
	}
	back, ok := uriFromManifestKey(manifestKey(u))
	if !ok || back != u.Artifact() {
		t.Errorf("uriFromManifestKey = %+v, %v", back, ok)
	}
	back, ok = uriFromBlobKey(blobPrefix(u) + "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	if !ok || back != u.Artifact() {
		t.Errorf("uriFromBlobKey = %+v, %v", back, ok)
	}
	for _, k := range []string{"manifests/a/b.json", "manifests/a/b/c/d.json", "manifests/a/b/c.txt", "blobs/a/b/c.json", "manifests/a/../c.json"} {
		if u, ok := uriFromManifestKey(k); ok {
			t.Errorf("uriFromManifestKey(%q) = %+v, want not ok", k, u)
		}
	}
	for _, k := range []string{"blobs/a/b/c", "blobs/a/b/c/", "blobs/a/b/c/d/e", "manifests/a/b/c/d"} {
		if u, ok := uriFromBlobKey(k); ok {
			t.Errorf("uriFromBlobKey(%q) = %+v, want not ok", k, u)
		}
	}
	prefixes := map[[2]string]string{
		{"", ""}:   "manifests/",
		{"", "t"}:  "manifests/",
		{"s", ""}:  "manifests/s/",
		{"s", "t"}: "manifests/s/t/",
	}
	for in, want := range prefixes {
		if got := manifestPrefix(in[0], in[1]); got != want {
			t.Errorf("manifestPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"artifact://spec/task/diff",
		"artifact://a/b/c?version=7",
		"artifact://spec/../diff",
		"artifact://spec/task/diff?version=01",
		"artifact://x:1/y/z",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("ParseURI(%q): error %v does not match ErrInvalidArgument", s, err)
			}
			return
		}
		formatted := u.String()
		if formatted != s {
			t.Fatalf("ParseURI(%q).String() = %q: not the input", s, formatted)
		}
		again, err := ParseURI(formatted)
		if err != nil || again != u {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, u)
		}
		// Every valid URI maps to keys every backend accepts.
		for _, key := range []string{manifestKey(u), blobPrefix(u) + "x"} {
			if err := backend.ValidateKey(key); err != nil {
				t.Fatalf("key %q of %q: %v", key, s, err)
			}
		}
	})
}

func backendValidateKey(key string) error { return backend.ValidateKey(key) }
