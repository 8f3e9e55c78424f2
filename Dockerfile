# syntax=docker/dockerfile:1
# sockjs-gateway: build the binary, fetch sockjs-client from npm, and ship
# both in a small Debian image that runs as a non-root user.
#
# Targets:
#   runtime (default)  the multi-stage build: compiles in rust:, npm in node:
#   prebuilt           the same runtime from a binary and sockjs-client built
#                      outside (a context holding target/release/sockjs-gateway
#                      and node_modules/sockjs-client/dist/), for machines
#                      that cannot pull the build images; tests/e2e/image-check.sh
#                      builds it on a debootstrapped base (BASE=...).
ARG BASE=debian:bookworm-slim

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked --bin sockjs-gateway

FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Everything but the binary and the client script: shared by both targets.
FROM ${BASE} AS base
# curl is only for the HEALTHCHECK; Debian's current bookworm version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sockjs
WORKDIR /app
COPY static /app/static
COPY config /app/config
# Configuration: config/container.toml, then SOCKJS_GATEWAY__* variables,
# e.g. SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY=10.
ENV RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
# SIGTERM closes every session with a close frame and drains in-flight
# responses for shutdown.grace seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sockjs-gateway"]
CMD ["--config", "/app/config/container.toml"]

FROM base AS prebuilt
COPY target/release/sockjs-gateway /usr/local/bin/sockjs-gateway
COPY node_modules/sockjs-client/dist/ /app/node_modules/sockjs-client/dist/
COPY node_modules/@stomp/stompjs/bundles/ /app/node_modules/@stomp/stompjs/bundles/
USER 10001

FROM base AS runtime
COPY --from=build /src/target/release/sockjs-gateway /usr/local/bin/sockjs-gateway
COPY --from=web /web/node_modules/sockjs-client/dist/ /app/node_modules/sockjs-client/dist/
COPY --from=web /web/node_modules/@stomp/stompjs/bundles/ /app/node_modules/@stomp/stompjs/bundles/
USER 10001
