# Shared helpers for the integration tests: start/stop a real slq-server on loopback, run
# slqctl against it, and assert. Source it; it expects SLQ_BUILD_DIR and SLQ_SHARED_DIR
# (CTest sets both).
set -euo pipefail
: "${SLQ_BUILD_DIR:?set by CTest}"
: "${SLQ_SHARED_DIR:?set by CTest}"
SHARED=$(cd "$SLQ_SHARED_DIR" && pwd)
SERVER_BIN=$SLQ_BUILD_DIR/server/main/slq-server
WORKER_BIN=$SLQ_BUILD_DIR/server/main/slq-worker
CTL_BIN=$SLQ_BUILD_DIR/client/slqctl
STATE=$(mktemp -d /tmp/slq-it.XXXXXX)
PASSED=0
FAILED=0
PIDS=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$FAILED" -eq 0 ]; then rm -rf "$STATE"; else echo "state kept in $STATE"; fi
}
trap cleanup EXIT

# start_server [extra flags...]: sets PORT, METRICS_PORT, SERVER_PID; waits until healthy.
start_server() {
  PORT=${PORT:-$(free_port)}
  METRICS_PORT=${METRICS_PORT:-$(free_port)}
  [ -f "$STATE/token" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/token"
  "$SERVER_BIN" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    --data-dir "$STATE/data" --auth-token-file "$STATE/token" \
    --allowed-roots "$SHARED/models,$SHARED/data" --text-dir "$SHARED/data" \
    --lease-seconds 10 --log-level info "$@" >> "$STATE/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  export SLQ_SERVER=127.0.0.1:$PORT SLQ_TOKEN_FILE=$STATE/token
  for _ in $(seq 100); do "$CTL_BIN" health >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server did not become healthy; log:"; tail -20 "$STATE/server.log"; return 1
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
kill9_server() { kill -9 "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

ctl() { "$CTL_BIN" "$@"; }
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

pass() { PASSED=$((PASSED + 1)); echo "PASS: $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $1"; }
# check NAME COMMAND...: runs the command, passes when it exits 0.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# expect_exit NAME CODE COMMAND...: passes when the command exits with CODE.
expect_exit() {
  local name=$1 want=$2; shift 2
  set +e; "$@" > "$STATE/last.out" 2> "$STATE/last.err"; local got=$?; set -e
  if [ "$got" -eq "$want" ]; then pass "$name"; else fail "$name (exit $got, want $want): $(cat "$STATE/last.err")"; fi
}
summary() { echo "integration: $PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; }

# ---- a throwaway PostgreSQL cluster on loopback (start_pg sets PG_BIN, PG_DIR, PG_AS, PG_PORT;
# exits 77, a skip, without the server binaries). Callers trap stop_pg. ----
PG_DIR=""
stop_pg() {
  [ -n "$PG_DIR" ] || return 0
  $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
start_pg() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "SKIP: PostgreSQL binaries not found in /usr/lib/postgresql/*/bin (install 'postgresql')"
    exit 77
  fi
  PG_DIR=$(mktemp -d /tmp/slq-pg.XXXXXX)
  PG_AS=""
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; PG_AS="runuser -u postgres --"; fi
  $PG_AS "$PG_BIN/initdb" -D "$PG_DIR/data" -U slq -A trust -E UTF8 --no-sync > "$PG_DIR/setup.log" 2>&1
  PG_PORT=$(free_port)
  $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=100" start >> "$PG_DIR/setup.log" 2>&1
}
