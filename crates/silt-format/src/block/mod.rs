//! Data blocks: sorted entries with key prefix compression and restart points,
//! plus the checksummed (optionally compressed) frame that stores a block in
//! an SST.
//!
//! Raw block layout:
//!
//! ```text
//! entry* | restart_offset u32 * num_restarts | num_restarts u32
//! entry = shared u32 | unshared u32 | value_len u32 | seq u64 | kind u8
//!         | key_suffix[unshared] | value[value_len]
//! ```
//!
//! The entry at each restart offset stores its whole key (`shared == 0`).

mod builder;
mod frame;
mod reader;
#[cfg(test)]
mod tests;

pub use builder::BlockBuilder;
pub use frame::{decode_block_frame, encode_block_frame, BLOCK_TRAILER_SIZE, MAX_BLOCK_SIZE};
pub use reader::{Block, BlockIter};

/// Size of the fixed part of an entry: shared, unshared, `value_len` (u32 each),
/// seq (u64) and kind (u8).
pub const ENTRY_HEADER_SIZE: usize = 21;
