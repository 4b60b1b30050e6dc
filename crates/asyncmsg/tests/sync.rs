//! The synchronous companion in one process (B23, B24): requests and replies,
//! errors, pulses, connect requests, the asyncmsg event as a pulse on the same
//! channel, and what happens when either side goes away. (Across processes:
//! `tests/shm_processes.rs`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use asyncmsg::sync::{IO_CONNECT, PULSE_CODE_DISCONNECT};
use asyncmsg::{
    ChannelConfig, ChannelEvent, ConnectError, ConnectionAttr, Node, ReceiveError, Received, Reply,
    RequestKind, SendError,
};

const WAIT: Duration = Duration::from_secs(10);

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn request(r: Result<Received, ReceiveError>) -> asyncmsg::Request {
    match r {
        Ok(Received::Request(req)) => req,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn pulse(r: Result<Received, ReceiveError>) -> asyncmsg::Pulse {
    match r {
        Ok(Received::Pulse(p)) => p,
        other => panic!("expected a pulse, got {other:?}"),
    }
}

/// B23: send blocks until the reply, which carries status and bytes; a reply
/// error fails the send with the errno; a receive id is answered once.
#[test]
fn b23_send_receive_reply() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let client = node.open(server.id()).unwrap();
    assert_eq!(client.server_pid(), std::process::id());
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            (
                client.send(b"hello").unwrap(),
                client.send(b"fail me").unwrap_err(),
            )
        });
        let req = request(server.receive_timeout(WAIT));
        assert_eq!(
            (req.kind(), req.data()),
            (RequestKind::Message, &b"hello"[..])
        );
        assert_eq!(req.pid(), std::process::id());
        server.reply(req.rcvid(), 7, b"world").unwrap();
        assert!(server.reply(req.rcvid(), 0, b"").is_err(), "answered once");
        let req = request(server.receive_timeout(WAIT));
        server.reply_error(req.rcvid(), libc::ENOSYS).unwrap();
        let (reply, err) = t.join().unwrap();
        assert_eq!(
            reply,
            Reply {
                status: 7,
                data: b"world".to_vec()
            }
        );
        assert_eq!(err, SendError::Failed(libc::ENOSYS));
        assert_eq!(err.errno(), libc::ENOSYS);
    });
}

/// B23: a send with a timeout gives up; pulses from clients arrive in order
/// with requests; try_receive does not wait.
#[test]
fn b23_timeouts_pulses_and_order() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let client = node.open(server.id()).unwrap();
    assert_eq!(server.try_receive().unwrap_err(), ReceiveError::Empty);
    assert_eq!(
        client.send_timeout(b"nobody answers", Duration::from_millis(20)),
        Err(SendError::TimedOut)
    );
    client.send_pulse(3, 33).unwrap();
    let first = request(server.receive_timeout(WAIT));
    assert_eq!(first.data(), b"nobody answers");
    let p = pulse(server.receive_timeout(WAIT));
    assert_eq!((p.code, p.value), (3, 33));
    // The late reply goes nowhere, and says nothing went wrong on the server.
    server.reply(first.rcvid(), 0, b"late").unwrap();
    assert_eq!(
        server
            .receive_timeout(Duration::from_millis(10))
            .unwrap_err(),
        ReceiveError::Empty
    );
}

/// B23: opening by name sends a connect request the server accepts (QNX
/// `name_open` / `_IO_CONNECT`); a refusal fails the open.
#[test]
fn b23_open_by_name_is_a_connect_request() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let name = unique("sync-open");
    server.publish(&name).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| node.open(name.as_str()));
        let req = request(server.receive_timeout(WAIT));
        assert_eq!(req.kind(), RequestKind::Connect);
        assert_eq!(req.data()[..2], IO_CONNECT.to_le_bytes());
        server.reply(req.rcvid(), 0, &[]).unwrap();
        let client = t.join().unwrap().unwrap();
        let t = s.spawn(|| node.open(name.as_str()));
        let req = request(server.receive_timeout(WAIT));
        server.reply_error(req.rcvid(), libc::EACCES).unwrap();
        assert!(matches!(
            t.join().unwrap(),
            Err(ConnectError::PermissionDenied)
        ));
        drop(client);
    });
    assert!(matches!(
        node.open("no-such-sync-channel"),
        Err(ConnectError::NotFound(_))
    ));
}

/// B23: one receive loop serves both kinds of traffic: the asyncmsg channel's
/// event arrives as a pulse on the sync channel, among the requests.
#[test]
fn b23_asyncmsg_event_as_a_pulse_on_a_sync_channel() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let chan = node
        .create_channel(ChannelConfig::default().event(ChannelEvent::pulse(&server, 5, 55)))
        .unwrap();
    let conn = node.connect(chan.id(), ConnectionAttr::default()).unwrap();
    let client = node.open(server.id()).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| client.send(b"which chid?").unwrap());
        conn.put("message #1", 1).unwrap();
        let mut got_pulse = false;
        let mut got_request = false;
        while !(got_pulse && got_request) {
            match server.receive_timeout(WAIT).unwrap() {
                Received::Pulse(p) => {
                    assert_eq!((p.code, p.value, p.scoid), (5, 55, chan.chid()));
                    assert_eq!(chan.try_get().unwrap()[0].text(), "message #1");
                    got_pulse = true;
                }
                Received::Request(req) => {
                    server
                        .reply(req.rcvid(), 0, &chan.chid().to_le_bytes())
                        .unwrap();
                    got_request = true;
                }
            }
        }
        let reply = t.join().unwrap();
        assert_eq!(reply.data, chan.chid().to_le_bytes());
    });
}

/// B24: a client that goes away arrives as a disconnect pulse naming its
/// connection; a server that goes away fails pending and later sends.
#[test]
fn b24_either_side_going_away() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let client = node.open(server.id()).unwrap();
    client.send_pulse(1, 1).unwrap();
    let scoid = pulse(server.receive_timeout(WAIT)).scoid;
    drop(client);
    let p = pulse(server.receive_timeout(WAIT));
    assert_eq!((p.code, p.scoid), (PULSE_CODE_DISCONNECT, scoid));

    let client = node.open(server.id()).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| client.send(b"never answered"));
        let _req = request(server.receive_timeout(WAIT));
        server.destroy();
        assert_eq!(t.join().unwrap(), Err(SendError::PeerLost));
    });
    assert_eq!(client.send(b"later"), Err(SendError::PeerLost));
    assert_eq!(server.receive().unwrap_err(), ReceiveError::Destroyed);
}

/// B23: the async forms wait without a thread.
#[test]
fn b23_async_send_and_receive() {
    let node = Node::new().unwrap();
    let server = node.create_sync_channel(0o600).unwrap();
    let client = node.open(server.id()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let reply = rt.block_on(async {
        let serve = async {
            let Received::Request(req) = server.recv().await.unwrap() else {
                panic!("a request")
            };
            server.reply(req.rcvid(), 1, b"async").unwrap();
        };
        let (reply, ()) = tokio::join!(client.send_async(b"q"), serve);
        reply
    });
    assert_eq!(reply.unwrap().data, b"async");
}
