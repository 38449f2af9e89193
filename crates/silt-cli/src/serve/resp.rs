//! The Redis serialization protocol (RESP2 and RESP3) as `silt serve` speaks it: an
//! incremental request parser with limits, and a reply encoder.
//!
//! Requests are what clients send: an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`),
//! or an inline command (`GET k\r\n`, what a person types into `telnet`). [`parse_request`]
//! takes a connection's buffered bytes and returns a whole command, `Ok(None)` when more bytes
//! are needed, or a [`ProtocolError`] after which the server replies with the error and closes
//! the connection (as Redis does). It never panics and never allocates more than the input
//! holds plus the declared sizes it accepted, each within [`Limits`].
//!
//! Replies are [`Reply`] values, encoded for the connection's protocol version by
//! [`Reply::encode`]: the RESP3 types used so far (null, map) fall back to their RESP2
//! forms on a RESP2 connection, as Redis does.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Limits on what one request may declare. Defaults follow Redis where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (Redis `proto-max-bulk-len`; here the engine's value limit).
    pub max_bulk_bytes: usize,
    /// Most arguments in one command (Redis allows 1024 * 1024 * 1024; far fewer here).
    pub max_args: usize,
    /// Longest inline command or protocol line (Redis: 64 KiB).
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: silt::MAX_VALUE_BYTES,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
        }
    }
}

/// Why a request could not be parsed. The text is what Redis replies (after `ERR `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// The offset of the `\r\n` ending the line that starts at `from`, if the buffer holds it.
/// A line longer than `max` is an error whether or not its end has arrived.
fn line_end(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, ProtocolError> {
    let rest = buf.get(from..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n > max => err("too big inline request"),
        Some(n) => Ok(Some(from + n)),
        None if rest.len() > max => err("too big inline request"),
        None => Ok(None),
    }
}

/// A decimal length line (`*3`, `$5`): the number, without sign or leading `+`.
fn parse_len(line: &[u8], what: &str) -> Result<i64, ProtocolError> {
    let s = std::str::from_utf8(line).map_err(|_| ProtocolError(format!("invalid {what}")))?;
    s.parse::<i64>()
        .map_err(|_| ProtocolError(format!("invalid {what}")))
}

/// Take one command off the front of `buf`: its arguments, `Ok(None)` if the command is not
/// all there yet (nothing is consumed), or an error (the connection should be closed).
/// An empty array or blank inline line is consumed and yields no command.
///
/// # Errors
/// [`ProtocolError`] for a malformed frame or a declared size over `limits`.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let parsed = if first == b'*' {
            parse_multibulk(buf, limits)?
        } else {
            parse_inline(buf, limits)?
        };
        match parsed {
            None => return Ok(None),
            Some((consumed, args)) => {
                buf.advance(consumed);
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }
}

fn parse_inline(
    buf: &BytesMut,
    limits: &Limits,
) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(end) = line_end(buf, 0, limits.max_inline_bytes)? else {
        return Ok(None);
    };
    let line = &buf[..end];
    let mut args = Vec::new();
    for word in line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
    {
        if args.len() >= limits.max_args {
            return err("too many arguments");
        }
        args.push(Bytes::copy_from_slice(word));
    }
    Ok(Some((end + 2, args)))
}

fn parse_multibulk(
    buf: &BytesMut,
    limits: &Limits,
) -> Result<Option<(usize, Vec<Bytes>)>, ProtocolError> {
    let Some(end) = line_end(buf, 1, limits.max_inline_bytes)? else {
        return Ok(None);
    };
    let n = parse_len(&buf[1..end], "multibulk length")?;
    if n <= 0 {
        return Ok(Some((end + 2, Vec::new())));
    }
    let n = usize::try_from(n).map_err(|_| ProtocolError("invalid multibulk length".into()))?;
    if n > limits.max_args {
        return err("invalid multibulk length");
    }
    let mut pos = end + 2;
    // Capacity from what the buffer can hold, not from the declared count.
    let mut args = Vec::with_capacity(n.min(buf.len() / 4 + 1));
    for _ in 0..n {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => {
                return err(format!(
                    "expected '$', got '{}'",
                    char::from(c).escape_default()
                ))
            }
        }
        let Some(end) = line_end(buf, pos + 1, limits.max_inline_bytes)? else {
            return Ok(None);
        };
        let len = parse_len(&buf[pos + 1..end], "bulk length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= limits.max_bulk_bytes)
            .ok_or_else(|| ProtocolError("invalid bulk length".into()))?;
        let start = end + 2;
        let Some(stop) = start.checked_add(len) else {
            return err("invalid bulk length");
        };
        match buf.get(stop..stop + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return err("bulk string not terminated by CRLF"),
        }
        args.push(Bytes::copy_from_slice(&buf[start..stop]));
        pos = stop + 2;
    }
    Ok(Some((pos, args)))
}

/// A reply, in RESP3's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the whole text, with its prefix (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`.
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 `$-1`.
    Null,
    /// RESP3 `_`; RESP2 `*-1` (an aborted EXEC).
    NullArray,
    /// `*N`.
    Array(Vec<Reply>),
    /// RESP3 `%N`; RESP2 a flat array of key, value, ...
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// `-ERR msg`.
    pub fn err(msg: impl fmt::Display) -> Reply {
        Reply::Error(format!("ERR {msg}"))
    }

    /// An upper bound of the encoding's length in bytes (either protocol version).
    pub fn encoded_len(&self) -> usize {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.len() + 3,
            Reply::Integer(_) => 23,
            Reply::Bulk(b) => b.len() + 25,
            Reply::Null | Reply::NullArray => 5,
            Reply::Array(items) => items
                .iter()
                .fold(23, |n, i| n.saturating_add(i.encoded_len())),
            Reply::Map(pairs) => pairs.iter().fold(23, |n, (k, v)| {
                n.saturating_add(k.encoded_len())
                    .saturating_add(v.encoded_len())
            }),
        }
    }

    /// Append the encoding of `self` for protocol version `resp` (2 or 3) to `out`.
    pub fn encode(&self, resp: u8, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let v3 = resp >= 3;
        // Writing into a Vec cannot fail.
        let _ = match self {
            Reply::Simple(s) => write!(out, "+{}\r\n", one_line(s)),
            Reply::Error(s) => write!(out, "-{}\r\n", one_line(s)),
            Reply::Integer(i) => write!(out, ":{i}\r\n"),
            Reply::Bulk(b) => {
                let _ = write!(out, "${}\r\n", b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Reply::Null | Reply::NullArray if v3 => write!(out, "_\r\n"),
            Reply::Null => write!(out, "$-1\r\n"),
            Reply::NullArray => write!(out, "*-1\r\n"),
            Reply::Array(items) => {
                let _ = write!(out, "*{}\r\n", items.len());
                for i in items {
                    i.encode(resp, out);
                }
                Ok(())
            }
            Reply::Map(pairs) => {
                let _ = if v3 {
                    write!(out, "%{}\r\n", pairs.len())
                } else {
                    write!(out, "*{}\r\n", pairs.len() * 2)
                };
                for (k, v) in pairs {
                    k.encode(resp, out);
                    v.encode(resp, out);
                }
                Ok(())
            }
        };
    }
}

/// Simple strings and errors are one line: CR and LF become spaces.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(input: &[u8], limits: &Limits) -> Result<(Vec<Vec<Bytes>>, usize), ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = parse_request(&mut buf, limits)? {
            out.push(cmd);
        }
        Ok((out, buf.len()))
    }

    fn encode_cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn multibulk_inline_and_pipelines() {
        let mut input = encode_cmd(&[b"SET", b"k", b"a\r\nb"]);
        input.extend_from_slice(b"PING\r\n  GET   k \r\n\r\n*0\r\n");
        input.extend_from_slice(&encode_cmd(&[b"GET", b""]));
        let (cmds, left) = parse_all(&input, &Limits::default()).unwrap();
        let want: Vec<Vec<&[u8]>> = vec![
            vec![b"SET", b"k", b"a\r\nb"],
            vec![b"PING"],
            vec![b"GET", b"k"],
            vec![b"GET", b""],
        ];
        assert_eq!(cmds.len(), want.len());
        for (c, w) in cmds.iter().zip(&want) {
            assert!(c.iter().map(Bytes::as_ref).eq(w.iter().copied()), "{c:?}");
        }
        assert_eq!(left, 0);
    }

    #[test]
    fn every_prefix_waits_for_more_and_consumes_nothing() {
        let input = encode_cmd(&[b"SET", b"key", b"value"]);
        for cut in 0..input.len() {
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default()),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn malformed_and_oversized_frames_are_errors() {
        let small = Limits {
            max_bulk_bytes: 10,
            max_args: 3,
            max_inline_bytes: 32,
        };
        for (input, want) in [
            (&b"*x\r\n"[..], "invalid multibulk length"),
            (b"*4\r\n", "invalid multibulk length"),
            (b"*1\r\n+OK\r\n", "expected '$'"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$11\r\n", "invalid bulk length"),
            (b"*1\r\n$1\r\nabc\r\n", "not terminated"),
            (b"a b c d\r\n", "too many arguments"),
        ] {
            let e = parse_all(input, &small).unwrap_err();
            assert!(e.0.contains(want), "{input:?}: {e}");
        }
        // A line that never ends is refused once it passes the limit.
        let e = parse_all(&[b'x'; 40], &small).unwrap_err();
        assert!(e.0.contains("too big inline"), "{e}");
        let e = parse_all(b"*99999999999999999999999\r\n", &Limits::default()).unwrap_err();
        assert!(e.0.contains("multibulk length"), "{e}");
    }

    #[test]
    fn replies_in_resp2_and_resp3() {
        let r = Reply::Map(vec![(
            Reply::Simple("a".into()),
            Reply::Array(vec![Reply::Null, Reply::Integer(7)]),
        )]);
        let (mut v2, mut v3) = (Vec::new(), Vec::new());
        r.encode(2, &mut v2);
        r.encode(3, &mut v3);
        assert_eq!(v2, b"*2\r\n+a\r\n*2\r\n$-1\r\n:7\r\n");
        assert_eq!(v3, b"%1\r\n+a\r\n*2\r\n_\r\n:7\r\n");
        let mut e = Vec::new();
        Reply::err("bad\r\nthing").encode(2, &mut e);
        assert_eq!(e, b"-ERR bad  thing\r\n");
        let mut b = Vec::new();
        Reply::Bulk(Bytes::from_static(b"x\r\ny")).encode(3, &mut b);
        assert_eq!(b, b"$4\r\nx\r\ny\r\n");
        let (mut n2, mut n3) = (Vec::new(), Vec::new());
        Reply::NullArray.encode(2, &mut n2);
        Reply::NullArray.encode(3, &mut n3);
        for (r, v) in [(&r, &v2), (&r, &v3), (&Reply::NullArray, &n2)] {
            assert!(r.encoded_len() >= v.len());
        }
        assert_eq!((&n2[..], &n3[..]), (&b"*-1\r\n"[..], &b"_\r\n"[..]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Commands encoded back to back parse back to themselves, however the bytes are
        /// split into reads.
        #[test]
        fn encoded_commands_round_trip_across_any_split(
            cmds in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5),
                1..6,
            ),
            split in any::<prop::sample::Index>(),
        ) {
            let mut input = Vec::new();
            for c in &cmds {
                let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                input.extend_from_slice(&encode_cmd(&args));
            }
            let cut = split.index(input.len() + 1);
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            while let Some(cmd) = parse_request(&mut buf, &Limits::default()).unwrap() {
                got.push(cmd);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(cmd) = parse_request(&mut buf, &Limits::default()).unwrap() {
                got.push(cmd);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got.len(), cmds.len());
            for (g, c) in got.iter().zip(&cmds) {
                prop_assert!(g.iter().map(Bytes::as_ref).eq(c.iter().map(Vec::as_slice)));
            }
        }

        /// Mutated, truncated and random frames: an error or a command, never a panic, and
        /// never more arguments or bytes than the input holds.
        #[test]
        fn mutated_frames_never_panic(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 1..4),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            truncate in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut input = encode_cmd(&slices);
            for (i, b) in &edits {
                let at = i.index(input.len());
                input[at] = *b;
            }
            input.truncate(truncate.index(input.len() + 1));
            input.extend_from_slice(&noise);
            let limits = Limits { max_bulk_bytes: 1 << 20, max_args: 64, max_inline_bytes: 1024 };
            if let Ok((cmds, _)) = parse_all(&input, &limits) {
                let total: usize = cmds.iter().flatten().map(Bytes::len).sum();
                prop_assert!(total <= input.len());
            }
        }
    }
}
