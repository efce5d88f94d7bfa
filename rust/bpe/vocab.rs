//! The vocabulary: 256 byte tokens (id == byte value), then one token per merge
//! (id `256 + i` for merge `i`), then special tokens. Also GPT-2's byte-to-unicode alphabet,
//! used for the human-readable form of tokens and for the merge tie-break order.

/// Hash-map type used across the core (FxHash: fast for the short keys we hash).
pub type FxMap<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// A pair of token ids as one hash-map key.
#[inline(always)]
pub fn pair_key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// GPT-2's reversible byte -> printable char mapping (as in HF's ByteLevel).
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap()
        };
    }
    table
}

/// `BYTE_ORDER[b]` is the position of byte `b` when the 256 bytes are sorted by their
/// [`byte_to_char`] code point. HF tokenizers' BpeTrainer assigns alphabet ids in that order,
/// so breaking ties on it makes our merges match HF's.
pub fn byte_order() -> [u32; 256] {
    let chars = byte_to_char();
    let mut bytes: Vec<usize> = (0..256).collect();
    bytes.sort_by_key(|&b| chars[b]);
    let mut order = [0u32; 256];
    for (pos, &b) in bytes.iter().enumerate() {
        order[b] = pos as u32;
    }
    order
}

/// Token ids of a vocabulary built from merges, with the bytes of every token.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub merges: Vec<(u32, u32)>,
    /// Bytes of token `id`, for `id < 256 + merges.len()`.
    pub token_bytes: Vec<Vec<u8>>,
}

impl Vocab {
    /// Build and validate: merge `i` may only use ids `< 256 + i`.
    pub fn from_merges(merges: &[(u32, u32)]) -> Result<Vocab, String> {
        let mut token_bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for (i, &(a, b)) in merges.iter().enumerate() {
            let limit = 256 + i as u32;
            if a >= limit || b >= limit {
                return Err(format!(
                    "merge {i} ({a}, {b}) refers to a token id that does not exist yet (ids must be < {limit})"
                ));
            }
            let mut t = token_bytes[a as usize].clone();
            t.extend_from_slice(&token_bytes[b as usize]);
            token_bytes.push(t);
        }
        Ok(Vocab {
            merges: merges.to_vec(),
            token_bytes,
        })
    }

    /// Number of byte + merge tokens.
    pub fn len(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.token_bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet() {
        let t = byte_to_char();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        let mut all: Vec<char> = t.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
        let order = byte_order();
        assert_eq!(order[b'!' as usize], 0);
        assert_eq!(order[0], 188); // first remapped byte comes after the 188 printable ones
        assert!(order[b'a' as usize] < order[b' ' as usize]);
    }

    #[test]
    fn merges_validate() {
        let v = Vocab::from_merges(&[(97, 98), (256, 99)]).unwrap();
        assert_eq!(v.token_bytes[257], b"abc");
        assert!(Vocab::from_merges(&[(97, 256)])
            .unwrap_err()
            .contains("merge 0"));
    }
}
