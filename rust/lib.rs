//! codekiln's Rust core: a code-aware byte-level BPE tokenizer (pre-tokenizer, trainer,
//! encoder), corpus readers, and the data pipeline (cleaning, dedup, shard packing).
//!
//! Pure Rust: `cargo test` needs no Python. The only file that touches pyo3 is `py.rs`,
//! compiled with the `python` feature (maturin turns it on).

pub mod encode;
pub mod parallel;
pub mod pretokenize;
pub mod read;
pub mod train;
pub mod vocab;
// data pipeline modules (clean, dedup, redact, pack, shard) go below
pub mod clean;
pub mod dedup;
pub mod neardup;
pub mod pack;
mod pack_stages;
pub mod redact;
pub mod shard;
pub mod split;

#[cfg(feature = "python")]
mod py;
