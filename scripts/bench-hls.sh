#!/usr/bin/env bash
# HLS serving benchmark (issue 3): GetMP4MediaFragment GB/s and req/s over an ON_DEMAND session
# against nginx serving ffmpeg's fMP4 segments of the same video from the same disk, and LIVE
# media-playlist req/s against nginx serving the same playlist bytes as a static file.
#   scripts/bench-hls.sh [RUNS] [--perf] [other scripts/bench_hls.py options]
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg mkvtoolnix)
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }
# shellcheck source=scripts/bench-input.sh
. scripts/bench-input.sh
exec python3 scripts/bench_hls.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --work-dir "$disk" --runs "$runs" "$@"
