package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProgressBar(t *testing.T) {
	c := newCLI(t)
	c.ttyOut = true
	big := writeFile(t, "big.bin", content(1, transferBarMin+1<<20))
	small := writeFile(t, "small.bin", content(2, 1<<20))

	r := c.run("put", "artifact://s/t/log", big)
	if r.code != 0 || !strings.Contains(r.stderr, "put artifact://s/t/log") || !strings.Contains(r.stderr, "100%") ||
		!strings.Contains(r.stderr, "5.0/5.0 MiB") || r.stdout != "artifact://s/t/log?version=1\n" {
		t.Errorf("put of 5 MiB on a terminal: exit %d, stdout %q, stderr %q; want a bar at 100%%", r.code, r.stdout, r.stderr)
	}
	out := t.TempDir() + "/out.bin"
	r = c.run("get", "artifact://s/t/log", "-o", out)
	if r.code != 0 || !strings.Contains(r.stderr, "get artifact://s/t/log?version=1") || !strings.Contains(r.stderr, "100%") {
		t.Errorf("get -o of 5 MiB on a terminal: exit %d, stderr %q; want a bar at 100%%", r.code, r.stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content(1, transferBarMin+1<<20)) {
		t.Errorf("get -o wrote other bytes (%v)", err)
	}

	// Quiet: not a terminal, --json, small transfers, content to stdout.
	for _, tc := range []struct {
		name     string
		terminal bool
		args     []string
	}{
		{"not a terminal", false, []string{"put", "artifact://s/t/log", big}},
		{"--json", true, []string{"put", "artifact://s/t/log", big, "--json"}},
		{"small put", true, []string{"put", "artifact://s/t/diff", small}},
		{"get to stdout", true, []string{"get", "artifact://s/t/log"}},
		{"get -o not a terminal", false, []string{"get", "artifact://s/t/log", "-o", out}},
	} {
		c.ttyOut = tc.terminal
		if r := c.run(tc.args...); r.code != 0 || r.stderr != "" {
			t.Errorf("%s: exit %d, stderr %q; want no output on stderr", tc.name, r.code, r.stderr)
		}
	}
}

// blockingReader blocks every Read until closed, like a terminal nobody
// types in; started is closed at the first Read.
type blockingReader struct {
	started chan struct{}
	once    bool
	release chan struct{}
}

func (b *blockingReader) Read([]byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.started)
	}
	<-b.release
	return 0, io.EOF
}

// TestInterruptWhileReadingStdin cancels a put - that waits on stdin, as
// Ctrl-C does: it ends at once with exit status 130 and stores nothing.
func TestInterruptWhileReadingStdin(t *testing.T) {
	c := newCLI(t)
	stdin := &blockingReader{started: make(chan struct{}), release: make(chan struct{})}
	defer close(stdin.release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- c.runCtx(ctx, stdin, "put", "artifact://s/t/log", "-") }()
	select {
	case <-stdin.started:
	case <-time.After(time.Minute):
		t.Fatal("put - never read stdin")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("put - did not end when its context was cancelled")
	}
	if r.code != exitInterrupted || r.stderr != "artifacts: put: interrupted\n" {
		t.Errorf("interrupted put: exit %d, stderr %q; want 130 and \"artifacts: put: interrupted\"", r.code, r.stderr)
	}
	c.fails(exitNotFound, "get", "artifact://s/t/log")
}

func TestContextReaderPassesData(t *testing.T) {
	data := content(3, 100_000)
	got, err := io.ReadAll(newContextReader(context.Background(), bytes.NewReader(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want the %d bytes", len(got), err, len(data))
	}
}
