//! Reading documents: what one file holds ([`read`]) and the one engine that reads many
//! files on the caller's pool, with progress and cancel ([`scan`]).

pub mod read;
pub mod scan;
