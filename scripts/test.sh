#!/usr/bin/env bash
# The one test command: unit tests, a debug build of openkvs, then the end-to-end tests against it.
#
#   scripts/test.sh                # everything
#   scripts/test.sh -k put_media   # extra arguments go to pytest (after the cargo steps)
#
# On a fresh Debian machine (Rust toolchain, Python 3.11 + pip, Node.js + npm present) it first installs
# what is missing: ffmpeg + mkvtoolnix, and for the real-player tests chromium + GStreamer (apt), the
# pinned Python test tools (requirements-test.txt) and hls.js + playwright-core (npm ci in
# tests/e2e/players; no browser is downloaded: the tests drive Debian's /usr/bin/chromium).
# Environment: CARGO_TARGET_DIR (default target/), OPENKVS_BIN (default $CARGO_TARGET_DIR/debug/openkvs),
#   OPENKVS_LOAD_BIN (default $CARGO_TARGET_DIR/debug/openkvs-load),
# OPENKVS_SKIP_CARGO_TEST=1 to skip `cargo test`, OPENKVS_KEEP_TMP=1 to keep the e2e temp dirs,
# OPENKVS_E2E_TIMEOUT (seconds, default 1200) caps the end-to-end run. AWS's C producer SDK is built from the
# pinned tarballs by scripts/build-kvs-producer-c.sh (cached in ${OPENKVS_CACHE_DIR:-~/.cache/openkvs}); a
# preset OPENKVS_KVS_PRODUCER_DRIVER skips that build. Garage, the S3-compatible store of the object-media
# tests, is built by scripts/garage.sh build (cached there too).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n== %s ==\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else "$@"; fi; }

PY=${PYTHON:-python3}

step "tools"
apt_pkgs=()
{ command -v ffmpeg && command -v mkvinfo; } >/dev/null 2>&1 || apt_pkgs+=(ffmpeg mkvtoolnix)
command -v chromium >/dev/null 2>&1 || apt_pkgs+=(chromium)
# The PostgreSQL catalog's conformance tests start their own cluster (initdb + pg_ctl on a unix
# socket in a temp dir); no system service is started.
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_pkgs+=(postgresql-15)
# GStreamer playbin over HLS/fMP4: hlsdemux (plugins-bad), hlsdemux2 + qtdemux + souphttpsrc (plugins-good),
# h264parse/h265parse (plugins-bad), avdec_h264/h265/aac (libav), playbin (plugins-base), gst-launch (tools).
for e in playbin hlsdemux hlsdemux2 qtdemux souphttpsrc h264parse avdec_h264 avdec_aac; do
  gst-inspect-1.0 --exists "$e" 2>/dev/null || { apt_pkgs+=(gstreamer1.0-tools gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav); break; }
done
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if [[ " ${apt_pkgs[*]} " == *" postgresql-15 "* ]]; then
    # Only the binaries: Debian's package would otherwise create a "main" cluster and start it as
    # a system service; the tests start their own in a temp dir. As the official postgres images
    # do: postgresql-common first, then switch cluster creation off in its own config file.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
    as_root sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$/\1 = false/' /etc/postgresql-common/createcluster.conf
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi
if ! "$PY" - <<'PY' 2>/dev/null
import importlib.metadata as md, re, sys
want = {}
for line in open("requirements-test.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, ver = re.split(r"==", line)
        want[name.strip()] = ver.strip()
bad = [n for n, v in want.items() if md.version(n) != v]
sys.exit(1 if bad else 0)
PY
then
  pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@" -r requirements-test.txt; }
  # Debian's own python3 refuses system-wide installs (PEP 668): fall back to --break-system-packages.
  pip_install || pip_install --break-system-packages
fi
export PATH="$PATH:$("$PY" -m site --user-base)/bin"
echo "ffmpeg: $(ffmpeg -version | head -1 | cut -d' ' -f3); $("$PY" -m awscli --version 2>&1); pytest $("$PY" -m pytest --version 2>&1 | awk '{print $2}')"
(cd tests/e2e/players && npm ls --depth=0 >/dev/null 2>&1) ||
  (cd tests/e2e/players && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
echo "$(chromium --version 2>/dev/null); $(gst-launch-1.0 --version | sed -n 2p); node $(node --version)," \
  "$(cd tests/e2e/players && npm ls --depth=0 2>/dev/null | sed -n 's/.*── //p' | tr '\n' ' ')"

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
# A whole run builds every crate once; incremental state would only add gigabytes to the target
# directory (2.7 GB of the 11 GB a cold run once left). Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h "$ROOT" | sed -n 2p | awk '{print "disk: " $4 " free on " $6}'
export OPENKVS_BIN="${OPENKVS_BIN:-$TARGET/debug/openkvs}"
export OPENKVS_LOAD_BIN="${OPENKVS_LOAD_BIN:-$TARGET/debug/openkvs-load}"

step "Garage (S3-compatible store; crates/store/tests/conformance_garage.rs)"
# Built once with cargo install (several minutes), then cached; the tests start and stop their own
# with scripts/garage.sh start/stop in a temp dir.
OPENKVS_GARAGE_BIN="$(scripts/garage.sh build)"
echo "$("$OPENKVS_GARAGE_BIN" --version)"

if [ "${OPENKVS_SKIP_CARGO_TEST:-0}" != 1 ]; then
  step "cargo fmt --check, cargo clippy -D warnings"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  step "fuzz targets (fuzz/, outside the workspace): cargo fmt --check, cargo check"
  # Stable is enough to type-check them; running them needs nightly and cargo-fuzz (fuzz/README.md).
  cargo fmt --manifest-path fuzz/Cargo.toml -- --check
  cargo check --manifest-path fuzz/Cargo.toml --quiet
  step "cargo test --workspace"
  cargo test --workspace
fi

step "cargo build -p openkvs -p loadgen"
cargo build -p openkvs -p loadgen

step "AWS C producer SDK (for tests/e2e/test_producer_c.py)"
# A failed build does not stop the run: test_producer_c.py then fails with this message.
if [ -z "${OPENKVS_KVS_PRODUCER_DRIVER:-}" ]; then
  OPENKVS_KVS_PRODUCER_DRIVER="$(scripts/build-kvs-producer-c.sh)" ||
    OPENKVS_KVS_PRODUCER_DRIVER="scripts/build-kvs-producer-c.sh failed (see its output above)"
fi
export OPENKVS_KVS_PRODUCER_DRIVER
echo "$OPENKVS_KVS_PRODUCER_DRIVER"

step "fixtures"
scripts/make-fixtures.sh --check

step "end-to-end tests ($OPENKVS_BIN)"
# A hard cap so a hung server cannot eat the CI budget (SIGINT: pytest still prints its summary).
timeout -s INT -k 30 "${OPENKVS_E2E_TIMEOUT:-1200}" "$PY" -m pytest -q tests/e2e "$@"
