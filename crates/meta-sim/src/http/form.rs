//! Request bodies of the OAuth endpoints: `application/x-www-form-urlencoded` or
//! `multipart/form-data` (Meta's docs use `curl -F`), read into name/value pairs.

/// Reads a form body; `content_type` decides the encoding.
pub(crate) fn parse_form(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .map(str::trim)
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("boundary")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
            .filter(|b| !b.is_empty())
            .ok_or("multipart body without a boundary")?;
        return parse_multipart(&boundary, body);
    }
    Ok(url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_multipart(boundary: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut out = Vec::new();
    let mut rest = match find(body, delimiter) {
        Some(i) => &body[i + delimiter.len()..],
        None => return Err("multipart body without its boundary".into()),
    };
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        let rest_part = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or("malformed multipart part")?;
        let end = find(rest_part, delimiter).ok_or("unterminated multipart body")?;
        let part = &rest_part[..end];
        rest = &rest_part[end + delimiter.len()..];
        let (head, value) = match find(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => return Err("multipart part without headers".into()),
            },
        };
        let value = value
            .strip_suffix(b"\r\n")
            .or_else(|| value.strip_suffix(b"\n"))
            .unwrap_or(value);
        let head = String::from_utf8_lossy(head);
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| {
                l.split(';').map(str::trim).find_map(|p| {
                    p.strip_prefix("name=")
                        .map(|n| n.trim_matches('"').to_owned())
                })
            })
            .ok_or("multipart part without a name")?;
        out.push((name, String::from_utf8_lossy(value).into_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn urlencoded_and_multipart() {
        let f = parse_form("application/x-www-form-urlencoded", b"a=1&b=x+y").expect("form");
        assert_eq!(
            f,
            vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
        );
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nAQ123\r\n--XX\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nauthorization_code\r\n--XX--\r\n";
        let f = parse_form("multipart/form-data; boundary=XX", body).expect("multipart");
        assert_eq!(
            f,
            vec![
                ("code".into(), "AQ123".into()),
                ("grant_type".into(), "authorization_code".into())
            ]
        );
        assert!(parse_form("multipart/form-data", body).is_err());
        assert!(parse_form("multipart/form-data; boundary=XX", b"--XX\r\nno headers").is_err());
    }

    proptest! {
        #[test]
        fn multipart_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_form("multipart/form-data; boundary=XX", &body);
        }
    }
}
