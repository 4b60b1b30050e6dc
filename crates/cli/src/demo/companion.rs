//! The synchronous companion in the demo: one `receive()` loop serves a
//! client's requests and the asyncmsg channel's pulses, as QNX's Example 6
//! server does; the client reaches it over shared memory (`shm://`).

use std::time::Instant;

use anyhow::{Context, bail};
use asyncmsg::sync::PULSE_CODE_DISCONNECT;
use asyncmsg::{
    ChannelConfig, ChannelEvent, ChannelId, ConnectionAttr, Flush, Node, Received, RequestKind,
};

use super::PATIENCE;

/// The pulse code of the asyncmsg channel's event.
const READY: i8 = 1;

/// Runs the companion tour.
pub fn run(node: &Node) -> anyhow::Result<()> {
    let server = node.create_sync_channel(0o600)?;
    let name = format!("asyncmsg-demo-sync-{}", std::process::id());
    server.publish(&name)?;
    let chan = node.create_channel(
        ChannelConfig::default()
            .nonblocking(true)
            .event(ChannelEvent::pulse(&server, READY, 0)),
    )?;
    println!(
        "\nsync: one receive loop serves a client's requests and the asyncmsg channel's pulses (client over shm://{name})"
    );
    let target = format!("shm://{name}");
    let client = std::thread::spawn(move || -> anyhow::Result<()> {
        let client_node = Node::new()?;
        let coid = client_node.open_timeout(target.as_str(), PATIENCE)?; // name_open
        let reply = coid.send_timeout(b"chid?", PATIENCE)?; // MsgSend
        let chid = i32::from_le_bytes(
            reply
                .data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .context("a 4-byte chid in the reply")?,
        );
        let conn = client_node.connect(
            ChannelId {
                nd: 0,
                pid: coid.server_pid(),
                chid,
            },
            ConnectionAttr::default(),
        )?;
        conn.put("hello through the companion", 1)?;
        conn.flush(Flush::WaitFor(PATIENCE))?;
        coid.send_timeout(b"bye", PATIENCE)?;
        Ok(()) // dropping `coid` is name_close: the server gets a disconnect pulse
    });
    let deadline = Instant::now() + 2 * PATIENCE;
    let mut messages = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = server
            .receive_timeout(left)
            .context("the companion's client went quiet")?;
        match got {
            Received::Request(req) if req.kind() == RequestKind::Connect => {
                server.reply(req.rcvid(), 0, &[])?;
                println!("  connect request from pid {}: accepted", req.pid());
            }
            Received::Request(req) if req.data() == b"chid?" => {
                server.reply(req.rcvid(), 0, &chan.chid().to_le_bytes())?;
                println!(
                    "  request \"chid?\" from pid {}: replied chid {}",
                    req.pid(),
                    chan.chid()
                );
            }
            Received::Request(req) => {
                server.reply(req.rcvid(), 0, req.data())?;
                println!(
                    "  request {:?} from pid {}: echoed",
                    String::from_utf8_lossy(req.data()),
                    req.pid()
                );
            }
            Received::Pulse(p) if p.code == READY => {
                while let Ok(batch) = chan.try_get() {
                    for m in batch {
                        messages += 1;
                        println!(
                            "  pulse from chid {}: got {:?} from pid {}",
                            p.scoid,
                            m.text(),
                            m.info().pid
                        );
                    }
                }
            }
            Received::Pulse(p) if p.code == PULSE_CODE_DISCONNECT => {
                println!("  disconnect pulse: the client left (scoid {})", p.scoid);
                break;
            }
            Received::Pulse(p) => println!("  pulse code {} value {}", p.code, p.value),
        }
    }
    match client.join() {
        Ok(r) => r?,
        Err(_) => bail!("the companion's client panicked"),
    }
    if messages != 1 {
        bail!("the companion's asyncmsg channel got {messages} messages, not 1");
    }
    Ok(())
}
