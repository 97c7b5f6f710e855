// Command catalogprobe measures the catalog at scale: it starts a versitygw
// server (or uses the one ARTIFACTSTORE_S3_ENDPOINT names, see
// internal/testenv), populates one bucket with a pipeline-shaped set of
// artifacts (specs x 10 tasks x diff/log/test, 1-4 KiB each, one in ten
// with 2-3 versions, one in a hundred tagged "flaky", created over 30
// days at every size), and at each of the sizes given times, on a cold Store, the
// searches by tag, type and date range (first page of 100, and the whole
// result), Usage, the retention plan (Expired) and the latency of small
// uploads and downloads. BENCHMARKS.md ("Catalog") has its figures.
//
//	go run ./cmd/catalogprobe -sizes 10000,30000,100000
package main
