//! BPE encoder and decoder.
//!
//! Semantics are merge-list BPE (as HF tokenizers' `BPE` model): within a piece, repeatedly
//! apply the adjacent pair with the lowest merge rank, leftmost first. That is exactly how the
//! trainer applied merges, so encoding a training piece reproduces its training trajectory.
//!
//! Measured decisions (valid shard of ../shared/corpus, one core; see BENCHMARKS.md):
//! - the pre-tokenizer is a hand-written scanner, not a regex engine (regex was the largest
//!   cost in tiktoken's profile);
//! - most pieces are a single token: a hash lookup of the whole piece (`whole`) answers them
//!   without running BPE. `whole` only holds tokens whose own BPE is themselves, so the fast
//!   path can never disagree with the slow one;
//! - short pieces use an O(n^2) scan over a small array (cache friendly, like tiktoken);
//!   pieces longer than `LONG_PIECE` bytes merge rank by rank over a linked list, so a 1 MB
//!   run of one character encodes in linear-ish time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aho_corasick::{AhoCorasick, MatchKind};
use rayon::prelude::*;
use rustc_hash::FxBuildHasher;

use crate::bpe::pretokenize::{pieces, Pattern};
use crate::bpe::vocab::{pair_key, FxMap, Vocab};
use crate::error::{Error, Result};
use crate::parallel;

/// Pieces longer than this use the heap-based merge.
const LONG_PIECE: usize = 64;
const NO_RANK: u32 = u32::MAX;

/// An immutable encoder; `Send + Sync`, shared freely between threads.
#[derive(Debug, Clone)]
pub struct Encoder {
    pattern: Pattern,
    newline: bool,
    vocab: Vocab,
    /// (left, right) -> merged id. Merged ids grow with merge order, so the id is the rank.
    pair_to_id: FxMap<u64, u32>,
    /// Bytes -> id for every multi-byte token that BPE encodes as itself.
    whole: FxMap<Box<[u8]>, u32>,
    /// Special tokens (name, id), including `<N>` (id 10) in `<N>` mode.
    specials: Vec<(String, u32)>,
    vocab_size: usize,
}

impl Encoder {
    /// Build an encoder. Special tokens other than `<N>` must take the ids right after the
    /// merges (any order); `<N>` must be 10 (with or without newline isolation).
    pub fn new(
        pattern: Pattern,
        newline: bool,
        merges: &[(u32, u32)],
        specials: &[(String, u32)],
    ) -> Result<Encoder> {
        let vocab = Vocab::from_merges(merges).map_err(Error::invalid)?;
        let base = vocab.len() as u32;
        let mut pair_to_id = FxMap::with_capacity_and_hasher(merges.len(), FxBuildHasher);
        for (i, &(a, b)) in merges.iter().enumerate() {
            if pair_to_id.insert(pair_key(a, b), 256 + i as u32).is_some() {
                return Err(Error::invalid(format!(
                    "merge {i} ({a}, {b}) is listed twice"
                )));
            }
        }
        let mut extra: Vec<u32> = Vec::new();
        for (name, id) in specials {
            if name.is_empty() {
                return Err(Error::invalid("special token names must not be empty"));
            }
            if name == "<N>" {
                // `<N>` is the byte "\n" under another name, whether or not the pre-tokenizer
                // isolates newlines (the "merged" rule does not).
                if *id != b'\n' as u32 {
                    return Err(Error::invalid(format!(
                        "special token <N> must have id 10 (got id {id})"
                    )));
                }
            } else {
                extra.push(*id);
            }
        }
        let mut sorted = extra.clone();
        sorted.sort_unstable();
        let expected: Vec<u32> = (base..base + extra.len() as u32).collect();
        if sorted != expected {
            return Err(Error::invalid(format!(
                "special token ids {extra:?} must be distinct and fill {base}..{} (right after the merges)",
                base + extra.len() as u32
            )));
        }
        let mut enc = Encoder {
            pattern,
            newline,
            vocab,
            pair_to_id,
            whole: FxMap::default(),
            specials: specials.to_vec(),
            vocab_size: (base as usize) + extra.len(),
        };
        let mut whole = FxMap::with_capacity_and_hasher(merges.len(), FxBuildHasher);
        let mut buf = Vec::new();
        for id in 256..base {
            let bytes = &enc.vocab.token_bytes[id as usize];
            if bytes.len() > LONG_PIECE {
                // Checking every long token is quadratic for chain-like vocabularies (a 65k
                // byte token took minutes); long pieces take the exact slow path instead.
                continue;
            }
            buf.clear();
            enc.bpe_slow(bytes, &mut buf);
            if buf.len() == 1 && buf[0] == id {
                whole.insert(bytes.clone().into_boxed_slice(), id);
            }
        }
        enc.whole = whole;
        Ok(enc)
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    pub fn newline(&self) -> bool {
        self.newline
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn num_merges(&self) -> usize {
        self.vocab.merges.len()
    }

    /// The id of a special token by name.
    pub fn special_id(&self, name: &str) -> Option<u32> {
        self.specials
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
    }

    /// The bytes of a token (a special token's are its name, `<N>`'s are `\n`).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        if let Some(b) = self.vocab.token_bytes.get(id as usize) {
            return Some(b);
        }
        self.specials
            .iter()
            .find(|&&(_, sid)| sid == id)
            .map(|(name, _)| name.as_bytes())
    }

    /// Encode one piece, appending its ids.
    #[inline]
    fn bpe_into(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() == 1 {
            out.push(piece[0] as u32);
            return;
        }
        if let Some(&id) = self.whole.get(piece) {
            out.push(id);
            return;
        }
        self.bpe_slow(piece, out);
    }

    fn bpe_slow(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() > LONG_PIECE {
            self.bpe_long(piece, out)
        } else {
            self.bpe_short(piece, out)
        }
    }

    #[inline(always)]
    fn rank(&self, a: u32, b: u32) -> u32 {
        *self.pair_to_id.get(&pair_key(a, b)).unwrap_or(&NO_RANK)
    }

    /// O(n^2) merge on a stack array: `ranks[i]` is the rank of pair (ids[i], ids[i+1]).
    fn bpe_short(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut ids = [0u32; LONG_PIECE];
        let mut ranks = [NO_RANK; LONG_PIECE];
        let mut n = piece.len();
        for (i, &b) in piece.iter().enumerate() {
            ids[i] = b as u32;
        }
        for i in 0..n - 1 {
            ranks[i] = self.rank(ids[i], ids[i + 1]);
        }
        while n > 1 {
            let (mut best, mut best_i) = (NO_RANK, 0);
            for (i, &r) in ranks[..n - 1].iter().enumerate() {
                if r < best {
                    best = r;
                    best_i = i;
                }
            }
            if best == NO_RANK {
                break;
            }
            let i = best_i;
            ids[i] = best;
            ids.copy_within(i + 2..n, i + 1);
            if i + 2 < n {
                ranks.copy_within(i + 2..n - 1, i + 1);
            }
            n -= 1;
            if i + 1 < n {
                ranks[i] = self.rank(ids[i], ids[i + 1]);
            }
            ranks[n - 1] = NO_RANK;
            if i > 0 {
                ranks[i - 1] = self.rank(ids[i - 1], ids[i]);
            }
        }
        out.extend_from_slice(&ids[..n]);
    }

    /// Merge a long piece rank by rank over a linked list of parts.
    ///
    /// Positions waiting to merge are bucketed by rank; ranks are taken smallest first and a
    /// bucket's positions left to right. Merging at rank r only creates pairs containing token
    /// r, whose ranks are > r, so a finished rank never comes back and the order equals the
    /// (rank, position) order of the short path. Measured: a binary heap of (rank, position)
    /// spent 80% of its time in `pop` on 1 MB of spaces (400 ms); buckets keep the work in
    /// sequential scans.
    fn bpe_long(&self, piece: &[u8], out: &mut Vec<u32>) {
        let n = piece.len();
        let none = u32::MAX;
        let mut tok: Vec<u32> = piece.iter().map(|&b| b as u32).collect();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut buckets: FxMap<u32, Vec<u32>> = FxMap::default();
        let mut ranks: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
        let add = |buckets: &mut FxMap<u32, Vec<u32>>,
                   ranks: &mut BinaryHeap<Reverse<u32>>,
                   r: u32,
                   pos: u32| {
            let b = buckets.entry(r).or_default();
            if b.is_empty() {
                ranks.push(Reverse(r));
            }
            b.push(pos);
        };
        for i in 0..n - 1 {
            let r = self.rank(tok[i], tok[i + 1]);
            if r != NO_RANK {
                add(&mut buckets, &mut ranks, r, i as u32);
            }
        }
        while let Some(Reverse(r)) = ranks.pop() {
            let Some(mut positions) = buckets.remove(&r) else {
                continue;
            };
            if !positions.is_sorted() {
                positions.sort_unstable();
            }
            for &i in &positions {
                let i = i as usize;
                let j = next[i] as usize;
                if !alive[i] || j >= n || self.rank(tok[i], tok[j]) != r {
                    continue; // consumed by an earlier merge
                }
                tok[i] = r;
                alive[j] = false;
                next[i] = next[j];
                if (next[i] as usize) < n {
                    prev[next[i] as usize] = i as u32;
                    let r2 = self.rank(tok[i], tok[next[i] as usize]);
                    if r2 != NO_RANK {
                        add(&mut buckets, &mut ranks, r2, i as u32);
                    }
                }
                if prev[i] != none {
                    let p = prev[i] as usize;
                    let r2 = self.rank(tok[p], tok[i]);
                    if r2 != NO_RANK {
                        add(&mut buckets, &mut ranks, r2, p as u32);
                    }
                }
            }
        }
        let mut i = 0usize;
        while i < n {
            out.push(tok[i]);
            i = next[i] as usize;
        }
    }

    /// Encode text with no special-token handling, appending to `out`.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) {
        for piece in pieces(text, self.pattern, self.newline) {
            self.bpe_into(piece.as_bytes(), out);
        }
    }

    /// Encode text with no special-token handling.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_ordinary_into(text, &mut out);
        out
    }

    /// A matcher for the allowed special tokens (`None` when none are allowed).
    pub fn special_matcher(&self, allowed: &[String]) -> Result<Option<SpecialMatcher>> {
        if allowed.is_empty() {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(allowed.len());
        for name in allowed {
            ids.push(self.special_id(name).ok_or_else(|| {
                Error::invalid(format!("{name:?} is not a special token of this tokenizer"))
            })?);
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(allowed)
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Some(SpecialMatcher { ac, ids }))
    }

    /// Encode text; occurrences of the matcher's special tokens become their ids.
    pub fn encode_with(&self, text: &str, special: Option<&SpecialMatcher>) -> Vec<u32> {
        let Some(m) = special else {
            return self.encode_ordinary(text);
        };
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut last = 0;
        for hit in m.ac.find_iter(text) {
            self.encode_ordinary_into(&text[last..hit.start()], &mut out);
            out.push(m.ids[hit.pattern().as_usize()]);
            last = hit.end();
        }
        self.encode_ordinary_into(&text[last..], &mut out);
        out
    }

    /// Encode many texts on `num_threads` workers; the result is independent of the count.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        special: Option<&SpecialMatcher>,
        num_threads: usize,
    ) -> Vec<Vec<u32>> {
        let n = parallel::threads_for(num_threads, texts.len());
        if n == 1 {
            return texts.iter().map(|t| self.encode_with(t, special)).collect();
        }
        parallel::install(n, || {
            texts
                .par_iter()
                .with_min_len(1)
                .map(|t| self.encode_with(t, special))
                .collect()
        })
    }

    /// Encode many texts on `num_threads` workers into one flat id array: text `i`'s ids are
    /// `ids[offsets[i]..offsets[i + 1]]` (`offsets` has `texts.len() + 1` entries). No
    /// per-text object is built, so callers that hand arrays to Python (numpy) avoid the
    /// serial conversion to Python ints; the concatenation is one `memcpy` per text (measured
    /// below 2% of the encode time, BENCHMARKS.md), so it stays serial.
    pub fn encode_batch_flat(
        &self,
        texts: &[&str],
        special: Option<&SpecialMatcher>,
        num_threads: usize,
    ) -> (Vec<u32>, Vec<u64>) {
        let all = self.encode_batch(texts, special, num_threads);
        let total: usize = all.iter().map(Vec::len).sum();
        let mut ids = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(all.len() + 1);
        offsets.push(0u64);
        for one in &all {
            ids.extend_from_slice(one);
            offsets.push(ids.len() as u64);
        }
        (ids, offsets)
    }

    /// Encode many texts on `num_threads` workers while `consume` runs on the calling thread
    /// and receives `(index, ids)` as each text is done (in any order; the channel closes
    /// when all are). The Python binding converts results to lists there: converting after
    /// the whole batch capped two threads at 1.45x one thread.
    pub fn encode_batch_streamed<R>(
        &self,
        texts: &[&str],
        special: Option<&SpecialMatcher>,
        num_threads: usize,
        consume: impl FnOnce(&crossbeam_channel::Receiver<(usize, Vec<u32>)>) -> R,
    ) -> R {
        let n = parallel::threads_for(num_threads, texts.len());
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, Vec<u32>)>();
        std::thread::scope(|s| {
            // This thread only waits on the pool: the `n` workers are the busy ones.
            s.spawn(move || {
                parallel::install(n, || {
                    texts
                        .par_iter()
                        .enumerate()
                        .with_min_len(1)
                        .for_each(|(i, t)| {
                            let _ = tx.send((i, self.encode_with(t, special)));
                        })
                })
            });
            consume(&rx)
        })
    }

    /// Concatenate token bytes; `Err(id)` for the first id not in the vocabulary.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, u32> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id).ok_or(id)?);
        }
        Ok(out)
    }
}

/// Leftmost-longest matcher over the special tokens a caller allowed.
pub struct SpecialMatcher {
    ac: AhoCorasick,
    ids: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(merges: &[(u32, u32)], newline: bool) -> Encoder {
        let mut specials = vec![("<|endoftext|>".to_string(), 256 + merges.len() as u32)];
        if newline {
            specials.push(("<N>".to_string(), 10));
        }
        Encoder::new(Pattern::Code, newline, merges, &specials).unwrap()
    }

    #[test]
    fn merges_apply_by_rank_leftmost_first() {
        // a=97 b=98 c=99; merge 0: (b,c) -> 256, merge 1: (a,b) -> 257, merge 2: (257,c) -> 258
        let e = enc(&[(98, 99), (97, 98), (257, 99)], true);
        assert_eq!(e.encode_ordinary("abc"), vec![97, 256]); // bc first; (a, bc) is no merge
        assert_eq!(e.encode_ordinary("ab"), vec![257]);
        // "aaa" with merge (a,a): left to right, no overlap
        let e = enc(&[(97, 97)], true);
        assert_eq!(e.encode_ordinary("aaa"), vec![256, 97]);
        assert_eq!(e.encode_ordinary("aaaa"), vec![256, 256]);
    }

    #[test]
    fn long_and_short_paths_agree() {
        let merges = [(97, 97), (256, 256), (257, 97), (256, 97), (259, 256)];
        let e = enc(&merges, true);
        for n in 1..300 {
            let s = "a".repeat(n);
            let mut short = Vec::new();
            let mut long = Vec::new();
            if n <= LONG_PIECE {
                e.bpe_short(s.as_bytes(), &mut short);
            } else {
                short = naive(&e, s.as_bytes());
            }
            e.bpe_long(s.as_bytes(), &mut long);
            assert_eq!(short, long, "n={n}");
        }
    }

    fn naive(e: &Encoder, piece: &[u8]) -> Vec<u32> {
        let mut ids: Vec<u32> = piece.iter().map(|&b| u32::from(b)).collect();
        loop {
            let best = (0..ids.len().saturating_sub(1))
                .map(|i| (e.rank(ids[i], ids[i + 1]), i))
                .min();
            match best {
                Some((r, i)) if r != NO_RANK => {
                    ids[i] = r;
                    ids.remove(i + 1);
                }
                _ => return ids,
            }
        }
    }

    #[test]
    fn long_pieces_match_naive_merging() {
        // Merges learned from random text over a tiny alphabet: many overlapping candidates.
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = move |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let alphabet = b"aab";
        let texts: Vec<String> = (0..400)
            .map(|_| {
                (0..(5 + rnd(300)))
                    .map(|_| alphabet[rnd(3) as usize] as char)
                    .collect()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut t = crate::bpe::train::Trainer::new(Pattern::Code, true, "content");
        t.add_texts(&refs, 1);
        let merges = t.train(300, 1, 1, &mut |_| true);
        let e = enc(&merges, true);
        for text in &texts {
            let mut got = Vec::new();
            e.bpe_slow(text.as_bytes(), &mut got);
            assert_eq!(got, naive(&e, text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn newline_is_token_10_and_round_trip() {
        let e = enc(&[(32, 32), (10, 32)], true);
        let ids = e.encode_ordinary("x\n  y\n\n");
        assert_eq!(ids.iter().filter(|&&i| i == 10).count(), 3);
        assert!(!ids.contains(&257)); // (\n, ' ') can never apply in <N> mode
        assert_eq!(e.decode_bytes(&ids).unwrap(), b"x\n  y\n\n");
    }

    #[test]
    fn specials_only_when_allowed() {
        let e = enc(&[], true);
        let text = "a<|endoftext|>b<N>";
        let plain = e.encode_ordinary(text);
        assert_eq!(e.decode_bytes(&plain).unwrap(), text.as_bytes());
        assert!(!plain.contains(&256));
        let m = e.special_matcher(&["<|endoftext|>".into()]).unwrap();
        let ids = e.encode_with(text, m.as_ref());
        assert_eq!(ids[1], 256);
        assert!(e.special_matcher(&["<nope>".into()]).is_err());
        assert_eq!(e.decode_bytes(&[999]), Err(999));
    }

    #[test]
    fn flat_batch_is_the_concatenation_for_any_thread_count() {
        let e = enc(&[(32, 32), (97, 98)], true);
        let texts = ["ab  ab\n", "", "x", "  abab<|endoftext|>"];
        let m = e.special_matcher(&["<|endoftext|>".into()]).unwrap();
        let lists = e.encode_batch(&texts, m.as_ref(), 1);
        for n in [1, 2, 3] {
            let (ids, offsets) = e.encode_batch_flat(&texts, m.as_ref(), n);
            assert_eq!(offsets.len(), texts.len() + 1);
            for (i, one) in lists.iter().enumerate() {
                assert_eq!(&ids[offsets[i] as usize..offsets[i + 1] as usize], &one[..]);
            }
            assert_eq!(*offsets.last().unwrap() as usize, ids.len());
        }
    }

    #[test]
    fn bad_specials_rejected() {
        let s = |v: &[(&str, u32)]| -> Vec<(String, u32)> {
            v.iter().map(|(n, i)| (n.to_string(), *i)).collect()
        };
        assert!(Encoder::new(Pattern::Code, true, &[], &s(&[("<N>", 11)])).is_err());
        assert!(Encoder::new(Pattern::Code, false, &[], &s(&[("<N>", 11)])).is_err());
        // The "merged" newline rule: <N> is id 10 while newlines merge with indentation.
        let merged = Encoder::new(Pattern::Code, false, &[], &s(&[("<N>", 10)])).unwrap();
        let m = merged.special_matcher(&["<N>".into()]).unwrap();
        assert_eq!(merged.encode_with("a<N>", m.as_ref()), vec![97, 10]);
        assert!(Encoder::new(Pattern::Code, true, &[], &s(&[("<a>", 300)])).is_err());
        assert!(Encoder::new(Pattern::Code, true, &[], &s(&[("<a>", 256), ("<b>", 256)])).is_err());
    }
}
