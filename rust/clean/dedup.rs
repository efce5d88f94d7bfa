//! Exact deduplication: a 128-bit key per document and a global set of the keys seen so far.
//! The key is the SHA-256 of the content with its whitespace removed *except indentation*: each
//! non-blank line contributes `\n`, its leading spaces and tabs, then its other characters
//! without whitespace. So `a=1` and `a = 1 ` (and CRLF vs LF, trailing spaces, blank lines)
//! collide as in CodeParrot's `re.sub(r"\s+", "", content)`, but two Python files that differ
//! in indentation, which are different programs, do not. Memory grows with the number of *distinct documents*
//! (16 bytes of key plus hash-set overhead, about 32 bytes per document), not with their size.
//!
//! Measured: with SHA-NI, SHA-256 runs at about 2 GB/s on one core, so a cheaper
//! non-cryptographic hash buys little; the whitespace removal before it is what needed care.

use rustc_hash::FxHashSet;
use sha2::{Digest, Sha256};

/// 0 for the ASCII bytes that count as whitespace (Python's `str.isspace`: space, \t, \n, \r,
/// \x0b, \x0c and the separators \x1c-\x1f), 1 for every other byte.
const KEEP: [u8; 256] = {
    let mut t = [1u8; 256];
    let ws = [
        b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c, 0x1c, 0x1d, 0x1e, 0x1f,
    ];
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] = 0;
        i += 1;
    }
    t
};

/// The dedup key of `text`. `scratch` is a reusable buffer (its contents are overwritten).
pub fn exact_key(text: &str, scratch: &mut Vec<u8>) -> u128 {
    scratch.clear();
    // Per line at most 1 + len bytes are written.
    scratch.resize(text.len() + 1, 0);
    let out = &mut scratch[..];
    let mut j = 0usize;
    for line in text.split('\n') {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        let start = j;
        out[j] = b'\n';
        out[j + 1..j + 1 + indent].copy_from_slice(&b[..indent]);
        j += 1 + indent;
        let before = j;
        j = compact(&line[indent..], out, j);
        if j == before {
            j = start; // a blank line (only whitespace) leaves no trace
        }
    }
    scratch.truncate(j);
    let digest = Sha256::digest(&scratch[..]);
    u128::from_le_bytes(digest[..16].try_into().unwrap())
}

/// Append `text` without whitespace to `out` at `j`; returns the new end.
fn compact(text: &str, out: &mut [u8], mut j: usize) -> usize {
    let b = text.as_bytes();
    // Branch-free compaction: every byte is stored, and the write position advances only
    // past kept bytes. Whitespace in code comes every few bytes at unpredictable places, so a
    // branch per byte (or a copy per run) mispredicts constantly; this runs at about a cycle
    // per byte. Non-ASCII characters (rare in code) take the per-character path.
    let mut i = 0usize;
    const CHUNK: usize = 16;
    while i < b.len() {
        if let Some(chunk) = b.get(i..i + CHUNK) {
            let word = u128::from_le_bytes(chunk.try_into().expect("16 bytes"));
            if word & 0x8080_8080_8080_8080_8080_8080_8080_8080 == 0 {
                for &c in chunk {
                    out[j] = c;
                    j += usize::from(KEEP[usize::from(c)]);
                }
                i += CHUNK;
                continue;
            }
        }
        let c = b[i];
        if c < 0x80 {
            out[j] = c;
            j += usize::from(KEEP[usize::from(c)]);
            i += 1;
            continue;
        }
        let ch = text[i..].chars().next().expect("char boundary");
        let len = ch.len_utf8();
        if !ch.is_whitespace() {
            out[j..j + len].copy_from_slice(&b[i..i + len]);
            j += len;
        }
        i += len;
    }
    j
}

/// The set of keys kept so far; the first document with a key wins.
#[derive(Default)]
pub struct ExactDedup {
    seen: FxHashSet<u128>,
}

impl ExactDedup {
    pub fn new() -> ExactDedup {
        ExactDedup::default()
    }

    /// `true` when `key` is new (the document is kept), `false` for a duplicate.
    pub fn insert(&mut self, key: u128) -> bool {
        self.seen.insert(key)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    /// The key's input, written the obvious way: per non-blank line, `\n` + its leading
    /// spaces/tabs + its other non-whitespace characters.
    fn naive_key_bytes(t: &str) -> Vec<u8> {
        let mut out = String::new();
        for line in t.split('\n') {
            let indent: String = line
                .chars()
                .take_while(|&c| c == ' ' || c == '\t')
                .collect();
            let rest: String = line[indent.len()..]
                .chars()
                .filter(|c| !(c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(c)))
                .collect();
            if !rest.is_empty() {
                out.push('\n');
                out.push_str(&indent);
                out.push_str(&rest);
            }
        }
        out.into_bytes()
    }

    #[test]
    fn key_ignores_exactly_the_whitespace() {
        let naive = naive_key_bytes;
        let mut scratch = Vec::new();
        for t in [
            "",
            "  ",
            "a b\tc\n",
            "x\u{a0}y\u{2028}z é ",
            "\u{1c}q\u{1f} r  ",
            "日 本\r\n",
        ] {
            exact_key(t, &mut scratch);
            assert_eq!(scratch, naive(t), "{t:?}");
        }
    }

    #[test]
    fn key_matches_naive_on_random_text() {
        // Long enough mixes of ASCII, ASCII whitespace, Unicode whitespace and other
        // non-ASCII text to cross the 16-byte fast-path chunks at every offset.
        let alphabet = [
            "a",
            "Z",
            "0",
            "_",
            "(",
            " ",
            "\t",
            "\n",
            "\r",
            "\x0b",
            "\x1e",
            "\u{85}",
            "\u{a0}",
            "\u{2003}",
            "\u{3000}",
            "é",
            "日",
            "\u{1f600}",
            "\x7f",
            "\0",
        ];
        let naive = naive_key_bytes;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut scratch = Vec::new();
        for _ in 0..2000 {
            let len = (next() % 120) as usize;
            // Mostly ASCII, so that whole chunks take the fast path.
            let text: String = (0..len)
                .map(|_| {
                    let r = next();
                    if r.is_multiple_of(8) {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        alphabet[(r >> 8) as usize % 11]
                    }
                })
                .collect();
            exact_key(&text, &mut scratch);
            assert_eq!(scratch, naive(&text), "{text:?}");
        }
    }

    use super::*;

    #[test]
    fn whitespace_insensitive_content_sensitive() {
        let mut s = Vec::new();
        let a = exact_key("def f(x):\n    return x\n", &mut s);
        let b = exact_key(
            "def f( x ):\r\n\n    return  x\u{00a0}\u{3000} \n\n",
            &mut s,
        );
        let d = exact_key("def f(y):\n    return y\n", &mut s);
        assert_eq!(a, b);
        assert_ne!(a, d);
        // Indentation is part of a Python program: these differ.
        assert_ne!(a, exact_key("def f(x):\n\treturn x\n", &mut s));
        assert_ne!(
            exact_key("if a:\n    b()\nc()\n", &mut s),
            exact_key("if a:\n    b()\n    c()\n", &mut s)
        );
        // Non-whitespace Unicode is kept.
        assert_ne!(exact_key("é", &mut s), exact_key("e", &mut s));
        let mut set = ExactDedup::new();
        assert!(set.insert(a));
        assert!(!set.insert(b));
        assert!(set.insert(d));
        assert_eq!(set.len(), 2);
    }
}
