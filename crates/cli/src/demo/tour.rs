//! A few messages from a few sender threads to one receiver, each shown with
//! its message info and its delivery callback.
//!
//! The receiver is in this process on every hop: over shared memory the
//! senders reach it at `shm://NAME`, through the shared segment, as another
//! process would; over QUIC they are a second node of this process, which
//! reaches this one at `quic://127.0.0.1:PORT/NAME` as a node on another
//! machine would, and the receiver sees them from node descriptor 1.

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use asyncmsg::{ChannelConfig, Connection, ConnectionAttr, Node};
use asyncmsg_quic::cert::Home;

use super::PATIENCE;
use crate::hop::{Hop, unique_name};

const SENDERS: u64 = 3;
const PER_SENDER: u64 = 2;

/// Runs the tour over `hop`.
pub fn run(node: &Node, hop: Hop) -> anyhow::Result<()> {
    let total = (SENDERS * PER_SENDER) as usize;
    println!(
        "\n{}: {SENDERS} sender threads put {PER_SENDER} messages each; one receiver gets them",
        hop.label()
    );
    let chan = node.create_channel(ChannelConfig::default().buffer_size(256).max_buffers(8))?;
    let name = unique_name(&format!("demo-tour-{}", hop.label()));
    let address = hop.expose(node, &chan, &name)?;
    let sending = hop.sending_node(node)?;
    if hop == Hop::Quic {
        let root = Home::from_env()
            .map(|h| format!("; both trust the root in {}", h.path().display()))
            .unwrap_or_default();
        println!("  the senders' node connects to {address} (TLS 1.3 over UDP{root})");
    }

    let (done_tx, done_rx) = mpsc::channel();
    // The connections come back from their threads and live until every
    // delivery callback ran: a connection is the sender's end of its messages.
    let _conns = thread::scope(|s| -> anyhow::Result<Vec<Connection>> {
        let mut senders = Vec::new();
        for sender in 1..=SENDERS {
            let done_tx = done_tx.clone();
            let conn = sending.connect(
                address.as_str(),
                ConnectionAttr::default()
                    .max_buffers(4)
                    .trigger_count(1)
                    .on_delivered(move |d| {
                        println!(
                            "  delivered  coid {} seq {} handle {}: {}, {} B buffer back",
                            d.coid,
                            d.seq,
                            d.handle,
                            match d.result {
                                Ok(()) => "ok".to_owned(),
                                Err(e) => format!("FAILED ({e})"),
                            },
                            d.buf.len()
                        );
                        let _ = done_tx.send(d.result);
                    }),
            )?;
            senders.push(s.spawn(move || -> anyhow::Result<Connection> {
                for i in 0..PER_SENDER {
                    let text = format!("hello #{i} from sender {sender}");
                    conn.put(text, sender * 100 + i)?;
                }
                // Wait until the receiver took them all.
                conn.flush(asyncmsg::Flush::WaitFor(PATIENCE))?;
                Ok(conn)
            }));
        }

        let mut got = 0;
        let deadline = Instant::now() + PATIENCE;
        while got < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = chan
                .get_timeout(left)
                .with_context(|| format!("received {got} of {total} messages"))?;
            for msg in &batch {
                let i = msg.info();
                println!(
                    "  received   coid {} seq {} nd {} pid {} chid {} {} B: {:?}",
                    i.coid,
                    i.seq,
                    i.nd,
                    i.pid,
                    i.chid,
                    i.msglen,
                    msg.text()
                );
            }
            got += batch.len();
        } // each batch is dropped here: its messages go back to their senders
        let mut conns = Vec::new();
        for s in senders {
            match s.join() {
                Ok(r) => conns.push(r?),
                Err(_) => bail!("a sender thread panicked"),
            }
        }
        Ok(conns)
    })?;

    for n in 0..total {
        let result = done_rx
            .recv_timeout(PATIENCE)
            .with_context(|| format!("only {n} of {total} delivery callbacks ran"))?;
        ensure!(result.is_ok(), "a message was not delivered: {result:?}");
    }
    println!("  {total} messages received, {total} delivery callbacks ok");
    Ok(())
}
