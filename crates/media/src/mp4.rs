//! Progressive (non-fragmented) MP4 (ISO/IEC 14496-12) for GetClip (docs/wire.md#getclip): the
//! header of a whole file whose media bytes are the stored fragments' bytes, referenced, not
//! copied.
//!
//! [`clip_header`] writes everything before the first media byte:
//! ```text
//! ftyp                      major isom, compatible isom iso2 mp41
//! moov                      (before mdat: a player starts while the file downloads)
//! ├── mvhd                  movie timescale 1000, duration, next_track_ID
//! └── trak                  one per track, track_ID 1, 2, … in the order given
//!     ├── tkhd              duration (movie timescale), width/height (video)
//!     ├── edts
//!     │   └── elst          [empty edit: the track starts later than the clip] + the media edit
//!     └── mdia
//!         ├── mdhd          the track's timescale, duration
//!         ├── hdlr          vide | soun
//!         └── minf
//!             ├── vmhd | smhd
//!             ├── dinf / dref / url
//!             └── stbl
//!                 ├── stsd  avc1 + avcC | hvc1 + hvcC | mp4a + esds (as fMP4's, crate::isobmff)
//!                 ├── stts  run-length sample durations
//!                 ├── ctts  composition offsets (only when one is non-zero)
//!                 ├── stss  sync samples (video)
//!                 ├── stsz  every sample's size
//!                 ├── stsc  samples per chunk, run-length
//!                 └── stco | co64   chunk offsets (co64 once an offset passes 4 GiB)
//! mdat                      header only (8 bytes, or 16 with a 64-bit largesize)
//! ```
//! The body of the file is that header followed by each chunk's stored bytes in the order of the
//! [`ClipChunk`]s, so its length ([`ClipHeader::file_len`]) is known before any media byte is read.
//!
//! One chunk is one stored fragment's samples of one track (contiguous as stored). Decode times
//! run on from chunk to chunk: a chunk's last sample lasts until the next chunk of its track
//! begins (its `base_decode_time`) when that is later, so a gap between fragments holds the last
//! picture and tracks stay in step; otherwise (the fragments overlap) it keeps its own duration.
//! Each track's edit list starts its presentation at its first presented sample (decode times
//! precede presentation times by the B-frame delay, `media::timeline`) and, with an empty edit,
//! at its place relative to the earliest track, so audio and video start where they were
//! recorded relative to each other.

use crate::codec::CodecError;
use crate::fmp4::InitTrack;
use crate::isobmff::{
    check_codec, mdat_header_len, put_mdat_header, put_u32, put_u64, write_box, write_ftyp,
    write_full_box, write_mvhd, write_trak, CodecOrRange, Edit, OutOfRange, TrakHeader,
};
use crate::timeline::TrackTiming;
use thiserror::Error;

/// Bumped whenever the bytes written for the same inputs change. The golden digests in
/// `tests/mp4.rs` are pinned to this version.
pub const FORMAT_VERSION: u32 = 1;

/// `mvhd` timescale and the unit of `tkhd` / `elst` durations: milliseconds, as ffmpeg writes.
pub const MOVIE_TIMESCALE: u32 = 1000;

/// `ftyp` major_brand (ISO/IEC 14496-12 §4.3, the base brand).
const MAJOR_BRAND: &[u8; 4] = b"isom";
/// `ftyp` minor_version (as ffmpeg writes).
const MINOR_VERSION: u32 = 512;
/// `ftyp` compatible_brands: `iso2` (edit lists, §E.3), `mp41`.
const COMPATIBLE_BRANDS: [&[u8; 4]; 3] = [b"isom", b"iso2", b"mp41"];
/// `elst` media_time of an empty edit (§8.6.6).
const EMPTY_EDIT: i64 = -1;
/// Nanoseconds per second.
const NS_PER_SECOND: u128 = 1_000_000_000;

/// A track of the clip: its codec and its media timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClipTrack<'a> {
    /// The codec configuration (the same description the fMP4 init segment is made from).
    pub codec: InitTrack<'a>,
    /// Ticks per second of the track's sample timing (90 000 for video, the AAC sample rate).
    pub timescale: u32,
}

/// One chunk of the `mdat`: one stored fragment's contiguous samples of one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipChunk {
    /// Index of the track in the `tracks` given to [`clip_header`].
    pub track: usize,
    /// The samples (sizes, durations, composition offsets, sync flags) and the decode time of
    /// the first, from `media::timeline` at the track's timescale.
    pub timing: TrackTiming,
}

impl ClipChunk {
    /// Bytes of this chunk in the `mdat`.
    pub fn len(&self) -> u64 {
        self.timing.data_len()
    }

    /// Whether the chunk holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The generated head of a clip file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipHeader {
    /// `ftyp`, `moov` and the `mdat` header.
    pub bytes: Vec<u8>,
    /// Bytes of media after the header: every chunk's length, summed.
    pub media_len: u64,
}

impl ClipHeader {
    /// Length of the whole file: the header, then the chunks.
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64 + self.media_len
    }
}

/// Why a clip header cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// The codec private data of a track does not parse.
    #[error("track {track}: {source}")]
    Codec {
        /// Index of the track.
        track: usize,
        /// What is wrong with it.
        source: CodecError,
    },
    /// A value does not fit its field.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// No track at all.
    #[error("no tracks")]
    NoTracks,
    /// A track with no chunk (every track of a file needs samples).
    #[error("track {0} has no samples")]
    EmptyTrack(usize),
    /// A chunk names a track that is not in the list.
    #[error("chunk {chunk} names track {track}, which does not exist")]
    UnknownTrack {
        /// Index of the chunk.
        chunk: usize,
        /// The track index it names.
        track: usize,
    },
    /// A chunk without samples, or timed at another timescale than its track's.
    #[error("chunk {0} has no samples or another timescale than its track")]
    BadChunk(usize),
}

impl From<OutOfRange> for Mp4Error {
    fn from(e: OutOfRange) -> Self {
        Mp4Error::OutOfRange(e.0)
    }
}

/// What one track's `trak` is made of, computed before any byte is written.
struct TrackPlan<'a> {
    track: &'a ClipTrack<'a>,
    picture_size: (u16, u16),
    /// Indices of the track's chunks, in file order.
    chunks: Vec<usize>,
    /// `stts` entries: (sample_count, sample_delta).
    stts: Vec<(u32, u32)>,
    /// `ctts` entries: (sample_count, sample_offset); empty when every offset is zero.
    ctts: Vec<(u32, i32)>,
    /// 1-based numbers of the sync samples.
    stss: Vec<u32>,
    /// `stsc` entries: (first_chunk, samples_per_chunk), 1-based chunks.
    stsc: Vec<(u32, u32)>,
    sample_count: u32,
    /// Sum of the sample durations (`mdhd` duration).
    media_duration: u64,
    /// First presentation time on the track's media timeline (the media edit's media_time).
    media_time: i64,
    /// First presentation time in absolute ns (places the track against the others).
    start_ns: u128,
}

/// Appends a run-length entry: extends the last run when `value` repeats.
fn push_run<T: PartialEq + Copy>(runs: &mut Vec<(u32, T)>, value: T) -> Result<(), OutOfRange> {
    match runs.last_mut() {
        Some((count, last)) if *last == value => {
            *count = count.checked_add(1).ok_or(OutOfRange("sample count"))?;
        }
        _ => runs.push((1, value)),
    }
    Ok(())
}

fn plan_track<'a>(
    index: usize,
    track: &'a ClipTrack<'a>,
    chunks: &[ClipChunk],
) -> Result<TrackPlan<'a>, Mp4Error> {
    let picture_size = check_codec(&track.codec).map_err(|e| match e {
        CodecOrRange::Codec(source) => Mp4Error::Codec {
            track: index,
            source,
        },
        CodecOrRange::Range(e) => e.into(),
    })?;
    let mine: Vec<usize> = (0..chunks.len())
        .filter(|&c| chunks[c].track == index)
        .collect();
    let first = *mine.first().ok_or(Mp4Error::EmptyTrack(index))?;
    let mut plan = TrackPlan {
        track,
        picture_size,
        chunks: Vec::with_capacity(mine.len()),
        stts: Vec::new(),
        ctts: Vec::new(),
        stss: Vec::new(),
        stsc: Vec::new(),
        sample_count: 0,
        media_duration: 0,
        media_time: i64::MAX,
        start_ns: 0,
    };
    let mut any_offset = false;
    let mut offsets: Vec<(u32, i32)> = Vec::new();
    for (position, &c) in mine.iter().enumerate() {
        let timing = &chunks[c].timing;
        let next_start = mine
            .get(position + 1)
            .map(|&n| chunks[n].timing.base_decode_time);
        let last = timing
            .samples
            .len()
            .checked_sub(1)
            .ok_or(Mp4Error::BadChunk(c))?;
        for (i, sample) in timing.samples.iter().enumerate() {
            let mut duration = sample.duration;
            if i == last {
                // Run on to the next chunk's first decode time when it is later (a gap holds the
                // last sample); an overlap keeps the sample's own duration.
                if let Some(gap) = next_start
                    .and_then(|next| next.checked_sub(sample.dts))
                    .filter(|&d| d > 0)
                    .and_then(|d| u32::try_from(d).ok())
                {
                    duration = gap;
                }
            }
            let presentation =
                i128::from(plan.media_duration) + i128::from(sample.composition_offset);
            let presentation =
                i64::try_from(presentation).map_err(|_| OutOfRange("presentation time"))?;
            plan.media_time = plan.media_time.min(presentation);
            plan.sample_count = plan
                .sample_count
                .checked_add(1)
                .ok_or(OutOfRange("sample count"))?;
            if sample.sync {
                plan.stss.push(plan.sample_count);
            }
            push_run(&mut plan.stts, duration)?;
            push_run(&mut offsets, sample.composition_offset)?;
            any_offset |= sample.composition_offset != 0;
            plan.media_duration = plan
                .media_duration
                .checked_add(u64::from(duration))
                .ok_or(OutOfRange("track duration"))?;
        }
        let chunk_number = u32::try_from(position + 1).map_err(|_| OutOfRange("chunk count"))?;
        let per_chunk =
            u32::try_from(timing.samples.len()).map_err(|_| OutOfRange("samples per chunk"))?;
        if plan.stsc.last().is_none_or(|&(_, n)| n != per_chunk) {
            plan.stsc.push((chunk_number, per_chunk));
        }
        plan.chunks.push(c);
    }
    if any_offset {
        plan.ctts = offsets;
    }
    // A presentation before the first decode time (negative offsets) cannot be edited in: the
    // edit starts at the media's zero then.
    plan.media_time = plan.media_time.max(0);
    let first_timing = &chunks[first].timing;
    let start_ticks = u128::from(first_timing.base_decode_time) + plan.media_time as u128;
    plan.start_ns = start_ticks * NS_PER_SECOND / u128::from(track.timescale);
    Ok(plan)
}

/// `ticks` of `timescale` in the movie timescale, rounded to the nearest.
fn to_movie(ticks: u128, per_second: u128) -> Result<u64, OutOfRange> {
    let movie = (ticks * u128::from(MOVIE_TIMESCALE) + per_second / 2) / per_second;
    u64::try_from(movie).map_err(|_| OutOfRange("movie duration"))
}

/// The `ftyp`, `moov` and `mdat` header of a clip made of `chunks` (in `mdat` order) of `tracks`.
///
/// Each chunk's timing must be at its track's timescale and hold at least one sample; every
/// track needs a chunk. The caller then sends each chunk's stored bytes, in order: the file is
/// [`ClipHeader::file_len`] bytes.
pub fn clip_header(tracks: &[ClipTrack<'_>], chunks: &[ClipChunk]) -> Result<ClipHeader, Mp4Error> {
    if tracks.is_empty() {
        return Err(Mp4Error::NoTracks);
    }
    if u32::try_from(tracks.len()).is_err() {
        return Err(Mp4Error::OutOfRange("track count"));
    }
    for (c, chunk) in chunks.iter().enumerate() {
        let track = tracks.get(chunk.track).ok_or(Mp4Error::UnknownTrack {
            chunk: c,
            track: chunk.track,
        })?;
        if track.timescale == 0 {
            return Err(Mp4Error::OutOfRange("timescale"));
        }
        if chunk.timing.samples.is_empty() || chunk.timing.timescale != track.timescale {
            return Err(Mp4Error::BadChunk(c));
        }
    }
    let plans = tracks
        .iter()
        .enumerate()
        .map(|(i, t)| plan_track(i, t, chunks))
        .collect::<Result<Vec<_>, _>>()?;
    let media_len = chunks
        .iter()
        .try_fold(0u64, |sum, c| sum.checked_add(c.len()))
        .ok_or(Mp4Error::OutOfRange("media length"))?;

    // 32-bit chunk offsets unless one would pass 4 GiB; the header's length depends only on
    // that choice, so at most one rewrite.
    if let Some(narrow) = write_header(&plans, chunks, media_len, false)? {
        return Ok(narrow);
    }
    write_header(&plans, chunks, media_len, true)?.ok_or(Mp4Error::OutOfRange("chunk_offset"))
}

/// Writes the header with placeholder chunk offsets, then patches them in; `None` when an offset
/// does not fit 32 bits and `wide_offsets` is false.
fn write_header(
    plans: &[TrackPlan<'_>],
    chunks: &[ClipChunk],
    media_len: u64,
    wide_offsets: bool,
) -> Result<Option<ClipHeader>, Mp4Error> {
    let clip_start_ns = plans.iter().map(|p| p.start_ns).min().unwrap_or(0);
    let mut edits = Vec::with_capacity(plans.len());
    let mut movie_duration = 0u64;
    for plan in plans {
        let delay = to_movie(plan.start_ns - clip_start_ns, NS_PER_SECOND)?;
        let span = to_movie(
            u128::from(plan.media_duration),
            u128::from(plan.track.timescale),
        )?;
        let mut list = Vec::with_capacity(2);
        if delay > 0 {
            list.push(Edit {
                segment_duration: delay,
                media_time: EMPTY_EDIT,
            });
        }
        list.push(Edit {
            segment_duration: span,
            media_time: plan.media_time,
        });
        let track_duration = delay
            .checked_add(span)
            .ok_or(OutOfRange("track duration"))?;
        movie_duration = movie_duration.max(track_duration);
        edits.push((list, track_duration));
    }

    let tables_len: usize = plans
        .iter()
        .map(|p| {
            p.stts.len() * 8
                + p.ctts.len() * 8
                + p.stss.len() * 4
                + p.stsc.len() * 12
                + p.sample_count as usize * 4
                + p.chunks.len() * if wide_offsets { 8 } else { 4 }
        })
        .sum();
    let mut buf = Vec::with_capacity(1024 + tables_len);
    // Where each chunk's offset goes: (byte position in `buf`, chunk index).
    let mut offset_slots: Vec<(usize, usize)> = Vec::with_capacity(chunks.len());
    write_ftyp(&mut buf, MAJOR_BRAND, MINOR_VERSION, &COMPATIBLE_BRANDS)?;
    write_box(&mut buf, b"moov", |buf| {
        let next_track_id =
            u32::try_from(plans.len() + 1).map_err(|_| OutOfRange("track count"))?;
        write_mvhd(buf, MOVIE_TIMESCALE, movie_duration, next_track_id)?;
        for (i, (plan, (list, track_duration))) in plans.iter().zip(&edits).enumerate() {
            let header = TrakHeader {
                track_id: u32::try_from(i + 1).map_err(|_| OutOfRange("track_ID"))?,
                codec: &plan.track.codec,
                picture_size: plan.picture_size,
                timescale: plan.track.timescale,
                movie_duration: *track_duration,
                media_duration: plan.media_duration,
                edits: list,
            };
            write_trak(buf, &header, |buf| {
                write_sample_tables(buf, plan, chunks, wide_offsets, &mut offset_slots)
            })?;
        }
        Ok(())
    })?;
    let header_len = buf.len() as u64 + mdat_header_len(media_len);
    put_mdat_header(&mut buf, media_len);
    debug_assert_eq!(buf.len() as u64, header_len);

    // Patch the chunk offsets: the chunks follow the header in the order given.
    let mut chunk_offsets = Vec::with_capacity(chunks.len());
    let mut at = header_len;
    for chunk in chunks {
        chunk_offsets.push(at);
        at += chunk.len();
    }
    for (position, chunk) in offset_slots {
        let offset = chunk_offsets[chunk];
        if wide_offsets {
            buf[position..position + 8].copy_from_slice(&offset.to_be_bytes());
        } else {
            let Ok(offset) = u32::try_from(offset) else {
                return Ok(None);
            };
            buf[position..position + 4].copy_from_slice(&offset.to_be_bytes());
        }
    }
    Ok(Some(ClipHeader {
        bytes: buf,
        media_len,
    }))
}

/// `stts`, `ctts`, `stss`, `stsz`, `stsc` and `stco`/`co64` of one track (§8.6.1.2, §8.6.1.3,
/// §8.6.2, §8.7.3.2, §8.7.4, §8.7.5), recording where each chunk offset goes.
fn write_sample_tables(
    buf: &mut Vec<u8>,
    plan: &TrackPlan<'_>,
    chunks: &[ClipChunk],
    wide_offsets: bool,
    offset_slots: &mut Vec<(usize, usize)>,
) -> Result<(), OutOfRange> {
    let count = |n: usize| u32::try_from(n).map_err(|_| OutOfRange("entry_count"));
    write_full_box(buf, b"stts", 0, 0, |buf| {
        put_u32(buf, count(plan.stts.len())?); // entry_count
        for &(samples, delta) in &plan.stts {
            put_u32(buf, samples); // sample_count
            put_u32(buf, delta); // sample_delta
        }
        Ok(())
    })?;
    if !plan.ctts.is_empty() {
        // Version 1 (signed offsets) only when an offset is negative.
        let version = u8::from(plan.ctts.iter().any(|&(_, o)| o < 0));
        write_full_box(buf, b"ctts", version, 0, |buf| {
            put_u32(buf, count(plan.ctts.len())?); // entry_count
            for &(samples, offset) in &plan.ctts {
                put_u32(buf, samples); // sample_count
                put_u32(buf, offset as u32); // sample_offset: u32 in version 0, i32 in 1
            }
            Ok(())
        })?;
    }
    if !matches!(plan.track.codec, InitTrack::Aac { .. }) {
        write_full_box(buf, b"stss", 0, 0, |buf| {
            put_u32(buf, count(plan.stss.len())?); // entry_count
            for &number in &plan.stss {
                put_u32(buf, number); // sample_number
            }
            Ok(())
        })?;
    }
    write_full_box(buf, b"stsz", 0, 0, |buf| {
        put_u32(buf, 0); // sample_size: 0, every sample's size follows
        put_u32(buf, plan.sample_count); // sample_count
        for &c in &plan.chunks {
            for sample in &chunks[c].timing.samples {
                put_u32(buf, sample.size); // entry_size
            }
        }
        Ok(())
    })?;
    write_full_box(buf, b"stsc", 0, 0, |buf| {
        put_u32(buf, count(plan.stsc.len())?); // entry_count
        for &(first_chunk, samples_per_chunk) in &plan.stsc {
            put_u32(buf, first_chunk); // first_chunk
            put_u32(buf, samples_per_chunk); // samples_per_chunk
            put_u32(buf, 1); // sample_description_index
        }
        Ok(())
    })?;
    let (offset_box, width): (&[u8; 4], usize) = if wide_offsets {
        (b"co64", 8)
    } else {
        (b"stco", 4)
    };
    write_full_box(buf, offset_box, 0, 0, |buf| {
        put_u32(buf, count(plan.chunks.len())?); // entry_count
        for &c in &plan.chunks {
            offset_slots.push((buf.len(), c));
            if width == 8 {
                put_u64(buf, 0); // chunk_offset (patched)
            } else {
                put_u32(buf, 0); // chunk_offset (patched)
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_extend_only_on_repeats() {
        let mut runs = Vec::new();
        for v in [3000u32, 3000, 3001, 3000] {
            push_run(&mut runs, v).unwrap();
        }
        assert_eq!(runs, vec![(2, 3000), (1, 3001), (1, 3000)]);
        let mut full = vec![(u32::MAX, 7u32)];
        assert_eq!(push_run(&mut full, 7), Err(OutOfRange("sample count")));
    }

    #[test]
    fn movie_time_rounds_to_nearest_millisecond() {
        assert_eq!(to_movie(90_000, 90_000), Ok(1000));
        assert_eq!(to_movie(1_499_999, NS_PER_SECOND), Ok(1));
        assert_eq!(to_movie(1_500_000, NS_PER_SECOND), Ok(2));
        assert!(to_movie(u128::MAX / 1000, 1).is_err());
    }
}
