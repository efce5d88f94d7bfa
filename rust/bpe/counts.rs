//! Stage 1 of training: pre-tokenize documents and count unique pieces, in parallel.
//!
//! Each worker counts into its own hash map (u64 counts: i32 overflows on big corpora);
//! the partial maps are kept across `add_*` calls and merged only when the counts are needed
//! (merging per batch measured as a large share of counting time). Counts are sums, so they
//! never depend on the thread count or on the order the files were read in.
//!
//! In-memory texts are split into `num_threads` runs of about equal bytes. Files go through
//! the corpus engine (`corpus/scan.rs`): readers and counting jobs share one pool of
//! `num_threads` threads, so N threads keep N cores busy, reading included.

use std::path::PathBuf;
use std::sync::Mutex;

use compact_str::CompactString;
use rayon::prelude::*;

use crate::bpe::pretokenize::{pieces, Pattern};
use crate::bpe::vocab::FxMap;
use crate::corpus::scan::{self, FilesReport, Input, Options, Progress};
use crate::error::Result;
use crate::parallel;

/// Unique piece -> number of occurrences.
pub type PieceCounts = FxMap<CompactString, u64>;

/// Documents handed to a counting job at once (bytes of text, about).
const BATCH_BYTES: usize = 1 << 20;

fn count_into(map: &mut PieceCounts, text: &str, pattern: Pattern, newline: bool) -> u64 {
    let mut n = 0;
    for piece in pieces(text, pattern, newline) {
        *map.entry_ref(piece).or_insert(0) += 1;
        n += 1;
    }
    n
}

fn merge_counts(mut maps: Vec<PieceCounts>) -> PieceCounts {
    maps.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut it = maps.into_iter();
    let mut total = it.next().unwrap_or_default();
    for m in it {
        for (k, v) in m {
            *total.entry(k).or_insert(0) += v;
        }
    }
    total
}

/// Piece counts accumulated over any number of `add_*` calls.
pub struct PieceCounter {
    pub pattern: Pattern,
    pub newline: bool,
    /// Per-worker partial counts, merged only when needed.
    partials: Vec<PieceCounts>,
    pub documents: u64,
    pub total_bytes: u64,
    pub total_pieces: u64,
}

impl PieceCounter {
    pub fn new(pattern: Pattern, newline: bool) -> PieceCounter {
        PieceCounter {
            pattern,
            newline,
            partials: Vec::new(),
            documents: 0,
            total_bytes: 0,
            total_pieces: 0,
        }
    }

    /// All counts so far (merges the partial maps into one).
    pub fn counts(&mut self) -> &PieceCounts {
        if self.partials.len() != 1 {
            let merged = merge_counts(std::mem::take(&mut self.partials));
            self.partials.push(merged);
        }
        &self.partials[0]
    }

    /// All counts so far; the counter is empty afterwards.
    pub fn take_counts(&mut self) -> PieceCounts {
        self.counts();
        std::mem::take(&mut self.partials).pop().unwrap_or_default()
    }

    /// Count in-memory texts: `num_threads` runs of about equal bytes, each counted into its
    /// own partial map.
    pub fn add_texts(&mut self, texts: &[&str], num_threads: usize) {
        let (pattern, newline) = (self.pattern, self.newline);
        let n = parallel::threads_for(num_threads, texts.len());
        if self.partials.len() < n {
            self.partials.resize_with(n, PieceCounts::default);
        }
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut chunks: Vec<&[&str]> = Vec::with_capacity(n);
        let (mut begin, mut acc) = (0usize, 0usize);
        for (i, t) in texts.iter().enumerate() {
            acc += t.len();
            if acc * n >= total * (chunks.len() + 1) && chunks.len() + 1 < n {
                chunks.push(&texts[begin..=i]);
                begin = i + 1;
            }
        }
        chunks.push(&texts[begin..]);
        let pieces: u64 = parallel::install(n, || {
            self.partials[..chunks.len()]
                .par_iter_mut()
                .zip(chunks.par_iter())
                .map(|(map, chunk)| {
                    chunk
                        .iter()
                        .map(|t| count_into(map, t, pattern, newline))
                        .sum::<u64>()
                })
                .sum()
        });
        self.documents += texts.len() as u64;
        self.total_bytes += total as u64;
        self.total_pieces += pieces;
    }

    /// Read and count files on `num_threads` threads (reading included). `progress(done,
    /// total)` (bytes on disk) is called from this thread; returning `false` stops reading
    /// and the call returns an interruption.
    pub fn add_files(
        &mut self,
        paths: &[PathBuf],
        text_field: &str,
        num_threads: usize,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<FilesReport> {
        let inputs: Vec<Input> = paths.iter().map(Input::new).collect();
        let n = parallel::threads(num_threads);
        let pool = parallel::pool(n);
        let (pattern, newline) = (self.pattern, self.newline);
        let maps: Vec<Mutex<(PieceCounts, u64)>> = (0..pool.current_num_threads())
            .map(|_| Mutex::default())
            .collect();
        let work = |batch: Vec<String>| {
            // Jobs run on `pool`: one map per worker, never contended.
            let mut guard = maps[rayon::current_thread_index().unwrap_or(0)]
                .lock()
                .unwrap();
            let (map, pieces) = &mut *guard;
            for text in &batch {
                *pieces += count_into(map, text, pattern, newline);
            }
        };
        let opts = Options {
            text_field: text_field.to_string(),
            with_meta: false,
            ..Options::default()
        };
        let report = scan::read_batches(
            &pool,
            &inputs,
            &opts,
            &Progress::default(),
            n,
            BATCH_BYTES,
            2 * n + 2,
            &work,
            &mut |p| progress(p.disk_bytes(), p.total_disk_bytes()),
        )?;
        self.documents += report.documents;
        self.total_bytes += report.bytes;
        for m in maps {
            let (map, pieces) = m.into_inner().unwrap();
            self.total_pieces += pieces;
            if !map.is_empty() {
                self.partials.push(map);
            }
        }
        if self.partials.len() > 4 * n {
            self.counts();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_count_like_texts_for_any_thread_count() {
        let dir = std::env::temp_dir().join(format!("codekiln-counts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let texts: Vec<String> = (0..50)
            .map(|i| format!("def f{i}(x):\n  return x + {}\n", i * 7))
            .collect();
        let mut paths = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let p = dir.join(format!("f{i}.py"));
            std::fs::write(&p, t).unwrap();
            paths.push(p);
        }
        let bad = dir.join("bad.py");
        std::fs::write(&bad, b"\xff\xfe").unwrap();
        paths.push(bad);
        let mut from_texts = PieceCounter::new(Pattern::Code, true);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        from_texts.add_texts(&refs, 1);
        for threads in [1, 2, 3] {
            let mut from_files = PieceCounter::new(Pattern::Code, true);
            let mut calls = 0;
            let report = from_files
                .add_files(&paths, "content", threads, &mut |_, _| {
                    calls += 1;
                    true
                })
                .unwrap();
            assert!(calls >= 1);
            assert_eq!(report.files, 51);
            assert_eq!(report.skipped_files.len(), 1);
            assert_eq!(report.documents, 50);
            assert_eq!(from_files.counts(), from_texts.counts());
            assert_eq!(from_files.total_pieces, from_texts.total_pieces);
        }
        let missing = vec![dir.join("nope.py")];
        let err = PieceCounter::new(Pattern::Code, true)
            .add_files(&missing, "content", 1, &mut |_, _| true)
            .unwrap_err();
        assert!(err.to_string().contains("nope.py"));
        let err = PieceCounter::new(Pattern::Code, true)
            .add_files(&paths, "content", 2, &mut |_, _| false)
            .unwrap_err();
        assert!(err.is_interrupted());
    }
}
