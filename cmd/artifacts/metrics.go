package main

import (
	"github.com/necrocode/artifactstore/internal/metricsserver"
	"github.com/necrocode/artifactstore/pkg/setup"
)

// serveMetrics starts the --metrics-addr server, when the flag is set, and
// chains o.adjust to send the store's metrics to it. stop ends it (after
// the store is closed, so that a last scrape sees the whole command).
func (a *app) serveMetrics(o *openOpts) (stop func(), err error) {
	if a.g.metricsAddr == "" {
		return func() {}, nil
	}
	ms, err := metricsserver.Start(a.g.metricsAddr)
	if err != nil {
		return nil, err
	}
	adjust := o.adjust
	o.adjust = func(c *setup.Config) {
		if adjust != nil {
			adjust(c)
		}
		c.Store.Telemetry.Registerer = ms.Registry()
	}
	return func() { _ = ms.Close() }, nil
}
