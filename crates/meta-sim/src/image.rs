//! Deterministic, realistic JPEGs for the CDN: a smooth seeded picture with texture, encoded
//! at quality 90 (a few hundred KB at 1080 px), generated lazily and cached per simulator.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

use jpeg_encoder::{ColorType, Encoder};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageSpec {
    /// Cache key; also mixed into the pixel seed so different objects look different.
    pub(crate) key: String,
    pub(crate) width: u16,
    pub(crate) height: u16,
    /// The simulator seed.
    pub(crate) seed: u64,
    /// Encoded as (lossless) WebP rather than JPEG, whatever the URL's name says.
    pub(crate) webp: bool,
}

impl ImageSpec {
    fn pixel_seed(&self) -> u64 {
        // FNV-1a over the key, mixed with the simulator seed: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in self.key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Draws and encodes the image.
pub(crate) fn render_jpeg(spec: &ImageSpec) -> Result<Vec<u8>, String> {
    let (w, h) = (usize::from(spec.width), usize::from(spec.height));
    if w == 0 || h == 0 {
        return Err("empty image".into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.pixel_seed());
    let mut color = || -> [f32; 3] {
        [
            rng.random_range(20.0..235.0),
            rng.random_range(20.0..235.0),
            rng.random_range(20.0..235.0),
        ]
    };
    let (c0, c1, c2) = (color(), color(), color());
    let tilt: f32 = rng.random_range(0.2..0.8);
    // Separable waves keep the per-pixel work to a few additions.
    let (fx, fy): (f32, f32) = (rng.random_range(0.004..0.03), rng.random_range(0.004..0.03));
    let (px, py): (f32, f32) = (
        rng.random_range(0.0..std::f32::consts::TAU),
        rng.random_range(0.0..std::f32::consts::TAU),
    );
    let col_wave: Vec<f32> = (0..w).map(|x| 28.0 * (x as f32 * fx + px).sin()).collect();
    let row_wave: Vec<f32> = (0..h).map(|y| 28.0 * (y as f32 * fy + py).sin()).collect();
    // A few soft discs in the third colour give each picture a recognisable shape.
    let discs: Vec<(f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(0.0..w as f32),
                rng.random_range(0.0..h as f32),
                rng.random_range(80.0..300.0),
            )
        })
        .collect();
    let mut noise = vec![0u8; w * h];
    rng.fill_bytes(&mut noise);

    let mut pixels = vec![0u8; w * h * 3];
    let diag = (w + h) as f32;
    for y in 0..h {
        let row = &mut pixels[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            let t = ((x as f32) * tilt + (y as f32) * (1.0 - tilt)) / diag * 1.6;
            let t = t.clamp(0.0, 1.0);
            let mut disc = 0.0f32;
            for &(cx, cy, r) in &discs {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let d2 = dx * dx + dy * dy;
                if d2 < r * r {
                    disc = disc.max(1.0 - d2 / (r * r));
                }
            }
            let wave = col_wave[x] + row_wave[y];
            // Texture: a few levels of grain, like a photo's sensor noise.
            let grain = f32::from(noise[y * w + x] % 13) - 6.0;
            for c in 0..3 {
                let base = lerp(c0[c], c1[c], t);
                let v = lerp(base, c2[c], disc * 0.8) + wave + grain;
                row[x * 3 + c] = v.clamp(0.0, 255.0) as u8;
            }
        }
    }
    let mut out = Vec::with_capacity(w * h / 2);
    if spec.webp {
        image_webp::WebPEncoder::new(&mut out)
            .encode(
                &pixels,
                u32::from(spec.width),
                u32::from(spec.height),
                image_webp::ColorType::Rgb8,
            )
            .map_err(|e| e.to_string())?;
        return Ok(out);
    }
    Encoder::new(&mut out, 90)
        .encode(&pixels, spec.width, spec.height, ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A picture as the simulator's CDN serves it (a JPEG at quality 90, `width` × `height`), for
/// benchmarks and tests that want the same kind of original without a server.
pub fn sample_jpeg(seed: u64, key: &str, width: u16, height: u16) -> Result<Vec<u8>, String> {
    render_jpeg(&ImageSpec {
        key: key.to_owned(),
        width,
        height,
        seed,
        webp: false,
    })
}

/// Encoded images by key; generation is deterministic, so a race only wastes work.
#[derive(Default)]
pub(crate) struct ImageCache {
    entries: Mutex<HashMap<String, Bytes>>,
}

impl ImageCache {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Returns the cached bytes or renders them on the blocking pool.
    pub(crate) async fn fetch(&self, spec: ImageSpec) -> Result<Bytes, String> {
        if let Some(bytes) = self.get(&spec.key) {
            return Ok(bytes);
        }
        let key = spec.key.clone();
        let bytes = tokio::task::spawn_blocking(move || render_jpeg(&spec))
            .await
            .map_err(|e| e.to_string())??;
        let bytes = Bytes::from(bytes);
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, bytes.clone());
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_distinct() {
        let spec = |key: &str| ImageSpec {
            webp: false,
            key: key.into(),
            width: 64,
            height: 80,
            seed: 3,
        };
        let a = render_jpeg(&spec("a")).expect("renders");
        assert_eq!(a, render_jpeg(&spec("a")).expect("renders"));
        assert_ne!(a, render_jpeg(&spec("b")).expect("renders"));
        assert_eq!(&a[..3], &[0xFF, 0xD8, 0xFF]);
    }

    #[test]
    fn full_size_images_weigh_a_few_hundred_kb() {
        let bytes = render_jpeg(&ImageSpec {
            webp: false,
            key: "image:1".into(),
            width: 1080,
            height: 1350,
            seed: 1,
        })
        .expect("renders");
        assert!(
            (150_000..1_000_000).contains(&bytes.len()),
            "{} bytes",
            bytes.len()
        );
    }
}
