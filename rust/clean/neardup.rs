//! Near-deduplication: MinHash signatures of word 5-gram shingles and an LSH index over bands
//! of the signature (Broder 1997; the BigCode / CodeParrot recipe).
//!
//! Words are maximal runs of `[A-Za-z0-9_]` and non-ASCII bytes. A document's shingles are
//! its consecutive `ngram`-word windows (the whole word sequence when it is shorter). Each
//! shingle is hashed to 64 bits; permutation i maps it to `(a_i * x + b_i) >> 32` (multiply-add-
//! shift, a 2-universal family), and the signature keeps the minimum of each permutation.
//!
//! Decisions are greedy and in document order, so they do not depend on the thread count: a
//! document is a near-duplicate when an *earlier kept* document shares an LSH band with it and
//! their signatures agree on at least `threshold * num_perm` positions (the MinHash estimate of
//! their Jaccard similarity). Candidates found by the bands are always verified this way, so
//! band collisions alone never drop a document.
//!
//! Memory: the index keeps, per kept document, its signature (4 bytes per permutation) and one
//! hash-table entry per band: about 0.7 KB per document with the defaults.

use rustc_hash::FxHashMap;

/// MinHash / LSH settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearConfig {
    pub threshold: f64,
    pub num_perm: usize,
    pub ngram: usize,
    pub seed: u64,
}

impl Default for NearConfig {
    fn default() -> Self {
        NearConfig {
            threshold: 0.85,
            num_perm: 128,
            ngram: 5,
            seed: 42,
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

/// A hash of one word (bytes), good enough for shingling.
fn word_hash(w: &[u8]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64 ^ w.len() as u64;
    let mut chunks = w.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = h.rotate_left(29);
    }
    let mut last = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        last |= (b as u64) << (8 * i);
    }
    mix64(h ^ last)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The word hashes of `text`, in order.
pub fn word_hashes(text: &str, out: &mut Vec<u64>) {
    out.clear();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_word_byte(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_word_byte(b[i]) {
            i += 1;
        }
        out.push(word_hash(&b[start..i]));
    }
}

/// Computes MinHash signatures. Immutable; share it between threads.
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    ngram: usize,
}

impl MinHasher {
    pub fn new(cfg: &NearConfig) -> MinHasher {
        let mut state = cfg.seed;
        let a = (0..cfg.num_perm)
            .map(|_| splitmix64(&mut state) | 1)
            .collect();
        let b = (0..cfg.num_perm).map(|_| splitmix64(&mut state)).collect();
        MinHasher {
            a,
            b,
            ngram: cfg.ngram.max(1),
        }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The shingle hashes of `text`, sorted and deduplicated.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let mut words = Vec::new();
        word_hashes(text, &mut words);
        let n = self.ngram;
        let mut out: Vec<u64> = if words.is_empty() {
            Vec::new()
        } else if words.len() <= n {
            vec![shingle_hash(&words)]
        } else {
            words.windows(n).map(shingle_hash).collect()
        };
        // Repeated shingles cannot lower a minimum; dropping them first saves 20-40% of the
        // permutation work on typical code.
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The signature of `text`; empty when it has no words (such documents are never
    /// near-duplicates of anything).
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let shingles = self.shingles(text);
        if shingles.is_empty() {
            return Vec::new();
        }
        let mut sig = vec![u32::MAX; self.a.len()];
        for &x in &shingles {
            for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let h = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
                *s = (*s).min(h);
            }
        }
        sig
    }
}

fn shingle_hash(words: &[u64]) -> u64 {
    let mut h = 0x1357_9bdf_2468_ace0u64;
    for &w in words {
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    mix64(h)
}

/// Fraction of equal positions: the MinHash estimate of the Jaccard similarity.
pub fn estimate(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// The (bands, rows) with bands * rows <= num_perm that minimise the sum of the false-positive
/// and false-negative areas of the LSH S-curve around `threshold` (datasketch's choice).
pub fn optimal_bands(threshold: f64, num_perm: usize) -> (usize, usize) {
    let integrate = |f: &dyn Fn(f64) -> f64, lo: f64, hi: f64| {
        let steps = 200;
        let dx = (hi - lo) / steps as f64;
        (0..steps)
            .map(|i| f(lo + (i as f64 + 0.5) * dx))
            .sum::<f64>()
            * dx
    };
    let mut best = (1, num_perm.max(1));
    let mut best_err = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let p = |s: f64| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
            let fp = integrate(&p, 0.0, threshold);
            let fneg = integrate(&|s| 1.0 - p(s), threshold, 1.0);
            if fp + fneg < best_err {
                best_err = fp + fneg;
                best = (b, r);
            }
        }
    }
    best
}

/// Greedy, order-dependent LSH index of kept documents.
pub struct LshIndex {
    threshold: f64,
    bands: usize,
    rows: usize,
    /// (band, band hash) -> most recent kept document with it; older ones via `next`.
    heads: FxHashMap<(u32, u64), u32>,
    /// next[doc * bands + band]: the previous kept document with the same band hash.
    next: Vec<u32>,
    sigs: Vec<u32>,
    num_perm: usize,
    /// Caller ids of the kept documents.
    ids: Vec<u64>,
}

const NONE: u32 = u32::MAX;

impl LshIndex {
    pub fn new(cfg: &NearConfig) -> LshIndex {
        let (bands, rows) = optimal_bands(cfg.threshold, cfg.num_perm);
        LshIndex {
            threshold: cfg.threshold,
            bands,
            rows,
            heads: FxHashMap::default(),
            next: Vec::new(),
            sigs: Vec::new(),
            num_perm: cfg.num_perm,
            ids: Vec::new(),
        }
    }

    pub fn bands_rows(&self) -> (usize, usize) {
        (self.bands, self.rows)
    }

    pub fn kept(&self) -> usize {
        self.ids.len()
    }

    fn band_hash(&self, sig: &[u32], band: usize) -> u64 {
        let part = &sig[band * self.rows..(band + 1) * self.rows];
        let mut h = 0x0123_4567_89ab_cdefu64;
        for &v in part {
            h = (h ^ v as u64).wrapping_mul(0x100_0000_01b3).rotate_left(17);
        }
        mix64(h)
    }

    /// If `sig` is a near-duplicate of a kept document, return that document's id and the
    /// estimated similarity (the earliest kept document above the threshold among the
    /// candidates); otherwise keep `sig` under `id` and return `None`.
    pub fn check_insert(&mut self, id: u64, sig: &[u32]) -> Option<(u64, f64)> {
        if sig.len() != self.num_perm {
            return None; // no shingles: never a duplicate, never indexed
        }
        let need = (self.threshold * self.num_perm as f64).ceil() as usize;
        let mut best: Option<(u32, f64)> = None;
        let hashes: Vec<u64> = (0..self.bands)
            .map(|band| self.band_hash(sig, band))
            .collect();
        for (band, &h) in hashes.iter().enumerate() {
            let mut cur = self.heads.get(&(band as u32, h)).copied().unwrap_or(NONE);
            while cur != NONE {
                if best.is_none_or(|(b, _)| cur < b) {
                    let other = &self.sigs[cur as usize * self.num_perm..][..self.num_perm];
                    let equal = other.iter().zip(sig).filter(|(x, y)| x == y).count();
                    if equal >= need {
                        best = Some((cur, equal as f64 / self.num_perm as f64));
                    }
                }
                cur = self.next[cur as usize * self.bands + band];
            }
        }
        if let Some((doc, est)) = best {
            return Some((self.ids[doc as usize], est));
        }
        let doc = self.ids.len() as u32;
        self.ids.push(id);
        self.sigs.extend_from_slice(sig);
        for (band, &h) in hashes.iter().enumerate() {
            let prev = self.heads.insert((band as u32, h), doc).unwrap_or(NONE);
            self.next.push(prev);
        }
        None
    }
}

/// Find near-duplicates among `texts` in order: `(duplicate, kept, estimate)` for each text
/// that is dropped. Signatures are computed on `num_threads` threads.
pub fn find_near_duplicates(
    texts: &[&str],
    cfg: &NearConfig,
    num_threads: usize,
) -> Vec<(usize, usize, f64)> {
    use rayon::prelude::*;
    let hasher = MinHasher::new(cfg);
    let n = crate::parallel::threads_for(num_threads, texts.len());
    let sigs: Vec<Vec<u32>> = crate::parallel::install(n, || {
        texts.par_iter().map(|t| hasher.signature(t)).collect()
    });
    let mut index = LshIndex::new(cfg);
    let mut out = Vec::new();
    for (i, sig) in sigs.iter().enumerate() {
        if let Some((kept, est)) = index.check_insert(i as u64, sig) {
            out.push((i, kept as usize, est));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashSet;

    /// A pseudo-random "source file" of `n` lines.
    fn source(seed: u64, n: usize) -> String {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let a = splitmix64(&mut s) % 10_000;
                let b = splitmix64(&mut s) % 10_000;
                format!("    value_{a} = compute_{b}(item_{i}, scale={})\n", a % 7)
            })
            .collect()
    }

    fn jaccard(h: &MinHasher, a: &str, b: &str) -> f64 {
        let sa: FxHashSet<u64> = h.shingles(a).into_iter().collect();
        let sb: FxHashSet<u64> = h.shingles(b).into_iter().collect();
        sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        // Slow oracle: exact Jaccard of the shingle sets.
        let cfg = NearConfig::default();
        let h = MinHasher::new(&cfg);
        let base = source(1, 200);
        for keep in [200usize, 190, 170, 120, 60] {
            let lines: Vec<&str> = base.lines().collect();
            let mut other: String = lines[..keep].iter().map(|l| format!("{l}\n")).collect();
            other.push_str(&source(99, 200 - keep));
            let exact = jaccard(&h, &base, &other);
            let est = estimate(&h.signature(&base), &h.signature(&other));
            // 128 permutations: standard error sqrt(J(1-J)/128) <= 0.045.
            assert!(
                (exact - est).abs() < 0.15,
                "keep {keep}: exact {exact} est {est}"
            );
        }
    }

    #[test]
    fn bands_for_default_threshold() {
        let (b, r) = optimal_bands(0.85, 128);
        assert!(b * r <= 128);
        // The S-curve's midpoint (1/b)^(1/r) sits near the threshold.
        let mid = (1.0 / b as f64).powf(1.0 / r as f64);
        assert!((mid - 0.85).abs() < 0.1, "b={b} r={r} mid={mid}");
    }

    #[test]
    fn finds_planted_and_keeps_distinct() {
        let a = source(1, 300);
        let b = source(2, 300);
        // a with two lines edited and the whitespace changed: a near-duplicate of a.
        let mut a2 = a.replacen("value_", "VALUE_", 2);
        a2 = a2.replace("    ", "\t");
        let c = source(3, 300);
        // Half of b plus new lines: Jaccard about 1/3, kept at 0.85 but dropped at 0.2.
        let b_lines: Vec<&str> = b.lines().collect();
        let mut d: String = b_lines[..150].iter().map(|l| format!("{l}\n")).collect();
        d.push_str(&source(4, 150));
        let empty = "+-*/ ()";
        let texts = vec![
            a.as_str(),
            b.as_str(),
            a2.as_str(),
            c.as_str(),
            &d,
            empty,
            empty,
        ];
        for threads in [1, 2, 3] {
            let dups = find_near_duplicates(&texts, &NearConfig::default(), threads);
            assert_eq!(dups.len(), 1, "{dups:?}");
            assert_eq!((dups[0].0, dups[0].1), (2, 0));
            assert!(dups[0].2 >= 0.85);
        }
        let loose = NearConfig {
            threshold: 0.2,
            ..NearConfig::default()
        };
        let dups = find_near_duplicates(&texts, &loose, 2);
        let pairs: Vec<(usize, usize)> = dups.iter().map(|d| (d.0, d.1)).collect();
        assert_eq!(pairs, vec![(2, 0), (4, 1)]);
    }
}
