//! The parallel shard packer: read -> clean -> deduplicate -> split -> redact -> tokenize ->
//! write shards (see `shard.rs` for the format).
//!
//! ```text
//!  a pool thread          rayon pool (N)        decider thread         rayon pool (N)       writer thread
//!  read + batch  ──A──▶  filters, exact key,  ─▶ reorder; exact and  ──B──▶ redact,      ─▶ reorder; append to
//!  (~1 MiB each)          MinHash signature      near dedup, split,        tokenize,         shards, fsync, rename
//!                                                resume skip               serialize
//! ```
//!
//! This file holds the configuration, the report and the feeding side ([`Packer`]); the
//! stages and the decider and writer threads are in `pack_stages.rs`.
//!
//! Every decision that depends on earlier documents (dedup, split counters, shard boundaries)
//! is taken by one thread in input order, and the parallel stages are pure functions of their
//! batch, so the shard bytes are identical for any thread count. Memory is bounded: at most
//! `max_in_flight` batches exist at once (a ticket is taken before a batch is read and
//! returned when the writer has written it); only the dedup sets grow with the corpus.
//!
//! Resume: the decider counts the documents each split has kept so far; those that fall in
//! shards already completed (and verified by the caller) are counted but not tokenized or
//! written, and shard numbering continues after them. Since shard boundaries depend only on
//! the ordered document stream, the resumed output is byte-identical to an uninterrupted run.
//!
//! Decisions and measurements (train-00000, 60 MB of Python, 32k vocabulary, 2 cores; see
//! `benchmarks/bench_pack.py` and BENCHMARKS.md):
//! * tokenizing in stage B, after the decider, means duplicates and documents of resumed
//!   shards are never tokenized (tokenizing in stage A was simpler but re-tokenized everything
//!   on resume);
//! * the file reader (decompression + JSON, ~15% of the CPU) runs on one of the pool's
//!   threads and, when it has to wait for a ticket, runs pending jobs instead. As an extra
//!   thread it made "1 thread" use ~1.2 cores and competed with the workers at 2 threads
//!   (2 threads were 1.6x one); as a semaphore-counted thread it idled cores whenever it
//!   held a permit but waited for a CPU (1.75 cores busy at 2 threads). Now 1 thread uses
//!   1.0 core, 2 threads keep 1.9 cores busy;
//! * workers serialize tokens to the shard's byte layout, so the writer thread only copies;
//!   the last shard is hashed while it is fsynced (the tail of a run is that shard's finish).

use crate::clean::filters::{CleanConfig, Cleaner};
use crate::clean::neardup::{MinHasher, NearConfig};
use crate::clean::redact::{Counts, Redactor};
use crate::corpus::read::{self, Record};
use crate::pack::shard::{token_bytes_for, ShardInfo};
use crate::pack::stages::{
    decide, run_caught, write, DeciderReport, Prepared, Shared, StageA, StageB, Staged, Tokenized,
    WriterReport,
};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::pack::stages::split_key;

/// Appends the token ids of a text to `out` (the tokenizer, without special tokens).
pub type Tokenize = Arc<dyn Fn(&str, &mut Vec<u32>) + Send + Sync>;
/// Called by the writer thread after each shard is durably in place.
pub type OnShard = Box<dyn FnMut(&ShardInfo) + Send>;
/// Reading progress that another thread can poll (for a progress bar), and a flag that stops
/// the reading early (Ctrl-C). The packer updates it after every batch.
#[derive(Debug, Default)]
pub struct Progress {
    documents: AtomicU64,
    bytes: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    /// Documents read so far (offered to the filters).
    pub fn documents(&self) -> u64 {
        self.documents.load(Ordering::Relaxed)
    }

    /// Source bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Ask the packer to stop reading: the file being read ends early and `add_file` returns
    /// an `Interrupted` error. Batches already in the pipeline are still processed.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// Everything the packer needs besides the tokenizer.
#[derive(Debug, Clone)]
pub struct PackConfig {
    pub out_dir: PathBuf,
    pub num_threads: usize,
    /// Close a shard before it would exceed this many tokens (a single longer document
    /// makes a shard of its own).
    pub shard_tokens: u64,
    pub clean: CleanConfig,
    pub exact_dedup: bool,
    pub near_dedup: Option<NearConfig>,
    pub redact: bool,
    pub valid_fraction: f64,
    pub text_field: String,
    pub vocab_size: u32,
    pub eot_id: u32,
    pub fingerprint: [u8; 32],
    /// Resume state per split (train, valid): (shards already complete, documents in them).
    pub resume: [(usize, u64); 2],
    pub batch_bytes: usize,
    pub max_in_flight: usize,
}

impl PackConfig {
    pub fn new(out_dir: impl Into<PathBuf>, vocab_size: u32, eot_id: u32) -> PackConfig {
        PackConfig {
            out_dir: out_dir.into(),
            num_threads: 1,
            shard_tokens: 50_000_000,
            clean: CleanConfig::default(),
            exact_dedup: true,
            near_dedup: None,
            redact: true,
            valid_fraction: 0.0,
            text_field: "content".into(),
            vocab_size,
            eot_id,
            fingerprint: [0; 32],
            resume: [(0, 0); 2],
            batch_bytes: 1 << 20,
            max_in_flight: 0,
        }
    }
}

/// Counts for one split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitReport {
    /// Documents kept (including those in resumed shards).
    pub documents: u64,
    /// Source bytes of the kept documents, before redaction.
    pub bytes: u64,
    /// Documents that were already in completed shards and so were not re-tokenized.
    pub resumed_documents: u64,
    /// Shards written by this run (resumed shards are not repeated here).
    pub shards: Vec<ShardInfo>,
    /// Tokens written by this run (separators included).
    pub tokens: u64,
}

/// What a packing run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackReport {
    pub files: u64,
    /// (path, reason) of input files skipped whole (e.g. not UTF-8).
    pub skipped_files: Vec<(String, String)>,
    /// Records read (documents offered to the filters).
    pub documents_in: u64,
    pub bytes_in: u64,
    /// JSON lines that were not objects with a string text field.
    pub invalid_records: u64,
    /// Documents removed by reason name (filters, "exact_duplicate", "near_duplicate").
    pub removed: BTreeMap<String, u64>,
    /// Bytes removed by reason name.
    pub removed_bytes: BTreeMap<String, u64>,
    pub redactions: Counts,
    /// Documents whose text was changed by redaction.
    pub redacted_documents: u64,
    pub train: SplitReport,
    pub valid: SplitReport,
}

struct Batch {
    idx: u64,
    records: Vec<Record>,
}

/// A running packer. Feed it with [`Packer::add_file`] / [`Packer::add_records`] (in the
/// order that defines the output), then call [`Packer::finish`].
pub struct Packer {
    config: PackConfig,
    pool: Arc<rayon::ThreadPool>,
    stage_a: Arc<StageA>,
    tx_a: Option<Sender<Staged<Prepared>>>,
    tickets: Receiver<()>,
    shared: Arc<Shared>,
    decider: Option<JoinHandle<DeciderReport>>,
    writer: Option<JoinHandle<WriterReport>>,
    batch: Vec<Record>,
    batch_bytes: usize,
    next_idx: u64,
    report: PackReport,
    progress: Arc<Progress>,
}

impl Packer {
    pub fn new(config: PackConfig, tokenize: Tokenize, on_shard: OnShard) -> io::Result<Packer> {
        std::fs::create_dir_all(&config.out_dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.out_dir.display())))?;
        let threads = config.num_threads.max(1);
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("codekiln-pack-{i}"))
                .build()
                .map_err(|e| io::Error::other(e.to_string()))?,
        );
        let in_flight = if config.max_in_flight > 0 {
            config.max_in_flight
        } else {
            4 * threads + 4
        };
        let (ticket_tx, tickets) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            ticket_tx.send(()).expect("ticket channel");
        }
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
        });
        let stage_a = Arc::new(StageA {
            cleaner: Cleaner::new(config.clean.clone()),
            hasher: config.near_dedup.as_ref().map(MinHasher::new),
            exact: config.exact_dedup,
            valid_fraction: config.valid_fraction,
        });
        let stage_b = Arc::new(StageB {
            redactor: config.redact.then(Redactor::new),
            tokenize,
            eot_id: config.eot_id,
            token_bytes: token_bytes_for(config.vocab_size),
        });
        let (tx_a, rx_a) = channel::<Staged<Prepared>>();
        let (tx_b, rx_b) = channel::<Staged<Tokenized>>();
        let decider = {
            let (pool, shared, cfg) = (pool.clone(), shared.clone(), config.clone());
            std::thread::Builder::new()
                .name("codekiln-pack-decide".into())
                .spawn(move || decide(cfg, rx_a, tx_b, pool, stage_b, shared))?
        };
        let writer = {
            let (shared, cfg) = (shared.clone(), config.clone());
            std::thread::Builder::new()
                .name("codekiln-pack-write".into())
                .spawn(move || write(cfg, rx_b, ticket_tx, on_shard, shared))?
        };
        Ok(Packer {
            config,
            pool,
            stage_a,
            tx_a: Some(tx_a),
            tickets,
            shared,
            decider: Some(decider),
            writer: Some(writer),
            batch: Vec::new(),
            batch_bytes: 0,
            next_idx: 0,
            report: PackReport::default(),
            progress: Arc::new(Progress::default()),
        })
    }

    /// The reading progress, to poll or cancel from another thread.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn check(&self) -> io::Result<()> {
        match self.shared.error() {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(()),
        }
    }

    fn push(&mut self, rec: Record) {
        self.report.documents_in += 1;
        self.report.bytes_in += rec.text.len() as u64;
        self.batch_bytes += rec.text.len() + 64;
        self.batch.push(rec);
        if self.batch_bytes >= self.config.batch_bytes {
            self.submit();
        }
    }

    fn submit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // Waits while `max_in_flight` batches are in the pipeline: memory stays bounded.
        if self.wait_ticket().is_err() {
            // The writer is gone (it only exits early after recording an error).
            self.batch.clear();
            self.batch_bytes = 0;
            return;
        }
        let batch = Batch {
            idx: self.next_idx,
            records: std::mem::take(&mut self.batch),
        };
        self.next_idx += 1;
        self.batch_bytes = 0;
        let stage = self.stage_a.clone();
        let tx = self.tx_a.clone().expect("packer already finished");
        self.pool.spawn_fifo(move || {
            let out = run_caught(|| stage.run(batch.records));
            let _ = tx.send((batch.idx, out));
        });
        let p = &self.progress;
        p.documents
            .store(self.report.documents_in, Ordering::Relaxed);
        p.bytes.store(self.report.bytes_in, Ordering::Relaxed);
    }

    /// Take a ticket for one more batch in flight. On a pool thread (the file reader runs on
    /// one), wait by running the pool's pending jobs: the reader is one of the `num_threads`
    /// workers rather than an extra thread competing with them, so one thread uses one core
    /// and two threads scale. Elsewhere (records fed from Python) block.
    fn wait_ticket(&self) -> Result<(), ()> {
        if rayon::current_thread_index().is_none() {
            return self.tickets.recv().map_err(|_| ());
        }
        loop {
            match self.tickets.try_recv() {
                Ok(()) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(()),
                Err(TryRecvError::Empty) => {}
            }
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                // Nothing to run: the batches in flight are with the decider or the writer.
                match self.tickets.recv_timeout(Duration::from_micros(200)) {
                    Ok(()) => return Ok(()),
                    Err(RecvTimeoutError::Disconnected) => return Err(()),
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        }
    }

    /// Read one file (see `read::read_file`). `name` is recorded as the document path of
    /// plain-text files (JSON lines carry their own metadata).
    pub fn add_file(&mut self, path: &Path, name: Option<&str>) -> io::Result<()> {
        self.check()?;
        let field = self.config.text_field.clone();
        let name = name.map(str::to_string);
        // Decompression and parsing run on one of the pool's threads (see `wait_ticket`), so
        // `num_threads` threads do all the heavy work.
        let pool = self.pool.clone();
        let stats = pool.install(|| {
            read::read_file(path, &field, true, |mut rec| {
                if rec.path.is_none() && read::FileKind::of(path) == read::FileKind::Text {
                    rec.path = name.clone().or_else(|| Some(path.display().to_string()));
                }
                self.push(rec);
                !self.progress.is_cancelled()
            })
        })?;
        if self.progress.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                format!("{}: reading interrupted", path.display()),
            ));
        }
        self.report.files += 1;
        self.report.invalid_records += stats.skipped_documents;
        if let Some(why) = stats.skipped_file {
            self.report
                .skipped_files
                .push((path.display().to_string(), why));
        }
        self.check()
    }

    /// Feed records produced elsewhere (Parquet, Hugging Face datasets, Python iterables).
    pub fn add_records(&mut self, records: Vec<Record>) -> io::Result<()> {
        self.check()?;
        for r in records {
            self.push(r);
        }
        self.check()
    }

    /// Count records the caller rejected before feeding them (e.g. Python's `ast.parse`
    /// filter), so that the report covers them.
    pub fn count_removed(&mut self, reason: &str, documents: u64, bytes: u64) {
        self.report.documents_in += documents;
        self.report.bytes_in += bytes;
        *self.report.removed.entry(reason.to_string()).or_default() += documents;
        *self
            .report
            .removed_bytes
            .entry(reason.to_string())
            .or_default() += bytes;
    }

    /// Count input lines the caller could not decode.
    pub fn count_invalid(&mut self, records: u64) {
        self.report.invalid_records += records;
    }

    /// Flush, wait for every stage, finish the last shards and return the report.
    pub fn finish(mut self) -> io::Result<PackReport> {
        self.submit();
        self.shutdown();
        let d = self.decider.take().expect("decider").join();
        let w = self.writer.take().expect("writer").join();
        self.check()?;
        let (d, w) = match (d, w) {
            (Ok(d), Ok(w)) => (d, w),
            _ => return Err(io::Error::other("a packing thread panicked")),
        };
        let mut report = std::mem::take(&mut self.report);
        for (k, v) in d.removed {
            *report.removed.entry(k).or_default() += v;
        }
        for (k, v) in d.removed_bytes {
            *report.removed_bytes.entry(k).or_default() += v;
        }
        report.redactions = w.redactions;
        report.redacted_documents = w.redacted_documents;
        let [train, valid] = d.splits;
        let [train_shards, valid_shards] = w.shards;
        report.train = SplitReport {
            shards: train_shards,
            tokens: w.tokens[0],
            ..train
        };
        report.valid = SplitReport {
            shards: valid_shards,
            tokens: w.tokens[1],
            ..valid
        };
        Ok(report)
    }

    fn shutdown(&mut self) {
        self.tx_a = None;
    }
}

impl Drop for Packer {
    fn drop(&mut self) {
        // Dropped without finish (an error in the caller, Ctrl-C): stop feeding and let the
        // stages drain. Shards that fill up meanwhile are complete and kept, but the open ones
        // stay `.tmp` files: closing them early would make shard boundaries that an
        // uninterrupted run does not have, and a resumed run must match one byte for byte.
        if self.decider.is_some() {
            self.shared.fail("packing was aborted".into());
        }
        self.shutdown();
        if let Some(h) = self.decider.take() {
            let _ = h.join();
        }
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::shard::{verify, HEADER_BYTES};
    use crate::pack::split::{split_of, Split};
    use std::fs;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-pack-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A byte-level "tokenizer": id = byte value; 256 is the separator.
    fn bytes_tokenizer() -> Tokenize {
        Arc::new(|t: &str, out: &mut Vec<u32>| out.extend(t.bytes().map(u32::from)))
    }

    fn corpus(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let body: String = (0..(i % 7 + 1))
                    .map(|j| format!("def f_{i}_{j}(x):\n    return x * {j} + {i}\n"))
                    .collect();
                Record {
                    text: body,
                    repo_name: Some(format!("repo{}", i % 13)),
                    path: Some(format!("f{i}.py")),
                    license: None,
                }
            })
            .collect()
    }

    fn config(dir: &Path, threads: usize) -> PackConfig {
        let mut c = PackConfig::new(dir, 257, 256);
        c.num_threads = threads;
        c.clean = CleanConfig::none();
        c.redact = false;
        c.valid_fraction = 0.3;
        c.shard_tokens = 2_000;
        c.batch_bytes = 500;
        c
    }

    fn pack(cfg: PackConfig, records: Vec<Record>) -> PackReport {
        let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
        for chunk in records.chunks(17) {
            p.add_records(chunk.to_vec()).unwrap();
        }
        p.finish().unwrap()
    }

    /// Read back every document of a split through the index.
    fn read_docs(dir: &Path, split: &str) -> Vec<String> {
        let mut docs = Vec::new();
        for i in 0.. {
            let p = dir.join(crate::pack::shard::shard_name(split, i));
            if !p.exists() {
                break;
            }
            let h = verify(&p, None).unwrap();
            let b = fs::read(&p).unwrap();
            let toks: Vec<u32> = b[HEADER_BYTES..h.index_offset() as usize]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect();
            let off: Vec<usize> = b[h.index_offset() as usize..]
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as usize)
                .collect();
            for w in off.windows(2) {
                assert_eq!(toks[w[1] - 1], 256);
                docs.push(
                    toks[w[0]..w[1] - 1]
                        .iter()
                        .map(|&t| t as u8 as char)
                        .collect(),
                );
            }
        }
        docs
    }

    fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_split_and_thread_invariance() {
        let records = corpus(300);
        let d1 = tmpdir("rt1");
        let r1 = pack(config(&d1, 1), records.clone());
        assert_eq!(r1.documents_in, 300);
        assert_eq!(r1.train.documents + r1.valid.documents, 300);
        assert!(r1.train.shards.len() > 2 && !r1.valid.shards.is_empty());
        // Every document comes back, in order, in the split of its repository.
        let train = read_docs(&d1, "train");
        let valid = read_docs(&d1, "valid");
        let mut want_train = Vec::new();
        let mut want_valid = Vec::new();
        for r in &records {
            match split_of(&split_key(r), 0.3) {
                Split::Train => want_train.push(r.text.clone()),
                Split::Valid => want_valid.push(r.text.clone()),
            }
        }
        assert_eq!(train, want_train);
        assert_eq!(valid, want_valid);
        for s in &r1.train.shards {
            assert!(s.tokens <= 2_000);
        }
        for threads in [2, 3, 8] {
            let d = tmpdir(&format!("rt{threads}"));
            let r = pack(config(&d, threads), records.clone());
            assert_eq!(dir_bytes(&d), dir_bytes(&d1), "threads={threads}");
            assert_eq!(r.train.shards, r1.train.shards);
        }
    }

    #[test]
    fn filters_dedup_and_report() {
        let mut records = corpus(50);
        let mut dup = records[3].clone();
        dup.text = dup.text.replace("    ", "\t");
        records.push(dup);
        records.push(Record {
            text: "x".into(),
            ..Record::default()
        });
        let d = tmpdir("dedup");
        let mut cfg = config(&d, 2);
        cfg.clean.min_bytes = Some(10);
        let r = pack(cfg, records);
        assert_eq!(r.removed.get("exact_duplicate"), Some(&1));
        assert_eq!(r.removed.get("too_small"), Some(&1));
        assert_eq!(r.removed_bytes.get("too_small"), Some(&1));
        assert_eq!(r.train.documents + r.valid.documents, 50);
    }

    #[test]
    fn resume_skips_completed_shards_and_matches() {
        let records = corpus(300);
        let full = tmpdir("resume-full");
        let r = pack(config(&full, 2), records.clone());
        // Pretend the run died after the first two train shards and the first valid shard.
        let part = tmpdir("resume-part");
        let mut resume = [(0usize, 0u64); 2];
        for (s, shards, keep) in [(0, &r.train.shards, 2), (1, &r.valid.shards, 1)] {
            for sh in &shards[..keep] {
                fs::copy(full.join(&sh.file), part.join(&sh.file)).unwrap();
                resume[s].1 += sh.documents;
            }
            resume[s].0 = keep;
        }
        fs::write(part.join("train-000002.bin.tmp"), b"partial garbage").unwrap();
        let mut cfg = config(&part, 2);
        cfg.resume = resume;
        let r2 = pack(cfg, records);
        assert_eq!(r2.train.resumed_documents, resume[0].1);
        assert_eq!(r2.train.shards.len(), r.train.shards.len() - 2);
        assert_eq!(r2.train.shards[..], r.train.shards[2..]);
        let mut a = dir_bytes(&full);
        let b = dir_bytes(&part);
        a.retain(|k, _| !k.ends_with(".tmp"));
        assert_eq!(a, b);
    }

    #[test]
    fn files_near_dedup_and_redaction() {
        let d = tmpdir("files");
        let inputs = tmpdir("files-in");
        let base: String = (0..200)
            .map(|i| format!("value_{i} = compute({i}, {})\n", i * 7))
            .collect();
        let near = base.replacen("compute(3,", "compute(4,", 1);
        let secret = format!("{base}EMAIL = 'someone@example.com'\n").replace("value_", "other_");
        fs::write(inputs.join("a.py"), &base).unwrap();
        fs::write(inputs.join("b.py"), &near).unwrap();
        fs::write(inputs.join("c.py"), &secret).unwrap();
        fs::write(inputs.join("d.py"), b"\xff\xfe not utf-8").unwrap();
        let mut cfg = config(&d, 2);
        cfg.valid_fraction = 0.0;
        cfg.near_dedup = Some(NearConfig::default());
        cfg.redact = true;
        cfg.shard_tokens = 1_000_000;
        let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
        for f in ["a.py", "b.py", "c.py", "d.py"] {
            p.add_file(&inputs.join(f), Some(f)).unwrap();
        }
        assert!(p.add_file(&inputs.join("missing.py"), None).is_err());
        let r = p.finish().unwrap();
        assert_eq!(r.files, 4);
        assert_eq!(r.skipped_files.len(), 1);
        assert_eq!(r.removed.get("near_duplicate"), Some(&1));
        assert_eq!(r.redactions.get(crate::clean::redact::Kind::Email), 1);
        let docs = read_docs(&d, "train");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], base);
        assert!(docs[1].ends_with("EMAIL = '<EMAIL>'\n"));
    }

    #[test]
    fn file_reader_runs_in_the_pool_for_any_thread_count() {
        // The reader works on a pool thread and runs pending jobs while it waits for a
        // ticket; with one thread it is the only worker. Tiny batches and one or two batches
        // in flight exercise that hand-off; the shards equal those of `add_records`.
        let records = corpus(200);
        let inputs = tmpdir("pool-in");
        let jsonl: String = records
            .iter()
            .map(|r| {
                let obj = serde_json::json!({
                    "content": r.text, "repo_name": r.repo_name, "path": r.path,
                });
                format!("{obj}\n")
            })
            .collect();
        let file = inputs.join("corpus.jsonl");
        fs::write(&file, jsonl).unwrap();
        let want_dir = tmpdir("pool-want");
        pack(config(&want_dir, 2), records);
        let want = dir_bytes(&want_dir);
        for threads in [1, 2, 3] {
            for in_flight in [1, 2] {
                let d = tmpdir(&format!("pool-{threads}-{in_flight}"));
                let mut cfg = config(&d, threads);
                cfg.max_in_flight = in_flight;
                let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
                p.add_file(&file, None).unwrap();
                let r = p.finish().unwrap();
                assert_eq!(r.documents_in, 200);
                assert_eq!(
                    dir_bytes(&d),
                    want,
                    "threads={threads} in_flight={in_flight}"
                );
            }
        }
    }

    #[test]
    fn cancel_stops_reading_a_file() {
        let records = corpus(3000);
        let inputs = tmpdir("cancel-in");
        let jsonl: String = records
            .iter()
            .map(|r| format!("{}\n", serde_json::json!({ "content": r.text })))
            .collect();
        let file = inputs.join("corpus.jsonl");
        fs::write(&file, jsonl).unwrap();
        let d = tmpdir("cancel");
        let mut cfg = config(&d, 2);
        cfg.max_in_flight = 2;
        let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
        let progress = p.progress();
        let canceller = std::thread::spawn(move || {
            while progress.documents() == 0 {
                std::thread::yield_now();
            }
            progress.cancel();
        });
        let err = p.add_file(&file, None).unwrap_err();
        canceller.join().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        assert!(err.to_string().contains("corpus.jsonl"), "{err}");
        // What was read before the cancel still flows through; the rest was never read.
        let r = p.finish().unwrap();
        assert!(
            r.documents_in > 0 && r.documents_in < 3000,
            "{}",
            r.documents_in
        );
    }

    #[test]
    fn abort_keeps_full_shards_and_never_closes_open_ones_early() {
        let records = corpus(3000);
        let want_dir = tmpdir("abort-ref");
        pack(config(&want_dir, 2), records.clone());
        let want = dir_bytes(&want_dir);
        let d = tmpdir("abort");
        let mut cfg = config(&d, 2);
        cfg.max_in_flight = 2;
        let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
        for chunk in records[..1500].chunks(17) {
            p.add_records(chunk.to_vec()).unwrap();
        }
        drop(p); // aborted mid-stream, without finish
        let got = dir_bytes(&d);
        let bins: Vec<_> = got.keys().filter(|n| n.ends_with(".bin")).collect();
        assert!(!bins.is_empty(), "the shards that filled up are kept");
        for name in bins {
            assert_eq!(
                got[name], want[name],
                "{name} differs from the uninterrupted run"
            );
        }
        assert!(
            got.keys().any(|n| n.ends_with(".tmp")),
            "the open shards stay .tmp"
        );
    }

    #[test]
    fn write_error_is_reported() {
        let d = tmpdir("err");
        let cfg = config(&d.join("file-not-dir"), 2);
        fs::write(d.join("file-not-dir"), b"x").unwrap();
        assert!(Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).is_err());
        // A tokenizer that panics: the error surfaces from finish, nothing hangs.
        let d2 = tmpdir("err2");
        let boom: Tokenize = Arc::new(|_: &str, _: &mut Vec<u32>| panic!("boom"));
        let mut p = Packer::new(config(&d2, 2), boom, Box::new(|_| {})).unwrap();
        let _ = p.add_records(corpus(100));
        let e = p.finish().unwrap_err().to_string();
        assert!(e.contains("boom"), "{e}");
    }
}
