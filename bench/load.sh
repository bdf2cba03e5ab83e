#!/usr/bin/env bash
# Load test of POST /oauth/token (client_credentials, HTTP Basic) on SQLite, then on
# PostgreSQL when one is reachable on 127.0.0.1:5432.
#
# Usage: bench/load.sh            (from anywhere; works in the repository root)
#
# Environment:
#   DURATION=20        seconds of load per backend
#   CONNECTIONS=32     concurrent keep-alive connections
#   THREADS=2          wrk threads (the load generator shares the machine with the server)
#   PORT=18080         port on 127.0.0.1 (PORT+1 for PostgreSQL)
#   WORKERS=0          server.workers (0: one per core)
#   POOL_SIZE=4        database.pool_size
#   BACKENDS="sqlite postgres"   which backends to test
#   PG_URL=postgres://postgres@127.0.0.1:5432/test   the PostgreSQL to use (skipped if unreachable)
#   SKIP_BUILD=1       use the existing release binary
#   CARGO_TARGET_DIR   honoured: the binary is $CARGO_TARGET_DIR/release/tollgate
#   TOLLGATE_BIN=PATH  test this binary instead (no build), e.g. to compare two builds
#
# Prints, per backend: requests/s, p50, p99 latency, failed responses, the server's CPU time
# per request (steadier than req/s on a busy machine: wrk shares the CPUs) and its peak RSS
# (VmHWM). Everything runs against 127.0.0.1 only and every step has a time limit.
set -euo pipefail

DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
WORKERS=${WORKERS:-0}
POOL_SIZE=${POOL_SIZE:-4}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
BACKENDS=${BACKENDS:-sqlite postgres}

cd "$(dirname "$0")/.."
BIN=${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/release/tollgate}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in curl timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -gt 0 ]] || die "DURATION must be a positive integer"
# Load is only ever generated against this machine.
[[ "$PG_URL" =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost)([:/?]|$) ]] ||
    die "PG_URL must point at 127.0.0.1 or localhost"

# --- state cleaned up on exit -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-load.XXXXXX")
SERVER_PID=""
LOAD_PID=""
PG_SCHEMA=""

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # Graceful shutdown, then force after 10 s.
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup() {
    local status=$?
    if [[ -n "$LOAD_PID" ]]; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
    fi
    stop_server
    if [[ -n "$PG_SCHEMA" ]]; then
        PGCONNECT_TIMEOUT=5 timeout 15 psql "$PG_URL" -qX -v ON_ERROR_STOP=1 \
            -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 ||
            printf 'warning: could not drop schema %s\n' "$PG_SCHEMA" >&2
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build and load generator ---------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 && -z "${TOLLGATE_BIN:-}" ]]; then
    log "cargo build --release"
    timeout 3600 cargo build --release --quiet
fi
[[ -x "$BIN" ]] || die "$BIN not found (build it, or set CARGO_TARGET_DIR)"

if ! command -v wrk >/dev/null; then
    command -v apt-get >/dev/null || die "wrk is required: install it with your package manager"
    log "installing wrk (apt-get)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    timeout 300 $SUDO apt-get install -y -qq wrk >/dev/null ||
        { timeout 300 $SUDO apt-get update -qq && timeout 300 $SUDO apt-get install -y -qq wrk >/dev/null; } ||
        die "could not install wrk"
fi

# wrk script: the request, and a machine-readable summary (latencies in microseconds).
# `errors.status` counts responses with a status above 399.
cat >"$TMP/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BASIC")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d bad_status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
LUA

# User + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- one run --------------------------------------------------------------------------
# run_backend NAME DATABASE_URL PORT
run_backend() {
    local name=$1 url=$2 port=$3
    local base="http://127.0.0.1:$port"
    local config="$TMP/$name.toml"
    cat >"$config" <<EOF
[server]
workers = $WORKERS
access_log = false
[database]
pool_size = $POOL_SIZE
EOF

    log "[$name] starting the server on 127.0.0.1:$port"
    "$BIN" --config "$config" --database-url "$url" serve --bind "127.0.0.1:$port" \
        --issuer "$base" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    SERVER_PID=$!
    local ready=0
    for _ in $(seq 300); do # 30 s
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 20 "$TMP/$name.log" >&2
            die "[$name] the server exited during start-up"
        fi
        if curl -fsS --max-time 1 -o /dev/null "$base/health/ready" 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [[ $ready == 1 ]] || { tail -n 20 "$TMP/$name.log" >&2; die "[$name] not ready after 30 s"; }

    local client client_id client_secret
    client=$(timeout 60 "$BIN" --config "$config" --database-url "$url" \
        client create --name bench --scope "read write" --json)
    client_id=$(sed -n 's/.*"client_id": *"\([^"]*\)".*/\1/p' <<<"$client")
    client_secret=$(sed -n 's/.*"client_secret": *"\([^"]*\)".*/\1/p' <<<"$client")
    [[ -n "$client_id" && -n "$client_secret" ]] || die "[$name] could not read the new client: $client"
    BASIC="Basic $(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)"
    export BASIC

    # One request by hand first: the load is only meaningful if it succeeds.
    local status
    status=$(curl -sS --max-time 5 -o "$TMP/first.json" -w '%{http_code}' \
        -H "Authorization: $BASIC" -H 'Content-Type: application/x-www-form-urlencoded' \
        --data 'grant_type=client_credentials' "$base/oauth/token")
    grep -q '"access_token"' "$TMP/first.json" && [[ $status == 200 ]] ||
        die "[$name] token request failed ($status): $(head -c 300 "$TMP/first.json")"

    log "[$name] wrk: $CONNECTIONS connections, $THREADS threads, ${DURATION}s"
    local ticks_before
    ticks_before=$(cpu_ticks "$SERVER_PID")
    # In the background so that a signal reaches the trap at once (bash runs traps only
    # between foreground commands).
    timeout $((DURATION + 30)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 5s \
        -s "$TMP/token.lua" "$base/oauth/token" >"$TMP/$name.wrk" &
    LOAD_PID=$!
    wait "$LOAD_PID"
    LOAD_PID=""

    local hwm ticks
    hwm=$(awk '/^VmHWM:/ {print $2, $3}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    ticks=$(($(cpu_ticks "$SERVER_PID") - ticks_before))
    stop_server

    local result failed
    result=$(grep '^RESULT ' "$TMP/$name.wrk") || { cat "$TMP/$name.wrk" >&2; die "[$name] no wrk summary"; }
    failed=$(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["bad_status"] + v["connect"] + v["read"] + v["write"] + v["timeout"] }' <<<"$result")
    awk -v name="$name" -v hwm="${hwm:-unknown}" -v failed="$failed" -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%-9s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  requests %d  failed %d  server CPU %.0f us/req  peak RSS %s\n",
            name, v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000,
            v["max_us"] / 1000, v["requests"], failed, ticks / hz * 1e6 / v["requests"], hwm
        if (failed > 0) print "  failed responses: " $0
    }' <<<"$result"
    if ((failed > 0)); then
        FAILURES=$((FAILURES + failed))
        grep -iE 'error|warn' "$TMP/$name.log" | sort | uniq -c | sort -rn | head -n 5 >&2 || true
    fi
}

FAILURES=0
printf 'POST /oauth/token, %s connections, %ss, %s: %s cores\n' \
    "$CONNECTIONS" "$DURATION" "$(uname -sr)" "$(nproc)"

if [[ " $BACKENDS " == *" sqlite "* ]]; then
    run_backend sqlite "sqlite://$TMP/tollgate.db" "$PORT"
fi

if [[ " $BACKENDS " != *" postgres "* ]]; then
    :
elif command -v psql >/dev/null &&
    PGCONNECT_TIMEOUT=5 timeout 10 psql "$PG_URL" -qXAt -c 'SELECT 1' >/dev/null 2>&1; then
    PG_SCHEMA="bench_$(date +%s)_$$"
    PGCONNECT_TIMEOUT=5 timeout 15 psql "$PG_URL" -qX -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $PG_SCHEMA" >/dev/null
    TOLLGATE_MASTER_KEY=$(openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    export TOLLGATE_MASTER_KEY
    sep='?'
    [[ "$PG_URL" == *'?'* ]] && sep='&'
    run_backend postgres "${PG_URL}${sep}options=--search_path%3D${PG_SCHEMA}" $((PORT + 1))
else
    log "PostgreSQL not reachable at $PG_URL: skipped"
fi

((FAILURES == 0)) || die "$FAILURES requests failed"
