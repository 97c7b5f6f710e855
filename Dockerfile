# syntax=docker/dockerfile:1
#
# The artifacts CLI and the demo in one small image (distroless, no shell),
# run as a non-root user. Build and try:
#
#   docker build -t artifactstore .
#   docker run --rm -v artifacts:/data artifactstore put artifact://s/t/log - < run.log
#   docker run --rm -v artifacts:/data artifactstore ls
#   docker run --rm --entrypoint demo artifactstore
#
# The store is the file backend in /data (a volume) unless ARTIFACTSTORE_*
# variables say otherwise; docker-compose.yml runs both programs against its
# MinIO and Redis masters.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY pkg ./pkg
# Static binaries; -trimpath keeps the build machine's paths out. No .git
# in the context, so --version reports "(devel)" and the Go version.
# Not in the image: ./cmd/catalogprobe (a measurement tool for developers).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bin/artifacts ./cmd/artifacts \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bin/demo ./cmd/demo \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/artifacts /out/bin/demo /usr/local/bin/
COPY LICENSE /usr/share/doc/artifactstore/LICENSE
# The file backend's directory, owned by the image's user (65532, nonroot).
COPY --from=build --chown=65532:65532 /out/data /data
ENV ARTIFACTSTORE_DIR=/data
VOLUME ["/data"]
USER 65532:65532
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/artifacts"]
CMD ["--help"]
