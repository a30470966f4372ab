//! Judging an original by its bytes and making its variants.
//!
//! [`probe`] reads only the header: the real format (Meta serves WebP behind `.jpg`), the size,
//! and whether the file is animated. A file too large in pixels (a decompression bomb: a tiny
//! file that decodes to gigabytes) is refused before anything is decoded. [`make`] decodes
//! once, applies the EXIF orientation, converts the colours to sRGB when the file carries
//! another profile (Display P3 from phones), and encodes every width in every format with no
//! metadata, plus a placeholder and the dominant colour. Both are plain CPU work, run on the
//! image pool.

use std::io::Cursor;

use base64::Engine as _;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder as _, ImageFormat, ImageReader};

use super::{FORMATS, Format, scaled_height, widths_for};

/// Why an original was refused. Each is final for those bytes: they are not fetched again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an image ({0})")]
    NotAnImage(String),
    #[error("{0} images are not supported")]
    Unsupported(&'static str),
    #[error("{width}×{height} pixels is more than images.max_pixels allows")]
    TooManyPixels { width: u32, height: u32 },
    #[error("animated images are not supported")]
    Animated,
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    #[error("a variant could not be encoded: {0}")]
    Encoding(String),
}

/// The bounds on one original.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_pixels: u64,
}

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub format: ImageFormat,
    /// As stored (before orientation).
    pub width: u32,
    pub height: u32,
}

impl Probe {
    /// The format's name as recorded (`jpeg`, `webp`, `png`).
    pub fn format_name(&self) -> &'static str {
        match self.format {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::WebP => "webp",
            ImageFormat::Png => "png",
            _ => "other",
        }
    }
}

/// Reads what the bytes are, without decoding the pixels.
pub fn probe(bytes: &[u8], limits: Limits) -> Result<Probe, Refused> {
    let format = sniff(bytes)?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| Refused::Corrupt(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(Refused::Corrupt("the image has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Refused::TooManyPixels { width, height });
    }
    let animated = match format {
        ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
            .map(|d| d.has_animation())
            .map_err(|e| Refused::Corrupt(e.to_string()))?,
        ImageFormat::Png => image::codecs::png::PngDecoder::new(Cursor::new(bytes))
            .and_then(|d| d.is_apng())
            .map_err(|e| Refused::Corrupt(e.to_string()))?,
        _ => false,
    };
    if animated {
        return Err(Refused::Animated);
    }
    if !is_complete(bytes, format) {
        return Err(Refused::Corrupt("the file is truncated".into()));
    }
    Ok(Probe {
        format,
        width,
        height,
    })
}

/// Whether the file ends where its format says (decoders fill a truncated picture with grey
/// rather than fail; a half-downloaded file must not become a stored image).
fn is_complete(bytes: &[u8], format: ImageFormat) -> bool {
    match format {
        // The end-of-image marker, possibly followed by padding.
        ImageFormat::Jpeg => {
            let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            bytes[..end].ends_with(&[0xFF, 0xD9])
        }
        // The RIFF header's length.
        ImageFormat::WebP => {
            bytes.len() >= 12 && {
                let declared =
                    u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
                bytes.len() >= declared.saturating_add(8)
            }
        }
        ImageFormat::Png => {
            bytes.len() >= 12 && &bytes[bytes.len() - 8..bytes.len() - 4] == b"IEND"
        }
        _ => true,
    }
}

/// The format by the file's first bytes; only JPEG, WebP and PNG are accepted.
fn sniff(bytes: &[u8]) -> Result<ImageFormat, Refused> {
    let head = &bytes[..bytes.len().min(64)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    if text.trim_start().starts_with('<') {
        return Err(Refused::NotAnImage("markup, probably an error page".into()));
    }
    // ISO media (HEIC, AVIF) carry `ftyp` at offset 4.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Err(match &bytes[8..12] {
            b"avif" | b"avis" => Refused::Unsupported("AVIF originals"),
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" => Refused::Unsupported("HEIC"),
            _ => Refused::NotAnImage("an ISO media file (a video?)".into()),
        });
    }
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Png)) => Ok(f),
        Ok(ImageFormat::Gif) => Err(Refused::Unsupported("GIF")),
        Ok(other) => Err(Refused::NotAnImage(format!("{other:?}"))),
        Err(_) => Err(Refused::NotAnImage("unknown bytes".into())),
    }
}

/// Encoding settings.
#[derive(Clone, Copy, Debug)]
pub struct Qualities {
    pub jpeg: u8,
    pub webp: u8,
    pub avif: u8,
    /// libaom's speed preset through libavif (0 slowest, 10 fastest).
    pub avif_speed: u8,
}

impl Qualities {
    /// The configured settings, clamped to what the encoders accept.
    pub fn of(config: &crate::config::ImagesConfig) -> Qualities {
        let clamp = |v: u64, min: u64, max: u64| v.clamp(min, max) as u8;
        Qualities {
            jpeg: clamp(config.jpeg_quality, 1, 100),
            webp: clamp(config.webp_quality, 1, 100),
            avif: clamp(config.avif_quality, 1, 100),
            avif_speed: clamp(config.avif_speed, 4, 10),
        }
    }
}

/// One encoded variant.
#[derive(Clone, Debug)]
pub struct Variant {
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub bytes: Vec<u8>,
}

/// Everything made of one original.
#[derive(Clone, Debug)]
pub struct Made {
    /// As shown (after orientation).
    pub width: u32,
    pub height: u32,
    pub variants: Vec<Variant>,
    /// A `data:` URI under 1 KB.
    pub placeholder: String,
    /// `#rrggbb`.
    pub color: String,
}

impl Made {
    pub fn widths(&self) -> Vec<u32> {
        let mut widths: Vec<u32> = self.variants.iter().map(|v| v.width).collect();
        widths.dedup();
        widths
    }
}

/// The size of a stored variant, read by decoding it whole (a check that it is not truncated).
pub fn variant_size(bytes: &[u8], format: Format) -> Result<(u32, u32), Refused> {
    match format {
        Format::Avif => libavif::decode(bytes)
            .map(|image| (image.width(), image.height()))
            .map_err(|e| Refused::Corrupt(e.to_string())),
        Format::Webp | Format::Jpeg => {
            let probed = probe(
                bytes,
                Limits {
                    max_pixels: 1 << 26,
                },
            )?;
            image::load_from_memory_with_format(bytes, probed.format)
                .map_err(|e| Refused::Corrupt(e.to_string()))?;
            Ok((probed.width, probed.height))
        }
    }
}

/// Decodes an original and makes every variant.
pub fn make(bytes: &[u8], limits: Limits, qualities: Qualities) -> Result<Made, Refused> {
    make_in(bytes, limits, qualities, &FORMATS)
}

/// [`make`], in the given formats only (the benchmark times each format alone).
pub fn make_in(
    bytes: &[u8],
    limits: Limits,
    qualities: Qualities,
    formats: &[Format],
) -> Result<Made, Refused> {
    let probed = probe(bytes, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), probed.format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(probed.width);
    decoder_limits.max_image_height = Some(probed.height);
    // The pixels (at most 4 bytes each, and 16-bit PNGs twice that) and the decoder's own
    // buffers.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8) + 64 * 1024 * 1024);
    reader.limits(decoder_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Refused::Corrupt(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let mut picture =
        DynamicImage::from_decoder(decoder).map_err(|e| Refused::Corrupt(e.to_string()))?;
    picture.apply_orientation(orientation);
    let mut rgb = picture.into_rgb8();
    if let Some(icc) = icc {
        to_srgb(&icc, rgb.as_mut());
    }
    let (width, height) = rgb.dimensions();
    let pixels = rgb.into_raw();
    let source = ImageRef::new(width, height, &pixels, PixelType::U8x3)
        .map_err(|e| Refused::Corrupt(e.to_string()))?;
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let mut variants = Vec::new();
    for target in widths_for(width) {
        let target_height = scaled_height(width, height, target);
        let scaled;
        let rgb: &[u8] = if target == width {
            &pixels
        } else {
            let mut dst = Image::new(target, target_height, PixelType::U8x3);
            resizer
                .resize(&source, &mut dst, &options)
                .map_err(|e| Refused::Encoding(e.to_string()))?;
            scaled = dst.into_vec();
            &scaled
        };
        for &format in formats {
            let bytes = encode(rgb, target, target_height, format, qualities)?;
            variants.push(Variant {
                width: target,
                height: target_height,
                format,
                bytes,
            });
        }
    }
    let (placeholder, color) = placeholder(&mut resizer, &source, width, height)?;
    Ok(Made {
        width,
        height,
        variants,
        placeholder,
        color,
    })
}

fn encode(
    rgb: &[u8],
    width: u32,
    height: u32,
    format: Format,
    q: Qualities,
) -> Result<Vec<u8>, Refused> {
    match format {
        Format::Jpeg => {
            let (w, h) = (
                u16::try_from(width).map_err(|_| Refused::Encoding("too wide".into()))?,
                u16::try_from(height).map_err(|_| Refused::Encoding("too tall".into()))?,
            );
            let mut out = Vec::with_capacity(rgb.len() / 8);
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, q.jpeg);
            encoder.set_progressive(true);
            encoder.set_optimized_huffman_tables(true);
            encoder
                .encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| Refused::Encoding(e.to_string()))?;
            Ok(out)
        }
        Format::Avif => {
            let pixels = libavif::RgbPixels::new(width, height, rgb)
                .map_err(|e| Refused::Encoding(e.to_string()))?;
            // 4:2:0 like the JPEG and WebP variants (photographs; half the work of 4:4:4).
            let image = pixels.to_image(libavif::YuvFormat::Yuv420);
            let mut encoder = libavif::Encoder::new();
            // One thread: the image pool decides how many encodes run at once.
            encoder
                .set_max_threads(1)
                .set_quality(q.avif)
                .set_speed(q.avif_speed);
            encoder
                .encode(&image)
                .map(|data| data.to_vec())
                .map_err(|e| Refused::Encoding(e.to_string()))
        }
        Format::Webp => webp::Encoder::from_rgb(rgb, width, height)
            .encode_simple(false, f32::from(q.webp))
            .map(|m| m.to_vec())
            .map_err(|e| Refused::Encoding(format!("{e:?}"))),
    }
}

/// Converts pixels from the colour space `icc` describes to sRGB, in place. A profile that
/// cannot be read, or that is sRGB already, leaves them as they are.
fn to_srgb(icc: &[u8], rgb: &mut [u8]) {
    let Some(source) = qcms::Profile::new_from_slice(icc, false) else {
        tracing::debug!("an image's colour profile could not be read; kept as is");
        return;
    };
    if source.is_sRGB() {
        return;
    }
    let mut srgb = qcms::Profile::new_sRGB();
    srgb.precache_output_transform();
    if let Some(transform) = qcms::Transform::new(
        &source,
        &srgb,
        qcms::DataType::RGB8,
        qcms::Intent::Perceptual,
    ) {
        transform.apply(rgb);
    }
}

/// The placeholder (a tiny WebP as a data URI, under 1 KB) and the dominant colour.
fn placeholder(
    resizer: &mut Resizer,
    source: &ImageRef<'_>,
    width: u32,
    height: u32,
) -> Result<(String, String), Refused> {
    for side in [16u32, 12, 8] {
        let (w, h) = if width >= height {
            (side, scaled_height(width, height, side).clamp(1, side * 4))
        } else {
            (scaled_height(height, width, side).clamp(1, side * 4), side)
        };
        let mut small = Image::new(w, h, PixelType::U8x3);
        resizer
            .resize(
                source,
                &mut small,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
            )
            .map_err(|e| Refused::Encoding(e.to_string()))?;
        let color = dominant_color(small.buffer());
        let webp = webp::Encoder::from_rgb(small.buffer(), w, h)
            .encode_simple(false, 30.0)
            .map_err(|e| Refused::Encoding(format!("{e:?}")))?;
        let uri = format!(
            "data:image/webp;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&*webp)
        );
        if uri.len() < 1024 {
            return Ok((uri, color));
        }
    }
    Err(Refused::Encoding("no placeholder under 1 KB".into()))
}

/// The most common colour of a few pixels (grouped coarsely), as `#rrggbb`: the mean of the
/// largest group, so a photo of a red door on a grey wall is grey, not brownish.
fn dominant_color(rgb: &[u8]) -> String {
    let mut groups = vec![(0u32, [0u64; 3]); 512];
    for px in rgb.chunks_exact(3) {
        let group = (usize::from(px[0] >> 5) << 6)
            | (usize::from(px[1] >> 5) << 3)
            | usize::from(px[2] >> 5);
        let (count, sums) = &mut groups[group];
        *count += 1;
        for c in 0..3 {
            sums[c] += u64::from(px[c]);
        }
    }
    let (count, sums) = groups
        .into_iter()
        .max_by_key(|(count, _)| *count)
        .unwrap_or((0, [0; 3]));
    if count == 0 {
        return "#808080".into();
    }
    let mean = |c: usize| (sums[c] / u64::from(count)) as u8;
    format!("#{:02x}{:02x}{:02x}", mean(0), mean(1), mean(2))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_pixels: 16 * 1024 * 1024,
    };
    const Q: Qualities = Qualities {
        jpeg: 80,
        webp: 75,
        avif: 60,
        avif_speed: 8,
    };

    /// A smooth test picture as RGB pixels.
    pub(crate) fn picture(w: u32, h: u32) -> Vec<u8> {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.extend([(x * 255 / w) as u8, (y * 255 / h) as u8, 120]);
            }
        }
        rgb
    }

    pub(crate) fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(
                &picture(u32::from(w), u32::from(h)),
                w,
                h,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        out
    }

    #[test]
    fn a_jpeg_becomes_every_width_and_format_with_a_small_placeholder() {
        let made = make(&jpeg(1080, 1350), LIMITS, Q).unwrap();
        assert_eq!((made.width, made.height), (1080, 1350));
        assert_eq!(made.widths(), vec![320, 640, 1080]);
        assert_eq!(made.variants.len(), 9);
        for v in &made.variants {
            assert_eq!(variant_size(&v.bytes, v.format), Ok((v.width, v.height)));
            if v.format == Format::Avif {
                // Originals in AVIF are refused, so `probe` does not read them.
                assert_eq!(&v.bytes[4..12], b"ftypavif");
                continue;
            }
            let probed = probe(&v.bytes, LIMITS).unwrap();
            assert_eq!((probed.width, probed.height), (v.width, v.height));
            assert_eq!(
                probed.format,
                match v.format {
                    Format::Jpeg => ImageFormat::Jpeg,
                    Format::Webp => ImageFormat::WebP,
                    Format::Avif => unreachable!(),
                }
            );
        }
        assert_eq!(made.variants[0].height, 400);
        assert!(made.placeholder.starts_with("data:image/webp;base64,"));
        assert!(made.placeholder.len() < 1024, "{}", made.placeholder.len());
        assert!(made.color.starts_with('#') && made.color.len() == 7);
    }

    #[test]
    fn webp_behind_any_name_and_small_originals_are_not_upscaled() {
        let rgb = picture(500, 300);
        let webp = webp::Encoder::from_rgb(&rgb, 500, 300)
            .encode_simple(false, 80.0)
            .unwrap()
            .to_vec();
        let made = make(&webp, LIMITS, Q).unwrap();
        assert_eq!(made.widths(), vec![320, 500]);
        assert_eq!(probe(&webp, LIMITS).unwrap().format_name(), "webp");
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        assert!(matches!(
            probe(b"<!DOCTYPE html><html>Sorry</html>", LIMITS),
            Err(Refused::NotAnImage(_))
        ));
        assert!(matches!(
            probe(b"hello world, not an image at all", LIMITS),
            Err(Refused::NotAnImage(_))
        ));
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic");
        heic.extend_from_slice(&[0; 16]);
        assert_eq!(probe(&heic, LIMITS), Err(Refused::Unsupported("HEIC")));
        let whole = jpeg(640, 480);
        let truncated = &whole[..whole.len() / 2];
        assert!(matches!(
            make(truncated, LIMITS, Q),
            Err(Refused::Corrupt(_))
        ));
        assert!(matches!(
            make(&whole[..20], LIMITS, Q),
            Err(Refused::Corrupt(_))
        ));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_decoding() {
        // 50 000 × 50 000 pixels in a few kilobytes: a PNG of one colour.
        let bomb = bomb_png(50_000, 50_000);
        assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
        assert_eq!(
            probe(&bomb, LIMITS),
            Err(Refused::TooManyPixels {
                width: 50_000,
                height: 50_000
            })
        );
    }

    /// A PNG header claiming `w` × `h`, with a little (invalid) data: enough for the header
    /// check, which is the point.
    pub(crate) fn bomb_png(w: u32, h: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend((data.len() as u32).to_be_bytes());
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend(crc32(&crc_input).to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_cmyk_jpeg_is_converted() {
        let (w, h) = (200u16, 100u16);
        let mut cmyk = Vec::new();
        for _ in 0..(u32::from(w) * u32::from(h)) {
            cmyk.extend([0u8, 200, 200, 0]);
        }
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        match make(&out, LIMITS, Q) {
            Ok(made) => assert_eq!(made.widths(), vec![200]),
            Err(refused) => panic!("a CMYK JPEG should be converted: {refused}"),
        }
    }

    #[test]
    fn the_dominant_colour_is_the_largest_group() {
        let mut rgb = Vec::new();
        for _ in 0..10 {
            rgb.extend([200u8, 10, 10]);
        }
        for _ in 0..30 {
            rgb.extend([100u8, 100, 100]);
        }
        assert_eq!(dominant_color(&rgb), "#646464");
    }
}
