//! Shared test helpers: temporary homes, endpoint options with short
//! timeouts, length-prefixed frames, an echoing server.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use asyncmsg_quic::cert::{Fingerprint, Home, Identity, InitOutcome};
use asyncmsg_quic::endpoint::{EndpointOptions, QuicEndpoint, QuicError, peer_fingerprint};
use tokio::sync::mpsc;

/// Messages per frame.
pub const MESSAGES: usize = 64;

/// The most any single step of a test may take before it counts as hung.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {STEP:?}"),
    }
}

/// A fresh home with its trust root, in a temporary directory.
pub fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = Home::at(dir.path().join("home"));
    assert_eq!(home.init().expect("init"), InitOutcome::Created);
    (dir, home)
}

/// Options with timeouts short enough for tests.
pub fn options() -> EndpointOptions {
    let mut o = EndpointOptions::default();
    o.transport.idle_timeout = Duration::from_secs(3);
    o.transport.keep_alive = Some(Duration::from_millis(200));
    o.connect_timeout = Duration::from_secs(5);
    o
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An endpoint on 127.0.0.1 (any port) with `identity`, trusting `home`.
pub fn endpoint(identity: &Identity, home: &Home) -> Arc<QuicEndpoint> {
    Arc::new(QuicEndpoint::bind_with(localhost(), identity, home, &options()).expect("bind"))
}

/// One frame: a u32 byte count, a u32 message count, then [`MESSAGES`]
/// messages, each a u32 length and that many bytes (`tag`, the index, ...).
pub fn frame(tag: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(MESSAGES as u32).to_le_bytes());
    for i in 0..MESSAGES {
        let msg: Vec<u8> = (0..(i * 7 % 50 + 1))
            .map(|j| tag ^ (i as u8).wrapping_add(j as u8))
            .collect();
        body.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        body.extend_from_slice(&msg);
    }
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Reads one frame from `recv` and returns its messages.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Vec<Vec<u8>> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.expect("frame length");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    recv.read_exact(&mut body).await.expect("frame body");
    parse_body(&body)
}

fn parse_body(body: &[u8]) -> Vec<Vec<u8>> {
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
    let count = u32_at(0);
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let n = u32_at(at);
        out.push(body[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    assert_eq!(at, body.len(), "trailing bytes in frame");
    out
}

/// The messages [`frame`]`(tag)` holds.
pub fn messages(tag: u8) -> Vec<Vec<u8>> {
    parse_body(&frame(tag)[4..])
}

/// What a serving endpoint saw of one connection attempt.
#[derive(Debug)]
pub enum Seen {
    /// A connection from the peer with this fingerprint.
    Admitted(Fingerprint),
    /// A refused attempt.
    Failed(QuicError),
}

/// Serves `ep`: every admitted connection's bidirectional streams each get
/// frames answered with `frame(tag ^ 0xff)` for a `frame(tag)` received (the
/// tag is the first message's first byte), until the client finishes the
/// stream. Each attempt's outcome is reported on the returned channel.
pub fn serve(ep: Arc<QuicEndpoint>) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Seen::Failed(e));
                        return;
                    }
                };
                let _ = tx.send(Seen::Admitted(
                    peer_fingerprint(&conn).expect("peer certificate"),
                ));
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        loop {
                            let mut len = [0u8; 4];
                            if recv.read_exact(&mut len).await.is_err() {
                                break;
                            }
                            let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                            if recv.read_exact(&mut body).await.is_err() {
                                break;
                            }
                            let msgs = parse_body(&body);
                            assert_eq!(msgs.len(), MESSAGES);
                            let tag = msgs[0][0];
                            assert_eq!(msgs, messages(tag), "server got a damaged frame");
                            if send.write_all(&frame(tag ^ 0xff)).await.is_err() {
                                break;
                            }
                        }
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    rx
}

/// Sends `frame(tag)` on a new stream of `conn` and checks the answer.
pub async fn round_trip(conn: &quinn::Connection, tag: u8) {
    let (mut send, mut recv) = within("open_bi", conn.open_bi()).await.expect("open_bi");
    within("write", send.write_all(&frame(tag)))
        .await
        .expect("write");
    let got = within("answer", read_frame(&mut recv)).await;
    assert_eq!(got, messages(tag ^ 0xff));
    send.finish().expect("finish");
}
