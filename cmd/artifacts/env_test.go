package main

import (
	"strings"
	"testing"

	"github.com/necrocode/artifactstore/pkg/setup"
)

// TestUnknownVariable checks that a misspelt variable, in the environment
// or in the config file, fails the command with the closest name and
// changes nothing.
func TestUnknownVariable(t *testing.T) {
	c := newCLI(t)
	in := writeFile(t, "in.txt", []byte("x"))
	c.env["ARTIFACTSTORE_VERSIONNG"] = "true"
	r := c.fails(exitUsage, "put", "artifact://s/t/log", in)
	if want := "artifacts: put: unknown variable ARTIFACTSTORE_VERSIONNG (did you mean ARTIFACTSTORE_VERSIONING?)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	delete(c.env, "ARTIFACTSTORE_VERSIONNG")
	c.fails(exitNotFound, "get", "artifact://s/t/log") // the failed put wrote nothing

	cfg := writeFile(t, "store.env", []byte("ARTIFACTSTORE_COMPRESION=true\n"))
	r = c.fails(exitUsage, "--config", cfg, "put", "artifact://s/t/log", in)
	if want := "config file " + cfg + ": unknown variable ARTIFACTSTORE_COMPRESION (did you mean ARTIFACTSTORE_COMPRESSION?)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q lacks %q", r.stderr, want)
	}

	// Variables of tests are not checked; empty ones count as unset.
	c.env["ARTIFACTSTORE_TEST_ANYTHING"] = "1"
	c.env["ARTIFACTSTORE_VERSIONNG"] = ""
	c.ok("put", "artifact://s/t/log", in)
}

// TestHelpNamesVariables checks that --help lists every variable the tool
// reads, from the registry, and that cleanup and usage name the retention
// and quota variables they read.
func TestHelpNamesVariables(t *testing.T) {
	c := newCLI(t)
	top := c.ok("--help").stdout
	for _, v := range setup.Variables() {
		if v.ReadBy == setup.ReadByDemo || v.ReadBy == setup.ReadByTests {
			if strings.Contains(top, v.Name) {
				t.Errorf("--help lists %s, which only the %s read", v.Name, v.ReadBy)
			}
			continue
		}
		if !strings.Contains(top, v.Name) {
			t.Errorf("--help does not list %s", v.Name)
		}
	}
	for cmd, names := range map[string][]string{
		"cleanup": {"ARTIFACTSTORE_RETENTION_PERIODS", "ARTIFACTSTORE_RETENTION_DEFAULT", "ARTIFACTSTORE_RETENTION_EXEMPT_TAG"},
		"expires": {"ARTIFACTSTORE_RETENTION_PERIODS"},
		"usage":   {"ARTIFACTSTORE_QUOTA_MAX_BYTES", "ARTIFACTSTORE_QUOTA_WARN_RATIO"},
		"put":     {"ARTIFACTSTORE_VERSIONING", "ARTIFACTSTORE_COMPRESSION"},
	} {
		out := c.ok(cmd, "--help").stdout
		_, vars, ok := strings.Cut(out, "Variables it reads")
		if !ok {
			t.Errorf("%s --help has no list of variables:\n%s", cmd, out)
			continue
		}
		for _, n := range names {
			if !strings.Contains(vars, n) {
				t.Errorf("%s --help does not list %s", cmd, n)
			}
		}
	}
	// Every command's help renders (printVariables panics on a name the
	// registry lacks).
	for _, cmd := range commands() {
		c.ok("help", cmd.name)
		for _, sub := range cmd.subs {
			c.ok(append(strings.Fields(sub.name), "--help")...)
		}
	}
}
