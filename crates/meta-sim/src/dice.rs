//! The seeded random source: every id, token, code, trace id and outage roll comes from one
//! ChaCha stream seeded from `SimOptions::seed`, so a run with the same seed and the same
//! requests produces the same bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const URLSAFE: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/// A deterministic random stream.
pub(crate) struct Dice {
    rng: ChaCha8Rng,
}

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A decimal string of exactly `len` characters starting with `prefix`.
    pub(crate) fn digits(&mut self, prefix: &str, len: usize) -> String {
        let mut out = String::with_capacity(len);
        out.push_str(prefix);
        while out.len() < len {
            out.push(char::from(b'0' + self.rng.random_range(0..10u8)));
        }
        out
    }

    pub(crate) fn base62(&mut self, len: usize) -> String {
        self.pick(BASE62, len)
    }

    pub(crate) fn urlsafe(&mut self, len: usize) -> String {
        self.pick(URLSAFE, len)
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())]))
            .collect()
    }

    /// A float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// An integer in `lo..hi` (`lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..hi)
        }
    }

    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.rng.fill(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Dice::new(7);
        let mut b = Dice::new(7);
        assert_eq!(a.digits("17841", 17), b.digits("17841", 17));
        assert_eq!(a.base62(40), b.base62(40));
        assert_ne!(Dice::new(8).base62(40), Dice::new(7).base62(40));
    }

    #[test]
    fn digits_have_exact_length_and_prefix() {
        let mut d = Dice::new(1);
        let id = d.digits("17841", 17);
        assert_eq!(id.len(), 17);
        assert!(id.starts_with("17841"));
        assert!(id.chars().all(|c| c.is_ascii_digit()));
    }
}
