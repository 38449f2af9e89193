//! Reading a whole SST held in memory.

use bytes::Bytes;

use super::footer::{BlockHandle, Footer};
use super::index::IndexBlock;
use super::props::{decode_props, SstProps};
use crate::block::{decode_block_frame, Block, BlockIter};
use crate::bloom::BloomFilter;
use crate::error::{FormatError, Result};
use crate::key::{cmp_internal, Entry, SeqNo};

const WHAT: &str = "sst";

/// A parsed SST held in memory (for tests and tools; the engine reads
/// ranges from object storage with the same building blocks).
#[derive(Debug)]
pub struct SstFile {
    /// The decoded footer.
    pub footer: Footer,
    /// The decoded index.
    pub index: IndexBlock,
    /// The decoded bloom filter.
    pub filter: BloomFilter,
    /// The decoded properties.
    pub props: SstProps,
    data: Bytes,
}

fn frame(data: &Bytes, h: BlockHandle) -> Result<&[u8]> {
    let r = h.range();
    usize::try_from(r.start)
        .ok()
        .zip(usize::try_from(r.end).ok())
        .and_then(|(s, e)| data.get(s..e))
        .ok_or_else(|| FormatError::corrupt(WHAT, format!("frame {h:?} outside the file")))
}

impl SstFile {
    /// Parses footer, filter, props and index, and checks that the index
    /// covers the data region exactly, block after block.
    pub fn open(data: Bytes) -> Result<SstFile> {
        let len = data.len();
        let Some(tail_start) = len.checked_sub(Footer::SIZE) else {
            return Err(FormatError::corrupt(
                WHAT,
                format!("truncated: {len} bytes"),
            ));
        };
        let footer = Footer::decode(&data[tail_start..], len as u64)?;
        let filter = BloomFilter::decode(decode_block_frame(frame(&data, footer.filter)?)?)?;
        let props = decode_props(decode_block_frame(frame(&data, footer.props)?)?)?;
        let index = IndexBlock::decode(decode_block_frame(frame(&data, footer.index)?)?)?;

        let mut expect = 0u64;
        for e in index.entries() {
            if e.handle.offset != expect || e.handle.len == 0 {
                return Err(FormatError::corrupt(WHAT, "data blocks not contiguous"));
            }
            expect = e.handle.range().end;
        }
        let consistent = expect == footer.meta_start()
            && index.entries().len() as u64 == props.data_blocks
            && index
                .entries()
                .last()
                .is_some_and(|e| e.last_key[..] == props.largest_key[..]);
        if !consistent {
            return Err(FormatError::corrupt(WHAT, "index disagrees with props"));
        }
        Ok(SstFile {
            footer,
            index,
            filter,
            props,
            data,
        })
    }

    /// Reads and decodes data block `i` (`InvalidInput` if out of range).
    pub fn read_block(&self, i: usize) -> Result<Block> {
        let entry = self.index.entries().get(i).ok_or_else(|| {
            FormatError::InvalidInput(format!(
                "block {i} out of range ({} blocks)",
                self.index.entries().len()
            ))
        })?;
        Block::decode(decode_block_frame(frame(&self.data, entry.handle)?)?)
    }

    /// Iterates over every entry in internal order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Entry>> + '_ {
        SstIter {
            file: self,
            next_block: 0,
            cur: None,
            prev: None,
            done: false,
        }
    }

    /// The newest entry for `key` whose seq is `<= seq` (a tombstone is
    /// returned as such), or `None`.
    pub fn get(&self, key: &[u8], seq: SeqNo) -> Result<Option<Entry>> {
        if !self.filter.may_contain(key) {
            return Ok(None);
        }
        let Some(i) = self.index.find(key, seq) else {
            return Ok(None);
        };
        match self.read_block(i)?.iter_from(key, seq).next() {
            Some(Ok(e)) => Ok((e.key[..] == *key).then_some(e)),
            Some(Err(e)) => Err(e),
            None => Err(FormatError::corrupt(
                WHAT,
                "index disagrees with data block",
            )),
        }
    }
}

/// Iterator over all blocks of an [`SstFile`]; checks order across blocks
/// and that each block ends at its index entry.
struct SstIter<'a> {
    file: &'a SstFile,
    next_block: usize,
    cur: Option<BlockIter>,
    prev: Option<Entry>,
    done: bool,
}

impl SstIter<'_> {
    fn step(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(it) = &mut self.cur {
                match it.next() {
                    Some(Ok(e)) => return Some(Ok(e)),
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        self.cur = None;
                        let idx = self.file.index.entries().get(self.next_block - 1);
                        let ends_right = match (&self.prev, idx) {
                            (Some(p), Some(idx)) => p.key == idx.last_key && p.seq == idx.last_seq,
                            _ => false,
                        };
                        if !ends_right {
                            return Some(Err(FormatError::corrupt(
                                WHAT,
                                "data block does not end at its index key",
                            )));
                        }
                    }
                }
            }
            if self.next_block >= self.file.index.entries().len() {
                return None;
            }
            match self.file.read_block(self.next_block) {
                Ok(b) => self.cur = Some(b.iter()),
                Err(e) => return Some(Err(e)),
            }
            self.next_block += 1;
        }
    }
}

impl Iterator for SstIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        match &item {
            Some(Ok(e)) => {
                if let Some(p) = &self.prev {
                    if cmp_internal(&p.key, p.seq, &e.key, e.seq) != std::cmp::Ordering::Less {
                        self.done = true;
                        return Some(Err(FormatError::corrupt(WHAT, "entries out of order")));
                    }
                }
                self.prev = Some(e.clone());
            }
            _ => self.done = true,
        }
        item
    }
}
