//! `Accept-Encoding` as RFC 9110 (§12.5.3, §12.4.2) reads it: codings and the `q` parameter
//! are case-insensitive, `q=0` refuses, `*` stands for every coding not named, `identity` is
//! acceptable unless refused by name or by `*;q=0`, and an empty field asks for no coding.
//! (The crates that parse this either keep their parser private, as tower-http does, or read
//! `Q=0` as `q=1`; this one is small and tested property by property.)

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;

/// The encodings feedkeeper stores its bodies in, in its own order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

const OURS: [(Coding, &str); 3] = [
    (Coding::Brotli, "br"),
    (Coding::Gzip, "gzip"),
    (Coding::Identity, "identity"),
];

/// A qvalue in thousandths: `0`, `0.5`, `1.000`; `None` for anything else.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The weight each of our codings gets from the client's `Accept-Encoding`, in thousandths.
fn weights(headers: &HeaderMap) -> [u16; 3] {
    let mut lines = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    if lines.peek().is_none() {
        // No field: anything goes, and no coding is the safest answer.
        return [0, 0, 1000];
    }
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    for line in lines {
        let Ok(line) = line.to_str() else { continue };
        for element in line.split(',') {
            let mut parts = element.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            if coding.is_empty() {
                continue;
            }
            let mut weight = Some(1000);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    weight = None;
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    weight = qvalue(value.trim());
                }
            }
            // An element whose weight cannot be read says nothing.
            let Some(weight) = weight else { continue };
            if coding == "*" {
                star = Some(star.map_or(weight, |s| s.max(weight)));
            } else if let Some(i) = OURS
                .iter()
                .position(|(_, name)| coding.eq_ignore_ascii_case(name))
            {
                named[i] = Some(named[i].map_or(weight, |w| w.max(weight)));
            }
        }
    }
    let mut result = [0u16; 3];
    for (i, (coding, _)) in OURS.iter().enumerate() {
        result[i] = match (named[i], star, coding) {
            (Some(w), _, _) => w,
            (None, Some(s), _) => s,
            // Not named and no `*`: identity is still acceptable, the others are not.
            (None, None, Coding::Identity) => 1,
            (None, None, _) => 0,
        };
    }
    result
}

/// The coding to answer in: the client's highest weight, our preference on ties. When the
/// client refuses every one (even `identity`), the body goes unencoded anyway (RFC 9110 lets a
/// server do so rather than answer 406).
pub fn coding(headers: &HeaderMap) -> Coding {
    let weights = weights(headers);
    let mut best = (Coding::Identity, 0u16);
    for (i, (coding, _)) in OURS.iter().enumerate() {
        if weights[i] > best.1 {
            best = (*coding, weights[i]);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn what_browsers_and_cdns_send() {
        assert_eq!(coding(&with(&["gzip, deflate, br, zstd"])), Coding::Brotli);
        assert_eq!(coding(&with(&["gzip, deflate"])), Coding::Gzip);
        assert_eq!(coding(&with(&["gzip"])), Coding::Gzip);
        assert_eq!(coding(&with(&["identity"])), Coding::Identity);
        assert_eq!(coding(&HeaderMap::new()), Coding::Identity);
        assert_eq!(coding(&with(&[""])), Coding::Identity);
    }

    #[test]
    fn weights_and_refusals_are_read_as_rfc_9110_says() {
        assert_eq!(coding(&with(&["br;q=0, gzip;q=0.5"])), Coding::Gzip);
        assert_eq!(
            coding(&with(&["br;q=0, *"])),
            Coding::Gzip,
            "br refused by name"
        );
        assert_eq!(coding(&with(&["br;Q=0, gzip"])), Coding::Gzip, "Q is q");
        assert_eq!(coding(&with(&["BR;q=1, GZIP;q=0.5"])), Coding::Brotli);
        assert_eq!(coding(&with(&["gzip;q=0.9, br;q=0.8"])), Coding::Gzip);
        assert_eq!(coding(&with(&["*"])), Coding::Brotli);
        assert_eq!(coding(&with(&["*;q=0.5, gzip"])), Coding::Gzip);
        assert_eq!(coding(&with(&["*;q=0"])), Coding::Identity, "nothing left");
        assert_eq!(coding(&with(&["br;q=0.5", "gzip;q=0.7"])), Coding::Gzip);
        assert_eq!(coding(&with(&["br ; q=0.001"])), Coding::Brotli);
        // Weights that are not qvalues make their element say nothing.
        assert_eq!(coding(&with(&["br;q=2, gzip"])), Coding::Gzip);
        assert_eq!(coding(&with(&["br;q=abc, gzip"])), Coding::Gzip);
        assert_eq!(coding(&with(&["br;q=0.0001, gzip"])), Coding::Gzip);
        assert_eq!(coding(&with(&["br;q=-1, gzip"])), Coding::Gzip);
    }

    #[test]
    fn qvalues_follow_their_grammar() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue(".5"), None);
        assert_eq!(qvalue("2"), None);
    }

    proptest! {
        #[test]
        fn a_coding_refused_by_name_is_never_chosen(
            coding_name in prop::sample::select(vec!["br", "BR", "Br", "gzip", "GZip"]),
            q in prop::sample::select(vec!["0", "0.0", "0.00", "0.000"]),
            q_name in prop::sample::select(vec!["q", "Q"]),
            others in "[a-z, ;=0-9.*]{0,40}",
        ) {
            let value = format!("{others}, {coding_name};{q_name}={q}");
            if let Ok(v) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert(ACCEPT_ENCODING, v);
                let refused = if coding_name.eq_ignore_ascii_case("br") {
                    Coding::Brotli
                } else {
                    Coding::Gzip
                };
                // Unless the same coding is named again with a weight above zero.
                if !others.to_ascii_lowercase().contains(&coding_name.to_ascii_lowercase()) {
                    prop_assert_ne!(coding(&h), refused);
                }
            }
        }

        #[test]
        fn any_header_gets_an_answer(value in "\\PC{0,80}") {
            if let Ok(v) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert(ACCEPT_ENCODING, v);
                let _ = coding(&h);
            }
        }
    }
}
