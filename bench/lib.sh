# Shared by bench/compare.sh and bench/scale.sh (sourced, not run). Everything runs
# against 127.0.0.1 only, every step has a time limit, and whatever a script started is
# stopped on exit.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}/release
BIN=${TOLLGATE_BIN:-$TARGET/tollgate}
CEILING_BIN=$TARGET/tollgate-ceiling
SEED_BIN=$TARGET/tollgate-seed
PROBE_BIN=$TARGET/tollgate-probe
LUA=$REPO/bench/lua/load.lua

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-0}
POOL_SIZE=${POOL_SIZE:-4}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
CLIENTS=${CLIENTS:-10000}
ACCOUNTS=${ACCOUNTS:-10000}
KEYS=${KEYS:-100000}
WORKING_SET=${WORKING_SET:-1000}

check_common_settings() {
    for tool in curl timeout awk psql; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    for name in DURATION WARMUP CONNECTIONS THREADS CLIENTS ACCOUNTS KEYS WORKING_SET; do
        [[ "${!name}" =~ ^[0-9]+$ ]] || die "$name must be a whole number"
    done
    ((DURATION > 0 && CONNECTIONS > 0 && THREADS > 0 && CLIENTS > 0 && ACCOUNTS > 0 && KEYS > 0 &&
        WORKING_SET > 0)) || die "DURATION, CONNECTIONS, THREADS, CLIENTS, ACCOUNTS, KEYS and WORKING_SET must be positive"
    # Load is only ever generated against this machine.
    [[ "$PG_URL" =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost)([:/?]|$) ]] ||
        die "PG_URL must point at 127.0.0.1 or localhost"
}

# --- build and tools -----------------------------------------------------------------
# One cargo invocation for the server and the bench crate: features unify once, so the
# server binary is the same as a plain `cargo build --release` makes.
build_release() {
    if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
        return
    fi
    log "cargo build --release -p tollgate -p tollgate-bench"
    (cd "$REPO" && timeout 3600 cargo build --release --quiet -p tollgate -p tollgate-bench)
}

check_binaries() {
    local bin
    for bin in "$BIN" "$CEILING_BIN" "$SEED_BIN" "$PROBE_BIN"; do
        [[ -x "$bin" ]] || die "$bin not found (run without SKIP_BUILD=1, or set CARGO_TARGET_DIR)"
    done
}

# ensure_package COMMAND PACKAGE: installs PACKAGE with apt when COMMAND is missing.
ensure_package() {
    local command=$1 package=$2
    command -v "$command" >/dev/null && return
    command -v apt-get >/dev/null || die "$command is required: install $package with your package manager"
    log "installing $package (apt-get)"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    timeout 300 $sudo apt-get install -y -qq "$package" >/dev/null ||
        { timeout 300 $sudo apt-get update -qq && timeout 300 $sudo apt-get install -y -qq "$package" >/dev/null; } ||
        die "could not install $package"
}

ensure_wrk() { ensure_package wrk wrk; }

pg_reachable() {
    PGCONNECT_TIMEOUT=5 timeout 10 psql "$PG_URL" -qXAt -c 'SELECT 1' >/dev/null 2>&1
}

# Creates a schema on PG_URL (dropped on exit by cleanup_common); its URL in PG_SCHEMA_URL.
pg_schema() {
    local schema=$1
    PGCONNECT_TIMEOUT=5 timeout 15 psql "$PG_URL" -qX -v ON_ERROR_STOP=1 \
        -c "CREATE SCHEMA $schema" >/dev/null || die "cannot create schema $schema"
    PG_SCHEMAS+=("$schema")
    local sep='?'
    [[ "$PG_URL" == *'?'* ]] && sep='&'
    # The application name finds this run's server connections in pg_stat_activity, for
    # the database's CPU time (other clients may share the PostgreSQL).
    PG_SCHEMA_URL="${PG_URL}${sep}application_name=${PG_APP}&options=--search_path%3D${schema}"
}

PG_APP=tollgate-bench-$$

# PostgreSQL server processes serving this run's Tollgate connections (as root, their
# /proc entries are readable: PostgreSQL runs on this machine, as the scripts require).
pg_backend_pids() {
    [[ $1 == postgres ]] || return 0
    PGCONNECT_TIMEOUT=5 timeout 10 psql "$PG_URL" -qXAt \
        -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$PG_APP'" 2>/dev/null || true
}

# pg_cpu_snapshot BACKEND: "pid ticks" lines of those processes now.
pg_cpu_snapshot() {
    local pid
    for pid in $(pg_backend_pids "$1"); do
        [[ -r /proc/$pid/stat ]] && printf '%s %s\n' "$pid" "$(cpu_ticks "$pid")"
    done
    return 0
}

# pg_cpu_delta BEFORE AFTER: ticks spent in between by the processes of AFTER (those
# missing from BEFORE started in between and count whole), then how many processes of
# BEFORE ended in between (their last ticks are lost: the sum is then a lower bound).
pg_cpu_delta() {
    awk 'NR == FNR { if ($1 != "") before[$1] = $2; next }
        $1 != "" { sum += $2 - before[$1]; seen[$1] = 1 }
        END { for (pid in before) if (!(pid in seen)) ended++; print sum + 0, ended + 0 }' \
        <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# db_cpu_cell "TICKS ENDED" REQUESTS: the table cell, "≥" when processes ended.
db_cpu_cell() {
    [[ -n $1 ]] || { printf '–'; return; }
    awk -v ticks="${1% *}" -v ended="${1#* }" -v requests="$2" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%s%.0f µs", (ended > 0 ? "≥ " : ""), ticks / hz * 1e6 / requests }'
}

# --- processes cleaned up on exit ----------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
chmod 700 "$TMP"
SERVER_PIDS=()
LOAD_PIDS=()
PG_SCHEMAS=()

stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do # graceful shutdown, then force after 10 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    SERVER_PIDS=()
}

stop_loads() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do stop_pid "$pid"; done
    LOAD_PIDS=()
}

cleanup_common() {
    local status=$?
    stop_loads
    stop_servers
    local schema
    for schema in "${PG_SCHEMAS[@]}"; do
        PGCONNECT_TIMEOUT=5 timeout 30 psql "$PG_URL" -qX -v ON_ERROR_STOP=1 \
            -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 ||
            printf 'warning: could not drop schema %s\n' "$schema" >&2
    done
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup_common EXIT
trap 'exit 130' INT TERM

# Other servers on this machine must not answer in our place.
ensure_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "port $1 on 127.0.0.1 is in use: choose other ports with PORT=…"
    fi
}

# Waits until GET $1/health/ready answers 200 (30 s), while process $2 lives.
wait_ready() {
    local base=$1 pid=$2 log=$3
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "the server for $base exited during start-up"
        fi
        if curl -fsS --max-time 1 -o /dev/null "$base/health/ready" 2>/dev/null; then
            kill -0 "$pid" 2>/dev/null || die "$base answered, but its server exited (port taken?)"
            return
        fi
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "$base not ready after 30 s"
}

# start_tollgate NAME DATABASE_URL PORT ISSUER CONFIG: starts one instance in the
# background; its PID is left in STARTED_PID.
start_tollgate() {
    local name=$1 url=$2 port=$3 issuer=$4 config=$5
    ensure_port_free "$port"
    "$BIN" --config "$config" --database-url "$url" serve --bind "127.0.0.1:$port" \
        --issuer "$issuer" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    STARTED_PID=$!
    SERVER_PIDS+=("$STARTED_PID")
    wait_ready "http://127.0.0.1:$port" "$STARTED_PID" "$TMP/$name.log"
}

start_ceiling() {
    local port=$1
    ensure_port_free "$port"
    "$CEILING_BIN" --bind "127.0.0.1:$port" --issuer "http://127.0.0.1:$port" \
        --workers "$WORKERS" >"$TMP/ceiling.out" 2>"$TMP/ceiling.log" &
    STARTED_PID=$!
    SERVER_PIDS+=("$STARTED_PID")
    wait_ready "http://127.0.0.1:$port" "$STARTED_PID" "$TMP/ceiling.log"
}

# A Tollgate configuration file for the runs; extra TOML lines from $2.
write_config() {
    local path=$1 extra=${2:-}
    cat >"$path" <<EOF
[server]
workers = $WORKERS
access_log = false
[database]
pool_size = $POOL_SIZE
$extra
EOF
}

# --- measuring -------------------------------------------------------------------------
# Waits (up to a minute) until the machine has been idle for a second: under 10% of its
# CPU time busy, counting every process (a checkpoint, a leftover server, a build).
wait_idle() {
    local busy
    for _ in $(seq 60); do
        busy=$(
            { head -n 1 /proc/stat; sleep 1; head -n 1 /proc/stat; } | awk '
                { idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i }
                NR == 1 { idle0 = idle; total0 = total }
                NR == 2 { printf "%.0f", 100 * (1 - (idle - idle0) / (total - total0)) }'
        )
        ((busy < 10)) && return 0
    done
    log "the machine is still ${busy}% busy; measuring anyway"
}

# User + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15;
# the command name in field 2 has no spaces here).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Peak resident set size (VmHWM) in KiB.
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# The environment the wrk script reads, for workload $1 against a server whose access
# tokens (introspect) are in $2.
wrk_env() {
    local workload=$1 tokens=${2:-}
    local caller
    caller=$(awk -F'\t' '$1 == "introspector" { print $4 }' "$SEED_DIR/roles.tsv")
    printf '%s\n' "WORKLOAD=$workload" "CLIENTS=$SEED_DIR/clients.tsv" "TOKENS=$tokens" \
        "API_KEYS=$SEED_DIR/api_keys.txt" "CALLER_BASIC=$caller" "WORKING_SET=$WORKING_SET"
}

# start_wrk OUT BASE SECONDS CONNECTIONS THREADS WORKLOAD [TOKENS]: in the background (a
# signal then reaches the trap at once); its PID is appended to LOAD_PIDS.
start_wrk() {
    local out=$1 base=$2 seconds=$3 connections=$4 threads=$5 workload=$6 tokens=${7:-}
    local -a env
    mapfile -t env < <(wrk_env "$workload" "$tokens")
    env "${env[@]}" timeout $((seconds + 30)) wrk -t "$threads" -c "$connections" \
        -d "${seconds}s" --timeout 5s -s "$LUA" "$base" >"$out" 2>&1 &
    LOAD_PIDS+=($!)
}

wait_loads() {
    local pid status=0
    for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || status=$?; done
    LOAD_PIDS=()
    return "$status"
}

# The RESULT line of a wrk run, as `key=value` words.
wrk_result() {
    grep '^RESULT ' "$1" || { cat "$1" >&2; die "no wrk summary in $1"; }
}

# field RESULT KEY
field() {
    awk -v key="$2" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' <<<"$1"
}

# Successful answers (status below 400) per second.
ok_rate() {
    awk -v r="$(field "$1" requests)" -v b="$(field "$1" bad_status)" -v d="$(field "$1" duration_us)" \
        'BEGIN { printf "%.0f", (r - b) / (d / 1e6) }'
}

# What went wrong, when something did: the wrk counters and the server logs' commonest lines.
# report_failures RESULT LOG...
report_failures() {
    local result=$1
    shift
    log "failed requests: $(cut -d ' ' -f 7- <<<"$result")"
    cat "$@" 2>/dev/null | sed -E 's/\x1b\[[0-9;]*m//g' | grep -iE 'error|warn' |
        sed -E 's/^[^ ]+ +//' | sort | uniq -c |
        sort -rn | head -n 5 >&2 || true
}

failed_count() {
    local r=$1
    echo $(($(field "$r" bad_status) + $(field "$r" connect) + $(field "$r" read) + $(field "$r" write) + $(field "$r" timeout)))
}

# One request by hand, checked, before any load: the load means nothing if it fails.
# check_request WORKLOAD BASE [TOKENS]
check_request() {
    local workload=$1 base=$2 tokens=${3:-}
    local client_basic key token caller status expect
    client_basic=$(head -n 1 "$SEED_DIR/clients.tsv" | cut -f 3)
    key=$(head -n 1 "$SEED_DIR/api_keys.txt")
    caller=$(awk -F'\t' '$1 == "introspector" { print $4 }' "$SEED_DIR/roles.tsv")
    local -a curl_args=(-sS --max-time 5 -o "$TMP/check.json" -w '%{http_code}')
    case $workload in
    token)
        expect='"access_token"'
        status=$(curl "${curl_args[@]}" -H "Authorization: $client_basic" \
            --data grant_type=client_credentials "$base/oauth/token")
        ;;
    introspect)
        expect='"active":true'
        token=$(head -n 1 "$tokens")
        status=$(curl "${curl_args[@]}" -H "Authorization: $caller" \
            --data "token=$token" "$base/oauth/introspect")
        ;;
    exchange)
        expect='"issued_token_type"'
        status=$(curl "${curl_args[@]}" \
            --data grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
            --data "subject_token=$key" \
            --data subject_token_type=urn:tollgate:params:oauth:token-type:api_key \
            "$base/oauth/token")
        ;;
    bare)
        expect=''
        status=$(curl "${curl_args[@]}" "$base/health/ready")
        ;;
    me)
        expect='"credential"'
        status=$(curl "${curl_args[@]}" -H "Authorization: Bearer $key" "$base/api/v1/me")
        ;;
    esac
    [[ $status == 200 ]] && { [[ -z $expect ]] || grep -q "$expect" "$TMP/check.json"; } ||
        die "$workload at $base failed ($status): $(head -c 300 "$TMP/check.json")"
}

# seed DATABASE_URL: creates the clients, accounts and API keys; credentials in SEED_DIR.
seed() {
    local url=$1
    SEED_DIR=$TMP/seed-$((++SEED_COUNT))
    log "seeding $CLIENTS clients, $ACCOUNTS accounts, $KEYS API keys"
    timeout 1800 "$SEED_BIN" --database-url "$url" --out "$SEED_DIR" \
        --clients "$CLIENTS" --accounts "$ACCOUNTS" --keys "$KEYS" >&2 ||
        die "seeding failed"
}
SEED_COUNT=0

new_master_key() {
    openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

machine_line() {
    local cpu pg
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    pg=$(PGCONNECT_TIMEOUT=5 timeout 10 psql "$PG_URL" -qXAt -c 'SHOW server_version' 2>/dev/null |
        awk '{ print $1 }')
    # The load average says how busy the machine already was (a shared one skews req/s;
    # CPU per request much less).
    # With autogroups on, a PostgreSQL on the same cores as a saturated server gets its
    # CPU late (see the README's Performance section): it decides the p99 on PostgreSQL.
    local autogroup
    autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo unknown)
    printf '%s, %s cores (%s), %s GiB RAM, %s, sched_autogroup_enabled=%s, PostgreSQL %s, load average %s before' \
        "$(date -u +%Y-%m-%d)" "$(nproc)" "${cpu:-unknown CPU}" \
        "$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
        "$(uname -sr)" "$autogroup" "${pg:-unreachable}" "$(cut -d ' ' -f 1 /proc/loadavg)"
}
