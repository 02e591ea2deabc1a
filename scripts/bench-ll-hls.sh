#!/usr/bin/env bash
# Glass-to-glass latency of a LIVE session with and without LL-HLS, side by side in one run
# (docs/architecture.md#low-latency-hls): AWS's C producer SDK as a real-time camera (2-s GOPs), hls.js in
# low-latency mode in headless Chromium, SECONDS (default 60) on a `serve --ll-hls` node, then the same on a
# node without it. Prints p50/p95 of wall clock minus the playhead's EXT-X-PROGRAM-DATE-TIME, stalls and
# dropped frames per run and the p50 ratio LL / plain; writes them to OUT (default ll-hls-bench.json).
#
#   scripts/bench-ll-hls.sh [SECONDS] [OUT]
#
# It is tests/e2e/test_ll_hls.py's side-by-side test with the figures kept: run scripts/test.sh once first
# (it installs the players and builds the producer SDK driver), or set OPENKVS_KVS_PRODUCER_DRIVER.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SECONDS_WATCHED="${1:-60}"
OUT="$(realpath -m "${2:-ll-hls-bench.json}")"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build -q -p openkvs
export OPENKVS_BIN="${OPENKVS_BIN:-$TARGET/debug/openkvs}"
if [ -z "${OPENKVS_KVS_PRODUCER_DRIVER:-}" ]; then
  OPENKVS_KVS_PRODUCER_DRIVER="$(scripts/build-kvs-producer-c.sh | tail -1)"
fi
export OPENKVS_KVS_PRODUCER_DRIVER
OPENKVS_LL_WATCH_SECONDS="$SECONDS_WATCHED" OPENKVS_LL_RESULT="$OUT" \
  python3 -m pytest -q -s tests/e2e/test_ll_hls.py -k side_by_side
echo "figures: $OUT"
