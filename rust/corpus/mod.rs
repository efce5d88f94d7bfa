//! Reading documents from files: what a file holds ([`read`]).

pub mod read;
