//! Write batches and per-write options.

use bytes::Bytes;
use silt_format::ValueKind;

use crate::config::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use crate::error::{Error, Result};

/// When a write is acknowledged (see `docs/ARCHITECTURE.md`, "Durability").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once in the memtable and the WAL buffer. Lost writes on a crash are always
    /// a suffix (the newest), bounded by `wal.flush_interval`.
    Buffered,
    /// Acknowledged once its commit group is written and `fdatasync`ed in the local log
    /// (`settings.local_log`); still shipped to the object store by the remote WAL.
    /// Survives a process crash or reboot, not the loss of the local disk.
    Local,
    /// Acknowledged once the WAL segment holding it is stored in the object store.
    #[default]
    Remote,
}

/// Options of one write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// When the write is acknowledged.
    pub durability: Durability,
}

impl WriteOptions {
    /// Options with the given durability.
    pub fn with_durability(durability: Durability) -> Self {
        WriteOptions { durability }
    }
}

/// One operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub kind: ValueKind,
    pub key: Bytes,
    pub value: Bytes,
}

/// An atomic group of puts and deletes: all become visible and durable together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
    pub(crate) bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a put. Later operations on the same key in one batch win.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(
            ValueKind::Put,
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::copy_from_slice(value.as_ref()),
        )
    }

    /// Add a delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(
            ValueKind::Delete,
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::new(),
        )
    }

    fn push(&mut self, kind: ValueKind, key: Bytes, value: Bytes) -> &mut Self {
        self.bytes += key.len() + value.len();
        self.ops.push(Op { kind, key, value });
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Key and value bytes in the batch.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for op in &self.ops {
            if op.key.is_empty() {
                return Err(Error::InvalidInput("empty key".into()));
            }
            if op.key.len() > MAX_KEY_BYTES {
                return Err(Error::InvalidInput(format!(
                    "key of {} bytes exceeds the maximum of {MAX_KEY_BYTES}",
                    op.key.len()
                )));
            }
            if op.value.len() > MAX_VALUE_BYTES {
                return Err(Error::InvalidInput(format!(
                    "value of {} bytes exceeds the maximum of {MAX_VALUE_BYTES}",
                    op.value.len()
                )));
            }
        }
        Ok(())
    }
}
