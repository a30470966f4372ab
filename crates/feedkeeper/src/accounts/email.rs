//! Email addresses of dashboard users: normalized once (trimmed, lower-case) and checked, so the
//! rest of the code compares plain strings. Deliverability is not checked here.

use std::fmt;

/// The longest address that fits in SMTP's forward-path (RFC 5321).
pub const MAX_LEN: usize = 254;

/// A normalized, plausible email address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims and lower-cases `input`, then checks that it looks like `name@domain.tld`. The error
    /// is a sentence to show next to the form.
    pub fn parse(input: &str) -> Result<Email, &'static str> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("Enter your email address.");
        }
        if email.chars().count() > MAX_LEN {
            return Err("That email address is too long (at most 254 characters).");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("An email address cannot contain spaces.");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("Enter an email address like name@example.com (it needs an @).");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !local.chars().any(|c| "@<>()[]\\,;:\"".contains(c));
        // Domain: dot-separated labels of letters, digits and hyphens (non-ASCII letters allowed,
        // for internationalized domains), with at least one dot.
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err("Enter an email address like name@example.com.");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace+Feeds@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace+feeds@example.com");
        assert_eq!(
            Email::parse("ADA@EXAMPLE.COM").unwrap(),
            Email::parse("ada@example.com").unwrap()
        );
    }

    #[test]
    fn plausible_addresses_are_accepted() {
        for ok in [
            "a@b.co",
            "first.last@sub.example.org",
            "x_y-z+tag@my-host.example",
            "jörg@bücher.de",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok} was refused");
        }
    }

    #[test]
    fn malformed_addresses_get_a_clear_message() {
        assert_eq!(Email::parse("   "), Err("Enter your email address."));
        assert!(Email::parse("ada").unwrap_err().contains("needs an @"));
        assert!(
            Email::parse("ada lovelace@example.com")
                .unwrap_err()
                .contains("spaces")
        );
        for bad in [
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            ".ada@example.com",
            "a..b@example.com",
            "<ada>@example.com",
            "ada@example.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).unwrap_err().contains("too long"));
    }
}
