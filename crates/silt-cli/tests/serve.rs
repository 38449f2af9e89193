//! `silt serve` driven by a client nobody here wrote, `redis-py` (`redis` from `PyPI`, installed by
//! `scripts/test`). Skipped when Python cannot import `redis`, unless
//! `SILT_REQUIRE_REDIS_PY=1` (set by `scripts/test`), which makes its absence a failure.
//!
//! * every command `silt serve` answers, over RESP2 and RESP3, pipelines and concurrent
//!   INCRs from many clients summing exactly;
//! * a password on a non-loopback listen, and AUTH;
//! * malformed and oversized frames get an error reply and a closed connection;
//! * a kill -9 of the server while `redis-py` writes: every write it acknowledged is in the
//!   store afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

fn redis_py() -> Result<bool> {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("SILT_REQUIRE_REDIS_PY").as_deref() == Ok("1") {
        bail!("redis-py is required (SILT_REQUIRE_REDIS_PY=1) but `import redis` fails");
    }
    if !ok {
        eprintln!("skipping: python3 cannot import redis (pip install redis; scripts/test does)");
    }
    Ok(ok)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr().context("the probe's address")?.port())
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Start `silt serve` on a fresh port and wait until it listens.
    fn start(store: &str, extra: &[&str]) -> Result<Server> {
        Self::start_with_env(store, extra, &[])
    }

    fn start_with_env(store: &str, extra: &[&str], env: &[(&str, &str)]) -> Result<Server> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_silt"))
            .env_remove("RUST_LOG")
            .env_remove("SILT_PASSWORD")
            .args(["--store", store, "serve", "--listen", &listen])
            .args(extra)
            // A short WAL linger and a large PUT budget: Remote writes are answered in
            // milliseconds, so the tests run fast (the defaults wait up to 100 ms).
            .env("SILT_WAL__FLUSH_INTERVAL", "5ms")
            .env("SILT_WAL__MAX_PUTS_PER_SEC", "1000")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting silt serve")?;
        let mut server = Server { child, port };
        // The server prints its listening line once bound.
        let stderr = server.child.stderr.take().context("the server's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let first = lines
            .next()
            .context("silt serve exited before listening")?
            .context("reading the server's stderr")?;
        if !first.contains("listening on") {
            bail!("silt serve did not start: {first}");
        }
        std::thread::spawn(move || lines.for_each(drop));
        Ok(server)
    }

    /// Run a redis-py script against the server, after [`PRELUDE`].
    fn python(&self, script: &str) -> Result<String> {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!("{PRELUDE}{script}"))
            .env("PORT", self.port.to_string())
            .output()
            .context("running python3")?;
        if !out.status.success() {
            bail!(
                "the redis-py script failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM, then wait: a graceful shutdown exits 0.
    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("kill -TERM")?;
        let status = self.child.wait().context("waiting for silt serve")?;
        if !status.success() {
            bail!("silt serve exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every script may use: `err(f, want)` asserts that `f()` fails with a Redis error
/// containing `want`.
const PRELUDE: &str = r#"
import redis
def err(f, want):
    try:
        f()
    except redis.ResponseError as e:
        assert want in str(e), (want, str(e))
        return
    raise SystemExit(f"no error, wanted {want}")
"#;

const COMMANDS: &str = r#"
import os, threading, redis
port = int(os.environ["PORT"])
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.set("a", "1") is True
    assert r.get("a") == b"1" and r.get("missing") is None
    assert r.set("a", "2", nx=True) is None and r.get("a") == b"1"
    assert r.set("b", "x", xx=True) is None and r.get("b") is None
    assert r.set("a", "5", get=True) == b"1"
    assert r.setnx("a", "9") is False and r.setnx("c", "9") is True
    assert r.getset("a", "6") == b"5"
    assert r.mset({"k1": "v1", "k2": "v2"}) is True
    assert r.msetnx({"k1": "z", "k3": "z"}) is False and r.get("k3") is None
    assert r.mget("k1", "k2", "zz") == [b"v1", b"v2", None]
    assert r.append("k1", "++") == 4 and r.strlen("k1") == 4 and r.strlen("zz") == 0
    assert r.exists("k1", "k2", "zz") == 2
    assert r.delete("k1", "zz") == 1 and r.unlink("c") == 1
    assert r.getdel("k2") == b"v2" and r.get("k2") is None
    assert r.incr("n") == 1 and r.incrby("n", 10) == 11 and r.decr("n") == 10
    assert r.decrby("n", 20) == -10
    r.set("s", "text")
    for bad in (lambda: r.incr("s"), lambda: r.execute_command("FROB", "x"),
                lambda: r.execute_command("GET"), lambda: r.execute_command("SELECT", "1")):
        try:
            bad()
            raise SystemExit("no error")
        except redis.ResponseError as e:
            pass
    assert r.execute_command("SELECT", "0") in (True, b"OK")
    assert r.client_setname("me") is True and r.client_getname() in ("me", b"me")
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"p{i}", i)
    p.get("p199")
    res = p.execute()
    assert all(x is True for x in res[:200]) and res[200] == b"199"
    r.delete("n", "s", "a", "b", "k3")
r = redis.Redis(port=port)
r.set("ctr", 0)
def work():
    c = redis.Redis(port=port)
    for _ in range(200):
        c.incr("ctr")
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
assert r.get("ctr") == b"1600", r.get("ctr")
print("ok")
"#;

#[test]
fn redis_py_commands_over_resp2_and_resp3() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, &[])?;
    assert_eq!(server.python(COMMANDS)?.trim(), "ok");
    server.stop()?;
    // The writes are in the store: a plain `silt get` after the server closed.
    let out = Command::new(env!("CARGO_BIN_EXE_silt"))
        .args(["--store", &store, "get", "ctr"])
        .output()
        .context("silt get")?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1600\n");
    Ok(())
}

#[test]
fn a_password_is_required_off_loopback_and_checked_by_auth() -> Result<()> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_silt"))
        .env_remove("SILT_PASSWORD")
        .args(["--store", &store, "serve", "--listen", "0.0.0.0:0"])
        .output()
        .context("silt serve on 0.0.0.0")?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a password"));

    if !redis_py()? {
        return Ok(());
    }
    let server = Server::start(&store, &["--requirepass", "s3cret"])?;
    let out = server.python(
        r#"
import os, redis
port = int(os.environ["PORT"])
try:
    redis.Redis(port=port).get("a")
    raise SystemExit("no NOAUTH")
except redis.AuthenticationError:
    pass
try:
    redis.Redis(port=port, password="wrong").ping()
    raise SystemExit("wrong password accepted")
except redis.AuthenticationError:
    pass
assert redis.Redis(port=port, password="s3cret").set("a", "1")
assert redis.Redis(port=port, password="s3cret", protocol=3).get("a") == b"1"
print("ok")
"#,
    )?;
    assert_eq!(out.trim(), "ok");
    server.stop()
}

/// Raw frames: the server answers a malformed one with an error and closes the connection.
#[test]
fn malformed_frames_get_an_error_and_a_closed_connection() -> Result<()> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, &[])?;
    for frame in [
        &b"*1\r\n$-5\r\n"[..],
        b"*1\r\n+PING\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nkXY\r\n",
        b"*99999999999\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).context("connect")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .context("read timeout")?;
        s.write_all(frame).context("write")?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)
            .context("read until the server closes")?;
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.starts_with("-ERR Protocol error"),
            "{frame:?}: {reply}"
        );
    }
    // The server is still fine.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).context("connect")?;
    s.write_all(b"PING\r\n").context("write")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).context("read PONG")?;
    assert_eq!(&buf, b"+PONG\r\n");
    server.stop()
}

/// kill -9 of the server while redis-py writes pipelines of 10, with Remote and with Local
/// durability: every key redis-py saw acknowledged is in the store afterwards.
#[test]
fn acknowledged_writes_survive_a_kill_9_of_the_server() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    for durability in ["remote", "local"] {
        kill_9_under_load(durability).with_context(|| format!("--durability {durability}"))?;
    }
    Ok(())
}

fn kill_9_under_load(durability: &str) -> Result<()> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let local_log = dir.path().join("local-log");
    let mut server = Server::start_with_env(
        &store,
        &["--durability", durability],
        &[("SILT_LOCAL_LOG__DIR", local_log.to_str().context("path")?)],
    )?;
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys, redis
r = redis.Redis(port=int(os.environ["PORT"]))
i = 0
while True:
    p = r.pipeline(transaction=False)
    keys = [f"k{i + j:08}" for j in range(10)]
    for k in keys:
        p.set(k, "v" + k)
    p.execute()
    for k in keys:
        print(k, flush=True)
    i += 10
"#,
        )
        .env("PORT", server.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the redis-py writer")?;
    let stdout = writer.stdout.take().context("the writer's stdout")?;
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the writer")?;
        acked.push(line);
        if acked.len() == 300 {
            server.child.kill().context("kill -9 the server")?;
            server.child.wait().context("reap the server")?;
        }
    }
    let _ = writer.wait();
    assert!(acked.len() >= 300, "only {} acknowledged", acked.len());
    // A writer's open replays the local log (a read-only scan would not).
    let silt = |args: &[&str]| -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_silt"))
            .env("SILT_LOCAL_LOG__DIR", &local_log)
            .args(["--store", &store])
            .args(args)
            .output()
            .with_context(|| format!("silt {args:?}"))?;
        if !out.status.success() {
            bail!("silt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    silt(&["compact"])?;
    let stored = silt(&["scan", "--prefix", "k"])?;
    let stored: std::collections::HashSet<&str> = stored
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !stored.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged keys lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    Ok(())
}

/// Start a server on a fresh store and run one redis-py script against it (`ok` expected).
fn run_script(extra: &[&str], script: &str) -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, extra)?;
    assert_eq!(server.python(script)?.trim(), "ok");
    server.stop()
}

/// MULTI/EXEC/DISCARD and WATCH: replies, errors, EXECABORT, reads of the transaction's
/// own writes, over RESP2 and RESP3.
#[test]
fn multi_exec_discard_and_watch() -> Result<()> {
    run_script(
        &[],
        r#"
import os, redis
port = int(os.environ["PORT"])
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    r.delete("t", "n", "x")
    p = r.pipeline(transaction=True)
    p.set("t", "1").incr("n").get("t").append("t", "2").get("t").delete("t").get("t").mget("n", "t")
    assert p.execute() == [True, 1, b"1", 2, b"12", 1, None, [b"1", None]], proto
    assert r.get("t") is None and r.get("n") == b"1"
    # DEL counts a key named twice once, and sees the transaction's own SET.
    p = r.pipeline(transaction=True)
    p.set("d", "1").delete("d", "d", "nope").exists("d")
    assert p.execute() == [True, 1, 0]
    # An error inside EXEC is that command's reply; the others still run.
    r.set("x", "text")
    p = r.pipeline(transaction=True)
    p.incr("x").set("y", "1")
    res = p.execute(raise_on_error=False)
    assert isinstance(res[0], redis.ResponseError) and res[1] is True, res
    c = r.connection_pool.get_connection("_")
    def cmd(*a):
        c.send_command(*a)
        return c.read_response()
    assert cmd("MULTI") in (b"OK", "OK", True)
    assert cmd("SET", "q", "1") in (b"QUEUED", "QUEUED")
    err(lambda: cmd("MULTI"), "MULTI calls can not be nested")
    err(lambda: cmd("WATCH", "q"), "WATCH inside MULTI is not allowed")
    assert cmd("DISCARD") in (b"OK", "OK")
    assert r.get("q") is None
    err(lambda: cmd("EXEC"), "EXEC without MULTI")
    err(lambda: cmd("DISCARD"), "DISCARD without MULTI")
    # Wrong arity or an unknown command while queuing: EXEC aborts, nothing is applied.
    for bad in (("GET",), ("FROB", "x")):
        cmd("MULTI")
        cmd("SET", "q", "1")
        err(lambda: cmd(*bad), "")
        try:
            cmd("EXEC")
            raise SystemExit("EXEC did not abort")
        except redis.exceptions.ExecAbortError as e:
            assert str(e) == "Transaction discarded because of previous errors.", str(e)
        assert r.get("q") is None
    # An empty transaction.
    cmd("MULTI")
    assert cmd("EXEC") == []
    r.connection_pool.release(c)
    # WATCH: a change by another client aborts EXEC (redis-py raises WatchError).
    r.set("w", "0")
    other = redis.Redis(port=port, protocol=proto)
    with r.pipeline() as p:
        p.watch("w")
        other.set("w", "changed")
        p.multi()
        p.set("w", "mine")
        try:
            p.execute()
            raise SystemExit("WATCH did not abort")
        except redis.WatchError:
            pass
    assert r.get("w") == b"changed"
    with r.pipeline() as p:
        p.watch("w", "never-set")
        p.multi()
        p.set("w", "mine")
        assert p.execute() == [True]
    assert r.get("w") == b"mine"
    # UNWATCH forgets.
    with r.pipeline() as p:
        p.watch("w")
        other.set("w", "again")
        p.unwatch()
        p.multi()
        p.set("w", "mine2")
        assert p.execute() == [True]
    assert r.get("w") == b"mine2"
print("ok")
"#,
    )
}

/// Many clients EXEC `INCR` on one key: the sum is exact; and a transaction's writes are
/// atomic: a concurrent MGET never sees half of one.
#[test]
fn concurrent_execs_are_atomic() -> Result<()> {
    run_script(
        &[],
        r#"
import os, threading, redis
port = int(os.environ["PORT"])
r = redis.Redis(port=port)
r.mset({"a": 0, "b": 0})
def work():
    c = redis.Redis(port=port)
    for _ in range(100):
        p = c.pipeline(transaction=True)
        p.incr("ctr").incr("a")
        for i in range(20):
            p.set(f"pad{i}", i)
        p.incr("b")
        p.execute()
seen = []
stop = threading.Event()
def read():
    c = redis.Redis(port=port)
    while not stop.is_set():
        a, b = c.mget("a", "b")
        seen.append((a, b))
        if a != b:
            return
ts = [threading.Thread(target=work) for _ in range(8)]
rds = [threading.Thread(target=read) for _ in range(2)]
[t.start() for t in rds + ts]
[t.join() for t in ts]
stop.set()
[t.join() for t in rds]
assert r.get("ctr") == b"800", r.get("ctr")
torn = [s for s in seen if s[0] != s[1]]
assert not torn, (torn[:3], len(seen))
assert len(seen) > 10, len(seen)
print("ok")
"#,
    )
}

/// SCAN (MATCH globs, COUNT, TYPE, cursors), KEYS and DBSIZE, in RESP2 and RESP3, inside
/// and outside a transaction; and a `scan_iter` while another client writes and deletes
/// other keys returns every key present throughout exactly once.
#[test]
fn scan_keys_and_dbsize() -> Result<()> {
    run_script(
        &[],
        r#"
import os, threading, redis
port = int(os.environ["PORT"])
r = redis.Redis(port=port)
names = [b"user:1", b"user:2", b"user:10", b"usr:x", b"u*er", b"hello", b"hallo", b"hxllo", b"h-llo"]
r.mset({k: b"v" for k in names})
for proto in (2, 3):
    c = redis.Redis(port=port, protocol=proto)
    assert c.dbsize() == len(names)
    assert sorted(c.keys()) == sorted(names)
    assert sorted(c.keys("user:*")) == [b"user:1", b"user:10", b"user:2"]
    assert sorted(c.keys("user:?")) == [b"user:1", b"user:2"]
    assert sorted(c.keys("h[ae]llo")) == [b"hallo", b"hello"]
    assert sorted(c.keys("h[^e]llo")) == [b"h-llo", b"hallo", b"hxllo"]
    assert sorted(c.keys("h[a-f]llo")) == [b"hallo", b"hello"]
    assert c.keys("u\\*er") == [b"u*er"]
    assert c.keys("nothing*") == []
    # COUNT 2: several calls, every key once, cursor 0 at the end.
    cur, seen, calls = 0, [], 0
    while True:
        cur, keys = c.scan(cur, count=2)
        seen += keys
        calls += 1
        assert len(keys) <= 2
        if cur == 0:
            break
    assert sorted(seen) == sorted(names) and calls >= 5, (seen, calls)
    assert sorted(c.scan_iter(match="user:*", count=1)) == [b"user:1", b"user:10", b"user:2"]
    assert sorted(c.scan_iter(_type="string")) == sorted(names)
    assert list(c.scan_iter(_type="hash")) == []
    assert c.scan(0, count=1000) == (0, sorted(names))
    err(lambda: c.scan(123456789012), "invalid cursor")
    err(lambda: c.execute_command("SCAN", "x"), "invalid cursor")
    err(lambda: c.execute_command("SCAN", "0", "COUNT", "0"), "syntax error")
    err(lambda: c.execute_command("SCAN", "0", "COUNT", "x"), "not an integer")
    err(lambda: c.execute_command("SCAN", "0", "MATCH"), "syntax error")
    err(lambda: c.execute_command("SCAN", "0", "FROB", "1"), "syntax error")
    err(lambda: c.execute_command("KEYS"), "wrong number of arguments")
    err(lambda: c.execute_command("DBSIZE", "x"), "wrong number of arguments")
    # A finished cursor is gone.
    cur, _ = c.scan(0, count=1)
    c.scan(cur, count=1000)
    err(lambda: c.scan(cur), "invalid cursor")
    # Inside a transaction, KEYS, SCAN and DBSIZE see its own writes.
    p = c.pipeline(transaction=True)
    p.set("user:3", "v").delete("user:1").keys("user:*").dbsize().scan(0, match="user:*", count=100)
    res = p.execute()
    assert sorted(res[2]) == [b"user:10", b"user:2", b"user:3"], res
    assert res[3] == len(names), res
    assert sorted(res[4][1]) == [b"user:10", b"user:2", b"user:3"], res
    c.delete("user:3")
    c.set("user:1", "v")
# Concurrent writes: keys present throughout are each returned exactly once.
stable = [f"s:{i:05}".encode() for i in range(2000)]
for i in range(0, len(stable), 500):
    r.mset({k: b"v" for k in stable[i:i+500]})
stop = threading.Event()
def churn():
    w = redis.Redis(port=port)
    i = 0
    while not stop.is_set():
        w.set(f"s:{(i * 7919) % 2000:05}x", "new")
        w.delete(f"s:{(i * 104729) % 2000:05}x")
        i += 1
t = threading.Thread(target=churn)
t.start()
got = list(r.scan_iter(match="s:*", count=37))
stop.set()
t.join()
stable_got = [k for k in got if not k.endswith(b"x")]
assert sorted(stable_got) == stable, (len(stable_got), len(set(stable_got)))
assert len(got) == len(set(got)), "a key returned twice"
print("ok")
"#,
    )
}

/// WAITAOF under Remote without a local log, under Local with one, and under Buffered:
/// the `[local, remote]` figures, the errors, and its refusal inside MULTI.
#[test]
fn waitaof_reports_local_and_remote_durability() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let script = |durability: &str| {
        format!(
            r#"
import os, redis
port = int(os.environ["PORT"])
durability = "{durability}"
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    w = lambda *a: r.execute_command("WAITAOF", *a)
    r.set("k", "v")
    if durability == "local":
        # The store may or may not have the write yet: only `local` is certain.
        assert w(1, 0, 0)[0] == 1
        assert w(1, 1, 0) == [1, 1], w(1, 1, 0)
    else:
        err(lambda: w(1, 0, 0), "WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
        assert w(0, 1, 0) == [0, 1], w(0, 1, 0)
        assert w(0, 1, 5000) == [0, 1]
    # Remote durability: writes are durable in the store once answered.
    if durability == "remote":
        assert w(0, 0, 0) == [0, 1]
    err(lambda: w(0, 0, -1), "timeout is negative")
    err(lambda: w(0, 0, "x"), "timeout is not an integer")
    err(lambda: w("x", 0, 0), "not an integer")
    err(lambda: w(0, 0), "wrong number of arguments")
    c = r.connection_pool.get_connection("_")
    def cmd(*a):
        c.send_command(*a)
        return c.read_response()
    cmd("MULTI")
    err(lambda: cmd("WAITAOF", 0, 0, 0), "not allowed inside a transaction")
    try:
        cmd("EXEC")
        raise SystemExit("EXEC did not abort")
    except redis.exceptions.ExecAbortError:
        pass
    r.connection_pool.release(c)
print("ok")
"#
        )
    };
    for durability in ["remote", "local", "buffered"] {
        let dir = tempfile::tempdir().context("tempdir")?;
        let store = format!("file://{}", dir.path().join("db").display());
        let local_log = dir.path().join("local-log");
        let env: Vec<(&str, &str)> = if durability == "local" {
            vec![("SILT_LOCAL_LOG__DIR", local_log.to_str().context("path")?)]
        } else {
            Vec::new()
        };
        let server = Server::start_with_env(&store, &["--durability", durability], &env)?;
        let out = server
            .python(&script(durability))
            .with_context(|| format!("--durability {durability}"))?;
        assert_eq!(out.trim(), "ok");
        server.stop()?;
    }
    Ok(())
}

/// INFO: Redis's text format as redis-py parses it, sections, RESP2 and RESP3.
#[test]
fn info_sections() -> Result<()> {
    run_script(
        &["--max-clients", "77"],
        r#"
import os, redis
port = int(os.environ["PORT"])
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    r.mset({"a": 1, "b": 2, "c": 3})
    i = r.info()
    assert i["tcp_port"] == port and i["redis_mode"] == "standalone", i
    assert "silt_version" in i and i["redis_version"].startswith("7."), i
    assert i["connected_clients"] >= 1 and i["maxclients"] == 77, i
    assert i["used_memory"] > 0 and i["uptime_in_seconds"] >= 0, i
    assert i["db0"] == {"keys": 3, "expires": 0, "avg_ttl": 0}, i["db0"]
    assert i["aof_enabled"] == 0 and "silt_wal_put_requests" in i, i
    assert i["total_connections_received"] >= 1
    before = i["total_commands_processed"]
    r.ping()
    assert r.info("stats")["total_commands_processed"] >= before + 2
    s = r.info("server")
    assert "tcp_port" in s and "connected_clients" not in s and "db0" not in s, s
    two = r.info("clients", "keyspace")
    assert "connected_clients" in two and "db0" in two and "tcp_port" not in two, two
    for sec in ("all", "everything", "default"):
        assert "db0" in r.info(sec) and "used_memory" in r.info(sec)
    assert r.info("nosuchsection") == {}
    c = r.connection_pool.get_connection("_")
    c.send_command("INFO", "server")
    raw = c.read_response()
    r.connection_pool.release(c)
    assert raw.startswith(b'# Server\r\nredis_version:'), raw
    r.delete("a", "b", "c")
    assert "db0" not in r.info("keyspace")
print("ok")
"#,
    )
}

/// RESET: back to RESP2, no name, out of MULTI, WATCH forgotten, unauthenticated.
#[test]
fn reset_returns_a_connection_to_its_initial_state() -> Result<()> {
    run_script(
        &["--requirepass", "pw"],
        r#"
import os, socket
port = int(os.environ["PORT"])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def cmd(*a):
    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in (x.encode() for x in a)))
    return f.readline()
def skip(line):
    # The rest of an aggregate reply whose first line is `line`.
    n = int(line[1:])
    for _ in range(n * (2 if line[:1] == b"%" else 1)):
        l = f.readline()
        if l[:1] == b"$":
            f.readline()
        elif l[:1] in b"*%":
            skip(l)
line = cmd("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "me")
assert line.startswith(b"%"), line
skip(line)
assert cmd("WATCH", "k") == b"+OK\r\n"
assert cmd("MULTI") == b"+OK\r\n"
assert cmd("SET", "k", "1") == b"+QUEUED\r\n"
assert cmd("RESET") == b"+RESET\r\n"
assert cmd("GET", "k").startswith(b"-NOAUTH"), "still authenticated"
assert cmd("AUTH", "pw") == b"+OK\r\n"
assert cmd("GET", "k") == b"$-1\r\n", "not back to RESP2, or the MULTI ran"
line = cmd("HELLO")
assert line.startswith(b"*14"), line
skip(line)
assert cmd("CLIENT", "GETNAME") == b"$-1\r\n"
assert cmd("EXEC") == b"-ERR EXEC without MULTI\r\n"
assert cmd("RESET", "x").startswith(b"-ERR wrong number of arguments")
print("ok")
"#,
    )
}

/// A reply over `--max-reply-bytes` is an error (MGET, KEYS, SCAN, GET, EXEC; an EXEC's
/// writes are then not applied), and the connection goes on.
#[test]
fn replies_over_the_limit_are_errors() -> Result<()> {
    run_script(
        &["--max-reply-bytes", "100000"],
        r#"
import os, redis
port = int(os.environ["PORT"])
def err(f, want="reply too large"):
    try:
        f()
    except redis.ResponseError as e:
        assert want in str(e), (want, str(e))
        return
    raise SystemExit(f"no error, wanted {want}")
for proto in (2, 3):
    r = redis.Redis(port=port, protocol=proto)
    r.set("v", "x" * 60000)
    assert len(r.get("v")) == 60000
    err(lambda: r.mget("v", "v"))
    r.set("huge", "x" * 150000)
    err(lambda: r.get("huge"))
    # A write whose reply would be too large is not applied.
    err(lambda: r.getset("huge", "small"))
    assert r.strlen("huge") == 150000
    r.delete("huge")
    for i in range(0, 3000, 500):
        r.mset({f"key:{j:040}": "1" for j in range(i, i + 500)})
    err(lambda: r.keys("key:*"))
    err(lambda: r.scan(0, match="key:*", count=5000))
    assert len(r.scan(0, match="key:*", count=100)[1]) == 100
    # A SCAN that fails keeps its cursor: the client can go on with a smaller COUNT.
    cur, first = r.scan(0, match="key:*", count=10)
    err(lambda: r.scan(cur, match="key:*", count=5000))
    cur2, second = r.scan(cur, match="key:*", count=100)
    assert cur2 != 0 and len(second) == 100 and second[0] > first[-1], (first, second)
    p = r.pipeline(transaction=True)
    p.set("t", "1").get("v").get("v")
    err(lambda: p.execute())
    assert r.get("t") is None
    assert r.ping()
print("ok")
"#,
    )
}

fn vm_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    line.split_whitespace()
        .nth(1)
        .context("the figure")?
        .parse()
        .context("a number")
}

/// A client that pipelines 1,000 GETs of a 256 KiB value (256 MiB of replies) without
/// reading: the server stops running them once 1 MiB of replies waits, so its peak RSS
/// (`VmHWM`) grows by far less than the replies' total.
#[test]
fn a_client_that_does_not_read_cannot_grow_the_servers_memory() -> Result<()> {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc");
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, &["--durability", "buffered"])?;
    let value = vec![b'v'; 256 * 1024];
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).context("connect")?;
    s.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).as_bytes())
        .context("write")?;
    s.write_all(&value).context("write")?;
    s.write_all(b"\r\n").context("write")?;
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).context("read +OK")?;
    assert_eq!(&ok, b"+OK\r\n");
    let pid = server.child.id();
    let before = vm_kib(pid, "VmHWM:")?;
    let n = 1000;
    let get = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(n);
    s.write_all(&get).context("pipelining GETs")?;
    // Read them all: the server could only go on as the replies were taken.
    let reply_len = format!("${}\r\n", value.len()).len() + value.len() + 2;
    let mut reader = BufReader::with_capacity(1 << 20, s);
    let mut chunk = vec![0u8; reply_len];
    for i in 0..n {
        reader
            .read_exact(&mut chunk)
            .with_context(|| format!("reply {i}"))?;
        assert!(chunk.starts_with(b"$262144\r\n"), "reply {i}");
    }
    let grew_mib = vm_kib(pid, "VmHWM:")?.saturating_sub(before) / 1024;
    eprintln!("peak RSS grew by {grew_mib} MiB");
    assert!(
        grew_mib < 64,
        "the server's peak RSS grew by {grew_mib} MiB for 256 MiB of replies"
    );
    server.stop()
}

/// One HTTP/1.1 GET over a plain socket: (status code, body).
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).context("connect")?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .context("read timeout")?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .context("write")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).context("read the response")?;
    let (head, body) = raw.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()
        .context("status code")?;
    Ok((status, body.to_owned()))
}

/// `--metrics-listen`: `/metrics` has the engine's figures and the server's (connections,
/// commands by name with unknown ones as `unknown`, latency histograms); `/healthz` is
/// 200 `ok`; anything else 404.
#[test]
fn metrics_and_healthz_over_http() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let mport = free_port()?;
    let maddr = format!("127.0.0.1:{mport}");
    let server = Server::start(&store, &["--metrics-listen", &maddr])?;
    let out = server.python(
        r#"
import os, redis
r = redis.Redis(port=int(os.environ["PORT"]))
r.set("a", "1")
for _ in range(3):
    r.get("a")
for name in ("FROB", "ZAP", "x" * 200):
    try:
        r.execute_command(name)
    except redis.ResponseError:
        pass
print("ok")
"#,
    )?;
    assert_eq!(out.trim(), "ok");
    let (status, body) = http_get(mport, "/metrics")?;
    assert_eq!(status, 200, "{body}");
    for want in [
        "silt_serve_commands_total{command=\"get\"} 3\n",
        "silt_serve_commands_total{command=\"set\"} 1\n",
        "silt_serve_commands_total{command=\"unknown\"} 3\n",
        "# TYPE silt_serve_command_duration_seconds histogram\n",
        "silt_serve_command_duration_seconds_bucket{command=\"get\",le=\"+Inf\"} 3\n",
        "silt_serve_command_duration_seconds_count{command=\"get\"} 3\n",
        "# TYPE silt_serve_connections gauge\n",
        "# TYPE silt_serve_connections_total counter\n",
        "silt_stats_visible_seq ",
        "silt_wal_records_appended ",
    ] {
        assert!(body.contains(want), "{want:?} missing from:\n{body}");
    }
    assert!(!body.contains("frob") && !body.contains("xxx"), "{body}");
    let total: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("silt_serve_connections_total "))
        .context("connections_total")?
        .parse()
        .context("a number")?;
    assert!(total >= 1, "{body}");
    assert_eq!(http_get(mport, "/healthz")?, (200, "ok\n".into()));
    assert_eq!(http_get(mport, "/nope")?.0, 404);
    server.stop()
}

/// SIGTERM while a client has 250 MiB of replies pending and does not read: the server
/// still shuts down (after a grace period for that client) and exits 0.
#[test]
fn shutdown_is_not_held_up_by_a_client_that_does_not_read() -> Result<()> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, &["--durability", "buffered"])?;
    let value = vec![b'v'; 256 * 1024];
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).context("connect")?;
    s.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).as_bytes())
        .context("write")?;
    s.write_all(&value).context("write")?;
    s.write_all(b"\r\n").context("write")?;
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).context("read +OK")?;
    s.write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000))
        .context("pipelining GETs")?;
    // The server is answering them (and will block: they do not fit in socket buffers).
    let mut first = [0u8; 9];
    s.read_exact(&mut first).context("the first reply")?;
    assert_eq!(&first, b"$262144\r\n");
    let started = std::time::Instant::now();
    server.stop()?;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(s);
    Ok(())
}

#[test]
fn expiry_commands_and_values_that_expire() -> Result<()> {
    run_script(
        &[],
        r#"
import os, time, redis
port = int(os.environ["PORT"])
def gone_within(c, key, seconds):
    # Polls until the key has expired (a deadline, not a fixed sleep).
    deadline = time.monotonic() + seconds
    while c.exists(key):
        assert time.monotonic() < deadline, f"{key} did not expire"
        time.sleep(0.02)
for proto in (2, 3):
    c = redis.Redis(port=port, protocol=proto)
    now = int(time.time())
    # SET's expiry options, TTL and PTTL.
    assert c.set("a", "1", ex=100)
    assert 99 <= c.ttl("a") <= 100 and 99_000 <= c.pttl("a") <= 100_000
    assert c.set("b", "1", px=100_000) and 99 <= c.ttl("b") <= 100
    assert c.set("c", "1", exat=now + 200) and 198 <= c.ttl("c") <= 200
    assert c.expiretime("c") == now + 200 and c.pexpiretime("c") == (now + 200) * 1000
    assert c.set("d", "1", pxat=(now + 300) * 1000) and 298 <= c.ttl("d") <= 300
    assert c.ttl("nosuch") == -2 and c.pttl("nosuch") == -2 and c.expiretime("nosuch") == -2
    assert c.set("e", "1") and c.ttl("e") == -1 and c.expiretime("e") == -1
    # KEEPTTL keeps it; a plain SET, GETSET and MSET clear it; INCR and APPEND keep it.
    assert c.set("a", "2", keepttl=True) and c.ttl("a") >= 99 and c.get("a") == b"2"
    c.set("a", "3")
    assert c.ttl("a") == -1
    c.set("n", "1", ex=100)
    assert c.incr("n") == 2 and c.ttl("n") >= 99
    assert c.append("n", "0") == 2 and c.get("n") == b"20" and c.ttl("n") >= 99
    assert c.getset("n", "5") == b"20" and c.ttl("n") == -1
    c.set("m", "1", ex=100)
    c.mset({"m": "2"})
    assert c.ttl("m") == -1
    # Options and their errors, as Redis words them.
    assert c.set("x", "1", nx=True, ex=100) and c.set("x", "2", nx=True, ex=100) is None
    assert c.set("x", "3", xx=True, px=50_000, get=True) == b"1" and c.ttl("x") <= 50
    err(lambda: c.execute_command("SET", "x", "1", "EX", "0"), "invalid expire time in 'set' command")
    err(lambda: c.execute_command("SET", "x", "1", "PX", "-5"), "invalid expire time in 'set' command")
    err(lambda: c.execute_command("SET", "x", "1", "EX", "ten"), "not an integer")
    err(lambda: c.execute_command("SET", "x", "1", "EX", "10", "PX", "10"), "syntax error")
    err(lambda: c.execute_command("SET", "x", "1", "EX", "10", "KEEPTTL"), "syntax error")
    err(lambda: c.execute_command("SET", "x", "1", "EX"), "syntax error")
    err(lambda: c.execute_command("SET", "x", "1", "EX", "9223372036854775807"), "invalid expire time")
    # SETEX, PSETEX, GETEX.
    assert c.setex("s", 100, "v") and 99 <= c.ttl("s") <= 100
    assert c.psetex("s", 50_000, "v") and c.ttl("s") <= 50
    err(lambda: c.setex("s", 0, "v"), "invalid expire time in 'setex' command")
    assert c.getex("s", persist=True) == b"v" and c.ttl("s") == -1
    assert c.getex("s", ex=100) == b"v" and c.ttl("s") >= 99
    assert c.getex("s") == b"v" and c.ttl("s") >= 99
    assert c.getex("nosuch", ex=1) is None
    # EXPIRE and friends, with NX, XX, GT and LT.
    c.set("k", "v")
    assert c.expire("nosuch", 10) == 0
    assert c.expire("k", 100, xx=True) == 0 and c.ttl("k") == -1
    assert c.expire("k", 100, nx=True) == 1 and c.ttl("k") >= 99
    assert c.expire("k", 200, nx=True) == 0
    assert c.expire("k", 50, gt=True) == 0 and c.expire("k", 200, gt=True) == 1 and c.ttl("k") >= 199
    assert c.expire("k", 300, lt=True) == 0 and c.expire("k", 150, lt=True) == 1 and c.ttl("k") <= 150
    assert c.pexpire("k", 80_000) == 1 and c.ttl("k") <= 80
    assert c.expireat("k", now + 400) == 1 and c.expiretime("k") == now + 400
    assert c.pexpireat("k", (now + 500) * 1000) == 1 and c.pexpiretime("k") == (now + 500) * 1000
    assert c.persist("k") == 1 and c.ttl("k") == -1 and c.persist("k") == 0 and c.persist("nosuch") == 0
    c.set("k", "v")
    assert c.expire("k", 100, lt=True) == 1, "no expiry counts as infinite for LT"
    c.persist("k")
    assert c.expire("k", 100, gt=True) == 0, "no expiry counts as infinite for GT"
    err(lambda: c.execute_command("EXPIRE", "k", "10", "NX", "XX"), "NX and XX, GT or LT options at the same time are not compatible")
    err(lambda: c.execute_command("EXPIRE", "k", "10", "GT", "LT"), "GT and LT options at the same time are not compatible")
    err(lambda: c.execute_command("EXPIRE", "k", "10", "FOO"), "Unsupported option FOO")
    err(lambda: c.execute_command("EXPIRE", "k", "ten"), "not an integer")
    # An expiry in the past deletes the key at once.
    c.set("p", "v")
    assert c.expire("p", 0) == 1 and c.exists("p") == 0
    c.set("p", "v")
    assert c.pexpireat("p", 1) == 1 and c.get("p") is None
    # Values really expire: gone from GET, EXISTS, MGET, SCAN, KEYS and DBSIZE.
    c.delete(*c.keys("*"))
    c.set("short", "v", px=300)
    c.set("stays", "v")
    assert c.get("short") == b"v"
    gone_within(c, "short", 10)
    assert c.get("short") is None and c.mget("short", "stays") == [None, b"v"]
    assert c.keys("*") == [b"stays"] and list(c.scan_iter()) == [b"stays"] and c.dbsize() == 1
    assert c.ttl("short") == -2 and c.set("short", "again", nx=True)
    # Inside a transaction: staged expiries are seen by later commands of the EXEC.
    p = c.pipeline(transaction=True)
    p.set("t", "v", ex=100).ttl("t").persist("t").ttl("t").expire("t", 0).exists("t")
    assert p.execute() == [True, 100, 1, -1, 1, 0]
    c.delete(*c.keys("*"))
print("ok")
"#,
    )
}

#[test]
fn expiries_survive_a_restart() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let server = Server::start(&store, &[])?;
    let set = r#"
import os, redis
c = redis.Redis(port=int(os.environ["PORT"]))
c.set("long", "v", ex=1000)
c.set("forever", "v")
c.set("short", "v", px=1)
print("ok")
"#;
    assert_eq!(server.python(set)?.trim(), "ok");
    // kill -9 (`Server`'s drop): the writes come back from the WAL with their expiries.
    drop(server);
    let server = Server::start(&store, &[])?;
    let check = r#"
import os, redis
c = redis.Redis(port=int(os.environ["PORT"]))
assert 990 <= c.ttl("long") <= 1000, c.ttl("long")
assert c.ttl("forever") == -1
assert c.get("short") is None and c.ttl("short") == -2
print("ok")
"#;
    assert_eq!(server.python(check)?.trim(), "ok");
    server.stop()
}

#[test]
fn config_get_answers_what_clients_probe() -> Result<()> {
    run_script(
        &["--durability", "buffered", "--max-clients", "77"],
        r#"
import os, redis
port = int(os.environ["PORT"])
for proto in (2, 3):
    c = redis.Redis(port=port, protocol=proto)
    assert c.config_get("save") == {"save": ""}, c.config_get("save")
    assert c.config_get("appendonly") == {"appendonly": "no"}
    assert c.config_get("maxclients") == {"maxclients": "77"}
    both = c.execute_command("CONFIG", "GET", "save", "append*")
    assert set(both) >= {b"save", b"appendonly", b"appendfsync"} or set(both.keys()) == {b"save", b"appendonly", b"appendfsync"}, both
    assert c.config_get("nosuchparameter") == {}
print("ok")
"#,
    )
}

/// `silt serve --follow`: a read replica of a writer `silt serve` on the same store. Writes
/// acknowledged by the writer (Remote) appear on the replica; the replica answers reads,
/// refuses writes with Redis's `READONLY` (aborting a MULTI), reports `role:slave` and its
/// lag in INFO, and `role: replica` in HELLO.
#[test]
fn a_follower_serves_reads_and_refuses_writes() -> Result<()> {
    if !redis_py()? {
        return Ok(());
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = format!("file://{}", dir.path().join("db").display());
    let writer = Server::start(&store, &[])?;
    let follower = Server::start_with_env(
        &store,
        &["--follow"],
        &[("SILT_FOLLOWER__POLL_INTERVAL", "20ms")],
    )?;
    let script = format!(
        r#"
import os, time, redis
w = redis.Redis(port={wport})
f = redis.Redis(port={fport})
def seen(key, value, seconds=20):
    deadline = time.monotonic() + seconds
    while f.get(key) != value:
        assert time.monotonic() < deadline, f"{{key}} never reached the follower"
        time.sleep(0.02)
for i in range(50):
    w.set(f"k{{i:03}}", f"v{{i}}")
w.set("ttl", "x", ex=1000)
w.incr("n")
seen(b"n", b"1")
assert f.get("k000") == b"v0" and f.mget("k001", "k049") == [b"v1", b"v49"]
assert 990 <= f.ttl("ttl") <= 1000
assert f.dbsize() == 52 and len(list(f.scan_iter(match="k*"))) == 50
# Writes are refused, as by a Redis replica (redis-py recognises the READONLY prefix and
# raises its ReadOnlyError); a MULTI with one aborts.
def readonly(fn):
    try:
        fn()
    except redis.exceptions.ReadOnlyError as e:
        assert "You can't write against a read only replica." in str(e), str(e)
        return
    raise SystemExit("a write was not refused with READONLY")
readonly(lambda: f.set("x", "1"))
readonly(lambda: f.incr("n"))
readonly(lambda: f.delete("k000"))
p = f.pipeline(transaction=True)
p.get("k000").set("x", "1")
readonly(p.execute)  # redis-py reports the queued command's READONLY over the EXECABORT
raw = redis.Redis(port={fport})
assert raw.execute_command("MULTI") == b"OK"
readonly(lambda: raw.execute_command("SET", "x", "1"))
err(lambda: raw.execute_command("EXEC"), "Transaction discarded")
err(lambda: f.execute_command("WAITAOF", "0", "1", "0"), "replica")
info = f.info("replication")
assert info["role"] == "slave" and info["master_link_status"] == "up", info
assert info["silt_follower_lag_seq"] >= 0
assert w.info("replication")["role"] == "master"
assert redis.Redis(port={fport}, protocol=3).execute_command("HELLO", "3")[b"role"] == b"replica"
# Later writes keep arriving.
w.set("k000", "changed")
seen(b"k000", b"changed")
print("ok")
"#,
        wport = writer.port,
        fport = follower.port,
    );
    assert_eq!(writer.python(&script)?.trim(), "ok");
    follower.stop()?;
    writer.stop()
}
