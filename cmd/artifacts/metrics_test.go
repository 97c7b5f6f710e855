package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeLoopbackAddr returns a loopback address with a port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrape returns the metrics page at addr once it holds want, retrying
// for up to 10s while the server or the store is not up yet.
func scrape(t *testing.T, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, rerr)
			}
			if strings.Contains(string(body), want) {
				return string(body)
			}
			err = fmt.Errorf("the page lacks %q", want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics server at %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While a command runs, --metrics-addr serves the store's metrics; the
// server stops with the command.
func TestMetricsAddr(t *testing.T) {
	c := newCLI(t)
	c.ok("put", "artifact://spec/task/log", writeFile(t, "a", []byte("first")))
	addr := freeLoopbackAddr(t)
	stdin, feed := io.Pipe()
	done := make(chan result, 1)
	go func() { done <- c.runIn(stdin, "--metrics-addr", addr, "put", "artifact://spec/task/diff", "-") }()
	// put - waits on stdin once the store is open: the probes of the
	// opening show, and the runtime's collectors.
	page := scrape(t, addr, "artifactstore_backend_request_duration_seconds")
	if !strings.Contains(page, "go_goroutines") {
		t.Errorf("metrics page during put lacks the Go collector's go_goroutines")
	}
	if _, err := feed.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	if r := <-done; r.code != 0 {
		t.Fatalf("put with --metrics-addr: exit %d, stderr %q", r.code, r.stderr)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("the metrics server still answers after the command ended")
	}
}

func TestMetricsAddrNotLoopback(t *testing.T) {
	c := newCLI(t)
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "nonsense"} {
		r := c.fails(exitUsage, "--metrics-addr", addr, "ls")
		if !strings.Contains(r.stderr, "metrics address") {
			t.Errorf("--metrics-addr %s: stderr %q does not name the metrics address", addr, r.stderr)
		}
	}
}
