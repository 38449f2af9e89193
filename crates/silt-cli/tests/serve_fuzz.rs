//! A seeded protocol fuzz of a running `silt serve`: valid requests (arrays of bulk strings
//! and inline commands: GET, SET, MSET, INCR, PING, HELLO 3, ...) mutated with bit flips,
//! byte inserts and deletes, truncation, huge, negative and non-digit lengths
//! (`$536870912`, `*99999999`, `$-7`, `$1x`), lost CRLFs and garbage, several to a
//! connection. After each connection's input the test half-closes it: whatever comes back
//! must be valid RESP (parsed here), nothing may follow a protocol error, and the server
//! must close the connection within a deadline (a hang fails). Every few connections a
//! fresh one must answer PING. Then the server's memory (`VmRSS`) must stay bounded while
//! hundreds of clients hold announced-but-unsent 64 MiB bulks, huge argument counts and
//! partial lines, and after they close.
//!
//! `SILT_FUZZ_SEED=N` replays a seed (the default is fixed; the seed is printed on
//! failure); `SILT_LONG=1` runs ten times the connections.

mod serve_support;

use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serve_support::{command, parse_all, parse_reply, wait_for, Client, Resp, Server, Store};

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        // The modulo bias is irrelevant here.
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        // Mostly protocol-ish bytes, some anything.
        const ALPHABET: &[u8] = b"*$+-:_#%~>,\r\n0123456789 abcSETGETping";
        (0..n)
            .map(|_| {
                if self.chance(70) {
                    *self.pick(ALPHABET)
                } else {
                    (self.next() & 0xff) as u8
                }
            })
            .collect()
    }
}

fn key(rng: &mut Rng) -> Vec<u8> {
    format!("fz{}", rng.below(20)).into_bytes()
}

/// One valid request.
fn valid_frame(rng: &mut Rng) -> Vec<u8> {
    let k = key(rng);
    let k2 = key(rng);
    let len = rng.below(48);
    let v = rng.bytes(len);
    let num = rng.below(1000).to_string().into_bytes();
    match rng.below(22) {
        0 => command(&[b"GET", &k]),
        1 => command(&[b"SET", &k, &v]),
        2 => command(&[b"SET", &k, &num, b"NX", b"GET"]),
        3 => command(&[b"MSET", &k, &v, &k2, &num]),
        4 => command(&[b"INCR", &k]),
        5 => command(&[b"INCRBY", &k, &num]),
        6 => command(&[b"PING"]),
        7 => command(&[b"PING", &v]),
        8 => command(&[b"HELLO", b"3"]),
        9 => command(&[b"HELLO", b"2"]),
        10 => command(&[b"MGET", &k, &k2, b"nope"]),
        11 => command(&[b"APPEND", &k, &v]),
        12 => command(&[b"DEL", &k, &k2]),
        13 => command(&[b"EXISTS", &k, &k2]),
        14 => command(&[b"ECHO", &v]),
        15 => command(&[b"CLIENT", b"SETNAME", b"fuzz"]),
        16 => command(&[b"COMMAND", b"DOCS"]),
        17 => b"PING\r\n".to_vec(),
        18 => [b"SET ".as_slice(), &k, b" ", &num, b"\r\n"].concat(),
        19 => [b"GET ".as_slice(), &k, b"\r\n"].concat(),
        20 => b"HELLO 3\r\n".to_vec(),
        _ => [b"INCR ".as_slice(), &k, b"\r\n"].concat(),
    }
}

/// Lengths to put into a `$` or `*` header.
const LENGTHS: &[&str] = &[
    "536870912",
    "99999999",
    "67108864", // one over the bulk limit
    "67108863", // the largest bulk: waits for its bytes
    "1048577",  // one over the argument limit
    "1048576",
    "2147483648",
    "9223372036854775807",
    "99999999999999999999",
    "-1",
    "-2",
    "-99999",
    "0",
    "",
    "abc",
    "1x",
    " 3",
    "+3",
    "0x10",
    "3\0",
];

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    if frame.is_empty() {
        frame.extend_from_slice(&rng.bytes(4));
    }
    let at = rng.below(frame.len());
    match rng.below(10) {
        0 => frame[at] ^= 1 << rng.below(8),
        1 => {
            let n = 1 + rng.below(4);
            let ins = rng.bytes(n);
            frame.splice(at..at, ins);
        }
        2 => {
            let n = 1 + rng.below(4);
            frame.drain(at..(at + n).min(frame.len()));
        }
        3 => frame.truncate(at),
        4 | 5 => {
            // A header's length: the `$`/`*` at or after `at`, or anywhere.
            let headers: Vec<usize> = frame
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'$' || **c == b'*')
                .map(|(i, _)| i)
                .collect();
            if headers.is_empty() {
                frame.splice(0..0, format!("*{}\r\n", rng.pick(LENGTHS)).into_bytes());
                return;
            }
            let h = *rng.pick(&headers);
            let end = frame[h..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(frame.len(), |p| h + p);
            let len = rng.pick(LENGTHS).as_bytes().to_vec();
            frame.splice(h + 1..end, len);
        }
        6 => {
            // Lose or damage a CRLF.
            let crlfs: Vec<usize> = frame
                .windows(2)
                .enumerate()
                .filter(|(_, w)| *w == b"\r\n")
                .map(|(i, _)| i)
                .collect();
            if let Some(&i) = crlfs.get(rng.below(crlfs.len().max(1))) {
                const WITH: [&[u8]; 5] = [b"\n", b"\r", b"", b"\n\r", b"\r\r\n"];
                let with = *rng.pick(&WITH);
                frame.splice(i..i + 2, with.iter().copied());
            }
        }
        7 => {
            let n = 1 + rng.below(64);
            let garbage = rng.bytes(n);
            frame.splice(at..at, garbage);
        }
        8 => {
            // Duplicate a slice.
            let end = at + rng.below(frame.len() - at + 1);
            let dup = frame[at..end].to_vec();
            frame.splice(end..end, dup);
        }
        _ => {
            // Another type byte where a header is.
            frame[at] = *rng.pick(b"*$+-:_%~>#\r\n ");
        }
    }
}

/// A connection's input: one to eight frames, each mutated (or, sometimes, left valid).
fn session_input(rng: &mut Rng) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..=rng.below(8) {
        let mut f = valid_frame(rng);
        if rng.chance(80) {
            for _ in 0..=rng.below(3) {
                mutate(rng, &mut f);
            }
        }
        input.extend_from_slice(&f);
    }
    if rng.chance(5) {
        let n = rng.below(200);
        input = rng.bytes(n);
    }
    input
}

/// How long the server may take to close a half-closed connection (generous: a loaded
/// 2-core machine, and Remote writes waiting for the WAL).
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

/// Send `input` (in one to three writes), half-close, and read until the server closes
/// the connection. The replies, and whether it ended with a reset rather than an EOF.
fn exchange(port: u16, rng: &mut Rng, input: &[u8]) -> Result<(Vec<u8>, bool)> {
    let c = Client::connect(port)?;
    let mut s = c.stream;
    let mut rest = input;
    for _ in 0..rng.below(3) {
        let cut = rng.below(rest.len() + 1);
        let (now, later) = rest.split_at(cut);
        if std::io::Write::write_all(&mut s, now).is_err() {
            // The server closed already (a protocol error): read what it said.
            rest = &[];
            break;
        }
        rest = later;
    }
    let _ = std::io::Write::write_all(&mut s, rest);
    let _ = s.shutdown(Shutdown::Write);
    let deadline = Instant::now() + CLOSE_DEADLINE;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no EOF within {CLOSE_DEADLINE:?} after the half-close (a hang)");
        }
        s.set_read_timeout(Some(left)).context("read timeout")?;
        match s.read(&mut chunk) {
            Ok(0) => return Ok((out, false)),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            // A close with unread input is a reset: a closed connection too.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok((out, true)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("reading the replies"),
        }
    }
}

/// What the replies of the connections held.
#[derive(Debug, Default)]
struct Tally {
    replies: usize,
    protocol_errors: usize,
    other_errors: usize,
    resp3: usize,
}

/// The replies must be RESP, nothing may follow a protocol error, and (unless the
/// connection was reset, which may cut the stream) the stream must end at a reply's end.
fn check_replies(out: &[u8], reset: bool, tally: &mut Tally) -> Result<()> {
    let replies = if reset {
        let mut v = Vec::new();
        let mut pos = 0;
        while let Some((r, used)) = parse_reply(&out[pos..])? {
            v.push(r);
            pos += used;
        }
        v
    } else {
        parse_all(out)?
    };
    if let Some(i) = replies
        .iter()
        .position(|r| matches!(r, Resp::Error(e) if e.starts_with(b"ERR Protocol error")))
    {
        ensure!(
            i + 1 == replies.len(),
            "replies after a protocol error: {:?}",
            &replies[i..]
        );
        tally.protocol_errors += 1;
    }
    tally.replies += replies.len();
    for r in &replies {
        match r {
            Resp::Error(e) if !e.starts_with(b"ERR Protocol error") => tally.other_errors += 1,
            Resp::Map(_) | Resp::Null => tally.resp3 += 1,
            _ => {}
        }
    }
    Ok(())
}

fn ping(server: &Server) -> Result<()> {
    let mut c = server.connect()?;
    let r = c.call(&[b"PING"])?;
    ensure!(r == Resp::Simple(b"PONG".to_vec()), "PING answered {r:?}");
    Ok(())
}

fn escaped(b: &[u8]) -> String {
    b.iter()
        .flat_map(|c| std::ascii::escape_default(*c))
        .map(char::from)
        .collect()
}

#[test]
fn mutated_frames_get_resp_or_a_close_and_never_hang_or_kill_the_server() -> Result<()> {
    let seed: u64 = match std::env::var("SILT_FUZZ_SEED") {
        Ok(s) => s.parse().context("SILT_FUZZ_SEED")?,
        Err(_) => 0x5117_5E7E,
    };
    let long = std::env::var("SILT_LONG").as_deref() == Ok("1");
    let sessions = if long { 200_000 } else { 10_000 };
    let store = Store::new()?;
    let mut server = Server::start(&store, &[])?;
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let (mut resets, mut bytes) = (0, 0);
    for n in 0..sessions {
        let input = session_input(&mut rng);
        bytes += input.len();
        let checked = exchange(server.port, &mut rng, &input).and_then(|(out, reset)| {
            resets += usize::from(reset);
            check_replies(&out, reset, &mut tally)
                .with_context(|| format!("the replies: \"{}\"", escaped(&out)))
        });
        if let Err(e) = checked {
            bail!(
                "seed {seed}, connection {n}, input \"{}\": {e:#}\nserver log:\n{}",
                escaped(&input),
                server.log_text()
            );
        }
        if n % 100 == 99 {
            ensure!(
                server.alive(),
                "the server died (seed {seed}, connection {n})"
            );
            ping(&server).with_context(|| format!("seed {seed}, after connection {n}"))?;
        }
    }
    eprintln!(
        "seed {seed}: {sessions} connections, {bytes} bytes sent, {tally:?}, {resets} resets, \
         in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    memory_stays_bounded(&mut server)?;
    ping(&server)?;
    server.stop()
}

/// Bound on the server's resident memory while and after hostile clients hold connections.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

fn memory_stays_bounded(server: &mut Server) -> Result<()> {
    let before = server.rss_kib()?;
    // Each client first sends a PING (its PONG says the server is reading it) with the
    // hostile part in the same write.
    let mut hostile: Vec<&[u8]> = Vec::new();
    let big_set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$67108863\r\n".as_slice();
    let many_args = b"*1048576\r\n$3\r\nSET\r\n".as_slice();
    let long_line = vec![b'x'; 60 * 1024];
    let long_header = [b"*2\r\n$".as_slice(), &vec![b'9'; 60 * 1024]].concat();
    for i in 0..600 {
        hostile.push(match i % 4 {
            0 => big_set,
            1 => many_args,
            2 => &long_line,
            _ => &long_header,
        });
    }
    let mut clients = Vec::new();
    for h in &hostile {
        let mut c = server.connect()?;
        c.send(&[b"PING\r\n".as_slice(), h].concat())?;
        let r = c.read()?;
        ensure!(r == Resp::Simple(b"PONG".to_vec()), "{r:?}");
        clients.push(c);
    }
    // And some that announce a 64 MiB bulk and then send 256 KiB of it.
    let part = vec![b'y'; 256 * 1024];
    for _ in 0..64 {
        let mut c = server.connect()?;
        c.send(big_set)?;
        c.send(&part)?;
        clients.push(c);
    }
    ping(server)?;
    let held = server.rss_kib()?;
    ensure!(server.alive(), "the server died under the hostile clients");
    ensure!(
        held < RSS_LIMIT_KIB,
        "VmRSS {held} KiB with the hostile clients connected, limit {RSS_LIMIT_KIB} KiB"
    );
    drop(clients);
    // The server handles the closes in its own time: poll until its memory is under the
    // bound (it is already, unless something held on to memory per connection).
    let after = wait_for(
        Duration::from_secs(30),
        "VmRSS under the limit after the hostile clients closed",
        || {
            let rss = server.rss_kib()?;
            Ok((rss < RSS_LIMIT_KIB).then_some(rss))
        },
    )
    .with_context(|| format!("VmRSS {} KiB", server.rss_kib().unwrap_or(0)))?;
    ping(server)?;
    eprintln!(
        "VmRSS: {before} KiB before, {held} KiB with {} hostile clients, {after} KiB after",
        hostile.len() + 64
    );
    Ok(())
}
