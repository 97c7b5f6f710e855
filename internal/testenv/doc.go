// Package testenv starts the real servers the tests need — redis-server
// processes and an S3-compatible server (versitygw with a temporary posix
// directory, or MinIO with a temporary drive when ARTIFACTSTORE_TEST_S3=minio,
// or an external server named by ARTIFACTSTORE_S3_* variables) — on
// loopback ports, and stops them by PID when the test ends. It also
// silences go-redis's process-wide logger in every test binary that asks
// it for Redis (ARTIFACTSTORE_TEST_REDIS_LOG=1 keeps it). Tree describes a
// directory, so that a test can check that nothing wrote under it, and
// ChmodTree changes the permissions under one.
//
// A missing binary or a server that does not come up fails the test; it is
// never skipped. scripts/test.sh installs the binaries.
//
// # Errors
//
// Functions taking a testing.TB call t.Fatalf; the *Process variants return
// errors for TestMain.
//
// # Concurrency
//
// Each call starts its own process on its own port; tests may run them in
// parallel.
package testenv
