//! The fault-injection relay: forwarding, a partition that heals, a server
//! killed and restarted elsewhere.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmsg_quic::endpoint::{QuicEndpoint, QuicError};
use asyncmsg_quic::relay::UdpRelay;
use common::{endpoint, frame, messages, read_frame, round_trip, serve, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_forwards_a_quic_connection() {
    let (_dir, home) = common::home();
    let server = endpoint(&home.issue_identity().unwrap(), &home);
    let _seen = serve(server.clone());
    let relay = UdpRelay::start(server.local_addr().unwrap()).unwrap();
    assert_eq!(relay.target(), server.local_addr().unwrap());
    let client = endpoint(&home.issue_identity().unwrap(), &home);
    let conn = within("connect", client.connect(relay.local_addr()))
        .await
        .unwrap();
    round_trip(&conn, 5).await;
    let stats = relay.stats();
    assert!(stats.to_target > 0 && stats.to_client > 0, "{stats:?}");
    assert_eq!(stats.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_stalls_a_stream_which_then_resumes_intact() {
    let (_dir, home) = common::home();
    let server = endpoint(&home.issue_identity().unwrap(), &home);
    let _seen = serve(server.clone());
    let relay = UdpRelay::start(server.local_addr().unwrap()).unwrap();
    let client = endpoint(&home.issue_identity().unwrap(), &home);
    let conn = within("connect", client.connect(relay.local_addr()))
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(1)).await.unwrap();
    assert_eq!(
        within("answer", read_frame(&mut recv)).await,
        messages(1 ^ 0xff)
    );

    relay.set_blackhole(true);
    send.write_all(&frame(2)).await.unwrap();
    // Nothing gets through while the blackhole is on ...
    assert!(relay.wait_for(Duration::from_secs(5), |s| s.dropped > 0));
    let stalled = tokio::time::timeout(Duration::from_millis(300), read_frame(&mut recv)).await;
    assert!(stalled.is_err(), "an answer came through the blackhole");
    // ... and everything does once it is off, in order and intact (the
    // stalled read was dropped before taking any byte).
    relay.set_blackhole(false);
    let healed = Instant::now();
    assert_eq!(
        within("answer", read_frame(&mut recv)).await,
        messages(2 ^ 0xff)
    );
    assert!(healed.elapsed() < Duration::from_secs(3));
    send.write_all(&frame(3)).await.unwrap();
    assert_eq!(
        within("answer", read_frame(&mut recv)).await,
        messages(3 ^ 0xff)
    );
    send.finish().unwrap();
    assert!(conn.close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_elsewhere() {
    let (_dir, home) = common::home();
    let first = endpoint(&home.issue_identity().unwrap(), &home);
    let _seen = serve(first.clone());
    let relay = UdpRelay::start(first.local_addr().unwrap()).unwrap();
    let mut o = common::options();
    o.transport.idle_timeout = Duration::from_secs(1);
    let client = Arc::new(
        QuicEndpoint::bind_with(
            common::localhost(),
            &home.issue_identity().unwrap(),
            &home,
            &o,
        )
        .unwrap(),
    );
    let conn = within("connect", client.connect(relay.local_addr()))
        .await
        .unwrap();
    round_trip(&conn, 1).await;

    // The first server dies without its goodbye reaching the client.
    relay.set_blackhole(true);
    first.close();
    drop(first);
    let second = endpoint(&home.issue_identity().unwrap(), &home);
    let _seen2 = serve(second.clone());
    relay.retarget(second.local_addr().unwrap());
    assert_eq!(relay.target(), second.local_addr().unwrap());
    relay.set_blackhole(false);

    // The old connection is found dead by the client's idle timeout (the
    // new server answers its packets with stateless resets, but under
    // another reset key than the old server's, so the client cannot take
    // them for resets of its connection) ...
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = send.write_all(&[0u8; 1200]).await;
    }
    let lost = QuicError::from(within("lost", conn.closed()).await);
    assert!(
        matches!(lost, QuicError::TimedOut | QuicError::Reset),
        "{lost:?}"
    );
    // ... and a new one through the same relay address reaches the new
    // server.
    let conn = within("reconnect", client.connect(relay.local_addr()))
        .await
        .unwrap();
    round_trip(&conn, 2).await;
}

#[test]
fn relay_blackholes_both_ways_and_stops_promptly_when_dropped() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let relay = UdpRelay::start(server.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; 64];

    client.send_to(b"one", relay.local_addr()).unwrap();
    let (n, back) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one");

    relay.set_blackhole(true);
    client.send_to(b"lost up", relay.local_addr()).unwrap();
    server.send_to(b"lost down", back).unwrap();
    assert!(relay.wait_for(Duration::from_secs(5), |s| s.dropped == 2));
    relay.set_blackhole(false);

    server.send_to(b"two", back).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
    client.send_to(b"three", relay.local_addr()).unwrap();
    let (n, _) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three");
    assert!(relay.wait_for(Duration::from_secs(5), |s| {
        (s.to_target, s.to_client, s.dropped) == (2, 1, 2)
    }));

    // Datagrams from anything but the target are not passed to the client.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"stranger", back).unwrap();
    server.send_to(b"four", back).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"four");

    let started = Instant::now();
    drop(relay);
    assert!(started.elapsed() < Duration::from_millis(150));
}
