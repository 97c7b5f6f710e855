package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/filebackend"
	"github.com/necrocode/artifactstore/pkg/lock"
	"github.com/necrocode/artifactstore/pkg/lock/filelock"
	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

func TestPutGetRoundTrip(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	data := content(1, 100_000)
	file := writeFile(t, "run.bin", data)

	r := c.ok("put", "artifact://build-1/t1/log", file, "--tag", "nightly", "--tag", "ci", "--meta", "host=ci3", "--content-type", "text/plain")
	if got := strings.TrimSpace(r.stdout); got != "artifact://build-1/t1/log?version=1" {
		t.Fatalf("put printed %q, want the version's URI", got)
	}
	// From stdin, named by flags, flags after the positional argument.
	stdinData := content(2, 5000)
	r = c.runIn(bytes.NewReader(stdinData), "put", "-", "--spec", "build-1", "--task", "t2", "--type", "test", "--json")
	if r.code != 0 {
		t.Fatalf("put from stdin: exit %d: %s", r.code, r.stderr)
	}
	var md store.Metadata
	decode(t, r.stdout, &md)
	sum := sha256.Sum256(stdinData)
	if md.URI != "artifact://build-1/t2/test?version=1" || md.Size != int64(len(stdinData)) || md.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put --json metadata = %+v", md)
	}

	// get to stdout and to a file: identical bytes.
	if r = c.ok("get", "artifact://build-1/t1/log"); r.stdout != string(data) {
		t.Fatalf("get to stdout returned %d bytes, want the %d uploaded", len(r.stdout), len(data))
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	c.ok("get", "artifact://build-1/t2/test", "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, stdinData) {
		t.Fatalf("get -o wrote %d bytes (err %v), want the %d uploaded", len(got), err, len(stdinData))
	}
	if r.stderr != "" {
		t.Fatalf("get wrote on stderr: %q", r.stderr)
	}
}

func TestPutJSONMetadata(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	file := writeFile(t, "run.log", []byte("ok\n"))
	r := c.ok("put", "artifact://s/t/test", file, "--meta", "host=ci3", "--meta-json", `count=42`,
		"--meta-json", `cfg={"retries":[1,2],"fast":true}`, "--json")
	want := `"metadata": {
    "cfg": {
      "fast": true,
      "retries": [
        1,
        2
      ]
    },
    "count": 42,
    "host": "ci3"
  }`
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("put --json:\n%s\nwant it to contain\n%s", r.stdout, want)
	}
	if r = c.ok("stat", "artifact://s/t/test", "--json"); !strings.Contains(r.stdout, want) {
		t.Fatalf("stat --json:\n%s\nwant it to contain\n%s", r.stdout, want)
	}
	if r = c.ok("stat", "artifact://s/t/test"); !strings.Contains(r.stdout, `cfg={"fast":true,"retries":[1,2]}, count=42, host=ci3`) {
		t.Fatalf("stat:\n%s", r.stdout)
	}
	// No metadata: {} (not null), in ls --json too.
	c.ok("put", "artifact://s/t/log", file)
	for _, args := range [][]string{{"stat", "artifact://s/t/log", "--json"}, {"ls", "s", "--json"}} {
		if r = c.ok(args...); !strings.Contains(r.stdout, `"metadata": {}`) || strings.Contains(r.stdout, "null") {
			t.Errorf("%v:\n%s\nwant \"metadata\": {} and no null", args, r.stdout)
		}
	}
}

// TestPutSameContentAgain: putting the current content again without
// metadata changes nothing and keeps the metadata; other metadata makes a
// new version (the rule of store.Upload).
func TestPutSameContentAgain(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["ARTIFACTSTORE_VERSIONING"] = "true"
	file := writeFile(t, "same.log", []byte("same\n"))
	if r := c.ok("put", "artifact://s/t/log", file, "--meta", "host=ci3"); !strings.Contains(r.stdout, "?version=1") {
		t.Fatalf("first put: %s", r.stdout)
	}
	if r := c.ok("put", "artifact://s/t/log", file); !strings.Contains(r.stdout, "?version=1") {
		t.Fatalf("same content without metadata made a new version: %s", r.stdout)
	}
	if r := c.ok("stat", "artifact://s/t/log"); !strings.Contains(r.stdout, "host=ci3") {
		t.Fatalf("metadata dropped by a re-put:\n%s", r.stdout)
	}
	if r := c.ok("put", "artifact://s/t/log", file, "--meta", "host=ci4"); !strings.Contains(r.stdout, "?version=2") {
		t.Fatalf("other metadata: %s", r.stdout)
	}
}

func TestVersionsAndGetVersion(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["ARTIFACTSTORE_VERSIONING"] = "true"
	v1, v2 := []byte("first\n"), []byte("second\n")
	c.ok("put", "artifact://s/t/diff", writeFile(t, "a.diff", v1))
	c.ok("put", "artifact://s/t/diff", writeFile(t, "b.diff", v2))

	if r := c.ok("get", "artifact://s/t/diff?version=1"); r.stdout != string(v1) {
		t.Fatalf("get ?version=1 = %q", r.stdout)
	}
	if r := c.ok("get", "--version", "2", "artifact://s/t/diff"); r.stdout != string(v2) {
		t.Fatalf("get --version 2 = %q", r.stdout)
	}
	if r := c.ok("get", "artifact://s/t/diff"); r.stdout != string(v2) {
		t.Fatalf("get (current) = %q", r.stdout)
	}
	c.fails(exitUsage, "get", "--version", "1", "artifact://s/t/diff?version=2")
	c.fails(exitNotFound, "get", "artifact://s/t/diff?version=9")

	var mds []store.Metadata
	decode(t, c.ok("versions", "artifact://s/t/diff", "--json").stdout, &mds)
	if len(mds) != 2 || mds[0].Version != 1 || mds[1].Version != 2 {
		t.Fatalf("versions --json = %+v", mds)
	}
	table := c.ok("versions", "artifact://s/t/diff").stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION") || !strings.HasPrefix(lines[1], "1 ") || !strings.HasPrefix(lines[2], "2 ") {
		t.Fatalf("versions table:\n%s", table)
	}

	var st store.Metadata
	decode(t, c.ok("stat", "artifact://s/t/diff", "--version", "1", "--json").stdout, &st)
	if st.Version != 1 || st.Size != int64(len(v1)) {
		t.Fatalf("stat --version 1 --json = %+v", st)
	}
	human := c.ok("stat", "artifact://s/t/diff").stdout
	for _, want := range []string{"uri:", "artifact://s/t/diff?version=2", "sha256:", "size:", "7 B (7 bytes)", "blob:"} {
		if !strings.Contains(human, want) {
			t.Fatalf("stat output lacks %q:\n%s", want, human)
		}
	}
}

// seed uploads a small fixed set of artifacts.
func seed(t *testing.T, c *cli) {
	t.Helper()
	c.ok("put", "artifact://specA/t1/log", writeFile(t, "1.log", []byte("log one\n")), "--tag", "nightly", "--tag", "x86")
	c.ok("put", "artifact://specA/t1/diff", writeFile(t, "1.diff", []byte("diff one\n")), "--tag", "nightly")
	c.ok("put", "artifact://specA/t2/test", writeFile(t, "2.xml", content(3, 3000)))
	c.ok("put", "artifact://specB/t9/log", writeFile(t, "9.log", []byte("other spec\n")), "--tag", "x86")
}

func uris(mds []store.Metadata) []string {
	out := make([]string, len(mds))
	for i, md := range mds {
		out[i] = artifactURI(md)
	}
	return out
}

func TestListAndSearch(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"ls"}, []string{"artifact://specA/t1/diff", "artifact://specA/t1/log", "artifact://specA/t2/test", "artifact://specB/t9/log"}},
		{[]string{"ls", "specA"}, []string{"artifact://specA/t1/diff", "artifact://specA/t1/log", "artifact://specA/t2/test"}},
		{[]string{"ls", "specA/t1"}, []string{"artifact://specA/t1/diff", "artifact://specA/t1/log"}},
		{[]string{"ls", "--type", "log"}, []string{"artifact://specA/t1/log", "artifact://specB/t9/log"}},
		{[]string{"search", "--tag", "nightly"}, []string{"artifact://specA/t1/diff", "artifact://specA/t1/log"}},
		{[]string{"search", "--tag", "nightly", "--tag", "x86"}, []string{"artifact://specA/t1/log"}},
		{[]string{"search", "--spec", "specA", "--task", "t2"}, []string{"artifact://specA/t2/test"}},
		{[]string{"search", "--after", "1h"}, []string{"artifact://specA/t1/diff", "artifact://specA/t1/log", "artifact://specA/t2/test", "artifact://specB/t9/log"}},
		{[]string{"search", "--after", "1h ago", "--before", "2000-01-01"}, []string{}},
		{[]string{"search", "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--spec", "specB"}, []string{"artifact://specB/t9/log"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var mds []store.Metadata
			decode(t, c.ok(append(tt.args, "--json")...).stdout, &mds)
			if got := uris(mds); !slices.Equal(got, tt.want) {
				t.Fatalf("--json listed %q, want %q", got, tt.want)
			}
			// The table lists the same artifacts, one per line under a header.
			r := c.ok(tt.args...)
			lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			if len(tt.want) == 0 {
				if r.stdout != "" || !strings.Contains(r.stderr, "no artifacts") {
					t.Fatalf("empty table: stdout %q stderr %q", r.stdout, r.stderr)
				}
				return
			}
			if len(lines) != len(tt.want)+1 || !strings.HasPrefix(lines[0], "URI ") || !strings.Contains(lines[0], "SIZE") {
				t.Fatalf("table:\n%s", r.stdout)
			}
			for i, u := range tt.want {
				if f := strings.Fields(lines[i+1]); f[0] != u || f[1] != "1" {
					t.Fatalf("table row %d = %q, want %s version 1", i, lines[i+1], u)
				}
			}
		})
	}
	// Human sizes in the table.
	if out := c.ok("ls", "specA/t2").stdout; !strings.Contains(out, "2.9 KiB") {
		t.Fatalf("ls does not show a human size for 3000 bytes:\n%s", out)
	}
	c.fails(exitUsage, "search", "specA")
	c.fails(exitUsage, "search", "--after", "yesterday-ish")
	c.fails(exitUsage, "ls", "--spec", "a/b")
	c.fails(exitUsage, "ls", "specA", "--spec", "specB")
}

// TestSearchPages: --limit prints a page and the --after that prints the
// next; compact builds the catalog the pages then come from.
func TestSearchPages(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	all := []string{"artifact://specA/t1/diff", "artifact://specA/t1/log", "artifact://specA/t2/test", "artifact://specB/t9/log"}
	for _, compacted := range []bool{false, true} {
		if compacted {
			if out := c.ok("compact").stdout; !strings.Contains(out, "4 artifacts") {
				t.Fatalf("compact:\n%s", out)
			}
		}
		var got []string
		args := []string{"search", "--limit", "3", "--json"}
		for pages := 0; ; pages++ {
			r := c.ok(args...)
			var mds []store.Metadata
			decode(t, r.stdout, &mds)
			got = append(got, uris(mds)...)
			_, next, ok := strings.Cut(r.stderr, "--after ")
			if !ok || pages > 2 {
				break
			}
			args = []string{"search", "--limit", "3", "--json", "--after", strings.Fields(next)[0]}
		}
		if !slices.Equal(got, all) {
			t.Fatalf("pages (compacted %v): %q, want %q", compacted, got, all)
		}
	}
	c.fails(exitUsage, "search", "--limit", "-1")
	c.fails(exitUsage, "search", "--updated-after", "soon")
	c.fails(exitUsage, "compact", "extra")
}

func TestTags(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	const u = "artifact://s/t/log"
	c.ok("put", u, writeFile(t, "x.log", []byte("x")), "--tag", "a")

	tags := func() []string {
		var md store.Metadata
		decode(t, c.ok("stat", u, "--json").stdout, &md)
		return md.Tags
	}
	if r := c.ok("tag", "add", u, "b", "c"); strings.TrimSpace(r.stdout) != u+" tags: a, b, c" {
		t.Fatalf("tag add printed %q", r.stdout)
	}
	c.ok("tag", "rm", u, "b")
	if got := tags(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("after tag rm: %q", got)
	}
	c.ok("tag", "remove", u, "a")
	c.ok("tag", "set", u, "z", "y")
	if got := tags(); !slices.Equal(got, []string{"y", "z"}) {
		t.Fatalf("after tag set: %q", got)
	}
	var md store.Metadata
	decode(t, c.ok("tag", "set", u, "--json").stdout, &md)
	if len(md.Tags) != 0 || len(tags()) != 0 {
		t.Fatalf("tag set with no tags did not clear them: %q", md.Tags)
	}
	c.fails(exitUsage, "tag", "add", u)
	c.fails(exitUsage, "tag", "add", u, "bad tag")
	c.fails(exitUsage, "tag", "add", u+"?version=1", "x")
	c.fails(exitUsage, "tag", "frob", u, "x")
	c.fails(exitUsage, "tag")
	c.fails(exitNotFound, "tag", "add", "artifact://s/none/log", "x")
}

func TestExport(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	want := map[string][]byte{
		"specA/t1/log":  []byte("log one\n"),
		"specA/t1/diff": []byte("diff one\n"),
		"specA/t2/test": content(3, 3000),
	}
	check := func(t *testing.T, zipData []byte, want map[string][]byte) {
		t.Helper()
		zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
		if err != nil {
			t.Fatalf("not a ZIP: %v", err)
		}
		got := map[string][]byte{}
		meta := 0
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, "@metadata.json") {
				meta++
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			got[f.Name] = b
		}
		if len(got) != len(want) || meta != len(want) {
			t.Fatalf("ZIP has %d content entries and %d metadata entries, want %d each", len(got), meta, len(want))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Fatalf("ZIP entry %s differs from what was uploaded", name)
			}
		}
	}

	t.Run("file", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "a.zip")
		r := c.ok("export", "specA", "-o", dest)
		if strings.TrimSpace(r.stdout) != dest {
			t.Fatalf("export printed %q, want the path %s", r.stdout, dest)
		}
		// Not a terminal: plain progress lines, the last one complete.
		if !strings.Contains(r.stderr, "export: 3/3 artifacts") || strings.Contains(r.stderr, "\r") {
			t.Fatalf("plain progress expected on stderr, got %q", r.stderr)
		}
		data, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		check(t, data, want)
	})
	t.Run("stdout task", func(t *testing.T) {
		r := c.ok("export", "--spec", "specA", "--task", "t1", "--quiet")
		if r.stderr != "" {
			t.Fatalf("--quiet wrote %q on stderr", r.stderr)
		}
		check(t, []byte(r.stdout), map[string][]byte{"specA/t1/log": want["specA/t1/log"], "specA/t1/diff": want["specA/t1/diff"]})
	})
	t.Run("progress bar on a terminal", func(t *testing.T) {
		tc := *c
		tc.terminal = true
		r := tc.run("export", "specA", "-o", filepath.Join(t.TempDir(), "b.zip"))
		if r.code != 0 || !strings.Contains(r.stderr, "\rexport [") || !strings.Contains(r.stderr, "100%") {
			t.Fatalf("exit %d, no progress bar on stderr: %q", r.code, r.stderr)
		}
	})
	c.fails(exitNotFound, "export", "nosuchspec", "-o", filepath.Join(t.TempDir(), "c.zip"))
	c.fails(exitUsage, "export")
	c.fails(exitUsage, "export", "--task", "../x")
	c.fails(exitUsage, "export", "../x")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	var u usageJSON
	decode(t, c.ok("usage", "--json").stdout, &u)
	if u.Total.Artifacts != 4 || u.BySpec["specA"].Artifacts != 3 || u.ByType["log"].Artifacts != 2 || u.Quota.State != "none" {
		t.Fatalf("usage --json = %+v", u)
	}
	wantBytes := int64(len("log one\n") + len("diff one\n") + 3000 + len("other spec\n"))
	if u.Total.Bytes != wantBytes {
		t.Fatalf("usage total bytes %d, want %d", u.Total.Bytes, wantBytes)
	}
	out := c.ok("usage").stdout
	for _, want := range []string{"total: 4 artifacts", "SPEC", "specA", "TYPE", "3.0 KiB", "quota: none"} {
		if !strings.Contains(out, want) {
			t.Fatalf("usage output lacks %q:\n%s", want, out)
		}
	}
	decode(t, c.ok("usage", "--json", "--quota", "3.5KiB").stdout, &u)
	if u.Quota.State != "warning" || u.Quota.MaxBytes != 3584 {
		t.Fatalf("usage with a 3.5 KiB quota: %+v", u.Quota)
	}
	if out := c.ok("usage", "--quota", "1KiB").stdout; !strings.Contains(out, "of 1.0 KiB stored") || !strings.Contains(out, ": full") {
		t.Fatalf("usage with a 1 KiB quota:\n%s", out)
	}
	c.fails(exitUsage, "usage", "--recount")
	if out := c.ok("usage", "--quota", "1GiB", "--recount").stdout; !strings.Contains(out, ": ok") {
		t.Fatalf("usage with a 1 GiB quota:\n%s", out)
	}
	c.fails(exitUsage, "usage", "--quota", "lots")
	c.fails(exitUsage, "usage", "--warn-ratio", "2")
}

// corruptBlob overwrites the blob of uri's current version, found through
// its metadata and the file backend's API.
func corruptBlob(t *testing.T, c *cli, uri string) {
	t.Helper()
	var md store.Metadata
	decode(t, c.ok("stat", uri, "--json").stdout, &md)
	if md.BlobKey == "" {
		t.Fatalf("stat --json gave no blob key: %+v", md)
	}
	b, err := filebackend.New(filebackend.Config{Root: c.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bad := bytes.Repeat([]byte{'!'}, int(md.StoredSize))
	if _, err := b.Put(context.Background(), md.BlobKey, bytes.NewReader(bad), int64(len(bad)), backend.PutOptions{}); err != nil {
		t.Fatalf("overwrite blob %s: %v", md.BlobKey, err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["ARTIFACTSTORE_INLINE_MAX_BYTES"] = "-1" // blobs: the test damages and counts them
	seed(t, c)
	if r := c.ok("verify"); !strings.Contains(r.stdout, "checked 4 versions: 0 corrupt, 0 missing") {
		t.Fatalf("verify on a healthy store: %q", r.stdout)
	}
	corruptBlob(t, c, "artifact://specA/t2/test")

	r := c.fails(exitIntegrity, "verify")
	if !strings.Contains(r.stdout, "CORRUPT   artifact://specA/t2/test?version=1") || !strings.Contains(r.stdout, "1 corrupt") {
		t.Fatalf("verify does not print the problem:\n%s", r.stdout)
	}
	var rep verifyJSON
	r = c.run("verify", "--json", "--spec", "specA")
	if r.code != exitIntegrity {
		t.Fatalf("verify --json: exit %d", r.code)
	}
	decode(t, r.stdout, &rep)
	if rep.OK || rep.Checked != 3 || len(rep.Corrupt) != 1 || rep.Corrupt[0].URI != "artifact://specA/t2/test?version=1" || rep.Corrupt[0].Error == "" {
		t.Fatalf("verify --json = %+v", rep)
	}
	// Filters and URIs that avoid the corrupt artifact pass.
	c.ok("verify", "--spec", "specB")
	c.ok("verify", "artifact://specA/t1/log", "artifact://specA/t1/diff?version=1")
	c.fails(exitIntegrity, "verify", "artifact://specA/t2/test")
	// Reading it fails with the integrity status, and -o leaves no file.
	c.fails(exitIntegrity, "get", "artifact://specA/t2/test")
	dest := filepath.Join(t.TempDir(), "x")
	c.fails(exitIntegrity, "get", "artifact://specA/t2/test", "-o", dest)
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("get -o left %s behind after an integrity failure (stat err %v)", dest, err)
	}
	c.fails(exitUsage, "verify", "artifact://specA/t1/log", "--spec", "specA")
	c.fails(exitUsage, "verify", "--concurrency", "0")
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	c.ok("tag", "add", "artifact://specB/t9/log", "retain")

	// Default periods: nothing is days old.
	if r := c.ok("cleanup"); !strings.Contains(r.stdout, "would delete 0 versions") {
		t.Fatalf("cleanup with default retention: %q", r.stdout)
	}
	// Dry run with a 1ns log period lists specA's log (specB's is exempt).
	r := c.ok("cleanup", "--retention", "log=1ns")
	if !strings.Contains(r.stdout, "would delete artifact://specA/t1/log?version=1") || strings.Contains(r.stdout, "specB") ||
		!strings.Contains(r.stdout, "would delete 1 versions (1 whole artifacts)") || !strings.Contains(r.stdout, "--apply") {
		t.Fatalf("cleanup dry run:\n%s", r.stdout)
	}
	c.ok("stat", "artifact://specA/t1/log") // still there

	var rep cleanupJSON
	decode(t, c.ok("cleanup", "--retention", "log=1ns", "--retention", "diff=1ns", "--spec", "specA", "--json").stdout, &rep)
	if !rep.DryRun || rep.Versions != 2 || len(rep.Deleted) != 2 {
		t.Fatalf("cleanup --json dry run = %+v", rep)
	}
	r = c.ok("cleanup", "--retention", "log=1ns", "--apply")
	if !strings.Contains(r.stdout, "deleted artifact://specA/t1/log?version=1") || !strings.Contains(r.stdout, "deleted 1 versions") {
		t.Fatalf("cleanup --apply:\n%s", r.stdout)
	}
	c.fails(exitNotFound, "stat", "artifact://specA/t1/log")
	c.ok("stat", "artifact://specB/t9/log")
	c.ok("stat", "artifact://specA/t1/diff")

	c.fails(exitUsage, "cleanup", "--retention", "log")
	c.fails(exitUsage, "cleanup", "--retention", "log=-1h")
	c.fails(exitUsage, "cleanup", "--retention", "../x=1h")
	c.fails(exitUsage, "cleanup", "extra")
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["ARTIFACTSTORE_INLINE_MAX_BYTES"] = "-1" // blobs: the test damages and counts them
	seed(t, c)
	var rep reconcileJSON
	decode(t, c.ok("reconcile", "--json").stdout, &rep)
	if rep.Applied || rep.Manifests != 4 || rep.Blobs != 4 || len(rep.OrphanBlobs) != 0 || len(rep.MissingBlobs) != 0 {
		t.Fatalf("reconcile on a healthy store: %+v", rep)
	}
	// An orphan blob: written under blobs/ without a manifest.
	b, err := filebackend.New(filebackend.Config{Root: c.dir})
	if err != nil {
		t.Fatal(err)
	}
	orphan := "blobs/specA/t1/log/01ORPHANORPHANORPHANORPHAN"
	if _, err := b.Put(context.Background(), orphan, strings.NewReader("lost"), 4, backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	time.Sleep(20 * time.Millisecond) // older than the 1ms grace period below
	r := c.ok("reconcile", "--grace", "1ms")
	if !strings.Contains(r.stdout, "ORPHAN    "+orphan) || !strings.Contains(r.stdout, "would delete 1") {
		t.Fatalf("reconcile dry run:\n%s", r.stdout)
	}
	decode(t, c.ok("reconcile", "--grace", "1ms", "--apply", "--json").stdout, &rep)
	if !rep.Applied || rep.Deleted != 1 {
		t.Fatalf("reconcile --apply: %+v", rep)
	}
	decode(t, c.ok("reconcile", "--grace", "1ms", "--json").stdout, &rep)
	if len(rep.OrphanBlobs) != 0 {
		t.Fatalf("orphan still there after --apply: %+v", rep)
	}
	if !rep.TagIndexReady || rep.TagMarkers == 0 || len(rep.MissingTagMarkers) != 0 || len(rep.StaleTagMarkers) != 0 {
		t.Fatalf("tag index of a healthy store: %+v", rep)
	}

	// A tag marker lost behind the store's back is reported, then re-created.
	b, err = filebackend.New(filebackend.Config{Root: c.dir})
	if err != nil {
		t.Fatal(err)
	}
	var marker string
	for info, err := range b.List(context.Background(), "_index/tags/") {
		if err != nil {
			t.Fatal(err)
		}
		marker = info.Key
		break
	}
	if marker == "" {
		t.Fatal("no tag marker under _index/tags/")
	}
	if err := b.Delete(context.Background(), marker); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if r := c.ok("reconcile"); !strings.Contains(r.stdout, "NO-INDEX  ") || !strings.Contains(r.stdout, "1 missing (0 created)") {
		t.Fatalf("reconcile dry run after losing %s:\n%s", marker, r.stdout)
	}
	decode(t, c.ok("reconcile", "--apply", "--json").stdout, &rep)
	if len(rep.MissingTagMarkers) != 1 || rep.TagMarkersCreated != 1 {
		t.Fatalf("reconcile --apply after losing %s: %+v", marker, rep)
	}
	c.fails(exitUsage, "reconcile", "--grace", "soon")
}

func TestRm(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	// Without a terminal and without --yes: refused, nothing deleted.
	c.fails(exitUsage, "rm", "artifact://specA/t1/log")
	c.fails(exitUsage, "rm", "--spec", "specA")
	c.ok("stat", "artifact://specA/t1/log")

	if r := c.ok("rm", "--yes", "artifact://specA/t1/log"); strings.TrimSpace(r.stdout) != "deleted artifact://specA/t1/log" {
		t.Fatalf("rm --yes printed %q", r.stdout)
	}
	c.fails(exitNotFound, "stat", "artifact://specA/t1/log")
	c.fails(exitNotFound, "rm", "-y", "artifact://specA/t1/log")

	if r := c.ok("rm", "--spec", "specA", "--task", "t2", "--yes"); !strings.Contains(r.stdout, "deleted 1 artifacts of task specA/t2") {
		t.Fatalf("rm --task printed %q", r.stdout)
	}
	if r := c.ok("rm", "--spec", "specA", "--yes"); !strings.Contains(r.stdout, "deleted 1 artifacts of spec specA") {
		t.Fatalf("rm --spec printed %q", r.stdout)
	}
	var mds []store.Metadata
	decode(t, c.ok("ls", "--json").stdout, &mds)
	if got := uris(mds); !slices.Equal(got, []string{"artifact://specB/t9/log"}) {
		t.Fatalf("after rm: %q", got)
	}
	c.fails(exitUsage, "rm")
	c.fails(exitUsage, "rm", "--task", "../x", "--yes")
	c.fails(exitUsage, "rm", "--spec", "specB", "artifact://specB/t9/log", "--yes")
	c.fails(exitUsage, "rm", "artifact://../t/log", "--yes")
}

func TestRmConfirmation(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	seed(t, c)
	c.terminal = true

	r := c.runIn(strings.NewReader("n\n"), "rm", "artifact://specA/t1/log")
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "Delete artifact://specA/t1/log (every version)? [y/N] artifacts: rm: aborted") {
		t.Fatalf("rm answered no: stderr %q", r.stderr)
	}
	c.ok("stat", "artifact://specA/t1/log")

	r = c.runIn(strings.NewReader("yes\n"), "rm", "artifact://specA/t1/log")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted artifact://specA/t1/log") {
		t.Fatalf("rm answered yes: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	c.fails(exitNotFound, "stat", "artifact://specA/t1/log")

	r = c.runIn(strings.NewReader("y\n"), "rm", "--spec", "specA")
	if r.code != 0 || !strings.Contains(r.stderr, "Delete all 2 artifacts of spec specA") || !strings.Contains(r.stdout, "deleted 2 artifacts") {
		t.Fatalf("rm --spec answered y: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// No answer at all (EOF) declines.
	r = c.runIn(strings.NewReader(""), "rm", "artifact://specB/t9/log")
	if r.code != exitFailure {
		t.Fatalf("rm with EOF for an answer: exit %d", r.code)
	}
	c.ok("stat", "artifact://specB/t9/log")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("put", "artifact://s/t/log", writeFile(t, "f", []byte("x")))
	tests := []struct {
		name string
		code int
		args []string
	}{
		{"no command", exitUsage, nil},
		{"unknown command", exitUsage, []string{"frobnicate"}},
		{"unknown global flag", exitUsage, []string{"--frob", "ls"}},
		{"unknown flag", exitUsage, []string{"ls", "--frob"}},
		{"flag without value", exitUsage, []string{"get", "artifact://s/t/log", "--version"}},
		{"bad flag value", exitUsage, []string{"get", "artifact://s/t/log", "--version", "two"}},
		{"bad bool global", exitUsage, []string{"--versioning=maybe", "ls"}},
		{"traversal URI", exitUsage, []string{"get", "artifact://../x/y"}},
		{"empty URI", exitUsage, []string{"get", ""}},
		{"other scheme", exitUsage, []string{"stat", "s3://s/t/log"}},
		{"two-part URI", exitUsage, []string{"stat", "artifact://s/log"}},
		{"bad version", exitUsage, []string{"get", "artifact://s/t/log?version=0"}},
		{"put version URI", exitUsage, []string{"put", "artifact://s/t/log?version=1", "-"}},
		{"put missing args", exitUsage, []string{"put"}},
		{"put missing file", exitUsage, []string{"put", "artifact://s/t/log"}},
		{"put too many", exitUsage, []string{"put", "artifact://s/t/log", "a", "b"}},
		{"put partial names", exitUsage, []string{"put", "--spec", "s", "-"}},
		{"put bad meta", exitUsage, []string{"put", "artifact://s/t/log", "-", "--meta", "novalue"}},
		{"put bad meta-json", exitUsage, []string{"put", "artifact://s/t/log", "-", "--meta-json", "k=not json"}},
		{"put meta and meta-json", exitUsage, []string{"put", "artifact://s/t/log", "-", "--meta", "k=1", "--meta-json", "k=1"}},
		{"put bad tag", exitUsage, []string{"put", "artifact://s/t/log", "-", "--tag", "no spaces"}},
		{"put directory", exitUsage, []string{"put", "artifact://s/t/log", os.TempDir()}},
		{"put missing file on disk", exitNotFound, []string{"put", "artifact://s/t/log", "/nonexistent/file"}},
		{"get missing URI", exitUsage, []string{"get"}},
		{"get two URIs", exitUsage, []string{"get", "artifact://s/t/log", "artifact://s/t/diff"}},
		{"get not found", exitNotFound, []string{"get", "artifact://s/t/diff"}},
		{"stat not found", exitNotFound, []string{"stat", "artifact://s/none/log"}},
		{"lock no sub", exitUsage, []string{"lock"}},
		{"lock unknown sub", exitUsage, []string{"lock", "frob"}},
		{"lock status no URI", exitUsage, []string{"lock", "status"}},
		{"help unknown", exitUsage, []string{"help", "frob"}},
		{"bad backend", exitUsage, []string{"--backend", "tape", "ls"}},
		{"bad env duration", exitUsage, []string{"--lock-timeout", "soon", "ls"}},
		{"missing dir", exitNotFound, []string{"--dir", filepath.Join(t.TempDir(), "nope"), "ls"}},
		{"missing config file", exitUsage, []string{"--config", filepath.Join(t.TempDir(), "nope.env"), "ls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.fails(tt.code, tt.args...)
			if r.stdout != "" {
				t.Fatalf("stdout not empty on failure: %q", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	top := c.ok("--help")
	for _, want := range []string{"Commands:", "put", "reconcile", "lock", "--dir DIR", "ARTIFACTSTORE_DIR", "ARTIFACTSTORE_S3_SECRET_KEY", "Exit status:", "130"} {
		if !strings.Contains(top.stdout, want) {
			t.Fatalf("--help lacks %q", want)
		}
	}
	if c.ok("help").stdout != top.stdout || c.ok("-h").stdout != top.stdout {
		t.Fatal("help and -h differ from --help")
	}
	for _, cmd := range commands() {
		args := []string{cmd.name, "--help"}
		r := c.ok(args...)
		if !strings.Contains(r.stdout, "Usage:\n  artifacts "+cmd.name) || !strings.Contains(r.stdout, "Global flags") ||
			!strings.Contains(r.stdout, "ARTIFACTSTORE_DIR") || !strings.Contains(r.stdout, "Exit status") {
			t.Fatalf("%s --help:\n%s", cmd.name, r.stdout)
		}
		if r.stderr != "" {
			t.Fatalf("%s --help wrote on stderr: %q", cmd.name, r.stderr)
		}
		if h := c.ok("help", cmd.name).stdout; h != r.stdout {
			t.Fatalf("help %s differs from %s --help", cmd.name, cmd.name)
		}
		for _, sub := range cmd.subs {
			word := strings.TrimPrefix(sub.name, cmd.name+" ")
			if r := c.ok(cmd.name, word, "-h"); !strings.Contains(r.stdout, "Usage:\n  artifacts "+sub.name) {
				t.Fatalf("%s -h:\n%s", sub.name, r.stdout)
			}
		}
	}
	if r := c.ok("put", "--help"); !strings.Contains(r.stdout, "--meta KEY=VALUE") || !strings.Contains(r.stdout, "--content-type TYPE") {
		t.Fatalf("put --help does not list its flags:\n%s", r.stdout)
	}
	if r := c.ok("rm", "--help"); !strings.Contains(r.stdout, "-y, --yes") {
		t.Fatalf("rm --help does not show the -y alias:\n%s", r.stdout)
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	fileDir, envDir, flagDir := filepath.Join(base, "file"), filepath.Join(base, "env"), filepath.Join(base, "flag")
	cfgFile := writeFile(t, "artifacts.env", []byte(strings.Join([]string{
		"# artifacts config",
		"",
		"export ARTIFACTSTORE_DIR=\"" + fileDir + "\"",
		"ARTIFACTSTORE_VERSIONING = true",
		"ARTIFACTSTORE_LOCK_TIMEOUT='5s'",
	}, "\n")))
	data := writeFile(t, "x", []byte("x"))
	exists := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "locks"))
		return err == nil
	}

	c := &cli{t: t, env: map[string]string{}}
	c.ok("--config", cfgFile, "put", "artifact://s/t/log", data)
	c.ok("put", "artifact://s/t/log", writeFile(t, "y", []byte("y")), "--config", cfgFile)
	if !exists(fileDir) {
		t.Fatal("the config file's ARTIFACTSTORE_DIR was not used")
	}
	// The file's ARTIFACTSTORE_VERSIONING applies: two versions.
	var mds []store.Metadata
	decode(t, c.ok("versions", "artifact://s/t/log", "--json", "--config", cfgFile).stdout, &mds)
	if len(mds) != 2 {
		t.Fatalf("versioning from the config file: %d versions, want 2", len(mds))
	}

	// ARTIFACTSTORE_CONFIG names the file; the environment beats it.
	c.env["ARTIFACTSTORE_CONFIG"] = cfgFile
	c.env["ARTIFACTSTORE_DIR"] = envDir
	c.ok("put", "artifact://s/t/log", data)
	if !exists(envDir) {
		t.Fatal("the environment did not beat the config file")
	}
	// Flags beat both; a flag can turn versioning off again.
	c.ok("put", "--dir", flagDir, "--versioning=false", "artifact://s/t/log", data)
	c.ok("put", "--dir", flagDir, "--versioning=false", "artifact://s/t/log", writeFile(t, "z", []byte("z")))
	decode(t, c.ok("versions", "--dir", flagDir, "artifact://s/t/log", "--json").stdout, &mds)
	if len(mds) != 1 || mds[0].Version != 2 {
		t.Fatalf("--versioning=false over the config file: %+v", mds)
	}
	// An empty environment variable counts as unset: the file's value applies.
	c.env["ARTIFACTSTORE_DIR"] = ""
	var fromFile []store.Metadata
	decode(t, c.ok("ls", "--json").stdout, &fromFile)
	if len(fromFile) != 1 {
		t.Fatalf("empty ARTIFACTSTORE_DIR did not fall back to the file: %+v", fromFile)
	}

	for name, body := range map[string]string{
		"no equals":      "ARTIFACTSTORE_DIR",
		"foreign key":    "HOME=/tmp",
		"nested config":  "ARTIFACTSTORE_CONFIG=/x",
		"malformed bool": "ARTIFACTSTORE_DIR=/tmp/x\nARTIFACTSTORE_VERSIONING=perhaps",
	} {
		t.Run(name, func(t *testing.T) {
			bad := writeFile(t, "bad.env", []byte(body))
			(&cli{t: t, env: map[string]string{}}).fails(exitUsage, "--config", bad, "ls")
		})
	}
}

func TestMemoryBackend(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, env: map[string]string{"ARTIFACTSTORE_BACKEND": "memory"}}
	// The memory backend lasts one invocation: an empty store each time.
	c.ok("put", "artifact://s/t/log", writeFile(t, "x", []byte("x")))
	if r := c.ok("ls", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("memory backend ls --json = %q", r.stdout)
	}
	c.fails(exitNotFound, "get", "artifact://s/t/log")
}

func TestLockNone(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.env["ARTIFACTSTORE_LOCK"] = "none"
	c.ok("put", "artifact://s/t/log", writeFile(t, "x", []byte("x")))
	c.fails(exitUnsupported, "lock", "status", "artifact://s/t/log")
	c.fails(exitUnsupported, "lock", "break", "--yes", "artifact://s/t/log")
}

func TestParsers(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	times := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"2026-01-02T15:04:05+02:00", time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC), true},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), true},
		{"24h", now.Add(-24 * time.Hour), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"2w ago", now.Add(-14 * 24 * time.Hour), true},
		{"1d12h", now.Add(-36 * time.Hour), true},
		{"-1h", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range times {
		got, err := parseTime(tt.in, now)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	sizes := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1000", 1000, true}, {"10GiB", 10 << 30, true}, {"10G", 10 << 30, true}, {"500MB", 500e6, true},
		{"1.5KiB", 1536, true}, {"2 MiB", 2 << 20, true}, {"lots", 0, false}, {"10XB", 0, false}, {"-1", 0, false},
	}
	for _, tt := range sizes {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	human := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"}
	for n, want := range human {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatPeriod(store.RetainForever); got != "forever" {
		t.Errorf("formatPeriod(forever) = %q", got)
	}
	if got := formatPeriod(7 * 24 * time.Hour); got != "7d" {
		t.Errorf("formatPeriod(7d) = %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		ctx  context.Context
		err  error
		want int
	}{
		{ctx, nil, exitOK},
		{ctx, io.ErrUnexpectedEOF, exitFailure},
		{ctx, usageErr("x", "y"), exitUsage},
		{ctx, store.ErrInvalidArgument, exitUsage},
		{ctx, store.ErrNotFound, exitNotFound},
		{ctx, os.ErrNotExist, exitNotFound},
		// A missing blob matches both: integrity wins.
		{ctx, errors.Join(store.ErrIntegrity, store.ErrNotFound), exitIntegrity},
		{ctx, store.ErrStorageFull, exitStorageFull},
		{ctx, store.ErrLockTimeout, exitLocked},
		{ctx, errors.Join(store.ErrLockTimeout, context.DeadlineExceeded), exitLocked},
		{ctx, store.ErrLocked, exitLocked},
		{ctx, store.ErrLeaseLost, exitLocked},
		{ctx, store.ErrConflict, exitLocked},
		{ctx, store.ErrPermissionDenied, exitPermission},
		{ctx, os.ErrPermission, exitPermission},
		{ctx, store.ErrUnsupported, exitUnsupported},
		// An unreachable lock service also ends the wait with a timeout.
		{ctx, errors.Join(store.ErrLockTimeout, lock.ErrUnavailable), exitUnavailable},
		{ctx, lock.ErrUnavailable, exitUnavailable},
		// A refused Redis password is reported by an unavailable quorum.
		{ctx, errors.Join(lock.ErrUnavailable, lock.ErrPermissionDenied), exitPermission},
		{cancelled, context.Canceled, exitInterrupted},
		// An unknown outcome says more than the cancellation it may wrap.
		{ctx, store.ErrUnknownOutcome, exitUnknown},
		{cancelled, errors.Join(store.ErrUnknownOutcome, context.Canceled), exitUnknown},
		{ctx, &exitError{code: 42, msg: "x"}, 42},
	}
	for _, tt := range tests {
		if got := exitCode(tt.ctx, tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &buf, label: "export", now: func() time.Time { return now }}
	p.update(0, 4, 0, 100, false)
	p.update(1, 4, 10, 100, false) // within a second: skipped
	now = now.Add(2 * time.Second)
	p.update(2, 4, 50, 100, false)
	p.update(4, 4, 100, 100, true)
	want := "export: 0/4 artifacts, 0 B/100 B\nexport: 2/4 artifacts, 50 B/100 B\nexport: 4/4 artifacts, 100 B/100 B\n"
	if buf.String() != want {
		t.Fatalf("plain progress:\n%q\nwant\n%q", buf.String(), want)
	}
	buf.Reset()
	p = &progress{w: &buf, tty: true, label: "export", now: func() time.Time { return now }}
	p.update(2, 4, 50, 100, false)
	p.update(4, 4, 100, 100, true)
	out := buf.String()
	if !strings.HasPrefix(out, "\rexport [==============>               ]  50%") || !strings.Contains(out, "\rexport [==============================] 100%") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress bar: %q", out)
	}
}

func TestLockBreakConfirmation(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	const uri = "artifact://s/t/log"
	c.ok("put", uri, writeFile(t, "x", []byte("x")))
	cfg := setup.Config{FileDir: c.dir}.WithDefaults()
	l, err := filelock.New(filelock.Config{Dir: cfg.LockDir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if _, err := l.TryAcquire(ctx, uri); err != nil {
		t.Fatal(err)
	}
	c.terminal = true
	r := c.runIn(strings.NewReader("no\n"), "lock", "break", uri)
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "Break the lock of "+uri+" held by ") || !strings.Contains(r.stderr, "aborted") {
		t.Fatalf("lock break answered no: exit %d, stderr %q", r.code, r.stderr)
	}
	var st lockJSON
	decode(t, c.ok("lock", "status", uri, "--json").stdout, &st)
	if !st.Held {
		t.Fatal("the lock was broken although the answer was no")
	}
	r = c.runIn(strings.NewReader("y\n"), "lock", "break", uri, "--json")
	if r.code != 0 {
		t.Fatalf("lock break answered y: exit %d, stderr %q", r.code, r.stderr)
	}
	decode(t, r.stdout, &st)
	if !st.Broken || st.Holder == nil || st.Holder.PID != os.Getpid() {
		t.Fatalf("lock break --json = %+v", st)
	}
	decode(t, c.ok("lock", "status", uri, "--json").stdout, &st)
	if st.Held {
		t.Fatal("the lock is still held after lock break")
	}
}

func TestVerbose(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("put", "artifact://s/t/log", writeFile(t, "x", []byte("x")))
	if r := c.ok("ls"); r.stderr != "" {
		t.Fatalf("ls without --verbose wrote on stderr: %q", r.stderr)
	}
	r := c.run("-v", "stat", "artifact://s/none/log")
	if r.code != exitNotFound || !strings.Contains(r.stderr, "level=") || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("-v did not log the store's records on stderr: exit %d, %q", r.code, r.stderr)
	}
}

func TestExpires(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	file := writeFile(t, "x.log", []byte("x"))
	c.ok("put", "artifact://s/t/log", file)
	c.ok("put", "artifact://s/t/custom", file)
	var one expiryJSON
	decode(t, c.ok("expires", "artifact://s/t/log", "--json").stdout, &one)
	if one.ExpiresAt == nil || one.Expired || one.ExpiresAt.Sub(one.CreatedAt) != 7*24*time.Hour {
		t.Fatalf("expires --json = %+v, want 7 days after creation", one)
	}
	if r := c.ok("expires", "artifact://s/t/log"); !strings.Contains(r.stdout, "artifact://s/t/log?version=1 expires 20") || !strings.Contains(r.stdout, "(in 6d23h)") {
		t.Errorf("expires: %q", r.stdout)
	}
	if r := c.ok("expires", "artifact://s/t/custom"); !strings.Contains(r.stdout, "never expires") {
		t.Errorf("expires of a custom type: %q", r.stdout)
	}
	if r := c.ok("expires", "--within", "0"); !strings.Contains(r.stdout, "0 versions expired within") {
		t.Errorf("expires --within 0: %q", r.stdout)
	}
	var list []expiryJSON
	decode(t, c.ok("expires", "--within", "8d", "--json").stdout, &list)
	if len(list) != 1 || list[0].URI != "artifact://s/t/log?version=1" {
		t.Errorf("expires --within 8d = %+v, want the log", list)
	}
	if r := c.ok("expires", "--within", "0", "--retention", "log=1ns", "--type", "log"); !strings.Contains(r.stdout, "artifact://s/t/log?version=1") ||
		!strings.Contains(r.stdout, ", expired 20") {
		t.Errorf("expires --within 0 --retention log=1ns: %q", r.stdout)
	}
	c.fails(exitUsage, "expires")
	c.fails(exitUsage, "expires", "artifact://s/t/log", "--type", "log")
	c.fails(exitUsage, "expires", "--within", "soon")
	c.fails(exitUsage, "expires", "--within", "1d", "artifact://s/t/log")
	c.fails(exitNotFound, "expires", "artifact://s/none/log")
}

func TestTaskAcrossSpecsCLI(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	file := writeFile(t, "x.log", []byte("x"))
	for _, uri := range []string{"artifact://a/t1/log", "artifact://b/t1/diff", "artifact://b/t2/log"} {
		c.ok("put", uri, file)
	}
	dir := t.TempDir()
	if r := c.ok("export", "--task", "t1", "-o", dir, "--quiet"); !strings.Contains(r.stdout, filepath.Join(dir, "task-t1.zip")) {
		t.Fatalf("export --task: %q", r.stdout)
	}
	zr, err := zip.OpenReader(filepath.Join(dir, "task-t1.zip"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	_ = zr.Close()
	if want := []string{"a/t1/log", "a/t1/log@metadata.json", "b/t1/diff", "b/t1/diff@metadata.json"}; !slices.Equal(names, want) {
		t.Errorf("export --task t1 entries %v, want %v", names, want)
	}
	if r := c.ok("rm", "--task", "t1", "--yes"); !strings.Contains(r.stdout, "deleted 2 artifacts of task t1 in every spec") {
		t.Fatalf("rm --task: %q", r.stdout)
	}
	var mds []store.Metadata
	decode(t, c.ok("ls", "--json").stdout, &mds)
	if got := uris(mds); !slices.Equal(got, []string{"artifact://b/t2/log"}) {
		t.Fatalf("after rm --task t1: %q", got)
	}
}
