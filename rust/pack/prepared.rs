//! Prepared files: the per-document work of the packer done ahead of time for one input file
//! (packing on Ray, `codekiln.distributed.pack`), so that a [`Packer`](crate::pack::Packer)
//! elsewhere only takes the ordered decisions and writes the shards.
//!
//! [`prepare`] runs stage A (filters, exact key, MinHash signature, split) and, for every
//! document the filters keep, stage B (redaction, tokenization, serialization) — the same
//! code the packer runs (`stages.rs`) — and writes one record per document;
//! [`Packer::add_prepared`](crate::pack::Packer::add_prepared) feeds those records to the
//! packer's own decider and writer threads, so the shards and report are those of packing
//! the input file directly. Duplicates are tokenized too (the decider has not seen them
//! yet): the price of doing stage B where the input is.
//!
//! ```text
//! header   "CKPREP\0\n", u32 version, [u8; 32] settings key
//! records  u8 1, u64 source bytes, u8 reject (0 = kept by the filters, else 1 + index in
//!          Reason::ALL), u8 split; kept only: u128 exact key, u32 n, n x u32 signature,
//!          u64 tokens, u64 m, m bytes (the shard layout), u8 k, k x (u8 kind, u64 count)
//! end      u8 0, u32 n, n bytes of JSON (the reading summary: files, documents, bytes,
//!          invalid records, skipped files)
//! checksum SHA-256 of everything before it
//! ```
//!
//! All integers little-endian. The settings key is chosen by the caller (the Python side
//! hashes the tokenizer fingerprint, the output settings and the input file's identity): a
//! file made with another key is stale and rejected, as is a damaged one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use rayon::ThreadPool;
use sha2::{Digest, Sha256};

use crate::clean::filters::Reason;
use crate::clean::redact::{Counts, Kind};
use crate::corpus::read::Record;
use crate::corpus::scan::{self, Input, Options, Progress};
use crate::error::{Context, Error, Result};
use crate::pack::config::{PackConfig, Tokenize};
use crate::pack::split::Split;
use crate::pack::stages::{stages, Body, Encoded, Prepared, StageA, StageB};
use crate::parallel;

pub const MAGIC: &[u8; 8] = b"CKPREP\0\n";
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 32;

/// What reading one input found (the packer's report adds these up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepSummary {
    pub files: u64,
    pub documents_in: u64,
    pub bytes_in: u64,
    pub invalid_records: u64,
    pub skipped_files: Vec<(String, String)>,
    /// Documents the filters kept, so redacted and tokenized here (duplicates included).
    pub encoded_documents: u64,
    /// Their tokens (separators included).
    pub encoded_tokens: u64,
    /// (documents, bytes) removed by the caller before feeding, by reason.
    pub removed: BTreeMap<String, (u64, u64)>,
}

impl PrepSummary {
    fn to_json(&self) -> String {
        serde_json::json!({
            "files": self.files,
            "documents_in": self.documents_in,
            "bytes_in": self.bytes_in,
            "invalid_records": self.invalid_records,
            "skipped_files": self.skipped_files,
            "encoded_documents": self.encoded_documents,
            "encoded_tokens": self.encoded_tokens,
            "removed": self.removed,
        })
        .to_string()
    }

    fn from_json(b: &[u8]) -> Option<PrepSummary> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        let n = |k: &str| v.get(k)?.as_u64();
        let skipped = v
            .get("skipped_files")?
            .as_array()?
            .iter()
            .map(|p| {
                let p = p.as_array()?;
                Some((
                    p.first()?.as_str()?.to_string(),
                    p.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PrepSummary {
            files: n("files")?,
            documents_in: n("documents_in")?,
            bytes_in: n("bytes_in")?,
            invalid_records: n("invalid_records")?,
            skipped_files: skipped,
            encoded_documents: n("encoded_documents")?,
            encoded_tokens: n("encoded_tokens")?,
            removed: serde_json::from_value(v.get("removed")?.clone()).ok()?,
        })
    }
}

/// Writes records, hashing them as they go.
struct Writer {
    out: BufWriter<File>,
    hash: Sha256,
}

impl Writer {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hash.update(b);
        self.out.write_all(b)
    }

    fn doc(&mut self, p: &Prepared, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        buf.push(1);
        buf.extend_from_slice(&p.bytes.to_le_bytes());
        let reject = p.reject.map_or(0, |r| {
            1 + Reason::ALL.iter().position(|x| *x == r).expect("a reason") as u8
        });
        buf.push(reject);
        buf.push(p.split as u8);
        if let Body::Done(e) = &p.body {
            buf.extend_from_slice(&p.key.to_le_bytes());
            buf.extend_from_slice(&(p.sig.len() as u32).to_le_bytes());
            for x in &p.sig {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            buf.extend_from_slice(&e.tokens.to_le_bytes());
            buf.extend_from_slice(&(e.bytes.len() as u64).to_le_bytes());
            buf.extend_from_slice(&e.bytes);
            let found: Vec<(usize, u64)> = e
                .redactions
                .0
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i, *c))
                .collect();
            buf.push(found.len() as u8);
            for (i, c) in found {
                buf.push(i as u8);
                buf.extend_from_slice(&c.to_le_bytes());
            }
        }
        self.put(buf)
    }
}

/// Writes one prepared file (not atomic: the caller writes to a temporary path and renames
/// it). Feed it one input file ([`Preparer::add_file`]) or the records a caller read itself
/// ([`Preparer::add_records`], for filters that run outside Rust, with
/// [`Preparer::count_removed`] and friends), then [`Preparer::finish`]. `num_threads` of the
/// configuration share the work; the file is the same for any thread count and batching.
pub struct Preparer {
    cfg: PackConfig,
    pool: Arc<ThreadPool>,
    stage_a: StageA,
    stage_b: StageB,
    out: PathBuf,
    w: Writer,
    summary: PrepSummary,
    /// Full batches waiting to be worked `group` at a time, and the batch being filled.
    batches: Vec<Vec<Record>>,
    batch: Vec<Record>,
    size: usize,
    group: usize,
    buf: Vec<u8>,
}

impl Preparer {
    pub fn create(
        cfg: &PackConfig,
        tokenize: Tokenize,
        key: &[u8; 32],
        out: &Path,
    ) -> Result<Self> {
        let pool = parallel::pool(cfg.num_threads);
        let (stage_a, stage_b) = stages(cfg, tokenize);
        let file = File::create(out).at(out)?;
        let mut w = Writer {
            out: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
        };
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(key);
        w.put(&head).at(out)?;
        // Batches of about `batch_bytes`, worked `2 * threads` at a time (in parallel on the
        // pool) and written in order.
        let group = 2 * pool.current_num_threads();
        Ok(Preparer {
            cfg: cfg.clone(),
            pool,
            stage_a,
            stage_b,
            out: out.to_path_buf(),
            w,
            summary: PrepSummary::default(),
            batches: Vec::new(),
            batch: Vec::new(),
            size: 0,
            group,
            buf: Vec::new(),
        })
    }

    fn push(&mut self, rec: Record) -> std::io::Result<()> {
        self.summary.documents_in += 1;
        self.summary.bytes_in += rec.text.len() as u64;
        self.size += rec.text.len() + 64;
        self.batch.push(rec);
        if self.size >= self.cfg.batch_bytes {
            self.batches.push(std::mem::take(&mut self.batch));
            self.size = 0;
            if self.batches.len() >= self.group {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Work the waiting batches in parallel (stages A and B) and write them in order.
    fn flush(&mut self) -> std::io::Result<()> {
        let (a, b) = (&self.stage_a, &self.stage_b);
        let batches = std::mem::take(&mut self.batches);
        let worked: Vec<Vec<Prepared>> = self.pool.install(|| {
            batches
                .into_par_iter()
                .map(|records| {
                    let mut ids = Vec::new();
                    let mut docs = a.run(records);
                    for p in docs.iter_mut() {
                        if p.reject.is_none() {
                            if let Body::Text(t) =
                                std::mem::replace(&mut p.body, Body::Text(String::new()))
                            {
                                p.body = Body::Done(b.encode(t, &mut ids));
                            }
                        }
                    }
                    docs
                })
                .collect()
        });
        for p in worked.iter().flatten() {
            if let Body::Done(e) = &p.body {
                self.summary.encoded_documents += 1;
                self.summary.encoded_tokens += e.tokens;
            }
            self.w.doc(p, &mut self.buf)?;
        }
        Ok(())
    }

    /// Read one input file (as the packer's `add_files` does: a damaged file is skipped and
    /// listed in the summary as `shown`, the path the packer's caller knows it by, or an
    /// error with `strict`).
    pub fn add_file(&mut self, input: &Input, shown: &str) -> Result<()> {
        let opts = Options {
            text_field: self.cfg.text_field.clone(),
            with_meta: true,
            strict: self.cfg.strict,
        };
        let progress = Progress::default();
        let pool = self.pool.clone();
        let mut failure: Option<Error> = None;
        let files = scan::read_files(
            &pool,
            std::slice::from_ref(input),
            &opts,
            &progress,
            &mut [|rec: Record| match self.push(rec) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e.into());
                    false
                }
            }],
            &mut |_| true,
        )?;
        if let Some(e) = failure {
            return Err(e.at(&self.out));
        }
        self.summary.files += files.files;
        self.summary.invalid_records += files.skipped_documents;
        let named = files
            .skipped_files
            .into_iter()
            .map(|(_, why)| (shown.to_string(), why));
        self.summary.skipped_files.extend(named);
        Ok(())
    }

    /// Records read elsewhere, in order.
    pub fn add_records(&mut self, records: Vec<Record>) -> Result<()> {
        for r in records {
            self.push(r).at(&self.out)?;
        }
        Ok(())
    }

    /// Documents the caller removed before feeding them (counted by the packer like
    /// [`Packer::count_removed`](crate::pack::Packer::count_removed)).
    pub fn count_removed(&mut self, reason: &str, documents: u64, bytes: u64) {
        let e = self.summary.removed.entry(reason.to_string()).or_default();
        e.0 += documents;
        e.1 += bytes;
    }

    /// Input lines the caller could not decode.
    pub fn count_invalid(&mut self, records: u64) {
        self.summary.invalid_records += records;
    }

    /// A file the caller could not read to its end (`why`), listed like the readers' own.
    pub fn count_skipped(&mut self, path: &str, why: &str) {
        self.summary
            .skipped_files
            .push((path.to_string(), why.to_string()));
    }

    /// Write the last batches, the summary and the checksum.
    pub fn finish(mut self) -> Result<PrepSummary> {
        if !self.batch.is_empty() {
            let b = std::mem::take(&mut self.batch);
            self.batches.push(b);
        }
        self.flush().at(&self.out)?;
        let json = self.summary.to_json();
        let mut tail = vec![0u8];
        tail.extend_from_slice(&(json.len() as u32).to_le_bytes());
        tail.extend_from_slice(json.as_bytes());
        self.w.put(&tail).at(&self.out)?;
        let digest = self.w.hash.finalize_reset();
        self.w.out.write_all(&digest).at(&self.out)?;
        self.w.out.flush().at(&self.out)?;
        Ok(self.summary)
    }
}

/// [`Preparer`] over one input file.
pub fn prepare(
    cfg: &PackConfig,
    tokenize: Tokenize,
    input: &Input,
    shown: &str,
    key: &[u8; 32],
    out: &Path,
) -> Result<PrepSummary> {
    let mut p = Preparer::create(cfg, tokenize, key, out)?;
    p.add_file(input, shown)?;
    p.finish()
}

fn damaged(what: &str) -> Error {
    Error::invalid_data(format!(
        "not a valid prepared file ({what}); delete it to redo it"
    ))
}

/// Check `path` (magic, version, checksum, then the settings `key`) in one streaming pass and
/// return its summary. Memory: one record at a time, whatever the file's size.
pub fn check(path: &Path, key: &[u8; 32]) -> Result<PrepSummary> {
    let mut r = Reader::open(path)?;
    let go = |r: &mut Reader| -> Result<PrepSummary> {
        let file_key = r.header()?;
        while r.doc(false)?.is_some() {}
        let n = r.u32()? as usize;
        let summary = PrepSummary::from_json(r.take(n)?).ok_or_else(|| damaged("bad summary"))?;
        r.verify()?;
        if &file_key != key {
            return Err(Error::invalid_data(
                "prepared for other inputs, settings or tokenizer (stale); delete it to redo it",
            ));
        }
        Ok(summary)
    };
    go(&mut r).map_err(|e| e.at(path))
}

/// Stream the documents of `path` (checked with [`check`] first) in batches of about
/// `batch_bytes` of tokens. The checksum is verified again at the end: a file changed in
/// between is an error.
pub(crate) fn read_docs(
    path: &Path,
    batch_bytes: usize,
    mut each: impl FnMut(Vec<Prepared>),
) -> Result<()> {
    let mut r = Reader::open(path)?;
    let mut go = || -> Result<()> {
        r.header()?;
        let (mut batch, mut size) = (Vec::new(), 0usize);
        while let Some(p) = r.doc(true)? {
            size += 64
                + if let Body::Done(e) = &p.body {
                    e.bytes.len()
                } else {
                    0
                };
            batch.push(p);
            if size >= batch_bytes {
                each(std::mem::take(&mut batch));
                size = 0;
            }
        }
        if !batch.is_empty() {
            each(batch);
        }
        let n = r.u32()? as usize;
        r.take(n)?;
        r.verify()
    };
    go().map_err(|e| e.at(path))
}

/// Reads a prepared file front to back, hashing what it reads.
struct Reader {
    inp: BufReader<File>,
    hash: Sha256,
    buf: Vec<u8>,
    /// Bytes left before the checksum.
    left: u64,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        if len < (HEADER + 1 + 4 + 32) as u64 {
            return Err(damaged("too short for a prepared file").at(path));
        }
        Ok(Reader {
            inp: BufReader::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            buf: Vec::new(),
            left: len - 32,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if n as u64 > self.left {
            return Err(damaged("truncated or corrupt: a record runs past the end"));
        }
        self.buf.resize(n, 0);
        self.inp.read_exact(&mut self.buf)?;
        self.hash.update(&self.buf);
        self.left -= n as u64;
        Ok(&self.buf)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// Magic and version; returns the settings key.
    fn header(&mut self) -> Result<[u8; 32]> {
        if self.take(8)? != MAGIC {
            return Err(damaged("no prepared-file header"));
        }
        let version = self.u32()?;
        if version != VERSION {
            return Err(damaged(&format!(
                "format version {version}, this codekiln reads {VERSION}"
            )));
        }
        Ok(self.take(32)?.try_into().unwrap())
    }

    /// At the checksum: it must be the last 32 bytes and match what was read.
    fn verify(&mut self) -> Result<()> {
        if self.left != 0 {
            return Err(damaged("bytes after the summary"));
        }
        let mut digest = [0u8; 32];
        self.inp.read_exact(&mut digest)?;
        if self.hash.finalize_reset().as_slice() != digest {
            return Err(damaged("checksum mismatch: truncated or corrupt"));
        }
        Ok(())
    }

    /// The next document (`None` at the end tag); `build = false` only checks lengths.
    fn doc(&mut self, build: bool) -> Result<Option<Prepared>> {
        match self.u8()? {
            0 => return Ok(None),
            1 => {}
            _ => return Err(damaged("bad record tag")),
        }
        let bytes = self.u64()?;
        let reject = match self.u8()? {
            0 => None,
            r => Some(
                *Reason::ALL
                    .get(r as usize - 1)
                    .ok_or_else(|| damaged("bad reject reason"))?,
            ),
        };
        let split = match self.u8()? {
            0 => Split::Train,
            1 => Split::Valid,
            _ => return Err(damaged("bad split")),
        };
        let mut p = Prepared {
            bytes,
            reject,
            key: 0,
            sig: Vec::new(),
            split,
            body: Body::Text(String::new()),
        };
        if reject.is_some() {
            return Ok(Some(p));
        }
        p.key = u128::from_le_bytes(self.take(16)?.try_into().unwrap());
        let n = self.u32()? as usize;
        let sig = self.take(n.checked_mul(4).ok_or_else(|| damaged("bad signature"))?)?;
        if build {
            p.sig = sig
                .chunks_exact(4)
                .map(|x| u32::from_le_bytes(x.try_into().unwrap()))
                .collect();
        }
        let tokens = self.u64()?;
        let m = usize::try_from(self.u64()?).map_err(|_| damaged("bad length"))?;
        let enc = self.take(m)?;
        let enc = if build { enc.to_vec() } else { Vec::new() };
        let k = self.u8()? as usize;
        let mut redactions = Counts::default();
        for _ in 0..k {
            let i = self.u8()? as usize;
            let c = self.u64()?;
            if i >= Kind::ALL.len() {
                return Err(damaged("bad redaction kind"));
            }
            redactions.0[i] = c;
        }
        if build {
            p.body = Body::Done(Encoded {
                bytes: enc,
                tokens,
                redactions,
            });
        }
        Ok(Some(p))
    }
}
