#!/usr/bin/env bash
# PutMedia ingest benchmark (issue 2): openkvs durable ingest vs `dd conv=fdatasync` on the same
# disk, and ingest on tmpfs vs `ffmpeg -f hls -hls_segment_type fmp4` on the same tmpfs.
#   scripts/bench-ingest.sh [RUNS]
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_TMPFS_DIR (default /dev/shm), BENCH_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg mkvtoolnix; }
python3 -c 'import boto3' 2>/dev/null || pip install -q -r requirements-test.txt
cargo build --release -q -p openkvs
disk="${BENCH_DISK_DIR:-/var/tmp}"
tmpfs="${BENCH_TMPFS_DIR:-/dev/shm}"
seconds="${BENCH_SECONDS:-600}"
input="$disk/openkvs-bench-720p-${seconds}s.mkv"
[ -s "$input" ] || scripts/make-fixtures.sh --bench "$input" "$seconds"
exec python3 scripts/bench_ingest.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --disk-dir "$disk" --tmpfs-dir "$tmpfs" --runs "${1:-3}"
