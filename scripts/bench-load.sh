#!/usr/bin/env bash
# Capacity of one node (issue 9 item 9): runs openkvs-load against a fresh `openkvs serve` at each step of a
# ramp of N producers : M viewers and reports, per step, whether every PERSISTED ack came under 100 ms and every
# playlist answer under 50 ms (with no error of any kind), then the largest passing step. Method: docs/capacity.md.
#   scripts/bench-load.sh [N:M ...]            e.g. scripts/bench-load.sh 10:100 50:500 100:1000 200:2000
# Env: OPENKVS_LOAD_MODE=embedded (default; SQLite + segment files in a temp dir) | pg-s3 (a PostgreSQL 15
#      catalog started here, fsync on, and S3 media on Garage started by scripts/garage.sh);
#      LOAD_DURATION (measured seconds per step, 30), LOAD_RAMP (seconds over which clients start, 10),
#      LOAD_RETRIES (re-runs of a failing step before it counts as failed, 1: the machine may be shared),
#      LOAD_KEEP_GOING=1 (run every step even after one failed), BENCH_DISK_DIR (/var/tmp),
#      LOAD_SERVER_BINS ("A B …": openkvs binaries to serve each step with, in turn, alternating per
#      step so drift hits every build alike; default the release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
mode="${OPENKVS_LOAD_MODE:-embedded}"
duration="${LOAD_DURATION:-30}"
ramp="${LOAD_RAMP:-10}"
retries="${LOAD_RETRIES:-1}"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(10:100 25:250 50:500 100:1000 150:1500 200:2000)
case "$mode" in embedded | pg-s3) ;; *) echo "OPENKVS_LOAD_MODE must be embedded or pg-s3" >&2; exit 2 ;; esac

cargo build --release -q -p openkvs -p loadgen
bin="$CARGO_TARGET_DIR/release"
read -r -a servers <<<"${LOAD_SERVER_BINS:-$bin/openkvs}"
work=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/openkvs-load.XXXXXX")
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "${pg_stop:-}" ] || eval "$pg_stop" || true
  [ -z "${garage_stop:-}" ] || eval "$garage_stop" || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$mode" = pg-s3 ]; then
  # PostgreSQL 15 as crates/store/tests/conformance_postgres.rs starts it (unix socket only; as root, run as
  # nobody), but with fsync on: the figures are for a durable catalog.
  pg_bin=/usr/lib/postgresql/15/bin
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL 15 is missing: apt-get install postgresql-15" >&2; exit 2; }
  [ -x scripts/garage.sh ] || { echo "scripts/garage.sh is missing (the S3 store for pg-s3)" >&2; exit 2; }
  pg="$work/pg"; mkdir -p "$pg/data" "$pg/sock"; chmod 755 "$work" "$pg"
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown nobody: "$pg/data" "$pg/sock"; as_pg=(runuser -u nobody --); fi
  pg_port=$(free_port)
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg/data" -U postgres --auth=trust --no-locale -E UTF8 >"$work/initdb.log"
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/data/server.log" -w start \
    -o "-k $pg/sock -c listen_addresses='' -p $pg_port -c max_connections=300" >/dev/null
  pg_stop="${as_pg[*]} $pg_bin/pg_ctl -D $pg/data -m fast -w stop >/dev/null"
  scripts/garage.sh start "$work/garage" >"$work/garage.log"
  garage_stop="scripts/garage.sh stop $work/garage >/dev/null 2>&1"
  # shellcheck disable=SC1091
  . "$work/garage/env"
  export OPENKVS_S3_ACCESS_KEY_ID OPENKVS_S3_SECRET_ACCESS_KEY
fi

# The store of one step: embedded in the step's data dir, or a database and an S3 prefix of its own.
store_args() {
  [ "$mode" = pg-s3 ] || return 0
  "${as_pg[@]}" "$pg_bin/createdb" -h "$pg/sock" -p "$pg_port" -U postgres "$1"
  echo --catalog "postgresql://postgres@localhost/$1?host=$pg/sock&port=$pg_port" --media "s3://$OPENKVS_S3_BUCKET/$1" \
    --s3-endpoint "$OPENKVS_S3_ENDPOINT" --s3-region "$OPENKVS_S3_REGION"
}

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIDOPENKVSLOAD}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-load}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# One step: a fresh server (fresh data dir), the tool, the server stopped. Prints the JSON line.
run_step() {
  local producers=$1 viewers=$2 run=$3 port dir
  port=$(free_port)
  dir="$work/step-$steps_run-$producers-$viewers-$run"
  mkdir -p "$dir"
  # shellcheck disable=SC2046 # the words of store_args (no spaces inside them)
  "$server" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --max-connections-per-ip 1000000 \
    $(store_args "load_${steps_run}_${producers}_${viewers}_$run") >"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$bin/openkvs-load" --endpoint "http://127.0.0.1:$port" --producers "$producers" --viewers "$viewers" \
    --duration "$duration" --ramp-seconds "$ramp" --server-pid "$server_pid" 2>"$dir/load.log" || true
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

field() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, r))' "$1" "$2"; }

echo "mode=$mode duration=${duration}s ramp=${ramp}s cores=$(nproc) $(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-7s %-5s %-22s %-22s %-9s %-9s %-6s %-28s %s\n' N M pass "persist p50/p99/max" "playlist p50/p99/max" \
  "frag/s" "req/s" "errors" "cpu client/server, load" build
declare -A best
steps_run=0
for step in "${steps[@]}"; do
  producers=${step%%:*} viewers=${step##*:}
  any_passed=false
  for server in "${servers[@]}"; do
    passed=false
    for run in $(seq 0 "$retries"); do
      steps_run=$((steps_run + 1)) # names the run's data dir and database (run_step is a subshell)
      line=$(run_step "$producers" "$viewers" "$run" | tail -n 1)
      [ -n "$line" ] || { echo "$producers:$viewers: no report (see $work)" >&2; continue; }
      printf '%-6s %-7s %-5s %-22s %-22s %-9s %-9s %-6s %-28s %s\n' "$producers" "$viewers" \
        "$(field "$line" '"yes" if passed else "no"')" \
        "$(field "$line" '"%s/%s/%s" % (persist_ms["p50"], persist_ms["p99"], persist_ms["max"])')" \
        "$(field "$line" '"%s/%s/%s" % (playlist_ms["p50"], playlist_ms["p99"], playlist_ms["max"])')" \
        "$(field "$line" 'fragments_per_second')" "$(field "$line" 'viewer_requests_per_second')" \
        "$(field "$line" 'error_acks+unacknowledged+producer_failures+control_errors+non_200+http_errors')" \
        "$(field "$line" '"%s%%/%s%%, %s" % (client_cpu_percent, server_cpu_percent, load_average_1m)')" \
        "$server"
      echo "$line" >>"$work/results.jsonl"
      if [ "$(field "$line" 'passed')" = True ]; then passed=true; break; fi
    done
    if $passed; then best[$server]=$step; any_passed=true; fi
  done
  $any_passed || [ "${LOAD_KEEP_GOING:-0}" = 1 ] || break
done
for server in "${servers[@]}"; do
  echo "largest passing N:M ($mode, $server): ${best[$server]:-none}"
done
cat "$work/results.jsonl" >"${BENCH_DISK_DIR:-/var/tmp}/openkvs-load-$mode-results.jsonl"
echo "JSON lines: ${BENCH_DISK_DIR:-/var/tmp}/openkvs-load-$mode-results.jsonl"
