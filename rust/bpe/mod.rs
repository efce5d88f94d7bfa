//! The byte-level BPE tokenizer: pre-tokenizer, piece counts, trainer, encoder, vocabulary.
//! Uses `corpus` to read files; never `clean` or `pack` (checked by `layering_tests`).

pub mod counts;
pub mod encode;
pub mod pretokenize;
pub mod train;
pub mod vocab;
