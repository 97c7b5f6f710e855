package setup

import (
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/store"
)

var updateREADME = flag.Bool("update", false, "rewrite the README's table of variables from Variables")

// TestVariablesAreWhatFromEnvReads compares the registry with the names
// FromEnv asks its lookup for, with the S3 backend and Redis locks so that
// every loader runs: each name read is registered, and each variable
// registered as read by setup, store, s3backend or redislock is read.
func TestVariablesAreWhatFromEnvReads(t *testing.T) {
	read := map[string]bool{}
	env := map[string]string{
		EnvBackend: BackendS3, EnvLock: LockRedis,
		"ARTIFACTSTORE_S3_ENDPOINT": "127.0.0.1:9000", "ARTIFACTSTORE_S3_BUCKET": "artifacts",
	}
	if _, err := FromEnv(func(name string) (string, bool) {
		read[name] = true
		v, ok := env[name]
		return v, ok
	}); err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	registered := map[string]Variable{}
	for _, v := range Variables() {
		if _, dup := registered[v.Name]; dup {
			t.Errorf("%s is registered twice", v.Name)
		}
		if !strings.HasPrefix(v.Name, store.EnvPrefix) || v.Meaning == "" || v.Default == "" || v.Example == "" || v.ReadBy == "" {
			t.Errorf("incomplete registration %+v", v)
		}
		registered[v.Name] = v
	}
	for name := range read {
		if _, ok := registered[name]; !ok {
			t.Errorf("FromEnv reads %s, which Variables does not list", name)
		}
	}
	for name, v := range registered {
		switch v.ReadBy {
		case ReadBySetup, ReadByStore, ReadByS3, ReadByRedis:
			if !read[name] {
				t.Errorf("Variables lists %s as read by %s, but FromEnv does not read it", name, v.ReadBy)
			}
		}
	}
}

// readmeTable renders Variables as the README's markdown table.
func readmeTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Read by | Meaning | Default | Example |\n|---|---|---|---|---|\n")
	for _, v := range Variables() {
		b.WriteString("| `" + v.Name + "` | " + v.ReadBy + " | " + v.Meaning + " | " + v.Default + " | " + v.Example + " |\n")
	}
	return b.String()
}

// TestREADMEListsEveryVariable keeps the README's table (between its
// markers) equal to Variables; go test -run TestREADMEListsEveryVariable
// -update rewrites it.
func TestREADMEListsEveryVariable(t *testing.T) {
	const (
		path  = "../../README.md"
		begin = "<!-- variables:begin (generated from setup.Variables: go test ./pkg/setup -run TestREADMEListsEveryVariable -update) -->\n"
		end   = "<!-- variables:end -->"
	)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", begin, end)
	}
	got, want := readme[i+len(begin):j], readmeTable()
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for _, l := range wantLines {
		if !slices.Contains(gotLines, l) {
			t.Errorf("README.md lacks the row %s", l)
		}
	}
	for _, l := range gotLines {
		if !slices.Contains(wantLines, l) {
			t.Errorf("README.md has a row Variables does not: %s", l)
		}
	}
	t.Errorf("the README's table of variables differs from Variables; rerun with -update")
}

func TestCheckEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		unknown []string // names reported, in order
		suggest []string // their suggestions
	}{
		{"registered and foreign variables", []string{"ARTIFACTSTORE_VERSIONING=true", "HOME=/root", "ARTIFACTSTORE_DIR=/d"}, nil, nil},
		{"test variables", []string{"ARTIFACTSTORE_TEST_S3=minio", "ARTIFACTSTORE_TEST_ANYTHING=1"}, nil, nil},
		{"empty counts as unset", []string{"ARTIFACTSTORE_VERSIONNG="}, nil, nil},
		{"typo", []string{"ARTIFACTSTORE_VERSIONNG=true"}, []string{"ARTIFACTSTORE_VERSIONNG"}, []string{"ARTIFACTSTORE_VERSIONING"}},
		{"two typos", []string{"ARTIFACTSTORE_S3_BUKET=b", "ARTIFACTSTORE_LOCKTIMEOUT=5s"},
			[]string{"ARTIFACTSTORE_S3_BUKET", "ARTIFACTSTORE_LOCKTIMEOUT"}, []string{"ARTIFACTSTORE_S3_BUCKET", "ARTIFACTSTORE_LOCK_TIMEOUT"}},
		{"nothing close", []string{"ARTIFACTSTORE_FROBNICATE_HARDER=1"}, []string{"ARTIFACTSTORE_FROBNICATE_HARDER"}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEnv(tt.environ)
			if len(tt.unknown) == 0 {
				if err != nil {
					t.Fatalf("CheckEnv(%q) = %v, want nil", tt.environ, err)
				}
				return
			}
			if !errors.Is(err, store.ErrInvalidArgument) {
				t.Fatalf("CheckEnv(%q) = %v, want an error matching store.ErrInvalidArgument", tt.environ, err)
			}
			var got []*UnknownVariableError
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var u *UnknownVariableError
				if !errors.As(e, &u) {
					t.Fatalf("%v is not an *UnknownVariableError", e)
				}
				got = append(got, u)
			}
			if len(got) != len(tt.unknown) {
				t.Fatalf("CheckEnv(%q) reported %d variables, want %d: %v", tt.environ, len(got), len(tt.unknown), err)
			}
			for i, u := range got {
				if u.Name != tt.unknown[i] || u.Suggestion != tt.suggest[i] {
					t.Errorf("report %d = %+v, want %s suggesting %q", i, u, tt.unknown[i], tt.suggest[i])
				}
			}
		})
	}
}

// TestFromEnvRejectsUnknownVariable checks the process-environment path:
// a typo fails FromEnv(nil) with the suggestion, and nothing is built.
func TestFromEnvRejectsUnknownVariable(t *testing.T) {
	t.Setenv(EnvDir, t.TempDir())
	t.Setenv("ARTIFACTSTORE_VERSIONNG", "true")
	c, err := FromEnv(nil)
	if !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("FromEnv(nil) err = %v, want store.ErrInvalidArgument", err)
	}
	var u *UnknownVariableError
	if !errors.As(err, &u) || u.Suggestion != "ARTIFACTSTORE_VERSIONING" {
		t.Fatalf("FromEnv(nil) err = %v, want an *UnknownVariableError suggesting ARTIFACTSTORE_VERSIONING", err)
	}
	if want := "unknown variable ARTIFACTSTORE_VERSIONNG (did you mean ARTIFACTSTORE_VERSIONING?)"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	if c.FileDir != "" {
		t.Errorf("FromEnv returned a configuration with its error: %v", c)
	}
	if _, err := FromEnv(os.LookupEnv); !errors.As(err, &u) {
		t.Errorf("FromEnv(os.LookupEnv) err = %v, want an *UnknownVariableError", err)
	}
	// A lookup of the caller's own cannot be listed: not checked.
	if _, err := FromEnv(func(name string) (string, bool) { return os.LookupEnv(name) }); err != nil {
		t.Errorf("FromEnv(a lookup of its own) = %v", err)
	}
	t.Setenv("ARTIFACTSTORE_VERSIONNG", "")
	if c, err := FromEnv(nil); err != nil || c.FileDir == "" {
		t.Fatalf("FromEnv(nil) with the typo emptied = %v, %v", c, err)
	}
}
