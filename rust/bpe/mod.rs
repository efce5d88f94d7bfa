//! The byte-level BPE tokenizer: pre-tokenizer, piece counts (spillable, mergeable count
//! files), trainer, encoder, vocabulary.
//! Uses `corpus` to read files; never `clean` or `pack` (checked by `layering_tests`).

pub mod countfile;
pub mod counts;
pub mod encode;
pub mod pretokenize;
pub mod spill;
pub mod train;
pub mod vocab;
