//! The stages of the packer (see `packer.rs` for the pipeline): the per-batch work that runs
//! on the pool (stage A: filters, dedup keys, MinHash signatures, split; stage B: redaction,
//! tokenization, serialization), and the two ordered threads: the decider (dedup, split
//! counters, resume) and the writer (shard boundaries, atomic shard files).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::clean::dedup::{exact_key, ExactDedup};
use crate::clean::filters::{Cleaner, Reason};
use crate::clean::neardup::{LshIndex, MinHasher};
use crate::clean::redact::{Counts, Redactor};
use crate::corpus::read::Record;
use crate::error::{catch, Error, Result};
use crate::pack::config::{OnShard, PackConfig, SplitReport, Tokenize};
use crate::pack::shard::{encode_doc, token_bytes_for, ShardInfo, ShardWriter};
use crate::pack::split::{split_key, split_of, Split};
use crate::parallel::TicketReturn;

/// A document after stage A: what the decider needs, and its body for stage B.
pub(crate) struct Prepared {
    pub(crate) bytes: u64,
    pub(crate) reject: Option<Reason>,
    pub(crate) key: u128,
    pub(crate) sig: Vec<u32>,
    pub(crate) split: Split,
    pub(crate) body: Body,
}

/// The body of a document: its text (stage B redacts and tokenizes it after the decider) or,
/// for documents prepared elsewhere (`prepared.rs`, packing on Ray), its stage-B result.
pub(crate) enum Body {
    Text(String),
    Done(Encoded),
}

/// Stage B's result for one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The document's tokens and separator, serialized as the shard stores them.
    pub(crate) bytes: Vec<u8>,
    /// Tokens in `bytes` (separator included).
    pub(crate) tokens: u64,
    pub(crate) redactions: Counts,
}

pub(crate) struct Kept {
    pub(crate) split: Split,
    pub(crate) body: Body,
}

pub(crate) struct Tokenized {
    pub(crate) split: Split,
    /// The document's tokens and separator, serialized as the shard stores them.
    pub(crate) bytes: Vec<u8>,
    /// Tokens in `bytes` (separator included).
    pub(crate) tokens: u64,
    pub(crate) redactions: Counts,
}

pub(crate) type Staged<T> = (u64, Result<Vec<T>>);

#[derive(Default)]
pub(crate) struct DeciderReport {
    pub(crate) removed: BTreeMap<String, u64>,
    pub(crate) removed_bytes: BTreeMap<String, u64>,
    pub(crate) splits: [SplitReport; 2],
}

#[derive(Default)]
pub(crate) struct WriterReport {
    pub(crate) redactions: Counts,
    pub(crate) redacted_documents: u64,
    pub(crate) shards: [Vec<ShardInfo>; 2],
    pub(crate) tokens: [u64; 2],
}

/// The first error of any stage; the feeding side polls [`Shared::failed`] per document.
#[derive(Default)]
pub(crate) struct Shared {
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
}

impl Shared {
    pub(crate) fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn error(&self) -> Option<Error> {
        self.error.lock().unwrap().clone()
    }
}

/// Stage A: the per-document work that needs no global state.
pub(crate) struct StageA {
    pub(crate) cleaner: Cleaner,
    pub(crate) hasher: Option<MinHasher>,
    pub(crate) exact: bool,
    pub(crate) valid_fraction: f64,
}

impl StageA {
    pub(crate) fn run(&self, records: Vec<Record>) -> Vec<Prepared> {
        let mut scratch = Vec::new();
        records
            .into_iter()
            .map(|mut rec| {
                let bytes = rec.text.len() as u64;
                let reject = self.cleaner.check(&rec.text, rec.license.as_deref());
                let (mut key, mut sig) = (0, Vec::new());
                if reject.is_some() {
                    rec.text = String::new();
                } else {
                    if self.exact {
                        key = exact_key(&rec.text, &mut scratch);
                    }
                    if let Some(h) = &self.hasher {
                        sig = h.signature(&rec.text);
                    }
                }
                let split = split_of(&split_key(&rec), self.valid_fraction);
                Prepared {
                    bytes,
                    reject,
                    key,
                    sig,
                    split,
                    body: Body::Text(rec.text),
                }
            })
            .collect()
    }
}

/// Stage B: redact, tokenize and serialize the kept documents of a batch.
pub(crate) struct StageB {
    pub(crate) redactor: Option<Redactor>,
    pub(crate) tokenize: Tokenize,
    pub(crate) eot_id: u32,
    pub(crate) token_bytes: u32,
}

impl StageB {
    pub(crate) fn run(&self, docs: Vec<Kept>) -> Vec<Tokenized> {
        let mut ids = Vec::new();
        docs.into_iter()
            .map(|d| {
                let e = match d.body {
                    Body::Text(text) => self.encode(text, &mut ids),
                    Body::Done(e) => e,
                };
                Tokenized {
                    split: d.split,
                    bytes: e.bytes,
                    tokens: e.tokens,
                    redactions: e.redactions,
                }
            })
            .collect()
    }

    /// Redact, tokenize and serialize one text (`ids` is scratch space).
    pub(crate) fn encode(&self, mut text: String, ids: &mut Vec<u32>) -> Encoded {
        let redactions = match &self.redactor {
            Some(r) => r.redact_in_place(&mut text),
            None => Counts::default(),
        };
        ids.clear();
        (self.tokenize)(&text, ids);
        let mut bytes = Vec::new();
        encode_doc(ids, self.eot_id, self.token_bytes, &mut bytes);
        Encoded {
            bytes,
            tokens: ids.len() as u64 + 1,
            redactions,
        }
    }
}

/// The two stages for `cfg` (the packer's and the prepared files' work are one code).
pub(crate) fn stages(cfg: &PackConfig, tokenize: Tokenize) -> (StageA, StageB) {
    let a = StageA {
        cleaner: Cleaner::new(cfg.clean.clone()),
        hasher: cfg.near_dedup.as_ref().map(MinHasher::new),
        exact: cfg.exact_dedup,
        valid_fraction: cfg.valid_fraction,
    };
    let b = StageB {
        redactor: cfg.redact.then(Redactor::new),
        tokenize,
        eot_id: cfg.eot_id,
        token_bytes: token_bytes_for(cfg.vocab_size),
    };
    (a, b)
}

/// Run a batch job; a panic becomes an internal error (a `RuntimeError` in Python).
pub(crate) fn run_caught<T>(f: impl FnOnce() -> Vec<T>) -> Result<Vec<T>> {
    catch(f)
}

/// Pops consecutive items from a reorder buffer.
pub(crate) fn pop_ready<T>(pending: &mut BTreeMap<u64, T>, next: &mut u64) -> Option<T> {
    let v = pending.remove(next)?;
    *next += 1;
    Some(v)
}

pub(crate) fn decide(
    cfg: PackConfig,
    rx: Receiver<Staged<Prepared>>,
    tx: Sender<Staged<Tokenized>>,
    pool: Arc<rayon::ThreadPool>,
    stage_b: Arc<StageB>,
    shared: Arc<Shared>,
) -> DeciderReport {
    let mut report = DeciderReport::default();
    let mut exact = ExactDedup::new();
    let mut near = cfg.near_dedup.as_ref().map(LshIndex::new);
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut seq = 0u64;
    fn count(report: &mut DeciderReport, reason: &str, bytes: u64) {
        *report.removed.entry(reason.to_string()).or_default() += 1;
        *report.removed_bytes.entry(reason.to_string()).or_default() += bytes;
    }
    for (idx, result) in rx {
        pending.insert(idx, result);
        while let Some(result) = pop_ready(&mut pending, &mut next) {
            let idx = next - 1;
            let docs = match result {
                Ok(docs) => docs,
                Err(e) => {
                    shared.fail(e.clone());
                    let _ = tx.send((idx, Err(e)));
                    continue;
                }
            };
            let mut kept = Vec::new();
            for p in docs {
                let id = seq;
                seq += 1;
                if let Some(r) = p.reject {
                    count(&mut report, r.name(), p.bytes);
                    continue;
                }
                if cfg.exact_dedup && !exact.insert(p.key) {
                    count(&mut report, "exact_duplicate", p.bytes);
                    continue;
                }
                if let Some(index) = near.as_mut() {
                    if index.check_insert(id, &p.sig).is_some() {
                        count(&mut report, "near_duplicate", p.bytes);
                        continue;
                    }
                }
                let s = p.split as usize;
                let split = &mut report.splits[s];
                split.documents += 1;
                split.bytes += p.bytes;
                if split.documents <= cfg.resume[s].1 {
                    split.resumed_documents += 1;
                    continue;
                }
                kept.push(Kept {
                    split: p.split,
                    body: p.body,
                });
            }
            let (stage, tx) = (stage_b.clone(), tx.clone());
            pool.spawn_fifo(move || {
                let out = run_caught(|| stage.run(kept));
                let _ = tx.send((idx, out));
            });
        }
    }
    report
}

pub(crate) struct OpenShards {
    pub(crate) current: [Option<ShardWriter>; 2],
    pub(crate) next_index: [usize; 2],
    /// Redaction findings and redacted documents of each split's open shard: recorded per
    /// shard in the manifest, so a resumed pack's report adds up like an uninterrupted one's.
    pub(crate) redactions: [(Counts, u64); 2],
}

pub(crate) fn write(
    cfg: PackConfig,
    rx: Receiver<Staged<Tokenized>>,
    tickets: TicketReturn,
    mut on_shard: OnShard,
    shared: Arc<Shared>,
) -> WriterReport {
    let mut report = WriterReport::default();
    let mut open = OpenShards {
        current: [None, None],
        next_index: [cfg.resume[0].0, cfg.resume[1].0],
        redactions: Default::default(),
    };
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut failed = false;
    for (idx, result) in rx {
        pending.insert(idx, result);
        while let Some(result) = pop_ready(&mut pending, &mut next) {
            if !failed {
                let r = result
                    .and_then(|docs| write_docs(&cfg, &mut open, docs, &mut report, &mut on_shard));
                if let Err(e) = r {
                    shared.fail(e);
                    failed = true;
                }
            }
            // Return the ticket: the reader may start another batch.
            tickets.put();
        }
    }
    if !failed && shared.error().is_none() {
        for s in 0..2 {
            if let Some(w) = open.current[s].take() {
                let red = std::mem::take(&mut open.redactions[s]);
                if let Err(e) = finish_shard(w, red, &mut report, &mut on_shard) {
                    shared.fail(e);
                }
            }
        }
    }
    // An incomplete shard (after an error) stays a `.tmp` file; a rerun overwrites it.
    report
}

pub(crate) fn write_docs(
    cfg: &PackConfig,
    open: &mut OpenShards,
    docs: Vec<Tokenized>,
    report: &mut WriterReport,
    on_shard: &mut OnShard,
) -> Result<()> {
    for d in docs {
        let s = d.split as usize;
        let need = d.tokens;
        let full = open.current[s]
            .as_ref()
            .is_some_and(|w| w.doc_count() > 0 && w.token_count() + need > cfg.shard_tokens);
        if full {
            let w = open.current[s].take().expect("open shard");
            let red = std::mem::take(&mut open.redactions[s]);
            finish_shard(w, red, report, on_shard)?;
        }
        report.redactions.add(&d.redactions);
        let shard_red = &mut open.redactions[s];
        shard_red.0.add(&d.redactions);
        if d.redactions.total() > 0 {
            report.redacted_documents += 1;
            shard_red.1 += 1;
        }
        if open.current[s].is_none() {
            let split = if s == 0 { Split::Train } else { Split::Valid };
            open.current[s] = Some(ShardWriter::create(
                &cfg.out_dir,
                split.name(),
                open.next_index[s],
                cfg.vocab_size,
                cfg.eot_id,
                cfg.fingerprint,
            )?);
            open.next_index[s] += 1;
        }
        let w = open.current[s].as_mut().expect("open shard");
        w.push_encoded(&d.bytes, d.tokens)?;
        report.tokens[s] += need;
    }
    Ok(())
}

pub(crate) fn finish_shard(
    w: ShardWriter,
    redactions: (Counts, u64),
    report: &mut WriterReport,
    on_shard: &mut OnShard,
) -> Result<()> {
    let mut info = w.finish()?;
    (info.redactions, info.redacted_documents) = redactions;
    on_shard(&info);
    let s = if info.split == "valid" { 1 } else { 0 };
    report.shards[s].push(info);
    Ok(())
}
