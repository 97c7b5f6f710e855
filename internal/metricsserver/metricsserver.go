package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/necrocode/artifactstore/pkg/backend"
)

// ErrNotLoopback: the address's host is not a loopback address.
var ErrNotLoopback = errors.New("not a loopback address")

// Path is where the metrics are served.
const Path = "/metrics"

// shutdownTimeout bounds how long Close waits for scrapes in progress.
const shutdownTimeout = 5 * time.Second

// Server serves a registry's metrics over HTTP.
type Server struct {
	reg  *prometheus.Registry
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// CheckAddr checks that addr is host:port with a loopback host; the error
// matches ErrNotLoopback and backend.ErrInvalidArgument.
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: metrics address %q: %w", backend.ErrInvalidArgument, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: metrics address %q: %w (use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", backend.ErrInvalidArgument, addr, ErrNotLoopback)
}

// Start listens on addr (see CheckAddr; port 0 picks a free one) and serves
// a new registry, holding the Go runtime and process collectors, at Path.
func Start(addr string) (*Server, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s := &Server{reg: reg, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // ends with http.ErrServerClosed at Close
	}()
	return s, nil
}

// Registry is the registry served: pass it as the store's
// telemetry.Config.Registerer.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// URL is the address of the metrics page, with the port actually bound.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + Path }

// Close stops serving, waiting up to 5s for scrapes in progress.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
