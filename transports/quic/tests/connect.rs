//! Endpoints under one trust root talk; identities from another trust root
//! are refused in both directions (B18 across nodes).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmsg_quic::cert::Home;
use asyncmsg_quic::endpoint::{
    DEFAULT_SOCKET_BUFFER, EndpointOptions, QuicEndpoint, QuicError, peer_fingerprint,
};
use asyncmsg_quic::tls;
use common::{Seen, endpoint, localhost, options, round_trip, serve, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b18_same_home_exchanges_frames_both_ways() {
    let (_dir, home) = common::home();
    let server_id = home.issue_identity().unwrap();
    let client_id = home.issue_identity().unwrap();
    let server = endpoint(&server_id, &home);
    let client = endpoint(&client_id, &home);
    let mut seen = serve(server.clone());

    let conn = within("connect", client.connect(server.local_addr().unwrap()))
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&conn), Some(server_id.fingerprint()));
    match within("admitted", seen.recv()).await.unwrap() {
        Seen::Admitted(f) => assert_eq!(f, client_id.fingerprint()),
        Seen::Failed(e) => panic!("server refused a trusted client: {e}"),
    }
    // One 64-message frame each way, twice on one stream, then on a second
    // stream.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    for tag in [1u8, 2] {
        within("write", send.write_all(&common::frame(tag)))
            .await
            .unwrap();
        let got = within("answer", common::read_frame(&mut recv)).await;
        assert_eq!(got.len(), common::MESSAGES);
        assert_eq!(got, common::messages(tag ^ 0xff));
    }
    send.finish().unwrap();
    round_trip(&conn, 3).await;

    conn.close(0u32.into(), b"done");
    client.close();
    server.close();
    within("server idle", server.wait_idle()).await;
}

/// Connects `client` to `server_addr` and expects a refusal for trust
/// reasons; `seen` must then report the server's side as refused too.
async fn expect_untrusted(
    client: &QuicEndpoint,
    server_addr: SocketAddr,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>,
) {
    match within("connect", client.connect(server_addr)).await {
        Err(QuicError::Untrusted(_)) => {}
        Err(e) => panic!("expected Untrusted, got {e:?}"),
        Ok(_) => panic!("an untrusted peer was connected"),
    }
    match within("server outcome", seen.recv()).await.unwrap() {
        Seen::Failed(QuicError::Untrusted(_)) => {}
        Seen::Failed(e) => panic!("server side: expected Untrusted, got {e:?}"),
        Seen::Admitted(f) => panic!("server admitted an untrusted peer {f}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b18_other_trust_root_is_refused_both_ways() {
    let (_a_dir, a) = common::home();
    let (_b_dir, b) = common::home();
    let a_server = endpoint(&a.issue_identity().unwrap(), &a);
    let a_client = endpoint(&a.issue_identity().unwrap(), &a);
    let mut a_seen = serve(a_server.clone());
    let a_addr = a_server.local_addr().unwrap();

    // A node of another trust root connects to a node of this one.
    let b_client = endpoint(&b.issue_identity().unwrap(), &b);
    expect_untrusted(&b_client, a_addr, &mut a_seen).await;

    // The same, with a node that trusts this root but holds an identity of
    // the other one: its handshake completes on its side, and only the
    // server's verdict tells it.
    let mixed_client = endpoint(&b.issue_identity().unwrap(), &a);
    expect_untrusted(&mixed_client, a_addr, &mut a_seen).await;

    // This node connects to a node of the other trust root.
    let b_server = endpoint(&b.issue_identity().unwrap(), &b);
    let mut b_seen = serve(b_server.clone());
    expect_untrusted(&a_client, b_server.local_addr().unwrap(), &mut b_seen).await;

    // ... and to a node trusting this root but with the other's identity.
    let mixed_server = endpoint(&b.issue_identity().unwrap(), &a);
    let mut mixed_seen = serve(mixed_server.clone());
    expect_untrusted(
        &a_client,
        mixed_server.local_addr().unwrap(),
        &mut mixed_seen,
    )
    .await;

    // The trusted server keeps serving trusted clients, also the client
    // that was refused elsewhere.
    let conn = within("connect", a_client.connect(a_addr)).await.unwrap();
    assert!(matches!(
        within("admitted", a_seen.recv()).await,
        Some(Seen::Admitted(_))
    ));
    round_trip(&conn, 7).await;
    let other = endpoint(&a.issue_identity().unwrap(), &a);
    let conn2 = within("connect", other.connect(a_addr)).await.unwrap();
    round_trip(&conn2, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_silence_times_out() {
    let (_dir, home) = common::home();
    // A port that is bound (so nothing else gets it) and never answers.
    let silent = UdpSocket::bind(localhost()).unwrap();
    // quinn stretches the idle timeout to at least 3 probe timeouts (~3 s
    // before the first RTT sample), so a silent peer is given up on sooner
    // only through the connect timeout.
    let mut o = options();
    o.transport.idle_timeout = Duration::from_secs(30);
    o.connect_timeout = Duration::from_millis(200);
    let client =
        QuicEndpoint::bind_with(localhost(), &home.issue_identity().unwrap(), &home, &o).unwrap();
    let started = Instant::now();
    let r = within("connect", client.connect(silent.local_addr().unwrap())).await;
    assert!(matches!(r, Err(QuicError::TimedOut)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_only_endpoint_does_not_accept() {
    let (_dir, home) = common::home();
    let mut o = options();
    o.accept = false;
    let client_only = Arc::new(
        QuicEndpoint::bind_with(localhost(), &home.issue_identity().unwrap(), &home, &o).unwrap(),
    );
    assert!(client_only.accept().await.is_none());
    // Attempts to connect to it go unanswered.
    o.accept = true;
    o.connect_timeout = Duration::from_millis(300);
    let other =
        QuicEndpoint::bind_with(localhost(), &home.issue_identity().unwrap(), &home, &o).unwrap();
    let r = within("connect", other.connect(client_only.local_addr().unwrap())).await;
    assert!(matches!(r, Err(QuicError::TimedOut)), "{r:?}");

    // It still connects out.
    let server = endpoint(&home.issue_identity().unwrap(), &home);
    let _seen = serve(server.clone());
    let conn = within("connect", client_only.connect(server.local_addr().unwrap()))
        .await
        .unwrap();
    round_trip(&conn, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_incoming_and_bad_address() {
    let (_dir, home) = common::home();
    let server = endpoint(&home.issue_identity().unwrap(), &home);
    let client = endpoint(&home.issue_identity().unwrap(), &home);
    let addr = server.local_addr().unwrap();
    let client_addr = client.local_addr().unwrap();
    let refuser = {
        let server = server.clone();
        tokio::spawn(async move {
            let incoming = server.accept().await.unwrap();
            assert_eq!(incoming.remote_address(), client_addr);
            incoming.refuse();
        })
    };
    let r = within("connect", client.connect(addr)).await;
    assert!(matches!(r, Err(QuicError::Refused)), "{r:?}");
    refuser.await.unwrap();

    // An IPv6 address from an IPv4 socket.
    let r = client.connect("[::1]:9".parse().unwrap()).await;
    assert!(matches!(r, Err(QuicError::Unreachable(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_alpn_is_a_protocol_error_not_untrusted() {
    let (_dir, home) = common::home();
    let server = endpoint(&home.issue_identity().unwrap(), &home);
    let mut seen = serve(server.clone());
    // A client that trusts the root but speaks another protocol.
    let identity = home.issue_identity().unwrap();
    let mut crypto = tls::client_crypto(&identity, &home.ca_certificate().unwrap()).unwrap();
    crypto.alpn_protocols = vec![b"something/9".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap(),
    ));
    let raw = quinn::Endpoint::client(localhost()).unwrap();
    let r = within(
        "connect",
        raw.connect_with(config, server.local_addr().unwrap(), "asyncmsg-node")
            .unwrap(),
    )
    .await;
    let e = QuicError::from(r.expect_err("wrong ALPN accepted"));
    assert!(matches!(e, QuicError::Protocol(_)), "{e:?}");
    match within("server outcome", seen.recv()).await.unwrap() {
        Seen::Failed(QuicError::Protocol(_)) => {}
        other => panic!("server side: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_buffers_are_raised() {
    let (_dir, home) = common::home();
    let ep = endpoint(&home.issue_identity().unwrap(), &home);
    let (rcv, snd) = ep.socket_buffers();
    let limit = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    // Linux reports twice the size granted: at least the request, or the
    // system limit when this process may not exceed it.
    assert!(rcv >= DEFAULT_SOCKET_BUFFER.min(limit("rmem_max")), "{rcv}");
    assert!(snd >= DEFAULT_SOCKET_BUFFER.min(limit("wmem_max")), "{snd}");
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path());
    home.init().unwrap();
    let r = QuicEndpoint::bind_with(
        localhost(),
        &home.issue_identity().unwrap(),
        &home,
        &EndpointOptions::default(),
    );
    assert!(matches!(r, Err(QuicError::NoRuntime)), "{r:?}");
}
