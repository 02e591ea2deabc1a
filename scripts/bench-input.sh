# shellcheck shell=bash
# Sourced by the benchmark scripts (scripts/bench-*.sh) from the repo root: boto3, the release
# build of openkvs, and the 720p H.264 + AAC input made once by `scripts/make-fixtures.sh --bench`.
# Env: BENCH_DISK_DIR (default /var/tmp), BENCH_SECONDS (600), CARGO_TARGET_DIR (./target).
# Sets: CARGO_TARGET_DIR (exported), disk, seconds, input, and runs: the caller's first argument when it is a
# number (shifted off, so "$@" is what follows), else 3.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
python3 -c 'import boto3' 2>/dev/null || pip install -q -r requirements-test.txt
cargo build --release -q -p openkvs
disk="${BENCH_DISK_DIR:-/var/tmp}"
seconds="${BENCH_SECONDS:-600}"
input="$disk/openkvs-bench-720p-${seconds}s.mkv"
[ -s "$input" ] || scripts/make-fixtures.sh --bench "$input" "$seconds"
runs=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then runs=$1; shift; fi
