# Multi-stage build for the replication tracker.
#
#   docker build -t replication-tracker .
#   docker run --rm -p 8080:8080 -v tracker-data:/var/lib/tracker \
#     -e TRACKER_BROKERS=kafka:9092 replication-tracker
#
# Plain Dockerfile syntax only (no BuildKit cache mounts), so it also builds with
# the classic builder that Debian's docker-compose 1.29 uses by default.

########################################################################
# Builder
########################################################################
FROM rust:1.95-bookworm AS builder

# Native toolchain for rdkafka-sys (builds the bundled librdkafka) and libz-sys.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        cmake \
        build-essential \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
        libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

COPY Cargo.toml Cargo.lock ./
COPY common/ common/
COPY ingest/ ingest/
COPY query/ query/
COPY src/ src/
COPY tests/ tests/
COPY config/ config/

RUN cargo build --release --locked --bin tracker

########################################################################
# Runtime
########################################################################
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS trust roots; curl: used by HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system tracker \
 && useradd --system --gid tracker --home-dir /var/lib/tracker --no-create-home \
        --shell /usr/sbin/nologin tracker \
 && mkdir -p /var/lib/tracker /etc/tracker \
 && chown tracker:tracker /var/lib/tracker

COPY --from=builder /build/target/release/tracker /usr/local/bin/tracker
# Example config: it contains placeholder API tokens that MUST be replaced
# (mount your own file over /etc/tracker/tracker.toml).
COPY --chown=root:tracker config/tracker.example.toml /etc/tracker/tracker.toml
RUN chmod 0640 /etc/tracker/tracker.toml

# Defaults matching the paths and port above; override with -e / compose.
ENV TRACKER_CONFIG=/etc/tracker/tracker.toml \
    TRACKER_DATA_DIR=/var/lib/tracker \
    TRACKER_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info

VOLUME ["/var/lib/tracker"]
WORKDIR /var/lib/tracker
USER tracker

EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1

ENTRYPOINT ["tracker"]
CMD ["run"]
