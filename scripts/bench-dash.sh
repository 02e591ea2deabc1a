#!/usr/bin/env bash
# DASH serving against HLS serving (issue 11): over ON_DEMAND sessions of the same ingested 720p input,
# requests/s, p50 and p99 of the DASH MPD against the HLS media playlist, and of DASH media segments against
# HLS fMP4 segments (the same fragments), interleaved in one run, with the DASH/HLS ratios.
#   scripts/bench-dash.sh [RUNS] [other scripts/bench_dash.py options]
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg mkvtoolnix)
command -v wrk >/dev/null || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }
# shellcheck source=scripts/bench-input.sh
. scripts/bench-input.sh
exec python3 scripts/bench_dash.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --work-dir "$disk" --runs "$runs" "$@"
