//! `silt serve` driven by Redis's own tools, `redis-cli` and `redis-benchmark` (Debian
//! `redis-tools`, installed by `scripts/test`). Skipped when they are missing, unless
//! `SILT_REQUIRE_REDIS_TOOLS=1` (set by `scripts/test`), which makes their absence a failure.
//!
//! * a `redis-cli` session of the string commands and their error replies, in RESP2 and
//!   (`redis-cli -3`) RESP3;
//! * `redis-cli --pipe` mass insertion of 5,000 keys, all read back;
//! * `redis-benchmark -t set,get -P 16` to completion under each durability, its keys
//!   read back (after a kill -9 for Remote and Local, which acknowledged them durable);
//! * a kill -9 of the server under `redis-benchmark` load, Remote and Local: every write a
//!   tracked raw-RESP writer saw acknowledged alongside the load is there after a restart.

mod serve_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serve_support::{command, redis_tools, wait_for, Client, Resp, Server, Store};

/// Run `redis-cli -p <port> <args>`, feeding it `stdin`; its exit status and stdout, stderr.
fn redis_cli_output(
    port: u16,
    args: &[&str],
    stdin: &[u8],
) -> Result<(std::process::ExitStatus, String, String)> {
    let mut child = Command::new("redis-cli")
        // Nothing from the environment or $HOME: no password, no rc file, no history.
        .env_remove("REDISCLI_AUTH")
        .env("REDISCLI_RCFILE", "/dev/null")
        .env("REDISCLI_HISTFILE", "/dev/null")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting redis-cli")?;
    let mut input = child.stdin.take().context("redis-cli's stdin")?;
    let stdin = stdin.to_vec();
    // A thread, so a large input cannot deadlock against redis-cli's output.
    let feeder = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().context("running redis-cli")?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the stdin feeder panicked"))?
        .context("writing redis-cli's stdin")?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The same, expecting success: its stdout.
fn redis_cli(port: u16, args: &[&str], stdin: &[u8]) -> Result<String> {
    let (status, out, err) = redis_cli_output(port, args, stdin)?;
    ensure!(
        status.success(),
        "redis-cli {args:?} failed ({status}):\n{out}\n{err}"
    );
    Ok(out)
}

/// Lines of a session: a command typed into `redis-cli`, then what it prints for the reply.
const SESSION: &[(&str, &[&str])] = &[
    ("PING", &["PONG"]),
    ("ECHO \"two words\"", &["\"two words\""]),
    ("SET greeting hello", &["OK"]),
    ("GET greeting", &["\"hello\""]),
    ("APPEND greeting \" world\"", &["(integer) 11"]),
    ("GET greeting", &["\"hello world\""]),
    ("STRLEN greeting", &["(integer) 11"]),
    ("APPEND fresh abc", &["(integer) 3"]),
    ("INCR counter", &["(integer) 1"]),
    ("INCRBY counter 41", &["(integer) 42"]),
    ("DECR counter", &["(integer) 41"]),
    ("DECRBY counter 50", &["(integer) -9"]),
    ("GET counter", &["\"-9\""]),
    (
        "INCR greeting",
        &["(error) ERR value is not an integer or out of range"],
    ),
    (
        "INCRBY counter notanumber",
        &["(error) ERR value is not an integer or out of range"],
    ),
    ("SET big 9223372036854775807", &["OK"]),
    (
        "INCR big",
        &["(error) ERR increment or decrement would overflow"],
    ),
    ("MSET a 1 b 2 c 3", &["OK"]),
    (
        "MGET a b nope c",
        &["1) \"1\"", "2) \"2\"", "3) (nil)", "4) \"3\""],
    ),
    ("EXISTS a b nope c a", &["(integer) 4"]),
    ("DEL a nope", &["(integer) 1"]),
    ("DEL a", &["(integer) 0"]),
    ("EXISTS a", &["(integer) 0"]),
    ("GET a", &["(nil)"]),
    ("SETNX b 9", &["(integer) 0"]),
    ("SETNX d 9", &["(integer) 1"]),
    ("GETSET b 7", &["\"2\""]),
    ("GETDEL b", &["\"7\""]),
    ("GET b", &["(nil)"]),
    ("MSETNX c 0 e 0", &["(integer) 0"]),
    ("MSETNX e 5 f 6", &["(integer) 1"]),
    ("SET k v NX", &["OK"]),
    ("SET k w NX", &["(nil)"]),
    ("SET k w XX GET", &["\"v\""]),
    ("GET k", &["\"w\""]),
    ("UNLINK k e f", &["(integer) 3"]),
    (
        "GET",
        &["(error) ERR wrong number of arguments for 'get' command"],
    ),
    (
        "MSET a",
        &["(error) ERR wrong number of arguments for 'mset' command"],
    ),
    (
        "FROB x",
        &["(error) ERR unknown command 'frob', with args beginning with: 'x'"],
    ),
    ("SELECT 1", &["(error) ERR DB index is out of range"]),
    ("SELECT 0", &["OK"]),
    ("SET k v EX 1000", &["OK"]),
    ("TTL k", &["(integer) 1000"]),
    ("PERSIST k", &["(integer) 1"]),
    ("TTL k", &["(integer) -1"]),
    ("TTL nosuchkey", &["(integer) -2"]),
    (
        "SET k v EX 0",
        &["(error) ERR invalid expire time in 'set' command"],
    ),
    ("SET k v BOGUS", &["(error) ERR syntax error"]),
    ("CLIENT SETNAME cli-test", &["OK"]),
    ("CLIENT GETNAME", &["\"cli-test\""]),
];

fn session_input() -> String {
    SESSION.iter().flat_map(|(c, _)| [c, "\n"]).collect()
}

fn session_output() -> Vec<&'static str> {
    SESSION
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn redis_cli_session_of_the_string_commands() -> Result<()> {
    if !redis_tools()? {
        return Ok(());
    }
    let store = Store::new()?;
    let server = Server::start(&store, &[])?;
    let p = server.port;

    // The session typed into redis-cli's prompt (stdin not a terminal: one reply per line).
    let out = redis_cli(p, &["--no-raw"], session_input().as_bytes())?;
    let want = session_output();
    for (i, (got, want)) in lines(&out).iter().zip(&want).enumerate() {
        ensure!(got == want, "line {i}: got {got:?}, want {want:?}\n{out}");
    }
    ensure!(lines(&out).len() == want.len(), "output:\n{out}");

    // One command per invocation, raw output (what scripts read).
    ensure!(redis_cli(p, &["GET", "greeting"], b"")? == "hello world\n");
    ensure!(redis_cli(p, &["MGET", "counter", "d", "nope"], b"")? == "-9\n9\n\n");
    ensure!(redis_cli(p, &["INCR", "counter"], b"")? == "-8\n");
    ensure!(redis_cli(p, &["EXISTS", "greeting", "nope"], b"")? == "1\n");

    // RESP3 (`-3` says HELLO 3 on connecting): HELLO's reply is a map, nil is null.
    let hello3 = redis_cli(p, &["-3", "--no-raw", "HELLO"], b"")?;
    ensure!(
        hello3.starts_with("1# \"server\" => \"silt\"\n") && hello3.contains("=> (integer) 3"),
        "{hello3}"
    );
    let hello2 = redis_cli(p, &["--no-raw", "HELLO"], b"")?;
    ensure!(
        hello2.starts_with(" 1) \"server\"\n 2) \"silt\"\n"),
        "{hello2}"
    );
    ensure!(redis_cli(p, &["-3", "CLIENT", "INFO"], b"")?.contains("resp=3"));
    ensure!(redis_cli(p, &["CLIENT", "INFO"], b"")?.contains("resp=2"));
    let resp3 = "GET greeting\nGET nope\nMGET greeting nope\nINCR counter\nFROB\n";
    let out = redis_cli(p, &["-3", "--no-raw"], resp3.as_bytes())?;
    ensure!(
        lines(&out)
            == [
                "\"hello world\"",
                "(nil)",
                "1) \"hello world\"",
                "2) (nil)",
                "(integer) -7",
                "(error) ERR unknown command 'frob', with args beginning with: ",
            ],
        "{out}"
    );
    // The null really is RESP3's `_` on a HELLO 3 connection (and `$-1` on RESP2).
    let mut c = server.connect()?;
    ensure!(c.call(&[b"GET", b"nope"])? == Resp::Bulk(None));
    ensure!(matches!(c.call(&[b"HELLO", b"3"])?, Resp::Map(_)));
    ensure!(c.call(&[b"GET", b"nope"])? == Resp::Null);
    drop(c);

    // Mass insertion: redis-cli --pipe sends the raw protocol and counts the replies.
    let n = 5000;
    let mut input = Vec::new();
    for i in 0..n {
        input.extend_from_slice(&command(&[
            b"SET",
            format!("mass:{i:05}").as_bytes(),
            format!("value-{i}-{}", "z".repeat(i % 40)).as_bytes(),
        ]));
    }
    let out = redis_cli(p, &["--pipe"], &input)?;
    ensure!(out.contains(&format!("errors: 0, replies: {n}")), "{out}");
    check_mass_keys(&server, n)?;
    // Error replies are counted, shown, and make it exit 1.
    let mut bad = command(&[b"SET", b"mass:text", b"abc"]);
    bad.extend_from_slice(&command(&[b"INCR", b"mass:text"]));
    bad.extend_from_slice(&command(&[b"GET"]));
    let (status, out, err) = redis_cli_output(p, &["--pipe"], &bad)?;
    ensure!(status.code() == Some(1), "{status}: {out}");
    ensure!(out.contains("errors: 2, replies: 3"), "{out}");
    ensure!(
        err.contains("ERR value is not an integer or out of range")
            && err.contains("ERR wrong number of arguments for 'get' command"),
        "{err}"
    );

    // A graceful stop, a restart on the same store: everything is still there.
    server.stop()?;
    let server = Server::start(&store, &[])?;
    check_mass_keys(&server, n)?;
    ensure!(redis_cli(server.port, &["GET", "greeting"], b"")? == "hello world\n");
    server.stop()
}

fn check_mass_keys(server: &Server, n: usize) -> Result<()> {
    let mut c = server.connect()?;
    let keys: Vec<String> = (0..n).map(|i| format!("mass:{i:05}")).collect();
    for (chunk_no, chunk) in keys.chunks(500).enumerate() {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(String::as_bytes));
        let Resp::Array(Some(values)) = c.call(&args)? else {
            bail!("MGET did not answer an array");
        };
        ensure!(values.len() == chunk.len());
        for (j, v) in values.iter().enumerate() {
            let i = chunk_no * 500 + j;
            let want = format!("value-{i}-{}", "z".repeat(i % 40)).into_bytes();
            ensure!(*v == Resp::Bulk(Some(want)), "mass:{i:05} holds {v:?}");
        }
    }
    Ok(())
}

/// `redis-benchmark ... --csv`: the requests per second of each test. It must not warn
/// (it does when `CONFIG GET save` / `appendonly` go unanswered).
fn benchmark(port: u16, extra: &[&str]) -> Result<Vec<(String, f64)>> {
    let done = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "--csv"])
        .args(extra)
        .output()
        .context("running redis-benchmark")?;
    let warned = String::from_utf8_lossy(&done.stderr);
    ensure!(
        done.status.success() && !warned.contains("WARNING"),
        "redis-benchmark: {} {warned}",
        done.status
    );
    let out = String::from_utf8_lossy(&done.stdout).into_owned();
    let mut rows = Vec::new();
    for line in out.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let (Some(test), Some(rps)) = (cols.first(), cols.get(1)) else {
            bail!("an odd redis-benchmark line: {line}");
        };
        let rps: f64 = rps
            .parse()
            .with_context(|| format!("redis-benchmark rps in {line}"))?;
        rows.push(((*test).to_owned(), rps));
    }
    Ok(rows)
}

/// The keys `redis-benchmark -r 1000` writes: `key:` and a 12-digit number below 1000.
fn benchmark_keys() -> Vec<String> {
    (0..1000).map(|i| format!("key:{i:012}")).collect()
}

/// How many of `redis-benchmark -r 1000 -d 100`'s keys hold its value: 100 random bytes it
/// draws once, the same in every SET. Any other value is an error.
fn count_benchmark_keys(server: &Server) -> Result<usize> {
    let keys = benchmark_keys();
    let mut args: Vec<&[u8]> = vec![b"MGET"];
    args.extend(keys.iter().map(String::as_bytes));
    let mut c = server.connect()?;
    let Resp::Array(Some(values)) = c.call(&args)? else {
        bail!("MGET did not answer an array");
    };
    ensure!(values.len() == keys.len());
    let mut present = 0;
    let mut value: Option<&Vec<u8>> = None;
    for (k, v) in keys.iter().zip(&values) {
        match v {
            Resp::Bulk(None) => {}
            Resp::Bulk(Some(b)) if b.len() == 100 && value.is_none_or(|v| v == b) => {
                value = Some(b);
                present += 1;
            }
            other => bail!("{k} holds {other:?}, not the benchmark's 100-byte value"),
        }
    }
    Ok(present)
}

#[test]
fn redis_benchmark_runs_to_completion_under_each_durability() -> Result<()> {
    if !redis_tools()? {
        return Ok(());
    }
    for durability in ["buffered", "remote", "local"] {
        benchmark_one(durability).with_context(|| format!("--durability {durability}"))?;
    }
    Ok(())
}

fn benchmark_one(durability: &str) -> Result<()> {
    let store = Store::new()?;
    let args = ["--durability", durability];
    let server = Server::start(&store, &args)?;
    let started = Instant::now();
    let rows = benchmark(
        server.port,
        &[
            "-t", "set,get", "-n", "20000", "-r", "1000", "-d", "100", "-c", "20", "-P", "16",
        ],
    )?;
    eprintln!(
        "{durability}: {rows:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tests: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    ensure!(tests == ["SET", "GET"], "{rows:?}");
    ensure!(rows.iter().all(|(_, rps)| *rps > 0.0), "{rows:?}");
    // 20,000 SETs of 1,000 random keys leave a key unwritten with odds of about 2e-9.
    let present = count_benchmark_keys(&server)?;
    ensure!(present == 1000, "{present} of 1000 keys");
    // Remote and Local acknowledged every SET durable: a kill -9 loses none of them.
    // Buffered promises nothing of the kind; it gets a graceful stop.
    if durability == "buffered" {
        server.stop()?;
    } else {
        server.kill9()?;
    }
    let server = Server::start(&store, &args)?;
    let present = count_benchmark_keys(&server)?;
    ensure!(present == 1000, "{present} of 1000 keys after a restart");
    server.stop()
}

/// A raw-RESP writer pipelining SETs of distinct keys (`tw:<i>`, 16 per round trip) until
/// the connection fails; the indices it saw answered `+OK`.
fn tracked_writer(port: u16, acked: &AtomicUsize) -> Vec<usize> {
    let mut ok = Vec::new();
    let Ok(mut c) = Client::connect(port) else {
        return ok;
    };
    let mut next = 0;
    loop {
        let mut batch = Vec::new();
        for i in next..next + 16 {
            batch.extend_from_slice(&command(&[
                b"SET",
                tracked_key(i).as_bytes(),
                tracked_value(i).as_bytes(),
            ]));
        }
        if c.send(&batch).is_err() {
            return ok;
        }
        for i in next..next + 16 {
            match c.read() {
                Ok(Resp::Simple(s)) if s == b"OK" => {
                    ok.push(i);
                    acked.store(ok.len(), Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => return ok,
            }
        }
        next += 16;
    }
}

fn tracked_key(i: usize) -> String {
    format!("tw:{i:08}")
}

fn tracked_value(i: usize) -> String {
    format!("tracked-{i}-{}", "v".repeat(i % 64))
}

#[test]
fn acknowledged_writes_survive_a_kill_9_under_redis_benchmark_load() -> Result<()> {
    if !redis_tools()? {
        return Ok(());
    }
    for durability in ["remote", "local"] {
        kill_9_under_load(durability).with_context(|| format!("--durability {durability}"))?;
    }
    Ok(())
}

fn kill_9_under_load(durability: &str) -> Result<()> {
    let store = Store::new()?;
    let args = ["--durability", durability];
    let mut server = Server::start(&store, &args)?;
    let port = server.port;
    // The load: pipelined SETs from 20 clients, far more than it gets to send.
    let mut load = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-q",
            "-t",
            "set",
            "-n",
            "100000000",
        ])
        .args(["-r", "100000", "-d", "100", "-c", "20", "-P", "16"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-benchmark")?;
    // Let the load get going: some of a sample of its keys appear.
    let mut sample: Vec<String> = (0..500).map(|i| format!("key:{:012}", i * 199)).collect();
    sample.insert(0, "EXISTS".into());
    let sample: Vec<&[u8]> = sample.iter().map(String::as_bytes).collect();
    let mut probe = server.connect()?;
    wait_for(
        Duration::from_secs(60),
        "redis-benchmark's first SETs",
        || {
            Ok(match probe.call(&sample)? {
                Resp::Integer(n) if n > 0 => Some(()),
                _ => None,
            })
        },
    )?;
    drop(probe);

    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || tracked_writer(port, &acked))
    };
    // SIGKILL once the tracked writer has had a few hundred pipelines answered under load.
    let waited = wait_for(
        Duration::from_secs(120),
        "3,000 tracked writes acknowledged",
        || Ok((acked.load(Ordering::Relaxed) >= 3000).then_some(())),
    );
    let under_load = matches!(load.try_wait(), Ok(None));
    let killed = server.child.kill().context("kill -9 the server");
    let _ = server.child.wait();
    let _ = load.kill();
    let _ = load.wait();
    let ok = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the tracked writer panicked"))?;
    waited?;
    killed?;
    ensure!(under_load, "redis-benchmark had stopped before the kill");
    drop(server);

    let server = Server::start(&store, &args)?;
    let mut c = server.connect()?;
    let mut missing = Vec::new();
    for chunk in ok.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|&i| tracked_key(i)).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(String::as_bytes));
        let Resp::Array(Some(values)) = c.call(&args)? else {
            bail!("MGET did not answer an array");
        };
        for (&i, v) in chunk.iter().zip(&values) {
            if *v != Resp::Bulk(Some(tracked_value(i).into_bytes())) {
                missing.push((i, v.clone()));
            }
        }
    }
    let keys: BTreeSet<usize> = ok.iter().copied().collect();
    eprintln!(
        "{durability}: {} tracked writes acknowledged before the kill, {} lost",
        keys.len(),
        missing.len()
    );
    ensure!(
        missing.is_empty(),
        "{} of {} acknowledged tracked writes lost or wrong, e.g. {:?}",
        missing.len(),
        ok.len(),
        &missing[..missing.len().min(5)]
    );
    server.stop()
}
