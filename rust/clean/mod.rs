//! Cleaning documents: filters, exact and near deduplication, redaction.

pub mod dedup;
pub mod filters;
pub mod neardup;
pub mod redact;
mod redact_checks;
