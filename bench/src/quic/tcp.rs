//! TCP on loopback, the kernel's stream without TLS: one connection between
//! two threads of this process, std blocking sockets with `TCP_NODELAY`.
//!
//! The threads are not pinned, as the QUIC cells' are not: on the 2-vCPU
//! machine this was measured on, pinning the writer and the reader to
//! different CPUs cut TCP's figures by 1.5-3x (the kernel does the
//! loopback receive work in the writer's context, and the scheduler keeps
//! the copies cache-warm when it may move the threads), so pinning would
//! flatter whatever is compared with it.
//!
//! The writer sends frames of a little-endian `u32` length and the payload
//! (its index in its first 8 bytes), `per_write` frames per `write_all` (so
//! 64 B frames 64 per write or one per write, and 1 MiB frames one per
//! write); the reader reads up to [`READ`] bytes per call (64 KiB read
//! faster than 256 KiB or 1 MiB here, even for 1 MiB frames) and checks
//! every frame's length and index, in order, with raw quinn's frame parser.
//! Timed from the writer's first write until the reader has the last frame;
//! then the writer shuts its side down and the reader must see the end of
//! the stream, not one byte more (checked, not timed).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use super::raw::{FrameReader, PREFIX};
use crate::shm::Run;
use crate::shm::peers::stamp;

/// Bytes the reader asks for per `read`.
const READ: usize = 64 * 1024;

/// The longest one read or one write may block before the run is declared
/// hung (the other side failed or stopped).
const IO_LIMIT: Duration = Duration::from_secs(10);

/// Frames of `payload` bytes, `per_write` in one buffer, each with its length
/// prefix written (the indices are stamped before each write).
fn frame_buffer(payload: usize, per_write: usize) -> Result<Vec<u8>> {
    let len = u32::try_from(payload).context("a frame's length fits in 32 bits")?;
    let mut buf = vec![0u8; (PREFIX + payload) * per_write];
    for f in buf.chunks_exact_mut(PREFIX + payload) {
        f[..PREFIX].copy_from_slice(&len.to_le_bytes());
    }
    Ok(buf)
}

/// A connected pair of loopback sockets: (writer, reader).
fn pair() -> Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding on loopback")?;
    let addr = listener.local_addr().context("the listener's address")?;
    let tx = TcpStream::connect_timeout(&addr, IO_LIMIT).context("connecting")?;
    // The handshake is complete: the connection waits in the listener's
    // queue, so this accept returns at once.
    let (rx, peer) = listener.accept().context("accepting")?;
    ensure!(
        peer == tx.local_addr().context("the writer's address")?,
        "accepted a connection from {peer}, not from the writer"
    );
    for s in [&tx, &rx] {
        s.set_nodelay(true).context("setting TCP_NODELAY")?;
    }
    rx.set_read_timeout(Some(IO_LIMIT))
        .context("setting the read timeout")?;
    tx.set_write_timeout(Some(IO_LIMIT))
        .context("setting the write timeout")?;
    Ok((tx, rx))
}

/// The reader: waits at `start`, then reads and checks `n` frames; returns
/// when it had the last one.
fn receive(mut rx: TcpStream, n: u64, payload: usize, start: &Barrier) -> Result<Instant> {
    let mut buf = vec![0u8; READ];
    let mut frames = FrameReader::new(payload);
    start.wait();
    while frames.count() < n {
        let got = match rx.read(&mut buf) {
            Ok(0) => bail!("end of stream after {} of {n} frames", frames.count()),
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("read after {} frames", frames.count()));
            }
        };
        frames.feed(&buf[..got])?;
    }
    let ended = Instant::now();
    ensure!(frames.at_boundary(), "{n} frames and part of another");
    let extra = rx
        .read(&mut buf)
        .context("reading to the end of the stream")?;
    ensure!(extra == 0, "{extra} bytes beyond the last frame");
    Ok(ended)
}

/// `n` frames of `payload` bytes over one loopback TCP connection,
/// `per_write` frames per `write_all`.
pub(crate) fn throughput(n: u64, payload: usize, per_write: usize) -> Result<Run> {
    ensure!(payload >= 8, "a frame carries its 8-byte index");
    ensure!(per_write >= 1, "at least one frame per write");
    let (mut tx, rx) = pair()?;
    let mut buf = frame_buffer(payload, per_write)?;
    let frame = PREFIX + payload;

    let start = Arc::new(Barrier::new(2));
    let receiver = {
        let start = start.clone();
        thread::Builder::new()
            .name("bench-tcp-reader".into())
            .spawn(move || receive(rx, n, payload, &start))
            .context("spawning the reader")?
    };

    start.wait();
    let began = Instant::now();
    let sent = (|| -> Result<()> {
        let mut i = 0u64;
        while i < n {
            let count = (n - i).min(per_write as u64) as usize;
            for (k, f) in buf.chunks_exact_mut(frame).take(count).enumerate() {
                stamp(&mut f[PREFIX..], i + k as u64);
            }
            tx.write_all(&buf[..count * frame])
                .with_context(|| format!("writing frame {i}"))?;
            i += count as u64;
        }
        tx.shutdown(Shutdown::Write)
            .context("shutting the writing side down")
    })();
    // A failed writer closes its side, which ends the reader.
    drop(tx);
    // A failed reader closes its side, which fails the writes; its own error
    // says more, so it comes first.
    let ended = receiver
        .join()
        .map_err(|_| anyhow!("the reader panicked"))?
        .context("reading")?;
    sent?;
    Ok(Run::throughput(
        n,
        payload,
        ended.saturating_duration_since(began),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_arrives_in_order() {
        for (n, payload, per_write) in [
            (0, 64, 64),
            (1, 64, 64),
            (130, 64, 64),
            (1_000, 64, 1),
            (3, 1 << 20, 1),
            (5, 8, 3),
        ] {
            let run = throughput(n, payload, per_write)
                .unwrap_or_else(|e| panic!("{n} x {payload} B, {per_write} per write: {e:#}"));
            assert_eq!(run.messages, n);
            assert_eq!(run.bytes, n * payload as u64);
        }
    }
}
