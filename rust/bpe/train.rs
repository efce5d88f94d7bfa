//! BPE trainer, in numbered stages:
//!
//! 1. count pieces: pre-tokenize every document and count unique pieces, in parallel
//!    (`counts.rs`: [`Trainer::add_texts`], [`Trainer::add_files`]); or, in bounded memory
//!    or from count files, a sorted stream of counts merged from disk ([`train_counter`],
//!    [`train_count_files`]);
//! 2. words: every unique piece of two or more bytes becomes a word of byte ids in one flat
//!    array (pieces of one byte can never merge);
//! 3. count pairs: adjacent id pairs weighted by word count (overlapping occurrences count,
//!    as in HF tokenizers), with, per pair, the list of words that contain it;
//! 4. merge loop: a max-heap of (count, tie-break key) with lazy refresh: an entry whose count
//!    went stale is pushed back with its true count. Applying a merge rewrites only the words
//!    listed for the pair and updates counts incrementally (no recount).
//!
//! Tie-break: highest count first; among equal counts the pair with the smallest
//! (order(left), order(right)), where order(byte) is the byte's rank in GPT-2's byte-level
//! alphabet sorted by code point and order(merge i) = 256 + i -- the order HF tokenizers'
//! BpeTrainer uses. Counts are sums and the tie-break is a total order, so the merges never
//! depend on the thread count or on hash-map iteration order.

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use smallvec::SmallVec;

use crate::bpe::countfile::{self, Settings, Sink, Stats};
use crate::bpe::counts::{PieceCounter, PieceCounts};
use crate::bpe::pretokenize::Pattern;
use crate::bpe::vocab::{byte_order, pair_key, FxMap};
use crate::corpus::scan::FilesReport;
use crate::error::Result;
use crate::parallel;

/// Pair counts and, per pair, the words (offsets) that contain it.
type Pairs = FxMap<u64, PairSlot>;

/// A pair's count and the sorted offsets of the words that (may) contain it. One map for
/// both, and lists of up to 4 words inline: at 32k merges there are ~1M pairs, most in a few
/// words, and separate maps plus one heap allocation per list dominated peak memory.
#[derive(Default)]
struct PairSlot {
    count: i64,
    words: SmallVec<[u32; 4]>,
}

/// Piece counts accumulated over any number of `add_*` calls, then [`Trainer::train`].
pub struct Trainer {
    counter: PieceCounter,
    pub text_field: String,
}

impl Trainer {
    pub fn new(pattern: Pattern, newline: bool, text_field: &str) -> Trainer {
        Trainer {
            counter: PieceCounter::new(pattern, newline),
            text_field: text_field.to_string(),
        }
    }

    /// Documents counted so far.
    pub fn documents(&self) -> u64 {
        self.counter.documents
    }

    /// UTF-8 bytes counted so far.
    pub fn total_bytes(&self) -> u64 {
        self.counter.total_bytes
    }

    /// Pieces counted so far (with repetitions).
    pub fn total_pieces(&self) -> u64 {
        self.counter.total_pieces
    }

    pub fn unique_pieces(&mut self) -> usize {
        self.counts().len()
    }

    /// All counts so far (merges the partial maps into one).
    pub fn counts(&mut self) -> &PieceCounts {
        self.counter.counts()
    }

    /// Stage 1 for in-memory texts.
    pub fn add_texts(&mut self, texts: &[&str], num_threads: usize) {
        self.counter
            .add_texts(texts, num_threads)
            .expect("counting in memory cannot fail")
    }

    /// Stage 1 for files, on `num_threads` threads (reading included). `progress(done,
    /// total)` (bytes on disk) is called from this thread; `false` stops (an interruption).
    pub fn add_files(
        &mut self,
        paths: &[PathBuf],
        num_threads: usize,
        strict: bool,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<FilesReport> {
        self.counter.strict = strict;
        self.counter
            .add_files(paths, &self.text_field, num_threads, &mut |p| {
                progress(p.done, p.total)
            })
    }

    /// Stages 2-4: learn up to `num_merges` merges (fewer when no pair count reaches
    /// `min_frequency`). `progress(merges_done)` is called now and then.
    pub fn train(
        &mut self,
        num_merges: usize,
        min_frequency: u64,
        num_threads: usize,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Vec<(u32, u32)> {
        let counts = self.counts();
        let mut words = Words::sized_for(counts);
        words.extend(counts.iter().map(|(k, &v)| (k.as_str(), v)));
        learn_merges(words, num_merges, min_frequency, num_threads, progress)
    }

    /// [`Trainer::train`] that frees the piece counts as it builds the words, lowering peak
    /// memory; the trainer is empty afterwards.
    pub fn train_consuming(
        &mut self,
        num_merges: usize,
        min_frequency: u64,
        num_threads: usize,
        progress: &mut dyn FnMut(u64) -> bool,
    ) -> Vec<(u32, u32)> {
        let counts = self.counter.take_counts();
        let mut words = Words::sized_for(&counts);
        words.extend(counts.into_iter());
        learn_merges(words, num_merges, min_frequency, num_threads, progress)
    }
}

/// What a training from sorted counts saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct SortedReport {
    /// Distinct pieces in the counts, and those kept (counted `min_count`+ times).
    pub distinct: u64,
    pub kept: u64,
}

/// Stages 2-4 from a counter (in memory or spilled): pieces counted fewer than `min_count`
/// times are dropped (`min_count = 1` keeps all and gives exactly the in-memory result; see
/// `docs/scale.md` for the effect of pruning). The counter is empty afterwards.
pub fn train_counter(
    counter: &mut PieceCounter,
    num_merges: usize,
    min_frequency: u64,
    min_count: u64,
    num_threads: usize,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<(Vec<(u32, u32)>, SortedReport)> {
    let mut report = SortedReport::default();
    let words = if counter.spilled() {
        let runs = counter.into_runs()?;
        let (words, merged) = words_from_files(&runs, min_count)?;
        report.distinct = merged.entries;
        words
    } else {
        let counts = counter.take_counts();
        report.distinct = counts.len() as u64;
        let kept = |c: u64| c >= min_count;
        let (n, ids) = counts
            .iter()
            .filter(|(p, &c)| p.len() >= 2 && kept(c))
            .fold((0, 0), |(n, ids), (p, _)| (n + 1, ids + p.len()));
        let mut words = Words {
            data: Vec::with_capacity(ids + HEADER * n),
            offsets: Vec::with_capacity(n),
        };
        words.extend(counts.into_iter().filter(|&(_, c)| kept(c)));
        words
    };
    report.kept = words.offsets.len() as u64;
    let merges = learn_merges(words, num_merges, min_frequency, num_threads, progress);
    Ok((merges, report))
}

/// Words from sorted count files (two streaming merges: the first reads every file to its
/// end, verifying the checksums, before any word is built); the merged stats.
fn words_from_files(paths: &[PathBuf], min_count: u64) -> Result<(Words, Stats)> {
    let mut stats = Stats::default();
    let words = Words::from_sorted(min_count, &mut |f| {
        let (_, mut readers) = countfile::open_all(paths)?;
        stats = countfile::merge(&mut readers, f)?;
        Ok(())
    })?;
    Ok((words, stats))
}

/// Stages 2-4 from count files (merged as they are read): the files' settings and summed
/// stats, the merges and what was kept. Files with different settings are an error.
#[allow(clippy::type_complexity)]
pub fn train_count_files(
    paths: &[PathBuf],
    num_merges: usize,
    min_frequency: u64,
    min_count: u64,
    num_threads: usize,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<(Settings, Stats, Vec<(u32, u32)>, SortedReport)> {
    let (settings, _) = countfile::open_all(paths)?;
    let (words, stats) = words_from_files(paths, min_count)?;
    let report = SortedReport {
        distinct: stats.entries,
        kept: words.offsets.len() as u64,
    };
    let merges = learn_merges(words, num_merges, min_frequency, num_threads, progress);
    Ok((settings, stats, merges, report))
}

/// The settings of a count file (its header only).
pub fn count_file_settings(path: &Path) -> Result<Settings> {
    Ok(countfile::CountReader::open(path)?.settings)
}

/// All multi-byte pieces as words of token ids, in one flat `u32` array. A word at offset
/// `o` is `[len, count_lo, count_hi, id_0, .., id_len-1]` (its slot keeps the original length;
/// `len` shrinks as merges apply). Lists refer to words by offset, so visiting a word in the
/// merge loop touches one place in memory (the loop is bound by memory latency: keeping the
/// header in a separate array measured ~1.5x slower).
pub struct Words {
    data: Vec<u32>,
    /// Offsets of all words (used once, to count pairs).
    offsets: Vec<u32>,
}

const HEADER: usize = 3;

impl Words {
    /// Empty words with exactly the capacity the multi-byte pieces of `counts` need (a
    /// growing array would briefly hold its old and new buffers at the peak).
    fn sized_for(counts: &PieceCounts) -> Words {
        let (n, ids) = counts
            .keys()
            .filter(|p| p.len() >= 2)
            .fold((0, 0), |(n, ids), p| (n + 1, ids + p.len()));
        Words {
            data: Vec::with_capacity(ids + HEADER * n),
            offsets: Vec::with_capacity(n),
        }
    }

    /// Append the multi-byte pieces of `counts` as words.
    fn extend<S: AsRef<str>>(&mut self, counts: impl Iterator<Item = (S, u64)>) {
        for (piece, c) in counts {
            let piece = piece.as_ref();
            if piece.len() >= 2 {
                self.push(piece.as_bytes(), c);
            }
        }
    }

    /// Words from a sorted stream of counts, run twice by `stream` (once to size the array
    /// exactly, once to fill it), keeping pieces counted at least `min_count` times.
    fn from_sorted(
        min_count: u64,
        stream: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>,
    ) -> Result<Words> {
        let keep = |p: &[u8], c: u64| p.len() >= 2 && c >= min_count;
        let (mut n, mut ids) = (0usize, 0usize);
        stream(&mut |p, c| {
            if keep(p, c) {
                n += 1;
                ids += p.len();
            }
            Ok(())
        })?;
        let mut w = Words {
            data: Vec::with_capacity(ids + HEADER * n),
            offsets: Vec::with_capacity(n),
        };
        stream(&mut |p, c| {
            if keep(p, c) {
                w.push(p, c);
            }
            Ok(())
        })?;
        Ok(w)
    }

    fn push(&mut self, piece: &[u8], c: u64) {
        let o = u32::try_from(self.data.len())
            .expect("unique pieces exceed 16 GiB of token ids; prune (min_piece_count)");
        self.offsets.push(o);
        self.data.push(piece.len() as u32);
        self.data.push(c as u32);
        self.data.push((c >> 32) as u32);
        self.data.extend(piece.iter().map(|&b| u32::from(b)));
    }

    #[inline(always)]
    fn count(data: &[u32], o: usize) -> u64 {
        data[o + 1] as u64 | ((data[o + 2] as u64) << 32)
    }

    fn word(&self, o: usize) -> &[u32] {
        let len = self.data[o] as usize;
        &self.data[o + HEADER..o + HEADER + len]
    }
}

#[inline(always)]
fn unpair(k: u64) -> (u32, u32) {
    ((k >> 32) as u32, k as u32)
}

/// The tie-break order of a token: bytes by their rank in GPT-2's byte-level alphabet, merged
/// tokens by id (they come after all bytes).
fn order(id: u32) -> u32 {
    static BYTE_RANK: OnceLock<[u32; 256]> = OnceLock::new();
    if id < 256 {
        BYTE_RANK.get_or_init(byte_order)[id as usize]
    } else {
        id
    }
}

/// A heap entry: ordered by count, then by the smallest tie-break key. 16 bytes: the key is
/// recomputed from the pair when counts tie (the heap holds ~1M entries at 32k merges).
#[derive(PartialEq, Eq)]
struct Entry {
    count: i64,
    pair: u64,
}

impl Entry {
    fn key(&self) -> (u32, u32) {
        let (a, b) = unpair(self.pair);
        (order(a), order(b))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.count
            .cmp(&other.count)
            .then_with(|| other.key().cmp(&self.key()))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Stage 3: pair counts and, per pair, the sorted list of words containing it (in parallel).
fn count_pairs(words: &Words, num_threads: usize) -> Pairs {
    let n = words.offsets.len();
    let chunk = n.div_ceil(num_threads.max(1)).max(1024);
    let parts: Vec<Pairs> = parallel::install(num_threads, || {
        (0..n)
            .into_par_iter()
            .with_min_len(chunk)
            .fold(Pairs::default, |mut pairs: Pairs, i| {
                let o = words.offsets[i];
                let c = Words::count(&words.data, o as usize) as i64;
                for p in words.word(o as usize).windows(2) {
                    let slot = pairs.entry(pair_key(p[0], p[1])).or_default();
                    slot.count += c;
                    if slot.words.last() != Some(&o) {
                        slot.words.push(o);
                    }
                }
                pairs
            })
            .collect()
    });
    let mut parts = parts.into_iter();
    let mut pairs = parts.next().unwrap_or_default();
    for part in parts {
        for (k, v) in part {
            let slot = pairs.entry(k).or_default();
            slot.count += v.count;
            slot.words.extend(v.words);
        }
    }
    // The merge loop relies on every list being sorted and free of duplicates.
    for slot in pairs.values_mut() {
        let list = &mut slot.words;
        list.sort_unstable();
        list.dedup();
        list.shrink_to_fit();
    }
    pairs
}

/// What rewriting some words for one merge changed.
#[derive(Default)]
struct MergeEffect {
    /// Pair count changes (weighted by word count).
    delta: FxMap<u64, i64>,
    /// (new pair, word) registrations, in word order.
    born: Vec<(u64, u32)>,
}

/// Raw access to the words for rewriting disjoint words from several threads.
struct WordsPtr(*mut u32);

// SAFETY: `apply_merge` only touches the words named in its slice of a duplicate-free list,
// and the slices given to different threads are disjoint, so no word is accessed twice.
unsafe impl Send for WordsPtr {}
unsafe impl Sync for WordsPtr {}

/// Rewrite the words in `list` (sorted, no duplicates), merging (a, b) -> new_id left to
/// right without overlap, and record what changed.
///
/// # Safety
/// Every index in `list` must be a valid word, and no other thread may touch those words.
unsafe fn apply_merge(
    words: &WordsPtr,
    list: &[u32],
    (a, b): (u32, u32),
    new_id: u32,
    effect: &mut MergeEffect,
) {
    for &wi in list {
        // SAFETY: the caller guarantees exclusive access to the word at offset `wi`.
        let header = unsafe { std::slice::from_raw_parts_mut(words.0.add(wi as usize), HEADER) };
        let n = header[0] as usize;
        let c = (header[1] as u64 | ((header[2] as u64) << 32)) as i64;
        let w = unsafe { std::slice::from_raw_parts_mut(words.0.add(wi as usize + HEADER), n) };
        let (mut r, mut out) = (0usize, 0usize);
        let mut touched = false;
        while r < n {
            if r + 1 < n && w[r] == a && w[r + 1] == b {
                if out > 0 {
                    let prev = w[out - 1];
                    *effect.delta.entry(pair_key(prev, a)).or_insert(0) -= c;
                    *effect.delta.entry(pair_key(prev, new_id)).or_insert(0) += c;
                }
                if r + 2 < n {
                    let next = w[r + 2];
                    *effect.delta.entry(pair_key(b, next)).or_insert(0) -= c;
                    *effect.delta.entry(pair_key(new_id, next)).or_insert(0) += c;
                }
                w[out] = new_id;
                out += 1;
                r += 2;
                touched = true;
            } else {
                w[out] = w[r];
                out += 1;
                r += 1;
            }
        }
        if !touched {
            continue; // stale list entry: an earlier merge consumed the pair in this word
        }
        header[0] = out as u32;
        for p in w[..out].windows(2) {
            if p[0] == new_id || p[1] == new_id {
                let k = pair_key(p[0], p[1]);
                if effect.born.last() != Some(&(k, wi)) {
                    effect.born.push((k, wi));
                }
            }
        }
    }
}

/// Add (pair, word) registrations (in word order) to the pair -> words lists.
fn register(pairs: &mut Pairs, born: &[(u64, u32)]) {
    for &(k, wi) in born {
        let l = &mut pairs.entry(k).or_default().words;
        if l.last() != Some(&wi) {
            l.push(wi);
        }
    }
}

/// Lists at least this long are rewritten by all threads (smaller ones are not worth it).
const PARALLEL_LIST: usize = 8192;

/// Stages 3-4 on prepared words.
pub fn learn_merges(
    mut words: Words,
    num_merges: usize,
    min_frequency: u64,
    num_threads: usize,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Vec<(u32, u32)> {
    let entry = |pair: u64, count: i64| Entry { count, pair };

    let num_threads = parallel::threads(num_threads);
    let mut pairs = count_pairs(&words, num_threads);
    let mut heap: BinaryHeap<Entry> = pairs
        .iter()
        .filter(|(_, s)| s.count > 0)
        .map(|(&p, s)| entry(p, s.count))
        .collect();
    // A capacity hint only: `num_merges` comes from the user (2**32 must not abort).
    let mut merges: Vec<(u32, u32)> = Vec::with_capacity(num_merges.min(pairs.len()));
    let min_count = min_frequency.max(1) as i64;
    words.offsets = Vec::new();
    let ptr = WordsPtr(words.data.as_mut_ptr());
    let pool = parallel::pool(num_threads);
    let mut effect = MergeEffect::default();

    while merges.len() < num_merges {
        let Some(top) = heap.pop() else { break };
        let current = pairs.get(&top.pair).map_or(0, |s| s.count);
        if current != top.count {
            if current > 0 {
                heap.push(entry(top.pair, current));
            }
            continue; // lazy refresh
        }
        if current < min_count {
            break;
        }
        let (a, b) = unpair(top.pair);
        let new_id = 256 + merges.len() as u32;
        merges.push((a, b));
        let list = pairs.remove(&top.pair).map(|s| s.words).unwrap_or_default();

        effect.delta.clear();
        effect.born.clear();
        if num_threads > 1 && list.len() >= PARALLEL_LIST {
            let chunk = list.len().div_ceil(num_threads * 4);
            let parts: Vec<MergeEffect> = pool.install(|| {
                list.par_chunks(chunk)
                    .map(|part| {
                        let mut e = MergeEffect::default();
                        // SAFETY: chunks of a duplicate-free list are disjoint sets of words.
                        unsafe { apply_merge(&ptr, part, (a, b), new_id, &mut e) };
                        e
                    })
                    .collect()
            });
            // Chunks come back in order, so each new pair's list stays sorted by word.
            for part in parts {
                for (k, d) in part.delta {
                    *effect.delta.entry(k).or_insert(0) += d;
                }
                register(&mut pairs, &part.born);
            }
        } else {
            // SAFETY: single-threaded here; the list has no duplicates.
            unsafe { apply_merge(&ptr, &list, (a, b), new_id, &mut effect) };
            register(&mut pairs, &effect.born);
        }
        drop(list);
        for (&pair, &d) in &effect.delta {
            if pair == top.pair || d == 0 {
                continue;
            }
            let slot = pairs.entry(pair).or_default();
            slot.count += d;
            let now = slot.count;
            if now <= 0 {
                pairs.remove(&pair);
            } else if d > 0 {
                // Only pairs containing the new token grow, and they are new: push them once.
                heap.push(entry(pair, now));
            }
        }
        if effect.born.capacity() > 1 << 16 {
            // The first merges touch most words; do not keep their buffers for the whole run.
            effect.born = Vec::new();
            effect.delta = FxMap::default();
        }
        if merges.len().is_multiple_of(256) && !progress(merges.len() as u64) {
            break; // the caller asked to stop (e.g. Ctrl-C); it discards the result
        }
    }
    progress(merges.len() as u64);
    merges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference: recount every pair after every merge.
    fn naive(counts: &PieceCounts, num_merges: usize, min_frequency: u64) -> Vec<(u32, u32)> {
        let byte_rank = byte_order();
        let order = |id: u32| if id < 256 { byte_rank[id as usize] } else { id };
        let mut words: Vec<(Vec<u32>, i64)> = counts
            .iter()
            .map(|(p, &c)| (p.bytes().map(u32::from).collect(), c as i64))
            .collect();
        let mut merges = Vec::new();
        while merges.len() < num_merges {
            let mut pc: std::collections::HashMap<(u32, u32), i64> = Default::default();
            for (w, c) in &words {
                for p in w.windows(2) {
                    *pc.entry((p[0], p[1])).or_default() += c;
                }
            }
            let best = pc.iter().max_by(|x, y| {
                x.1.cmp(y.1).then_with(|| {
                    (order(y.0 .0), order(y.0 .1)).cmp(&(order(x.0 .0), order(x.0 .1)))
                })
            });
            let Some((&(a, b), &c)) = best else { break };
            if c < min_frequency.max(1) as i64 {
                break;
            }
            let new_id = 256 + merges.len() as u32;
            merges.push((a, b));
            for (w, _) in &mut words {
                let mut out = Vec::with_capacity(w.len());
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && w[i] == a && w[i + 1] == b {
                        out.push(new_id);
                        i += 2;
                    } else {
                        out.push(w[i]);
                        i += 1;
                    }
                }
                *w = out;
            }
        }
        merges
    }

    fn corpus(seed: u64, n: usize, alphabet: &[u8]) -> Vec<String> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let len = (next() % 40) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn incremental_equals_naive_recount() {
        for (seed, alphabet) in [
            (1, &b"ab "[..]),
            (2, &b"aab\n "[..]),
            (3, &b"abcde fg\n\t"[..]),
            (4, &b"aaaa b"[..]),
        ] {
            let texts = corpus(seed, 300, alphabet);
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            for (pattern, newline) in [(Pattern::Code, true), (Pattern::Gpt2, false)] {
                let mut t = Trainer::new(pattern, newline, "content");
                t.add_texts(&refs, 2);
                for min_freq in [1, 2, 5] {
                    let fast = t.train(200, min_freq, 2, &mut |_| true);
                    let slow = naive(t.counts(), 200, min_freq);
                    assert_eq!(fast, slow, "seed {seed} {pattern:?} min_freq {min_freq}");
                }
            }
        }
    }

    #[test]
    fn large_merges_match_naive_recount() {
        // One pair in >65k distinct words: exercises the buffer trimming after big merges
        // and (with 2 threads) the parallel rewrite.
        let texts: Vec<String> = (0..70_000u32)
            .map(|i| {
                format!("ab{}cab", char::from_u32(0x4E00 + i % 5000).unwrap())
                    + &"b".repeat((i % 7) as usize)
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for threads in [1, 2] {
            let mut t = Trainer::new(Pattern::Gpt2, false, "content");
            t.add_texts(&refs, threads);
            let fast = t.train(40, 1, threads, &mut |_| true);
            let slow = naive(t.counts(), 40, 1);
            assert_eq!(fast, slow, "threads {threads}");
        }
    }

    #[test]
    fn thread_count_invariance() {
        let texts = corpus(7, 2000, b"abcab  \n\txyz_01");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut results = Vec::new();
        for threads in [1, 2, 3, 8] {
            let mut t = Trainer::new(Pattern::Code, true, "content");
            t.add_texts(&refs, threads);
            results.push(t.train(300, 2, threads, &mut |_| true));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert!(!results[0].is_empty());
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-train-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn spilled_and_count_file_training_equal_in_memory() {
        let texts = corpus(11, 3000, b"abcab  \n\txyz_01");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut t = Trainer::new(Pattern::Code, true, "content");
        t.add_texts(&refs, 2);
        let distinct = t.unique_pieces() as u64;
        let want = t.train(300, 2, 2, &mut |_| true);
        let dir = tmp_dir("spill");
        for (budget, threads) in [(4000usize, 1usize), (20_000, 2), (60_000, 3), (1 << 30, 2)] {
            let mut c = PieceCounter::with_spill(Pattern::Code, true, budget, &dir);
            for part in refs.chunks(700) {
                c.add_texts(part, threads).unwrap();
                // Within the budget, or one minimal table (4 buckets) per thread below it.
                assert!(c.table_bytes() <= budget.max(threads * 4 * 33), "{budget}");
            }
            assert_eq!(c.spilled(), budget < 100_000, "budget {budget}");
            let (got, report) = train_counter(&mut c, 300, 2, 1, threads, &mut |_| true).unwrap();
            assert_eq!(got, want, "budget {budget} threads {threads}");
            assert_eq!(report.distinct, distinct);
        }
        // Runs are removed with their counter.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

        // Count files of disjoint parts, merged, train the same tokenizer.
        let mut files = Vec::new();
        for (k, part) in refs.chunks(1000).enumerate() {
            let mut c = PieceCounter::with_spill(Pattern::Code, true, 5000, &dir);
            c.add_texts(part, 2).unwrap();
            let f = dir.join(format!("counts-{k}.bin"));
            c.write(&f).unwrap();
            files.push(f);
        }
        let merged = dir.join("merged.bin");
        countfile::merge_files(&files, &merged).unwrap();
        for inputs in [files.clone(), vec![merged.clone()]] {
            let (settings, stats, got, report) =
                train_count_files(&inputs, 300, 2, 1, 2, &mut |_| true).unwrap();
            assert_eq!(got, want);
            assert_eq!(settings.pattern, Pattern::Code);
            assert_eq!(stats.documents, refs.len() as u64);
            assert_eq!(report.distinct, distinct);
        }
        // Pruning drops the rare pieces (and so changes the result on this corpus).
        let (_, _, pruned, report) =
            train_count_files(&files, 300, 2, 3, 2, &mut |_| true).unwrap();
        assert!(report.kept < report.distinct);
        assert_ne!(pruned, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
