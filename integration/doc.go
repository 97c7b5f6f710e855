// Package integration holds the system tests of artifactstore: the store on
// a real S3 server and real Redis masters, worker processes sharing
// artifacts, and the faults the requirements name (D1-D3 in the
// requirements): a writer paused past its lock expiry, a writer killed
// between its blob upload and its commit, Redis masters killed and
// restarted, the S3 server restarted, and a linearizability check of the
// version lists with porcupine.
//
// The tests start their servers themselves through internal/testenv:
// versitygw (an S3 gateway over a temporary directory) and redis-server
// processes on loopback ports, stopped by PID when each test ends. When
// ARTIFACTSTORE_S3_ENDPOINT (with ARTIFACTSTORE_S3_ACCESS_KEY and
// ARTIFACTSTORE_S3_SECRET_KEY) or ARTIFACTSTORE_REDIS_ADDRS name external
// servers, for example the docker-compose ones, the tests that do not kill
// servers use those instead (each in a fresh bucket and its own lock key
// prefix); the fault tests always start their own. A server that cannot be
// started fails the test: nothing is skipped.
//
// Worker processes are this package's test binary run again with
// ARTIFACTSTORE_IT_WORKER set (see TestMain): they read their store
// configuration from ARTIFACTSTORE_* variables through package setup, as a
// program would.
//
// Run them with
//
//	go test -race ./integration/
//
// (scripts/test.sh installs redis-server and versitygw first).
package integration
