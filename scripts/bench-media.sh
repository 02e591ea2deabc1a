#!/usr/bin/env bash
# GetMedia / GetClip output benchmark (issue 10): GB/s of GetMedia EARLIEST over the whole ingested input
# and of GetClip over its first 200 fragments, against `ffmpeg -c copy` writing the same MKV / MP4
# (+faststart) from the same source file, interleaved in one run; per-run figures, medians, ratios.
#   scripts/bench-media.sh [RUNS] [--perf] [other scripts/bench_media.py options]
# Env: BENCH_DISK_DIR (default /var/tmp: the input and the server's data dir), BENCH_OUT_DIR
# (/dev/shm: ffmpeg's output files and the recorded responses), BENCH_SECONDS (600).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg; }
# shellcheck source=scripts/bench-input.sh
. scripts/bench-input.sh
exec python3 scripts/bench_media.py --bin "$CARGO_TARGET_DIR/release/openkvs" --input "$input" \
  --work-dir "$disk" --out-dir "${BENCH_OUT_DIR:-/dev/shm}" --runs "$runs" "$@"
