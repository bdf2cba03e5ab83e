# syntax=docker/dockerfile:1
# Tollgate: build with `docker build -t tollgate .`; run with
#   docker run -p 8080:8080 -v tollgate-data:/var/lib/tollgate -e TOLLGATE_ISSUER=https://auth.example.com tollgate
# Other commands use the same image: `docker run --rm -v tollgate-data:/var/lib/tollgate tollgate client list`.

FROM rust:1-bookworm AS builder
# libpq (pq-sys "bundled") links the system OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target directory between builds; the binary is
# copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate

FROM debian:bookworm-slim
# curl is only for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tollgate \
    && useradd --system --uid 10001 --gid tollgate --home-dir /var/lib/tollgate --shell /usr/sbin/nologin tollgate \
    && install -d -o tollgate -g tollgate -m 0700 /var/lib/tollgate
COPY --from=builder /out/tollgate /usr/local/bin/tollgate
COPY config/default.toml /etc/tollgate/tollgate.toml

# Every key of the file can be overridden by mounting another one here. With SQLite the
# database and its master key (master.key, beside the database, created on the first start)
# live in the volume, so they outlive the container. For PostgreSQL set
# DATABASE_URL=postgres://user@host/db, PGPASSWORD (read by libpq, so the password needs no
# URL-encoding), and TOLLGATE_MASTER_KEY or TOLLGATE_MASTER_KEY_FILE (see docker-compose.yml).
ENV TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml \
    DATABASE_URL=sqlite:///var/lib/tollgate/tollgate.db \
    TOLLGATE_BIND=0.0.0.0:8080
VOLUME ["/var/lib/tollgate"]
WORKDIR /var/lib/tollgate
USER tollgate:tollgate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["tollgate"]
CMD ["serve", "--bind", "0.0.0.0:8080"]
