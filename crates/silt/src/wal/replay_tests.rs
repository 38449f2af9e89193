//! The recovery rule on hand-made WAL listings: contiguous prefixes only, segments moved to
//! higher ids applied in sequence order, a newer epoch ending an older one's wait.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;
use silt_format::wal::{encode_record, encode_segment, WalSegmentHeader};
use silt_format::{SeqNo, ValueKind};

use super::replay;
use crate::memtable::Memtable;
use crate::objstore::Storage;

fn storage() -> Storage {
    Storage::new(Arc::new(InMemory::new()), Path::from("db"))
}

/// Stores segment `id` of `epoch` holding one single-op record per sequence in `seqs`
/// (key `k<seq>`), or a fence when `seqs` is empty.
async fn segment(st: &Storage, id: u64, epoch: u64, seqs: std::ops::RangeInclusive<SeqNo>) {
    let mut body = Vec::new();
    let mut records = 0;
    for seq in seqs.clone() {
        let key = format!("k{seq}");
        encode_record(
            &mut body,
            seq,
            [(ValueKind::Put, key.as_bytes(), &b"v"[..])],
        );
        records += 1;
    }
    let header = WalSegmentHeader {
        writer_epoch: epoch,
        first_seq: if records == 0 { 1 } else { *seqs.start() },
        last_seq: if records == 0 { 0 } else { *seqs.end() },
        record_count: records,
        body_len: body.len() as u64,
    };
    st.put_create_resolved(&st.wal_path(id), encode_segment(&header, &body))
        .await
        .unwrap();
}

fn fence() -> std::ops::RangeInclusive<SeqNo> {
    #[allow(clippy::reversed_empty_ranges)]
    let r = 1..=0;
    r
}

/// Which of `1..=max` the memtable holds.
fn present(mem: &Memtable, max: SeqNo) -> Vec<SeqNo> {
    (1..=max)
        .filter(|s| mem.get(format!("k{s}").as_bytes(), SeqNo::MAX).is_some())
        .collect()
}

#[tokio::test]
async fn a_gap_ends_the_prefix() {
    let st = storage();
    segment(&st, 1, 1, fence()).await;
    segment(&st, 2, 1, 1..=10).await;
    // 11..=20 never landed.
    segment(&st, 4, 1, 21..=30).await;
    let mem = Memtable::new();
    let r = replay(&st, 1, None, 0, None, &mem).await.unwrap();
    assert_eq!(r.end, 10);
    assert_eq!(present(&mem, 30), (1..=10).collect::<Vec<_>>());
    assert_eq!(r.dropped, vec![4]);
    assert!(!r.segments.contains_key(&4));
}

#[tokio::test]
async fn a_segment_moved_to_a_higher_id_fills_its_gap() {
    let st = storage();
    segment(&st, 1, 1, fence()).await;
    segment(&st, 2, 1, 1..=10).await;
    // 11..=20 was sealed for id 3, found it taken, and moved to id 5.
    segment(&st, 3, 0, 100..=101).await;
    segment(&st, 4, 1, 21..=30).await;
    segment(&st, 5, 1, 11..=20).await;
    let mem = Memtable::new();
    let r = replay(&st, 1, None, 0, None, &mem).await.unwrap();
    assert_eq!(r.end, 30);
    assert_eq!(present(&mem, 30), (1..=30).collect::<Vec<_>>());
    assert!(r.dropped.is_empty());
    assert!(
        mem.get(b"k100", SeqNo::MAX).is_none(),
        "a zombie segment was applied"
    );
}

#[tokio::test]
async fn a_newer_epoch_drops_what_waited_past_the_gap() {
    let st = storage();
    segment(&st, 1, 1, fence()).await;
    segment(&st, 2, 1, 1..=10).await;
    segment(&st, 3, 1, 21..=30).await;
    // Writer 2 recovered 1..=10 and wrote its own 11..=25.
    segment(&st, 4, 2, fence()).await;
    segment(&st, 5, 2, 11..=25).await;
    let mem = Memtable::new();
    let r = replay(&st, 1, None, 0, None, &mem).await.unwrap();
    assert_eq!(r.end, 25);
    assert_eq!(present(&mem, 30), (1..=25).collect::<Vec<_>>());
    assert_eq!(r.dropped, vec![3]);
}

#[tokio::test]
async fn operations_in_ssts_are_skipped_and_the_prefix_starts_after_them() {
    let st = storage();
    segment(&st, 7, 3, 5..=12).await;
    segment(&st, 8, 3, 13..=14).await;
    let mem = Memtable::new();
    let r = replay(&st, 7, None, 9, None, &mem).await.unwrap();
    assert_eq!(r.end, 14);
    assert_eq!(present(&mem, 14), (10..=14).collect::<Vec<_>>());
    // A prefix that cannot start right after the SSTs is empty.
    let mem = Memtable::new();
    let r = replay(&st, 8, None, 9, None, &mem).await.unwrap();
    assert_eq!(r.end, 9);
    assert!(present(&mem, 14).is_empty());
}

#[tokio::test]
async fn a_checkpoint_replays_only_up_to_its_sequence() {
    let st = storage();
    segment(&st, 1, 1, fence()).await;
    segment(&st, 2, 1, 1..=10).await;
    segment(&st, 3, 1, 21..=30).await;
    // 11..=20 moved past 21..=30; the checkpoint reads up to 15.
    segment(&st, 4, 1, 11..=20).await;
    segment(&st, 5, 1, 31..=40).await;
    let mem = Memtable::new();
    let r = replay(&st, 1, None, 0, Some(15), &mem).await.unwrap();
    assert_eq!(r.end, 15);
    assert_eq!(present(&mem, 40), (1..=15).collect::<Vec<_>>());
    assert!(r.dropped.is_empty(), "nothing past the checkpoint is a gap");
    assert!(!r.segments.contains_key(&5), "past the checkpoint: skipped");
    // Already in SSTs: nothing replayed.
    let mem = Memtable::new();
    let r = replay(&st, 1, None, 20, Some(15), &mem).await.unwrap();
    assert_eq!(r.end, 20);
    assert!(present(&mem, 40).is_empty());
}

/// The segment stored at `id`, decoded.
async fn decoded(st: &Storage, id: u64) -> silt_format::wal::WalSegment {
    let bytes = st.get(&st.wal_path(id)).await.unwrap();
    silt_format::wal::decode_segment(bytes).unwrap()
}

#[tokio::test]
async fn a_tail_keeps_waiting_across_feeds_until_the_gap_fills_or_the_epoch_ends() {
    use super::Tail;
    let st = storage();
    segment(&st, 1, 1, 1..=2).await;
    segment(&st, 2, 1, 5..=6).await; // past a gap: 3..=4 comes later, at a higher id
    segment(&st, 3, 1, 3..=4).await;
    segment(&st, 4, 1, 8..=9).await; // past a gap that never fills
    segment(&st, 5, 2, fence()).await;
    segment(&st, 6, 1, 7..=7).await; // the fenced writer's late upload
    segment(&st, 7, 2, 7..=7).await;
    let mem = Memtable::new();
    let mut tail = Tail::new(0);
    tail.feed(1, decoded(&st, 1).await, None, &mem);
    tail.feed(2, decoded(&st, 2).await, None, &mem);
    // A follower's poll ends here: the segment past the gap waits, unapplied.
    assert_eq!((tail.out.end, tail.waiting()), (2, 1));
    assert_eq!(present(&mem, 9), [1, 2]);
    tail.feed(3, decoded(&st, 3).await, None, &mem);
    assert_eq!((tail.out.end, tail.waiting()), (6, 0));
    tail.feed(4, decoded(&st, 4).await, None, &mem);
    assert_eq!((tail.out.end, tail.waiting()), (6, 1));
    // The new epoch's fence drops what waits; the old epoch's late segment is skipped.
    tail.feed(5, decoded(&st, 5).await, None, &mem);
    assert_eq!((tail.epoch(), tail.waiting()), (2, 0));
    assert_eq!(tail.out.dropped, [4]);
    tail.feed(6, decoded(&st, 6).await, None, &mem);
    assert_eq!(tail.out.fenced, [6]);
    tail.feed(7, decoded(&st, 7).await, None, &mem);
    assert_eq!(tail.out.end, 7);
    assert_eq!(present(&mem, 9), [1, 2, 3, 4, 5, 6, 7]);
    // A manifest covering more moves the end up, and a waiting segment that now
    // continues it is applied.
    let mem2 = Memtable::new();
    let mut tail = Tail::new(0);
    tail.feed(2, decoded(&st, 2).await, None, &mem2);
    assert_eq!(tail.out.end, 0);
    tail.advance_base(4, &mem2);
    assert_eq!(tail.out.end, 6);
    assert_eq!(present(&mem2, 9), [5, 6]);
}
