//! The commands `silt serve` answers, with Redis's reply types and error texts.
//!
//! Every write is applied under one server-wide lock (so a read-modify-write command such
//! as INCR is atomic against every other write) with `Buffered` durability; the connection
//! then makes the pipeline's writes durable with one `Db::wait_remote` (Remote) or
//! `Db::flush_local` (Local) before it answers any of them (`Conn::finish`), so N pipelined
//! writes cost one durability wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use silt::{Db, Durability, WriteBatch, WriteOptions};
use tokio::sync::Mutex;

use super::resp::Reply;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    db: Arc<Db>,
    durability: Durability,
    password: Option<String>,
    writes: Mutex<()>,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(db: Arc<Db>, durability: Durability, password: Option<String>) -> Self {
        Shared {
            db,
            durability,
            password,
            writes: Mutex::new(()),
            next_id: AtomicU64::new(1),
        }
    }
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
    /// QUIT was received: answer, then close.
    pub quit: bool,
}

fn arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
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

impl Conn {
    pub fn new(shared: &Arc<Shared>) -> Self {
        Conn {
            shared: Arc::clone(shared),
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            name: None,
            resp: 2,
            authed: shared.password.is_none(),
            replies: Vec::new(),
            wrote: false,
            quit: false,
        }
    }

    pub fn push_reply(&mut self, r: Reply) {
        self.replies.push(r);
    }

    /// Make this pipeline's writes durable (one wait), then encode every reply into `out`.
    /// If that fails, every write's reply becomes the error: none of them is acknowledged.
    pub async fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.wrote) {
            let durable = match self.shared.durability {
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
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Reply> {
        self.shared
            .db
            .get(key)
            .await
            .map_err(|e| Reply::err(format!("read failed: {e}")))
    }

    async fn apply(&mut self, batch: WriteBatch) -> Result<(), Reply> {
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
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let a = &args[1..];
        if !self.authed && !matches!(name.as_str(), "auth" | "hello" | "quit") {
            return Reply::Error("NOAUTH Authentication required.".into());
        }
        match self.dispatch(&name, a).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn dispatch(&mut self, name: &str, a: &[Bytes]) -> Result<Reply, Reply> {
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
            "config" if n >= 2 && a[0].eq_ignore_ascii_case(b"get") => Reply::Map(Vec::new()),
            "get" if n == 1 => opt_bulk(self.get(&a[0]).await?),
            "mget" if n >= 1 => {
                let mut out = Vec::with_capacity(n);
                for k in a {
                    out.push(opt_bulk(self.get(k).await?));
                }
                Reply::Array(out)
            }
            "exists" if n >= 1 => {
                let mut count = 0;
                for k in a {
                    count += i64::from(self.get(k).await?.is_some());
                }
                Reply::Integer(count)
            }
            "strlen" if n == 1 => {
                Reply::Integer(self.get(&a[0]).await?.map_or(0, |v| v.len() as i64))
            }
            "set" if n >= 2 => return self.set(a).await,
            "setnx" if n == 2 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                if self.get(&a[0]).await?.is_some() {
                    Reply::Integer(0)
                } else {
                    self.put(&a[0], &a[1]).await?;
                    Reply::Integer(1)
                }
            }
            "getset" if n == 2 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                let old = self.get(&a[0]).await?;
                self.put(&a[0], &a[1]).await?;
                opt_bulk(old)
            }
            "getdel" if n == 1 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                let old = self.get(&a[0]).await?;
                if old.is_some() {
                    let mut b = WriteBatch::new();
                    b.delete(&a[0]);
                    self.apply(b).await?;
                }
                opt_bulk(old)
            }
            "mset" if n >= 2 && n % 2 == 0 => {
                let mut b = WriteBatch::new();
                for kv in a.chunks(2) {
                    b.put(&kv[0], &kv[1]);
                }
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                self.apply(b).await?;
                Reply::ok()
            }
            "msetnx" if n >= 2 && n % 2 == 0 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                for kv in a.chunks(2) {
                    if self.get(&kv[0]).await?.is_some() {
                        return Ok(Reply::Integer(0));
                    }
                }
                let mut b = WriteBatch::new();
                for kv in a.chunks(2) {
                    b.put(&kv[0], &kv[1]);
                }
                self.apply(b).await?;
                Reply::Integer(1)
            }
            "del" | "unlink" if n >= 1 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                let mut b = WriteBatch::new();
                let mut count = 0;
                for k in a {
                    if self.get(k).await?.is_some() {
                        count += 1;
                        b.delete(k);
                    }
                }
                if count > 0 {
                    self.apply(b).await?;
                }
                Reply::Integer(count)
            }
            "incr" if n == 1 => return self.incr_by(&a[0], 1).await,
            "decr" if n == 1 => return self.incr_by(&a[0], -1).await,
            "incrby" | "decrby" if n == 2 => {
                let by = parse_i64(&a[1]).ok_or_else(not_integer)?;
                let by = if name == "decrby" {
                    by.checked_neg().ok_or_else(not_integer)?
                } else {
                    by
                };
                return self.incr_by(&a[0], by).await;
            }
            "append" if n == 2 => {
                let shared = Arc::clone(&self.shared);
                let _w = shared.writes.lock().await;
                let mut v = self
                    .get(&a[0])
                    .await?
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                v.extend_from_slice(&a[1]);
                let len = v.len() as i64;
                self.put(&a[0], &v).await?;
                Reply::Integer(len)
            }
            "echo" | "select" | "auth" | "config" | "get" | "mget" | "exists" | "strlen"
            | "set" | "setnx" | "getset" | "getdel" | "mset" | "msetnx" | "del" | "unlink"
            | "incr" | "decr" | "incrby" | "decrby" | "append" => return Err(arity(name)),
            _ => {
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
        })
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Reply> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.apply(b).await
    }

    fn auth(&mut self, given: &[u8]) -> Reply {
        match &self.shared.password {
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
            (s("role"), s("master")),
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

    async fn set(&mut self, a: &[Bytes]) -> Result<Reply, Reply> {
        let (key, value) = (&a[0], &a[1]);
        let (mut nx, mut xx, mut get) = (false, false, false);
        for opt in &a[2..] {
            match opt.to_ascii_lowercase().as_slice() {
                b"nx" if !xx => nx = true,
                b"xx" if !nx => xx = true,
                b"get" => get = true,
                b"ex" | b"px" | b"exat" | b"pxat" | b"keepttl" => {
                    return Err(Reply::err(
                        "expiry options (EX, PX, EXAT, PXAT, KEEPTTL) are not supported yet",
                    ))
                }
                _ => return Err(syntax()),
            }
        }
        let shared = Arc::clone(&self.shared);
        let _w = shared.writes.lock().await;
        let old = if nx || xx || get {
            self.get(key).await?
        } else {
            None
        };
        let skip = (nx && old.is_some()) || (xx && old.is_none());
        if !skip {
            self.put(key, value).await?;
        }
        Ok(match (get, skip) {
            (true, _) => opt_bulk(old),
            (false, true) => Reply::Null,
            (false, false) => Reply::ok(),
        })
    }

    async fn incr_by(&mut self, key: &[u8], by: i64) -> Result<Reply, Reply> {
        let shared = Arc::clone(&self.shared);
        let _w = shared.writes.lock().await;
        let cur = match self.get(key).await? {
            Some(v) => parse_i64(&v).ok_or_else(not_integer)?,
            None => 0,
        };
        let next = cur
            .checked_add(by)
            .ok_or_else(|| Reply::err("increment or decrement would overflow"))?;
        self.put(key, next.to_string().as_bytes()).await?;
        Ok(Reply::Integer(next))
    }
}

fn opt_bulk(v: Option<Bytes>) -> Reply {
    v.map_or(Reply::Null, Reply::Bulk)
}
