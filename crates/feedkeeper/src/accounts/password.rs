//! Passwords: the rules for a new one, and argon2id hashing and checking.
//!
//! Hashing is deliberately slow (tens of milliseconds, ~19 MiB), so it runs on the blocking pool,
//! never on the async workers. Plain passwords live only in the request that carries them: they
//! are never logged, stored, or put back into a re-rendered form.

use std::sync::{LazyLock, OnceLock};

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Fewer characters than this is refused.
pub const MIN_CHARS: usize = 10;
/// More characters than this is refused (argon2 would hash anything, but a megabyte "password"
/// is an attack on our CPU, not a password).
pub const MAX_CHARS: usize = 1024;

/// Checks a new password against the rules; the error is a sentence to show next to the form.
/// Passwords are taken as typed: no trimming, any characters.
pub fn check_new(password: &str) -> Result<(), &'static str> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err("Use a password of at least 10 characters.");
    }
    if chars > MAX_CHARS {
        return Err("Use a password of at most 1024 characters.");
    }
    Ok(())
}

/// argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane), which are the
/// crate's defaults; spelled out so an upgrade of the crate cannot change them silently.
fn hasher() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid"),
    )
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// A hash of nothing anyone knows, checked when a log-in names an unknown email so that the reply
/// takes as long as for a known one (the timing must not tell whether an account exists).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        hash_blocking(&hex::encode(random)).unwrap_or_default()
    })
}

/// Runs one hash or check on the blocking pool, at most two per core at a time: each holds
/// ~19 MiB, and a flood of log-in attempts must queue rather than exhaust memory.
async fn run_limited<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    static PERMITS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores * 2)
    });
    let _permit = PERMITS
        .acquire()
        .await
        .context("the password hashing semaphore is closed")?;
    tokio::task::spawn_blocking(work)
        .await
        .context("the password hashing task failed")
}

/// Hashes a password into an argon2id PHC string (salted), on the blocking pool.
pub async fn hash(password: String) -> anyhow::Result<String> {
    run_limited(move || hash_blocking(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

/// Whether `password` matches `stored` (a PHC string). With `stored = None` (no such user) a
/// dummy hash is checked instead, which costs the same time and never matches.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    run_limited(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let matches = match PasswordHash::new(&stored) {
            Ok(parsed) => hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(e) => {
                // A stored hash we cannot read is a data problem, not a wrong password: log it
                // (without the hash) and refuse the log-in.
                if known {
                    tracing::error!(error = %e, "a stored password hash is not a valid PHC string");
                }
                false
            }
        };
        known && matches
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_must_be_10_to_1024_characters() {
        assert!(check_new("short").unwrap_err().contains("at least 10"));
        assert!(check_new("123456789").is_err());
        assert!(check_new("1234567890").is_ok());
        // Characters, not bytes: ten two-byte letters are enough, nine are not.
        assert!(check_new(&"é".repeat(10)).is_ok());
        assert!(check_new(&"é".repeat(9)).is_err());
        assert!(check_new(&"x".repeat(1024)).is_ok());
        assert!(
            check_new(&"x".repeat(1025))
                .unwrap_err()
                .contains("at most 1024")
        );
        // Spaces count as typed.
        assert!(check_new("          ").is_ok());
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify_only_the_right_password() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(!a.contains("correct horse"));
        assert!(
            verify("correct horse battery".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("correct horse batterY".into(), Some(a))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_users_and_unreadable_hashes_never_match() {
        assert!(!verify("anything at all".into(), None).await.unwrap());
        assert!(
            !verify("anything at all".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
        assert!(dummy_hash().starts_with("$argon2id$"));
    }
}
