package filebackend_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/internal/testenv"
	"github.com/necrocode/artifactstore/pkg/backend"
	"github.com/necrocode/artifactstore/pkg/backend/backendtest"
	"github.com/necrocode/artifactstore/pkg/backend/filebackend"
)

// TestMain doubles as the child process of the multi-process tests: when
// childEnv is set, the test binary runs one child role and exits.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, t.TempDir())
	})
}

func newBackend(t *testing.T, root string) *filebackend.Backend {
	t.Helper()
	b, err := filebackend.New(filebackend.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func put(t *testing.T, b backend.Backend, key, body string, opts backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(body), int64(len(body)), opts)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// files returns the relative paths of every file and directory under root.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var tmp []string
	for _, f := range files(t, root) {
		if strings.HasPrefix(filepath.Base(f), ".tmp-") {
			tmp = append(tmp, f)
		}
	}
	return tmp
}

// ---------------------------------------------------------------------------
// configuration

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  filebackend.Config
		ok   bool
	}{
		{"root only", filebackend.Config{Root: "/tmp/x"}, true},
		{"all set", filebackend.Config{Root: "x", CreateRoot: true, DirPerm: 0o700, FilePerm: 0o600, NoSync: true}, true},
		{"no root", filebackend.Config{}, false},
		{"dir perm with type bits", filebackend.Config{Root: "x", DirPerm: fs.ModeDir | 0o755}, false},
		{"dir perm not searchable", filebackend.Config{Root: "x", DirPerm: 0o600}, false},
		{"file perm with setuid", filebackend.Config{Root: "x", FilePerm: fs.ModeSetuid | 0o644}, false},
		{"file perm not writable", filebackend.Config{Root: "x", FilePerm: 0o444}, false},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if tc.ok && err != nil {
			t.Errorf("%s: Validate = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, backend.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	d := filebackend.Config{Root: "x"}.WithDefaults()
	if d.DirPerm != 0o755 || d.FilePerm != 0o644 || d.NoSync || d.CreateRoot {
		t.Errorf("defaults = %+v", d)
	}
}

func TestNewRoot(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "a", "b")
	if _, err := filebackend.New(filebackend.Config{Root: missing}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New with a missing root: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New without CreateRoot created the root")
	}
	b, err := filebackend.New(filebackend.Config{Root: missing, CreateRoot: true})
	if err != nil {
		t.Fatalf("New with CreateRoot: %v", err)
	}
	defer b.Close()
	if b.Root() != missing {
		t.Errorf("Root() = %q, want %q", b.Root(), missing)
	}
	put(t, b, "k", "v", backend.PutOptions{})

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := filebackend.New(filebackend.Config{Root: file}); !errors.Is(err, backend.ErrInvalidArgument) {
		t.Errorf("New with a file as root: err = %v, want ErrInvalidArgument", err)
	}

	// A relative root is made absolute.
	t.Chdir(dir)
	rel, err := filebackend.New(filebackend.Config{Root: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	if rel.Root() != filepath.Join(dir, "a") {
		t.Errorf("Root() = %q", rel.Root())
	}
}

// ---------------------------------------------------------------------------
// layout

// The on-disk layout is the documented one, and an object and keys below it
// coexist.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	keys := []string{"a", "a/b", "a/b/c", "a-b", "a.obj", "a.d", "a.obj/x", "a.d/y.d", ".locks", "x.tmp"}
	for _, k := range keys {
		put(t, b, k, "content of "+k, backend.PutOptions{ContentType: "text/plain"})
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := backendtest.Keys(t, b, ""); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if got, want := backendtest.Keys(t, b, "a/"), []string{"a/b", "a/b/c"}; !slices.Equal(got, want) {
		t.Errorf("List(a/) = %q, want %q", got, want)
	}
	for _, k := range keys {
		rc, info, err := b.Get(t.Context(), k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if string(data) != "content of "+k || info.ContentType != "text/plain" {
			t.Errorf("Get(%q) = %q (%s)", k, data, info.ContentType)
		}
	}
	for _, p := range []string{"a.obj", "a.d/b.obj", "a.d/b.d/c.obj", "a-b.obj", "a.obj.obj", "a.d.obj", "a.obj.d/x.obj", "a.d.d/y.d.obj", ".locks.obj", "x.tmp.obj"} {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("object file %s: %v", p, err)
			continue
		}
		if !bytes.HasPrefix(data, []byte("ASOBJ1\n")) || !bytes.Contains(data, []byte(`"contentType":"text/plain"`)) {
			t.Errorf("object file %s does not start with the documented header: %q", p, data)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, ".locks")); err != nil || !fi.IsDir() {
		t.Errorf("lock directory: %v", err)
	}
}

func TestSegmentLength(t *testing.T) {
	b := newBackend(t, t.TempDir())
	ok := "dir/" + strings.Repeat("s", 251)
	put(t, b, ok, "x", backend.PutOptions{})
	put(t, b, strings.Repeat("d", 251)+"/x", "x", backend.PutOptions{})
	for _, k := range []string{"dir/" + strings.Repeat("s", 252), strings.Repeat("d", 252) + "/x"} {
		if _, err := b.Put(t.Context(), k, strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Put with a %d-byte segment: err = %v, want ErrInvalidKey", len(k)-4, err)
		}
		if _, err := b.Stat(t.Context(), k); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Stat with a long segment: err = %v, want ErrInvalidKey", err)
		}
	}
	// A prefix naming a directory too long to exist lists nothing.
	if got := backendtest.Keys(t, b, strings.Repeat("d", 300)+"/"); len(got) != 0 {
		t.Errorf("List = %q", got)
	}
}

// Deleting the last object of a directory removes the directories it
// leaves empty, and only those.
func TestDeletePrunesDirectories(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	put(t, b, "x/y/z", "1", backend.PutOptions{})
	put(t, b, "x/keep", "2", backend.PutOptions{})
	if err := b.Delete(t.Context(), "x/y/z"); err != nil {
		t.Fatal(err)
	}
	if got, want := filterLocks(files(t, root)), []string{"x.d", "x.d/keep.obj"}; !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	if err := b.Delete(t.Context(), "x/keep"); err != nil {
		t.Fatal(err)
	}
	if got := filterLocks(files(t, root)); len(got) != 0 {
		t.Errorf("files left after deleting everything: %q", got)
	}
}

func filterLocks(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p != ".locks" && !strings.HasPrefix(p, ".locks/") {
			out = append(out, p)
		}
	}
	return out
}

// Puts and Deletes racing in one directory: a Delete may remove the
// directory a Put has just created; the Put must cope.
func TestPutDeleteDirectoryRace(t *testing.T) {
	b := newBackend(t, t.TempDir())
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("race/dir%d/sub/k%d-%d", i%3, w, i)
				if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, backend.PutOptions{}); err != nil {
					t.Errorf("Put(%q): %v", key, err)
					return
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("Delete(%q): %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := backendtest.Keys(t, b, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

// ---------------------------------------------------------------------------
// atomicity

// A failed Put leaves no temporary file; a temporary file left by a dead
// writer is invisible to List and removed by RemoveStaleTemp.
func TestNoTempFilesVisible(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	ctx := t.Context()
	put(t, b, "dir/existing", "old", backend.PutOptions{})

	errBoom := errors.New("boom")
	body := io.MultiReader(strings.NewReader("partial"), errReader{errBoom})
	if _, err := b.Put(ctx, "dir/new", body, 100, backend.PutOptions{}); !errors.Is(err, errBoom) {
		t.Errorf("Put with a failing reader: err = %v, want it to wrap the reader's error", err)
	}
	if _, err := b.Put(ctx, "dir/existing", strings.NewReader("new"), 3, backend.PutOptions{IfAbsent: true}); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("IfAbsent Put: %v", err)
	}
	if tmp := tempFiles(t, root); len(tmp) != 0 {
		t.Errorf("temporary files left by failed Puts: %q", tmp)
	}

	// A writer that died mid-Put.
	stale := filepath.Join(root, "dir.d", ".tmp-0123456789abcdef.tmp")
	if err := os.WriteFile(stale, []byte("ASOBJ1\n half an object"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := backendtest.Keys(t, b, ""); !slices.Equal(got, []string{"dir/existing"}) {
		t.Errorf("List = %q, want only dir/existing", got)
	}
	n, err := b.RemoveStaleTemp(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Errorf("RemoveStaleTemp(1h) = %d, %v; want 0 (the file is new)", n, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	n, err = b.RemoveStaleTemp(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Errorf("RemoveStaleTemp(1h) = %d, %v; want 1", n, err)
	}
	if tmp := tempFiles(t, root); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
}

// A process killed in the middle of a Put leaves no object, and the
// previous one intact.
func TestKilledWriter(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	old := put(t, b, "victim", "previous", backend.PutOptions{})

	cmd := child(t, "hang", root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child says when it has written part of the body, then blocks.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "writing\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(tempFiles(t, root)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the child's temporary file never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	if got := backendtest.Keys(t, b, ""); !slices.Equal(got, []string{"victim"}) {
		t.Errorf("List = %q", got)
	}
	rc, info, err := b.Get(t.Context(), "victim")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "previous" || info.ETag != old.ETag {
		t.Errorf("victim = %q (ETag %q), want the previous object", data, info.ETag)
	}
	if _, err := b.Stat(t.Context(), "victim-new"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(victim-new) = %v", err)
	}
	// The killed writer held no lock: conditional writes go on.
	if _, err := b.Put(t.Context(), "victim", strings.NewReader("next"), 4, backend.PutOptions{IfMatch: old.ETag}); err != nil {
		t.Errorf("IfMatch Put after the kill: %v", err)
	}
	if n, err := b.RemoveStaleTemp(t.Context(), 0); err != nil || n != 1 {
		t.Errorf("RemoveStaleTemp(0) = %d, %v; want 1", n, err)
	}
}

// A reader returned by Get keeps its version across a replace and a delete.
func TestGetReadsSnapshot(t *testing.T) {
	b := newBackend(t, t.TempDir())
	put(t, b, "k", "old", backend.PutOptions{})
	rc, _, err := b.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	put(t, b, "k", "new!", backend.PutOptions{})
	if err := b.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(rc); err != nil || string(data) != "old" {
		t.Errorf("read %q, %v; want \"old\"", data, err)
	}
}

func TestETagChangesOnIdenticalPut(t *testing.T) {
	b := newBackend(t, t.TempDir())
	first := put(t, b, "k", "same", backend.PutOptions{})
	second := put(t, b, "k", "same", backend.PutOptions{IfMatch: first.ETag})
	if first.ETag == second.ETag {
		t.Errorf("ETag %q unchanged by a second Put", first.ETag)
	}
	if _, err := b.Put(t.Context(), "k", strings.NewReader("same"), 4, backend.PutOptions{IfMatch: first.ETag}); !errors.Is(err, backend.ErrPreconditionFailed) {
		t.Errorf("IfMatch with the first ETag: err = %v, want ErrPreconditionFailed", err)
	}
}

// ---------------------------------------------------------------------------
// errors

func TestErrorsKeepOSError(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	_, _, err := b.Get(t.Context(), "missing/key")
	var pe *fs.PathError
	if !errors.Is(err, backend.ErrNotFound) || !errors.As(err, &pe) {
		t.Errorf("Get(missing): err = %v, want ErrNotFound with the *fs.PathError in the chain", err)
	}
	// A file that is not an object of this backend.
	if err := os.WriteFile(filepath.Join(root, "junk.obj"), []byte("not an object"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "junk"); err == nil || errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Stat(junk) = %v, want a corruption error", err)
	}
	var listErr error
	for _, err := range b.List(t.Context(), "") {
		listErr = err
	}
	if listErr == nil || !strings.Contains(listErr.Error(), "junk") {
		t.Errorf("List over a corrupt file: err = %v, want an error naming it", listErr)
	}
}

// ---------------------------------------------------------------------------
// root escape

func TestRootEscape(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	b := newBackend(t, root)
	ctx := t.Context()

	// Keys that would climb out are rejected before any I/O.
	for _, k := range []string{"../x", "a/../../x", "/etc/passwd", "a/./b"} {
		if _, err := b.Put(ctx, k, strings.NewReader("x"), 1, backend.PutOptions{}); !errors.Is(err, backend.ErrInvalidKey) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"../", "a/../"} {
		for _, err := range b.List(ctx, p) {
			if !errors.Is(err, backend.ErrInvalidKey) {
				t.Errorf("List(%q): err = %v, want ErrInvalidKey", p, err)
			}
		}
	}

	// A symbolic link planted in the root cannot lead reads or writes
	// outside it, whether it is absolute or relative.
	put(t, b, "seed", "x", backend.PutOptions{}) // an object outside would be "<outside>/secret.obj"
	secret := filepath.Join(outside, "secret.obj")
	if err := os.WriteFile(secret, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	relOutside, err := filepath.Rel(root, outside)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": outside, "rel": relOutside} {
		if err := os.Symlink(target, filepath.Join(root, name+".d")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, name+"/planted", strings.NewReader("x"), 1, backend.PutOptions{}); err == nil {
			t.Errorf("Put through the %s symlink succeeded", name)
		}
		if _, _, err := b.Get(ctx, name+"/secret"); err == nil {
			t.Errorf("Get through the %s symlink succeeded", name)
		}
		if err := b.Delete(ctx, name+"/secret"); err == nil {
			t.Logf("Delete through the %s symlink reported success", name)
		}
	}
	if got := files(t, outside); !slices.Equal(got, []string{"secret.obj"}) {
		t.Errorf("files outside the root = %q, want only secret.obj", got)
	}
	if got := backendtest.Keys(t, b, ""); !slices.Equal(got, []string{"seed"}) {
		t.Errorf("List = %q: a symlink was followed", got)
	}
}

// ---------------------------------------------------------------------------
// several processes

// Several Backends on one root in one process contend through the file
// locks exactly as processes do.
func TestTwoBackendsOneRoot(t *testing.T) {
	root := t.TempDir()
	b1, b2 := newBackend(t, root), newBackend(t, root)
	var wins, losses int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		wg.Go(func() {
			_, err := b.Put(t.Context(), "shared", strings.NewReader("x"), 1, backend.PutOptions{IfAbsent: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, backend.ErrPreconditionFailed):
				losses++
			default:
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 19 {
		t.Errorf("wins %d, losses %d; want 1 and 19", wins, losses)
	}
}

const (
	childEnv     = "FILEBACKEND_TEST_CHILD"
	childRootEnv = "FILEBACKEND_TEST_ROOT"
	// childETagsEnv passes the ETags of the keys to delete-or-replace.
	childETagsEnv = "FILEBACKEND_TEST_ETAGS"
	processes     = 4
	raceKeys      = 20
	increments    = 10
)

// child prepares the test binary to run role in a child process.
func child(t *testing.T, role, root string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childRootEnv+"="+root)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runChildren starts processes children running role, releases them at
// once through their stdin, and returns their outputs.
func runChildren(t *testing.T, role, root string) []string {
	t.Helper()
	cmds := make([]*exec.Cmd, processes)
	outs := make([]*bytes.Buffer, processes)
	gos := make([]io.WriteCloser, processes)
	for i := range cmds {
		cmds[i] = child(t, role, root)
		outs[i] = &bytes.Buffer{}
		cmds[i].Stdout = outs[i]
		var err error
		if gos[i], err = cmds[i].StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range gos {
		g.Close() // EOF on stdin: go
	}
	results := make([]string, processes)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		results[i] = outs[i].String()
	}
	return results
}

// runChild is a child process's main: it returns the exit code.
func runChild(role string) int {
	b, err := filebackend.New(filebackend.Config{Root: os.Getenv(childRootEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer b.Close()
	ctx := context.Background()
	if role != "hang" {
		_, _ = io.Copy(io.Discard, os.Stdin) // wait for the start signal
	}
	pid := strconv.Itoa(os.Getpid())
	switch role {
	case "delete-or-replace":
		// Every process aims at the same version of each key, whose ETags
		// the parent passes.
		etags := strings.Split(os.Getenv(childETagsEnv), ",")
		for k := range raceKeys {
			key := fmt.Sprintf("race/key%02d", k)
			op := "put"
			var err error
			if (os.Getpid()+k)%2 == 0 {
				op, err = "delete", b.DeleteIfMatch(ctx, key, etags[k])
			} else {
				_, err = b.Put(ctx, key, strings.NewReader(pid), int64(len(pid)), backend.PutOptions{IfMatch: etags[k]})
			}
			switch {
			case err == nil:
				fmt.Printf("%s won %s %s\n", key, op, pid)
			case errors.Is(err, backend.ErrPreconditionFailed), errors.Is(err, backend.ErrNotFound):
				fmt.Printf("%s lost %s\n", key, op)
			default:
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "ifabsent":
		for k := range raceKeys {
			key := fmt.Sprintf("race/key%02d", k)
			_, err := b.Put(ctx, key, strings.NewReader(pid), int64(len(pid)), backend.PutOptions{IfAbsent: true})
			switch {
			case err == nil:
				fmt.Printf("%s won\n", key)
			case errors.Is(err, backend.ErrPreconditionFailed):
				fmt.Printf("%s lost\n", key)
			default:
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "increment":
		for done := 0; done < increments; {
			rc, info, err := b.Get(ctx, "counter")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			n, cerr := strconv.Atoi(string(data))
			if err != nil || cerr != nil {
				fmt.Fprintln(os.Stderr, err, cerr)
				return 1
			}
			next := strconv.Itoa(n + 1)
			_, err = b.Put(ctx, "counter", strings.NewReader(next), int64(len(next)), backend.PutOptions{IfMatch: info.ETag})
			switch {
			case err == nil:
				done++
			case errors.Is(err, backend.ErrPreconditionFailed):
				fmt.Println("conflict")
			default:
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "hang":
		// Write part of a Put and block until killed.
		body := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), announceAndBlock{})
		_, err := b.Put(ctx, "victim", body, 2<<20, backend.PutOptions{})
		fmt.Fprintln(os.Stderr, "the hanging Put returned:", err)
		return 1
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	return 0
}

// announceAndBlock prints "writing" and blocks forever.
type announceAndBlock struct{}

func (announceAndBlock) Read([]byte) (int, error) {
	fmt.Println("writing")
	select {}
}

// N processes race IfAbsent Puts on the same keys: each key has exactly
// one winner, and holds the winner's content.
func TestMultiProcessIfAbsent(t *testing.T) {
	root := t.TempDir()
	outs := runChildren(t, "ifabsent", root)
	wins := make(map[string]int)
	losses := 0
	for _, out := range outs {
		for line := range strings.Lines(out) {
			key, result, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch result {
			case "won":
				wins[key]++
			case "lost":
				losses++
			default:
				t.Errorf("child output %q", line)
			}
		}
	}
	if losses != raceKeys*(processes-1) {
		t.Errorf("%d losses, want %d", losses, raceKeys*(processes-1))
	}
	b := newBackend(t, root)
	for k := range raceKeys {
		key := fmt.Sprintf("race/key%02d", k)
		if wins[key] != 1 {
			t.Errorf("%s: %d winners, want 1", key, wins[key])
		}
	}
	if got := backendtest.Keys(t, b, "race/"); len(got) != raceKeys {
		t.Errorf("List = %d keys, want %d", len(got), raceKeys)
	}
}

// N processes increment one counter with IfMatch read-modify-write: no
// update is lost.
func TestMultiProcessIfMatch(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	put(t, b, "counter", "0", backend.PutOptions{})
	outs := runChildren(t, "increment", root)
	conflicts := 0
	for _, out := range outs {
		conflicts += strings.Count(out, "conflict")
	}
	rc, _, err := b.Get(t.Context(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if want := strconv.Itoa(processes * increments); string(data) != want {
		t.Errorf("counter = %s, want %s: updates were lost", data, want)
	}
	t.Logf("%d increments by %d processes, %d conflicts retried", processes*increments, processes, conflicts)
}

// N processes race DeleteIfMatch and IfMatch Puts against the same
// version of each key: exactly one operation per key wins, and the key is
// then gone or holds the winning Put's content.
func TestMultiProcessDeleteIfMatch(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root)
	var etags []string
	for k := range raceKeys {
		etags = append(etags, put(t, b, fmt.Sprintf("race/key%02d", k), "base", backend.PutOptions{}).ETag)
	}
	t.Setenv(childETagsEnv, strings.Join(etags, ","))
	outs := runChildren(t, "delete-or-replace", root)
	type win struct{ op, pid string }
	wins := make(map[string][]win)
	ops := make(map[string]int)
	for _, out := range outs {
		for line := range strings.Lines(out) {
			f := strings.Fields(line)
			switch {
			case len(f) == 4 && f[1] == "won":
				wins[f[0]] = append(wins[f[0]], win{f[2], f[3]})
				ops[f[2]]++
			case len(f) == 3 && f[1] == "lost":
			default:
				t.Errorf("child output %q", line)
			}
		}
	}
	for k := range raceKeys {
		key := fmt.Sprintf("race/key%02d", k)
		if len(wins[key]) != 1 {
			t.Errorf("%s: winners %v, want exactly 1", key, wins[key])
			continue
		}
		rc, _, err := b.Get(t.Context(), key)
		switch w := wins[key][0]; {
		case w.op == "delete" && !errors.Is(err, backend.ErrNotFound):
			t.Errorf("%s: deleted by %s, but Get = %v", key, w.pid, err)
		case w.op == "put" && err != nil:
			t.Errorf("%s: replaced by %s, but Get = %v", key, w.pid, err)
		case w.op == "put":
			data, _ := io.ReadAll(rc)
			if string(data) != w.pid {
				t.Errorf("%s: replaced by %s, but holds %q", key, w.pid, data)
			}
		}
		if rc != nil {
			rc.Close()
		}
	}
	t.Logf("winning operations: %v", ops)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestReadsWriteNothing: New and the reads create, change and remove
// nothing under the root (a root the process may only read serves reads);
// the lock directory is made by the first write.
func TestReadsWriteNothing(t *testing.T) {
	ctx := t.Context()
	empty := t.TempDir()
	b := newBackend(t, empty)
	if _, err := b.Stat(ctx, "a"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat in an empty root: %v", err)
	}
	if tree := testenv.Tree(t, empty); len(tree) != 1 {
		t.Fatalf("New and a Stat of an empty root made %v", tree[1:])
	}

	root := t.TempDir()
	put(t, newBackend(t, root), "a/b", "content", backend.PutOptions{})
	before := testenv.Tree(t, root)
	b = newBackend(t, root)
	if _, err := b.Stat(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(rc); err != nil || string(data) != "content" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	_ = rc.Close()
	if keys := backendtest.Keys(t, b, ""); !slices.Equal(keys, []string{"a/b"}) {
		t.Fatalf("List = %v", keys)
	}
	if after := testenv.Tree(t, root); !slices.Equal(after, before) {
		t.Errorf("reads changed the root:\nbefore %v\nafter  %v", before, after)
	}
}
