#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the servers the
# tests start (redis-server from Debian, versitygw and MinIO from the Go
# module proxy) when they are missing, then runs every package's tests with
# the race detector against versitygw, and the S3-facing packages a second
# time against MinIO. The tests start and stop their own servers on
# loopback ports; a missing server fails, nothing is skipped.
#
# MinIO is built from source at a fixed commit (150 MB, 5 to 35 minutes on
# a 2-core machine): the build runs in the background, niced, while the
# versitygw pass runs, and a binary built before (the same module version,
# in $(go env GOPATH)/bin) is reused.
#
# Set ARTIFACTSTORE_S3_ENDPOINT (and the other ARTIFACTSTORE_S3_* variables)
# to run the S3 tests against an external server instead: then neither
# versitygw nor MinIO is installed and there is one pass.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
# Keep in step with testenv.MinIOModule.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# The packages whose tests talk to S3: the MinIO pass.
S3_PACKAGES=(./internal/testenv ./pkg/backend/s3backend ./integration ./cmd/artifacts)

GOBIN_DIR="$(go env GOBIN)"
GOBIN_DIR="${GOBIN_DIR:-$(go env GOPATH | cut -d: -f1)/bin}"
export PATH="$GOBIN_DIR:$PATH"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

external=
[ -n "${ARTIFACTSTORE_S3_ENDPOINT:-}" ] && external=1

# MinIO: reuse the binary when it is the pinned version, otherwise build it
# in the background (stopped by PID if this script exits first).
minio_pid=
minio_log=
if [ -z "$external" ]; then
  have=
  if [ -x "$GOBIN_DIR/minio" ] && go version -m "$GOBIN_DIR/minio" 2>/dev/null |
      grep -Eq "^[[:space:]]+mod[[:space:]]+$MINIO_MODULE[[:space:]]+$MINIO_VERSION([[:space:]]|\$)"; then
    have=1
  fi
  if [ -z "$have" ]; then
    minio_log="$(mktemp "${TMPDIR:-/tmp}/artifactstore-minio-build.XXXXXX")"
    echo "test.sh: building MinIO $MINIO_VERSION in the background (log: $minio_log)" >&2
    ( cd / && GOFLAGS=-mod=mod exec nice -n 10 go install "$MINIO_MODULE@$MINIO_VERSION" ) >"$minio_log" 2>&1 &
    minio_pid=$!
    minio_start=$SECONDS
    trap '[ -n "$minio_pid" ] && kill "$minio_pid" 2>/dev/null || true' EXIT
  fi
fi

if [ -z "$external" ] && ! command -v versitygw >/dev/null 2>&1; then
  echo "test.sh: installing versitygw $VERSITYGW_VERSION" >&2
  go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

command -v redis-server >/dev/null || { echo "test.sh: redis-server is still missing" >&2; exit 1; }

go vet ./...

# Both passes run even when the first fails, so that one failure does not
# hide the others.
status=0
if [ -n "$external" ]; then
  go test -race -count=1 -timeout 25m "$@" ./... || status=$?
  exit "$status"
fi

# Pass 1: versitygw. internal/testenv waits for pass 2: it also starts MinIO.
mapfile -t pass1 < <(go list ./... | grep -v '/internal/testenv$')
echo "test.sh: pass 1: every package, S3 on versitygw" >&2
ARTIFACTSTORE_TEST_S3=versitygw go test -race -count=1 -timeout 25m "$@" "${pass1[@]}" || status=$?

if [ -n "$minio_pid" ]; then
  echo "test.sh: waiting for the MinIO build" >&2
  if wait "$minio_pid"; then
    echo "test.sh: MinIO built in $((SECONDS - minio_start))s" >&2
    minio_pid=
  else
    minio_pid=
    echo "test.sh: building MinIO failed:" >&2
    tail -n 30 "$minio_log" >&2
    exit 1
  fi
fi

echo "test.sh: pass 2: the S3-facing packages on MinIO" >&2
ARTIFACTSTORE_TEST_S3=minio go test -race -count=1 -timeout 25m "$@" "${S3_PACKAGES[@]}" || status=$?
exit "$status"
