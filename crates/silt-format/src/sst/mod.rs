//! Sorted string tables.
//!
//! File layout:
//!
//! ```text
//! data block frame* | filter frame | props frame | index frame | footer
//! ```
//!
//! Every frame uses the block framing of [`crate::block::encode_block_frame`].
//! The footer has a fixed size and points at the three metadata frames, which
//! are contiguous so a reader can fetch `[meta_start, file_len)` in one read.

mod builder;
mod file;
mod footer;
mod index;
mod props;
#[cfg(test)]
mod tests;

pub use builder::{
    SstBuilder, SstOptions, MAX_KEY_LEN, MAX_TARGET_BLOCK_BYTES, MAX_VALUE_LEN,
    MIN_TARGET_BLOCK_BYTES,
};
pub use file::SstFile;
pub use footer::{BlockHandle, Footer, SST_FORMAT_VERSION, SST_MAGIC, SST_MIN_READ_VERSION};
pub use index::{IndexBlock, IndexEntry};
pub use props::{decode_props, encode_props, SstProps, PROPS_VERSION};
