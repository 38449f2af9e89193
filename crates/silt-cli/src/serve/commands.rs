//! The commands `silt serve` answers, with Redis's reply types and error texts.
//!
//! A command reads and writes through a [`Tx`]: reads see the writes it has staged (an
//! overlay consulted before the database), and its writes are applied with `Buffered`
//! durability. Write commands run under the server-wide write lock (`Shared::writes`), so
//! a read-modify-write such as INCR is atomic against every other write. Consecutive write
//! commands of one pipeline form a [`Run`]: the lock is taken once for all of them, each
//! reads the run's earlier writes, and the run is applied as one `WriteBatch` when a
//! command of another kind comes, at the end of what was read, or past `RUN_MAX_BYTES`
//! (one engine write instead of one per command). EXEC runs all its queued commands in one
//! `Tx` under one hold of the lock, so a transaction is one atomic engine write. The connection then
//! makes the pipeline's writes durable with one `Db::wait_remote` (Remote) or
//! `Db::flush_local` (Local) before it answers any of them (`Conn::finish`), so N
//! pipelined writes cost one durability wait.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use silt::{Db, Durability, Snapshot, WriteBatch, WriteOptions};
use tokio::sync::Mutex;

use super::glob::Glob;
use super::resp::Reply;
use super::stats::Stats;

/// What a command does, for the write lock and MULTI's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Reads the database (several keys: from one snapshot).
    Read,
    /// Reads and writes: runs under the write lock.
    Write,
    /// Connection state only.
    Conn,
}

/// Every command: name, Redis arity (counting the name; negative: at least that many),
/// kind. The names are also the bounded label set of the metrics.
const COMMANDS: &[(&str, i32, Kind)] = &[
    ("ping", -1, Kind::Conn),
    ("echo", 2, Kind::Conn),
    ("quit", -1, Kind::Conn),
    ("select", 2, Kind::Conn),
    ("auth", -2, Kind::Conn),
    ("hello", -1, Kind::Conn),
    ("client", -2, Kind::Conn),
    ("command", -1, Kind::Conn),
    ("config", -2, Kind::Conn),
    ("get", 2, Kind::Read),
    ("mget", -2, Kind::Read),
    ("exists", -2, Kind::Read),
    ("strlen", 2, Kind::Read),
    ("set", -3, Kind::Write),
    ("setnx", 3, Kind::Write),
    ("getset", 3, Kind::Write),
    ("getdel", 2, Kind::Write),
    ("mset", -3, Kind::Write),
    ("msetnx", -3, Kind::Write),
    ("del", -2, Kind::Write),
    ("unlink", -2, Kind::Write),
    ("incr", 2, Kind::Write),
    ("decr", 2, Kind::Write),
    ("incrby", 3, Kind::Write),
    ("decrby", 3, Kind::Write),
    ("append", 3, Kind::Write),
    ("setex", 4, Kind::Write),
    ("psetex", 4, Kind::Write),
    ("getex", -2, Kind::Write),
    ("expire", -3, Kind::Write),
    ("pexpire", -3, Kind::Write),
    ("expireat", -3, Kind::Write),
    ("pexpireat", -3, Kind::Write),
    ("persist", 2, Kind::Write),
    ("ttl", 2, Kind::Read),
    ("pttl", 2, Kind::Read),
    ("expiretime", 2, Kind::Read),
    ("pexpiretime", 2, Kind::Read),
    ("multi", 1, Kind::Conn),
    ("exec", 1, Kind::Conn),
    ("discard", 1, Kind::Conn),
    ("watch", -2, Kind::Conn),
    ("unwatch", 1, Kind::Conn),
    ("scan", -2, Kind::Read),
    ("keys", 2, Kind::Read),
    ("dbsize", 1, Kind::Read),
    ("waitaof", 4, Kind::Conn),
    ("info", -1, Kind::Read),
    ("reset", 1, Kind::Conn),
];

fn lookup(name: &str) -> Option<usize> {
    COMMANDS.iter().position(|c| c.0 == name)
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    let arity = i64::from(arity);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The server's settings the commands need.
#[derive(Debug, Clone)]
pub struct Options {
    pub durability: Durability,
    pub password: Option<String>,
    /// The port listened on (INFO).
    pub port: u16,
    /// `--max-clients` (INFO).
    pub max_clients: usize,
    /// Largest reply: a bigger one is an error instead.
    pub max_reply_bytes: usize,
    /// Most bytes one MULTI may queue (`MAX_QUEUED_BYTES`).
    pub max_queued_bytes: usize,
    /// A read replica (`--follow`): writes are refused with `READONLY`.
    pub follower: bool,
}

/// Redis's error for a write sent to a replica (client libraries route on it).
const READONLY: &str = "READONLY You can't write against a read only replica.";

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    db: Arc<Db>,
    opts: Options,
    writes: Arc<Mutex<()>>,
    next_id: AtomicU64,
    cursors: std::sync::Mutex<Cursors>,
    started: Instant,
    /// Connections and command figures (INFO, `--metrics-listen`).
    pub stats: Stats,
}

/// The Redis version INFO reports (`redis_version`), for clients that gate features on it.
const REDIS_VERSION: &str = "7.2.0";

/// Most SCAN cursors alive at once; starting one more forgets the oldest.
pub const MAX_CURSORS: usize = 65_536;

/// SCANs in progress: cursor id -> the last key examined. Keys come in order, so going on
/// after that key returns every key present during the whole iteration, none twice.
#[derive(Debug)]
struct Cursors {
    next: u64,
    live: HashMap<u64, Bytes>,
    /// Ids in the order they were given (some already taken), for eviction.
    order: VecDeque<u64>,
}

impl Cursors {
    fn new() -> Self {
        Cursors {
            // Not from 1: a cursor of a previous run of the server is unlikely to be valid.
            next: u64::from(rand::random::<u32>()) + 1,
            live: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, last: Bytes) -> u64 {
        while self.live.len() >= MAX_CURSORS {
            match self.order.pop_front() {
                Some(old) => {
                    self.live.remove(&old);
                }
                None => break,
            }
        }
        let id = self.next;
        self.next = self.next.checked_add(1).unwrap_or(1);
        self.live.insert(id, last);
        self.order.push_back(id);
        if self.order.len() > 2 * MAX_CURSORS {
            let live = &self.live;
            self.order.retain(|id| live.contains_key(id));
        }
        id
    }

    /// Put back a cursor `take` gave (its SCAN failed).
    fn restore(&mut self, id: u64, last: Bytes) {
        if self.live.insert(id, last).is_none() {
            self.order.push_back(id);
        }
    }

    fn take(&mut self, id: u64) -> Option<Bytes> {
        self.live.remove(&id)
    }
}

impl Shared {
    pub fn new(db: Arc<Db>, opts: Options) -> Self {
        Shared {
            db,
            opts,
            writes: Arc::new(Mutex::new(())),
            next_id: AtomicU64::new(1),
            cursors: std::sync::Mutex::new(Cursors::new()),
            started: Instant::now(),
            stats: Stats::new(COMMANDS.iter().map(|c| c.0).collect()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// A value and its expiry (Unix milliseconds; `None`: it never expires).
type Entry = (Bytes, Option<u64>);

/// Wall-clock milliseconds since the Unix epoch: the clock the database judges expiry by
/// (its default clock reads the system time too).
fn now_ms() -> u64 {
    use silt::clock::Clock as _;
    silt::clock::TokioClock.unix_millis()
}

/// Whether a staged write leaves a live value (not a delete, not already expired).
fn live(v: Option<&Entry>, now: u64) -> bool {
    v.is_some_and(|(_, at)| at.is_none_or(|at| at > now))
}

/// Staged writes, the last per key (`None`: delete).
type Staged = BTreeMap<Bytes, Option<Entry>>;

/// Most key and value bytes one [`Run`] stages before it is applied (well under the
/// engine's `MAX_BATCH_BYTES`; a single bigger command is a batch of its own).
const RUN_MAX_BYTES: usize = 1024 * 1024;

/// Consecutive write commands of one pipeline, applied together: the write lock is held
/// from the first until the run is applied (`Conn::end_run`).
#[derive(Debug)]
struct Run {
    _lock: tokio::sync::OwnedMutexGuard<()>,
    staged: Staged,
    /// Key and value bytes in `staged` (about: a key staged twice counts twice).
    bytes: usize,
    /// Index in `Conn::replies` of the run's first reply: if the run's write fails, its
    /// replies from there on become the error.
    first_reply: usize,
}

/// The reads and staged writes of one command, or of one EXEC.
#[derive(Debug, Default)]
struct Tx {
    /// Staged writes, the last per key (`None`: delete), consulted before the database.
    pending: Staged,
    /// Writes of the run this command is part of: read after `pending`, before the
    /// database. (Only write commands join a run, and none of them walks a range.)
    below: Staged,
    /// Reads of a read-only command over several keys come from one snapshot.
    snap: Option<Snapshot>,
}

impl Tx {
    async fn get(&self, db: &Db, key: &[u8]) -> Result<Option<Bytes>, Reply> {
        Ok(self.get_entry(db, key).await?.map(|(v, _)| v))
    }

    /// The value and its expiry.
    async fn get_entry(&self, db: &Db, key: &[u8]) -> Result<Option<Entry>, Reply> {
        if let Some(v) = self.pending.get(key).or_else(|| self.below.get(key)) {
            return Ok(v.clone().filter(|e| live(Some(e), now_ms())));
        }
        let got = match &self.snap {
            Some(s) => s.get_with_expiry(key).await,
            None => db.get_with_expiry(key).await,
        };
        got.map_err(read_failed)
    }

    /// Visit in order the live keys starting with `prefix` (after `after`, if given), the
    /// staged writes merged in, until `visit` returns false. Whether it stopped early.
    async fn walk(
        &self,
        db: &Db,
        prefix: &[u8],
        after: Option<&Bytes>,
        mut visit: impl FnMut(&Bytes) -> bool,
    ) -> Result<bool, Reply> {
        let lower = match after {
            Some(a) if a.as_ref() >= prefix => Bound::Excluded(a.clone()),
            _ if prefix.is_empty() => Bound::Unbounded,
            _ => Bound::Included(Bytes::copy_from_slice(prefix)),
        };
        let upper = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        if let (Bound::Included(lo) | Bound::Excluded(lo), Bound::Excluded(hi)) = (&lower, &upper) {
            if lo >= hi {
                return Ok(false);
            }
        }
        let range = (lower, upper);
        let mut it = match &self.snap {
            Some(s) => s.scan(range.clone()),
            None => db.scan(range.clone()),
        }
        .map_err(read_failed)?;
        let now = now_ms();
        let mut staged = self.pending.range(range).peekable();
        let mut stored = it.next().await.map_err(read_failed)?;
        loop {
            let key = match (stored.take(), staged.peek()) {
                (None, None) => return Ok(false),
                (Some((k, _)), s) if s.is_none_or(|(sk, _)| k < **sk) => {
                    stored = it.next().await.map_err(read_failed)?;
                    k
                }
                (d, _) => {
                    let Some((k, v)) = staged.next() else {
                        return Ok(false);
                    };
                    stored = match d {
                        Some((dk, _)) if dk == k => it.next().await.map_err(read_failed)?,
                        other => other,
                    };
                    if !live(v.as_ref(), now) {
                        continue;
                    }
                    k.clone()
                }
            };
            if !visit(&key) {
                return Ok(true);
            }
        }
    }

    /// Stage a put that never expires (SET, MSET... clear a key's expiry, as in Redis).
    fn put(&mut self, key: &[u8], value: impl Into<Bytes>) {
        self.put_expiring(key, value, None);
    }

    /// Stage a put with the expiry `at` (Unix milliseconds; `None`: never).
    fn put_expiring(&mut self, key: &[u8], value: impl Into<Bytes>, at: Option<u64>) {
        self.pending
            .insert(Bytes::copy_from_slice(key), Some((value.into(), at)));
    }

    fn delete(&mut self, key: &[u8]) {
        self.pending.insert(Bytes::copy_from_slice(key), None);
    }

    fn into_batch(self) -> Option<WriteBatch> {
        if self.pending.is_empty() {
            return None;
        }
        let mut b = WriteBatch::new();
        for (k, v) in &self.pending {
            match v {
                Some((v, None)) => b.put(k, v),
                Some((v, Some(at))) => b.put_expiring(k, v, *at),
                None => b.delete(k),
            };
        }
        Some(b)
    }
}

/// A MULTI being queued.
#[derive(Debug, Default)]
struct Multi {
    queued: Vec<Vec<Bytes>>,
    /// About how much memory `queued` holds.
    bytes: usize,
    /// A command was refused while queuing: EXEC aborts.
    failed: bool,
}

/// Most bytes of commands one MULTI may queue (arguments plus 32 bytes each), together
/// with the keys WATCH holds (see `watch_cost`); past it the command is refused and EXEC
/// aborts.
pub const MAX_QUEUED_BYTES: usize = 512 * 1024 * 1024;

/// What one watched key holds: its key and value (copied, so nothing else is kept alive
/// through them) and its entry in the list.
fn watch_cost(key: &[u8], then: Option<&Entry>) -> usize {
    key.len() + then.map_or(0, |(v, _)| v.len()) + std::mem::size_of::<(Bytes, Option<Entry>)>()
}

/// The keys WATCH named, until EXEC, DISCARD, UNWATCH or RESET.
#[derive(Debug, Default)]
struct Watched {
    /// The keys and their values and expiries then.
    keys: Vec<(Bytes, Option<Entry>)>,
    /// `watch_cost` of `keys`: counts towards `max_queued_bytes` with MULTI's queue.
    bytes: usize,
    /// A WATCH was refused (past `max_queued_bytes`): EXEC aborts.
    failed: bool,
}

/// One client connection's state.
#[derive(Debug)]
pub struct Conn {
    shared: Arc<Shared>,
    id: u64,
    name: Option<Bytes>,
    /// Protocol version of the replies: 2 until HELLO 3.
    resp: u8,
    authed: bool,
    /// Replies of the commands read so far, answered by `finish`.
    replies: Vec<Reply>,
    /// Whether a command since the last `finish` wrote.
    wrote: bool,
    /// Inside MULTI: the commands queued for EXEC.
    multi: Option<Multi>,
    /// What WATCH named.
    watched: Watched,
    /// `encoded_len` of `replies`.
    pending_bytes: usize,
    /// The write commands being gathered into one batch, if any.
    run: Option<Run>,
    /// QUIT was received: answer, then close.
    pub quit: bool,
}

fn arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

fn unknown(name: &str, a: &[Bytes]) -> Reply {
    let shown: Vec<String> = a
        .iter()
        .take(8)
        .map(|s| format!("'{}'", String::from_utf8_lossy(s)))
        .collect();
    Reply::err(format!(
        "unknown command '{name}', with args beginning with: {}",
        shown.join(" ")
    ))
}

fn not_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

fn syntax() -> Reply {
    Reply::err("syntax error")
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Constant-time comparison, so AUTH's timing does not leak the password.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    pub fn new(shared: &Arc<Shared>) -> Self {
        shared.stats.connected.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Conn {
            shared: Arc::clone(shared),
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            name: None,
            resp: 2,
            authed: shared.opts.password.is_none(),
            replies: Vec::new(),
            wrote: false,
            multi: None,
            watched: Watched::default(),
            pending_bytes: 0,
            run: None,
            quit: false,
        }
    }

    pub fn push_reply(&mut self, r: Reply) {
        self.pending_bytes += r.encoded_len();
        self.replies.push(r);
    }

    /// About how many bytes the replies not yet encoded by `finish` take.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Make this pipeline's writes durable (one wait), then encode every reply into `out`.
    /// If that fails, every write's reply becomes the error: none of them is acknowledged.
    pub async fn finish(&mut self, out: &mut Vec<u8>) {
        // A failed run has made its replies the error already.
        let _ = self.end_run().await;
        if std::mem::take(&mut self.wrote) {
            let durable = match self.shared.opts.durability {
                Durability::Remote => self.shared.db.wait_remote().await,
                Durability::Local => self.shared.db.flush_local().await,
                _ => Ok(()),
            };
            if let Err(e) = durable {
                let msg = format!("ERR write not acknowledged: {e}");
                for r in &mut self.replies {
                    *r = Reply::Error(msg.clone());
                }
            }
        }
        for r in self.replies.drain(..) {
            r.encode(self.resp, out);
        }
        self.pending_bytes = 0;
    }

    /// Apply the run's writes as one batch and let go of the write lock. If the write
    /// fails, every reply of the run becomes the error (none of its writes is applied).
    async fn end_run(&mut self) -> Result<(), Reply> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        let tx = Tx {
            pending: run.staged,
            ..Tx::default()
        };
        let done = self.commit(tx).await;
        if let Err(e) = &done {
            for r in self.replies.iter_mut().skip(run.first_reply) {
                *r = e.clone();
            }
        }
        done
    }

    /// Apply a command's (or an EXEC's) staged writes as one batch.
    async fn commit(&mut self, tx: Tx) -> Result<(), Reply> {
        let Some(batch) = tx.into_batch() else {
            return Ok(());
        };
        let opts = WriteOptions::with_durability(Durability::Buffered);
        self.shared
            .db
            .write_with(batch, &opts)
            .await
            .map_err(|e| Reply::err(format!("write failed: {e}")))?;
        self.wrote = true;
        Ok(())
    }

    /// Run one command (`args[0]` is its name).
    pub async fn execute(&mut self, args: &[Bytes]) -> Reply {
        let started = Instant::now();
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let index = lookup(&name);
        let reply = self.execute_named(&name, index, args).await;
        let reply = match reply.encoded_len() {
            len if len > self.shared.opts.max_reply_bytes => self.too_large(),
            _ => reply,
        };
        self.shared.stats.record(index, started.elapsed());
        reply
    }

    fn too_large(&self) -> Reply {
        Reply::err(format!(
            "reply too large: over the {}-byte limit (--max-reply-bytes)",
            self.shared.opts.max_reply_bytes
        ))
    }

    /// Count `more` bytes towards a reply being built; an error past the limit.
    fn charge(&self, used: &mut usize, more: usize) -> Result<(), Reply> {
        *used = used.saturating_add(more);
        if *used > self.shared.opts.max_reply_bytes {
            return Err(self.too_large());
        }
        Ok(())
    }

    async fn execute_named(&mut self, name: &str, index: Option<usize>, args: &[Bytes]) -> Reply {
        let a = &args[1..];
        let spec = index.map(|i| COMMANDS[i]);
        if self.shared.opts.follower && self.authed {
            // As a Redis replica: writes refused (and a MULTI they were queued into aborts).
            let refused = if spec.is_some_and(|s| s.2 == Kind::Write) {
                Some(READONLY)
            } else if name == "waitaof" {
                Some("ERR WAITAOF cannot be used with replica instances.")
            } else {
                None
            };
            if let Some(e) = refused {
                if let Some(m) = &mut self.multi {
                    m.failed = true;
                }
                return Reply::Error(e.into());
            }
        }
        let joins_run = self.multi.is_none()
            && self.authed
            && spec.is_some_and(|s| s.2 == Kind::Write && arity_ok(s.1, args.len()));
        if !joins_run {
            // Everything else sees the run's writes applied (and EXEC, WATCH, WAITAOF
            // must not wait for the lock this connection holds). A failed run has made
            // its replies the error already.
            let _ = self.end_run().await;
        }
        if spec.is_some_and(|s| s.0 == "reset") && a.is_empty() {
            self.resp = 2;
            self.name = None;
            self.multi = None;
            self.unwatch();
            self.authed = self.shared.opts.password.is_none();
            return Reply::Simple("RESET".into());
        }
        let name = name.to_owned();
        if !self.authed && !matches!(name.as_str(), "auth" | "hello" | "quit") {
            if let Some(m) = &mut self.multi {
                m.failed = true;
            }
            return Reply::Error("NOAUTH Authentication required.".into());
        }
        if self.multi.is_some() {
            return self.queue(&name, spec, args).await;
        }
        if let Some((_, n, _)) = spec {
            if !arity_ok(n, args.len()) {
                return arity(&name);
            }
        }
        match name.as_str() {
            "multi" => {
                self.multi = Some(Multi::default());
                return Reply::ok();
            }
            "exec" => return Reply::err("EXEC without MULTI"),
            "discard" => return Reply::err("DISCARD without MULTI"),
            "watch" => return self.watch(a).await,
            "unwatch" => {
                self.unwatch();
                return Reply::ok();
            }
            _ => {}
        }
        let kind = spec.map_or(Kind::Conn, |s| s.2);
        let mut tx = Tx::default();
        let reply = match kind {
            Kind::Write => self.run_write(tx, &name, a).await,
            Kind::Read => {
                if a.len() > 1 {
                    tx.snap = Some(self.shared.db.snapshot());
                }
                self.dispatch(&mut tx, &name, a).await
            }
            Kind::Conn => self.dispatch(&mut tx, &name, a).await,
        };
        match reply {
            Ok(r) | Err(r) => r,
        }
    }

    /// A write command, in the connection's run (started here, under the write lock, if
    /// there is none): its reads see the run's earlier writes, and its own writes join the
    /// run only if it succeeds.
    async fn run_write(&mut self, mut tx: Tx, name: &str, a: &[Bytes]) -> Result<Reply, Reply> {
        let mut run = match self.run.take() {
            Some(run) => run,
            None => Run {
                _lock: Arc::clone(&self.shared.writes).lock_owned().await,
                staged: Staged::new(),
                bytes: 0,
                first_reply: self.replies.len(),
            },
        };
        tx.below = std::mem::take(&mut run.staged);
        let reply = match self.dispatch(&mut tx, name, a).await {
            // Too large a reply (GETSET of a big value): the write is not applied.
            Ok(r) if r.encoded_len() > self.shared.opts.max_reply_bytes => Err(self.too_large()),
            other => other,
        };
        run.staged = std::mem::take(&mut tx.below);
        if reply.is_ok() {
            for (k, v) in tx.pending {
                run.bytes += k.len() + v.as_ref().map_or(0, |(v, _)| v.len());
                run.staged.insert(k, v);
            }
        }
        let full = run.bytes >= RUN_MAX_BYTES;
        self.run = Some(run);
        if full {
            // The reply of this command is not pushed yet: if the write fails, it is
            // reported as this command's error.
            self.end_run().await?;
        }
        reply
    }

    /// A command read inside MULTI: queued (`+QUEUED`) if its name and arity are right,
    /// else refused, which makes EXEC abort.
    async fn queue(
        &mut self,
        name: &str,
        spec: Option<(&str, i32, Kind)>,
        args: &[Bytes],
    ) -> Reply {
        match name {
            "exec" => return self.exec().await,
            "discard" => {
                self.multi = None;
                self.unwatch();
                return Reply::ok();
            }
            "multi" => return Reply::err("MULTI calls can not be nested"),
            "watch" => return Reply::err("WATCH inside MULTI is not allowed"),
            "waitaof" => {
                if let Some(m) = &mut self.multi {
                    m.failed = true;
                }
                return Reply::err("WAITAOF is not allowed inside a transaction");
            }
            "quit" => {
                self.quit = true;
                return Reply::ok();
            }
            _ => {}
        }
        let refused = match spec {
            None => Some(unknown(name, &args[1..])),
            Some((_, n, _)) if !arity_ok(n, args.len()) => Some(arity(name)),
            Some(_) => None,
        };
        let watched = self.watched.bytes;
        let Some(m) = &mut self.multi else {
            return Reply::err("EXEC without MULTI");
        };
        let size = args.iter().map(|a| a.len() + 32).sum::<usize>();
        let refused = refused.or_else(|| {
            let max = self.shared.opts.max_queued_bytes;
            (m.bytes.saturating_add(size).saturating_add(watched) > max).then(|| {
                Reply::err(format!(
                    "transaction too large: over {max} bytes queued and watched"
                ))
            })
        });
        if let Some(r) = refused {
            m.failed = true;
            return r;
        }
        m.bytes += size;
        m.queued.push(args.to_vec());
        Reply::Simple("QUEUED".into())
    }

    /// Run the queued commands in one `Tx` under the write lock, and apply their writes
    /// as one batch; a changed watched key aborts it (a null reply).
    async fn exec(&mut self) -> Reply {
        let Multi { queued, failed, .. } = self.multi.take().unwrap_or_default();
        let watched = self.unwatch();
        if failed || watched.failed {
            return Reply::Error(
                "EXECABORT Transaction discarded because of previous errors.".into(),
            );
        }
        let shared = Arc::clone(&self.shared);
        let _w = shared.writes.lock().await;
        for (key, then) in &watched.keys {
            match shared.db.get_with_expiry(key).await {
                Ok(now) if now == *then => {}
                Ok(_) => return Reply::NullArray,
                Err(e) => return read_failed(e),
            }
        }
        let mut tx = Tx::default();
        let mut replies = Vec::with_capacity(queued.len());
        let mut used = 0;
        for cmd in &queued {
            let name = String::from_utf8_lossy(&cmd[0]).to_ascii_lowercase();
            let r = match self.dispatch(&mut tx, &name, &cmd[1..]).await {
                Ok(r) | Err(r) => r,
            };
            // Too large a reply: nothing of the transaction is applied.
            if let Err(e) = self.charge(&mut used, r.encoded_len()) {
                return e;
            }
            replies.push(r);
        }
        match self.commit(tx).await {
            Ok(()) => Reply::Array(replies),
            Err(e) => e,
        }
    }

    /// WATCH: remember the keys' values now; EXEC compares them under the write lock.
    /// Past `max_queued_bytes` of watched keys and values, the rest are not watched and
    /// the next EXEC aborts.
    async fn watch(&mut self, keys: &[Bytes]) -> Reply {
        let max = self.shared.opts.max_queued_bytes;
        for k in keys {
            match self.shared.db.get_with_expiry(k).await {
                Ok(v) => {
                    let cost = watch_cost(k, v.as_ref());
                    if self.watched.bytes.saturating_add(cost) > max {
                        self.watched.failed = true;
                        return Reply::err(format!(
                            "WATCH too large: over {max} bytes of watched keys and values \
                             (the next EXEC aborts)"
                        ));
                    }
                    self.watched.bytes += cost;
                    let v = v.map(|(v, at)| (Bytes::copy_from_slice(&v), at));
                    self.watched.keys.push((Bytes::copy_from_slice(k), v));
                }
                Err(e) => return Reply::err(format!("read failed: {e}")),
            }
        }
        Reply::ok()
    }

    /// Forget the watched keys (and a refused WATCH), giving back their memory; returns
    /// them.
    fn unwatch(&mut self) -> Watched {
        std::mem::take(&mut self.watched)
    }

    /// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: COUNT keys examined per call.
    async fn scan(&self, tx: &Tx, a: &[Bytes]) -> Result<Reply, Reply> {
        let invalid = || Reply::err("invalid cursor");
        let cursor: u64 = std::str::from_utf8(&a[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid)?;
        let (mut glob, mut count, mut strings) = (None, 10_usize, true);
        let mut opts = a[1..].chunks(2);
        for opt in &mut opts {
            let [name, value] = opt else {
                return Err(syntax());
            };
            match name.to_ascii_lowercase().as_slice() {
                b"match" => glob = Some(Glob::new(value)),
                b"count" => {
                    count = parse_i64(value).ok_or_else(not_integer).and_then(|c| {
                        usize::try_from(c)
                            .ok()
                            .filter(|c| *c >= 1)
                            .ok_or_else(syntax)
                    })?;
                }
                b"type" => strings = value.eq_ignore_ascii_case(b"string"),
                _ => return Err(syntax()),
            }
        }
        let cursors = &self.shared.cursors;
        let after = if cursor == 0 {
            None
        } else {
            let last = cursors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(cursor);
            Some(last.ok_or_else(invalid)?)
        };
        let prefix = glob.as_ref().map(Glob::prefix).unwrap_or_default();
        let glob = glob.filter(|g| !g.is_all());
        let (mut examined, mut last, mut keys) = (0, None, Vec::new());
        let (mut used, mut over) = (0, None);
        let walked = tx
            .walk(&self.shared.db, &prefix, after.as_ref(), |k| {
                if examined == count {
                    return false;
                }
                if strings && glob.as_ref().is_none_or(|g| g.matches(k)) {
                    let key = Reply::Bulk(k.clone());
                    if let Err(e) = self.charge(&mut used, key.encoded_len()) {
                        over = Some(e);
                        return false;
                    }
                    keys.push(key);
                }
                examined += 1;
                last = Some(k.clone());
                true
            })
            .await;
        let more = match (walked, over) {
            (Ok(more), None) => more,
            (Err(e), _) | (Ok(_), Some(e)) => {
                // The client may try the same cursor again.
                if let Some(after) = after {
                    cursors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .restore(cursor, after);
                }
                return Err(e);
            }
        };
        let next = match (more, last) {
            (true, Some(last)) => cursors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(last),
            _ => 0,
        };
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(keys),
        ]))
    }

    /// WAITAOF numlocal numreplicas timeout: `[local, remote]`, 1 where the writes so
    /// far are durable in the local log / the object store (the store counts as the one
    /// replica).
    async fn waitaof(&self, a: &[Bytes]) -> Result<Reply, Reply> {
        let count = |b: &Bytes| parse_i64(b).filter(|v| *v >= 0).ok_or_else(not_integer);
        let (numlocal, numreplicas) = (count(&a[0])?, count(&a[1])?);
        let timeout = parse_i64(&a[2])
            .ok_or_else(|| Reply::err("timeout is not an integer or out of range"))?;
        let timeout = u64::try_from(timeout).map_err(|_| Reply::err("timeout is negative"))?;
        let db = &*self.shared.db;
        let has_local = db.settings().local_log.is_some();
        if numlocal > 0 && !has_local {
            return Err(Reply::err(
                "WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
            ));
        }
        let durability = self.shared.opts.durability;
        let limit = (timeout > 0).then(|| Duration::from_millis(timeout));
        let local = async {
            if !has_local || (numlocal == 0 && durability != Durability::Local) {
                return Ok(0);
            }
            match within(limit, db.flush_local()).await {
                Some(Ok(())) => Ok(1),
                Some(Err(e)) => Err(Reply::err(format!("local log flush failed: {e}"))),
                None => Ok(0),
            }
        };
        let remote = async {
            if numreplicas == 0 {
                return Ok(i64::from(db.durable_seq() >= db.visible_seq()));
            }
            match within(limit, db.wait_remote()).await {
                Some(Ok(())) => Ok(1),
                Some(Err(e)) => Err(Reply::err(format!("remote flush failed: {e}"))),
                None => Ok(0),
            }
        };
        let (local, remote) = tokio::join!(local, remote);
        Ok(Reply::Array(vec![
            Reply::Integer(local?),
            Reply::Integer(remote?),
        ]))
    }

    /// CONFIG GET pattern...: the few parameters clients probe (`redis-benchmark` asks for
    /// `save` and `appendonly`), as they apply to this server; anything else matches
    /// nothing.
    fn config_get(&self, patterns: &[Bytes]) -> Reply {
        let o = &self.shared.opts;
        let durable = o.durability != Durability::Buffered;
        let params: [(&str, String); 7] = [
            ("save", String::new()),
            ("appendonly", if durable { "yes" } else { "no" }.into()),
            ("appendfsync", if durable { "always" } else { "no" }.into()),
            ("databases", "1".into()),
            ("maxclients", o.max_clients.to_string()),
            ("maxmemory", "0".into()),
            (
                "proto-max-bulk-len",
                super::resp::Limits::default().max_bulk_bytes.to_string(),
            ),
        ];
        let globs: Vec<Glob> = patterns
            .iter()
            .map(|p| Glob::new(&p.to_ascii_lowercase()))
            .collect();
        let s = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
        Reply::Map(
            params
                .iter()
                .filter(|(k, _)| globs.iter().any(|g| g.matches(k.as_bytes())))
                .map(|(k, v)| (s(k), s(v)))
                .collect(),
        )
    }

    /// INFO [section ...]: Redis's text format.
    async fn info(&self, tx: &Tx, a: &[Bytes]) -> Result<Reply, Reply> {
        use std::fmt::Write as _;
        const DEFAULT: [&str; 7] = [
            "server",
            "clients",
            "memory",
            "persistence",
            "stats",
            "replication",
            "keyspace",
        ];
        let mut want: Vec<String> = a
            .iter()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .collect();
        if want.is_empty()
            || want
                .iter()
                .any(|w| matches!(w.as_str(), "all" | "default" | "everything"))
        {
            want = DEFAULT.iter().map(|s| (*s).to_owned()).collect();
        }
        let shared = &*self.shared;
        let db = &*shared.db;
        let stats = &shared.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for section in DEFAULT.iter().filter(|s| want.iter().any(|w| w == *s)) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            // `# Title` lines are headers, the others `name:value`.
            let mut line = |k: &str, v: &dyn std::fmt::Display| {
                let _ = if k.starts_with('#') {
                    write!(out, "{k}\r\n")
                } else {
                    write!(out, "{k}:{v}\r\n")
                };
            };
            match *section {
                "server" => {
                    let up = shared.started.elapsed().as_secs();
                    line("# Server", &"");
                    line("redis_version", &REDIS_VERSION);
                    line("silt_version", &env!("CARGO_PKG_VERSION"));
                    line("redis_mode", &"standalone");
                    line("arch_bits", &(usize::BITS));
                    line("process_id", &std::process::id());
                    line("tcp_port", &shared.opts.port);
                    line("uptime_in_seconds", &up);
                    line("uptime_in_days", &(up / 86_400));
                }
                "clients" => {
                    line("# Clients", &"");
                    line("connected_clients", &load(&stats.connected));
                    line("maxclients", &shared.opts.max_clients);
                }
                "memory" => {
                    let rss = db.metrics().process_resident_bytes.unwrap_or(0);
                    line("# Memory", &"");
                    line("used_memory", &rss);
                    line(
                        "used_memory_human",
                        &format!("{:.2}M", rss as f64 / 1_048_576.0),
                    );
                    line("used_memory_rss", &rss);
                    line("maxmemory", &0);
                }
                "replication" => {
                    line("# Replication", &"");
                    if let Some(f) = db.follower_status() {
                        line("role", &"slave");
                        // The writer is reached through the store, not a link of
                        // its own: "up" while reads are served (not stale).
                        let up = if f.stale { "down" } else { "up" };
                        line("master_link_status", &up);
                        line("master_last_io_seconds_ago", &f.lag.as_secs());
                        line("slave_read_only", &1);
                        line("silt_follower_applied_seq", &f.applied_seq);
                        line("silt_follower_lag_seq", &f.lag_seq);
                        line("silt_follower_lag_ms", &f.lag.as_millis());
                        line("silt_follower_manifest_id", &f.manifest_id);
                        line("silt_follower_writer_epoch", &f.writer_epoch);
                    } else {
                        line("role", &"master");
                        line("connected_slaves", &0);
                    }
                }
                "persistence" => {
                    let m = db.metrics();
                    line("# Persistence", &"");
                    line("loading", &0);
                    line(
                        "silt_durability",
                        &format!("{:?}", shared.opts.durability).to_ascii_lowercase(),
                    );
                    line("aof_enabled", &u8::from(m.local_log.is_some()));
                    line("silt_visible_seq", &m.stats.visible_seq);
                    line("silt_durable_seq", &db.durable_seq());
                    if let Some(w) = &m.wal {
                        line("silt_wal_segments_uploaded", &w.segments_uploaded);
                        line("silt_wal_bytes_uploaded", &w.bytes_uploaded);
                        line("silt_wal_put_requests", &w.put_requests);
                        line("silt_wal_records_appended", &w.records_appended);
                    }
                    if let Some(l) = &m.local_log {
                        line("silt_local_log_commits", &l.commits);
                        line("silt_local_log_syncs", &l.syncs);
                        line("silt_local_log_bytes_written", &l.bytes_written);
                        line("silt_local_log_pending_bytes", &l.pending_bytes);
                    }
                }
                "stats" => {
                    line("# Stats", &"");
                    line(
                        "total_connections_received",
                        &load(&stats.connections_total),
                    );
                    line("total_commands_processed", &load(&stats.commands_total));
                }
                _ => {
                    let mut keys = 0_u64;
                    tx.walk(db, b"", None, |_| {
                        keys += 1;
                        true
                    })
                    .await?;
                    let _ = write!(out, "# Keyspace\r\n");
                    if keys > 0 {
                        let _ = write!(out, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
                    }
                }
            }
        }
        Ok(Reply::Bulk(Bytes::from(out)))
    }

    async fn dispatch(&mut self, tx: &mut Tx, name: &str, a: &[Bytes]) -> Result<Reply, Reply> {
        let db = Arc::clone(&self.shared.db);
        let db = &*db;
        let n = a.len();
        Ok(match name {
            "ping" => match n {
                0 => Reply::Simple("PONG".into()),
                1 => Reply::Bulk(a[0].clone()),
                _ => return Err(arity(name)),
            },
            "echo" if n == 1 => Reply::Bulk(a[0].clone()),
            "quit" => {
                self.quit = true;
                Reply::ok()
            }
            "select" if n == 1 => match parse_i64(&a[0]) {
                Some(0) => Reply::ok(),
                Some(_) => Reply::err("DB index is out of range"),
                None => not_integer(),
            },
            "auth" if n == 1 || n == 2 => self.auth(a.last().map_or(&[][..], |p| &p[..])),
            "hello" => return self.hello(a),
            "client" => return self.client(a),
            "command" => match a.first().map(|s| s.to_ascii_lowercase()) {
                Some(sub) if sub == b"count" => Reply::Integer(0),
                Some(sub) if sub == b"docs" => Reply::Map(Vec::new()),
                _ => Reply::Array(Vec::new()),
            },
            "config" if n >= 2 && a[0].eq_ignore_ascii_case(b"get") => self.config_get(&a[1..]),
            // Inside EXEC (outside, `execute` answers these).
            "unwatch" => Reply::ok(),
            "get" if n == 1 => opt_bulk(tx.get(db, &a[0]).await?),
            "mget" if n >= 1 => {
                let mut out = Vec::with_capacity(n);
                let mut used = 0;
                for k in a {
                    let v = opt_bulk(tx.get(db, k).await?);
                    self.charge(&mut used, v.encoded_len())?;
                    out.push(v);
                }
                Reply::Array(out)
            }
            "exists" if n >= 1 => {
                let mut count = 0;
                for k in a {
                    count += i64::from(tx.get(db, k).await?.is_some());
                }
                Reply::Integer(count)
            }
            "strlen" if n == 1 => {
                Reply::Integer(tx.get(db, &a[0]).await?.map_or(0, |v| v.len() as i64))
            }
            "set" if n >= 2 => return set(tx, db, a).await,
            "setnx" if n == 2 => {
                if tx.get(db, &a[0]).await?.is_some() {
                    Reply::Integer(0)
                } else {
                    tx.put(&a[0], a[1].clone());
                    Reply::Integer(1)
                }
            }
            "getset" if n == 2 => {
                let old = tx.get(db, &a[0]).await?;
                tx.put(&a[0], a[1].clone());
                opt_bulk(old)
            }
            "getdel" if n == 1 => {
                let old = tx.get(db, &a[0]).await?;
                if old.is_some() {
                    tx.delete(&a[0]);
                }
                opt_bulk(old)
            }
            "mset" if n >= 2 && n % 2 == 0 => {
                for kv in a.chunks(2) {
                    tx.put(&kv[0], kv[1].clone());
                }
                Reply::ok()
            }
            "msetnx" if n >= 2 && n % 2 == 0 => {
                for kv in a.chunks(2) {
                    if tx.get(db, &kv[0]).await?.is_some() {
                        return Ok(Reply::Integer(0));
                    }
                }
                for kv in a.chunks(2) {
                    tx.put(&kv[0], kv[1].clone());
                }
                Reply::Integer(1)
            }
            "del" | "unlink" if n >= 1 => {
                // Every read first: a failed one leaves nothing staged.
                let mut gone = std::collections::BTreeSet::new();
                for k in a {
                    if !gone.contains(k) && tx.get(db, k).await?.is_some() {
                        gone.insert(k);
                    }
                }
                for k in &gone {
                    tx.delete(k);
                }
                Reply::Integer(gone.len() as i64)
            }
            "incr" if n == 1 => return incr_by(tx, db, &a[0], 1).await,
            "decr" if n == 1 => return incr_by(tx, db, &a[0], -1).await,
            "incrby" | "decrby" if n == 2 => {
                let by = parse_i64(&a[1]).ok_or_else(not_integer)?;
                let by = if name == "decrby" {
                    by.checked_neg().ok_or_else(not_integer)?
                } else {
                    by
                };
                return incr_by(tx, db, &a[0], by).await;
            }
            "append" if n == 2 => {
                // APPEND, like INCR, keeps the key's expiry.
                let (mut v, at) = match tx.get_entry(db, &a[0]).await? {
                    Some((v, at)) => (v.to_vec(), at),
                    None => (Vec::new(), None),
                };
                v.extend_from_slice(&a[1]);
                let len = v.len() as i64;
                tx.put_expiring(&a[0], v, at);
                Reply::Integer(len)
            }
            "setex" | "psetex" if n == 3 => {
                let unit = if name == "setex" { 1000 } else { 1 };
                let at = expiry_from(&a[1], unit, false, name)?;
                tx.put_expiring(&a[0], a[2].clone(), Some(at));
                Reply::ok()
            }
            "getex" if n >= 1 => return getex(tx, db, a).await,
            "expire" | "pexpire" | "expireat" | "pexpireat" if n >= 2 => {
                return expire(tx, db, name, a).await
            }
            "persist" if n == 1 => match tx.get_entry(db, &a[0]).await? {
                Some((v, Some(_))) => {
                    tx.put(&a[0], v);
                    Reply::Integer(1)
                }
                _ => Reply::Integer(0),
            },
            "ttl" | "pttl" | "expiretime" | "pexpiretime" if n == 1 => {
                match tx.get_entry(db, &a[0]).await? {
                    None => Reply::Integer(-2),
                    Some((_, None)) => Reply::Integer(-1),
                    Some((_, Some(at))) => {
                        let left = at.saturating_sub(now_ms());
                        let v = match name {
                            // Rounded to the nearest second, as Redis does.
                            "ttl" => left.saturating_add(500) / 1000,
                            "pttl" => left,
                            "expiretime" => at / 1000,
                            _ => at,
                        };
                        Reply::Integer(i64::try_from(v).unwrap_or(i64::MAX))
                    }
                }
            }
            "scan" if n >= 1 => return self.scan(tx, a).await,
            "keys" if n == 1 => {
                let glob = Glob::new(&a[0]);
                let (mut keys, mut used, mut over) = (Vec::new(), 0, None);
                tx.walk(db, &glob.prefix(), None, |k| {
                    if glob.matches(k) {
                        let key = Reply::Bulk(k.clone());
                        if let Err(e) = self.charge(&mut used, key.encoded_len()) {
                            over = Some(e);
                            return false;
                        }
                        keys.push(key);
                    }
                    true
                })
                .await?;
                if let Some(e) = over {
                    return Err(e);
                }
                Reply::Array(keys)
            }
            "dbsize" if n == 0 => {
                let mut count = 0;
                tx.walk(db, b"", None, |_| {
                    count += 1;
                    true
                })
                .await?;
                Reply::Integer(count)
            }
            "waitaof" if n == 3 => return self.waitaof(a).await,
            "info" => return self.info(tx, a).await,
            _ if lookup(name).is_some() => return Err(arity(name)),
            _ => unknown(name, a),
        })
    }

    fn auth(&mut self, given: &[u8]) -> Reply {
        match &self.shared.opts.password {
            None => Reply::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            Some(p) if same(p.as_bytes(), given) => {
                self.authed = true;
                Reply::ok()
            }
            Some(_) => {
                Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
            }
        }
    }

    fn hello(&mut self, a: &[Bytes]) -> Result<Reply, Reply> {
        let mut i = 0;
        if let Some(v) = a.first() {
            match parse_i64(v) {
                Some(2) => self.resp = 2,
                Some(3) => self.resp = 3,
                Some(_) => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
                None => {
                    return Err(Reply::err(
                        "Protocol version is not an integer or out of range",
                    ))
                }
            }
            i = 1;
        }
        while i < a.len() {
            if a[i].eq_ignore_ascii_case(b"auth") && i + 2 < a.len() {
                if let Reply::Error(e) = self.auth(&a[i + 2]) {
                    return Err(Reply::Error(e));
                }
                i += 3;
            } else if a[i].eq_ignore_ascii_case(b"setname") && i + 1 < a.len() {
                self.name = Some(a[i + 1].clone());
                i += 2;
            } else {
                return Err(syntax());
            }
        }
        if !self.authed {
            return Err(Reply::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time"
                    .into(),
            ));
        }
        let s = |t: &str| Reply::Bulk(Bytes::copy_from_slice(t.as_bytes()));
        Ok(Reply::Map(vec![
            (s("server"), s("silt")),
            (s("version"), s(env!("CARGO_PKG_VERSION"))),
            (s("proto"), Reply::Integer(i64::from(self.resp))),
            (s("id"), Reply::Integer(self.id as i64)),
            (s("mode"), s("standalone")),
            (
                s("role"),
                s(if self.shared.opts.follower {
                    "replica"
                } else {
                    "master"
                }),
            ),
            (s("modules"), Reply::Array(Vec::new())),
        ]))
    }

    fn client(&mut self, a: &[Bytes]) -> Result<Reply, Reply> {
        let sub = a
            .first()
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match (sub.as_slice(), a.len()) {
            (b"setname", 2) => {
                if a[1].iter().any(|c| *c <= b' ' || *c > b'~') {
                    return Err(Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                self.name = (!a[1].is_empty()).then(|| a[1].clone());
                Reply::ok()
            }
            (b"getname", 1) => opt_bulk(self.name.clone()),
            (b"id", 1) => Reply::Integer(self.id as i64),
            (b"setinfo", 3) => Reply::ok(),
            (b"info", 1) => Reply::Bulk(Bytes::from(format!(
                "id={} name={} resp={}\n",
                self.id,
                self.name
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                self.resp
            ))),
            _ => return Err(syntax()),
        })
    }
}

/// The expiry (Unix milliseconds) `arg` gives in `unit` milliseconds: relative to now, or
/// (`absolute`) since the epoch. Redis's error for anything but a positive integer whose
/// expiry fits (`command` names the command in it).
fn expiry_from(arg: &[u8], unit: u64, absolute: bool, command: &str) -> Result<u64, Reply> {
    let invalid = || Reply::err(format!("invalid expire time in '{command}' command"));
    let n = parse_i64(arg).ok_or_else(not_integer)?;
    let n = u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(invalid)?;
    let ms = n.checked_mul(unit).ok_or_else(invalid)?;
    let at = if absolute {
        ms
    } else {
        now_ms().checked_add(ms).ok_or_else(invalid)?
    };
    // Kept within what Redis accepts (and i64 replies can show).
    i64::try_from(at).map(|_| at).map_err(|_| invalid())
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL].
async fn set(tx: &mut Tx, db: &Db, a: &[Bytes]) -> Result<Reply, Reply> {
    let (key, value) = (&a[0], &a[1]);
    let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
    let mut expiry: Option<u64> = None;
    let mut opts = a[2..].iter();
    while let Some(opt) = opts.next() {
        let o = opt.to_ascii_lowercase();
        let timed = expiry.is_some() || keep;
        match o.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if !timed => keep = true,
            b"ex" | b"px" | b"exat" | b"pxat" if !timed => {
                let arg = opts.next().ok_or_else(syntax)?;
                let (unit, absolute) = match o.as_slice() {
                    b"ex" => (1000, false),
                    b"px" => (1, false),
                    b"exat" => (1000, true),
                    _ => (1, true),
                };
                expiry = Some(expiry_from(arg, unit, absolute, "set")?);
            }
            _ => return Err(syntax()),
        }
    }
    let old = if nx || xx || get || keep {
        tx.get_entry(db, key).await?
    } else {
        None
    };
    let skip = (nx && old.is_some()) || (xx && old.is_none());
    if !skip {
        let at = if keep {
            old.as_ref().and_then(|(_, at)| *at)
        } else {
            expiry
        };
        tx.put_expiring(key, value.clone(), at);
    }
    Ok(match (get, skip) {
        (true, _) => opt_bulk(old.map(|(v, _)| v)),
        (false, true) => Reply::Null,
        (false, false) => Reply::ok(),
    })
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: the value, its expiry changed.
async fn getex(tx: &mut Tx, db: &Db, a: &[Bytes]) -> Result<Reply, Reply> {
    let key = &a[0];
    // None: leave the expiry; Some(None): persist; Some(Some(at)): expire at `at`.
    let change: Option<Option<u64>> = match &a[1..] {
        [] => None,
        [p] if p.eq_ignore_ascii_case(b"persist") => Some(None),
        [o, arg] => {
            let (unit, absolute) = match o.to_ascii_lowercase().as_slice() {
                b"ex" => (1000, false),
                b"px" => (1, false),
                b"exat" => (1000, true),
                b"pxat" => (1, true),
                _ => return Err(syntax()),
            };
            Some(Some(expiry_from(arg, unit, absolute, "getex")?))
        }
        _ => return Err(syntax()),
    };
    let Some((value, at)) = tx.get_entry(db, key).await? else {
        return Ok(Reply::Null);
    };
    if let Some(new) = change.filter(|new| *new != at) {
        tx.put_expiring(key, value.clone(), new);
    }
    Ok(Reply::Bulk(value))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key n [NX|XX|GT|LT]: 1 if the expiry was set,
/// 0 if the key is missing or a condition failed. An expiry in the past deletes the key.
async fn expire(tx: &mut Tx, db: &Db, name: &str, a: &[Bytes]) -> Result<Reply, Reply> {
    let (unit, absolute) = match name {
        "expire" => (1000_i64, false),
        "pexpire" => (1, false),
        "expireat" => (1000, true),
        _ => (1, true),
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(Reply::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || Reply::err(format!("invalid expire time in '{name}' command"));
    let n = parse_i64(&a[1]).ok_or_else(not_integer)?;
    let ms = n.checked_mul(unit).ok_or_else(invalid)?;
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let at = if absolute {
        Some(ms)
    } else {
        now.checked_add(ms)
    }
    .ok_or_else(invalid)?;
    let Some((value, current)) = tx.get_entry(db, &a[0]).await? else {
        return Ok(Reply::Integer(0));
    };
    // No expiry counts as an infinite one for GT and LT.
    let cur = current.map_or(i128::MAX, i128::from);
    let ok = !(nx && current.is_some()
        || xx && current.is_none()
        || gt && i128::from(at) <= cur
        || lt && i128::from(at) >= cur);
    if !ok {
        return Ok(Reply::Integer(0));
    }
    match u64::try_from(at) {
        Ok(at) if i128::from(at) > i128::from(now) => tx.put_expiring(&a[0], value, Some(at)),
        _ => tx.delete(&a[0]),
    }
    Ok(Reply::Integer(1))
}

/// INCRBY and friends; the key keeps its expiry, as in Redis.
async fn incr_by(tx: &mut Tx, db: &Db, key: &[u8], by: i64) -> Result<Reply, Reply> {
    let (cur, at) = match tx.get_entry(db, key).await? {
        Some((v, at)) => (parse_i64(&v).ok_or_else(not_integer)?, at),
        None => (0, None),
    };
    let next = cur
        .checked_add(by)
        .ok_or_else(|| Reply::err("increment or decrement would overflow"))?;
    tx.put_expiring(key, next.to_string(), at);
    Ok(Reply::Integer(next))
}

/// `fut`'s output, unless `limit` passes first.
async fn within<F: std::future::Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        None => Some(fut.await),
        Some(d) => tokio::time::timeout(d, fut).await.ok(),
    }
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "used as `map_err(read_failed)`"
)]
fn read_failed(e: silt::Error) -> Reply {
    Reply::err(format!("read failed: {e}"))
}

/// The smallest key above every key starting with `prefix` (`None`: no bound).
fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let last = end.last_mut()?;
    *last += 1;
    Some(end.into())
}

fn opt_bulk(v: Option<Bytes>) -> Reply {
    v.map_or(Reply::Null, Reply::Bulk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    async fn conn(max_queued_bytes: usize) -> Conn {
        let db = Db::open("memory://", silt::Settings::default())
            .await
            .expect("open");
        let shared = Arc::new(Shared::new(
            Arc::new(db),
            Options {
                durability: Durability::Buffered,
                password: None,
                port: 0,
                max_clients: 1,
                max_reply_bytes: 1 << 20,
                max_queued_bytes,
                follower: false,
            },
        ));
        Conn::new(&shared)
    }

    /// Run commands as one pipeline: each reply pushed, then `finish`.
    async fn pipeline(c: &mut Conn, words: &[&str]) -> Vec<u8> {
        for w in words {
            let r = c.execute(&cmd(w)).await;
            c.push_reply(r);
        }
        let mut out = Vec::new();
        c.finish(&mut out).await;
        out
    }

    #[tokio::test]
    async fn a_run_of_writes_reads_its_own_writes_and_is_applied_once() {
        let mut c = conn(1 << 20).await;
        let before = c.shared.db.metrics().wal.map(|w| w.records_appended);
        let out = pipeline(&mut c, &["SET n 1", "INCR n", "APPEND n 0", "GET n"]).await;
        assert_eq!(out, b"+OK\r\n:2\r\n:2\r\n$2\r\n20\r\n");
        let after = c.shared.db.metrics().wal.map(|w| w.records_appended);
        // The three writes before the GET are one WAL record (one WriteBatch).
        assert_eq!(after.zip(before).map(|(a, b)| a - b), Some(1));
        assert!(c.run.is_none(), "the run ended with the pipeline");
    }

    #[tokio::test]
    async fn a_run_past_its_byte_bound_is_applied_before_it_goes_on() {
        let mut c = conn(1 << 20).await;
        let value = "v".repeat(RUN_MAX_BYTES / 2 + 1);
        let first = c.execute(&cmd(&format!("SET a {value}"))).await;
        c.push_reply(first);
        assert!(c.run.is_some(), "a run is open after one write");
        let second = c.execute(&cmd(&format!("SET b {value}"))).await;
        c.push_reply(second);
        assert!(
            c.run.is_none(),
            "the run was applied once past RUN_MAX_BYTES"
        );
        // Applied: another connection sees both before this one answers.
        assert!(c.shared.db.get("a").await.expect("get").is_some());
        assert!(c.shared.db.get("b").await.expect("get").is_some());
    }

    #[tokio::test]
    async fn a_failed_run_makes_all_its_replies_the_error() {
        let mut c = conn(1 << 20).await;
        let ok = c.execute(&cmd("PING")).await;
        c.push_reply(ok);
        for w in ["SET a 1", "INCR n"] {
            let r = c.execute(&cmd(w)).await;
            c.push_reply(r);
        }
        // The database goes away before the run is applied: its write fails.
        c.shared.db.close().await.expect("close");
        let mut out = Vec::new();
        c.finish(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "+PONG", "{text}");
        assert!(lines[1].starts_with("-ERR write failed"), "{text}");
        assert_eq!(lines[1], lines[2], "{text}");
    }

    #[tokio::test]
    async fn a_multi_over_its_byte_limit_aborts() {
        let mut c = conn(200).await;
        assert_eq!(c.execute(&cmd("MULTI")).await, Reply::ok());
        let queued = Reply::Simple("QUEUED".into());
        assert_eq!(c.execute(&cmd("SET a 1")).await, queued);
        let big = format!("SET b {}", "x".repeat(150));
        let Reply::Error(e) = c.execute(&cmd(&big)).await else {
            panic!("queued past the limit");
        };
        assert!(e.contains("transaction too large"), "{e}");
        let Reply::Error(e) = c.execute(&cmd("EXEC")).await else {
            panic!("EXEC ran");
        };
        assert!(e.starts_with("EXECABORT"), "{e}");
        assert_eq!(c.execute(&cmd("GET a")).await, Reply::Null);
    }

    #[tokio::test]
    async fn watching_past_the_byte_limit_is_refused_and_aborts_exec() {
        let mut c = conn(1000).await;
        let value = "x".repeat(600);
        let ok = Reply::ok();
        let queued = Reply::Simple("QUEUED".into());
        assert_eq!(
            c.execute(&cmd(&format!("MSET a {value} b {value}"))).await,
            ok
        );
        assert_eq!(c.execute(&cmd("WATCH a")).await, ok);
        // b's 600 bytes on top of a's are past the 1000-byte limit.
        let Reply::Error(e) = c.execute(&cmd("WATCH b")).await else {
            panic!("watched past the limit");
        };
        assert!(e.starts_with("ERR WATCH too large"), "{e}");
        assert!(
            c.watched.keys.len() == 1 && c.watched.bytes < 1000,
            "b is not held"
        );
        // The connection goes on; the transaction after the refused WATCH aborts.
        assert_eq!(c.execute(&cmd("GET c")).await, Reply::Null);
        assert_eq!(c.execute(&cmd("MULTI")).await, ok);
        assert_eq!(c.execute(&cmd("SET c 1")).await, queued);
        let Reply::Error(e) = c.execute(&cmd("EXEC")).await else {
            panic!("EXEC ran after a refused WATCH");
        };
        assert!(e.starts_with("EXECABORT"), "{e}");
        assert_eq!(c.execute(&cmd("GET c")).await, Reply::Null);
        assert!(
            c.watched.keys.is_empty() && c.watched.bytes == 0,
            "EXEC unwatched"
        );
        // The watched bytes count towards the queue's limit too.
        assert_eq!(c.execute(&cmd("WATCH a")).await, ok);
        assert_eq!(c.execute(&cmd("MULTI")).await, ok);
        let big = format!("SET d {}", "y".repeat(300));
        let Reply::Error(e) = c.execute(&cmd(&big)).await else {
            panic!("queued past the limit with the watched keys");
        };
        assert!(e.contains("transaction too large"), "{e}");
        assert!(
            matches!(c.execute(&cmd("EXEC")).await, Reply::Error(e) if e.starts_with("EXECABORT"))
        );
        // UNWATCH forgets a refused WATCH: within the limit, WATCH then EXEC works, and a
        // change by another client still aborts it.
        assert!(matches!(
            c.execute(&cmd("WATCH a b")).await,
            Reply::Error(_)
        ));
        assert_eq!(c.execute(&cmd("UNWATCH")).await, ok);
        assert_eq!(c.execute(&cmd("WATCH a")).await, ok);
        assert_eq!(c.execute(&cmd("MULTI")).await, ok);
        assert_eq!(c.execute(&cmd("SET c 1")).await, queued);
        assert_eq!(
            c.execute(&cmd("EXEC")).await,
            Reply::Array(vec![ok.clone()])
        );
        let mut other = Conn::new(&c.shared);
        assert_eq!(c.execute(&cmd("WATCH a")).await, ok);
        assert_eq!(other.execute(&cmd("SET a changed")).await, ok);
        let mut out = Vec::new();
        other.finish(&mut out).await;
        assert_eq!(c.execute(&cmd("MULTI")).await, ok);
        assert_eq!(c.execute(&cmd("SET c 2")).await, queued);
        assert_eq!(c.execute(&cmd("EXEC")).await, Reply::NullArray);
        assert_eq!(c.execute(&cmd("GET c")).await, Reply::Bulk("1".into()));
    }

    #[tokio::test]
    async fn scans_merge_staged_writes_in_order() {
        let mut c = conn(1 << 20).await;
        c.execute(&cmd("MSET k1 v k3 v k5 v j v")).await;
        c.execute(&cmd("MULTI")).await;
        for w in [
            "SET k2 v", "DEL k3", "SET k6 v", "SET k1 w", "KEYS k*", "DBSIZE",
        ] {
            c.execute(&cmd(w)).await;
        }
        let Reply::Array(r) = c.execute(&cmd("EXEC")).await else {
            panic!("EXEC failed");
        };
        let keys = |ks: &[&str]| {
            Reply::Array(
                ks.iter()
                    .map(|k| Reply::Bulk(Bytes::copy_from_slice(k.as_bytes())))
                    .collect(),
            )
        };
        assert_eq!(r[4], keys(&["k1", "k2", "k5", "k6"]));
        assert_eq!(r[5], Reply::Integer(5));
    }

    #[test]
    fn cursors_are_bounded_and_evict_the_oldest() {
        let mut c = Cursors::new();
        let first = c.insert(Bytes::from_static(b"a"));
        let second = c.insert(Bytes::from_static(b"b"));
        assert_ne!(first, 0);
        assert_eq!(c.take(second), Some(Bytes::from_static(b"b")));
        assert_eq!(c.take(second), None);
        c.restore(second, Bytes::from_static(b"b"));
        assert_eq!(c.take(second), Some(Bytes::from_static(b"b")));
        for i in 0..MAX_CURSORS * 3 {
            c.insert(Bytes::from(i.to_string()));
            if i % 2 == 0 {
                // Taken ones leave stale ids in `order`, which must not grow without bound.
                let id = c.insert(Bytes::from_static(b"x"));
                c.take(id);
            }
        }
        assert_eq!(c.live.len(), MAX_CURSORS);
        assert!(c.order.len() <= 2 * MAX_CURSORS + 1, "{}", c.order.len());
        assert_eq!(c.take(first), None, "the oldest was not evicted");
    }

    #[test]
    fn prefix_end_is_the_least_upper_bound() {
        assert_eq!(prefix_end(b"ab"), Some(Bytes::from_static(b"ac")));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn arity() {
        assert!(arity_ok(2, 2) && !arity_ok(2, 3));
        assert!(arity_ok(-2, 2) && arity_ok(-2, 9) && !arity_ok(-2, 1));
        for (name, _, _) in COMMANDS {
            assert_eq!(lookup(name).map(|i| COMMANDS[i].0), Some(*name));
        }
    }
}
