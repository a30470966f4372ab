//! Making variants: feedkeeper's pipeline (`images::process`) against libvips doing the same
//! work in-process (pyvips), per format, on the same originals, one thread each.
//!
//! Run: `scripts/bench-images.sh` (needs pyvips: `apt-get install libvips42` and
//! `pip install pyvips`). This binary writes the originals (`--write DIR`), or times
//! feedkeeper on them (`--time DIR`) and prints the median milliseconds per image for each
//! format as JSON; the script times libvips on the same files and prints the table.

use std::time::Instant;

use feedkeeper::images::Format;
use feedkeeper::images::process::{Limits, Qualities, make_in};

/// Originals: the simulator's pictures at Instagram's sizes (square, portrait, landscape).
const SIZES: [(u16, u16); 3] = [(1080, 1080), (1080, 1350), (1080, 566)];
const PER_SIZE: usize = 4;
const ROUNDS: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = args.iter().position(|a| a == "--write" || a == "--time");
    let Some(flag) = flag else {
        anyhow::bail!("usage: images --write DIR | --time DIR");
    };
    let dir = std::path::PathBuf::from(args.get(flag + 1).ok_or_else(|| anyhow::anyhow!("DIR"))?);
    if args[flag] == "--write" {
        std::fs::create_dir_all(&dir)?;
        for (i, (w, h)) in SIZES.iter().enumerate() {
            for n in 0..PER_SIZE {
                let jpeg = meta_sim::sample_jpeg(7, &format!("bench:{i}:{n}"), *w, *h)
                    .map_err(anyhow::Error::msg)?;
                std::fs::write(dir.join(format!("{i}-{n}.jpg")), jpeg)?;
            }
        }
        return Ok(());
    }
    let mut originals = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jpg") {
            originals.push(std::fs::read(path)?);
        }
    }
    anyhow::ensure!(!originals.is_empty(), "no originals in {}", dir.display());
    let limits = Limits {
        max_pixels: 16 * 1024 * 1024,
    };
    let defaults = feedkeeper::config::ImagesConfig::default();
    let mut q = Qualities::of(&defaults);
    // `AVIF_SPEED=N` times another rav1e preset (the table in docs/benchmarks.md).
    if let Some(speed) = std::env::var("AVIF_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        q.avif_speed = speed;
    }
    let mut result = serde_json::Map::new();
    for (name, format) in [
        ("jpeg", Format::Jpeg),
        ("webp", Format::Webp),
        ("avif", Format::Avif),
    ] {
        let mut rounds = Vec::new();
        let mut bytes = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            bytes = 0;
            for original in &originals {
                let made = make_in(original, limits, q, &[format]).map_err(anyhow::Error::msg)?;
                bytes += made.variants.iter().map(|v| v.bytes.len()).sum::<usize>();
            }
            rounds.push(started.elapsed().as_secs_f64() * 1000.0 / originals.len() as f64);
        }
        rounds.sort_by(f64::total_cmp);
        result.insert(
            name.into(),
            serde_json::json!({"ms_per_image": rounds[ROUNDS / 2], "bytes_per_image": bytes / originals.len()}),
        );
    }
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}
