#!/usr/bin/env bash
# Garage (garagehq.deuxfleurs.fr, AGPL-3.0, a Rust program), the S3-compatible object store the
# object-media tests run against. The one place its setup lives: the Rust tests
# (crates/store/tests/conformance_garage.rs) and the end-to-end tests call this script.
#
#   scripts/garage.sh build       # cargo install --locked garage 2.5.0 (cached); prints the binary's path
#   scripts/garage.sh start DIR   # a single-node Garage with everything in DIR; writes DIR/env
#   scripts/garage.sh stop DIR    # stops the Garage that `start DIR` started
#
# Cache: ${OPENKVS_CACHE_DIR:-$HOME/.cache/openkvs}/garage-2.5.0/bin/garage. `build` does nothing when
# it is there; an earlier build at ~/.cache/openkvs/garage-root/bin/garage of the same version is copied
# into place instead of building again. A lock (flock) serialises concurrent builds.
#
# `start DIR`: garage.toml (replication_factor = 1, a random rpc_secret, RPC and S3 API on free
# loopback ports), meta/ and data/ in DIR; the server in the background (pid in DIR/garage.pid, log in
# DIR/garage.log); a layout of the one node, bucket `openkvs` and a key (random credentials) allowed
# to read, write and own it. DIR/env then holds
#   OPENKVS_S3_ENDPOINT=http://127.0.0.1:PORT   OPENKVS_S3_REGION=garage   OPENKVS_S3_BUCKET=openkvs
#   OPENKVS_S3_ACCESS_KEY_ID=GK…                OPENKVS_S3_SECRET_ACCESS_KEY=…
# Nothing outside DIR is written, no root is needed, nothing listens beyond 127.0.0.1.
set -euo pipefail

VERSION=2.5.0
CACHE="${OPENKVS_CACHE_DIR:-$HOME/.cache/openkvs}"
PREFIX="$CACHE/garage-$VERSION"
BIN="$PREFIX/bin/garage"
EARLIER_BUILD="$HOME/.cache/openkvs/garage-root/bin/garage"
BUCKET=openkvs
REGION=garage

log() { printf '[garage.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { die "usage: $0 build | start DIR | stop DIR"; }

is_version() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "cargo:$VERSION\b"; }

build() {
  if is_version "$BIN"; then echo "$BIN"; return; fi
  mkdir -p "$PREFIX"
  exec 9>"$PREFIX/.lock"
  flock 9
  if ! is_version "$BIN"; then
    if is_version "$EARLIER_BUILD"; then
      log "copying the earlier build $EARLIER_BUILD into $PREFIX"
      mkdir -p "$PREFIX/bin"
      cp "$EARLIER_BUILD" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
    else
      log "building garage $VERSION into $PREFIX (cargo install --locked; several minutes, once)"
      cargo install --locked --quiet "garage@$VERSION" --root "$PREFIX" \
        --target-dir "$CACHE/garage-build/target" >&2
      rm -rf "$CACHE/garage-build"  # GBs of intermediate objects; only the binary is kept
    fi
  fi
  is_version "$BIN" || die "no garage $VERSION at $BIN after the build"
  echo "$BIN"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

start() {
  local dir="$1"
  is_version "$BIN" || die "garage $VERSION is not built ($BIN is missing): run scripts/garage.sh build"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/garage.pid" ] && kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
    die "a garage started in $dir is still running (pid $(cat "$dir/garage.pid"))"
  fi
  local rpc_port s3_port cfg="$dir/garage.toml"
  rpc_port="$(free_port)"
  s3_port="$(free_port)"
  while [ "$s3_port" = "$rpc_port" ]; do s3_port="$(free_port)"; done
  mkdir -p "$dir/meta" "$dir/data"
  (umask 077 && cat >"$cfg" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
EOF
  )
  local g=("$BIN" -c "$cfg")
  # setsid: the server outlives this script and a Ctrl-C of the shell that ran it.
  setsid "${g[@]}" server >"$dir/garage.log" 2>&1 </dev/null &
  echo $! >"$dir/garage.pid"
  local node="" i
  for i in $(seq 1 150); do
    kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null || die "garage exited at start; its log:
$(cat "$dir/garage.log")"
    node="$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1)" && [ -n "$node" ] && break
    sleep 0.1
  done
  [ -n "$node" ] || die "garage did not answer within 15 s (log: $dir/garage.log)"
  local key_id="GK$(hex 12)" secret
  secret="$(hex 32)"
  {
    "${g[@]}" layout assign -z dc1 -c 1G "$node"
    "${g[@]}" layout apply --version 1
    "${g[@]}" bucket create "$BUCKET"
    "${g[@]}" key import --yes -n openkvs "$key_id" "$secret"
    "${g[@]}" bucket allow --read --write --owner "$BUCKET" --key "$key_id"
  } >"$dir/setup.log" 2>&1 || die "setting up garage failed: $(cat "$dir/setup.log")"
  # The S3 API answers (403 without credentials) once it is up.
  for i in $(seq 1 150); do
    curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break
    sleep 0.1
  done
  cat >"$dir/env" <<EOF
OPENKVS_S3_ENDPOINT=http://127.0.0.1:$s3_port
OPENKVS_S3_REGION=$REGION
OPENKVS_S3_BUCKET=$BUCKET
OPENKVS_S3_ACCESS_KEY_ID=$key_id
OPENKVS_S3_SECRET_ACCESS_KEY=$secret
EOF
  chmod 600 "$dir/env"
}

stop() {
  local dir="$1" pid
  [ -f "$dir/garage.pid" ] || return 0
  pid="$(cat "$dir/garage.pid")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/garage.pid"
}

case "${1:-}" in
  build) [ $# = 1 ] || usage; build ;;
  start) [ $# = 2 ] || usage; start "$2" ;;
  stop) [ $# = 2 ] || usage; stop "$2" ;;
  *) usage ;;
esac
