# syntax=docker/dockerfile:1
#
# tollgate's container image, for teams that build with Docker (BuildKit):
#
#   docker build --build-arg VERSION=v1.2.3 \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(git log -1 --format=%cI) -t tollgate:v1.2.3 .
#
# `make image` builds the same image without Docker or a registry
# (deploy/image): a static binary, the default bundle, CA certificates and
# the user 65532 on an empty base, with the same entrypoint, command,
# environment and labels. deploy/image's tests hold this file to them.
# Cross-builds (docker buildx --platform linux/arm64) compile on the
# build machine's platform.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
# Set by BuildKit from --platform (default: the build machine's).
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=devel
ARG REVISION=unknown
ARG CREATED=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS= GOAMD64=v1 GOARM64=v8.0 \
    go build -trimpath -buildvcs=false -mod=readonly \
      -ldflags "-w -X main.version=${VERSION} -X main.commit=${REVISION} -X main.commitDate=${CREATED}" \
      -o /rootfs/usr/local/bin/tollgate ./cmd/tollgate
# The CA certificates are Debian's (the ca-certificates package of the Go
# image), as make image takes the build machine's.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/tollgate /rootfs/usr/share/doc/tollgate /rootfs/tmp /data \
 && cp deploy/image/rootfs/etc/passwd deploy/image/rootfs/etc/group /rootfs/etc/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && cp -R bundles/tollgate /rootfs/etc/tollgate/bundle \
 && cp LICENSE /rootfs/usr/share/doc/tollgate/LICENSE \
 && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=devel
ARG REVISION=unknown
ARG CREATED=unknown
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 --chmod=0700 /data /data
USER 65532:65532
ENV PATH=/usr/local/bin \
    TOLLGATE_ADDR=0.0.0.0:8181 \
    TOLLGATE_BUNDLE=/etc/tollgate/bundle \
    TOLLGATE_DATA_DIR=/data
WORKDIR /data
VOLUME /data
EXPOSE 8181/tcp
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Policy-as-code deployment gate: may this pipeline run now?" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/tollgate/tollgate" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
