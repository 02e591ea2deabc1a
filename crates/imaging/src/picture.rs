//! The pure half of an image: decoded Y′CbCr planes → RGB → the asked size → JPEG or PNG.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PictureError {
    #[error("pixel format {0} is not supported")]
    PixelFormat(String),
    #[error("the decoded planes are smaller than a {width}x{height} picture")]
    ShortPlanes { width: u32, height: u32 },
    #[error("scaling failed: {0}")]
    Scale(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// How the chroma planes are subsampled (the decoder's pixel formats GetImages takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0: half width, half height.
    C420,
    /// 4:2:2: half width.
    C422,
    /// 4:4:4.
    C444,
    /// Luma only.
    Gray,
}

/// A decoded picture's pixel layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelLayout {
    pub chroma: Chroma,
    /// 8, or 10 / 12 with little-endian 16-bit samples.
    pub bit_depth: u8,
    /// Full-range (JPEG) levels instead of video range (16–235 luma, 16–240 chroma).
    pub full_range: bool,
}

impl PixelLayout {
    /// The layout of a libavutil pixel format by its name (`av_get_pix_fmt_name`), which is
    /// stable across FFmpeg versions where the enum values are not.
    pub fn from_ffmpeg_name(name: &str) -> Option<Self> {
        let (chroma, rest) = if let Some(r) = name.strip_prefix("yuvj") {
            (r, true)
        } else if let Some(r) = name.strip_prefix("yuv") {
            (r, false)
        } else if name == "gray" {
            return Some(PixelLayout {
                chroma: Chroma::Gray,
                bit_depth: 8,
                full_range: false,
            });
        } else {
            return None;
        };
        let (sub, depth) = match chroma {
            "420p" => (Chroma::C420, 8),
            "422p" => (Chroma::C422, 8),
            "444p" => (Chroma::C444, 8),
            "420p10le" => (Chroma::C420, 10),
            "422p10le" => (Chroma::C422, 10),
            "444p10le" => (Chroma::C444, 10),
            "420p12le" => (Chroma::C420, 12),
            "422p12le" => (Chroma::C422, 12),
            "444p12le" => (Chroma::C444, 12),
            _ => return None,
        };
        if rest && depth != 8 {
            return None;
        }
        Some(PixelLayout {
            chroma: sub,
            bit_depth: depth,
            full_range: rest,
        })
    }
}

/// Borrowed planes of a decoded picture: Y, Cb, Cr (Cb and Cr empty for [`Chroma::Gray`]).
pub struct YuvView<'a> {
    pub width: u32,
    pub height: u32,
    pub layout: PixelLayout,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

impl YuvView<'_> {
    /// Rows and bytes per row each plane must have.
    pub fn plane_shapes(width: u32, height: u32, layout: PixelLayout) -> [(usize, usize); 3] {
        let (w, h) = (width as usize, height as usize);
        let bytes = if layout.bit_depth > 8 { 2 } else { 1 };
        let (cw, ch) = match layout.chroma {
            Chroma::C420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::C422 => (w.div_ceil(2), h),
            Chroma::C444 => (w, h),
            Chroma::Gray => (0, 0),
        };
        [(h, w * bytes), (ch, cw * bytes), (ch, cw * bytes)]
    }
}

/// An 8-bit RGB picture, rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Y′CbCr → R′G′B′ with the BT.601 matrix (what FFmpeg's swscale assumes for an untagged
/// picture, so the images match `ffmpeg -pix_fmt rgb24`), chroma repeated to the luma grid
/// (no interpolation, as swscale's unscaled converters). 16.16 fixed point.
pub fn to_rgb(view: &YuvView<'_>) -> Result<Rgb, PictureError> {
    let (w, h) = (view.width as usize, view.height as usize);
    let layout = view.layout;
    let shapes = YuvView::plane_shapes(view.width, view.height, layout);
    for (i, (rows, row_bytes)) in shapes.iter().enumerate() {
        if *rows == 0 {
            continue;
        }
        let need = view.strides[i]
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(*row_bytes));
        if view.strides[i] < *row_bytes || need.is_none_or(|n| view.planes[i].len() < n) {
            return Err(PictureError::ShortPlanes {
                width: view.width,
                height: view.height,
            });
        }
    }
    let shift = u32::from(layout.bit_depth.saturating_sub(8));
    let sample = |plane: usize, row: usize, col: usize| -> i32 {
        let p = view.planes[plane];
        let at = row * view.strides[plane];
        if layout.bit_depth > 8 {
            let i = at + 2 * col;
            i32::from(u16::from_le_bytes([p[i], p[i + 1]]) >> shift)
        } else {
            i32::from(p[at + col])
        }
    };
    // Coefficients × 65536: video range scales 219 / 224 levels up to 255.
    let (ky, kr_v, kg_u, kg_v, kb_u, y_off) = if layout.full_range {
        (65536, 91881, -22554, -46802, 116130, 0)
    } else {
        (76309, 104597, -25675, -53279, 132201, 16)
    };
    let clamp = |v: i32| ((v + 32768) >> 16).clamp(0, 255) as u8;
    let mut data = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let crow = if layout.chroma == Chroma::C420 {
            row / 2
        } else {
            row
        };
        for col in 0..w {
            let y = (sample(0, row, col) - y_off) * ky;
            let (u, v) = if layout.chroma == Chroma::Gray {
                (0, 0)
            } else {
                let ccol = if layout.chroma == Chroma::C444 {
                    col
                } else {
                    col / 2
                };
                (sample(1, crow, ccol) - 128, sample(2, crow, ccol) - 128)
            };
            data.push(clamp(y + kr_v * v));
            data.push(clamp(y + kg_u * u + kg_v * v));
            data.push(clamp(y + kb_u * u));
        }
    }
    Ok(Rgb {
        width: view.width,
        height: view.height,
        data,
    })
}

/// The tallest image (the model's `HeightPixels` maximum), also for a computed height.
pub const MAX_HEIGHT: u32 = 2160;

/// The output size (docs/wire.md#getimages): both given → exactly that (the picture is
/// stretched); one of them → the other that keeps the source's aspect ratio (rounded, a width
/// within 1..=`max_width`, a height within 1..=[`MAX_HEIGHT`]); neither → the source size.
pub fn output_size(
    source: (u32, u32),
    width: Option<u32>,
    height: Option<u32>,
    max_width: u32,
) -> (u32, u32) {
    match (width, height) {
        (Some(w), Some(h)) => (w, h),
        (None, Some(h)) => {
            let (sw, sh) = (u64::from(source.0), u64::from(source.1.max(1)));
            let w = (u64::from(h) * sw + sh / 2) / sh;
            (w.clamp(1, u64::from(max_width)) as u32, h)
        }
        (Some(w), None) => {
            let (sw, sh) = (u64::from(source.0.max(1)), u64::from(source.1));
            let h = (u64::from(w) * sh + sw / 2) / sw;
            (w, h.clamp(1, u64::from(MAX_HEIGHT)) as u32)
        }
        (None, None) => source,
    }
}

/// `rgb` at `size`, with a bilinear (triangle) filter; the same picture when the size matches.
pub fn scale(rgb: Rgb, size: (u32, u32)) -> Result<Rgb, PictureError> {
    if (rgb.width, rgb.height) == size {
        return Ok(rgb);
    }
    let err = |e: &dyn std::fmt::Display| PictureError::Scale(e.to_string());
    let src = Image::from_vec_u8(rgb.width, rgb.height, rgb.data, PixelType::U8x3)
        .map_err(|e| err(&e))?;
    let mut dst = Image::new(size.0, size.1, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .map_err(|e| err(&e))?;
    Ok(Rgb {
        width: size.0,
        height: size.1,
        data: dst.into_vec(),
    })
}

/// The image file format GetImages returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// With a quality 1..=100.
    Jpeg(u8),
    Png,
}

/// Encodes `rgb` as a JPEG (baseline, 4:2:0) or PNG (8-bit RGB) file.
pub fn encode(rgb: &Rgb, format: Format) -> Result<Vec<u8>, PictureError> {
    let err = |e: &dyn std::fmt::Display| PictureError::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        Format::Jpeg(quality) => {
            let (w, h) = (
                u16::try_from(rgb.width).map_err(|e| err(&e))?,
                u16::try_from(rgb.height).map_err(|e| err(&e))?,
            );
            jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
                .encode(&rgb.data, w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| err(&e))?;
        }
        Format::Png => {
            let mut encoder = png::Encoder::new(&mut out, rgb.width, rgb.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| err(&e))?;
            writer.write_image_data(&rgb.data).map_err(|e| err(&e))?;
            writer.finish().map_err(|e| err(&e))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(chroma: Chroma, bit_depth: u8, full_range: bool) -> PixelLayout {
        PixelLayout {
            chroma,
            bit_depth,
            full_range,
        }
    }

    #[test]
    fn ffmpeg_names() {
        assert_eq!(
            PixelLayout::from_ffmpeg_name("yuv420p"),
            Some(layout(Chroma::C420, 8, false))
        );
        assert_eq!(
            PixelLayout::from_ffmpeg_name("yuvj422p"),
            Some(layout(Chroma::C422, 8, true))
        );
        assert_eq!(
            PixelLayout::from_ffmpeg_name("yuv420p10le"),
            Some(layout(Chroma::C420, 10, false))
        );
        for other in ["nv12", "yuv420p10be", "rgb24", "yuvj420p10le", ""] {
            assert_eq!(PixelLayout::from_ffmpeg_name(other), None, "{other}");
        }
    }

    #[test]
    fn video_range_levels_map_to_full_rgb() {
        // 2x2 4:2:0: black (16), white (235), mid grey, and pure BT.601 red (81, 90, 240).
        let cases: [(u8, u8, u8, [u8; 3]); 4] = [
            (16, 128, 128, [0, 0, 0]),
            (235, 128, 128, [255, 255, 255]),
            (126, 128, 128, [128, 128, 128]),
            (81, 90, 240, [255, 0, 0]),
        ];
        for (y, u, v, want) in cases {
            let planes = [vec![y; 4], vec![u], vec![v]];
            let view = YuvView {
                width: 2,
                height: 2,
                layout: layout(Chroma::C420, 8, false),
                planes: [&planes[0], &planes[1], &planes[2]],
                strides: [2, 1, 1],
            };
            let rgb = to_rgb(&view).unwrap();
            for px in rgb.data.chunks(3) {
                for (got, want) in px.iter().zip(want) {
                    assert!(
                        got.abs_diff(want) <= 1,
                        "y={y} u={u} v={v}: {px:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ten_bit_and_odd_sizes_and_strides() {
        // 3x3 4:2:0 at 10 bits, stride padded: chroma planes are 2x2.
        let y10 = (940u16).to_le_bytes(); // white at 10 bits
        let mut luma = Vec::new();
        for _ in 0..3 {
            for _ in 0..3 {
                luma.extend_from_slice(&y10);
            }
            luma.extend_from_slice(&[0xaa, 0xaa]); // padding
        }
        let c = (512u16).to_le_bytes();
        let chroma: Vec<u8> = c.iter().copied().cycle().take(8).collect();
        let view = YuvView {
            width: 3,
            height: 3,
            layout: layout(Chroma::C420, 10, false),
            planes: [&luma, &chroma, &chroma],
            strides: [8, 4, 4],
        };
        let rgb = to_rgb(&view).unwrap();
        assert_eq!(rgb.data, vec![255; 27]);
    }

    #[test]
    fn short_planes_are_an_error_not_a_panic() {
        let view = YuvView {
            width: 4,
            height: 4,
            layout: layout(Chroma::C420, 8, false),
            planes: [&[0; 15], &[0; 4], &[0; 4]],
            strides: [4, 2, 2],
        };
        assert!(matches!(
            to_rgb(&view),
            Err(PictureError::ShortPlanes { .. })
        ));
        let view = YuvView {
            width: 4,
            height: 4,
            layout: layout(Chroma::C420, 8, false),
            planes: [&[0; 16], &[0; 4], &[0; 4]],
            strides: [3, 2, 2], // a stride under the row length
        };
        assert!(to_rgb(&view).is_err());
    }

    #[test]
    fn output_size_rules() {
        assert_eq!(output_size((1280, 720), None, None, 3840), (1280, 720));
        assert_eq!(
            output_size((1280, 720), Some(10), Some(300), 3840),
            (10, 300)
        );
        assert_eq!(output_size((1280, 720), None, Some(360), 3840), (640, 360));
        assert_eq!(output_size((320, 240), None, Some(100), 3840), (133, 100));
        assert_eq!(output_size((320, 240), None, Some(1), 3840), (1, 1));
        // Width alone: the height that keeps the aspect ratio, capped at the tallest allowed.
        assert_eq!(output_size((1280, 720), Some(320), None, 3840), (320, 180));
        assert_eq!(
            output_size((100, 10000), Some(3000), None, 3840),
            (3000, MAX_HEIGHT)
        );
        // A very wide source at a large height is capped at the widest image allowed.
        assert_eq!(
            output_size((10000, 100), None, Some(2160), 3840),
            (3840, 2160)
        );
        assert_eq!(output_size((320, 240), Some(160), None, 3840), (160, 120));
    }

    #[test]
    fn scales_and_encodes() {
        let rgb = Rgb {
            width: 4,
            height: 2,
            data: [[200u8, 10, 10]; 8].concat(),
        };
        let small = scale(rgb.clone(), (2, 1)).unwrap();
        assert_eq!((small.width, small.height, small.data.len()), (2, 1, 6));
        assert_eq!(small.data, [200, 10, 10, 200, 10, 10]);
        let png = encode(&rgb, Format::Png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let jpeg = encode(&rgb, Format::Jpeg(80)).unwrap();
        assert_eq!(&jpeg[..2], [0xff, 0xd8]);
        let too_wide = Rgb {
            width: 70000,
            height: 1,
            data: vec![0; 210000],
        };
        assert!(encode(&too_wide, Format::Jpeg(80)).is_err());
    }
}
