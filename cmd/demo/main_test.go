package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/necrocode/artifactstore/pkg/setup"
	"github.com/necrocode/artifactstore/pkg/store"
)

// buildDemo builds this command into a temporary directory.
func buildDemo(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hermeticEnv is the test's environment without ARTIFACTSTORE_* variables,
// so that a developer's docker-compose settings do not leak in, plus extra.
func hermeticEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARTIFACTSTORE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runDemo runs the binary with args and returns its exit status and output.
func runDemo(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run demo: %v", err)
	}
	return code, o.String(), e.String()
}

// reportNumber extracts the first integer after label in the report.
func reportNumber(t *testing.T, report, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\d+)`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("report has no %q line:\n%s", label, report)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDemo(t *testing.T) {
	bin := buildDemo(t)

	t.Run("end to end on the file backend", func(t *testing.T) {
		dir := t.TempDir()
		const workers, ops = 3, 12
		code, out, errOut := runDemo(t, bin, hermeticEnv(), "-workers", strconv.Itoa(workers), "-ops", strconv.Itoa(ops), "-size", "2048", "-dir", dir)
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{
			"file backend " + dir, "file locks, versioning on",
			"invariants      OK", "lock wait       p50 ", " p99 ", "MiB/s", "conflicts       ",
			"small artifacts 4.0 KiB, 50 each", "upload new ", "(backend Put ", "download ", "(backend Get ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
		if n := reportNumber(t, out, "operations"); n != workers*ops {
			t.Errorf("%d operations reported, want %d", n, workers*ops)
		}
		if !strings.Contains(errOut, "progress: [") {
			t.Errorf("no progress line on stderr:\n%s", errOut)
		}
		// Each operation acknowledges an upload and a re-upload.
		if !strings.Contains(out, "("+strconv.Itoa(2*workers*ops)+" acknowledged uploads)") {
			t.Errorf("acknowledged uploads: %s", out)
		}

		// Look at the result with a store of our own: the shared artifacts
		// have versions from every worker, numbered without a gap.
		o, err := setup.Open(context.Background(), setup.Config{FileDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		mds, err := o.Store.Search(context.Background(), store.Filter{Tags: []string{"worker-0", "worker-1", "worker-2"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(mds) != 2 {
			t.Fatalf("%d artifacts written by all workers, want the 2 shared ones: %+v", len(mds), mds)
		}
		total := 0
		for _, md := range mds {
			vs, err := o.Store.Versions(context.Background(), md.URI)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vs {
				if v.Version != i+1 {
					t.Fatalf("%s: version #%d numbered %d", md.URI, i+1, v.Version)
				}
			}
			total += len(vs)
		}
		if total < workers*ops/2 {
			t.Errorf("%d versions in the shared artifacts, want at least %d", total, workers*ops/2)
		}
	})

	t.Run("a lost blob fails the invariants", func(t *testing.T) {
		// Contents over the inline limit (8 KiB): blobs, one to lose.
		code, out, errOut := runDemo(t, bin, hermeticEnv(envFault+"=drop-blob"), "-workers", "2", "-ops", "4", "-size", "16384")
		if code != exitInvariant {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInvariant, out, errOut)
		}
		if !strings.Contains(out, "invariants      FAILED") || !strings.Contains(out, "blob") {
			t.Fatalf("report:\n%s", out)
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"-workers", "0"}, {"-ops", "-1"}, {"-size", "1"}, {"extra"}, {"-nope"},
			{"-metrics-addr", "0.0.0.0:9464"}, {"-metrics-addr", ":9464"}, {"-workers", "4", "-metrics-addr", "127.0.0.1:65533"}} {
			code, _, errOut := runDemo(t, bin, hermeticEnv(), args...)
			if code != exitSetup || !strings.Contains(errOut, "usage: demo") {
				t.Errorf("demo %v: exit %d, stderr:\n%s", args, code, errOut)
			}
		}
	})

	t.Run("metrics of the parent and of each worker", func(t *testing.T) {
		base := freePortPair(t)
		done := make(chan struct{})
		var out string
		go func() {
			defer close(done)
			var code int
			var errOut string
			code, out, errOut = runDemo(t, bin, hermeticEnv(), "-workers", "1", "-ops", "300", "-size", "64", "-metrics-addr", base)
			if code != exitOK {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		}()
		worker, err := metricsAddr(base, 0)
		if err != nil {
			t.Fatal(err)
		}
		// While the worker runs, its page counts its uploads, and the
		// parent's shows the backend calls of its preflight.
		for addr, want := range map[string]string{worker: `artifactstore_operations_total{op="upload"}`, base: "artifactstore_backend_request_duration_seconds"} {
			if !scrapeDuring(t, addr, want, done) {
				t.Errorf("no %s at %s during the run", want, addr)
			}
		}
		<-done
		if !strings.Contains(out, "metrics at http://"+base+"/metrics") {
			t.Errorf("the report does not say where the metrics are:\n%s", out)
		}
	})

	t.Run("bad environment", func(t *testing.T) {
		for env, want := range map[string]string{
			"ARTIFACTSTORE_BACKEND=tape":   `Backend "tape"`,
			"ARTIFACTSTORE_BACKEND=memory": "memory backend cannot be shared",
			"ARTIFACTSTORE_LOCK=memory":    "memory locks cannot serialize",
		} {
			code, _, errOut := runDemo(t, bin, hermeticEnv(env))
			if code != exitSetup || !strings.Contains(errOut, want) {
				t.Errorf("%s: exit %d, stderr:\n%s", env, code, errOut)
			}
		}
	})
}

func TestPlan(t *testing.T) {
	p := plan{Spec: "demo-x", Workers: 3, Ops: 10, Shared: 2}
	seen := map[string]bool{}
	for _, u := range p.artifacts() {
		if _, err := store.ParseURI(u); err != nil {
			t.Fatal(err)
		}
		seen[u] = true
	}
	if len(seen) != 2+3*len(privateTypes()) {
		t.Fatalf("%d distinct artifacts", len(seen))
	}
	for w := range p.Workers {
		for i := range p.Ops {
			uri, shared := p.target(w, i)
			if !seen[uri] || shared != strings.Contains(uri, "/shared-") {
				t.Fatalf("target(%d, %d) = %s, %t", w, i, uri, shared)
			}
		}
	}
	a, b := content(p.Spec, 0, 1, 100), content(p.Spec, 1, 0, 100)
	if len(a) != 100 || bytes.Equal(a, b) || !bytes.Equal(a, content(p.Spec, 0, 1, 100)) {
		t.Fatal("content is not distinct per worker and op, or not deterministic")
	}
}

func TestPercentile(t *testing.T) {
	var s []int64
	for i := 1; i <= 100; i++ {
		s = append(s, int64(i))
	}
	if p := percentile(s, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(s, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("p50 of nothing = %d", p)
	}
}

func TestMetricsAddr(t *testing.T) {
	for _, c := range []struct {
		base string
		id   int
		want string
		ok   bool
	}{
		{"127.0.0.1:9464", -1, "127.0.0.1:9464", true},
		{"127.0.0.1:9464", 0, "127.0.0.1:9465", true},
		{"[::1]:9464", 3, "[::1]:9468", true},
		{"127.0.0.1:0", 5, "127.0.0.1:0", true},
		{"127.0.0.1:65535", 0, "", false},
		{"127.0.0.1:http", 0, "", false},
		{"127.0.0.1", 0, "", false},
	} {
		got, err := metricsAddr(c.base, c.id)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("metricsAddr(%q, %d) = %q, %v; want %q, ok %t", c.base, c.id, got, err, c.want, c.ok)
		}
	}
}

// freePortPair returns a loopback address whose port and the next one were
// both free a moment ago (the parent's and the first worker's).
func freePortPair(t *testing.T) string {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		ln.Close()
		if err == nil {
			next.Close()
			return ln.Addr().String()
		}
	}
	t.Fatal("no two consecutive free ports")
	return ""
}

// scrapeDuring polls the metrics page at addr until it holds want (true)
// or the run ends (false).
func scrapeDuring(t *testing.T, addr, want string, done <-chan struct{}) bool {
	t.Helper()
	for {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return true
			}
		}
		select {
		case <-done:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}
