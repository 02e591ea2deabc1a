#!/usr/bin/env bash
# PutMedia ingest benchmark (issue 2): openkvs durable ingest vs `dd conv=fdatasync` on the same
# disk, and ingest on tmpfs vs `ffmpeg -f hls -hls_segment_type fmp4` on the same tmpfs.
#   scripts/bench-ingest.sh [RUNS]
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_TMPFS_DIR (default /dev/shm), BENCH_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg mkvtoolnix; }
# shellcheck source=scripts/bench-input.sh
. scripts/bench-input.sh
tmpfs="${BENCH_TMPFS_DIR:-/dev/shm}"
exec python3 scripts/bench_ingest.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --disk-dir "$disk" --tmpfs-dir "$tmpfs" --runs "$runs"
