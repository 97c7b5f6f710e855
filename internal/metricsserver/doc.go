// Package metricsserver serves Prometheus metrics on a loopback address for
// the programs of this module (the demo and the artifacts CLI): Start
// listens, makes a registry with the Go runtime and process collectors for
// the store's metrics to join (store.Config.Telemetry.Registerer), and
// serves it at /metrics until Close.
//
// # Errors
//
// Start refuses an address whose host is not a loopback address
// (localhost, 127.0.0.0/8, ::1) with an error matching ErrNotLoopback and
// backend.ErrInvalidArgument, before listening: metrics tell who stores
// what, and a program should not publish them on every interface by a
// typo. An address that cannot be listened on is returned as the
// listener's error.
//
// # Concurrency
//
// A Server is safe for concurrent use.
package metricsserver
