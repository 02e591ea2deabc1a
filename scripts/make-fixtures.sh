#!/usr/bin/env bash
# Make the small MKV test fixtures in tests/fixtures (committed), or one large benchmark input.
#
#   scripts/make-fixtures.sh                 # (re)write tests/fixtures/*.mkv and tests/fixtures/README.md
#   scripts/make-fixtures.sh --check         # only verify the committed fixtures (cluster/key-frame checks)
#   scripts/make-fixtures.sh --bench OUT.mkv [SECONDS]
#                                            # a 10-minute (default) 1280x720 30 fps H.264 + AAC MKV for ingest
#                                            # benchmarks; not committed
#
# Needs ffmpeg (libx264, libx265, aac) and mkvtoolnix (mkvinfo); python3 for the cross-check.
# Every video cluster starts at a key frame: a fixed GOP (-g/-keyint_min = fps, no scene cut) and the
# matroska muxer's cluster time/size limits set very high, so it only cuts clusters at key frames. The
# output goes through a pipe so the Segment has an unknown size, as live producers send it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/tests/fixtures"
ORACLE="$ROOT/tests/e2e/mkv.py"

need() { command -v "$1" >/dev/null 2>&1 || { echo "make-fixtures: $1 is missing (apt-get install -y ffmpeg mkvtoolnix)" >&2; exit 2; }; }
need ffmpeg
need ffprobe

# Bit-exact, single-threaded encodes so re-running the script gives the same bytes on the same ffmpeg.
EXACT=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1)
# Cut clusters only at key frames (the time limit is in ms, the size limit in bytes).
KEYCUT=(-cluster_time_limit 1000000 -cluster_size_limit 1000000000)
FF=(ffmpeg -hide_banner -loglevel error -nostdin -y)
# AAC encoders delay their output by 1024 samples of priming; shift the input by as much so the first
# AAC frame starts at 0 like the video (48 kHz => asetpts in 1/48000 units).
AAC=(-c:a aac -b:a 96k -ac 2)
AUDIO_SHIFT="asetpts=PTS+1024,aformat=channel_layouts=stereo"
X264=(-c:v libx264 -threads 1 -preset veryfast -profile:v high -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0)

video_src() { # size rate
  echo "testsrc2=size=$1:rate=$2"
}

make_h264_aac() { # out bframes seconds size [extra args...]
  local out=$1 bf=$2 secs=$3 size=$4; shift 4
  "${FF[@]}" -f lavfi -i "$(video_src "$size" 30)" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$secs" -map 0:v -map 1:a -af "$AUDIO_SHIFT" \
    "${X264[@]}" -bf "$bf" "${AAC[@]}" "${EXACT[@]}" "${KEYCUT[@]}" "$@" -f matroska pipe:1 > "$out"
}

make_all() {
  mkdir -p "$OUT"
  local tmp; tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' RETURN

  echo "h264_aac.mkv"
  make_h264_aac "$OUT/h264_aac.mkv" 0 4 320x240

  echo "h264_aac_bframes.mkv"
  make_h264_aac "$OUT/h264_aac_bframes.mkv" 2 4 320x240

  echo "h265.mkv"
  "${FF[@]}" -f lavfi -i "$(video_src 320x240 30)" -t 4 -map 0:v \
    -c:v libx265 -preset veryfast -pix_fmt yuv420p \
    -x265-params "log-level=error:pools=1:frame-threads=1:keyint=30:min-keyint=30:scenecut=0:open-gop=0:bframes=0" \
    "${EXACT[@]}" "${KEYCUT[@]}" -f matroska pipe:1 > "$OUT/h265.mkv"

  echo "aac_only.mkv"
  # No video: the matroska muxer cuts clusters by time only. It cuts when a frame is more than
  # -cluster_time_limit ms after the cluster start and (holding one audio frame back) opens the new cluster
  # with the frame before it: 1030 gives clusters of exactly 48 AAC frames = 1024 ms.
  "${FF[@]}" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 4 -map 0:a -af "$AUDIO_SHIFT" \
    "${AAC[@]}" "${EXACT[@]}" -cluster_time_limit 1030 -cluster_size_limit 1000000000 \
    -f matroska pipe:1 > "$OUT/aac_only.mkv"

  echo "h264_res_change.mkv"
  # Two encodes (320x240 then 640x360), 2 s each, concatenated as two EBML header + Segment pairs in one
  # file; the second starts at 2 s (-output_ts_offset) so timecodes continue across the change.
  make_h264_aac "$tmp/part1.mkv" 0 2 320x240
  make_h264_aac "$tmp/part2.mkv" 0 2 640x360 -output_ts_offset 2
  cat "$tmp/part1.mkv" "$tmp/part2.mkv" > "$OUT/h264_res_change.mkv"
}

# Print "clusters key_clusters" as mkvinfo sees them (first video block of each cluster is a key frame).
mkvinfo_counts() { # file video_track(0 = none)
  mkvinfo -v -v "$1" | awk -v vt="$2" '
    /\+ Cluster at/ { clusters++; seen = 0 }
    /Simple block:/ && clusters > 0 && !seen {
      n = $0; sub(/.*track number /, "", n); sub(/,.*/, "", n)
      if (vt == 0 || n == vt) { seen = 1; if ($0 ~ /Simple block: key/) key++ }
    }
    END { printf "%d %d\n", clusters, key }'
}

ffprobe_frames() { # file -> "v:N a:M"
  local v a
  v=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" 2>/dev/null | awk '{s+=$1} END {print s+0}')
  a=$(ffprobe -v error -select_streams a -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" 2>/dev/null | awk '{s+=$1} END {print s+0}')
  echo "${v:-0} ${a:-0}"
}

check_all() {
  local fail=0 f name summary clusters keyc vt
  for f in "$OUT"/*.mkv; do
    name=$(basename "$f")
    summary=$(python3 "$ORACLE" "$f")
    clusters=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clusters"])' "$summary")
    keyc=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["clusters_starting_video_keyframe"])' "$summary")
    vt=$(python3 -c 'import json,sys; t=[x for x in json.loads(sys.argv[1])["tracks"] if x["type"]==1]; print(t[0]["number"] if t else 0)' "$summary")
    if [ "$vt" != 0 ] && [ "$keyc" != "$clusters" ]; then
      echo "FAIL $name: only $keyc of $clusters clusters start with a video key frame (oracle)" >&2; fail=1
    fi
    if command -v mkvinfo >/dev/null 2>&1 && [ "$name" != h264_res_change.mkv ]; then
      # mkvinfo reads only the first Segment of a file, so the two-segment fixture is checked per part below.
      read -r mc mk < <(mkvinfo_counts "$f" "$vt")
      if [ "$mc" != "$clusters" ]; then echo "FAIL $name: mkvinfo sees $mc clusters, oracle $clusters" >&2; fail=1; fi
      if [ "$vt" != 0 ] && [ "$mk" != "$mc" ]; then echo "FAIL $name: mkvinfo: $mk of $mc clusters start with a key frame" >&2; fail=1; fi
    fi
    echo "ok $name: $clusters clusters, frames $(ffprobe_frames "$f") (video audio, ffprobe)"
  done
  return $fail
}

write_readme() {
  python3 - "$OUT" "$ORACLE" <<'PY'
import json, os, subprocess, sys
out, oracle = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(oracle))
import mkv
how = {
 "h264_aac.mkv": "H.264 High (libx264 veryfast, `-bf 0`, GOP 30 = 1 s) 320x240 30 fps + AAC-LC 48 kHz stereo 96 kb/s (440 Hz sine), 4 s",
 "h264_aac_bframes.mkv": "as h264_aac.mkv but `-bf 2` (B-frames: blocks are stored in decode order, their timecodes are presentation times and go back and forth inside a GOP)",
 "h265.mkv": "H.265 Main (libx265 veryfast, closed GOP 30, no B-frames) 320x240 30 fps, video only, 4 s",
 "aac_only.mkv": "AAC-LC 48 kHz stereo only, 4 s; with no video the muxer cuts clusters by time (`-cluster_time_limit 1030` gives 48 AAC frames = 1024 ms per cluster; the last one is shorter); every AAC block has the key flag",
 "h264_res_change.mkv": "two H.264+AAC encodes, 2 s at 320x240 then 2 s at 640x360 (`-output_ts_offset 2`), concatenated: two EBML header + Segment pairs in one file, new Tracks/CodecPrivate in the second, timecodes continue (a producer changing codec private data inside one PutMedia body)",
}
rows = []
for name in sorted(os.listdir(out)):
    if not name.endswith(".mkv"):
        continue
    path = os.path.join(out, name)
    m = mkv.parse_file(path)
    s = m.summary()
    frames = ", ".join(
        f"{'video' if any(t['type']==1 and t['number']==int(k) for t in s['tracks']) else 'audio'} {v}"
        for k, v in s["frames_per_track"].items())
    sizes = sorted({f"{t['width']}x{t['height']}" for t in s["tracks"] if t["type"] == 1})
    rows.append(f"| `{name}` | {os.path.getsize(path)} | {s['segments']} | {s['clusters']} | {frames} | "
                f"{', '.join(str(int(t)) for t in s['timecodes_ms'])} | {', '.join(sizes) or '-'} | {how.get(name, '')} |")
ver = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
text = f"""# Test fixtures

Small MKV files for unit and end-to-end tests, made by `scripts/make-fixtures.sh` (ffmpeg synthetic
sources `testsrc2` and `sine`, bit-exact single-threaded encodes, matroska muxer writing to a pipe so
the Segment has an **unknown size** as live producers send it). Re-run the script to regenerate them;
`scripts/make-fixtures.sh --check` re-verifies them with `mkvinfo`, `ffprobe` and the independent EBML
walker in `tests/e2e/mkv.py` (`python3 tests/e2e/mkv.py tests/fixtures/*.mkv` prints a JSON summary).

Made with: `{ver}`.

| file | bytes | segments | clusters | frames (blocks) | cluster timecodes (ms) | video size | how |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + """

Layout notes (what a PutMedia parser sees):

- TimecodeScale is 1,000,000 (ms). Track 1 is video (or the only audio track), track 2 AAC. CodecPrivate
  is avcC / hvcC / AudioSpecificConfig. Each cluster has a **known size** (ffmpeg buffers a cluster
  before writing it); the KVS producer SDK uses unknown-size clusters instead; `tests/e2e/mkv.py`
  re-emits fixture clusters that way for the bad-input tests.
- Video clusters start at a key frame: the muxer is told never to cut by time or size, and the GOP is
  fixed at 30 frames (1 s) with scene-cut detection off, so one cluster = one GOP = one KVS fragment.
- With audio and video, ffmpeg's matroska muxer opens every cluster after the first with the **AAC frame
  that spans the key frame's time** (the WebM rule "the cluster contains the audio for the key frame's
  timecode"), so the Cluster Timecode is that audio frame's timestamp, up to 21 ms before the key frame
  (e.g. 981 ms for the key frame at 1000 ms), and the first *video* block of each cluster is the key
  frame. `ffmpeg ... -f matroska - | openkvs put-media -` produces exactly this layout.
- The first cluster starts at 0 with the video key frame first (the AAC priming delay is compensated).
- Before the clusters there is a SeekHead, a Void, Info (with a Duration), Tracks and a Tags element
  with ENCODER tags; no Cues (the output was not seekable).
- `h264_aac_bframes.mkv`: blocks are in decode order; within a GOP the block timecodes are presentation
  times (non-monotonic). The muxer interleaves by decode time, so each cluster after the first opens with
  audio ~83 ms before its key frame (cluster timecodes 917, 1920, 2923) while the previous cluster's last
  B-frames reach ~967 ms: audio of fragment N+1 overlaps video of fragment N in time. Cluster timecodes
  still strictly increase; only they can be required to (ErrorId 4004).
- Fragment durations depend on the definition: next cluster timecode minus this one (981, 1003, ...) or
  the span of this cluster's frames (first block to the end of the last); the e2e tests accept either
  within one frame duration.
- `h264_res_change.mkv`: after the first Segment's last cluster comes a second EBML header and an
  unknown-size Segment with its own Info/Tracks (640x360, new avcC) and clusters continuing at 2000 ms.
  `mkvinfo` shows only the first Segment; `ffprobe` reads both (with a warning about the unknown-length
  Segment) and reports the first Segment's resolution.
"""
with open(os.path.join(out, "README.md"), "w") as f:
    f.write(text)
PY
}

make_bench() { # out [seconds]
  local out=$1 secs=${2:-600}
  mkdir -p "$(dirname "$out")"
  echo "writing a ${secs}s 1280x720 30 fps H.264 + AAC MKV to $out (takes a few minutes on 2 cores)" >&2
  "${FF[@]}" -f lavfi -i "$(video_src 1280x720 30)" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$secs" -map 0:v -map 1:a -af "$AUDIO_SHIFT" \
    -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -b:v 2500k -maxrate 2500k -bufsize 5000k \
    -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 "${AAC[@]}" "${EXACT[@]}" "${KEYCUT[@]}" -f matroska pipe:1 > "$out"
  ls -l "$out" >&2
}

case "${1:-}" in
  --bench)
    [ $# -ge 2 ] || { echo "usage: $0 --bench OUT.mkv [SECONDS]" >&2; exit 2; }
    make_bench "$2" "${3:-600}" ;;
  --check)
    check_all ;;
  "")
    make_all
    write_readme
    check_all ;;
  *)
    echo "usage: $0 [--check | --bench OUT.mkv [SECONDS]]" >&2; exit 2 ;;
esac
