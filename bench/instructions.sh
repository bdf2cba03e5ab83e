#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind), for the ceiling and for
# Tollgate: a figure a shared machine's load does not move, for comparing two builds, or
# Tollgate with the ceiling, where requests per second (bench/compare.sh) drift by more
# than the difference looked for. Each server runs under callgrind with one worker; after
# WARMUP seconds of load its counters are zeroed, DURATION seconds of load are counted,
# and the count is divided by the requests answered. It includes what the server does in
# the background over those seconds (the change feed's rounds), a few per cent at the few
# hundred requests a second valgrind allows. Under valgrind, ring runs its portable code
# (no ADX/BMI2), so the signature weighs more than it does on the CPU itself.
#
# Usage: bench/instructions.sh          (from anywhere)
#
# Environment:
#   BACKEND=sqlite             or postgres (a schema of its own on PG_URL, dropped after)
#   WORKLOADS="token exchange me"       the ceiling runs `token`
#   DURATION=15 WARMUP=5       seconds counted, seconds of load before
#   CONNECTIONS=4 THREADS=1    wrk's
#   CLIENTS=2000 ACCOUNTS=2000 KEYS=2000 WORKING_SET=100
#   PORT=18560                 the ceiling on PORT, Tollgate on PORT+1
#   SKIP_BUILD=1, TOLLGATE_BIN=PATH, CARGO_TARGET_DIR: as for bench/compare.sh
#   KEEP_PROFILES=DIR          copies each counted profile there (callgrind_annotate reads it)
#
# Prints a markdown table; exits non-zero if any request failed.
set -euo pipefail
CLIENTS=${CLIENTS:-2000}
ACCOUNTS=${ACCOUNTS:-2000}
KEYS=${KEYS:-2000}
WORKING_SET=${WORKING_SET:-100}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-4}
THREADS=${THREADS:-1}
WORKERS=1
source "$(dirname "$0")/lib.sh"

PORT=${PORT:-18560}
BACKEND=${BACKEND:-sqlite}
WORKLOADS=${WORKLOADS:-token exchange me}
check_common_settings
for workload in $WORKLOADS; do
    [[ $workload =~ ^(token|exchange|me)$ ]] || die "unknown workload $workload"
done

build_release
check_binaries
ensure_wrk
ensure_package callgrind_control valgrind
TOLLGATE_MASTER_KEY=$(new_master_key)
export TOLLGATE_MASTER_KEY

case $BACKEND in
sqlite) URL="sqlite://$TMP/tollgate.db" ;;
postgres)
    pg_reachable || die "PostgreSQL is not reachable at $PG_URL"
    pg_schema "bench_$(date +%s)_$$"
    URL=$PG_SCHEMA_URL
    ;;
*) die "unknown backend $BACKEND" ;;
esac
seed "$URL"

ROWS=()
FAILURES=0
CEILING_COUNT=""

# count NAME WORKLOAD BASE COMMAND...: runs COMMAND under callgrind and counts WORKLOAD.
count() {
    local name=$1 workload=$2 base=$3
    shift 3
    local out="$TMP/callgrind-$name-$workload"
    log "[$name] $workload under callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.log" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    wait_ready "$base" "$pid" "$TMP/$name.log"
    check_request "$workload" "$base"
    start_wrk "$TMP/warmup.wrk" "$base" "$WARMUP" "$CONNECTIONS" "$THREADS" "$workload"
    wait_loads || { cat "$TMP/warmup.wrk" >&2; die "[$name] warm-up failed"; }
    timeout 60 callgrind_control -z "$pid" >/dev/null 2>&1
    start_wrk "$TMP/run.wrk" "$base" "$DURATION" "$CONNECTIONS" "$THREADS" "$workload"
    wait_loads || { cat "$TMP/run.wrk" >&2; die "[$name] wrk failed"; }
    timeout 60 callgrind_control -d "$pid" >/dev/null 2>&1
    stop_pid "$pid"
    local result requests failed total
    result=$(wrk_result "$TMP/run.wrk")
    requests=$(field "$result" requests)
    failed=$(failed_count "$result")
    FAILURES=$((FAILURES + failed))
    # The dump made after zeroing is the first numbered one.
    total=$(callgrind_annotate "$out.1" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
    [[ -n $total && $requests -gt 0 ]] || die "[$name] nothing counted"
    local per=$((total / requests))
    if [[ -n ${KEEP_PROFILES:-} ]]; then
        mkdir -p "$KEEP_PROFILES"
        cp "$out.1" "$KEEP_PROFILES/$name-$workload.callgrind"
    fi
    [[ $name == ceiling ]] && CEILING_COUNT=$per
    ROWS+=("$(awk -v name="$name" -v workload="$workload" -v requests="$requests" -v per="$per" \
        -v ceiling="$CEILING_COUNT" -v failed="$failed" 'BEGIN {
            ratio = ceiling > 0 ? sprintf("%.3f", ceiling / per) : "–"
            printf "| %s | %s | %d | %d | %s | %d |", name, workload, requests, per, ratio, failed
        }')")
    printf '%s\n' "${ROWS[-1]}" >&2
}

if [[ " $WORKLOADS " == *" token "* ]]; then
    ensure_port_free "$PORT"
    count ceiling token "http://127.0.0.1:$PORT" "$CEILING_BIN" --bind "127.0.0.1:$PORT" \
        --issuer "http://127.0.0.1:$PORT" --workers 1
fi
config="$TMP/tollgate.toml"
write_config "$config"
base="http://127.0.0.1:$((PORT + 1))"
for workload in $WORKLOADS; do
    ensure_port_free "$((PORT + 1))"
    count "$BACKEND" "$workload" "$base" "$BIN" --config "$config" --database-url "$URL" \
        serve --bind "127.0.0.1:$((PORT + 1))" --issuer "$base"
done

printf '\n%s — callgrind, %s connections, %ss counted after %ss; %s clients, %s API keys seeded, load over %s of them\n\n' \
    "$(machine_line)" "$CONNECTIONS" "$DURATION" "$WARMUP" "$CLIENTS" "$KEYS" "$WORKING_SET"
printf '| server | workload | requests | instructions / request | ceiling ÷ this | failed |\n'
printf '|---|---|---:|---:|---:|---:|\n'
printf '%s\n' "${ROWS[@]}"
((FAILURES == 0)) || die "$FAILURES requests failed"
