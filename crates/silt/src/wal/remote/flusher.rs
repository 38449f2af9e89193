//! The flusher task: decides when to seal, runs bounded concurrent uploads, and advances
//! the durable watermark strictly in seal (= sequence) order.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use silt_format::wal::{encode_segment, WalSegmentHeader};
use silt_format::SeqNo;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{upload_segment, Durable, SealReason, Shared, State, UploadError, UploadPolicy};
use crate::error::Error;

/// A sealed segment on its way to the store.
#[derive(Debug)]
struct Sealed {
    order: u64,
    id: u64,
    last_seq: SeqNo,
    data: Bytes,
    /// Body bytes counted in `unflushed`.
    body_len: usize,
    done: bool,
}

type UploadResult = (u64, u64, Result<(), UploadError>);

/// Float slack when testing for a whole token (refills accumulate rounding error).
const TOKEN_EPSILON: f64 = 1e-9;
/// Shortest wait for the next token, in seconds.
const MIN_TOKEN_WAIT_S: f64 = 0.001;

enum Decision {
    Seal(Sealed),
    Wait(Option<Instant>),
}

impl Shared {
    fn refill(&self, st: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(st.refilled_at).as_secs_f64();
        st.tokens = (st.tokens + elapsed * self.settings.max_puts_per_sec)
            .min(f64::from(self.settings.put_burst));
        st.refilled_at = now;
    }

    fn decide(&self, st: &mut State, inflight: usize, next_order: u64) -> Decision {
        let now = self.clock.now();
        self.refill(st, now);
        if st.open.records == 0 {
            st.flush_wanted = false;
            return Decision::Wait(None);
        }
        if inflight >= self.settings.max_inflight_uploads {
            // An upload completing wakes us; meanwhile the open segment keeps growing.
            return Decision::Wait(None);
        }
        let opened_at = st.open.opened_at.unwrap_or(now);
        let linger_deadline = opened_at + self.settings.flush_interval;
        let remote_waiting = st.remote_target >= st.open.first_seq;
        let reason = if st.open.body.len() >= self.settings.segment_bytes {
            Some(SealReason::Size)
        } else if st.flush_wanted {
            Some(SealReason::Flush)
        } else if remote_waiting && st.tokens >= 1.0 - TOKEN_EPSILON {
            st.tokens = (st.tokens - 1.0).max(0.0);
            Some(SealReason::Remote)
        } else if now >= linger_deadline {
            st.tokens = (st.tokens - 1.0).max(0.0);
            Some(SealReason::Linger)
        } else {
            None
        };
        let Some(reason) = reason else {
            let mut next = linger_deadline;
            if remote_waiting {
                // At least 1 ms: a wait rounded to zero would spin without refilling.
                let wait = (1.0 - st.tokens) / self.settings.max_puts_per_sec;
                let token_at = now + std::time::Duration::from_secs_f64(wait.max(MIN_TOKEN_WAIT_S));
                next = next.min(token_at);
            }
            return Decision::Wait(Some(next));
        };
        let m = &self.metrics;
        match reason {
            SealReason::Size => &m.seals_size,
            SealReason::Remote => &m.seals_remote,
            SealReason::Linger => &m.seals_linger,
            SealReason::Flush => &m.seals_flush,
        }
        .incr();
        st.flush_wanted = false;
        let open = std::mem::take(&mut st.open);
        let header = WalSegmentHeader {
            writer_epoch: self.epoch,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
            record_count: open.records,
            body_len: open.body.len() as u64,
        };
        let id = st.next_id;
        st.next_id += 1;
        st.segments.insert(id, open.last_seq);
        tracing::debug!(
            segment = id,
            bytes = open.body.len(),
            ?reason,
            "sealed WAL segment"
        );
        Decision::Seal(Sealed {
            order: next_order,
            id,
            last_seq: open.last_seq,
            data: encode_segment(&header, &open.body),
            body_len: open.body.len(),
            done: false,
        })
    }

    fn spawn_upload(self: &Arc<Self>, uploads: &mut JoinSet<UploadResult>, s: &Sealed) {
        let sh = Arc::clone(self);
        let (order, id, data) = (s.order, s.id, s.data.clone());
        self.metrics.put_requests.incr();
        uploads.spawn(async move {
            let policy = UploadPolicy {
                retry: &sh.retry,
                give_up_after: None,
                verify_owner_after: sh.verify_owner_after,
                retries: Some(&sh.metrics.upload_retries),
            };
            let r =
                upload_segment(&sh.storage, sh.clock.as_ref(), id, &data, sh.epoch, &policy).await;
            (order, id, r)
        });
    }

    fn fail(&self, e: Error) {
        tracing::error!(error = %e, "remote WAL stopped");
        self.durable.send_modify(|d| {
            if d.fatal.is_none() {
                d.fatal = Some(e);
            }
        });
        self.space.notify_waiters();
    }
}

/// Run the flusher until `shutdown` turns true and in-flight uploads have finished.
pub(crate) async fn run_flusher(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut uploads: JoinSet<UploadResult> = JoinSet::new();
    let mut pending: VecDeque<Sealed> = VecDeque::new();
    let mut next_order = 0u64;
    let mut stopping = false;
    loop {
        if sh.durable.borrow().fatal.is_some() {
            break;
        }
        let decision = {
            let mut st = sh.st.lock();
            sh.decide(&mut st, uploads.len(), next_order)
        };
        let deadline = match decision {
            Decision::Seal(s) => {
                next_order += 1;
                sh.spawn_upload(&mut uploads, &s);
                pending.push_back(s);
                continue;
            }
            Decision::Wait(deadline) => deadline,
        };
        // A clean close flushed (and waited for) every upload before stopping us; what is
        // still in flight now is an upload the close gave up on (the store is down), which
        // must not hold the shutdown forever.
        if stopping {
            break;
        }
        let sleep = async {
            match deadline {
                Some(d) => sh.clock.sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sh.wake.notified() => {}
            () = sleep => {}
            Some(joined) = uploads.join_next(), if !uploads.is_empty() => {
                match joined {
                    Ok((order, id, result)) => {
                        on_upload_done(&sh, &mut uploads, &mut pending, order, id, result);
                    }
                    Err(e) => sh.fail(Error::Internal(format!("WAL upload task failed: {e}"))),
                }
            }
            changed = shutdown.changed(), if !stopping => {
                if changed.is_err() || *shutdown.borrow() {
                    stopping = true;
                }
            }
        }
    }
    uploads.abort_all();
}

fn on_upload_done(
    sh: &Arc<Shared>,
    uploads: &mut JoinSet<UploadResult>,
    pending: &mut VecDeque<Sealed>,
    order: u64,
    id: u64,
    result: Result<(), UploadError>,
) {
    let Some(idx) = pending.iter().position(|s| s.order == order) else {
        return;
    };
    match result {
        Ok(()) => {
            let s = &mut pending[idx];
            s.done = true;
            sh.metrics.segments_uploaded.incr();
            sh.metrics.bytes_uploaded.add(s.data.len() as u64);
        }
        Err(UploadError::IdTaken) => {
            // A fenced writer's late segment holds this id; ours moves to a fresh id.
            let new_id = {
                let mut st = sh.st.lock();
                st.segments.remove(&id);
                let new_id = st.next_id;
                st.next_id += 1;
                st.segments.insert(new_id, pending[idx].last_seq);
                new_id
            };
            tracing::warn!(
                old = id,
                new = new_id,
                "WAL id taken by an older epoch; re-uploading"
            );
            pending[idx].id = new_id;
            sh.spawn_upload(uploads, &pending[idx]);
            return;
        }
        Err(UploadError::Fatal(e)) => {
            sh.fail(e);
            return;
        }
    }
    // Advance the watermark over the completed prefix, in seal order and in id order: a
    // segment moved to a higher id (above) is acknowledged only once every segment with a
    // lower id is stored too. Recovery relies on it: a newer writer's fence at an id this
    // writer had not stored yet makes everything this writer put above that id
    // unreachable, so none of it may have been acknowledged.
    let lowest_unstored = pending.iter().filter(|s| !s.done).map(|s| s.id).min();
    let mut durable = None;
    let mut freed = 0;
    while pending
        .front()
        .is_some_and(|s| s.done && lowest_unstored.is_none_or(|low| s.id < low))
    {
        if let Some(s) = pending.pop_front() {
            durable = Some(s.last_seq);
            freed += s.body_len;
        }
    }
    if let Some(seq) = durable {
        sh.st.lock().unflushed -= freed;
        sh.durable
            .send_modify(|d: &mut Durable| d.seq = d.seq.max(seq));
        sh.space.notify_waiters();
    }
}
