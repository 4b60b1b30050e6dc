//! QUIC between real processes: a sender process streaming to this one
//! (B19, B09), and a receiving process killed with `kill -9` mid-stream and
//! started again on the same address (B20: at least once, a message that may
//! have been seen before flagged `redelivered`), or never again (the retry
//! deadline).
//!
//! Each test starts children by running this test binary again with
//! `child_entry` selected and its role in the environment; a child prints
//! `@@`-prefixed lines the parent waits for (always with a timeout), reads
//! commands on its stdin, and is killed if the test ends early. Every node's
//! trust root is in a temporary directory the parent shares with its
//! children; everything listens on 127.0.0.1.

mod quic_support;

mod kid;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use asyncmsg::{ChannelConfig, ConnectionAttr, ErrorKind, Flush, GetError, Node};
use asyncmsg_quic::relay::UdpRelay;
use kid::Kid;
use quic_support::{Calls, PAYLOAD, TrustHome, Watched, payload, recording, seq_of, unique};

/// The most a child may stay silent, or a step take, before the test counts
/// it as hung.
const WAIT: Duration = Duration::from_secs(30);
/// How long the sender keeps messages for an unreachable node.
const RETRY_FOR: Duration = Duration::from_secs(1);
/// The QUIC idle timeout of nodes: how long a silent peer takes to be
/// noticed (keep-alives go every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Child roles
// ---------------------------------------------------------------------------

/// Runs a child role; not a test of its own (it is run by the tests below).
#[test]
#[ignore = "helper run in a child process by the tests of this file"]
fn child_entry() {
    let Some((role, args)) = kid::role() else {
        return;
    };
    let code = match role.as_str() {
        "receiver" => role_receiver(&args),
        "sender" => role_sender(&args),
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args[i]
        .parse()
        .unwrap_or_else(|_| panic!("bad argument {i}: {}", args[i]))
}

/// What the parent tells a receiver.
struct Control {
    /// Take messages until this many were taken.
    limit: u64,
    /// Say `visible N` once a get could take at least this many.
    visible: Option<u64>,
}

/// `receiver HOME PORT NAME LIMIT`: publishes NAME, listens on
/// 127.0.0.1:PORT and says `ready ADDR` (or `bindfail`, and exits 3). Then
/// gets messages, saying `got SEQ REDELIVERED PID ND` for each (one write
/// per batch, after the get), until it has taken LIMIT; then says `paused N`
/// and takes no more until told `more K` on its stdin. Paused, it says
/// `visible N` once told `visible K` and a get could take K messages. Exits
/// when its stdin closes.
fn role_receiver(args: &[String]) -> i32 {
    let port: u16 = arg(args, 1);
    let name = &args[2];
    let ctl = Arc::new((
        Mutex::new(Control {
            limit: arg(args, 3),
            visible: None,
        }),
        Condvar::new(),
    ));
    let node = Node::new().unwrap();
    node.trust_home(&args[0]);
    let chan = node
        .create_channel(ChannelConfig::default().buffer_size(256).max_buffers(64))
        .unwrap();
    chan.publish(name).unwrap();
    match node.listen(&format!("127.0.0.1:{port}")) {
        Ok(addr) => println!("@@ ready {addr}"),
        Err(e) => {
            println!("@@ bindfail {e}");
            return 3;
        }
    }
    {
        let ctl = ctl.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let mut c = ctl.0.lock().unwrap();
                if let Some(k) = line.strip_prefix("more ") {
                    c.limit += k.trim().parse::<u64>().expect("more K");
                } else if let Some(k) = line.strip_prefix("visible ") {
                    c.visible = Some(k.trim().parse().expect("visible K"));
                }
                ctl.1.notify_all();
            }
            // The parent is gone.
            std::process::exit(0);
        });
    }
    let mut taken = 0u64;
    let mut out = String::new();
    loop {
        {
            let mut c = ctl.0.lock().unwrap();
            if taken >= c.limit {
                println!("@@ paused {taken}");
                while taken >= c.limit {
                    if let Some(k) = c.visible {
                        let n = chan.debug_visible();
                        if n >= k {
                            println!("@@ visible {n}");
                            c.visible = None;
                        }
                    }
                    // Messages arriving wake nobody here: look again soon.
                    c = ctl.1.wait_timeout(c, Duration::from_millis(5)).unwrap().0;
                }
            }
        }
        let batch = match chan.get_timeout(Duration::from_millis(200)) {
            Ok(b) => b,
            Err(GetError::TimedOut) => continue,
            Err(e) => panic!("get: {e}"),
        };
        out.clear();
        for m in &batch {
            let info = m.info();
            out.push_str(&format!(
                "@@ got {} {} {} {}\n",
                seq_of(m.data()),
                u8::from(info.redelivered),
                info.pid,
                info.nd
            ));
        }
        taken += batch.len() as u64;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes()).unwrap();
        stdout.flush().unwrap();
        drop(stdout);
        drop(batch);
    }
}

/// `sender HOME TARGET COUNT TRIGGER`: connects, says `attached`, puts COUNT
/// messages, flushes, waits for every callback and says `done OK BAD`; exits
/// 0 if all were `Ok` in put order.
fn role_sender(args: &[String]) -> i32 {
    let count: u64 = arg(args, 2);
    let trigger: u32 = arg(args, 3);
    let node = Node::new().unwrap();
    node.trust_home(&args[0]);
    let calls: Calls = Watched::new(Vec::new());
    let conn = node
        .connect(
            args[1].as_str(),
            recording(
                &calls,
                ConnectionAttr::default()
                    .max_buffers(256)
                    .trigger_count(trigger),
            ),
        )
        .unwrap();
    println!("@@ attached");
    for i in 0..count {
        conn.put(payload(i), i).unwrap();
    }
    conn.flush(Flush::WaitFor(WAIT)).unwrap();
    let all = calls.wait_for(WAIT, |v| v.len() as u64 >= count);
    let calls = calls.lock();
    let ok = calls
        .iter()
        .enumerate()
        .filter(|(i, (h, r, _))| *h == *i as u64 && r.is_ok())
        .count();
    println!("@@ done {ok} {}", calls.len() - ok);
    if all && ok as u64 == count { 0 } else { 3 }
}

// ---------------------------------------------------------------------------
// Helpers of the parent
// ---------------------------------------------------------------------------

/// A port that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `got` line: (sequence, redelivered, sender pid, sender nd).
type Got = (u64, bool, u32, u32);

fn parse_got(line: &str) -> Option<Got> {
    let rest = line.strip_prefix("got ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f[0].parse().ok()?,
        f[1] == "1",
        f[2].parse().ok()?,
        f[3].parse().ok()?,
    ))
}

/// A receiving child process and what it said it got.
struct Receiver {
    kid: Kid,
    got: Vec<Got>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:`port`; `None` if the port was taken.
    fn start(home: &TrustHome, port: u16, name: &str, limit: u64) -> Option<Receiver> {
        let kid = Kid::spawn(
            "receiver",
            &[
                home.arg(),
                port.to_string(),
                name.to_owned(),
                limit.to_string(),
            ],
        );
        let line = kid.next_line().expect("the receiver's first line");
        if line.starts_with("bindfail") {
            return None;
        }
        assert!(line.starts_with("ready "), "{line}");
        Some(Receiver {
            kid,
            got: Vec::new(),
        })
    }

    /// Starts one on a port chosen here (another if it was taken).
    fn start_anywhere(home: &TrustHome, name: &str, limit: u64) -> (Receiver, u16) {
        for _ in 0..10 {
            let port = free_port();
            if let Some(r) = Receiver::start(home, port, name, limit) {
                return (r, port);
            }
        }
        panic!("no free port for the receiver");
    }

    /// Starts one on `port`, which a killed receiver held a moment ago.
    fn restart(home: &TrustHome, port: u16, name: &str, limit: u64) -> Receiver {
        for _ in 0..20 {
            if let Some(r) = Receiver::start(home, port, name, limit) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("port {port} stays taken after the receiver's death");
    }

    /// Reads `got` lines until one starts with `word`; returns that one.
    fn until_said(&mut self, word: &str) -> String {
        loop {
            let line = self.kid.next_line().expect("the receiver exited");
            if line.starts_with(word) {
                return line;
            }
            self.got
                .push(parse_got(&line).unwrap_or_else(|| panic!("{line}")));
        }
    }

    /// Reads `got` lines until it says `paused`.
    fn until_paused(&mut self) {
        self.until_said("paused");
    }

    /// Reads `got` lines until `done` holds for them.
    fn until(&mut self, mut done: impl FnMut(&[Got]) -> bool) {
        while !done(&self.got) {
            let line = self.kid.next_line().expect("the receiver exited");
            if let Some(g) = parse_got(&line) {
                self.got.push(g);
            }
        }
    }

    /// Kills it with `kill -9`, then reads what it said before it died.
    fn kill9(&mut self) {
        self.kid.kill9();
        while let Some(line) = self.kid.next_line() {
            if let Some(g) = parse_got(&line) {
                self.got.push(g);
            }
        }
    }

    fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.got.iter().map(|g| g.0)
    }
}

/// Puts `n` messages on `conn` from a thread, then flushes.
fn stream(conn: asyncmsg::Connection, n: u64) -> std::thread::JoinHandle<asyncmsg::Connection> {
    std::thread::spawn(move || {
        for i in 0..n {
            conn.put(payload(i), i).unwrap();
        }
        conn.flush(Flush::WaitFor(Duration::from_secs(120)))
            .unwrap();
        conn
    })
}

/// Every message called back once, in put order, with `Ok`.
fn assert_all_ok(calls: &Calls, n: u64) {
    assert!(
        calls.wait_for(WAIT, |v| v.len() as u64 >= n),
        "{} of {n} callbacks",
        calls.lock().len()
    );
    let calls = calls.lock();
    assert_eq!(calls.len() as u64, n, "callbacks");
    for (i, (handle, result, _)) in calls.iter().enumerate() {
        assert_eq!(*handle, i as u64, "callback order");
        assert_eq!(*result, Ok(()), "callback of message {handle}");
    }
}

/// Each receiver got its messages in order, none twice, all from this
/// process on another node.
fn assert_in_order_from_here(receivers: &[&Receiver]) {
    for (k, r) in receivers.iter().enumerate() {
        for w in r.got.windows(2) {
            assert!(w[0].0 < w[1].0, "receiver {k}: {} then {}", w[0].0, w[1].0);
        }
        for &(seq, _, pid, nd) in &r.got {
            assert_eq!(
                pid,
                std::process::id(),
                "receiver {k}: pid of message {seq}"
            );
            assert_ne!(nd, 0, "receiver {k}: nd of message {seq}");
        }
    }
}

// ---------------------------------------------------------------------------
// B19, B09: a sender process
// ---------------------------------------------------------------------------

#[test]
fn b19_sender_process_puts_10000_in_order_over_quic() {
    const N: u64 = 10_000;
    let home = TrustHome::new();
    let rx = home.node();
    let chan = rx
        .create_channel(ChannelConfig::default().buffer_size(256).max_buffers(64))
        .unwrap();
    let name = unique("from-a-process");
    chan.publish(&name).unwrap();
    let addr = rx.listen("127.0.0.1:0").unwrap();
    let mut kid = Kid::spawn(
        "sender",
        &[
            home.arg(),
            format!("quic://{addr}/{name}"),
            N.to_string(),
            "64".into(),
        ],
    );
    assert_eq!(kid.next_line().as_deref(), Some("attached"));
    let mut next = 0u64;
    let mut coid = None;
    while next < N {
        let batch = chan
            .get_timeout(WAIT)
            .unwrap_or_else(|e| panic!("after {next} messages: {e}"));
        for m in &batch {
            let info = m.info();
            assert_eq!(seq_of(m.data()), next, "order");
            assert_eq!(info.seq, next, "MsgInfo::seq");
            assert_eq!(info.pid, kid.pid(), "MsgInfo::pid");
            assert_ne!(info.nd, 0, "MsgInfo::nd");
            assert_eq!(*coid.get_or_insert(info.coid), info.coid, "MsgInfo::coid");
            assert_eq!(info.chid, chan.chid());
            assert_eq!((info.msglen, info.srcmsglen), (PAYLOAD, PAYLOAD));
            assert!(!info.redelivered);
            next += 1;
        }
    }
    assert_eq!(kid.next_line(), Some(format!("done {N} 0")));
    assert_eq!(kid.exit_code(), 0);
    assert!(matches!(
        chan.get_timeout(Duration::from_millis(50)),
        Err(GetError::TimedOut)
    ));
}

// ---------------------------------------------------------------------------
// B20: the receiving process killed and started again
// ---------------------------------------------------------------------------

/// Sender (here) → relay → receiver process. The receiver takes 1 000
/// messages and stops taking; the relay drops everything; the receiver takes
/// 100 more (their acknowledgements are lost) and is killed with `kill -9`.
/// A new receiver starts on the same address and the relay lets traffic
/// through again. Every message is received at least once, each receiver in
/// order; those received twice are flagged `redelivered` in the second; every
/// callback is `Ok`.
#[test]
fn b20_receiver_killed_and_restarted_gets_everything_at_least_once() {
    const N: u64 = 3_000;
    let home = TrustHome::new();
    let name = unique("restarted");
    let (mut first, port) = Receiver::start_anywhere(&home, &name, 1_000);
    let relay = UdpRelay::start(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let tx = home.node();
    let calls: Calls = Watched::new(Vec::new());
    let conn = tx
        .connect(
            format!("quic://{}/{name}", relay.local_addr()),
            recording(
                &calls,
                ConnectionAttr::default()
                    .max_buffers(256)
                    .trigger_count(16)
                    .retry_for(Duration::from_secs(30)),
            ),
        )
        .unwrap();
    let putter = stream(conn, N);

    first.until_paused();
    // The sender has sent more than was taken (its window is 256): once
    // 100 of those are there to take, the relay drops everything.
    first.kid.tell("visible 100");
    first.until_said("visible");
    relay.set_blackhole(true);
    first.kid.tell("more 100");
    first.until_paused();
    first.kill9();
    let first_took = first.got.len();
    assert!(first_took >= 1_100, "{first_took}");
    let mut second = Receiver::restart(&home, port, &name, u64::MAX);
    relay.set_blackhole(false);

    let mut seen: Vec<bool> = vec![false; N as usize];
    for s in first.seqs() {
        seen[s as usize] = true;
    }
    let mut missing = seen.iter().filter(|s| !**s).count();
    second.until(|got| {
        if let Some(g) = got.last() {
            let s = &mut seen[g.0 as usize];
            if !*s {
                *s = true;
                missing -= 1;
            }
        }
        missing == 0
    });
    let conn = putter.join().unwrap();
    assert_all_ok(&calls, N);
    conn.detach();

    assert_in_order_from_here(&[&first, &second]);
    assert!(
        first.got.iter().all(|g| !g.1),
        "the first receiver saw a redelivery"
    );
    let in_first: std::collections::HashSet<u64> = first.seqs().collect();
    let mut twice = 0;
    for &(seq, redelivered, _, _) in &second.got {
        if in_first.contains(&seq) {
            twice += 1;
            assert!(
                redelivered,
                "message {seq} received twice, not flagged redelivered"
            );
        }
    }
    // The 100 taken while the relay dropped everything were not acknowledged:
    // the sender had to send them again.
    assert!(twice > 0, "nothing was received twice");
    eprintln!(
        "first receiver {first_took}, second {}, received twice {twice}, flagged {}",
        second.got.len(),
        second.got.iter().filter(|g| g.1).count()
    );
}

/// As above without the relay, the receiver killed wherever it happens to
/// be, three times. A receiver killed between a get and its report of it
/// loses that batch from the record (the node counted it delivered when the
/// get took it): at most one batch (64) right after its last report may be
/// missing from what the receivers said.
#[test]
#[ignore = "slow: three restarts, each noticed at the QUIC idle timeout"]
fn b20_receiver_killed_anywhere_three_times_loses_nothing_unreported() {
    const N: u64 = 20_000;
    const KILLS: usize = 3;
    let home = TrustHome::new();
    let name = unique("killed-anywhere");
    let (mut current, port) = Receiver::start_anywhere(&home, &name, u64::MAX);
    let tx = home.node();
    let calls: Calls = Watched::new(Vec::new());
    let conn = tx
        .connect(
            format!("quic://127.0.0.1:{port}/{name}"),
            recording(
                &calls,
                ConnectionAttr::default()
                    .max_buffers(256)
                    .trigger_count(16)
                    .retry_for(Duration::from_secs(60)),
            ),
        )
        .unwrap();
    let putter = stream(conn, N);
    let mut done = Vec::new();
    for k in 0..KILLS {
        let at = (k as u64 + 1) * N / (KILLS as u64 + 2);
        current.until(|got| got.last().is_some_and(|g| g.0 >= at));
        current.kill9();
        done.push(current);
        current = Receiver::restart(&home, port, &name, u64::MAX);
    }
    current.until(|got| got.last().is_some_and(|g| g.0 == N - 1));
    let conn = putter.join().unwrap();
    assert_all_ok(&calls, N);
    conn.detach();
    done.push(current);

    let all: Vec<&Receiver> = done.iter().collect();
    assert_in_order_from_here(&all);
    // Where each one received first, and whether it was flagged.
    let mut by_seq: BTreeMap<u64, Vec<(usize, bool)>> = BTreeMap::new();
    for (k, r) in done.iter().enumerate() {
        for &(seq, redelivered, _, _) in &r.got {
            by_seq.entry(seq).or_default().push((k, redelivered));
        }
    }
    for (seq, seen) in &by_seq {
        for &(k, redelivered) in &seen[1..] {
            assert!(
                redelivered,
                "message {seq} received again by receiver {k}, not flagged redelivered"
            );
        }
    }
    let allowed: Vec<std::ops::RangeInclusive<u64>> = done[..KILLS]
        .iter()
        .map(|r| {
            let last = r.got.last().map_or(0, |g| g.0 + 1);
            last..=last + 63
        })
        .collect();
    let missing: Vec<u64> = (0..N).filter(|s| !by_seq.contains_key(s)).collect();
    for s in &missing {
        assert!(
            allowed.iter().any(|r| r.contains(s)),
            "message {s} never received (gaps allowed after a kill: {allowed:?})"
        );
    }
    eprintln!(
        "received by each: {:?}; unreported after a kill: {}",
        done.iter().map(|r| r.got.len()).collect::<Vec<_>>(),
        missing.len()
    );
}

// ---------------------------------------------------------------------------
// B20: the receiving process killed for good
// ---------------------------------------------------------------------------

/// The sender (here, `retry_for` 1 s) sees the receiving process killed and
/// never started again: what it still holds is called back with `PeerLost`
/// once the loss is noticed (the QUIC idle timeout) and `retry_for` has run
/// out; puts in between succeed, later ones fail.
#[test]
fn b20_receiver_killed_for_good_fails_held_messages_with_peer_lost() {
    let home = TrustHome::new();
    let name = unique("killed-for-good");
    let (mut receiver, port) = Receiver::start_anywhere(&home, &name, 5);
    let tx = home.node();
    let calls: Calls = Watched::new(Vec::new());
    let conn = tx
        .connect(
            format!("quic://127.0.0.1:{port}/{name}"),
            recording(
                &calls,
                ConnectionAttr::default()
                    .max_buffers(32)
                    .trigger_count(1)
                    .retry_for(RETRY_FOR),
            ),
        )
        .unwrap();
    for i in 0..10 {
        conn.put(payload(i), i).unwrap();
    }
    receiver.until_paused();
    let took = receiver.got.len() as u64;
    assert!(
        calls.wait_for(WAIT, |v| v.len() as u64 == took),
        "callbacks of the taken"
    );
    let lost_at = Instant::now();
    receiver.kill9();
    for i in 10..15 {
        conn.put(payload(i), i).unwrap();
    }
    let within = IDLE_TIMEOUT + RETRY_FOR + Duration::from_secs(3);
    assert!(
        calls.wait_for(within + Duration::from_secs(5), |v| v.len() == 15),
        "{} of 15 callbacks {:?} after the kill",
        calls.lock().len(),
        lost_at.elapsed()
    );
    for (i, (handle, result, at)) in calls.lock().iter().enumerate() {
        assert_eq!(*handle, i as u64, "callback order");
        if (i as u64) < took {
            assert_eq!(*result, Ok(()), "message {i} was taken");
            continue;
        }
        assert_eq!(*result, Err(ErrorKind::PeerLost), "message {i}");
        let after = at.saturating_duration_since(lost_at);
        assert!(after >= RETRY_FOR, "message {i} given up after {after:?}");
        assert!(after <= within, "message {i} given up after {after:?}");
    }
    let t = Instant::now();
    assert_eq!(
        conn.put(payload(15), 15).unwrap_err().kind(),
        ErrorKind::PeerLost
    );
    assert_eq!(
        conn.flush(Flush::Wait).unwrap_err().kind(),
        ErrorKind::PeerLost
    );
    conn.detach();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
