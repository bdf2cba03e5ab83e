#!/usr/bin/env bash
# Schemathesis against the running server with its own /openapi.json: every operation, on
# SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL, with credentials for every
# security scheme so that the authenticated paths are reached. Fails on any server error
# (5xx) and on any answer that does not conform to the document (status code, content
# type, headers, body schema).
#
# Uses the binary `cargo test` built (target/debug/tollgate); builds nothing. Schemathesis
# comes from PyPI into a venv in a cache directory (kept between runs), pinned below.
#
# Environment: TEST_DATABASE_URL (PostgreSQL, optional), ST_MAX_EXAMPLES (default 20),
# ST_SEED (default fixed, for reproducible runs), ST_REPORT_DIR (keep a HAR of every
# request and answer there), TOLLGATE_CI_CACHE (the venv's parent directory).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
BIN=target/debug/tollgate
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-20}
SEED=${ST_SEED:-20261202}
# Server errors; conformance of every answer to the document (status code, content type,
# headers, body); and the API's side of the contract: data the document forbids is refused,
# undocumented methods get 405 with a true Allow, authentication is not ignored, required
# headers are required.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth,missing_required_header

if [ ! -x "$BIN" ]; then
  echo "error: $BIN is missing: run cargo test (or cargo build) first" >&2
  exit 1
fi

# 1. Python 3 with venv, then schemathesis in its own venv.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing: python3 python3-venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
  else
    echo "error: install python3 and python3-venv" >&2
    exit 1
  fi
fi
cache=${TOLLGATE_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-ci}
venv="$cache/schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
st="$venv/bin/schemathesis"

work=$(mktemp -d)
server_pid=""
pg_schema=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_schema" ]; then
    psql -q "$TEST_DATABASE_URL" -c "DROP SCHEMA IF EXISTS $pg_schema CASCADE" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

json_field() { # json_field FIELD < json
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# 2. One backend: a fresh database, credentials made with the CLI, the server, schemathesis.
run_backend() {
  local name=$1 database_url=$2
  local dir="$work/$name"
  mkdir -p "$dir"
  local port
  port=$(free_port)
  export DATABASE_URL="$database_url"
  export TOLLGATE_BIND="127.0.0.1:$port"
  TOLLGATE_MASTER_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
  export TOLLGATE_MASTER_KEY
  export TOLLGATE_LOG=${TOLLGATE_LOG:-warn}

  "$BIN" migrate >/dev/null
  # An operator client (admin API, introspection) whose credentials also serve HTTP Basic
  # at the OAuth endpoints, and an account with an API key that may manage keys.
  local ops
  ops=$("$BIN" client create --name st-ops --scope "admin introspect" --json)
  "$BIN" account create --handle st-owner --scope "keys read" >/dev/null
  local key
  key=$("$BIN" api-key create --account st-owner --name schemathesis --scope "keys read" --json)
  export ST_CLIENT_ID ST_CLIENT_SECRET ST_API_KEY ST_ADMIN_TOKEN
  ST_CLIENT_ID=$(json_field client_id <<<"$ops")
  ST_CLIENT_SECRET=$(json_field client_secret <<<"$ops")
  ST_API_KEY=$(json_field api_key <<<"$key")

  "$BIN" serve >"$dir/server.log" 2>&1 &
  server_pid=$!
  local base="http://127.0.0.1:$port"
  # Ready within 10 s, then the operator's admin token (client credentials, HTTP Basic).
  ST_ADMIN_TOKEN=$(python3 - "$base" <<'PY'
import base64, json, os, sys, time, urllib.parse, urllib.request
base = sys.argv[1]
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/health/ready", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not become ready")
quote = lambda v: urllib.parse.quote(v, safe="")
basic = base64.b64encode(
    f"{quote(os.environ['ST_CLIENT_ID'])}:{quote(os.environ['ST_CLIENT_SECRET'])}".encode()
).decode()
request = urllib.request.Request(
    base + "/oauth/token",
    data=b"grant_type=client_credentials&scope=admin",
    headers={"Authorization": "Basic " + basic,
             "Content-Type": "application/x-www-form-urlencoded"},
)
print(json.load(urllib.request.urlopen(request, timeout=10))["access_token"])
PY
  )

  cat >"$dir/schemathesis.toml" <<'EOF'
[auth.openapi.client_secret_basic]
username = "${ST_CLIENT_ID}"
password = "${ST_CLIENT_SECRET}"

[auth.openapi.admin_token]
bearer = "${ST_ADMIN_TOKEN}"

[auth.openapi.api_key]
bearer = "${ST_API_KEY}"
EOF

  echo "schemathesis ($name): $base/openapi.json, at most $MAX_EXAMPLES examples per operation"
  local report=()
  if [ -n "${ST_REPORT_DIR:-}" ]; then
    mkdir -p "$ST_REPORT_DIR"
    report=(--report har --report-har-path "$(realpath "$ST_REPORT_DIR")/$name.har")
  fi
  local status=0
  set -o pipefail
  # From the run's own directory: schemathesis keeps a cache in its working directory.
  (cd "$dir" && "$st" --config-file "$dir/schemathesis.toml" run "$base/openapi.json" \
    --checks "$CHECKS" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --request-timeout 15 \
    --no-color \
    "${report[@]}") 2>&1 | tee "$dir/output.log" || status=$?
  # "N generated, N passed, ..." (or "N generated, N found …" when some failed).
  local passed
  passed=$(grep -oE '[0-9]+ generated, [0-9]+ passed' "$dir/output.log" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  total_passed=$((total_passed + passed))

  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  if grep -qE 'panicked|ERROR' "$dir/server.log"; then
    echo "server log ($name), errors:" >&2
    grep -E 'panicked|ERROR' "$dir/server.log" | tail -n 20 >&2
  fi
  if [ "$status" != 0 ]; then
    echo "error: schemathesis found problems on $name (above)" >&2
    return "$status"
  fi
}

total_passed=0
run_backend sqlite "sqlite://$work/sqlite.db"

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  command -v psql >/dev/null 2>&1 || { echo "error: psql is needed for the PostgreSQL run" >&2; exit 1; }
  pg_schema="schemathesis_$$"
  psql -q "$TEST_DATABASE_URL" -c "CREATE SCHEMA $pg_schema" >/dev/null
  separator='?'
  [[ "$TEST_DATABASE_URL" == *\?* ]] && separator='&'
  run_backend postgres "${TEST_DATABASE_URL}${separator}options=--search_path%3D${pg_schema}"
fi
echo "no server errors, every answer conforms to /openapi.json"
echo "schemathesis: $total_passed passed, 0 failed"
