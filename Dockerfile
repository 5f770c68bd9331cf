# syntax=docker/dockerfile:1
# ssegate image: build with the Swift toolchain, run on a slim Ubuntu with only what the binary links.
#   docker build -t ssegate .
#   docker run --rm -p 8080:8080 -v "$PWD/config:/etc/ssegate:ro" ssegate serve --config /etc/ssegate/replica.yaml
# docker-compose.yml builds this image for the demo origin and the replicas.

# ---- build -------------------------------------------------------------------------------------------
# The resolved dependencies need Swift tools 6.2 or later.
ARG SWIFT_IMAGE=swift:6.2-jammy
FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer, so that a source change does not fetch them again
# (Package.* also picks up Package.resolved when the checkout has one: then exactly those versions).
COPY Package.* ./
RUN swift package resolve $([ -f Package.resolved ] && echo --force-resolved-versions)
# The manifest lists the test targets too, so their folders must be there for the build to load it.
COPY Sources ./Sources
COPY Tests ./Tests
# --static-swift-stdlib: the Swift runtime and Foundation are linked in, so the run image needs no toolchain.
RUN swift build -c release --static-swift-stdlib --product ssegate \
    && mkdir -p /staging \
    && cp "$(swift build -c release --show-bin-path)/ssegate" /staging/ssegate \
    && strip /staging/ssegate

# ---- run ---------------------------------------------------------------------------------------------
FROM ubuntu:jammy
# zlib: gzip for compressed clients; ca-certificates: https upstreams; tzdata: local times in logs.
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends zlib1g ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ssegate
COPY --from=build /staging/ssegate /usr/local/bin/ssegate
COPY config /etc/ssegate
WORKDIR /etc/ssegate
USER ssegate
# 8080: the gateway (config/replica.yaml); 9090: admin (/readyz, /metrics); 8081: `ssegate origin`.
EXPOSE 8080 9090 8081
# SIGTERM drains (readyz 503, a jittered retry: to each client, closes spread over shutdown_timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ssegate"]
CMD ["serve", "--config", "/etc/ssegate/replica.yaml"]
