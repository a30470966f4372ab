//! Where to send a user after log-in: the `next` parameter, limited to paths on this site so a
//! link like `/login?next=https://evil.example` cannot turn our log-in page into a springboard.

/// Where a user lands after log-in or sign-up when no (usable) `next` was given.
pub const DEFAULT_AFTER_LOGIN: &str = "/connections";

/// Longer `next` values are ignored (no page of ours needs one).
const MAX_NEXT_LEN: usize = 2048;

/// `next` if it is a path on this site, else `None`. Accepted: starts with exactly one `/`, and
/// has no backslash (browsers read `/\evil.example` as `//evil.example`) and no control
/// characters or spaces.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.len() <= MAX_NEXT_LEN
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// The target after log-in: a safe `next`, else [`DEFAULT_AFTER_LOGIN`].
pub fn after_login(next: Option<&str>) -> &str {
    next.and_then(safe_next).unwrap_or(DEFAULT_AFTER_LOGIN)
}

/// `/login`, with `?next=` when there is a safe place to come back to.
pub fn login_url(next: Option<&str>) -> String {
    with_next("/login", next)
}

/// `path` with `?next=<next>` appended when `next` is safe (and not the default).
pub fn with_next(path: &str, next: Option<&str>) -> String {
    match next.and_then(safe_next) {
        Some(next) if next != DEFAULT_AFTER_LOGIN => {
            let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            format!("{path}?next={encoded}")
        }
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed() {
        for ok in [
            "/",
            "/connections",
            "/links?page=2",
            "/a/b#frag",
            "/%2F%2Fevil",
        ] {
            assert_eq!(safe_next(ok), Some(ok), "{ok} refused");
        }
        for bad in [
            "",
            "connections",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/ok\n//evil",
            "/tab\there",
            " /leading-space",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?} accepted");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), None);
    }

    #[test]
    fn after_login_falls_back_to_the_dashboard() {
        assert_eq!(after_login(None), "/connections");
        assert_eq!(after_login(Some("//evil.example")), "/connections");
        assert_eq!(after_login(Some("/account")), "/account");
    }

    #[test]
    fn login_urls_carry_an_encoded_next() {
        assert_eq!(login_url(None), "/login");
        assert_eq!(login_url(Some("/connections")), "/login");
        assert_eq!(
            login_url(Some("/links?a=1&b=2")),
            "/login?next=%2Flinks%3Fa%3D1%26b%3D2"
        );
        assert_eq!(login_url(Some("https://evil.example")), "/login");
    }
}
