#!/usr/bin/env bash
# Builds AWS's C producer SDK (producer-c v1.6.0 on PIC v1.2.0, Apache-2.0) from the pinned source tarballs,
# offline, then our test driver tests/e2e/producer_c/driver.c linked statically against it; prints the
# driver's path on stdout (everything else goes to stderr).
#
#   scripts/build-kvs-producer-c.sh            # -> ~/.cache/openkvs/kvs-producer-c-1.6.0/driver/<key>/kvs-producer-c-driver
#
# Tarballs: $OPENKVS_KVS_PRODUCER_SRC (default ../shared/third_party/kvs-producer-c next to the repository,
# i.e. the shared third_party directory), checked against its SHA256SUMS. Nothing but apt packages is ever
# downloaded: on a Debian machine without cmake or the libcurl/OpenSSL headers they are installed with apt
# (like scripts/test.sh does for ffmpeg).
#
# Cache: ${OPENKVS_CACHE_DIR:-$HOME/.cache/openkvs}/kvs-producer-c-1.6.0. The SDK install there is keyed by
# the tarballs' checksums and this script's build recipe (install/.key); the driver by the hash of driver.c,
# the SDK key and the compile command (driver/<key>/), so editing the driver rebuilds only the driver.
# A lock (flock) serialises concurrent builds into the same cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDK_VERSION=1.6.0
PIC_VERSION=1.2.0
RECIPE=1 # bump when the SDK build commands below change
SRC="${OPENKVS_KVS_PRODUCER_SRC:-$ROOT/../shared/third_party/kvs-producer-c}"
CACHE="${OPENKVS_CACHE_DIR:-$HOME/.cache/openkvs}"
K="$CACHE/kvs-producer-c-$SDK_VERSION"
DRIVER_SRC="$ROOT/tests/e2e/producer_c/driver.c"
PIC_TGZ="amazon-kinesis-video-streams-pic-$PIC_VERSION.tar.gz"
SDK_TGZ="amazon-kinesis-video-streams-producer-c-$SDK_VERSION.tar.gz"

log() { printf '[build-kvs-producer-c] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else "$@"; fi; }

# -- tools (apt only) -------------------------------------------------------------------------------
apt_pkgs=()
command -v cmake >/dev/null 2>&1 || apt_pkgs+=(cmake)
command -v make >/dev/null 2>&1 || apt_pkgs+=(make)
command -v gcc >/dev/null 2>&1 || apt_pkgs+=(gcc)
[ -f /usr/include/stdio.h ] || apt_pkgs+=(libc6-dev)
command -v pkg-config >/dev/null 2>&1 || apt_pkgs+=(pkg-config)
compgen -G '/usr/include/curl/curl.h' >/dev/null || compgen -G '/usr/include/*/curl/curl.h' >/dev/null ||
  apt_pkgs+=(libcurl4-openssl-dev)
[ -f /usr/include/openssl/ssl.h ] || apt_pkgs+=(libssl-dev)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${apt_pkgs[*]} and no apt-get to install them"
  log "installing ${apt_pkgs[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >&2
fi

[ -f "$DRIVER_SRC" ] || die "no driver source at $DRIVER_SRC"
[ -f "$SRC/SHA256SUMS" ] || die "no SDK tarballs at $SRC (set OPENKVS_KVS_PRODUCER_SRC)"
for f in "$PIC_TGZ" "$SDK_TGZ"; do
  grep -q " $f\$" "$SRC/SHA256SUMS" || die "$f is not listed in $SRC/SHA256SUMS"
done

mkdir -p "$K"
exec 9>"$K/.lock"
flock 9

sdk_key="$( { cat "$SRC/SHA256SUMS"; echo "recipe=$RECIPE"; gcc --version | head -1; cmake --version | head -1; } |
  sha256sum | cut -c1-16)"
INSTALL="$K/install"

# -- the SDK: PIC, then producer-c (only when install/.key differs) -----------------------------------
if [ "$(cat "$INSTALL/.key" 2>/dev/null)" != "$sdk_key" ]; then
  t0=$(date +%s)
  log "building the SDK into $K (key $sdk_key)"
  (cd "$SRC" && sha256sum --quiet -c SHA256SUMS) >&2 || die "SHA256SUMS check failed in $SRC"
  rm -rf "$K/src" "$K/build" "$INSTALL"
  mkdir -p "$K/src" "$K/build/pic" "$K/build/producer-c"
  tar -xzf "$SRC/$PIC_TGZ" -C "$K/src"
  tar -xzf "$SRC/$SDK_TGZ" -C "$K/src"
  jobs="$(nproc 2>/dev/null || echo 2)"
  # PIC first, so producer-c's CMake finds it with pkg-config instead of downloading it
  # (BUILD_DEPENDENCIES=OFF); producer-c's CMakeLists loses PIC's include dir, hence the explicit -I.
  (cd "$K/build/pic" &&
    cmake -DCMAKE_BUILD_TYPE=Release -DBUILD_DEPENDENCIES=OFF -DCMAKE_INSTALL_PREFIX="$INSTALL" \
      -DCMAKE_INSTALL_LIBDIR=lib "$K/src/amazon-kinesis-video-streams-pic-$PIC_VERSION" &&
    make -j"$jobs" && make install) >"$K/build/pic.log" 2>&1 ||
    { tail -40 "$K/build/pic.log" >&2; die "PIC build failed (log: $K/build/pic.log)"; }
  (cd "$K/build/producer-c" &&
    PKG_CONFIG_PATH="$INSTALL/lib/pkgconfig" cmake -DCMAKE_BUILD_TYPE=Release -DBUILD_DEPENDENCIES=OFF \
      -DBUILD_STATIC=ON -DCMAKE_C_FLAGS="-I$INSTALL/include" -DCMAKE_INSTALL_PREFIX="$INSTALL" \
      -DCMAKE_INSTALL_LIBDIR=lib "$K/src/amazon-kinesis-video-streams-producer-c-$SDK_VERSION" &&
    make -j"$jobs" && make install) >"$K/build/producer-c.log" 2>&1 ||
    { tail -40 "$K/build/producer-c.log" >&2; die "producer-c build failed (log: $K/build/producer-c.log)"; }
  for l in libcproducer.a libkvsCommonCurl.a libkvspic.a libkvspicUtils.a; do
    [ -f "$INSTALL/lib/$l" ] || die "SDK build did not install $l"
  done
  rm -rf "$K/src" "$K/build/pic" "$K/build/producer-c" # keep the logs only
  echo "$sdk_key" >"$INSTALL/.key"
  log "SDK built in $(($(date +%s) - t0)) s"
else
  log "SDK cached in $INSTALL"
fi

# -- the driver (keyed by its source, the SDK key and the compile command) ---------------------------
CC_CMD=(gcc -O2 -std=gnu11 -Wall -Werror -I"$INSTALL/include" -o OUT "$DRIVER_SRC" -L"$INSTALL/lib"
  -Wl,-Bstatic -lcproducer -lkvsCommonCurl -lkvspic -lkvspicUtils -Wl,-Bdynamic
  -lcurl -lssl -lcrypto -lpthread -ldl -lrt -lm)
# The key names the source by its content, not its path: checkouts side by side (git worktrees) share
# one driver instead of each deleting the others' as "older".
drv_key="$( { sha256sum <"$DRIVER_SRC"; echo "$sdk_key"; echo "${CC_CMD[*]/#"$DRIVER_SRC"/DRIVER_SRC}"; } |
  sha256sum | cut -c1-16)"
OUT="$K/driver/$drv_key/kvs-producer-c-driver"
if [ ! -x "$OUT" ]; then
  mkdir -p "$K/driver/$drv_key"
  cmd=("${CC_CMD[@]}")
  for i in "${!cmd[@]}"; do [ "${cmd[$i]}" = OUT ] && cmd[$i]="$OUT.tmp"; done
  "${cmd[@]}" >&2 || die "driver build failed"
  mv "$OUT.tmp" "$OUT"
  # older driver builds are of no further use
  find "$K/driver" -mindepth 1 -maxdepth 1 -type d ! -name "$drv_key" -exec rm -rf {} + 2>/dev/null || true
  log "driver built: $OUT"
fi
echo "$OUT"
