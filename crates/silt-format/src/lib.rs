//! Byte encodings of Silt: data blocks, block frames, bloom filters, SST files,
//! WAL segments, manifests and checkpoints.
//!
//! This crate performs no I/O. Every decoder validates its input and returns a
//! [`FormatError`] instead of panicking, whatever the bytes. The layouts are
//! documented byte by byte in `docs/format.md` at the workspace root.

// No unwrap on I/O or decoded data outside tests (tests may: clippy.toml).
#![warn(clippy::unwrap_used)]
// Every public item is documented.
#![warn(missing_docs)]
// Every encoding is little-endian (docs/format.md): big- and host-endian conversions are
// mistakes here.
#![deny(clippy::big_endian_bytes, clippy::host_endian_bytes)]

mod codec;
#[cfg(test)]
mod fuzz_tests;

pub mod block;
pub mod bloom;
pub mod checkpoint;
pub mod compress;
pub mod error;
pub mod hex;
pub mod key;
pub mod local_log;
pub mod manifest;
pub mod sst;
pub mod wal;

pub use compress::Compression;
pub use error::{FormatError, Result};
pub use key::{
    cmp_internal, encode_expiring, split_expiring, Entry, SeqNo, ValueKind, EXPIRY_BYTES,
};
