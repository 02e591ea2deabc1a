"""A tiny, independent EBML/Matroska reader and writer for the end-to-end tests.

It is the test oracle ("how many clusters does this fixture have, and at which timecodes?") and the
builder of deliberately bad MKV bodies. It shares no code with the Rust `media` crate on purpose.

Reader: walks a whole byte string; handles unknown-size Segment and Cluster elements (a Cluster of
unknown size ends where an element that cannot be a Cluster child begins, a Segment of unknown size
ends at a new EBML header or at the end of the data), several EBML header + Segment pairs one after
another (a producer changing codec private data), and truncated input (the cut cluster is reported
with complete=False).

Run as a script for a summary: `python3 tests/e2e/mkv.py FILE...` prints one JSON line per file.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field

# Element ids (with their length-marker bits, as written in files).
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
SEEKHEAD = 0x114D9B74
INFO = 0x1549A966
TIMECODESCALE = 0x2AD7B1
TRACKS = 0x1654AE6B
TRACKENTRY = 0xAE
TRACKNUMBER = 0xD7
TRACKUID = 0x73C5
TRACKTYPE = 0x83
CODECID = 0x86
CODECPRIVATE = 0x63A2
DEFAULTDURATION = 0x23E383
VIDEO = 0xE0
PIXELWIDTH = 0xB0
PIXELHEIGHT = 0xBA
AUDIO = 0xE1
SAMPLINGFREQUENCY = 0xB5
CHANNELS = 0x9F
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
POSITION = 0xA7
PREVSIZE = 0xAB
SILENTTRACKS = 0x5854
SIMPLEBLOCK = 0xA3
BLOCKGROUP = 0xA0
BLOCK = 0xA1
REFERENCEBLOCK = 0xFB
BLOCKDURATION = 0x9B
CUES = 0x1C53BB6B
TAGS = 0x1254C367
TAG = 0x7373
SIMPLETAG = 0x67C8
TAGNAME = 0x45A3
TAGSTRING = 0x4487
CHAPTERS = 0x1043A770
ATTACHMENTS = 0x1941A469
VOID = 0xEC
CRC32 = 0xBF

CLUSTER_CHILDREN = {TIMECODE, POSITION, PREVSIZE, SILENTTRACKS, SIMPLEBLOCK, BLOCKGROUP, 0xAF, VOID, CRC32}
SEGMENT_CHILDREN = {SEEKHEAD, INFO, TRACKS, CUES, CLUSTER, TAGS, CHAPTERS, ATTACHMENTS, VOID, CRC32}


class MkvError(ValueError):
    pass


class Truncated(MkvError):
    pass


# ---------------------------------------------------------------------------------------------
# Reader


def read_id(buf: bytes, pos: int) -> tuple[int, int]:
    """Return (element id with marker bits, new position)."""
    if pos >= len(buf):
        raise Truncated("EOF in element id")
    first = buf[pos]
    if first == 0:
        raise MkvError(f"invalid element id byte 0x00 at {pos}")
    length = 1
    mask = 0x80
    while not first & mask:
        mask >>= 1
        length += 1
    if length > 4:
        raise MkvError(f"element id longer than 4 bytes at {pos}")
    if pos + length > len(buf):
        raise Truncated("EOF in element id")
    return int.from_bytes(buf[pos:pos + length], "big"), pos + length


def read_size(buf: bytes, pos: int) -> tuple[int | None, int]:
    """Return (size or None for 'unknown', new position)."""
    if pos >= len(buf):
        raise Truncated("EOF in element size")
    first = buf[pos]
    if first == 0:
        raise MkvError(f"invalid size vint at {pos}")
    length = 1
    mask = 0x80
    while not first & mask:
        mask >>= 1
        length += 1
    if pos + length > len(buf):
        raise Truncated("EOF in element size")
    value = first & (mask - 1)
    for b in buf[pos + 1:pos + length]:
        value = (value << 8) | b
    if value == (1 << (7 * length)) - 1:
        return None, pos + length
    return value, pos + length


def read_uint(data: bytes) -> int:
    return int.from_bytes(data, "big") if data else 0


def read_float(data: bytes) -> float:
    if len(data) == 4:
        return struct.unpack(">f", data)[0]
    if len(data) == 8:
        return struct.unpack(">d", data)[0]
    return 0.0


@dataclass
class Track:
    number: int
    type: int  # 1 video, 2 audio
    codec_id: str
    codec_private: bytes = b""
    default_duration_ns: int | None = None
    width: int | None = None
    height: int | None = None
    sampling_frequency: float | None = None
    channels: int | None = None


@dataclass
class Block:
    track: int
    rel_timecode: int  # signed, in timecode-scale units
    keyframe: bool
    size: int  # frame payload bytes (all laced frames)
    offset: int  # file offset of the (Simple)Block element


@dataclass
class Cluster:
    segment: int  # 0-based index of the Segment this cluster belongs to
    offset: int  # file offset of the Cluster element id
    end: int  # file offset one past the last byte of the cluster
    timecode: int  # raw Timecode value (timecode-scale units)
    timecode_scale: int  # ns per unit
    blocks: list[Block] = field(default_factory=list)
    complete: bool = True

    @property
    def timecode_ms(self) -> float:
        return self.timecode * self.timecode_scale / 1e6

    def block_ms(self, b: Block) -> float:
        return (self.timecode + b.rel_timecode) * self.timecode_scale / 1e6


@dataclass
class Segment:
    offset: int
    data_start: int
    timecode_scale: int = 1_000_000
    tracks: dict[int, Track] = field(default_factory=dict)
    header_end: int = 0  # offset of the first Cluster (end of EBML header + Info + Tracks + ...)
    ebml_offset: int = 0  # offset of the EBML header that precedes this segment
    # Segment-level Tags elements in order: (clusters of this segment before it, [(name, value)]).
    tags: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)


@dataclass
class Mkv:
    segments: list[Segment]
    clusters: list[Cluster]
    size: int

    @property
    def complete_clusters(self) -> list[Cluster]:
        return [c for c in self.clusters if c.complete]

    def frame_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for c in self.clusters:
            for b in c.blocks:
                counts[b.track] = counts.get(b.track, 0) + 1
        return counts

    def video_track(self, segment: int = 0) -> int | None:
        for t in self.segments[segment].tracks.values():
            if t.type == 1:
                return t.number
        return None

    def frame_duration_ms(self) -> float:
        """The longest default frame duration among all tracks (the tolerance unit for durations)."""
        best = 0.0
        for s in self.segments:
            for t in s.tracks.values():
                if t.default_duration_ns:
                    best = max(best, t.default_duration_ns / 1e6)
                elif t.type == 2 and t.sampling_frequency:
                    best = max(best, 1024 * 1000.0 / t.sampling_frequency)
        return best or 40.0

    def cluster_durations_ms(self) -> list[float]:
        """Per cluster: next cluster's timecode minus this one; the last: its last frame's end."""
        out = []
        for i, c in enumerate(self.clusters):
            if i + 1 < len(self.clusters):
                out.append(self.clusters[i + 1].timecode_ms - c.timecode_ms)
            else:
                end = c.timecode_ms
                seg = self.segments[c.segment]
                for b in c.blocks:
                    t = seg.tracks.get(b.track)
                    dur = 0.0
                    if t is not None and t.default_duration_ns:
                        dur = t.default_duration_ns / 1e6
                    elif t is not None and t.type == 2 and t.sampling_frequency:
                        dur = 1024 * 1000.0 / t.sampling_frequency
                    end = max(end, c.block_ms(b) + dur)
                out.append(end - c.timecode_ms)
        return out

    def duration_candidates_ms(self, i: int) -> list[float]:
        """Plausible FragmentLengthInMilliseconds values for cluster i: the distance to the next
        cluster's timecode, or the span of the cluster's own frames (from the cluster timecode or from
        its earliest frame to the end of its latest frame; all tracks or the primary track only)."""
        c = self.clusters[i]
        seg = self.segments[c.segment]
        out = []
        if i + 1 < len(self.clusters):
            out.append(self.clusters[i + 1].timecode_ms - c.timecode_ms)
        if c.blocks:
            starts, ends = [], []
            for b in c.blocks:
                t = seg.tracks.get(b.track)
                dur = 0.0
                if t is not None and t.default_duration_ns:
                    dur = t.default_duration_ns / 1e6
                elif t is not None and t.type == 2 and t.sampling_frequency:
                    dur = 1024 * 1000.0 / t.sampling_frequency
                starts.append(c.block_ms(b))
                ends.append(c.block_ms(b) + dur)
            out += [max(ends) - c.timecode_ms, max(ends) - min(starts), max(starts) - min(starts)]
            # the primary track alone (video if there is one): first frame to the end of the latest
            primary = self.video_track(c.segment) or c.blocks[0].track
            pb = [(s_, e_) for (s_, e_, b) in zip(starts, ends, c.blocks) if b.track == primary]
            if pb:
                out.append(max(e_ for _, e_ in pb) - min(s_ for s_, _ in pb))
        return out

    def track_one_span_ms(self, i: int) -> float:
        """FragmentLengthInMilliseconds as openkvs defines it (docs/choices.md#fragment-length): the span of
        cluster i's track 1 (the video, or the only audio), from its first presentation time to the end of its
        last frame: AAC frames last 1024 samples; a video frame its DefaultDuration, else the median step."""
        c = self.clusters[i]
        seg = self.segments[c.segment]
        track = min(seg.tracks)
        t = seg.tracks[track]
        times = sorted(c.block_ms(b) for b in c.blocks if b.track == track)
        if t.type == 2:
            return len(times) * 1024 * 1000.0 / t.sampling_frequency
        if t.default_duration_ns:
            step = t.default_duration_ns / 1e6
        else:
            steps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
            step = steps[len(steps) // 2]
        return times[-1] + step - times[0]

    def summary(self) -> dict:
        video = {}
        for c in self.clusters:
            vt = self.video_track(c.segment)
            first_video = next((b for b in c.blocks if b.track == vt), None) if vt else None
            video[c.offset] = first_video.keyframe if first_video else None
        return {
            "segments": len(self.segments),
            "clusters": len(self.clusters),
            "complete_clusters": len(self.complete_clusters),
            "timecodes_ms": [round(c.timecode_ms, 3) for c in self.clusters],
            "durations_ms": [round(d, 3) for d in self.cluster_durations_ms()],
            "frames_per_track": {str(k): v for k, v in sorted(self.frame_counts().items())},
            "clusters_starting_video_keyframe": sum(1 for v in video.values() if v),
            "clusters_first_block_keyframe_video": sum(
                1 for c in self.clusters
                if c.blocks and c.blocks[0].keyframe and c.blocks[0].track == self.video_track(c.segment)),
            "tracks": [
                {"segment": i, "number": t.number, "type": t.type, "codec": t.codec_id,
                 "width": t.width, "height": t.height, "rate": t.sampling_frequency, "channels": t.channels}
                for i, s in enumerate(self.segments) for t in s.tracks.values()
            ],
        }


def _children(buf: bytes, start: int, end: int):
    """Yield (id, payload_start, payload_end) for known-size children in [start, end)."""
    pos = start
    while pos < end:
        eid, p = read_id(buf, pos)
        size, p = read_size(buf, p)
        if size is None:
            raise MkvError(f"unknown size inside a sized element at {pos}")
        if p + size > end:
            raise Truncated(f"element 0x{eid:X} at {pos} overruns its parent")
        yield eid, p, p + size
        pos = p + size


def _parse_tracks(buf: bytes, start: int, end: int) -> dict[int, Track]:
    tracks = {}
    for eid, ps, pe in _children(buf, start, end):
        if eid != TRACKENTRY:
            continue
        t = Track(number=0, type=0, codec_id="")
        for cid, cs, ce in _children(buf, ps, pe):
            v = buf[cs:ce]
            if cid == TRACKNUMBER:
                t.number = read_uint(v)
            elif cid == TRACKTYPE:
                t.type = read_uint(v)
            elif cid == CODECID:
                t.codec_id = v.rstrip(b"\0").decode("ascii", "replace")
            elif cid == CODECPRIVATE:
                t.codec_private = bytes(v)
            elif cid == DEFAULTDURATION:
                t.default_duration_ns = read_uint(v)
            elif cid == VIDEO:
                for vid, vs, ve in _children(buf, cs, ce):
                    if vid == PIXELWIDTH:
                        t.width = read_uint(buf[vs:ve])
                    elif vid == PIXELHEIGHT:
                        t.height = read_uint(buf[vs:ve])
            elif cid == AUDIO:
                for aid, as_, ae in _children(buf, cs, ce):
                    if aid == SAMPLINGFREQUENCY:
                        t.sampling_frequency = read_float(buf[as_:ae])
                    elif aid == CHANNELS:
                        t.channels = read_uint(buf[as_:ae])
        tracks[t.number] = t
    return tracks


def _parse_block(buf: bytes, ps: int, pe: int, offset: int, simple: bool, keyframe_hint: bool) -> Block:
    if pe > len(buf):
        raise Truncated("block overruns the data")
    # track number is a vint (size-style, marker bit stripped)
    first = buf[ps]
    length = 1
    mask = 0x80
    while not first & mask:
        mask >>= 1
        length += 1
    track = first & (mask - 1)
    for b in buf[ps + 1:ps + length]:
        track = (track << 8) | b
    p = ps + length
    rel = struct.unpack(">h", buf[p:p + 2])[0]
    flags = buf[p + 2]
    key = bool(flags & 0x80) if simple else keyframe_hint
    return Block(track=track, rel_timecode=rel, keyframe=key, size=pe - (p + 3), offset=offset)


def parse(buf: bytes) -> Mkv:
    """Parse a whole MKV byte string (one or more EBML header + Segment pairs)."""
    buf = bytes(buf)
    segments: list[Segment] = []
    clusters: list[Cluster] = []
    pos = 0
    n = len(buf)
    ebml_offset = 0
    while pos < n:
        try:
            eid, p = read_id(buf, pos)
            size, p = read_size(buf, p)
        except Truncated:
            break
        if eid == EBML:
            if size is None:
                raise MkvError("EBML header with unknown size")
            ebml_offset = pos
            pos = p + size
            continue
        if eid != SEGMENT:
            if size is None:
                raise MkvError(f"unknown-size top-level element 0x{eid:X} at {pos}")
            pos = p + size
            continue
        seg = Segment(offset=pos, data_start=p, ebml_offset=ebml_offset)
        segments.append(seg)
        seg_end = n if size is None else min(n, p + size)
        q = p
        while q < seg_end:
            try:
                cid, cp = read_id(buf, q)
                csize, cp = read_size(buf, cp)
            except Truncated:
                q = seg_end
                break
            if cid == EBML and size is None:
                break  # a new EBML header: this unknown-size segment ended
            if cid == CLUSTER:
                if not seg.header_end:
                    seg.header_end = q
                cl, q = _parse_cluster(buf, q, cp, csize, seg_end, len(segments) - 1, seg.timecode_scale)
                clusters.append(cl)
                continue
            if csize is None:
                raise MkvError(f"unknown-size element 0x{cid:X} at {q}")
            if cp + csize > n:
                q = seg_end
                break
            if cid == INFO:
                for iid, is_, ie in _children(buf, cp, cp + csize):
                    if iid == TIMECODESCALE:
                        seg.timecode_scale = read_uint(buf[is_:ie])
            elif cid == TRACKS:
                seg.tracks = _parse_tracks(buf, cp, cp + csize)
            elif cid == TAGS:
                before = sum(1 for c in clusters if c.segment == len(segments) - 1)
                seg.tags.append((before, _parse_tags(buf, cp, cp + csize)))
            q = cp + csize
        pos = q
    return Mkv(segments=segments, clusters=clusters, size=n)


def _parse_tags(buf: bytes, start: int, end: int) -> list[tuple[str, str]]:
    """The (TagName, TagString) of every SimpleTag of every Tag, in order."""
    out = []
    for tid, ts, te in _children(buf, start, end):
        if tid != TAG:
            continue
        for sid, ss, se in _children(buf, ts, te):
            if sid != SIMPLETAG:
                continue
            name = value = ""
            for fid, fs, fe in _children(buf, ss, se):
                if fid == TAGNAME:
                    name = buf[fs:fe].decode()
                elif fid == TAGSTRING:
                    value = buf[fs:fe].decode()
            out.append((name, value))
    return out


def _parse_cluster(buf, start, payload, size, seg_end, seg_index, scale):
    end = seg_end if size is None else payload + size
    cl = Cluster(segment=seg_index, offset=start, end=end, timecode=0, timecode_scale=scale)
    if size is not None and end > len(buf):
        cl.complete = False
        end = len(buf)
    q = payload
    while q < end:
        try:
            eid, p = read_id(buf, q)
            esize, p = read_size(buf, p)
        except Truncated:
            cl.complete = False
            q = end
            break
        if size is None and eid not in CLUSTER_CHILDREN:
            break  # the next Cluster / Tags / EBML header ends an unknown-size cluster
        if esize is None:
            raise MkvError(f"unknown-size element 0x{eid:X} inside a cluster at {q}")
        if p + esize > len(buf):
            cl.complete = False
            q = end
            break
        if eid == TIMECODE:
            cl.timecode = read_uint(buf[p:p + esize])
        elif eid == SIMPLEBLOCK:
            cl.blocks.append(_parse_block(buf, p, p + esize, q, True, False))
        elif eid == BLOCKGROUP:
            block = None
            has_ref = False
            for gid, gs, ge in _children(buf, p, p + esize):
                if gid == BLOCK:
                    block = (gs, ge, q)
                elif gid == REFERENCEBLOCK:
                    has_ref = True
            if block:
                cl.blocks.append(_parse_block(buf, block[0], block[1], block[2], False, not has_ref))
        q = p + esize
    cl.end = q
    return cl, q


def parse_file(path) -> Mkv:
    with open(path, "rb") as f:
        return parse(f.read())


# ---------------------------------------------------------------------------------------------
# Writer (for building bad inputs)


def encode_id(eid: int) -> bytes:
    length = (eid.bit_length() + 7) // 8
    return eid.to_bytes(length, "big")


def encode_size(size: int | None, width: int | None = None) -> bytes:
    if size is None:
        return b"\x01\xff\xff\xff\xff\xff\xff\xff"  # 8-byte unknown size
    if width is None:
        width = 1
        while size >= (1 << (7 * width)) - 1:
            width += 1
    if size >= (1 << (7 * width)) - 1:
        raise ValueError("size does not fit")
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def element(eid: int, payload: bytes) -> bytes:
    return encode_id(eid) + encode_size(len(payload)) + payload


def uint_element(eid: int, value: int, width: int | None = None) -> bytes:
    if width is None:
        width = max(1, (value.bit_length() + 7) // 8)
    return element(eid, value.to_bytes(width, "big"))


def unknown_size(eid: int) -> bytes:
    """Start of an unknown-size element (its children follow)."""
    return encode_id(eid) + b"\xff" if eid == SEGMENT else encode_id(eid) + encode_size(None)


def simple_block(track: int, rel_timecode: int, keyframe: bool, frame: bytes) -> bytes:
    payload = encode_size(track) + struct.pack(">hB", rel_timecode, 0x80 if keyframe else 0) + frame
    return encode_id(SIMPLEBLOCK) + encode_size(len(payload), 8) + payload


def cluster(timecode: int, blocks: list[bytes], unknown: bool = True) -> bytes:
    body = uint_element(TIMECODE, timecode, 8) + b"".join(blocks)
    if unknown:
        return unknown_size(CLUSTER) + body
    return element(CLUSTER, body)


def frames_of(buf: bytes, c: Cluster) -> list[tuple[Block, bytes]]:
    """The (block, frame bytes) of every SimpleBlock or BlockGroup of an unlaced cluster."""
    out = []
    for b in c.blocks:
        eid, p = read_id(buf, b.offset)
        size, p = read_size(buf, p)
        if eid == BLOCKGROUP:
            inner = [(gs, ge) for gid, gs, ge in _children(buf, p, p + size) if gid == BLOCK]
            if len(inner) != 1:
                raise MkvError("a BlockGroup without exactly one Block")
            p, size = inner[0][0], inner[0][1] - inner[0][0]
        elif eid != SIMPLEBLOCK:
            raise MkvError("only SimpleBlocks and BlockGroups are supported here")
        out.append((b, buf[p + size - b.size:p + size]))
    return out


class Source:
    """A parsed fixture from which new MKV bodies are assembled (header reused, clusters re-emitted)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.mkv = parse(self.buf)
        seg = self.mkv.segments[0]
        if seg.header_end == 0:
            raise MkvError("fixture has no clusters")
        # EBML header + Segment (unknown size) start + everything up to the first cluster.
        self.header = self.buf[seg.ebml_offset:seg.header_end]
        self.clusters = [c for c in self.mkv.clusters if c.segment == 0]

    def cluster_frames(self, i: int) -> list[tuple[Block, bytes]]:
        return frames_of(self.buf, self.clusters[i])

    def emit_cluster(self, i: int, timecode: int | None = None, *, track_map=None, drop=None,
                     clear_key=None) -> bytes:
        """Re-emit cluster i as an unknown-size cluster (like the KVS producer SDK does)."""
        c = self.clusters[i]
        blocks = []
        for j, (b, frame) in enumerate(self.cluster_frames(i)):
            if drop and drop(j, b):
                continue
            track = track_map.get(b.track, b.track) if track_map else b.track
            key = b.keyframe and not (clear_key and clear_key(j, b))
            blocks.append(simple_block(track, b.rel_timecode, key, frame))
        return cluster(c.timecode if timecode is None else timecode, blocks)

    def looped(self, repeats: int) -> list[bytes]:
        """Clusters of the fixture repeated `repeats` times with continuing timecodes."""
        span = self.clusters[-1].timecode + round(self.mkv.cluster_durations_ms()[len(self.clusters) - 1])
        out = []
        for r in range(repeats):
            for i, c in enumerate(self.clusters):
                out.append(self.emit_cluster(i, c.timecode + r * span))
        return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        s = parse_file(path).summary()
        s["file"] = path
        print(json.dumps(s))
