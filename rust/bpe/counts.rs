//! Stage 1 of training: pre-tokenize documents and count unique pieces, in parallel.
//!
//! Each worker counts into its own table (u64 counts: i32 overflows on big corpora); the
//! tables are kept across `add_*` calls and merged only when the counts are needed (merging
//! per batch measured as a large share of counting time). Counts are sums, so they never
//! depend on the thread count or on the order the files were read in.
//!
//! With a memory budget ([`PieceCounter::with_spill`]) tables spill sorted runs to disk
//! instead of growing past their share (`spill.rs`); [`PieceCounter::for_each_sorted`] and
//! [`PieceCounter::write`] then merge the runs from disk.
//!
//! In-memory texts are split into `num_threads` runs of about equal bytes. Files go through
//! the corpus engine (`corpus/scan.rs`): readers and counting jobs share one pool of
//! `num_threads` threads, so N threads keep N cores busy, reading included.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::bpe::countfile::{self, CountWriter, Settings, Sink, Stats};
use crate::bpe::pretokenize::{pieces, Pattern};
pub use crate::bpe::spill::PieceCounts;
use crate::bpe::spill::{Spill, Table};
use crate::corpus::scan::{self, FilesReport, Input, Options, Progress};
use crate::error::{Error, Result};
use crate::parallel;

/// Documents handed to a counting job at once (bytes of text, about).
const BATCH_BYTES: usize = 1 << 20;

fn count_into(
    table: &mut Table,
    spill: Option<&Spill>,
    text: &str,
    pattern: Pattern,
    newline: bool,
) -> Result<u64> {
    let mut n = 0;
    for piece in pieces(text, pattern, newline) {
        table.add(piece, spill)?;
        n += 1;
    }
    Ok(n)
}

/// Where counting stands, for progress reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountProgress {
    /// Bytes on disk read so far and in all (0 when unknown).
    pub done: u64,
    pub total: u64,
    /// Entries in the in-memory tables (distinct pieces when nothing spilled).
    pub entries: u64,
    /// Estimated bytes of the in-memory tables.
    pub table_bytes: u64,
    /// Sorted runs written to disk so far.
    pub runs: u64,
}

/// Piece counts accumulated over any number of `add_*` calls.
pub struct PieceCounter {
    pub pattern: Pattern,
    pub newline: bool,
    /// Recorded in count files (see [`Settings::newline_token`]); counting ignores it.
    pub newline_token: bool,
    /// Fail on an input file that cannot be read to its end instead of skipping the rest of
    /// it (see `corpus::read`).
    pub strict: bool,
    /// One table per worker, merged only when needed.
    tables: Vec<Table>,
    spill: Option<Spill>,
    pub documents: u64,
    pub total_bytes: u64,
    pub total_pieces: u64,
}

impl PieceCounter {
    pub fn new(pattern: Pattern, newline: bool) -> PieceCounter {
        PieceCounter {
            pattern,
            newline,
            newline_token: newline,
            strict: false,
            tables: Vec::new(),
            spill: None,
            documents: 0,
            total_bytes: 0,
            total_pieces: 0,
        }
    }

    /// A counter whose tables stay within `budget` bytes by spilling sorted runs under `dir`
    /// (an existing directory; the runs are removed when the counter is dropped).
    pub fn with_spill(pattern: Pattern, newline: bool, budget: usize, dir: &Path) -> PieceCounter {
        let mut c = PieceCounter::new(pattern, newline);
        c.spill = Some(Spill::new(dir, c.settings(), budget));
        c
    }

    pub fn settings(&self) -> Settings {
        Settings {
            pattern: self.pattern,
            newline: self.newline,
            newline_token: self.newline_token,
        }
    }

    /// Whether any table went to disk (then the counts are only available sorted).
    pub fn spilled(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| !s.runs().is_empty())
    }

    /// Sorted runs written so far.
    pub fn runs(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.runs().len())
    }

    /// What the counted input held (`entries` is 0: distinct pieces are known after a merge).
    pub fn stats(&self) -> Stats {
        Stats {
            documents: self.documents,
            bytes: self.total_bytes,
            pieces: self.total_pieces,
            entries: 0,
        }
    }

    /// Estimated bytes of the in-memory tables.
    pub fn table_bytes(&self) -> usize {
        self.tables.iter().map(Table::bytes).sum()
    }

    fn ensure_tables(&mut self, n: usize) {
        if self.tables.len() < n {
            self.tables.resize_with(n, Table::default);
        }
        if let Some(s) = &self.spill {
            s.set_tables(self.tables.len());
        }
    }

    /// All counts so far, in memory (merges the tables into one).
    ///
    /// # Panics
    /// If the counter spilled (use [`PieceCounter::for_each_sorted`]).
    pub fn counts(&mut self) -> &PieceCounts {
        assert!(!self.spilled(), "the counts are on disk");
        if self.tables.len() != 1 {
            let mut tables = std::mem::take(&mut self.tables);
            tables.sort_by_key(|t| std::cmp::Reverse(t.map.len()));
            let mut it = tables.into_iter();
            let mut total = it.next().unwrap_or_default();
            for t in it {
                total.absorb(t);
            }
            self.tables.push(total);
        }
        &self.tables[0].map
    }

    /// All counts so far; the counter is empty afterwards.
    ///
    /// # Panics
    /// If the counter spilled (use [`PieceCounter::for_each_sorted`]).
    pub fn take_counts(&mut self) -> PieceCounts {
        self.counts();
        std::mem::take(&mut self.tables)
            .pop()
            .map(|t| t.map)
            .unwrap_or_default()
    }

    /// Write every non-empty table as a run (when spilling); the runs' paths.
    fn spill_all(&mut self) -> Result<Vec<PathBuf>> {
        let spill = self.spill.as_ref().expect("spill_all needs a spill");
        for t in &mut self.tables {
            if !t.map.is_empty() {
                spill.write_run(t)?;
            }
        }
        self.tables.clear();
        Ok(spill.runs())
    }

    /// Call `f(piece, count)` for every distinct piece, in increasing byte order, and return
    /// how many there were; the counter is empty afterwards.
    pub fn for_each_sorted(&mut self, f: &mut Sink<'_>) -> Result<u64> {
        if self.spilled() {
            let runs = self.spill_all()?;
            let (_, mut readers) = countfile::open_all(&runs)?;
            return Ok(countfile::merge(&mut readers, f)?.entries);
        }
        let counts = self.take_counts();
        let mut v: Vec<(&str, u64)> = counts.iter().map(|(k, &c)| (k.as_str(), c)).collect();
        v.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (p, c) in &v {
            f(p.as_bytes(), *c)?;
        }
        Ok(v.len() as u64)
    }

    /// With spills: write all tables to disk and return the sorted runs (to be merged).
    pub fn into_runs(&mut self) -> Result<Vec<PathBuf>> {
        if self.spilled() {
            self.spill_all()
        } else {
            Ok(Vec::new())
        }
    }

    /// Write the counts as a count file at `out` (written directly: callers give a temporary
    /// name and rename); the counter is empty afterwards.
    pub fn write(&mut self, out: &Path) -> Result<Stats> {
        let stats = self.stats();
        let mut w = CountWriter::create(out, self.settings())?;
        self.for_each_sorted(&mut |p, c| w.push(p, c))?;
        w.finish(stats)
    }

    /// Count in-memory texts: `num_threads` runs of about equal bytes, each counted into its
    /// own table.
    pub fn add_texts(&mut self, texts: &[&str], num_threads: usize) -> Result<()> {
        let (pattern, newline) = (self.pattern, self.newline);
        let n = parallel::threads_for(num_threads, texts.len());
        self.ensure_tables(n);
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
        let spill = self.spill.as_ref();
        let pieces: Result<u64> = parallel::install(n, || {
            self.tables[..chunks.len()]
                .par_iter_mut()
                .zip(chunks.par_iter())
                .map(|(table, chunk)| {
                    let mut sum = 0;
                    for t in chunk.iter() {
                        sum += count_into(table, spill, t, pattern, newline)?;
                    }
                    Ok(sum)
                })
                .sum()
        });
        self.documents += texts.len() as u64;
        self.total_bytes += total as u64;
        self.total_pieces += pieces?;
        Ok(())
    }

    /// Read and count files on `num_threads` threads (reading included). `progress` is
    /// called from this thread; returning `false` stops reading and the call returns an
    /// interruption.
    pub fn add_files(
        &mut self,
        paths: &[PathBuf],
        text_field: &str,
        num_threads: usize,
        progress: &mut dyn FnMut(&CountProgress) -> bool,
    ) -> Result<FilesReport> {
        let inputs: Vec<Input> = paths.iter().map(Input::new).collect();
        let n = parallel::threads(num_threads);
        let pool = parallel::pool(n);
        let (pattern, newline) = (self.pattern, self.newline);
        self.ensure_tables(pool.current_num_threads());
        let spill = self.spill.as_ref();
        let tables: Vec<Mutex<(Table, u64)>> = std::mem::take(&mut self.tables)
            .into_iter()
            .map(|t| Mutex::new((t, 0)))
            .collect();
        // Per table: (entries, bytes) as of its last batch, for progress reports.
        let sizes: Vec<(AtomicUsize, AtomicUsize)> = tables
            .iter()
            .map(|t| {
                let t = &t.lock().unwrap().0;
                (AtomicUsize::new(t.map.len()), AtomicUsize::new(t.bytes()))
            })
            .collect();
        let failed = AtomicBool::new(false);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let work = |batch: Vec<String>| {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            // Jobs run on `pool`: one table per worker, never contended.
            let i = rayon::current_thread_index().unwrap_or(0);
            let mut guard = tables[i].lock().unwrap();
            let (table, pieces) = &mut *guard;
            for text in &batch {
                match count_into(table, spill, text, pattern, newline) {
                    Ok(k) => *pieces += k,
                    Err(e) => {
                        failure.lock().unwrap().get_or_insert(e);
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
            sizes[i].0.store(table.map.len(), Ordering::Relaxed);
            sizes[i].1.store(table.bytes(), Ordering::Relaxed);
        };
        let opts = Options {
            text_field: text_field.to_string(),
            with_meta: false,
            strict: self.strict,
        };
        let result = scan::read_batches(
            &pool,
            &inputs,
            &opts,
            &Progress::default(),
            n,
            BATCH_BYTES,
            2 * n + 2,
            &work,
            &mut |p| {
                let sum = |k: usize| -> u64 {
                    sizes
                        .iter()
                        .map(|s| [&s.0, &s.1][k].load(Ordering::Relaxed) as u64)
                        .sum()
                };
                let report = CountProgress {
                    done: p.disk_bytes(),
                    total: p.total_disk_bytes(),
                    entries: sum(0),
                    table_bytes: sum(1),
                    runs: spill.map_or(0, |s| s.runs().len() as u64),
                };
                !failed.load(Ordering::Relaxed) && progress(&report)
            },
        );
        for m in tables {
            let (table, pieces) = m.into_inner().unwrap();
            self.total_pieces += pieces;
            self.tables.push(table);
        }
        if let Some(e) = failure.into_inner().unwrap() {
            return Err(e);
        }
        let report = result?;
        self.documents += report.documents;
        self.total_bytes += report.bytes;
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
        from_texts.add_texts(&refs, 1).unwrap();
        for threads in [1, 2, 3] {
            let mut from_files = PieceCounter::new(Pattern::Code, true);
            let mut calls = 0;
            let report = from_files
                .add_files(&paths, "content", threads, &mut |_| {
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
        // A missing input that was named is an error naming it (damaged files are skipped
        // unless strict: `corpus::read`'s tests).
        let missing = vec![dir.join("nope.py")];
        let err = PieceCounter::new(Pattern::Code, true)
            .add_files(&missing, "content", 1, &mut |_| true)
            .unwrap_err();
        assert!(err.to_string().contains("nope.py"));
        let err = PieceCounter::new(Pattern::Code, true)
            .add_files(&paths, "content", 2, &mut |_| false)
            .unwrap_err();
        assert!(err.is_interrupted());
    }
}
