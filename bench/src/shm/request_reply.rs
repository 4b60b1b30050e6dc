//! Request/reply round trips between two processes, the server in the child:
//! asyncmsg's synchronous channels (the parent opens `shm://NAME` and `send`s
//! 64 B, the child `receive`s and `reply`s with 64 B), beside a Unix stream
//! socket pair carrying the same sizes (the parent writes 64 B and blocks
//! reading the answer, the child blocks reading the request and writes 64 B
//! back).
//!
//! Both servers check that request `i` carries index `i` and answer with the
//! index inverted, which the client checks, so an echo of the request does not
//! pass for a reply.

use std::os::fd::AsFd;

use anyhow::{Context, Result, anyhow, bail, ensure};
use asyncmsg::{Node, Received, RequestKind, SendError};

use super::asyncmsg::{address, unique_name};
use super::peers::{index_of, serve_uds, stamp, uds_round_trips};
use super::process::{ChildEnv, ChildProc, Control, Launcher, Step};
use super::{RECEIVER_CPU, Run, SENDER_CPU, SMALL, latency_loop, warmup_for};
use crate::{GET_STALL, pin};

/// The server's answer to request `i`: `i` inverted in the first 8 bytes.
fn answer_to(reply: &mut [u8], i: u64) {
    stamp(reply, !i);
}

/// Checks that `reply` is the answer to request `i`.
fn check_answer(reply: &[u8], i: u64) -> Result<()> {
    ensure!(
        reply.len() == SMALL,
        "reply {i}: {} bytes, expected {SMALL}",
        reply.len()
    );
    let got = !index_of(reply);
    ensure!(got == i, "the reply answers request {got}, expected {i}");
    Ok(())
}

/// Checks that `request` is request `i`.
fn check_request(request: &[u8], i: u64) -> Result<()> {
    ensure!(
        request.len() == SMALL,
        "request {i}: {} bytes, expected {SMALL}",
        request.len()
    );
    let got = index_of(request);
    ensure!(got == i, "received request {got}, expected {i}");
    Ok(())
}

/// `n` timed round trips (after a warm-up) of a 64 B `send` on a synchronous
/// connection to the child's channel, opened by name, each answered by a 64 B
/// `reply`.
pub(crate) fn asyncmsg_sync(launcher: &Launcher, n: u64) -> Result<Run> {
    let warmup = warmup_for(n);
    let node = Node::new().context("starting a node")?;
    let name = unique_name("sync");
    let (mut control, their_control) = Control::pair()?;
    let mut child = ChildProc::spawn(
        launcher,
        "asyncmsg-sync-server",
        &[name.clone(), (warmup + n).to_string()],
        &[their_control.as_fd()],
    )?;
    drop(their_control);
    control.expect_from(Step::Ready, &mut child)?;
    // QNX name_open: returns once the child accepted the connect request. Done
    // before pinning, so that the process's reactor thread, if this starts
    // it, is not confined to the client's CPU.
    let conn = node
        .open(address(&name).as_str())
        .map_err(|e| anyhow!("opening {}: {e}", address(&name)).context(child.failure()))?;
    let _pinned = pin(SENDER_CPU);
    let mut request = [0u8; SMALL];
    let run = latency_loop(warmup, n, |i| {
        stamp(&mut request, i);
        let reply = match conn.send_timeout(&request, GET_STALL) {
            Ok(reply) => reply,
            Err(SendError::TimedOut) => {
                bail!("request {i}: no reply within {GET_STALL:?}")
            }
            Err(e) => bail!("request {i}: {e}"),
        };
        ensure!(
            reply.status == 0,
            "request {i}: reply status {}",
            reply.status
        );
        check_answer(&reply.data, i)
    });
    let run = run.map_err(|e| e.context(child.failure()))?;
    control.send(Step::Bye)?;
    child.finish()?;
    drop(conn);
    drop(node);
    Ok(run)
}

pub(crate) fn child_asyncmsg_sync(mut env: ChildEnv) -> Result<()> {
    let name = env.arg(0)?.to_owned();
    let total = env.num(1)?;
    let mut control = Control::from_fd(env.fd(0)?);

    let node = Node::new().context("starting a node")?;
    let server = node
        .create_sync_channel(0o600)
        .context("creating the synchronous channel")?;
    server.publish(&name).context("publishing the channel")?;
    let _pinned = pin(RECEIVER_CPU);
    let mut reply = [0u8; SMALL];
    control.send(Step::Ready)?;
    // A parent that fails stops sending; it then kills this process.
    let mut answered = 0u64;
    while answered < total {
        let received = server
            .receive()
            .map_err(|e| anyhow!("receive after {answered} requests: {e}"))?;
        let req = match received {
            Received::Request(req) => req,
            Received::Pulse(p) => bail!("a pulse after {answered} requests: {p:?}"),
        };
        match req.kind() {
            RequestKind::Connect => server
                .reply(req.rcvid(), 0, &[])
                .map_err(|e| anyhow!("accepting the connect request: {e}"))?,
            RequestKind::Message => {
                check_request(req.data(), answered)?;
                answer_to(&mut reply, answered);
                server
                    .reply(req.rcvid(), 0, &reply)
                    .map_err(|e| anyhow!("reply {answered}: {e}"))?;
                answered += 1;
            }
        }
    }
    control.expect(Step::Bye)?;
    drop(server);
    drop(node);
    Ok(())
}

/// `n` timed round trips (after a warm-up) of a 64 B request written to a Unix
/// stream socket pair and a 64 B answer read back, both sides blocking in
/// `read`.
pub(crate) fn uds(launcher: &Launcher, n: u64) -> Result<Run> {
    uds_round_trips(launcher, n, "uds-reply", |reply, i| check_answer(reply, i))
}

pub(crate) fn child_uds(env: ChildEnv) -> Result<()> {
    serve_uds(env, |msg, i| {
        check_request(msg, i)?;
        answer_to(msg, i);
        Ok(())
    })
}
