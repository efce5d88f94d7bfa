//! The train/validation split: a stable hash of the document's group key (its `repo_name`,
//! else its path, else its content), so every file of a repository lands in the same split,
//! whatever the thread count, platform or Python hash seed.

use sha2::{Digest, Sha256};

use crate::clean::dedup::exact_key;
use crate::corpus::read::Record;

/// Which split a document goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train = 0,
    Valid = 1,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
        }
    }
}

/// A number in [0, 1) from the first 8 bytes of `SHA-256("codekiln-split\0" + key)`.
pub fn unit_hash(key: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(b"codekiln-split\0");
    h.update(key.as_bytes());
    let d = h.finalize();
    let x = u64::from_be_bytes(d[..8].try_into().unwrap());
    // 53 high bits: an exact double in [0, 1).
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// `Valid` when `unit_hash(key) < valid_fraction`.
pub fn split_of(key: &str, valid_fraction: f64) -> Split {
    if unit_hash(key) < valid_fraction {
        Split::Valid
    } else {
        Split::Train
    }
}

/// The key a document is split by: its repository, else its path, else its content.
pub fn split_key(rec: &Record) -> String {
    if let Some(r) = rec.repo_name.as_deref().filter(|r| !r.is_empty()) {
        return format!("repo:{r}");
    }
    if let Some(p) = rec.path.as_deref().filter(|p| !p.is_empty()) {
        return format!("path:{p}");
    }
    let mut scratch = Vec::new();
    format!("text:{:032x}", exact_key(&rec.text, &mut scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_proportional() {
        // Pinned values: changing the hash would silently move repositories between splits.
        assert_eq!(split_of("numpy", 0.0), Split::Train);
        assert_eq!(split_of("numpy", 1.0), Split::Valid);
        // Python: int.from_bytes(sha256(b"codekiln-split\0numpy").digest()[:8], "big") >> 11
        // divided by 2**53.
        assert_eq!(unit_hash("numpy"), 0.16773547972097225);
        assert_eq!(split_of("numpy", 0.16), Split::Train);
        assert_eq!(split_of("numpy", 0.17), Split::Valid);
        let n = 20_000;
        let valid = (0..n)
            .filter(|i| split_of(&format!("repo-{i}"), 0.1) == Split::Valid)
            .count();
        let frac = valid as f64 / n as f64;
        assert!((frac - 0.1).abs() < 0.01, "{frac}");
    }
}
