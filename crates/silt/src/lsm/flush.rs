//! Building an SST from a frozen memtable.

use bytes::Bytes;
use silt_format::manifest::SstInfo;
use silt_format::sst::{SstBuilder, SstOptions};

use crate::error::{Error, Result};
use crate::memtable::Memtable;

/// Encode every version in `mem` as one SST named `id`.
pub(crate) fn build_sst(mem: &Memtable, opts: &SstOptions, id: String) -> Result<(Bytes, SstInfo)> {
    let mut b = SstBuilder::new(opts.clone());
    for e in mem.iter() {
        b.add(&e.key, e.seq, e.kind, &e.value)
            .map_err(|e| Error::Internal(format!("memtable order violated: {e}")))?;
    }
    let (data, props) = b
        .finish()
        .map_err(|e| Error::Internal(format!("cannot finish SST: {e}")))?;
    let info = SstInfo {
        id,
        size: data.len() as u64,
        props,
    };
    Ok((data, info))
}
