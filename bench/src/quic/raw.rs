//! Raw quinn on loopback with asyncmsg's TLS and transport settings
//! (`asyncmsg_quic::endpoint::QuicEndpoint`): one bidirectional stream of
//! length-prefixed frames, the client writing, the server reading and
//! checking.
//!
//! Each end has a tokio runtime of its own with two worker threads, as an
//! asyncmsg node has. Before the timed part the client announces the frame
//! count on the stream and waits for the server's go (so that the stream is
//! open at both ends); after it the server answers once it has read every
//! frame, and the client closes the connection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use asyncmsg_quic::cert::Home;
use asyncmsg_quic::endpoint::QuicEndpoint;
use quinn::VarInt;
use tokio::runtime::Runtime;

use crate::shm::Run;
use crate::shm::peers::{index_of, stamp};

/// Bytes of a frame's length prefix (little-endian `u32`).
pub(crate) const PREFIX: usize = 4;

/// The longest any run may take before it is declared hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// How long the server waits for the client to close after the last frame.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// What the server answers the client's announcement with.
const GO: u8 = b'g';

/// A multi-thread runtime with two workers, as an asyncmsg node's.
///
/// The flavour matters for the one-write-per-frame cell: with a
/// single-threaded runtime per end (or one worker) the writer fills the send
/// buffer with thousands of small pieces before the connection task runs, and
/// the cell moves about 5x fewer frames per second; with two workers the
/// connection task sends while the writer writes. The batched and 1 MiB cells
/// change little.
fn runtime(name: &str) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} runtime"))
}

/// Runs `end` on a thread of its own, in a runtime of its own, bounded by
/// [`RUN_LIMIT`].
fn spawn_end<F>(
    name: &'static str,
    end: impl FnOnce() -> F + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<Instant>>>
where
    F: std::future::Future<Output = Result<Instant>>,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = runtime(name)?;
            let out = rt.block_on(async move {
                tokio::time::timeout(RUN_LIMIT, end())
                    .await
                    .map_err(|_| anyhow!("timed out"))?
            });
            rt.shutdown_timeout(Duration::from_secs(1));
            out
        })
        .with_context(|| format!("spawning the {name} thread"))
}

fn join(name: &str, end: std::thread::JoinHandle<Result<Instant>>) -> Result<Instant> {
    end.join()
        .map_err(|_| anyhow!("the {name} panicked"))?
        .with_context(|| name.to_owned())
}

/// `n` frames of `payload` bytes on one stream, `per_write` frames per
/// `write_all`.
pub(crate) fn throughput(home: &Path, n: u64, payload: usize, per_write: usize) -> Result<Run> {
    ensure!(payload >= 8, "a frame carries its 8-byte index");
    ensure!(per_write >= 1, "at least one frame per write");
    let home = Home::at(home.to_path_buf());
    let server_identity = home.issue_identity().context("a server identity")?;
    let client_identity = home.issue_identity().context("a client identity")?;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let server_home = home.clone();
    // Either end failing drops its connection, which ends the other.
    let server = spawn_end("bench-quinn-server", move || async move {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        let server = QuicEndpoint::bind(loopback, &server_identity, &server_home)
            .context("binding the server")?;
        let _ = addr_tx.send(server.local_addr().context("the server's address")?);
        serve(&server, n, payload).await
    })?;
    let client = spawn_end("bench-quinn-client", move || async move {
        let addr = addr_rx
            .await
            .map_err(|_| anyhow!("the server did not start"))?;
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        let client =
            QuicEndpoint::bind(loopback, &client_identity, &home).context("binding the client")?;
        send(&client, addr, n, payload, per_write).await
    })?;
    let began = join("client", client);
    let ended = join("server", server);
    let (began, ended) = (began?, ended?);
    Ok(Run::throughput(
        n,
        payload,
        ended.saturating_duration_since(began),
    ))
}

/// The client: connects, announces `n`, waits for the go, writes the frames
/// (timed from the first write), waits for the server's answer, closes.
/// Returns when the first write began.
async fn send(
    client: &QuicEndpoint,
    addr: SocketAddr,
    n: u64,
    payload: usize,
    per_write: usize,
) -> Result<Instant> {
    let conn = client.connect(addr).await.context("connecting")?;
    let (mut tx, mut rx) = conn.open_bi().await.context("opening the stream")?;
    tx.write_all(&n.to_le_bytes())
        .await
        .context("announcing the count")?;
    let mut go = [0u8; 1];
    rx.read_exact(&mut go).await.context("waiting for the go")?;
    ensure!(go[0] == GO, "the server answered {go:?}");

    let frame = PREFIX + payload;
    let mut buf = vec![0u8; frame * per_write];
    let len = u32::try_from(payload).context("a frame's length fits in 32 bits")?;
    for f in buf.chunks_exact_mut(frame) {
        f[..PREFIX].copy_from_slice(&len.to_le_bytes());
    }
    let began = Instant::now();
    let mut i = 0u64;
    while i < n {
        let count = (n - i).min(per_write as u64) as usize;
        for (k, f) in buf.chunks_exact_mut(frame).take(count).enumerate() {
            stamp(&mut f[PREFIX..], i + k as u64);
        }
        tx.write_all(&buf[..count * frame])
            .await
            .with_context(|| format!("writing frame {i}"))?;
        i += count as u64;
    }
    let answer = rx
        .read_to_end(8)
        .await
        .context("waiting for the server's count")?;
    ensure!(
        answer == n.to_le_bytes(),
        "the server answered {answer:?} for {n} frames"
    );
    conn.close(VarInt::from_u32(0), b"done");
    // Until the close went out: the server waits for it.
    let _ = tokio::time::timeout(CLOSE_LIMIT, client.wait_idle()).await;
    Ok(began)
}

/// The server: accepts one connection and its stream, reads the count,
/// answers the go, reads and checks `n` frames, answers the count. Returns
/// when it read the last frame.
async fn serve(server: &QuicEndpoint, n: u64, payload: usize) -> Result<Instant> {
    let incoming = server
        .accept()
        .await
        .context("the endpoint closed before a connection came")?;
    let conn = incoming.await.context("accepting the connection")?;
    let (mut tx, mut rx) = conn.accept_bi().await.context("accepting the stream")?;
    let mut count = [0u8; 8];
    rx.read_exact(&mut count)
        .await
        .context("reading the count")?;
    ensure!(
        u64::from_le_bytes(count) == n,
        "the client announced {} frames, expected {n}",
        u64::from_le_bytes(count)
    );
    tx.write_all(&[GO]).await.context("answering the go")?;

    let mut frames = FrameReader::new(payload);
    while frames.count() < n {
        let chunk = rx
            .read_chunk(usize::MAX, true)
            .await
            .with_context(|| format!("reading after {} frames", frames.count()))?
            .with_context(|| format!("the stream ended after {} frames", frames.count()))?;
        frames.feed(&chunk.bytes)?;
    }
    let ended = Instant::now();
    ensure!(
        frames.count() == n && frames.at_boundary(),
        "{} frames and more bytes for {n} frames",
        frames.count()
    );
    tx.write_all(&n.to_le_bytes())
        .await
        .context("answering the count")?;
    tx.finish().context("finishing the stream")?;
    // The client closes once it has the answer; until then the connection
    // must live, or the answer may be lost.
    let _ = tokio::time::timeout(CLOSE_LIMIT, conn.closed()).await;
    Ok(ended)
}

/// Parses a stream of frames (a little-endian `u32` length, then that many
/// bytes whose first 8 are the frame's index) fed in arbitrary pieces,
/// checking every length and that the indices run 0, 1, 2, ... It looks at
/// the prefix and the index only; the rest of a payload is skipped.
#[derive(Debug)]
pub(crate) struct FrameReader {
    payload: usize,
    /// The bytes of the current frame's prefix and index read so far.
    head: [u8; PREFIX + 8],
    have: usize,
    /// Bytes of the current payload still to skip once the head is read.
    skip: usize,
    count: u64,
}

impl FrameReader {
    pub(crate) fn new(payload: usize) -> FrameReader {
        FrameReader {
            payload,
            head: [0; PREFIX + 8],
            have: 0,
            skip: 0,
            count: 0,
        }
    }

    /// Frames read whole.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Whether no frame is partly read.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
                if self.skip == 0 {
                    self.count += 1;
                }
                continue;
            }
            let k = (self.head.len() - self.have).min(data.len());
            self.head[self.have..self.have + k].copy_from_slice(&data[..k]);
            self.have += k;
            data = &data[k..];
            if self.have < self.head.len() {
                break;
            }
            let len = u32::from_le_bytes(self.head[..PREFIX].try_into().expect("4 bytes"));
            ensure!(
                len as usize == self.payload,
                "frame {}: {len} bytes, expected {}",
                self.count,
                self.payload
            );
            let index = index_of(&self.head[PREFIX..]);
            ensure!(
                index == self.count,
                "received frame {index}, expected {}",
                self.count
            );
            self.have = 0;
            self.skip = self.payload - 8;
            if self.skip == 0 {
                self.count += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payload: usize, n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(&(payload as u32).to_le_bytes());
            let mut p = vec![0xa5u8; payload];
            stamp(&mut p, i);
            out.extend_from_slice(&p);
        }
        out
    }

    #[test]
    fn frames_are_counted_however_the_stream_is_cut() {
        for payload in [8, 9, 64, 1000] {
            let bytes = frames(payload, 5);
            for piece in [1, 3, 4, 11, 12, 13, 64, 68, 1000, bytes.len()] {
                let mut r = FrameReader::new(payload);
                for p in bytes.chunks(piece) {
                    r.feed(p).unwrap();
                }
                assert_eq!(r.count(), 5, "payload {payload}, pieces of {piece}");
                assert!(r.at_boundary());
            }
        }
    }

    #[test]
    fn wrong_lengths_and_order_are_refused() {
        let mut r = FrameReader::new(64);
        assert!(r.feed(&frames(32, 1)).is_err());
        let mut bytes = frames(64, 3);
        bytes.drain(68..136); // frame 1 missing
        let mut r = FrameReader::new(64);
        let err = r.feed(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("received frame 2, expected 1"),
            "{err}"
        );
        let mut r = FrameReader::new(64);
        r.feed(&frames(64, 2)[..100]).unwrap();
        assert_eq!(r.count(), 1);
        assert!(!r.at_boundary());
    }
}
