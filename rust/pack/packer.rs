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
//! This file holds the feeding side ([`Packer`]); the configuration and report are in
//! `config.rs`, the stages and the decider and writer threads in `stages.rs`. Files are read
//! by the corpus engine (`corpus/scan.rs`) with one reader, in order, on the packer's pool.
//!
//! Prepared files (`prepared.rs`, packing on Ray) enter at the decider: [`Packer::add_prepared`]
//! sends their documents, already through stages A and B elsewhere, down the channel stage A's
//! batches take, and stage B passes their tokens through; the decider and the writer are the
//! same code whichever way a document came.
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
//!   threads and, when it has to wait for a ticket, runs pending jobs instead
//!   (`parallel::Tickets`). As an extra
//!   thread it made "1 thread" use ~1.2 cores and competed with the workers at 2 threads
//!   (2 threads were 1.6x one); as a semaphore-counted thread it idled cores whenever it
//!   held a permit but waited for a CPU (1.75 cores busy at 2 threads). Now 1 thread uses
//!   1.0 core, 2 threads keep 1.9 cores busy;
//! * workers serialize tokens to the shard's byte layout, so the writer thread only copies;
//!   the last shard is hashed while it is fsynced (the tail of a run is that shard's finish).

use std::io;
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::ThreadPool;

use crate::corpus::read::Record;
use crate::corpus::scan::{self, Input, Options, Progress};
use crate::error::{Context, Error, Result};
use crate::pack::config::{OnShard, PackConfig, PackReport, SplitReport, Tokenize};
use crate::pack::prepared;
use crate::pack::stages::{
    decide, run_caught, stages, write, DeciderReport, Prepared, Shared, StageA, Staged, Tokenized,
    WriterReport,
};
use crate::parallel::{self, Tickets};

struct Batch {
    idx: u64,
    records: Vec<Record>,
}

/// A running packer. Feed it with [`Packer::add_files`] / [`Packer::add_records`] (in the
/// order that defines the output), then call [`Packer::finish`].
pub struct Packer {
    config: PackConfig,
    pool: Arc<ThreadPool>,
    stage_a: Arc<StageA>,
    tx_a: Option<Sender<Staged<Prepared>>>,
    tickets: Tickets,
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
    pub fn new(config: PackConfig, tokenize: Tokenize, on_shard: OnShard) -> Result<Packer> {
        std::fs::create_dir_all(&config.out_dir).at(&config.out_dir)?;
        let pool = parallel::pool(config.num_threads);
        let threads = pool.current_num_threads();
        let in_flight = if config.max_in_flight > 0 {
            config.max_in_flight
        } else {
            4 * threads + 4
        };
        // The writer returns a ticket per batch written; when it is gone, taking fails.
        let (tickets, ticket_return) = Tickets::new(in_flight);
        let shared = Arc::new(Shared::default());
        let (stage_a, stage_b) = stages(&config, tokenize);
        let (stage_a, stage_b) = (Arc::new(stage_a), Arc::new(stage_b));
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
                .spawn(move || write(cfg, rx_b, ticket_return, on_shard, shared))?
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

    /// The documents and bytes read so far (files and records), to poll from another
    /// thread, and the flag that cancels reading.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn check(&self) -> Result<()> {
        match self.shared.error() {
            Some(e) => Err(e),
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
        if self.tickets.take().is_err() {
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
    }

    /// Read files, in order, on the packer's pool (see `corpus/scan.rs`): decompression and
    /// parsing run on one of its threads, so `num_threads` threads do all the heavy work.
    /// `watch(documents, bytes)` is called from this thread now and then (cumulative over
    /// the packer's inputs); returning `false` cancels the reading (an interruption error).
    pub fn add_files(
        &mut self,
        inputs: &[Input],
        watch: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<()> {
        self.check()?;
        let opts = Options {
            text_field: self.config.text_field.clone(),
            with_meta: true,
            strict: self.config.strict,
        };
        let (pool, progress, shared) = (
            self.pool.clone(),
            self.progress.clone(),
            self.shared.clone(),
        );
        let files = scan::read_files(
            &pool,
            inputs,
            &opts,
            &progress,
            &mut [|rec: Record| {
                self.push(rec);
                !shared.failed()
            }],
            &mut |p| watch(p.documents(), p.bytes()),
        )?;
        self.report.files += files.files;
        self.report.invalid_records += files.skipped_documents;
        self.report.skipped_files.extend(files.skipped_files);
        self.check()
    }

    /// [`Packer::add_files`] for one file, without progress.
    pub fn add_file(&mut self, path: &Path, name: Option<&str>) -> Result<()> {
        let input = Input {
            path: path.to_path_buf(),
            name: name.map(str::to_string),
        };
        self.add_files(&[input], &mut |_, _| true)
    }

    /// Feed a prepared file (`prepared.rs`: one input file's documents after stages A and B,
    /// made with settings `key`): its documents go through this packer's decider and writer
    /// in order, as if the input file were read here, and its reading summary is added to
    /// the report. A damaged or stale file is an error naming it (checked in a first pass:
    /// nothing of it is fed). Memory: one batch of it at a time.
    pub fn add_prepared(&mut self, path: &Path, key: &[u8; 32]) -> Result<()> {
        self.check()?;
        // Earlier records first: the output follows the order of the calls.
        self.submit();
        let s = prepared::check(path, key)?;
        self.report.files += s.files;
        self.report.documents_in += s.documents_in;
        self.report.bytes_in += s.bytes_in;
        self.report.invalid_records += s.invalid_records;
        self.report.skipped_files.extend(s.skipped_files);
        for (reason, (documents, bytes)) in &s.removed {
            self.count_removed(reason, *documents, *bytes);
        }
        self.progress.add(s.documents_in, s.bytes_in);
        let batch_bytes = self.config.batch_bytes;
        prepared::read_docs(path, batch_bytes, |docs| self.submit_prepared(docs))?;
        self.check()
    }

    fn submit_prepared(&mut self, docs: Vec<Prepared>) {
        if self.shared.failed() || self.tickets.take().is_err() {
            return;
        }
        let idx = self.next_idx;
        self.next_idx += 1;
        let tx = self.tx_a.as_ref().expect("packer already finished");
        let _ = tx.send((idx, Ok(docs)));
    }

    /// Feed records produced elsewhere (Parquet, Hugging Face datasets, Python iterables).
    pub fn add_records(&mut self, records: Vec<Record>) -> Result<()> {
        self.check()?;
        let bytes = records.iter().map(|r| r.text.len() as u64).sum();
        self.progress.add(records.len() as u64, bytes);
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
    pub fn finish(mut self) -> Result<PackReport> {
        self.submit();
        self.shutdown();
        let d = self.decider.take().expect("decider").join();
        let w = self.writer.take().expect("writer").join();
        self.check()?;
        let (d, w) = match (d, w) {
            (Ok(d), Ok(w)) => (d, w),
            (Err(p), _) | (_, Err(p)) => return Err(Error::panic(p)),
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
            self.shared
                .fail(Error::io(io::Error::other("packing was aborted")));
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
