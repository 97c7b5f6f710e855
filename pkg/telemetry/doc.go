// Package telemetry gives artifactstore's store Prometheus metrics (through
// github.com/prometheus/client_golang) and OpenTelemetry spans (through the
// go.opentelemetry.io/otel API only: the caller supplies a
// trace.TracerProvider, and this module depends on no OpenTelemetry SDK).
//
// A program sets store.Config.Telemetry (or setup.Config.Store.Telemetry):
//
//	reg := prometheus.NewRegistry()
//	cfg := store.Config{Telemetry: telemetry.Config{
//		Registerer:     reg,
//		TracerProvider: otel.GetTracerProvider(),
//	}}
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// and store.New makes a Telemetry from it, wraps its Backend and Locker in
// the Backend and Locker decorators of this package, and reports every
// operation through Telemetry.Start. Nothing is registered globally: with a
// zero Config nothing is recorded at all.
//
// # Spans
//
// Each store operation is one span named "artifactstore."+operation
// ("artifactstore.upload", "artifactstore.download", "artifactstore.search",
// "artifactstore.delete", ...; the operation names are those of the store's
// log records) with the attributes artifactstore.operation and, when it
// addresses one artifact, artifactstore.uri (the spec or "spec/task" for
// the bulk deletes and listings of one spec or task). A failed operation's span has
// the status Error, the error recorded as an event, and the attribute
// error.type set to the error's kind (see below). Its children are one
// span per backend call ("artifactstore.backend.put", ".get", ".stat",
// ".delete", ".delete-if-match", ".list"; attribute
// artifactstore.backend.key, and artifactstore.backend.size on Puts) and per
// lock call ("artifactstore.lock.acquire", ".try-acquire", ".inspect",
// ".force-unlock"; attributes artifactstore.lock.key and, once granted,
// artifactstore.lock.fence). Backend calls are traced per attempt: a
// retried call shows as several spans, and the operation's span gets a
// "retry" event for each retry. A commit that lost its conditional write
// adds a "commit conflict" event. The spans of store.New's own probes have
// no operation span above them.
//
// # Metrics
//
// All names start with "artifactstore_"; every metric carries
// Config.ConstLabels. Their labels take a bounded set of values (operation
// names, error kinds, results): artifact URIs and keys go on spans only. Durations are in seconds, in exponential buckets from
// 1ms to about 65s.
//
//	operations_total{op}                     store operations completed
//	operation_errors_total{op,kind}          of which failed, by error kind
//	operation_duration_seconds{op}           histogram of their duration
//	backend_request_duration_seconds{op}     histogram of backend calls (each attempt)
//	backend_errors_total{op,kind}            backend calls that failed
//	backend_read_bytes_total                 bytes read from the backend
//	backend_written_bytes_total              bytes stored by successful Puts
//	retries_total{op}                        retries after transient failures (see below)
//	lock_wait_seconds{op,result}             histogram of lock acquisitions (acquired, failed)
//	lock_hold_seconds                        histogram of lease lifetimes, grant to end
//	lock_leases_lost_total                   leases lost before their release
//	commit_conflicts_total                   commits that lost their conditional write
//	quota_used_bytes, quota_limit_bytes      the quota counter as last seen, and the quota
//
// Bytes are stored bytes (compressed content, and the store's own records
// and index objects included), counted at the backend. The error kinds are
// the snake_case names of the sentinels (ErrorKind): not_found,
// invalid_argument, integrity, conflict, unknown_outcome, lock_timeout,
// locked, lease_lost, permission_denied, storage_full, canceled, ... and
// "other". retries_total counts the retries of backend calls (op put, get,
// stat, delete, list) and the store's own retries of a whole download, of
// a blob upload and of a manifest's read back after a failed write (op
// download, blob-upload, read-back). The quota gauges move only when
// Config.Quota is set.
//
// # Several Stores on one Registerer
//
// New adopts the collectors that an earlier New registered on the same
// Registerer with the same ConstLabels, so any number of Stores may share a
// Registerer without a panic or an error: their series add up. To tell them
// apart give each its own ConstLabels values under the same label names,
// for example {"store": "builds"} and {"store": "tests"}.
//
// # Decorators keep capabilities
//
// Backend implements backend.ConditionalDeleter, and Locker implements
// lock.Inspector, lock.ForceUnlocker, lock.Pinger and io.Closer, whatever
// they wrap:
// the calls go to the wrapped value, and fail with an error matching
// errors.ErrUnsupported when it lacks the capability, which is what the
// store reports then anyway. Wrapping a locker does not turn off lock
// inspection or force unlock. Both have an Unwrap method.
//
// # Errors
//
// New fails with an error matching ErrInvalidArgument (the same value as
// store.ErrInvalidArgument) when the metrics cannot be registered: a
// constant label that is not a valid label name or is named like a
// metric's own label (op, kind, result), or a metric of the same name
// registered there with other label names or by another collector. It then
// leaves nothing of its own registered. The decorators return the wrapped
// value's errors unchanged.
//
// # Concurrency
//
// A Telemetry and its decorators are safe for concurrent use. Locker starts
// one goroutine per lease granted while metrics are on; it ends with the
// lease (released or lost).
package telemetry
