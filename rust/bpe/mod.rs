//! The byte-level BPE tokenizer: pre-tokenizer, trainer, encoder, vocabulary.

pub mod encode;
pub mod pretokenize;
pub mod train;
pub mod vocab;
