# syntax=docker/dockerfile:1
# feedkeeper in a container: a multi-stage build (the Rust toolchain stays in the first stage),
# a small Debian final image, a non-root user, the data in /data, and a health check on /readyz.
#
#   docker build -t feedkeeper .
#   docker run -p 8080:8080 -v feedkeeper-data:/data \
#       -e FEEDKEEPER_SECURITY__TOKEN_KEYS="$(feedkeeper generate-key)" feedkeeper
#
# compose.yaml runs two nodes on PostgreSQL with an S3-compatible image store.

FROM rust:1-bookworm AS build
# The AVIF encoder (libaom, through libavif-sys) is built from source: it needs cmake and nasm.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake nasm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and the target folder are BuildKit caches: a rebuild compiles what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p feedkeeper \
    && install -m 0755 target/release/feedkeeper /usr/local/bin/feedkeeper

FROM debian:bookworm-slim
# Root certificates for the SMTP client (it trusts the system's roots).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --no-create-home feedkeeper \
    && mkdir /data && chown feedkeeper:feedkeeper /data
COPY --from=build /usr/local/bin/feedkeeper /usr/local/bin/feedkeeper
USER feedkeeper
# Environment variables win over a mounted TOML file: set these two there by -e, not in it.
ENV FEEDKEEPER_SERVER__LISTEN=0.0.0.0:8080 \
    FEEDKEEPER_STORAGE__DATA_DIR=/data \
    FEEDKEEPER_LOG__FORMAT=json
VOLUME /data
EXPOSE 8080
# `feedkeeper ready` asks this node's /readyz (no curl in the image).
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["feedkeeper", "ready"]
# SIGTERM (Docker's stop signal) drains, hands jobs back and exits 0: give it the drain plus
# workers.shutdown_grace_secs (docker stop -t 30, stop_grace_period in compose).
ENTRYPOINT ["feedkeeper"]
CMD ["serve"]
