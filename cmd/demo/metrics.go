package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/necrocode/artifactstore/internal/metricsserver"
	"github.com/necrocode/artifactstore/pkg/setup"
)

// metricsAddr is where process id serves its metrics, given the parent's
// -metrics-addr base: the parent (id -1) on base, worker i on the port
// base+1+i; with port 0 every process picks a free port.
func metricsAddr(base string, id int) (string, error) {
	host, portText, err := net.SplitHostPort(base)
	if err != nil {
		return "", fmt.Errorf("-metrics-addr %q: %w", base, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", fmt.Errorf("-metrics-addr %q: %q is not a port", base, portText)
	}
	if port == 0 {
		return base, nil
	}
	if port+1+id > 65535 {
		return "", fmt.Errorf("-metrics-addr %q: worker %d would need port %d, above 65535", base, id, port+1+id)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+1+id)), nil
}

// serveMetrics starts the metrics server of process id (see metricsAddr)
// when base is set, and sends cfg's store metrics to it. The caller calls
// stop when the process is done; url is empty without a server.
func serveMetrics(base string, id int, cfg *setup.Config) (url string, stop func(), err error) {
	if base == "" {
		return "", func() {}, nil
	}
	addr, err := metricsAddr(base, id)
	if err != nil {
		return "", nil, err
	}
	ms, err := metricsserver.Start(addr)
	if err != nil {
		return "", nil, err
	}
	cfg.Store.Telemetry.Registerer = ms.Registry()
	return ms.URL(), func() { _ = ms.Close() }, nil
}
