package metricsserver_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/necrocode/artifactstore/internal/metricsserver"
	"github.com/necrocode/artifactstore/pkg/backend"
)

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9464", true},
		{"127.0.0.2:0", true},
		{"[::1]:9464", true},
		{"localhost:9464", true},
		{":9464", false},
		{"0.0.0.0:9464", false},
		{"[::]:9464", false},
		{"192.168.1.1:9464", false},
		{"example.com:9464", false},
		{"127.0.0.1", false},
		{"", false},
	} {
		err := metricsserver.CheckAddr(c.addr)
		switch {
		case c.ok && err != nil:
			t.Errorf("CheckAddr(%q) = %v, want nil", c.addr, err)
		case !c.ok && !errors.Is(err, backend.ErrInvalidArgument):
			t.Errorf("CheckAddr(%q) = %v, want an invalid-argument error", c.addr, err)
		}
	}
	if err := metricsserver.CheckAddr("0.0.0.0:1"); !errors.Is(err, metricsserver.ErrNotLoopback) {
		t.Errorf("CheckAddr of all interfaces = %v, want ErrNotLoopback", err)
	}
}

func TestServe(t *testing.T) {
	if _, err := metricsserver.Start("0.0.0.0:0"); !errors.Is(err, metricsserver.ErrNotLoopback) {
		t.Fatalf("Start on all interfaces: err = %v, want ErrNotLoopback", err)
	}
	s, err := metricsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "artifactstore_test_total", Help: "test"})
	s.Registry().MustRegister(c)
	c.Add(3)
	resp, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", s.URL(), resp.StatusCode, err)
	}
	for _, want := range []string{"artifactstore_test_total 3", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics page lacks %q", want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Error("the server still answers after Close")
	}
}
