//! Checkpoints and reader leases: the [`Db`] API, the lease a read-only handle holds on
//! the manifest it opened, and how a read-only open picks (and pins) its manifest.
//!
//! A checkpoint object (`crate::checkpoint`) pins a manifest and a sequence number; GC
//! keeps everything a live one needs (`db/gc.rs`). The creation rule: a checkpoint is
//! stored only while the manifest it pins is protected by another rule, and that is
//! checked after the object is stored (then a GC pass that listed the checkpoints too
//! early to see it still keeps the manifest by that other rule):
//!
//! * a writer pins its current manifest, holding the manifest lock (so no flush or
//!   compaction of this handle replaces it meanwhile), and checks afterwards that it is
//!   still the newest in the store (or was replaced less than `gc.grace / 2` ago);
//! * a plain read-only open pins the newest manifest with a lease, checked the same way,
//!   and tries again with the then-newest manifest if it lost the race;
//! * an open at a named checkpoint, or a checkpoint made from a read-only handle, relies
//!   on the checkpoint (or lease) already pinning the manifest, and checks afterwards that
//!   it is still live.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use silt_format::checkpoint::CHECKPOINT_FORMAT_VERSION;
use silt_format::manifest::Manifest;
use silt_format::{FormatError, SeqNo};
use tokio::sync::watch;

use super::{Db, DbInner};
use crate::checkpoint::{self, Checkpoint, CheckpointKind};
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lsm::version::Version;
use crate::manifest;
use crate::objstore::Storage;

/// What [`Db::create_checkpoint`], [`Db::list_checkpoints`] and
/// [`Db::renew_checkpoint`] return: the checkpoint object's content (`docs/format.md`).
pub type CheckpointInfo = Checkpoint;

/// Attempts of a read-only open to lease the newest manifest while writers keep
/// replacing it.
const LEASE_ATTEMPTS: u32 = 3;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn expiry(now_ms: u64, lifetime: Option<Duration>) -> Option<u64> {
    lifetime.map(|l| now_ms.saturating_add(millis(l)))
}

/// A read-only handle's lease on the manifest it reads. A follower moves it to each
/// manifest it swaps in ([`Lease::stage`]): a new lease object on the new manifest is
/// stored and checked first, the old one deleted after the swap.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The stored lease object (`None`: a follower of a database that had no manifest yet).
    current: parking_lot::Mutex<Option<LeaseObject>>,
    /// What the handle reads up to (the replayed end, or the checkpoint's).
    seq: AtomicU64,
    /// When the lease stops protecting the manifest unless renewed, Unix milliseconds.
    expires_at_ms: AtomicU64,
    lifetime: Duration,
    /// Serialises the lease's writes (renewals and moves), so a renewal never stores an
    /// object a move has replaced.
    io: tokio::sync::Mutex<()>,
    /// Lease objects of manifests a follower moved off while snapshots or scans still
    /// read their version: renewed with the lease, deleted once nothing reads it.
    retired: parking_lot::Mutex<Vec<(LeaseObject, Weak<Version>)>>,
}

/// Which lease object is stored.
#[derive(Debug, Clone)]
struct LeaseObject {
    name: String,
    manifest_id: u64,
    created_at_ms: u64,
}

impl LeaseObject {
    fn fresh(now_ms: u64, manifest_id: u64) -> Self {
        LeaseObject {
            name: format!(
                "lease-{}",
                ulid::Ulid::from_parts(now_ms, rand::random()).to_string()
            ),
            manifest_id,
            created_at_ms: now_ms,
        }
    }
}

impl Lease {
    fn new(clock: &dyn Clock, manifest_id: u64, seq: SeqNo, lifetime: Duration) -> Self {
        let now = clock.unix_millis();
        Lease {
            current: parking_lot::Mutex::new(Some(LeaseObject::fresh(now, manifest_id))),
            seq: AtomicU64::new(seq),
            expires_at_ms: AtomicU64::new(now.saturating_add(millis(lifetime))),
            lifetime,
            io: tokio::sync::Mutex::new(()),
            retired: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// A follower's lease before any manifest exists: nothing stored, nothing to expire.
    pub(crate) fn none_yet(lifetime: Duration) -> Self {
        Lease {
            current: parking_lot::Mutex::new(None),
            seq: AtomicU64::new(0),
            expires_at_ms: AtomicU64::new(u64::MAX),
            lifetime,
            io: tokio::sync::Mutex::new(()),
            retired: parking_lot::Mutex::new(Vec::new()),
        }
    }

    fn object_of(&self, o: &LeaseObject, expires_at_ms: u64) -> Checkpoint {
        Checkpoint {
            format_version: CHECKPOINT_FORMAT_VERSION,
            name: o.name.clone(),
            kind: CheckpointKind::Lease,
            manifest_id: o.manifest_id,
            seq: self.seq.load(Ordering::Acquire),
            created_at_ms: o.created_at_ms,
            expires_at_ms: Some(expires_at_ms),
        }
    }

    fn object(&self) -> Option<Checkpoint> {
        let cur = self.current.lock().clone()?;
        Some(self.object_of(&cur, self.expires_at_ms.load(Ordering::Acquire)))
    }

    /// The stored lease's name (`lease-<ulid>`).
    pub(crate) fn name(&self) -> Option<String> {
        self.current.lock().as_ref().map(|o| o.name.clone())
    }

    /// Take the retired lease objects whose version nothing reads any more (for the
    /// caller to delete).
    pub(crate) fn take_unread(&self) -> Vec<String> {
        let mut retired = self.retired.lock();
        let mut gone = Vec::new();
        retired.retain(|(o, v)| {
            let read = v.strong_count() > 0;
            if !read {
                gone.push(o.name.clone());
            }
            read
        });
        gone
    }

    /// Lease objects still stored for versions readers hold (see [`Lease::take_unread`]).
    pub(crate) fn retired_count(&self) -> usize {
        self.retired.lock().len()
    }

    /// The manifest the lease pins.
    pub(crate) fn manifest_id(&self) -> Option<u64> {
        self.current.lock().as_ref().map(|o| o.manifest_id)
    }

    pub(crate) fn set_seq(&self, seq: SeqNo) {
        self.seq.store(seq, Ordering::Release);
    }

    /// `Err(LeaseLost)` once the lease has expired by `now_ms`.
    pub(crate) fn check(&self, now_ms: u64) -> Result<()> {
        let at = self.expires_at_ms.load(Ordering::Acquire);
        if now_ms >= at {
            let (name, manifest) = self
                .current
                .lock()
                .as_ref()
                .map_or((String::new(), 0), |o| (o.name.clone(), o.manifest_id));
            return Err(Error::LeaseLost(format!(
                "lease {name} on manifest {manifest} expired at {at} (Unix ms) without \
                 renewal; garbage collection may delete what this handle reads: reopen"
            )));
        }
        Ok(())
    }

    /// Lease manifest `m` (a follower about to swap it in), by the creation rule: a new
    /// lease object on `m` is stored, then `m` is checked to be still protected by GC's
    /// manifest rules. Returns `Ok(None)` when it was not (the new object is deleted
    /// again; the caller loads the newest manifest and tries again). Until the returned
    /// [`StagedLease`] is committed (after the swap) or dropped the old object stays the
    /// lease (renewals wait), and both pin their manifests.
    ///
    /// # Errors
    /// Store errors (the old lease stays in place).
    pub(crate) async fn stage(
        &self,
        storage: &Storage,
        clock: &dyn Clock,
        grace: Duration,
        m: &Manifest,
    ) -> Result<Option<StagedLease<'_>>> {
        let io = self.io.lock().await;
        let now = clock.unix_millis();
        let next = LeaseObject::fresh(now, m.id);
        let expires = now.saturating_add(millis(self.lifetime));
        let obj = self.object_of(&next, expires);
        checkpoint::create(storage, &obj).await?;
        if !checkpoint::manifest_protected(storage, m.id, grace, clock.unix_millis()).await? {
            checkpoint::delete(storage, &next.name).await?;
            return Ok(None);
        }
        Ok(Some(StagedLease {
            lease: self,
            next,
            expires,
            _io: io,
        }))
    }
}

/// A lease object stored on a follower's next manifest, not yet the handle's lease
/// ([`Lease::stage`]).
#[derive(Debug)]
pub(crate) struct StagedLease<'a> {
    lease: &'a Lease,
    next: LeaseObject,
    expires: u64,
    _io: tokio::sync::MutexGuard<'a, ()>,
}

impl StagedLease<'_> {
    /// The handle now reads the new manifest: the new object is the lease. The old
    /// object stays, renewed, while `replaced` (the version the handle read before) is
    /// still read by a snapshot or scan; otherwise its name is returned, for the caller
    /// to delete.
    pub(crate) fn commit(self, replaced: Weak<Version>) -> Option<String> {
        let old = self.lease.current.lock().replace(self.next)?;
        self.lease
            .expires_at_ms
            .store(self.expires, Ordering::Release);
        if replaced.strong_count() > 0 {
            self.lease.retired.lock().push((old, replaced));
            return None;
        }
        Some(old.name)
    }

    /// The swap failed: delete the new object (best effort; it expires anyway).
    pub(crate) async fn abandon(self, storage: &Storage) {
        if let Err(e) = checkpoint::delete(storage, &self.next.name).await {
            tracing::warn!(lease = self.next.name, error = %e, "could not delete an unused lease");
        }
    }
}

/// How a read-only handle starts: the manifest, what it reads up to, and its lease.
#[derive(Debug)]
pub(super) struct ReadOnlyStart {
    pub manifest: Manifest,
    /// At a checkpoint: its sequence number (replay stops there, reads see nothing above).
    pub upto: Option<SeqNo>,
    /// `None` for an empty database (nothing to protect).
    pub lease: Option<Lease>,
}

/// Pick and lease the manifest a read-only handle opens: the checkpoint's (`at`), or the
/// newest.
pub(super) async fn start_read_only(
    storage: &Storage,
    settings: &Settings,
    clock: &dyn Clock,
    at: Option<&str>,
) -> Result<ReadOnlyStart> {
    let lifetime = settings.gc.lease_lifetime;
    if let Some(name) = at {
        checkpoint::check_name(name)?;
        let cp = live_checkpoint(storage, clock, name).await?;
        let m = manifest::load(storage, cp.manifest_id)
            .await?
            .ok_or_else(|| {
                Error::corrupt(
                    storage.checkpoint_path(name).to_string(),
                    FormatError::corrupt(
                        "checkpoint",
                        format!("it pins manifest {}, which is missing", cp.manifest_id),
                    ),
                )
            })?;
        let lease = Lease::new(clock, m.id, cp.seq, lifetime);
        let obj = stored_object(&lease)?;
        checkpoint::create(storage, &obj).await?;
        // The checkpoint pinned the manifest until our lease was stored, if it still lives.
        if let Err(e) = live_checkpoint(storage, clock, name).await {
            checkpoint::delete(storage, &obj.name).await?;
            return Err(e);
        }
        return Ok(ReadOnlyStart {
            manifest: m,
            upto: Some(cp.seq),
            lease: Some(lease),
        });
    }
    for _ in 0..LEASE_ATTEMPTS {
        let Some(m) = manifest::load_latest(storage).await? else {
            return Ok(ReadOnlyStart {
                manifest: Manifest::default(),
                upto: None,
                lease: None,
            });
        };
        let lease = Lease::new(clock, m.id, m.last_flushed_seq, lifetime);
        let obj = stored_object(&lease)?;
        checkpoint::create(storage, &obj).await?;
        if checkpoint::manifest_protected(storage, m.id, settings.gc.grace, clock.unix_millis())
            .await?
        {
            return Ok(ReadOnlyStart {
                manifest: m,
                upto: None,
                lease: Some(lease),
            });
        }
        checkpoint::delete(storage, &obj.name).await?;
        tracing::info!(
            manifest = m.id,
            "the manifest was replaced before its lease was stored; leasing the newest again"
        );
    }
    Err(Error::Checkpoint(format!(
        "the newest manifest was replaced {LEASE_ATTEMPTS} times before a lease on it was \
         stored (is gc.grace shorter than a store round trip?)"
    )))
}

/// The object of a lease made with a manifest.
fn stored_object(lease: &Lease) -> Result<Checkpoint> {
    lease
        .object()
        .ok_or_else(|| Error::Internal("a new lease names no manifest".into()))
}

/// Checkpoint `name`, which must exist and not have expired.
async fn live_checkpoint(storage: &Storage, clock: &dyn Clock, name: &str) -> Result<Checkpoint> {
    let cp = checkpoint::read(storage, name)
        .await?
        .ok_or_else(|| Error::Checkpoint(format!("no checkpoint named {name:?}")))?;
    if cp.expired_at(clock.unix_millis()) {
        return Err(Error::Checkpoint(format!(
            "checkpoint {name:?} expired at {} (Unix ms); garbage collection may have \
             deleted what it pinned",
            cp.expires_at_ms.unwrap_or(0)
        )));
    }
    Ok(cp)
}

impl DbInner {
    /// Fails once this read-only handle's lease has lapsed.
    pub(crate) fn check_lease(&self) -> Result<()> {
        match &self.lease {
            Some(l) => l.check(self.clock.unix_millis()),
            None => Ok(()),
        }
    }

    /// Delete this handle's lease (on close), and the retired lease objects of versions
    /// it read before: best effort, they expire anyway.
    pub(crate) async fn release_lease(&self) {
        let Some(lease) = &self.lease else {
            return;
        };
        let retired: Vec<String> = lease
            .retired
            .lock()
            .drain(..)
            .map(|(o, _)| o.name)
            .collect();
        for name in lease.name().into_iter().chain(retired) {
            if let Err(e) = checkpoint::delete(&self.storage, &name).await {
                tracing::warn!(lease = name, error = %e, "could not delete the reader lease; it will expire");
            }
        }
    }
}

/// Background task of a read-only handle: renew its lease every third of its lifetime.
/// A renewal that fails is tried again at the next tick; once the lease has expired
/// unrenewed (or was deleted), the handle stops with [`Error::LeaseLost`] (reads check
/// the expiry themselves too, so they fail at once even while a renewal hangs).
pub(crate) async fn run_lease_renewer(inner: Arc<DbInner>, mut shutdown: watch::Receiver<bool>) {
    let Some(lease) = &inner.lease else {
        return;
    };
    let interval = (lease.lifetime / 3).max(Duration::from_millis(1));
    loop {
        let deadline = inner.clock.now() + interval;
        tokio::select! {
            () = inner.clock.sleep_until(deadline) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        if let Err(e) = renew_lease(&inner, lease).await {
            if matches!(e, Error::LeaseLost(_)) {
                inner.set_fatal(e);
                return;
            }
            tracing::warn!(lease = lease.name(), error = %e, "renewing the reader lease failed");
        }
    }
}

async fn renew_lease(inner: &DbInner, lease: &Lease) -> Result<()> {
    let _io = lease.io.lock().await;
    lease.check(inner.clock.unix_millis())?;
    let previous_expiry = lease.expires_at_ms.load(Ordering::Acquire);
    let Some(current) = lease.object() else {
        return Ok(()); // a follower with nothing leased yet
    };
    if checkpoint::read(&inner.storage, &current.name)
        .await?
        .is_none()
    {
        return Err(Error::LeaseLost(format!(
            "lease {} on manifest {} was deleted",
            current.name, current.manifest_id
        )));
    }
    let now = inner.clock.unix_millis();
    let mut next = current;
    next.expires_at_ms = Some(now.saturating_add(millis(lease.lifetime)));
    checkpoint::overwrite(&inner.storage, &next).await?;
    // A renewal that landed only once GC may have collected the lapsed lease (`gc.grace`
    // after its expiry; half, for clock skew) may have stored it again on top of deleted
    // objects: it does not count.
    let late = previous_expiry.saturating_add(millis(inner.settings.gc.grace / 2));
    if inner.clock.unix_millis() >= late {
        let _ = checkpoint::delete(&inner.storage, &next.name).await;
        return Err(Error::LeaseLost(format!(
            "renewing lease {} took until past its expiry plus half of gc.grace",
            next.name
        )));
    }
    // Only a stored renewal extends the lease (never backwards: a slow renewal that was
    // overtaken keeps the later expiry).
    lease
        .expires_at_ms
        .fetch_max(next.expires_at_ms.unwrap_or(0), Ordering::AcqRel);
    // The lease objects of versions snapshots and scans still read, with the same
    // expiry (best effort: a lapsed one makes those reads fail, not return wrong data).
    let retired: Vec<LeaseObject> = lease
        .retired
        .lock()
        .iter()
        .map(|(o, _)| o.clone())
        .collect();
    for o in retired {
        let obj = lease.object_of(&o, next.expires_at_ms.unwrap_or(0));
        if let Err(e) = checkpoint::overwrite(&inner.storage, &obj).await {
            tracing::warn!(lease = o.name, error = %e, "renewing a retired reader lease failed");
        }
    }
    Ok(())
}

/// Attempts to store a read-only handle's checkpoint while its follower keeps moving to
/// newer manifests.
const PIN_ATTEMPTS: usize = 8;

impl DbInner {
    /// A read-only handle's manifest and sequence number, as one pair: on a follower,
    /// taken under its poll lock, so never the sequence of one manifest swap with the
    /// manifest of another.
    async fn read_only_pin(&self) -> (Option<u64>, SeqNo) {
        let _polls = self.hold_polls().await;
        (
            self.lease.as_ref().and_then(Lease::manifest_id),
            self.visible_seq.load(Ordering::Acquire),
        )
    }

    /// Whether the lease still pins manifest `id`, unexpired: then it protected the
    /// manifest without a break until now (a follower deletes a lease object only after
    /// moving to another manifest; expiry only moves forward).
    async fn read_only_still_pins(&self, id: u64) -> bool {
        let _polls = self.hold_polls().await;
        self.lease.as_ref().is_some_and(|l| {
            l.manifest_id() == Some(id) && l.check(self.clock.unix_millis()).is_ok()
        })
    }
}

impl Db {
    /// Pin the database as it is now under `name`: the current manifest and every write
    /// visible now, which this first makes durable in the object store (as
    /// [`Db::flush`]). Garbage collection keeps what the checkpoint needs until it is
    /// deleted ([`Db::delete_checkpoint`]) or `lifetime` has passed (`None`: never
    /// expires); [`crate::DbBuilder::at_checkpoint`] opens it read-only, as it was.
    ///
    /// On a read-only handle the checkpoint pins the manifest the handle reads and the
    /// sequence number it reads at (its lease protects that manifest meanwhile). A
    /// follower that moves to a newer manifest while the checkpoint is being stored has
    /// dropped that protection: the checkpoint is then taken again on the newer manifest.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name (`[A-Za-z0-9._-]{1,128}`);
    /// [`Error::Checkpoint`] when one of that name exists, or the manifest it would pin was
    /// replaced by another writer meanwhile (nothing is stored then); store errors.
    pub async fn create_checkpoint(
        &self,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<CheckpointInfo> {
        checkpoint::check_name(name)?;
        let inner = &self.inner;
        inner.check_open()?;
        let storage = &inner.storage;
        let make = |manifest_id, seq| {
            let now = inner.clock.unix_millis();
            Checkpoint {
                format_version: CHECKPOINT_FORMAT_VERSION,
                name: name.to_owned(),
                kind: CheckpointKind::Named,
                manifest_id,
                seq,
                created_at_ms: now,
                expires_at_ms: expiry(now, lifetime),
            }
        };
        let Some(wal) = &inner.wal else {
            // A read-only handle: its lease protects the manifest it reads until the
            // checkpoint is stored, unless a follower moves to a newer manifest (and
            // deletes the old lease) meanwhile; then GC may already have collected what
            // the checkpoint names, so it is taken again on the newer manifest.
            for _ in 0..PIN_ATTEMPTS {
                let (manifest_id, seq) = inner.read_only_pin().await;
                let Some(manifest_id) = manifest_id else {
                    return Err(Error::Checkpoint(
                        "the database is empty: there is no manifest to pin".into(),
                    ));
                };
                let cp = make(manifest_id, seq);
                checkpoint::create(storage, &cp).await?;
                let pinned = inner.read_only_still_pins(manifest_id).await;
                if let Err(e) = inner.check_open() {
                    checkpoint::delete(storage, name).await?;
                    return Err(e);
                }
                if pinned {
                    return Ok(cp);
                }
                checkpoint::delete(storage, name).await?;
                tracing::info!(
                    manifest = manifest_id,
                    "the follower moved to a newer manifest while checkpoint {name:?} was \
                     stored; taking it again"
                );
            }
            return Err(Error::Checkpoint(format!(
                "the follower moved to a newer manifest {PIN_ATTEMPTS} times while \
                 checkpoint {name:?} was being stored; nothing was kept"
            )));
        };
        // Compactions keep the versions this sequence number reads until the checkpoint
        // pins a manifest.
        let snapshot = self.snapshot();
        wal.flush().await?;
        let current = inner.manifest.lock().await;
        let cp = make(current.id, snapshot.seq());
        checkpoint::create(storage, &cp).await?;
        let protected = checkpoint::manifest_protected(
            storage,
            current.id,
            inner.settings.gc.grace,
            inner.clock.unix_millis(),
        )
        .await?;
        drop(current);
        if !protected {
            checkpoint::delete(storage, name).await?;
            return Err(Error::Checkpoint(format!(
                "manifest {} was replaced by another writer before checkpoint {name:?} was \
                 stored; nothing was kept",
                cp.manifest_id
            )));
        }
        drop(snapshot);
        Ok(cp)
    }

    /// Every checkpoint and reader lease in the store, by name.
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] for a checkpoint object that does not decode.
    pub async fn list_checkpoints(&self) -> Result<Vec<CheckpointInfo>> {
        self.inner.check_open()?;
        checkpoint::list(&self.inner.storage)
            .await?
            .into_iter()
            .map(|l| l.checkpoint)
            .collect()
    }

    /// Delete checkpoint `name`: garbage collection no longer keeps what only it needed.
    /// Handles open at it keep reading (each holds its own lease).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name; [`Error::Checkpoint`] when there is no such
    /// checkpoint; store errors.
    pub async fn delete_checkpoint(&self, name: &str) -> Result<()> {
        self.inner.check_open()?;
        checkpoint::delete_existing(&self.inner.storage, name).await
    }

    /// Give checkpoint `name` a new expiry, `lifetime` from now (`None`: never expires).
    ///
    /// A renewal racing [`Db::delete_checkpoint`] of the same checkpoint may store it again
    /// after the delete; if GC collected its manifest in between, the renewal finds the
    /// manifest gone, deletes the checkpoint again and fails.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when there is no such checkpoint, or it has expired already
    /// (GC may have deleted what it pinned: create a new one), or the renewal was stored
    /// only once it had been expired for half of `gc.grace` (then it is deleted); store
    /// errors.
    pub async fn renew_checkpoint(
        &self,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<CheckpointInfo> {
        checkpoint::check_name(name)?;
        self.inner.check_open()?;
        let storage = &self.inner.storage;
        let clock = self.inner.clock.as_ref();
        let mut cp = live_checkpoint(storage, clock, name).await?;
        let previous_expiry = cp.expires_at_ms;
        cp.expires_at_ms = expiry(clock.unix_millis(), lifetime);
        checkpoint::overwrite(storage, &cp).await?;
        // As for a lease: a renewal stored only once GC may have collected the expired
        // checkpoint (`gc.grace` after its expiry; half, for clock skew) may sit on
        // deleted objects, so it does not count.
        if let Some(at) = previous_expiry {
            let late = at.saturating_add(millis(self.inner.settings.gc.grace / 2));
            if clock.unix_millis() >= late {
                checkpoint::delete(storage, name).await?;
                return Err(Error::Checkpoint(format!(
                    "renewing checkpoint {name:?} took until past its expiry plus half of \
                     gc.grace: garbage collection may have deleted what it pinned, so it \
                     was deleted"
                )));
            }
        }
        if manifest::load(storage, cp.manifest_id).await?.is_none() {
            checkpoint::delete(storage, name).await?;
            return Err(Error::Checkpoint(format!(
                "checkpoint {name:?} pins manifest {}, which is gone",
                cp.manifest_id
            )));
        }
        Ok(cp)
    }
}
