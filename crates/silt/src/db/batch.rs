//! Write batches and per-write options.

use bytes::Bytes;
use silt_format::ValueKind;

use crate::config::{MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES};
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

/// When a put's value expires (see `docs/ARCHITECTURE.md`, "Expiry"). From then on reads and
/// scans do not see it, as if deleted, and compaction drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// This long after the write, by the database's clock ([`crate::clock::Clock::unix_millis`]).
    After(std::time::Duration),
    /// At this wall-clock time, in milliseconds since the Unix epoch.
    AtUnixMillis(u64),
}

impl Expiry {
    /// The expiry as Unix milliseconds, `now` being the clock's Unix milliseconds.
    pub(crate) fn resolve(self, now: u64) -> u64 {
        match self {
            Expiry::After(d) => {
                now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            Expiry::AtUnixMillis(at) => at,
        }
    }
}

/// Options of one write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// When the write is acknowledged.
    pub durability: Durability,
    /// When the value of a [`crate::Db::put_with`] expires (`None`: never). Only `put_with`
    /// takes it: `delete_with` and `write_with` refuse it with
    /// [`crate::Error::InvalidInput`]; a batch gives its puts an expiry with
    /// [`WriteBatch::put_expiring`].
    pub expiry: Option<Expiry>,
}

impl WriteOptions {
    /// Options with the given durability.
    pub const fn with_durability(durability: Durability) -> Self {
        WriteOptions {
            durability,
            expiry: None,
        }
    }

    /// These options with an expiry for `put_with`.
    #[must_use]
    pub const fn expiring(mut self, expiry: Expiry) -> Self {
        self.expiry = Some(expiry);
        self
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

    /// Add a put whose value expires at `expires_at` (Unix milliseconds): from then on reads
    /// do not see it (see [`Expiry`]). An expiry already past makes the put invisible at once,
    /// hiding older versions like a delete.
    pub fn put_expiring(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        expires_at: u64,
    ) -> &mut Self {
        self.push(
            ValueKind::PutExpiring,
            Bytes::copy_from_slice(key.as_ref()),
            Bytes::from(silt_format::encode_expiring(expires_at, value.as_ref())),
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

    /// Checks every key and value size, and the whole batch against [`MAX_BATCH_BYTES`]
    /// (its encoded WAL record, computed from the sizes before anything is encoded or
    /// logged).
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
            let value_len = match op.kind {
                ValueKind::PutExpiring => op.value.len() - silt_format::EXPIRY_BYTES,
                _ => op.value.len(),
            };
            if value_len > MAX_VALUE_BYTES {
                return Err(Error::InvalidInput(format!(
                    "value of {value_len} bytes exceeds the maximum of {MAX_VALUE_BYTES}"
                )));
            }
        }
        let encoded = silt_format::wal::record_encoded_len(self.ops.iter().map(|op| {
            let value = match op.kind {
                ValueKind::Put | ValueKind::PutExpiring => op.value.len(),
                ValueKind::Delete => 0,
            };
            (op.key.len(), value)
        }));
        if encoded > MAX_BATCH_BYTES || !silt_format::wal::record_fits(encoded, self.ops.len()) {
            return Err(Error::InvalidInput(format!(
                "batch of {} operations encodes to {encoded} bytes, more than the maximum of \
                 {MAX_BATCH_BYTES}; split it",
                self.ops.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Db, ErrorKind, Settings};

    /// A batch of `n` puts that all share one `MAX_VALUE_BYTES` buffer: `n` × 64 MiB
    /// encoded, 64 MiB in memory (and untouched zero pages at that).
    fn shared_value_batch(n: usize) -> WriteBatch {
        let value = Bytes::from(vec![0u8; MAX_VALUE_BYTES]);
        let mut b = WriteBatch::new();
        for i in 0..n {
            b.push(
                ValueKind::Put,
                Bytes::from(format!("k{i:03}")),
                value.clone(),
            );
        }
        b
    }

    #[test]
    fn batch_size_is_its_encoded_wal_record() {
        // 31 × 64 MiB plus headers is under 2 GiB; 32 × 64 MiB alone is 2 GiB.
        shared_value_batch(31).validate().unwrap();
        let e = shared_value_batch(32).validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("split it"), "{e}");
        // Deletes carry no value: their encoded size is key + 9 bytes.
        let mut b = WriteBatch::new();
        b.delete("k");
        b.validate().unwrap();
        assert_eq!(
            silt_format::wal::record_encoded_len([(1, 0)]),
            silt_format::wal::RECORD_OVERHEAD + silt_format::wal::OP_HEADER_SIZE + 1
        );
    }

    #[tokio::test]
    async fn oversized_batch_is_refused_before_it_is_logged() {
        let db = Db::open("memory://", Settings::small_for_tests())
            .await
            .unwrap();
        db.put("a", "1").await.unwrap();
        let seq = db.visible_seq();
        let e = db.write(shared_value_batch(33)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        // Nothing was sequenced or appended; the database goes on.
        assert_eq!(db.visible_seq(), seq);
        assert_eq!(db.inner.wal.as_ref().unwrap().unflushed_bytes(), 0);
        db.put("b", "2").await.unwrap();
        assert_eq!(db.get("b").await.unwrap().as_deref(), Some(&b"2"[..]));
        db.close().await.unwrap();
    }
}
