package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is what one invocation produced.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the tool in-process against one store directory.
type cli struct {
	t   *testing.T
	dir string
	env map[string]string
	// terminal, when set, makes the app treat stdin and stderr as a
	// terminal.
	terminal bool
	// ttyOut, when set, makes the app treat stdout and stderr as a
	// terminal (the progress bar's condition).
	ttyOut bool
}

// newCLI returns a cli over a fresh file-backend directory.
func newCLI(t *testing.T) *cli {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	return &cli{t: t, dir: dir, env: map[string]string{
		"ARTIFACTSTORE_DIR": dir,
		// The tests do not survive machine crashes; skip the fsyncs.
		"ARTIFACTSTORE_FILE_NO_SYNC": "true",
		// Fail fast when a test holds a lock.
		"ARTIFACTSTORE_LOCK_TIMEOUT": "5s",
	}}
}

// environ is c.env in the form of os.Environ.
func (c *cli) environ() []string {
	var out []string
	for k, v := range c.env {
		out = append(out, k+"="+v)
	}
	return out
}

// runIn runs args with stdin.
func (c *cli) runIn(stdin io.Reader, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.runCtx(ctx, stdin, args...)
}

// runCtx runs args with stdin under ctx.
func (c *cli) runCtx(ctx context.Context, stdin io.Reader, args ...string) result {
	var out, errb bytes.Buffer
	a := newApp(stdin, &out, &errb, c.environ())
	switch {
	case c.terminal:
		a.isTerminal = func(v any) bool { return v == a.stdin || v == a.stderr }
	case c.ttyOut:
		a.isTerminal = func(v any) bool { return v == a.stdout || v == a.stderr }
	}
	code := a.main(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runIn(strings.NewReader(""), args...)
}

// ok runs args and fails the test unless the exit status is 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("artifacts %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// fails runs args and checks the exit status and the one-line error.
func (c *cli) fails(code int, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	checkFailure(c.t, r, code, args)
	return r
}

// checkFailure checks that r exited with code and printed exactly one
// line, "artifacts: ...", on stderr.
func checkFailure(t *testing.T, r result, code int, args []string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("artifacts %s: exit %d, want %d; stderr %q", strings.Join(args, " "), r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "artifacts: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("artifacts %s: stderr is not one line \"artifacts: ...\": %q", strings.Join(args, " "), r.stderr)
	}
}

// writeFile writes data to a new file in the test's temp dir.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// decode parses JSON output into v.
func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
}

// content returns n deterministic bytes that are not text.
func content(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
