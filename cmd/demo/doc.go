// Command demo runs several worker processes against one artifact store and
// then checks, by itself, that nothing was lost or half-written.
//
// With no flags it needs no server: the store is a temporary directory with
// file locks (the embedded default of package setup), versioning on. Each
// of -workers processes (a re-execution of this binary) performs -ops
// operations: upload distinct content, upload it again (idempotent), tag,
// download and verify, on artifacts some of which all workers share and
// some of which are private. Each worker journals the uploads the store
// acknowledged. The parent then checks the invariants:
//
//   - every acknowledged upload is present as a version with its SHA-256;
//   - each artifact's versions are numbered 1..n without a gap;
//   - every version's content verifies against its checksum;
//   - every manifest parses and every blob it references exists.
//
// It prints a report (operations, versions, conflicts retried, lock wait
// p50/p99, MiB/s, the small-artifact rates, invariants OK or FAILED) and exits with status 1 when an
// invariant fails, 2 for a usage or setup error, 3 when a worker failed
// (for example could not reach the lock servers) but the invariants held.
//
// The small-artifact rates are measured by the parent after the checks:
// 50 uploads of new 4 KiB artifacts and 50 downloads of their current
// version, each followed by the same request made on the backend directly
// (a Put, then a Get, of the same bytes under _demo/, deleted after), and
// reported as mean times and speed ratios.
//
// ARTIFACTSTORE_* environment variables (see package setup) or the flags
// -backend, -lock, -redis, -s3-endpoint and -s3-bucket switch it to S3 and
// Redis, for example the docker-compose services:
//
//	ARTIFACTSTORE_S3_ACCESS_KEY=artifactstore ARTIFACTSTORE_S3_SECRET_KEY=artifactstore-secret \
//	go run ./cmd/demo -backend s3 -s3-endpoint 127.0.0.1:9000 -s3-bucket artifacts \
//	    -redis 127.0.0.1:6379,127.0.0.1:6380,127.0.0.1:6381
//
// -metrics-addr HOST:PORT (a loopback address) serves the Prometheus
// metrics of the parent's store at http://HOST:PORT/metrics during the run,
// and worker i serves its own at PORT+1+i (with PORT 0 each picks a free
// port); see package telemetry for the metrics.
//
// Credentials are read from the environment only, never from flags, and
// never printed.
package main
