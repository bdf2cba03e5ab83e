#!/usr/bin/env bash
# Scale-out on one PostgreSQL: 1, 2 and 3 Tollgate instances (different ports; the same
# master key, database and issuer, as behind a load balancer), the same wrk load spread
# over them (one wrk per instance, the connections split), and the aggregate throughput
# (successful answers per second) per instance count. Then, with the instances still up, how long a change made on one
# instance takes to hold on the others (bench/src/bin/probe.rs), over TRIALS trials each:
#   revocation  RFC 7009 revoke on instance 1; polled with RFC 7662 introspection on the
#               others until they say `active: false`
#   disable     the admin API disables a client on instance 1; the others are polled with
#               client_credentials until they answer `invalid_client`
# first idle, then again while wrk loads every instance (PROBE_UNDER_LOAD=1).
#
# Usage: bench/scale.sh          (from anywhere)
#
# Environment (and those of bench/compare.sh: DURATION, WARMUP, CONNECTIONS, THREADS,
# WORKERS, POOL_SIZE, CLIENTS, ACCOUNTS, KEYS, WORKING_SET, PG_URL, SKIP_BUILD,
# TOLLGATE_BIN, CARGO_TARGET_DIR):
#   INSTANCES="1 2 3"     instance counts to measure, ascending
#   WORKLOAD=token        token | introspect | exchange | me
#   TRIALS=100            propagation trials per kind of change and load
#   PROBE_TIMEOUT_MS=5000 a change not seen by every other instance by then fails the trial
#   PROBE_UNDER_LOAD=1    also measure propagation under load (0: idle only)
#   PORT=18490            instance i listens on PORT+i-1
#
# The instances' failed-authentication limits are raised in their configuration: every
# disable trial ends with one refused request per observer, from 127.0.0.1. Tables also go
# to bench/results/scale-<UTC time>.md. Exits non-zero if any request or trial failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT=${PORT:-18490}
INSTANCES=${INSTANCES:-1 2 3}
WORKLOAD=${WORKLOAD:-token}
TRIALS=${TRIALS:-100}
PROBE_TIMEOUT_MS=${PROBE_TIMEOUT_MS:-5000}
PROBE_UNDER_LOAD=${PROBE_UNDER_LOAD:-1}
check_common_settings
[[ $WORKLOAD =~ ^(token|introspect|exchange|me)$ ]] || die "unknown WORKLOAD $WORKLOAD"
[[ $TRIALS =~ ^[0-9]+$ && $TRIALS -gt 0 ]] || die "TRIALS must be a positive number"
previous=0
for n in $INSTANCES; do
    [[ $n =~ ^[0-9]+$ && $n -gt $previous ]] || die "INSTANCES must be ascending positive numbers"
    previous=$n
done

build_release
check_binaries
ensure_wrk
pg_reachable || die "PostgreSQL is not reachable at $PG_URL"
TOLLGATE_MASTER_KEY=$(new_master_key)
export TOLLGATE_MASTER_KEY
pg_schema "bench_scale_$(date +%s)_$$"
URL=$PG_SCHEMA_URL
# The public URL of the whole set, as a load balancer would have it: tokens from any
# instance carry it and verify on every other.
ISSUER="http://127.0.0.1:$PORT"
CONFIG=$TMP/scale.toml
write_config "$CONFIG" "[limits]
auth_failures_per_client_and_address = 1000000
auth_failures_per_address = 1000000"
STARTED=$(date -u +%Y%m%dT%H%M%SZ)
MACHINE=$(machine_line)
seed "$URL"

INSTANCE_PIDS=()
start_instances() {
    local n=$1 i
    stop_servers
    INSTANCE_PIDS=()
    for ((i = 1; i <= n; i++)); do
        start_tollgate "instance$i" "$URL" $((PORT + i - 1)) "$ISSUER" "$CONFIG"
        INSTANCE_PIDS+=("$STARTED_PID")
    done
}
base_of() { printf 'http://127.0.0.1:%d' $((PORT + $1 - 1)); }

# load_all N SECONDS PREFIX: one wrk per instance, CONNECTIONS split between them.
load_all() {
    local n=$1 seconds=$2 prefix=$3 i
    local threads=$((THREADS / n))
    ((threads > 0)) || threads=1
    for ((i = 1; i <= n; i++)); do
        local connections=$((CONNECTIONS / n + (i <= CONNECTIONS % n ? 1 : 0)))
        start_wrk "$TMP/$prefix-$i.wrk" "$(base_of "$i")" "$seconds" "$connections" "$threads" \
            "$WORKLOAD" "$TOKENS"
    done
}

TOKENS=$TMP/tokens.txt
ROWS=()
FAILURES=0
SINGLE_RATE=""
for n in $INSTANCES; do
    log "[$n instance(s)] starting"
    start_instances "$n"
    if [[ $WORKLOAD == introspect && ! -s $TOKENS ]]; then
        timeout 300 "$PROBE_BIN" tokens --url "$(base_of 1)" --clients "$SEED_DIR/clients.tsv" \
            --count "$WORKING_SET" --out "$TOKENS"
    fi
    for ((i = 1; i <= n; i++)); do check_request "$WORKLOAD" "$(base_of "$i")" "$TOKENS"; done
    if ((WARMUP > 0)); then
        load_all "$n" "$WARMUP" warmup
        wait_loads || die "[$n instance(s)] warm-up failed"
    fi
    log "[$n instance(s)] $WORKLOAD: $CONNECTIONS connections in all, ${DURATION}s"
    declare -a before=()
    db_before=$(pg_cpu_snapshot postgres)
    for pid in "${INSTANCE_PIDS[@]}"; do before+=("$(cpu_ticks "$pid")"); done
    load_all "$n" "$DURATION" run
    wait_loads || die "[$n instance(s)] wrk failed"
    db_ticks=$(pg_cpu_delta "$db_before" "$(pg_cpu_snapshot postgres)")
    ticks=0 hwm=0 requests=0 rate=0 p50=0 p99=0 failed=0
    for ((i = 1; i <= n; i++)); do
        pid=${INSTANCE_PIDS[i - 1]}
        ticks=$((ticks + $(cpu_ticks "$pid") - before[i - 1]))
        rss=$(peak_rss_kib "$pid")
        ((rss > hwm)) && hwm=$rss
        result=$(wrk_result "$TMP/run-$i.wrk")
        requests=$((requests + $(field "$result" requests)))
        rate=$((rate + $(ok_rate "$result")))
        (($(field "$result" p50_us) > p50)) && p50=$(field "$result" p50_us)
        (($(field "$result" p99_us) > p99)) && p99=$(field "$result" p99_us)
        if (($(failed_count "$result") > 0)); then
            failed=$((failed + $(failed_count "$result")))
            report_failures "$result" "$TMP/instance$i.log"
        fi
    done
    FAILURES=$((FAILURES + failed))
    [[ -n $SINGLE_RATE ]] || SINGLE_RATE=$rate
    ROWS+=("$(awk -v n="$n" -v rate="$rate" -v single="$SINGLE_RATE" -v p50="$p50" -v p99="$p99" \
        -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v requests="$requests" -v hwm="$hwm" \
        -v failed="$failed" -v db="$(db_cpu_cell "$db_ticks" "$requests")" 'BEGIN {
            printf "| %d | %d | %d | %.2f | %.2f ms | %.2f ms | %.0f µs | %s | %.1f MiB | %d |",
                n, rate, rate / n, (single > 0 ? rate / single : 0), p50 / 1000, p99 / 1000,
                ticks / hz * 1e6 / requests, db, hwm / 1024, failed
        }')")
    printf '%s\n' "${ROWS[-1]}" >&2
done

# --- propagation ---------------------------------------------------------------------------
count=${#INSTANCE_PIDS[@]}
if ((count < 2)); then
    count=2
    start_instances "$count"
fi
observers=()
for ((i = 2; i <= count; i++)); do observers+=(--observer "$(base_of "$i")"); done
PROPAGATION=()
probe() {
    local label=$1
    log "propagation ($label): $TRIALS trials each, instance 1 -> $((count - 1)) other(s)"
    local out status=0
    out=$(timeout 1800 "$PROBE_BIN" propagation --origin "$(base_of 1)" "${observers[@]}" \
        --seed "$SEED_DIR" --trials "$TRIALS" --timeout-ms "$PROBE_TIMEOUT_MS" \
        --label "$label") || status=$?
    local line
    while read -r line; do
        [[ $line == PROPAGATION* ]] || continue
        PROPAGATION+=("$(awk -v under="$label" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            # No successful trial: no delay to show (the failed column says why).
            for (k in v) if (v[k] == "NaN") v[k] = "–"
            what = v["kind"] == "revocation" ? "token revocation (RFC 7009 → introspection)" : "client disable (admin API → client_credentials)"
            stale = v["stale_max_ms"] == "none" ? "none" : v["stale_max_ms"] " ms"
            printf "| %s | %s | %d | %d | %s ms | %s ms | %s ms | %s | %d | %d | %d |",
                what, under, v["observers"], v["trials"], v["p50_ms"], v["p99_ms"], v["max_ms"],
                stale, v["stale_trials"], v["failed"], v["transient"]
        }' <<<"$line")")
        printf '%s\n' "${PROPAGATION[-1]}" >&2
    done <<<"$out"
    ((status == 0)) || { FAILURES=$((FAILURES + 1)); log "propagation ($label) had failed trials"; }
}
probe idle
if [[ $PROBE_UNDER_LOAD == 1 ]]; then
    # Longer than the trials can take; stopped as soon as they end.
    load_all "$count" 1800 background
    sleep 1
    probe "under load"
    stop_loads
fi

{
    printf '%s — %s on one PostgreSQL, %s connections in all, %ss measured after %ss warm-up; %s clients, %s API keys seeded, load over %s of them\n\n' \
        "$MACHINE" "$WORKLOAD" "$CONNECTIONS" "$DURATION" "$WARMUP" "$CLIENTS" "$KEYS" "$WORKING_SET"
    printf '| instances | ok req/s (all) | per instance | ÷ 1 instance | p50 (worst) | p99 (worst) | server CPU / req | PostgreSQL CPU / req | peak RSS (largest) | failed |\n'
    printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    printf '%s\n' "${ROWS[@]}"
    printf '\nPropagation from instance 1 to the %d other(s), slowest instance per trial: p50/p99/max from the change acknowledged to the first poll that saw it (polls 1 ms apart); "last stale answer" is the latest poll still answered as before the change, and in how many trials there was one; 503/429 answers (overload) count as neither and are polled again\n\n' $((count - 1))
    printf '| change | load | observers | trials | p50 | p99 | max | last stale answer | trials with one | failed trials | 503/429 answers |\n'
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    printf '%s\n' "${PROPAGATION[@]}"
} | tee "$TMP/table.md"
mkdir -p "$REPO/bench/results"
cp "$TMP/table.md" "$REPO/bench/results/scale-$STARTED.md"
log "written to bench/results/scale-$STARTED.md"

((FAILURES == 0)) || die "$FAILURES requests or trials failed"
