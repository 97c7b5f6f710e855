package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/s3backend"
)

// readOnlyURI is the artifact the read-only tests read.
const readOnlyURI = "artifact://ro/t1/log"

// readCommands are every read command of the tool, on readOnlyURI.
var readCommands = [][]string{
	{"get", readOnlyURI},
	{"ls", "ro"},
	{"search", "--tag", "green"},
	{"stat", readOnlyURI},
	{"versions", readOnlyURI},
	{"usage"},
	{"verify"},
	{"export", "ro"},
	{"expires", readOnlyURI},
	{"cleanup"},
	{"reconcile"},
	{"lock", "status", readOnlyURI},
	{"doctor"},
}

// TestReadOnlyDirectory: every read command works on a store directory
// the user may only read, and writes nothing there; put is refused with
// exit status 7. File permissions bind every user but root: as root the
// commands run as the user nobody.
func TestReadOnlyDirectory(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "store")
	owner := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
	owner.ok(strings.NewReader("hello"), "put", readOnlyURI, "-", "--tag", "green")

	reader := newProc(t, bin, "ARTIFACTSTORE_DIR="+dir, "ARTIFACTSTORE_FILE_NO_SYNC=true")
	if os.Geteuid() == 0 {
		reader.cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody
		// nobody must reach the binary and the store: open the test's
		// temporary directories to others (read and search only).
		for _, p := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin)), filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Read for everyone, search where the owner may search, write for
	// no one.
	testenv.ChmodTree(t, dir, func(m fs.FileMode) fs.FileMode {
		x := m & 0o100
		return m&^0o222 | 0o444 | x>>3 | x>>6
	})
	t.Cleanup(func() { testenv.ChmodTree(t, dir, func(m fs.FileMode) fs.FileMode { return m | 0o200 }) })
	before := testenv.Tree(t, dir)

	for _, args := range readCommands {
		reader.ok(nil, args...)
	}
	if r := reader.ok(nil, "get", readOnlyURI); r.stdout != "hello" {
		t.Errorf("get = %q, want hello", r.stdout)
	}
	reader.fails(exitPermission, strings.NewReader("x"), "put", "artifact://ro/t1/diff", "-")
	if after := testenv.Tree(t, dir); !slices.Equal(after, before) {
		t.Errorf("the read commands changed the store directory:\nbefore %v\nafter  %v", before, after)
	}
}

// TestReadOnlyS3Credentials: with credentials that may only read the
// bucket (a versitygw user with a GetObject/ListBucket policy), every read
// command works and the bucket does not change; put is refused with exit
// status 7.
func TestReadOnlyS3Credentials(t *testing.T) {
	s3 := testenv.StartVersityGW(t)
	redis := testenv.StartRedis(t)
	c := &cli{t: t, env: map[string]string{
		"ARTIFACTSTORE_BACKEND":          "s3",
		"ARTIFACTSTORE_S3_ENDPOINT":      s3.Endpoint,
		"ARTIFACTSTORE_S3_BUCKET":        s3.Bucket,
		"ARTIFACTSTORE_S3_ACCESS_KEY":    s3.AccessKey,
		"ARTIFACTSTORE_S3_SECRET_KEY":    s3.SecretKey,
		"ARTIFACTSTORE_S3_REGION":        s3.Region,
		"ARTIFACTSTORE_S3_USE_SSL":       strconv.FormatBool(s3.UseSSL),
		"ARTIFACTSTORE_S3_CREATE_BUCKET": "true",
		"ARTIFACTSTORE_LOCK":             "redis",
		"ARTIFACTSTORE_REDIS_ADDRS":      redis.Addr(),
		"ARTIFACTSTORE_LOCK_TIMEOUT":     "5s",
	}}
	c.ok("put", readOnlyURI, writeFile(t, "v.log", []byte("hello")), "--tag", "green")
	ro := s3.AddReadOnlyUser(t)
	raw, err := s3backend.New(context.Background(), s3backend.Config{
		Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, UseSSL: s3.UseSSL,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	before := backendtest.Objects(t, raw, "")

	c.env["ARTIFACTSTORE_S3_ACCESS_KEY"], c.env["ARTIFACTSTORE_S3_SECRET_KEY"] = ro.AccessKey, ro.SecretKey
	c.env["ARTIFACTSTORE_S3_CREATE_BUCKET"] = "false"
	for _, args := range readCommands {
		c.ok(args...)
	}
	c.fails(exitPermission, "put", "artifact://ro/t1/diff", writeFile(t, "d.diff", []byte("x")))
	if r := c.ok("doctor"); !strings.Contains(r.stdout, "conditional writes  ok") {
		t.Errorf("doctor with read-only credentials:\n%s", r.stdout)
	}
	if after := backendtest.Objects(t, raw, ""); !slices.Equal(after, before) {
		t.Errorf("the bucket changed:\nbefore %v\nafter  %v", before, after)
	}
}
