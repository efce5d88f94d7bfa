//! codekiln's Rust core: a code-aware byte-level BPE tokenizer and the data pipeline that
//! turns a code corpus into token shards. One crate, one folder per concern:
//!
//! ```text
//! corpus/   reading documents from files (one engine for every multi-file reader)
//! bpe/      pre-tokenizer, piece counts, trainer, encoder, vocabulary
//! clean/    document filters, exact and near deduplication, secret/PII redaction
//! pack/     the shard packer: config, pipeline, stages, train/valid split, shard format
//! py/       the Python bindings (the only pyo3 code; `python` feature)
//! error.rs  the one error type;  parallel.rs  the only place thread pools are built
//! ```
//!
//! Dependencies run one way: `bpe` uses neither `clean` nor `pack`; `pack` never uses `bpe`
//! (it receives a tokenize closure); only `py` knows both products. `layering_tests` below
//! checks this on the source files. Pure Rust: `cargo test` needs no Python.

pub mod bpe;
pub mod clean;
pub mod corpus;
pub mod pack;
pub mod parallel;

#[cfg(feature = "python")]
mod py;
