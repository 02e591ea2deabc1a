#!/usr/bin/env bash
# GetImages benchmark (issue 11): images/s over a 720p H.264 stream (PNG and JPEG at the source size,
# JPEG at 320 wide) against ffmpeg decoding the same input to one image per sampling interval, in
# one run; medians and ratios.
#   scripts/bench-images.sh [RUNS] [other scripts/bench_images.py options: --seconds, --interval]
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_OUT_DIR (/dev/shm: ffmpeg's images), BENCH_SECONDS (600:
# the input made once by make-fixtures.sh --bench; the benchmark uses its first --seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg; }
# shellcheck source=scripts/bench-input.sh
. scripts/bench-input.sh
exec python3 scripts/bench_images.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --work-dir "$disk" --out-dir "${BENCH_OUT_DIR:-/dev/shm}" --runs "$runs" "$@"
