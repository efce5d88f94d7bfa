//! Cleaning documents: filters, exact and near deduplication, redaction. Pure functions of
//! one document (or, for the dedup indexes, of the documents seen so far, in order); used
//! by `pack`, never using `bpe` or `pack` (checked by `layering_tests`).

pub mod dedup;
pub mod filters;
pub mod neardup;
pub mod redact;
mod redact_assign;
mod redact_checks;
mod redact_pem;
#[cfg(test)]
mod redact_tests;
pub mod spdx;
