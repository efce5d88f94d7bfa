//! Bounded-memory counting: piece tables that know their size, and sorted runs on disk.
//!
//! Each counting worker owns one [`Table`]. With a memory budget, a table that would grow past
//! its share (budget / tables) is instead written to disk as a sorted run (a count file,
//! `countfile.rs`) and emptied; at the end all runs are merged in one streaming k-way pass
//! (an external sort). Counts are sums, so the merged counts -- and the trained tokenizer --
//! are the same as in memory, whatever the budget or the thread count.
//!
//! What the budget covers: the tables, including the moment a hash table grows (old and new
//! buckets both alive: 3x the old bucket array) and the sorted vector a spill builds. What it
//! does not: the text in flight (about `2 * threads + 2` batches of 1 MB), reader buffers and
//! the interpreter; and, after counting, the merge phase, whose memory depends on the number
//! of distinct pieces kept (see `min_count` pruning in `train.rs`).

use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use compact_str::CompactString;

use crate::bpe::countfile::{CountWriter, Settings, Stats};
use crate::bpe::vocab::FxMap;
use crate::error::Result;

/// Unique piece -> number of occurrences.
pub type PieceCounts = FxMap<CompactString, u64>;

/// Bytes per hash-table bucket: the entry and hashbrown's control byte.
const BUCKET: usize = size_of::<(CompactString, u64)>() + 1;
/// Longest piece `CompactString` keeps inline (longer ones are a heap allocation).
const INLINE: usize = size_of::<CompactString>();

/// One worker's piece counts and the heap bytes its long pieces use.
#[derive(Default)]
pub struct Table {
    pub map: PieceCounts,
    heap: usize,
}

/// hashbrown's bucket count for a table that can hold `capacity` items.
fn buckets(capacity: usize) -> usize {
    match capacity {
        0 => 0,
        1..=3 => 4,
        4..=7 => 8,
        c => (c * 8 / 7).next_power_of_two(),
    }
}

impl Table {
    /// Estimated bytes this table holds now.
    pub fn bytes(&self) -> usize {
        buckets(self.map.capacity()) * BUCKET + self.heap
    }

    /// Estimated bytes at the peak of the next growth (old and new bucket arrays).
    fn growth_peak(&self) -> usize {
        3 * buckets(self.map.capacity()).max(4) * BUCKET + self.heap
    }

    /// Count one occurrence of `piece`; a new piece that would grow the table past `spill`'s
    /// share first spills the table to disk.
    #[inline]
    pub fn add(&mut self, piece: &str, spill: Option<&Spill>) -> Result<()> {
        if let Some(c) = self.map.get_mut(piece) {
            *c += 1;
            return Ok(());
        }
        if let Some(s) = spill {
            if self.map.len() == self.map.capacity()
                && !self.map.is_empty()
                && self.growth_peak() > s.share()
            {
                s.write_run(self)?;
            }
        }
        if piece.len() > INLINE {
            self.heap += piece.len();
        }
        self.map.insert(CompactString::from(piece), 1);
        Ok(())
    }

    /// Add all of `other`'s counts.
    pub fn absorb(&mut self, other: Table) {
        if other.map.len() > self.map.len() {
            let small = std::mem::replace(self, other);
            return self.absorb(small);
        }
        for (k, v) in other.map {
            let long = k.len() > INLINE;
            let len = k.len();
            let slot = self.map.entry(k).or_insert_with(|| 0);
            if *slot == 0 && long {
                self.heap += len;
            }
            *slot += v;
        }
    }

    /// The entries sorted by piece bytes; the table is empty afterwards (keeping its buckets).
    pub fn drain_sorted(&mut self) -> Vec<(CompactString, u64)> {
        let mut v: Vec<(CompactString, u64)> = self.map.drain().collect();
        v.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.heap = 0;
        v
    }
}

/// Where and when tables spill: the directory, the per-table share of the budget and the
/// runs written so far. The run files are removed when the `Spill` is dropped.
pub struct Spill {
    dir: PathBuf,
    settings: Settings,
    budget: usize,
    share: AtomicUsize,
    next: AtomicUsize,
    runs: Mutex<Vec<PathBuf>>,
}

impl Spill {
    /// Spill under `dir` (which must exist) when the tables would exceed `budget` bytes.
    pub fn new(dir: &Path, settings: Settings, budget: usize) -> Spill {
        Spill {
            dir: dir.to_path_buf(),
            settings,
            budget,
            share: AtomicUsize::new(budget),
            next: AtomicUsize::new(0),
            runs: Mutex::new(Vec::new()),
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    fn share(&self) -> usize {
        self.share.load(Ordering::Relaxed)
    }

    /// Split the budget between `tables` tables.
    pub fn set_tables(&self, tables: usize) {
        self.share
            .store(self.budget / tables.max(1), Ordering::Relaxed);
    }

    /// Runs written so far.
    pub fn runs(&self) -> Vec<PathBuf> {
        self.runs.lock().unwrap().clone()
    }

    /// Write `table` as a sorted run and empty it.
    pub fn write_run(&self, table: &mut Table) -> Result<()> {
        let entries = table.drain_sorted();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("run-{}-{n:06}.ckcounts", std::process::id()));
        let mut w = CountWriter::create(&path, self.settings)?;
        self.runs.lock().unwrap().push(path);
        for (piece, count) in &entries {
            w.push(piece.as_bytes(), *count)?;
        }
        w.finish(Stats::default())?;
        Ok(())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        for p in self.runs.get_mut().unwrap().drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_hashbrown_growth() {
        let mut t = Table::default();
        assert_eq!(t.bytes(), 0);
        for i in 0..1000 {
            t.add(&format!("p{i}"), None).unwrap();
            assert!(buckets(t.map.capacity()) >= t.map.capacity());
        }
        let long = "x".repeat(100);
        t.add(&long, None).unwrap();
        t.add(&long, None).unwrap();
        assert_eq!(t.heap, 100);
        assert!(t.bytes() >= 1001 * BUCKET);
        let v = t.drain_sorted();
        assert_eq!(v.len(), 1001);
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t.bytes(), buckets(t.map.capacity()) * BUCKET);
    }
}
