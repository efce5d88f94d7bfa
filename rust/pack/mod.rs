//! The shard packer: read -> clean -> deduplicate -> split -> redact -> tokenize -> shards.
//!
//! `config` is a leaf (settings, report, the callbacks); `stages` holds the per-batch work
//! and the ordered decider and writer threads; `packer` feeds them. `split` and `shard` are
//! the two formats the output must keep: which split a document goes to, and the shard
//! file. Never uses `bpe` (checked by `layering_tests`): the tokenizer comes in as a
//! [`config::Tokenize`] closure.

pub mod config;
pub mod packer;
pub mod prepared;
pub mod shard;
pub mod split;
mod stages;

#[cfg(test)]
mod tests;

pub use config::{OnShard, PackConfig, PackReport, SplitReport, Tokenize};
pub use packer::Packer;
