//! Bounds-checked little-endian reading helpers shared by the decoders.

use crate::error::{FormatError, Result};

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            _ => Err(FormatError::corrupt(
                self.what,
                format!(
                    "truncated: need {n} bytes at offset {}, only {} left",
                    self.pos,
                    self.remaining()
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads a `u32` length and converts it to `usize`.
    pub(crate) fn len32(&mut self) -> Result<usize> {
        Ok(self.u32()? as usize)
    }

    /// Fails unless the whole input has been consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(FormatError::corrupt(
                self.what,
                format!("{} trailing bytes", self.remaining()),
            ))
        }
    }
}

/// Reads a little-endian `u32` at `at`, or `None` if out of bounds.
pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b = buf.get(at..end)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Converts a length to the `u32` used on disk.
///
/// # Panics
/// If `len` exceeds `u32::MAX`; callers enforce smaller limits beforehand.
pub(crate) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("length exceeds u32::MAX; callers must bound sizes")
}
