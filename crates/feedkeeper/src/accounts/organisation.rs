//! The organisation a user shows their clients instead of a login email: checking its name and
//! its logo before they are stored.
//!
//! A logo is accepted only as PNG, JPEG, GIF or WebP, recognised by its first bytes (the type the
//! browser claims is ignored), and no larger than [`MAX_LOGO_BYTES`]. SVG is refused: it can carry
//! script, and the logo is shown on pages that clients trust.

/// The longest organisation name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;

/// A name as typed: trimmed, empty meaning none. Refused when too long or holding control
/// characters (line breaks would break mail headers later).
pub fn parse_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("The organisation name can be at most 80 characters long.");
    }
    if name.chars().any(char::is_control) {
        return Err("The organisation name cannot contain line breaks or control characters.");
    }
    Ok(Some(name.to_owned()))
}

/// The content type of an uploaded logo, judged by its bytes; or why it is refused.
pub fn logo_type(bytes: &[u8]) -> Result<&'static str, &'static str> {
    if bytes.len() > MAX_LOGO_BYTES {
        return Err("The logo is too large: it can be at most 256 KB.");
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Ok("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Ok("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Ok("image/webp")
    } else {
        Err("The logo must be a PNG, JPEG, GIF or WebP image.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            parse_name("  Studio North "),
            Ok(Some("Studio North".into()))
        );
        assert_eq!(parse_name("   "), Ok(None));
        assert!(parse_name(&"x".repeat(81)).is_err());
        assert_eq!(parse_name(&"é".repeat(80)).map(|n| n.is_some()), Ok(true));
        assert!(parse_name("Studio\nBcc: x@example.com").is_err());
    }

    #[test]
    fn logos_are_known_by_their_bytes() {
        assert_eq!(logo_type(b"\x89PNG\r\n\x1a\n...."), Ok("image/png"));
        assert_eq!(logo_type(&[0xff, 0xd8, 0xff, 0xe0]), Ok("image/jpeg"));
        assert_eq!(logo_type(b"GIF89a..."), Ok("image/gif"));
        assert_eq!(logo_type(b"RIFF\0\0\0\0WEBPVP8 "), Ok("image/webp"));
        assert!(logo_type(b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>").is_err());
        assert!(logo_type(b"").is_err());
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(MAX_LOGO_BYTES + 1, 0);
        assert!(logo_type(&big).is_err());
    }
}
