//! FFmpeg's libavcodec, loaded at run time (docs/choices.md#getimages-decoder).
//!
//! Why `dlopen` and not a build-time link: `cargo build` of openkvs must keep working on a machine
//! with only the Rust toolchain (no `libavcodec-dev`, no clang for bindgen), and a server without
//! FFmpeg's libraries must still start and serve everything else; GetImages then answers with an
//! error naming the missing library. Debian's `libavcodec59` (FFmpeg 5.1) is what CI installs;
//! FFmpeg 4.x–7.x sonames are tried too.
//!
//! Only functions are called, plus the leading members of `AVPacket` (`buf`, `pts`, `dts`, `data`,
//! `size`) and `AVFrame` (`data`, `linesize`, `extended_data`, `width`, `height`, `nb_samples`,
//! `format`), whose layout has not changed since FFmpeg 1.0 (libavcodec/packet.h,
//! libavutil/frame.h): no bindgen, no struct layout that moves between releases. Codec options
//! go through the AVOptions API (`av_opt_set_int`), pixel formats are compared by name
//! (`av_get_pix_fmt_name`), as enum values moved between releases.
//!
//! Frames are matched to samples by their output rank: a decoder fed one group of pictures from
//! its key frame and then flushed outputs every picture once, in presentation order, so the n-th
//! frame out is the n-th smallest presentation time among the samples fed (docs/wire.md#getimages).
//! When fewer frames come out than went in, that match is not certain and the group fails.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use libloading::Library;
use thiserror::Error;

use crate::picture::{self, PixelLayout, Rgb, YuvView};
use crate::VideoCodec;

/// (libavcodec, libavutil) sonames, newest first: FFmpeg 7.x, 6.x, 5.x, 4.x.
const SONAMES: &[(&str, &str, u32)] = &[
    ("libavcodec.so.61", "libavutil.so.59", 61),
    ("libavcodec.so.60", "libavutil.so.58", 60),
    ("libavcodec.so.59", "libavutil.so.57", 59),
    ("libavcodec.so.58", "libavutil.so.56", 58),
];
/// `AV_CODEC_ID_H264` and `AV_CODEC_ID_HEVC` (libavcodec/codec_id.h; unchanged since they were added).
const AV_CODEC_ID_H264: c_int = 27;
const AV_CODEC_ID_HEVC: c_int = 173;
/// `AVERROR(EAGAIN)` on Linux and `AVERROR_EOF` (`-MKTAG('E','O','F',' ')`), libavutil/error.h.
const AVERROR_EAGAIN: c_int = -11;
const AVERROR_EOF: c_int = -0x2046_4F45;
/// `AV_LOG_QUIET`: the decoder's complaints become MEDIA_ERROR entries, not server stderr.
const AV_LOG_QUIET: c_int = -8;
/// `AV_INPUT_BUFFER_PADDING_SIZE` is 64 since FFmpeg 4.0: `av_new_packet` adds it itself.
/// Largest group of pictures (in Annex B bytes) one packet may carry; bounded by the store's
/// fragment size anyway.
const MAX_PACKET_BYTES: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum DecodeError {
    /// FFmpeg's libraries could not be loaded: GetImages cannot work on this server.
    #[error("{0}")]
    Unavailable(String),
    /// This group of pictures could not be decoded (a MEDIA_ERROR for its images).
    #[error("{0}")]
    Media(String),
}

/// The leading members of `AVPacket` (stable since FFmpeg 1.0).
#[repr(C)]
struct PacketHead {
    buf: *mut c_void,
    pts: i64,
    dts: i64,
    data: *mut u8,
    size: c_int,
}

/// The leading members of `AVFrame` (stable since FFmpeg 1.0; `AV_NUM_DATA_POINTERS` = 8).
#[repr(C)]
struct FrameHead {
    data: [*mut u8; 8],
    linesize: [c_int; 8],
    extended_data: *mut *mut u8,
    width: c_int,
    height: c_int,
    nb_samples: c_int,
    format: c_int,
}

type Ptr = *mut c_void;

/// The functions used, copied out of the libraries, which stay loaded for the process's life.
struct Api {
    find_decoder: unsafe extern "C" fn(c_int) -> *const c_void,
    alloc_context: unsafe extern "C" fn(*const c_void) -> Ptr,
    open: unsafe extern "C" fn(Ptr, *const c_void, *mut Ptr) -> c_int,
    send_packet: unsafe extern "C" fn(Ptr, *const c_void) -> c_int,
    receive_frame: unsafe extern "C" fn(Ptr, Ptr) -> c_int,
    free_context: unsafe extern "C" fn(*mut Ptr),
    packet_alloc: unsafe extern "C" fn() -> Ptr,
    packet_free: unsafe extern "C" fn(*mut Ptr),
    new_packet: unsafe extern "C" fn(Ptr, c_int) -> c_int,
    frame_alloc: unsafe extern "C" fn() -> Ptr,
    frame_free: unsafe extern "C" fn(*mut Ptr),
    frame_unref: unsafe extern "C" fn(Ptr),
    opt_set_int: unsafe extern "C" fn(Ptr, *const c_char, i64, c_int) -> c_int,
    pix_fmt_name: unsafe extern "C" fn(c_int) -> *const c_char,
    _libs: (Library, Library),
}

// SAFETY: the function pointers are plain C functions that are safe to call from any thread
// (libavcodec is thread-safe across distinct codec contexts); the libraries are never unloaded.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// Loads the libraries once; the same answer for the process's life.
fn api() -> Result<&'static Api, DecodeError> {
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| DecodeError::Unavailable(e.clone()))
}

/// Whether the decoder can be loaded, and if not why (for the server's start-up log).
pub fn availability() -> Result<(), String> {
    api().map(|_| ()).map_err(|e| e.to_string())
}

fn load() -> Result<Api, String> {
    let mut tried = Vec::new();
    for &(codec_name, util_name, major) in SONAMES {
        // SAFETY: loading FFmpeg's libraries runs their (side-effect-free) initialisers only.
        let libs = unsafe { (Library::new(util_name), Library::new(codec_name)) };
        match libs {
            (Ok(util), Ok(codec)) => return bind(util, codec, major),
            _ => tried.push(codec_name),
        }
    }
    Err(format!(
        "GetImages needs FFmpeg's libavcodec and libavutil, and this server could not load any of \
         {} (on Debian and Ubuntu: apt-get install libavcodec59, or the package of your FFmpeg \
         version; no restart of other work is needed but openkvs must be restarted)",
        tried.join(", ")
    ))
}

fn bind(util: Library, codec: Library, major: u32) -> Result<Api, String> {
    macro_rules! sym {
        ($lib:expr, $name:literal) => {
            // SAFETY: the symbol's C signature is the one declared in the `Api` field it fills
            // (libavcodec/avcodec.h, packet.h; libavutil/frame.h, opt.h, pixdesc.h).
            *unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("{} lacks {}: {e}", stringify!($lib), $name))?
        };
    }
    let version: unsafe extern "C" fn() -> u32 = sym!(codec, "avcodec_version");
    // SAFETY: avcodec_version takes nothing and returns the packed version.
    let found = unsafe { version() } >> 16;
    if found != major {
        return Err(format!(
            "libavcodec reports major version {found}, its soname {major}"
        ));
    }
    let api = Api {
        find_decoder: sym!(codec, "avcodec_find_decoder"),
        alloc_context: sym!(codec, "avcodec_alloc_context3"),
        open: sym!(codec, "avcodec_open2"),
        send_packet: sym!(codec, "avcodec_send_packet"),
        receive_frame: sym!(codec, "avcodec_receive_frame"),
        free_context: sym!(codec, "avcodec_free_context"),
        packet_alloc: sym!(codec, "av_packet_alloc"),
        packet_free: sym!(codec, "av_packet_free"),
        new_packet: sym!(codec, "av_new_packet"),
        frame_alloc: sym!(util, "av_frame_alloc"),
        frame_free: sym!(util, "av_frame_free"),
        frame_unref: sym!(util, "av_frame_unref"),
        opt_set_int: sym!(util, "av_opt_set_int"),
        pix_fmt_name: sym!(util, "av_get_pix_fmt_name"),
        _libs: (util, codec),
    };
    let log_level: unsafe extern "C" fn(c_int) = sym!(api._libs.0, "av_log_set_level");
    // SAFETY: sets a global integer.
    unsafe { log_level(AV_LOG_QUIET) };
    Ok(api)
}

/// One open decoder with its packet and frame; freed on drop (also on an early return).
struct Session<'a> {
    api: &'a Api,
    ctx: Ptr,
    packet: Ptr,
    frame: Ptr,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or was allocated by the matching alloc function; the
        // free functions accept null and set the pointer to null.
        unsafe {
            (self.api.frame_free)(&mut self.frame);
            (self.api.packet_free)(&mut self.packet);
            (self.api.free_context)(&mut self.ctx);
        }
    }
}

/// A decoded frame's output rank and its picture (or why it could not be converted).
pub type DecodedFrame = (usize, Result<Rgb, DecodeError>);

/// Decodes one group of pictures: `packets` are the Annex B access units in decode order, the
/// first a key frame with the parameter sets in front. Returns the frames whose output rank
/// (presentation order, 0-based) is in `wanted`, as RGB, in rank order.
///
/// One thread per decoder (`threads` = 1): the caller bounds how many decode at once
/// (docs/choices.md#getimages-decoder), so a decoder must not fan out itself.
pub fn decode_group(
    codec: VideoCodec,
    packets: &[Vec<u8>],
    wanted: &BTreeSet<usize>,
) -> Result<Vec<DecodedFrame>, DecodeError> {
    let api = api()?;
    let media = |m: &str| DecodeError::Media(m.to_string());
    let id = match codec {
        VideoCodec::H264 => AV_CODEC_ID_H264,
        VideoCodec::H265 => AV_CODEC_ID_HEVC,
    };
    // SAFETY: plain calls with valid arguments; every pointer is checked for null before use
    // and owned by `Session`, which frees it.
    unsafe {
        let decoder = (api.find_decoder)(id);
        if decoder.is_null() {
            return Err(DecodeError::Unavailable(format!(
                "this libavcodec has no {codec:?} decoder"
            )));
        }
        let mut s = Session {
            api,
            ctx: (api.alloc_context)(decoder),
            packet: (api.packet_alloc)(),
            frame: (api.frame_alloc)(),
        };
        if s.ctx.is_null() || s.packet.is_null() || s.frame.is_null() {
            return Err(media("out of memory allocating the decoder"));
        }
        (api.opt_set_int)(s.ctx, c"threads".as_ptr(), 1, 0);
        if (api.open)(s.ctx, decoder, std::ptr::null_mut()) < 0 {
            return Err(media("the decoder could not be opened"));
        }
        let mut out = Vec::new();
        let mut rank = 0usize;
        for (index, p) in packets.iter().enumerate() {
            if p.len() > MAX_PACKET_BYTES {
                return Err(media("an access unit is too large"));
            }
            (api.frame_unref)(s.frame); // no-op on a fresh frame
            let size = c_int::try_from(p.len()).map_err(|_| media("access unit too large"))?;
            if (api.new_packet)(s.packet, size) < 0 {
                return Err(media("out of memory for a packet"));
            }
            let head = s.packet.cast::<PacketHead>();
            if (*head).data.is_null() || (*head).size != size {
                return Err(media("the packet buffer is not what was asked"));
            }
            std::ptr::copy_nonoverlapping(p.as_ptr(), (*head).data, p.len());
            let sent = (api.send_packet)(s.ctx, s.packet);
            // The packet is referenced by the decoder (or refused): ours is emptied for reuse.
            let mut packet = s.packet;
            (api.packet_free)(&mut packet);
            s.packet = (api.packet_alloc)();
            if s.packet.is_null() {
                return Err(media("out of memory allocating a packet"));
            }
            // Every frame is drained after each packet, so the decoder never answers EAGAIN
            // here; any refusal (also EAGAIN) would break the rank ↔ sample match.
            if sent < 0 {
                return Err(media(&format!("the decoder refused access unit {index}")));
            }
            drain(&mut s, wanted, &mut rank, &mut out)?;
        }
        // Flush: a null packet enters draining mode; every delayed picture comes out.
        if (api.send_packet)(s.ctx, std::ptr::null()) < 0 {
            return Err(media("the decoder could not be flushed"));
        }
        drain(&mut s, wanted, &mut rank, &mut out)?;
        if rank != packets.len() {
            return Err(media(&format!(
                "{} pictures decoded from {} access units",
                rank,
                packets.len()
            )));
        }
        Ok(out)
    }
}

/// Receives every frame ready, converting those `wanted`.
///
/// SAFETY: `s` holds an open decoder and a frame.
unsafe fn drain(
    s: &mut Session<'_>,
    wanted: &BTreeSet<usize>,
    rank: &mut usize,
    out: &mut Vec<DecodedFrame>,
) -> Result<(), DecodeError> {
    loop {
        let got = (s.api.receive_frame)(s.ctx, s.frame);
        if got == AVERROR_EAGAIN || got == AVERROR_EOF {
            return Ok(());
        }
        if got < 0 {
            return Err(DecodeError::Media(format!(
                "decoding picture {rank} failed ({got})"
            )));
        }
        if wanted.contains(rank) {
            out.push((*rank, convert(s.api, &*s.frame.cast::<FrameHead>())));
        }
        *rank += 1;
        (s.api.frame_unref)(s.frame);
    }
}

/// The frame's planes as RGB.
///
/// SAFETY: `f` is a frame the decoder just returned: its planes hold `linesize × rows` bytes.
unsafe fn convert(api: &Api, f: &FrameHead) -> Result<Rgb, DecodeError> {
    let media = |m: String| DecodeError::Media(m);
    let name_ptr = (api.pix_fmt_name)(f.format);
    let name = if name_ptr.is_null() {
        format!("#{}", f.format)
    } else {
        CStr::from_ptr(name_ptr).to_string_lossy().into_owned()
    };
    let layout = PixelLayout::from_ffmpeg_name(&name)
        .ok_or_else(|| media(format!("pixel format {name} is not supported")))?;
    let (w, h) = (
        u32::try_from(f.width).map_err(|_| media("negative width".into()))?,
        u32::try_from(f.height).map_err(|_| media("negative height".into()))?,
    );
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(media(format!("picture size {w}x{h} is out of range")));
    }
    let shapes = YuvView::plane_shapes(w, h, layout);
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for (i, &(rows, row_bytes)) in shapes.iter().enumerate() {
        if rows == 0 {
            continue;
        }
        let stride = usize::try_from(f.linesize[i]).map_err(|_| media("negative stride".into()))?;
        if stride < row_bytes || f.data[i].is_null() {
            return Err(media(format!("plane {i} is smaller than a row")));
        }
        planes[i] = std::slice::from_raw_parts(f.data[i], stride * (rows - 1) + row_bytes);
        strides[i] = stride;
    }
    picture::to_rgb(&YuvView {
        width: w,
        height: h,
        layout,
        planes,
        strides,
    })
    .map_err(|e| media(e.to_string()))
}
