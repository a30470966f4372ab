//! Images: feedkeeper's own copy of every picture a widget shows, so a widget never depends on
//! (or sends its visitors to) Instagram's CDN, whose signed URLs die within days.
//!
//! The path of a picture: the sync records each post's, child's and profile's CDN URL as an
//! image reference (`db::images`); the `image-fetch` job of the connection [`fetch`]es each
//! original once from an allowed CDN host, judges it by its bytes ([`process::probe`]) and
//! stores it under its content's [`ImageKey`] in the [`store`]; the `image-variants` job of that
//! key makes its [`VARIANT_WIDTHS`] in WebP and JPEG, a placeholder and a colour
//! ([`process::make`]) on the low-priority [`pool`], and tells the widgets; the `image-avif` job
//! then adds AVIF, slower to make, and tells them again. Widgets then show
//! `/i/{key}/{width}.{format}`, served from memory ([`cache`]) or the store, never fetched on a
//! visitor's request.

pub mod cache;
pub mod cleanup;
pub mod fetch;
pub mod ingest;
pub mod pool;
pub mod process;
pub mod store;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// What a node needs to store and serve images, built once at start.
#[derive(Debug)]
pub struct Images {
    pub signer: Signer,
    pub store: store::ImageStore,
    pub fetcher: fetch::Fetcher,
    pub pool: pool::ImagePool,
    pub cache: cache::ImageCache,
}

impl Images {
    pub fn open(config: &crate::config::Config) -> anyhow::Result<Images> {
        Ok(Images {
            signer: Signer::new(config)?,
            store: store::ImageStore::open(config)?,
            fetcher: fetch::Fetcher::new(config)?,
            pool: pool::ImagePool::new(config.images.process_concurrency as usize),
            cache: cache::ImageCache::new(&config.images),
        })
    }
}

/// The job that fetches a connection's missing originals (subject: the connection id).
pub const FETCH_JOB: &str = "image-fetch";
/// The job that makes one image's variants (subject: the image key).
pub const VARIANTS_JOB: &str = "image-variants";
/// The job that makes one image's AVIF variants, after its others (subject: the image key).
pub const AVIF_JOB: &str = "image-avif";

/// The widths made of every image (never wider than the original: a narrower original gets
/// the standard widths below its own, and its own).
pub const VARIANT_WIDTHS: [u32; 3] = [320, 640, 1080];

/// The encodings of every variant, best first (the order of a `<picture>`'s sources).
pub const FORMATS: [Format; 3] = [Format::Avif, Format::Webp, Format::Jpeg];

/// An encoding of a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Avif,
    Webp,
    Jpeg,
}

impl Format {
    /// The file extension in the image's address.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Avif => "avif",
            Format::Webp => "webp",
            Format::Jpeg => "jpg",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Avif => "image/avif",
            Format::Webp => "image/webp",
            Format::Jpeg => "image/jpeg",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Format> {
        FORMATS.into_iter().find(|f| f.extension() == ext)
    }

    /// The name in the `formats` column and the JSON feed.
    pub fn name(self) -> &'static str {
        match self {
            Format::Avif => "avif",
            Format::Webp => "webp",
            Format::Jpeg => "jpeg",
        }
    }
}

/// The encodings made by an image's variants job (milliseconds each); AVIF, which takes far
/// longer, is made by its own job afterwards ([`AVIF_JOB`]).
pub const FIRST_PASS: [Format; 2] = [Format::Webp, Format::Jpeg];

/// Reads the `formats` column: the encodings made, in [`FORMATS`] order. NULL (AVIF not made
/// yet, or an image made before AVIF existed here) means the first pass's.
pub fn parse_formats(text: Option<&str>) -> Vec<Format> {
    let Some(text) = text else {
        return FIRST_PASS.to_vec();
    };
    let named: Vec<&str> = text.split(',').collect();
    FORMATS
        .into_iter()
        .filter(|f| named.contains(&f.name()))
        .collect()
}

/// Writes the `formats` column.
pub fn formats_text(formats: &[Format]) -> String {
    FORMATS
        .into_iter()
        .filter(|f| formats.contains(f))
        .map(Format::name)
        .collect::<Vec<_>>()
        .join(",")
}

/// An original's identity: the first 16 bytes of the SHA-256 of its bytes. The same picture
/// shown by two posts or two accounts is stored once; its addresses never change meaning, so
/// they are cached forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageKey([u8; 16]);

impl ImageKey {
    pub fn of(bytes: &[u8]) -> ImageKey {
        let digest = Sha256::digest(bytes);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        ImageKey(key)
    }

    /// Reads a key as written in an address (22 base64url characters); `None` for anything
    /// else, so a made-up address is refused before it costs a lookup.
    pub fn parse(text: &str) -> Option<ImageKey> {
        if text.len() != 22 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let key: [u8; 16] = bytes.try_into().ok()?;
        // Only the canonical spelling (the last character carries 2 spare bits).
        let parsed = ImageKey(key);
        (parsed.to_string() == text).then_some(parsed)
    }

    /// Where the original is stored.
    pub fn original_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(format!("originals/{self}"))
    }

    /// Where one variant is stored.
    pub fn variant_path(&self, width: u32, format: Format) -> object_store::path::Path {
        object_store::path::Path::from(format!("variants/{self}/{width}.{}", format.extension()))
    }
}

impl std::fmt::Display for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

/// Signs image addresses, so that only addresses feedkeeper wrote reach the store: a made-up key
/// is refused from memory. The signature is a keyed hash of the key under a key derived from
/// the token keys (every node has the same); every configured key is accepted, so addresses
/// written before a key rotation keep working while the old key is listed.
#[derive(Clone)]
pub struct Signer {
    /// One MAC per key, its key already absorbed: every image request checks a signature, and
    /// a fresh HMAC hashes its key twice before the message.
    keys: Vec<hmac::Hmac<Sha256>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

/// Characters of an address's signature (6 bytes, base64url).
const SIGNATURE_CHARS: usize = 8;

impl Signer {
    pub fn new(config: &crate::config::Config) -> anyhow::Result<Signer> {
        let keys: Vec<[u8; 32]> = config
            .security
            .keys()?
            .iter()
            .map(|k| k.hash_key("image addresses"))
            .collect();
        Ok(Signer::from_keys(keys))
    }

    pub fn from_keys(keys: Vec<[u8; 32]>) -> Signer {
        let keys = keys
            .iter()
            .map(|key| {
                <hmac::Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
            })
            .collect();
        Signer { keys }
    }

    fn signature(keyed: &hmac::Hmac<Sha256>, image: &ImageKey) -> [u8; 6] {
        let mut mac = keyed.clone();
        mac.update(&image.0);
        let full = mac.finalize().into_bytes();
        let mut short = [0u8; 6];
        short.copy_from_slice(&full[..6]);
        short
    }

    /// The address segment of an image: its key and signature.
    pub fn segment(&self, image: &ImageKey) -> String {
        let signature = self
            .keys
            .first()
            .map(|k| Signer::signature(k, image))
            .unwrap_or_default();
        format!("{image}{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The image an address segment names, if feedkeeper signed it.
    pub fn verify(&self, segment: &str) -> Option<ImageKey> {
        use subtle::ConstantTimeEq as _;
        if segment.len() != 22 + SIGNATURE_CHARS || !segment.is_ascii() {
            return None;
        }
        let (key, signature) = segment.split_at(22);
        let image = ImageKey::parse(key)?;
        let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.keys
            .iter()
            .any(|k| bool::from(Signer::signature(k, &image)[..].ct_eq(&given)))
            .then_some(image)
    }
}

use hmac::Mac;

/// The widths made of an original `width` pixels wide.
pub fn widths_for(width: u32) -> Vec<u32> {
    let mut widths: Vec<u32> = VARIANT_WIDTHS.into_iter().filter(|&w| w < width).collect();
    if width <= *VARIANT_WIDTHS.last().unwrap_or(&1080) || widths.is_empty() {
        widths.push(width.min(*VARIANT_WIDTHS.last().unwrap_or(&1080)));
    } else {
        widths.push(*VARIANT_WIDTHS.last().unwrap_or(&1080));
    }
    widths.dedup();
    widths
}

/// The height of a variant `width` wide of an original `w` × `h` (at least 1 pixel).
pub fn scaled_height(w: u32, h: u32, width: u32) -> u32 {
    if w == 0 {
        return 1;
    }
    ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w)).max(1) as u32
}

/// Whether an address's file name (`{width}.{extension}`) is one this server could have made:
/// a width up to the largest and a known format.
pub fn parse_file(file: &str) -> Option<(u32, Format)> {
    let (width, ext) = file.split_once('.')?;
    if width.is_empty() || width.len() > 4 || !width.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if width.starts_with('0') {
        return None;
    }
    let width: u32 = width.parse().ok()?;
    let largest = *VARIANT_WIDTHS.last()?;
    (width <= largest).then_some(())?;
    Some((width, Format::from_extension(ext)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn widths_never_upscale() {
        assert_eq!(widths_for(1080), vec![320, 640, 1080]);
        assert_eq!(widths_for(1440), vec![320, 640, 1080]);
        assert_eq!(widths_for(750), vec![320, 640, 750]);
        assert_eq!(widths_for(640), vec![320, 640]);
        assert_eq!(widths_for(150), vec![150]);
        assert_eq!(scaled_height(1080, 1350, 320), 400);
        assert_eq!(scaled_height(1080, 1, 320), 1);
    }

    #[test]
    fn keys_and_files_are_read_strictly() {
        let key = ImageKey::of(b"picture");
        assert_eq!(ImageKey::parse(&key.to_string()), Some(key));
        assert_eq!(ImageKey::parse("short"), None);
        assert_eq!(ImageKey::parse(&"A".repeat(23)), None);
        assert_eq!(ImageKey::parse("AAAAAAAAAAAAAAAAAAAAA+"), None);
        // Non-canonical spare bits.
        assert_eq!(ImageKey::parse("AAAAAAAAAAAAAAAAAAAAAB"), None);
        assert_eq!(parse_file("640.webp"), Some((640, Format::Webp)));
        assert_eq!(parse_file("320.jpg"), Some((320, Format::Jpeg)));
        for bad in [
            "640",
            "640.png",
            "0640.jpg",
            "2000.jpg",
            ".jpg",
            "-1.jpg",
            "640.jpg.jpg",
        ] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
        assert_eq!(
            key.variant_path(320, Format::Jpeg).as_ref(),
            format!("variants/{key}/320.jpg")
        );
    }

    #[test]
    fn only_signed_addresses_are_accepted_under_any_listed_key() {
        let image = ImageKey::of(b"picture");
        let current = Signer::from_keys(vec![[1; 32], [2; 32]]);
        let segment = current.segment(&image);
        assert_eq!(segment.len(), 30);
        assert_eq!(current.verify(&segment), Some(image));
        // Written before a rotation (the old key is still listed).
        let before = Signer::from_keys(vec![[2; 32]]).segment(&image);
        assert_eq!(current.verify(&before), Some(image));
        // Forged, or from a key no longer listed.
        assert_eq!(Signer::from_keys(vec![[3; 32]]).verify(&segment), None);
        let mut forged = segment.clone();
        forged.replace_range(29.., if segment.ends_with('A') { "B" } else { "A" });
        assert_eq!(current.verify(&forged), None);
        assert_eq!(current.verify(&image.to_string()), None);
        assert_eq!(current.verify("é".repeat(15).as_str()), None);
    }

    proptest! {
        #[test]
        fn any_text_is_refused_or_round_trips(text in ".{0,40}") {
            if let Some(key) = ImageKey::parse(&text) {
                prop_assert_eq!(key.to_string(), text.clone());
            }
            let _ = parse_file(&text);
        }
    }
}
