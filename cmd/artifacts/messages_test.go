package main

import (
	"path/filepath"
	"testing"
)

// TestFailureMessages checks the one-line messages of the common failures:
// the artifact named once, the cause in a user's words, no backend path,
// no Go field name, non-ASCII input as typed.
func TestFailureMessages(t *testing.T) {
	c := newCLI(t)
	in := writeFile(t, "in.txt", []byte("hello"))
	c.ok("put", "artifact://s/t/log", in)
	missingDir := filepath.Join(t.TempDir(), "nope")

	tests := []struct {
		name string
		env  map[string]string // added to c.env for the run ("" removes)
		code int
		args []string
		want string // the whole of stderr
	}{
		{"get a missing artifact", nil, exitNotFound, []string{"get", "artifact://nope/t1/log"},
			"artifacts: get: artifact://nope/t1/log: no such artifact\n"},
		{"get a missing version", nil, exitNotFound, []string{"get", "artifact://s/t/log?version=9"},
			"artifacts: get: artifact://s/t/log: no version 9\n"},
		{"stat a missing artifact", nil, exitNotFound, []string{"stat", "artifact://nope/t1/log"},
			"artifacts: stat: artifact://nope/t1/log: no such artifact\n"},
		{"rm a missing artifact", nil, exitNotFound, []string{"rm", "--yes", "artifact://nope/t1/log"},
			"artifacts: rm: artifact://nope/t1/log: no such artifact\n"},
		{"tag a missing artifact", nil, exitNotFound, []string{"tag", "add", "artifact://nope/t1/log", "x"},
			"artifacts: tag add: artifact://nope/t1/log: no such artifact\n"},
		{"a non-ASCII tag", nil, exitUsage, []string{"tag", "add", "artifact://s/t/log", "ü"},
			"artifacts: tag add: invalid argument: tag \"ü\": character 'ü' is not one of [A-Za-z0-9._:=+@/-] (see 'artifacts tag add --help')\n"},
		{"over the quota", map[string]string{"ARTIFACTSTORE_QUOTA_MAX_BYTES": "6"}, exitStorageFull, []string{"put", "artifact://s/t/diff", in},
			"artifacts: put: storage full: artifact://s/t/diff needs 5 B, over the quota of 6 B (ARTIFACTSTORE_QUOTA_MAX_BYTES): 5 B stored, 0 B reserved by uploads in progress\n"},
		{"no store directory", map[string]string{"ARTIFACTSTORE_DIR": missingDir}, exitNotFound, []string{"ls"},
			"artifacts: store directory " + missingDir + " does not exist (put creates it)\n"},
		{"no directory configured", map[string]string{"ARTIFACTSTORE_DIR": ""}, exitUsage, []string{"ls"},
			"artifacts: ls: invalid argument: setup config: the file backend needs its directory: set ARTIFACTSTORE_DIR\n"},
		{"export of an empty spec", nil, exitNotFound, []string{"export", "nope", "-o", filepath.Join(t.TempDir(), "x.zip")},
			"artifacts: export: no artifacts to export in spec nope\n"},
		{"missing input file", nil, exitNotFound, []string{"put", "artifact://s/t/log", "no-such-file"},
			"artifacts: put: open no-such-file: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range c.env {
				saved[k] = v
			}
			defer func() { c.env = saved }()
			for k, v := range tt.env {
				if v == "" {
					delete(c.env, k)
				} else {
					c.env[k] = v
				}
			}
			r := c.fails(tt.code, tt.args...)
			if r.stderr != tt.want {
				t.Errorf("stderr\n %q, want\n %q", r.stderr, tt.want)
			}
		})
	}
}
