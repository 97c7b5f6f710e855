#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the servers the
# tests start (redis-server from Debian, versitygw from the Go module proxy)
# when they are missing, then runs every package's tests with the race
# detector. The tests start and stop their own servers on loopback ports;
# set ARTIFACTSTORE_S3_ENDPOINT (and the other ARTIFACTSTORE_S3_* variables)
# to run the S3 tests against an external MinIO instead of versitygw.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
export PATH="$(go env GOPATH)/bin:$PATH"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
if [ -z "${ARTIFACTSTORE_S3_ENDPOINT:-}" ] && ! command -v versitygw >/dev/null 2>&1; then
  echo "test.sh: installing versitygw $VERSITYGW_VERSION" >&2
  go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

command -v redis-server >/dev/null || { echo "test.sh: redis-server is still missing" >&2; exit 1; }

go vet ./...
exec go test -race -count=1 -timeout 25m "$@" ./...
