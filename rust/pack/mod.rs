//! The shard packer.

pub mod packer;
pub mod shard;
pub mod split;
mod stages;
