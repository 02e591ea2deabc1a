#!/usr/bin/env bash
# PostgreSQL catalog at scale (issue 9): grows one catalog of 2-second fragments over many streams
# to each size in turn (1M, then 10M fragments) and times, through store::postgres::PgCatalog, the
# live edge, ListFragments pages, an ON_DEMAND window of 5,000, point lookups,
# last_fragment_number and retention deletes; then the ON_DEMAND media playlist of 5,000 fragments
# end to end through the server's handler. Prints p50/p99 per size and p99(largest)/p99(smallest).
#   scripts/bench-catalog.sh
# Env: OPENKVS_BENCH_SIZES ("1000000 10000000"), OPENKVS_BENCH_STREAMS (100),
#      OPENKVS_BENCH_CALLS (2000), BENCH_DISK_DIR (/var/tmp: the cluster's data, ~20 GB at 10M;
#      deleted at exit), BENCH_PG_SHARED_BUFFERS (2GB), BENCH_PREWARM (1: after the measurement
#      as loaded, read the fragment table's indexes into the OS page cache with pg_prewarm and
#      measure again, the case of a catalog server with memory for its indexes; 0: skip).
# The private cluster (PostgreSQL 15, unix socket only, run as nobody when root) keeps fsync on
# and synchronous_commit on, as production would; wal_level=minimal and a large max_wal_size
# only speed up the bulk load.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/initdb" ] || {
  apt-get update -qq && apt-get install -y -qq postgresql-common &&
    sed -i 's/^#\?create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf &&
    apt-get install -y -qq postgresql-15
}
cargo build --release -q -p store --example bench_catalog
cargo build --release -q -p server --example bench_playlist
bin="$CARGO_TARGET_DIR/release/examples"
sizes="${OPENKVS_BENCH_SIZES:-1000000 10000000}"

root="$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/openkvs-bench-catalog.XXXXXX")"
run=()
if [ "$(id -u)" = 0 ]; then
  chmod 755 "$root"
  run=(runuser -u nobody --)
fi
mkdir "$root/data" "$root/sock"
[ ${#run[@]} -eq 0 ] || chown nobody: "$root/data" "$root/sock"
stop() {
  "${run[@]}" "$pg_bin/pg_ctl" -D "$root/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap stop EXIT
(cd "$root" && "${run[@]}" "$pg_bin/initdb" -D "$root/data" -U postgres --auth=trust --no-locale \
  -E UTF8 >/dev/null)
(cd "$root" && "${run[@]}" "$pg_bin/pg_ctl" -D "$root/data" -l "$root/data/server.log" -w start -o \
  "-k $root/sock -c listen_addresses='' -p 5432 -c shared_buffers=${BENCH_PG_SHARED_BUFFERS:-2GB} \
   -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=2GB -c checkpoint_timeout=30min \
   -c maintenance_work_mem=512MB" >/dev/null)
"${run[@]}" "$pg_bin/createdb" -h "$root/sock" -U postgres openkvs_bench
url="host=$root/sock port=5432 user=postgres dbname=openkvs_bench"

results="$root/results.tsv"
warm="$root/warm.tsv"
prewarm="${BENCH_PREWARM:-1}"
for size in $sizes; do
  echo "== growing the catalog to $size fragments" >&2
  "$bin/bench_catalog" grow "$url" "$size"
  echo "== measuring at $size fragments, as loaded" >&2
  "$bin/bench_catalog" measure "$url" "$size" | tee -a "$results"
  "$bin/bench_playlist" "$url" "$size" | tee -a "$results"
  if [ "$prewarm" = 1 ]; then
    # Every index of `fragment` (the primary key and the covering window indexes) read once into
    # the OS page cache ('read': shared_buffers is smaller than the indexes at 10M).
    echo "== reading the fragment indexes into memory (pg_prewarm), measuring again" >&2
    "${run[@]}" "$pg_bin/psql" -q -X -v ON_ERROR_STOP=1 -h "$root/sock" -U postgres -d openkvs_bench -c \
      "CREATE EXTENSION IF NOT EXISTS pg_prewarm" -c \
      "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS size, pg_prewarm(c.oid::regclass, 'read') AS blocks
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'fragment'::regclass ORDER BY c.relname" >&2
    "$bin/bench_catalog" measure "$url" "$size" | tee -a "$warm"
    "$bin/bench_playlist" "$url" "$size" | tee -a "$warm"
  fi
done
echo
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'), $(nproc) cores, \
$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(date -u +%Y-%m-%d)"
echo "As loaded (whatever the load left in memory):"
"$bin/bench_catalog" report "$results"
if [ "$prewarm" = 1 ]; then
  echo
  echo "With the fragment indexes read into memory (pg_prewarm) first:"
  "$bin/bench_catalog" report "$warm"
fi
