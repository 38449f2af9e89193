//! Human-readable rendering of `silt inspect`.

use std::io::Write;

use silt::inspect::StoreReport;

/// Write `r` as aligned text.
pub fn write_human(out: &mut impl Write, r: &StoreReport) -> std::io::Result<()> {
    writeln!(out, "writer epoch:      {}", r.writer_epoch)?;
    writeln!(
        out,
        "manifest id:       {} ({} manifest objects)",
        r.manifest_id, r.manifests
    )?;
    writeln!(
        out,
        "wal segments:      {}, {}",
        r.wal_segments,
        bytes(r.wal_bytes)
    )?;
    writeln!(
        out,
        "wal replay from:   segment {} ({} segments to replay)",
        r.wal_replay_from, r.wal_segments_to_replay
    )?;
    writeln!(out, "last flushed seq:  {}", r.last_flushed_seq)?;
    writeln!(
        out,
        "checkpoints:       {} (with reader leases; silt checkpoint list)",
        r.checkpoints
    )?;
    writeln!(
        out,
        "ssts:              {} in manifest ({} in L0); {} objects, {}",
        r.ssts.len(),
        r.l0_ssts,
        r.sst_objects,
        bytes(r.sst_bytes)
    )?;
    for s in &r.ssts {
        writeln!(
            out,
            "  {} {}  {:>10}  {:>8} entries  seq {}..={}  keys {:?}..={:?}",
            s.level,
            s.id,
            bytes(s.size),
            s.entries,
            s.min_seq,
            s.max_seq,
            s.smallest_key,
            s.largest_key
        )?;
    }
    writeln!(
        out,
        "store bytes:       {} ({} bytes)",
        bytes(r.store_bytes),
        r.store_bytes
    )?;
    Ok(())
}

/// `1234567` -> `1.2 MiB`; sizes below 1 KiB stay exact (`12 B`).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Display only: precision loss above 2^53 bytes does not matter.
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
