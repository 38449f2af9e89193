//! What the `silt serve` test files share (`mod serve_support;`): starting the server on a
//! free port, a tool check with a `SILT_REQUIRE_*` override, a strict RESP2/RESP3 reply
//! parser and a small raw-RESP client over `std::net::TcpStream`.

#![allow(dead_code)] // Each test file uses a part of it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Whether every program in `programs` runs (`<program> --version`); when one does not,
/// `Ok(false)` (the test skips) unless `require_var=1`, which makes it a failure.
pub fn tools_present(programs: &[&str], require_var: &str) -> Result<bool> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            !Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    if std::env::var(require_var).as_deref() == Ok("1") {
        bail!("{missing:?} required ({require_var}=1) but not runnable");
    }
    eprintln!("skipping: {missing:?} not found (apt-get install redis-tools; scripts/test does)");
    Ok(false)
}

/// `redis-cli` and `redis-benchmark`, required when `SILT_REQUIRE_REDIS_TOOLS=1`.
pub fn redis_tools() -> Result<bool> {
    tools_present(
        &["redis-cli", "redis-benchmark"],
        "SILT_REQUIRE_REDIS_TOOLS",
    )
}

pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr().context("the probe's address")?.port())
}

/// A store in a temporary directory, with a local log directory beside it.
pub struct Store {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub local_log: PathBuf,
}

impl Store {
    pub fn new() -> Result<Store> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let url = format!("file://{}", dir.path().join("db").display());
        let local_log = dir.path().join("local-log");
        Ok(Store {
            dir,
            url,
            local_log,
        })
    }
}

/// A running `silt serve`; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Everything the server printed on stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Start `silt serve --listen 127.0.0.1:<free port> <extra>` on `store` (with
    /// `SILT_LOCAL_LOG__DIR` set to its local log directory) and wait until it listens.
    pub fn start(store: &Store, extra: &[&str]) -> Result<Server> {
        Self::start_on(store, extra, free_port()?)
    }

    /// The same on a given port (a restart on the port the clients know).
    pub fn start_on(store: &Store, extra: &[&str], port: u16) -> Result<Server> {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_silt"))
            .env_remove("RUST_LOG")
            .env_remove("SILT_PASSWORD")
            .args(["--store", &store.url, "serve", "--listen", &listen])
            .args(extra)
            // A short WAL linger and a large PUT budget, as in tests/serve.rs.
            .env("SILT_WAL__FLUSH_INTERVAL", "5ms")
            .env("SILT_WAL__MAX_PUTS_PER_SEC", "1000")
            .env("SILT_LOCAL_LOG__DIR", &store.local_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting silt serve")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(stderr).lines();
        let mut server = Server {
            child,
            port,
            log: Arc::clone(&log),
        };
        loop {
            let Some(line) = lines.next() else {
                let status = server.child.wait().context("reaping silt serve")?;
                bail!(
                    "silt serve exited ({status}) before listening:\n{}",
                    server.log_text()
                );
            };
            let line = line.context("reading the server's stderr")?;
            let listening = line.contains("listening on");
            push_line(&log, line);
            if listening {
                break;
            }
        }
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                push_line(&log, line);
            }
        });
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn connect(&self) -> Result<Client> {
        Client::connect(self.port)
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill().context("kill -9 silt serve")?;
        self.child.wait().context("reaping silt serve")?;
        Ok(())
    }

    /// SIGTERM, then wait: a graceful shutdown exits 0.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("kill -TERM")?;
        let status = self.child.wait().context("waiting for silt serve")?;
        if !status.success() {
            bail!(
                "silt serve exited with {status} after SIGTERM:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmRSS")
    }

    /// The server's peak resident set size in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmHWM")
    }

    fn proc_status_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let line = status
            .lines()
            .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
            .with_context(|| format!("no {field} line"))?;
        line.split_whitespace()
            .nth(1)
            .with_context(|| format!("{field} has no value"))?
            .parse()
            .with_context(|| format!("{field} is not a number"))
    }
}

fn push_line(log: &Mutex<Vec<String>>, line: String) {
    if let Ok(mut l) = log.lock() {
        l.push(line);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a program to completion; its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A reply, as the test reads it: RESP2 and RESP3.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    /// `$-1` is `Bulk(None)`.
    Bulk(Option<Vec<u8>>),
    /// `*-1` is `Array(None)`.
    Array(Option<Vec<Resp>>),
    /// RESP3 `_`.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,` (kept as text), `(` big number, `=` verbatim string, `!` blob error.
    Other(u8, Vec<u8>),
    /// RESP3 `%` map, `|` attributes: key, value, ...
    Map(Vec<(Resp, Resp)>),
    /// RESP3 `~` set, `>` push.
    Set(u8, Vec<Resp>),
}

/// Deepest nesting the parser follows (the server's replies are at most two deep).
const MAX_DEPTH: usize = 16;

/// Parse one reply off the front of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)` if
/// the buffer holds only a prefix of one, or an error saying what is not RESP.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Resp, usize)>> {
    parse_at(buf, 0, 0)
}

/// Every reply in `buf`, which must end at a reply's end.
pub fn parse_all(buf: &[u8]) -> Result<Vec<Resp>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        match parse_at(buf, pos, 0)? {
            Some((r, end)) => {
                out.push(r);
                pos = end;
            }
            None => bail!(
                "the stream ends inside a reply: {:?}",
                String::from_utf8_lossy(&buf[pos..buf.len().min(pos + 200)])
            ),
        }
    }
    Ok(out)
}

/// The line starting at `from` (without its CRLF) and the offset after it. A bare CR or LF
/// inside a line is not RESP.
fn line(buf: &[u8], from: usize) -> Result<Option<(&[u8], usize)>> {
    let rest = &buf[from..];
    let Some(n) = rest.windows(2).position(|w| w == b"\r\n") else {
        if let Some(i) = rest.iter().position(|&c| c == b'\n') {
            bail!("a line with a bare LF at {}", from + i);
        }
        // A CR at the very end may be the start of the CRLF.
        if let Some(i) = rest.iter().position(|&c| c == b'\r') {
            if i + 1 < rest.len() {
                bail!("a line with a bare CR at {}", from + i);
            }
        }
        return Ok(None);
    };
    let l = &rest[..n];
    if l.iter().any(|&c| c == b'\r' || c == b'\n') {
        bail!(
            "a line with a bare CR or LF: {:?}",
            String::from_utf8_lossy(l)
        );
    }
    Ok(Some((l, from + n + 2)))
}

fn int(l: &[u8]) -> Result<i64> {
    let s = std::str::from_utf8(l).context("a non-UTF-8 number")?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        bail!("not an integer: {s:?}");
    }
    s.parse().with_context(|| format!("not an integer: {s:?}"))
}

/// A length: -1 (null) or more.
fn len(l: &[u8]) -> Result<Option<usize>> {
    match int(l)? {
        -1 => Ok(None),
        n if n < -1 => bail!("negative length {n}"),
        n => Ok(Some(usize::try_from(n).context("length")?)),
    }
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Resp, usize)>> {
    if depth > MAX_DEPTH {
        bail!("nested deeper than {MAX_DEPTH}");
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, pos + 1)? else {
        return Ok(None);
    };
    let items = |n: usize, next: usize| -> Result<Option<(Vec<Resp>, usize)>> {
        let mut v = Vec::new();
        let mut p = next;
        for _ in 0..n {
            let Some((r, e)) = parse_at(buf, p, depth + 1)? else {
                return Ok(None);
            };
            v.push(r);
            p = e;
        }
        Ok(Some((v, p)))
    };
    let blob = |n: usize| -> Result<Option<(Vec<u8>, usize)>> {
        let Some(end) = next.checked_add(n) else {
            bail!("length overflow");
        };
        match buf.get(end..end + 2) {
            None if buf.len() < end + 2 => Ok(None),
            Some(b"\r\n") => Ok(Some((buf[next..end].to_vec(), end + 2))),
            _ => bail!("a blob not followed by CRLF"),
        }
    };
    Ok(match kind {
        b'+' => Some((Resp::Simple(l.to_vec()), next)),
        b'-' => Some((Resp::Error(l.to_vec()), next)),
        b':' => Some((Resp::Integer(int(l)?), next)),
        b'_' if l.is_empty() => Some((Resp::Null, next)),
        b'#' if l == b"t" || l == b"f" => Some((Resp::Boolean(l == b"t"), next)),
        b',' | b'(' => Some((Resp::Other(kind, l.to_vec()), next)),
        b'$' => match len(l)? {
            None => Some((Resp::Bulk(None), next)),
            Some(n) => blob(n)?.map(|(b, e)| (Resp::Bulk(Some(b)), e)),
        },
        b'=' | b'!' => {
            let n = len(l)?.context("a null verbatim or blob error")?;
            blob(n)?.map(|(b, e)| (Resp::Other(kind, b), e))
        }
        b'*' => match len(l)? {
            None => Some((Resp::Array(None), next)),
            Some(n) => items(n, next)?.map(|(v, e)| (Resp::Array(Some(v)), e)),
        },
        b'~' | b'>' => {
            let n = len(l)?.context("a null set or push")?;
            items(n, next)?.map(|(v, e)| (Resp::Set(kind, v), e))
        }
        b'%' | b'|' => {
            let n = len(l)?.context("a null map")?;
            let n2 = n.checked_mul(2).context("map length overflow")?;
            items(n2, next)?.map(|(v, e)| {
                let mut pairs = Vec::with_capacity(n);
                let mut it = v.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                (Resp::Map(pairs), e)
            })
        }
        other => bail!(
            "not a RESP type byte: {:?} in {:?}",
            char::from(other),
            String::from_utf8_lossy(&buf[pos..buf.len().min(pos + 80)])
        ),
    })
}

/// A RESP array of bulk strings, as clients send commands.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A blocking raw-RESP client.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// How long a test waits for any one reply (generous: a loaded 2-core machine).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn connect(port: u16) -> Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .context("setting a read timeout")?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .context("writing to the server")
    }

    /// The next reply, waiting up to the read timeout; an error at EOF.
    pub fn read(&mut self) -> Result<Resp> {
        match self.read_or_eof()? {
            Some(r) => Ok(r),
            None => bail!("the server closed the connection"),
        }
    }

    /// The next reply, or `None` if the server closed the connection between replies.
    pub fn read_or_eof(&mut self) -> Result<Option<Resp>> {
        loop {
            if let Some((r, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(r));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).context("reading a reply")?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!(
                    "EOF inside a reply: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send one command and read its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Resp> {
        self.send(&command(args))?;
        self.read()
    }

    /// Half-close, then read every reply until the server closes (within `timeout`).
    pub fn finish(mut self, timeout: Duration) -> Result<Vec<Resp>> {
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no EOF within {timeout:?} after a half-close");
            }
            self.stream
                .set_read_timeout(Some(left))
                .context("read timeout")?;
            match self.read_or_eof()? {
                Some(r) => out.push(r),
                None => return Ok(out),
            }
        }
    }
}

/// Poll `f` until it returns `Some`, or fail after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}
