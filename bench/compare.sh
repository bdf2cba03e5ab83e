#!/usr/bin/env bash
# Tollgate side by side with its ceiling (bench/src/bin/ceiling.rs: a bare actix-web
# handler signing the same claims with a key parsed once), one after the other under the
# same wrk load, on a database holding CLIENTS clients and KEYS API keys. Prints a markdown
# table: successful answers/s and their ratio to the ceiling's token endpoint, p50/p99 latency, the
# server's CPU time per request (and PostgreSQL's, in the server processes serving it) and
# its peak RSS, per workload:
#   token       POST /oauth/token, client_credentials, HTTP Basic (RFC 6749 §4.4)
#   introspect  POST /oauth/introspect of a valid access token, by a client with the
#               `introspect` scope (RFC 7662)
#   exchange    POST /oauth/token, token exchange with an API key as subject_token (RFC 8693)
#   me          GET /api/v1/me with an API key (Bearer)
# The ceiling runs `token` and `introspect` (ES256 verification of its own tokens), and
#   bare        GET /health/ready, an empty 200 from a bare actix-web handler: the most
#               requests per second this machine answers with this load, whatever the work
#
# Usage: bench/compare.sh          (from anywhere)
#
# Environment:
#   DURATION=20        seconds measured per run (after WARMUP seconds of the same load)
#   WARMUP=3           seconds of load before each measured run (first uses of keys are
#                      written to the database; a cache fills)
#   CONNECTIONS=32     concurrent keep-alive connections
#   THREADS=2          wrk threads (the load generator shares the machine with the server)
#   ROUNDS=3           runs of each Tollgate workload, each after its own ceiling run; the
#                      table shows the round with the median ratio, and every round's ratio
#   WORKERS=0          server.workers and the ceiling's workers (0: one per core)
#   POOL_SIZE=4        database.pool_size
#   BACKENDS="sqlite postgres"          which backends Tollgate runs on
#   WORKLOADS="token introspect exchange me"
#   CLIENTS=10000 ACCOUNTS=10000 KEYS=100000   what is seeded per backend
#   WORKING_SET=1000   the load cycles over this many clients / API keys / tokens
#   PG_URL=postgres://postgres@127.0.0.1:5432/test   (a schema of its own, dropped after)
#   PORT=18480         ports PORT (ceiling), PORT+1 (Tollgate)
#   SKIP_BUILD=1       use the existing release binaries
#   TOLLGATE_BIN=PATH  measure this server binary (e.g. to compare two builds)
#   CARGO_TARGET_DIR   honoured
#
# Every backend is seeded first, then settled (PostgreSQL: VACUUM ANALYZE and CHECKPOINT,
# so that no autovacuum or checkpoint of the bulk insert runs during a measurement; then
# the machine must be idle). The ceiling stays up throughout, and its token endpoint is
# measured right before and right after each Tollgate run (one run serves as the "after"
# of a Tollgate run and the "before" of the next): a Tollgate row's ratio is to the mean of
# those two ceiling runs (both rates are in the next-to-last column), so that a shared
# machine's drift over the minutes of the script, or a slow spell that begins or ends
# during the Tollgate run, does not skew the ratios. A single ratio still moves by ±10 %
# there, so each Tollgate workload runs ROUNDS times: its row is the round with the median
# ratio, and the last column lists all of them. The ceiling's own rows are its first runs.
#
# The table is also written to bench/results/compare-<UTC time>.md. Each Tollgate run gets
# a fresh process, so its peak RSS is that workload's. Exits non-zero if any request failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT=${PORT:-18480}
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive whole number"
BACKENDS=${BACKENDS:-sqlite postgres}
WORKLOADS=${WORKLOADS:-token introspect exchange me}
check_common_settings
for workload in $WORKLOADS; do
    [[ $workload =~ ^(token|introspect|exchange|me)$ ]] || die "unknown workload $workload"
done

build_release
check_binaries
ensure_wrk
TOLLGATE_MASTER_KEY=$(new_master_key)
export TOLLGATE_MASTER_KEY

declare -A LABEL=(
    [token]="token (client_credentials)"
    [introspect]="introspection (RFC 7662)"
    [exchange]="token exchange (API key)"
    [me]="GET /api/v1/me (API key)"
    [bare]="GET, empty 200 (any request's bound)"
)
ROWS=()
FAILURES=0
CEILING_RATE=""

# measure NAME BASE PID WORKLOAD [TOKENS]: warm-up, then the measured run; leaves its
# table row in ROW and its rate of successful answers in RATE.
measure() {
    local name=$1 base=$2 pid=$3 workload=$4 tokens=${5:-}
    check_request "$workload" "$base" "$tokens"
    if ((WARMUP > 0)); then
        start_wrk "$TMP/warmup.wrk" "$base" "$WARMUP" "$CONNECTIONS" "$THREADS" "$workload" "$tokens"
        wait_loads || { cat "$TMP/warmup.wrk" >&2; die "[$name] warm-up failed"; }
    fi
    log "[$name] $workload: $CONNECTIONS connections, $THREADS threads, ${DURATION}s"
    local ticks_before ticks hwm result db_before db_ticks=""
    db_before=$(pg_cpu_snapshot "$name")
    ticks_before=$(cpu_ticks "$pid")
    start_wrk "$TMP/run.wrk" "$base" "$DURATION" "$CONNECTIONS" "$THREADS" "$workload" "$tokens"
    wait_loads || { cat "$TMP/run.wrk" >&2; die "[$name] wrk failed"; }
    ticks=$(($(cpu_ticks "$pid") - ticks_before))
    [[ $name == postgres ]] && db_ticks=$(pg_cpu_delta "$db_before" "$(pg_cpu_snapshot "$name")")
    hwm=$(peak_rss_kib "$pid")
    result=$(wrk_result "$TMP/run.wrk")
    local failed
    failed=$(failed_count "$result")
    if ((failed > 0)); then
        FAILURES=$((FAILURES + failed))
        report_failures "$result" "$TMP/$name.log"
    fi
    local rate
    rate=$(ok_rate "$result")
    RATE=$rate
    if [[ $name == ceiling && $workload == token ]]; then
        CEILING_RATE=$rate
    fi
    ROW="$(awk -v name="$name" -v what="${LABEL[$workload]}" -v rate="$rate" \
        -v ceiling="$CEILING_RATE" -v p50="$(field "$result" p50_us)" -v p99="$(field "$result" p99_us)" \
        -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v requests="$(field "$result" requests)" \
        -v hwm="$hwm" -v failed="$failed" -v db="$(db_cpu_cell "$db_ticks" "$(field "$result" requests)")" 'BEGIN {
            ratio = ceiling > 0 ? sprintf("%.2f", rate / ceiling) : "–"
            printf "| %s | %s | %d | %s | %.2f ms | %.2f ms | %.0f µs | %s | %.1f MiB | %d |",
                name, what, rate, ratio, p50 / 1000, p99 / 1000,
                ticks / hz * 1e6 / requests, db, hwm / 1024, failed
        }')"
    printf '%s\n' "$ROW" >&2
}

# --- the ceiling -------------------------------------------------------------------------
# Up from the first measurement to the last. Its clients and tokens: the load is built from
# the seeder's files (the ceiling itself only reads the Basic header).
CEILING_BASE="http://127.0.0.1:$PORT"
CEILING_PID=""

run_ceiling() {
    log "[ceiling] starting on 127.0.0.1:$PORT"
    start_ceiling "$PORT"
    CEILING_PID=$STARTED_PID
    measure ceiling "$CEILING_BASE" "$CEILING_PID" token
    ROWS+=("$ROW | |")
    # Nothing but actix-web and the load generator: the bound for `me` on this machine.
    measure ceiling "$CEILING_BASE" "$CEILING_PID" bare
    ROWS+=("$ROW | |")
    if [[ " $WORKLOADS " == *" introspect "* ]]; then
        timeout 300 "$PROBE_BIN" tokens --url "$CEILING_BASE" --clients "$SEED_DIR/clients.tsv" \
            --count "$WORKING_SET" --out "$TMP/ceiling-tokens.txt"
        # The peak RSS and CPU of this run are measured in the same process as `token`.
        measure ceiling "$CEILING_BASE" "$CEILING_PID" introspect "$TMP/ceiling-tokens.txt"
        ROWS+=("$ROW | |")
    fi
}

# The ceiling's token endpoint again, right after a Tollgate run; it is also the "before"
# of the next one (only a Tollgate restart lies between them). Leaves its rate in
# CEILING_AFTER.
CEILING_AFTER=""
remeasure_ceiling() {
    measure ceiling "$CEILING_BASE" "$CEILING_PID" token
    CEILING_AFTER=$RATE
}

# with_reference ROW RATE BEFORE AFTER: ROW with its ratio to the mean of the two ceiling
# runs around it, and both of their rates; the ratio alone in RATIO.
with_reference() {
    local row=$1 rate=$2 before=$3 after=$4
    RATIO=$(awk -v rate="$rate" -v b="$before" -v a="$after" \
        'BEGIN { m = (b + a) / 2; printf "%.2f", (m > 0 ? rate / m : 0) }')
    ROW="$(awk -F'|' -v OFS='|' -v ratio="$RATIO" '{ $5 = " " ratio " "; print }' <<<"$row") $before, $after |"
}

# --- Tollgate ----------------------------------------------------------------------------
run_tollgate() {
    local backend=$1 url=$2
    local port=$((PORT + 1))
    local base="http://127.0.0.1:$port"
    local config="$TMP/$backend.toml"
    write_config "$config"
    local tokens="$TMP/$backend-tokens.txt"
    local workload round
    for workload in $WORKLOADS; do
        local rows=() ratios=()
        for ((round = 1; round <= ROUNDS; round++)); do
            log "[$backend] starting Tollgate on 127.0.0.1:$port for $workload (round $round of $ROUNDS)"
            start_tollgate "$backend" "$url" "$port" "$base" "$config"
            local pid=$STARTED_PID
            if [[ $workload == introspect && ! -s $tokens ]]; then
                timeout 300 "$PROBE_BIN" tokens --url "$base" --clients "$SEED_DIR/clients.tsv" \
                    --count "$WORKING_SET" --out "$tokens"
            fi
            [[ -n $CEILING_AFTER ]] || remeasure_ceiling
            local before=$CEILING_AFTER
            measure "$backend" "$base" "$pid" "$workload" "$tokens"
            local row=$ROW rate=$RATE
            stop_pid "$pid"
            remeasure_ceiling
            with_reference "$row" "$rate" "$before" "$CEILING_AFTER"
            log "[$backend] $workload: $RATIO of the ceiling runs before and after ($before, $CEILING_AFTER req/s)"
            rows+=("$ROW")
            ratios+=("$RATIO")
        done
        # The round whose ratio is the median (the lower middle one for an even count).
        local median
        median=$(for i in "${!ratios[@]}"; do printf '%s %s\n' "${ratios[$i]}" "$i"; done |
            sort -n | awk -v n="${#ratios[@]}" 'NR == int((n + 1) / 2) { print $2 }')
        ROWS+=("${rows[$median]} $(IFS=,; printf '%s' "${ratios[*]}" | sed 's/,/, /g') |")
    done
}

# settle URL: what seeding left behind is done before anything is measured (PostgreSQL's
# autovacuum of the new rows and the checkpoint of their WAL would otherwise take CPU and
# disk from a run), then the machine is idle.
settle() {
    local url=$1
    if [[ $url == postgres* ]]; then
        log "settling PostgreSQL: VACUUM ANALYZE, CHECKPOINT"
        PGCONNECT_TIMEOUT=5 timeout 600 psql "$url" -qX -v ON_ERROR_STOP=1 \
            -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null || die "cannot settle PostgreSQL"
    fi
    wait_idle
}

STARTED=$(date -u +%Y%m%dT%H%M%SZ)
MACHINE=$(machine_line)
declare -A URLS=() SEEDS=()
for backend in $BACKENDS; do
    case $backend in
    sqlite) URLS[sqlite]="sqlite://$TMP/tollgate.db" ;;
    postgres)
        pg_reachable || die "PostgreSQL is not reachable at $PG_URL (BACKENDS=sqlite skips it)"
        pg_schema "bench_$(date +%s)_$$"
        URLS[postgres]=$PG_SCHEMA_URL
        ;;
    *) die "unknown backend $backend" ;;
    esac
done

for backend in $BACKENDS; do
    seed "${URLS[$backend]}"
    SEEDS[$backend]=$SEED_DIR
done
for backend in $BACKENDS; do
    settle "${URLS[$backend]}"
done
run_ceiling
for backend in $BACKENDS; do
    SEED_DIR=${SEEDS[$backend]}
    run_tollgate "$backend" "${URLS[$backend]}"
done
stop_servers

{
    printf '%s — %s connections, %s wrk threads, %ss measured after %ss warm-up, %s rounds per Tollgate row; %s clients, %s API keys seeded, load over %s of them\n\n' \
        "$MACHINE" "$CONNECTIONS" "$THREADS" "$DURATION" "$WARMUP" "$ROUNDS" "$CLIENTS" "$KEYS" "$WORKING_SET"
    printf '| server | workload | ok req/s | ÷ ceiling | p50 | p99 | server CPU / req | PostgreSQL CPU / req | peak RSS | failed | ceiling req/s before, after | ÷ ceiling, each round |\n'
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    printf '%s\n' "${ROWS[@]}"
} | tee "$TMP/table.md"
mkdir -p "$REPO/bench/results"
cp "$TMP/table.md" "$REPO/bench/results/compare-$STARTED.md"
log "written to bench/results/compare-$STARTED.md"

((FAILURES == 0)) || die "$FAILURES requests failed"
