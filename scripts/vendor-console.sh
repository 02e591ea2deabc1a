#!/usr/bin/env bash
# Re-fetches the console's third-party browser code from the npm registry at the pinned versions and checks
# it against the SHA-256 sums recorded in crates/server/console/vendor/SHA256SUMS (docs/console.md#vendored-code).
#
#   scripts/vendor-console.sh           # fetch, check, write crates/server/console/vendor/
#   scripts/vendor-console.sh --check   # fetch and check only: fails if the vendored copies differ
#
# The files are committed, so `cargo build` needs neither Node nor the network: crates/server embeds them with
# include_bytes!, and a unit test (console::tests::vendored_files_match_recorded_sums) checks the same sums.
# To upgrade: change the version here, run without --check, and update SHA256SUMS with the printed sums after
# reading the package's changelog. `npm pack` fetches the tarball and verifies the registry's integrity hash.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/crates/server/console/vendor"
# package@version  file in the tarball  name in vendor/
FILES=(
  "hls.js@1.7.4 package/dist/hls.min.mjs hls.min.mjs"
)
check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for entry in "${FILES[@]}"; do
  read -r spec inner name <<<"$entry"
  tgz="$(cd "$work" && npm pack --silent "$spec")"
  tar -xzf "$work/$tgz" -C "$work" "$inner"
  mkdir -p "$work/out"
  cp "$work/$inner" "$work/out/$name"
  rm -rf "$work/package"
done
(cd "$work/out" && sha256sum -c "$VENDOR/SHA256SUMS")
if [[ $check_only == 0 ]]; then
  cp "$work/out/"* "$VENDOR/"
  echo "vendored into $VENDOR"
fi
