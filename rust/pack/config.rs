//! The packer's configuration and report, and the two callbacks it is given. A leaf: it
//! names the settings of the other pack files but uses none of them, so `packer.rs` and
//! `stages.rs` both depend on it and not on each other's types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clean::filters::CleanConfig;
use crate::clean::neardup::NearConfig;
use crate::clean::redact::Counts;
use crate::pack::shard::ShardInfo;

/// Appends the token ids of a text to `out` (the tokenizer, without special tokens).
pub type Tokenize = Arc<dyn Fn(&str, &mut Vec<u32>) + Send + Sync>;
/// Called by the writer thread after each shard is durably in place.
pub type OnShard = Box<dyn FnMut(&ShardInfo) + Send>;
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
    /// Fail on an input file that cannot be read to its end instead of skipping (the rest
    /// of) it and naming it in the report.
    pub strict: bool,
}

impl PackConfig {
    /// A configuration for Rust callers and tests. The defaults users see live in the
    /// Python dataclass (`codekiln.data.PackConfig`), which passes every setting.
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
            strict: false,
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
