//! Tests of the raw OS layer: mappings, futexes, eventfds, fd passing,
//! credentials, epoll.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use asyncmsg_shm::sys::{
    self, EventFd, Mapping, PollEvent, Poller, current_gid, current_uid, futex_wait, futex_wake,
    peer_cred, pid_alive, recv_with_fds, send_with_fds, wait_readable,
};

/// Reads byte `i` of a mapping.
fn read_byte(map: &Mapping, i: usize) -> u8 {
    assert!(i < map.len());
    // SAFETY: `i` is within the mapping, which is alive; u8 reads of plain
    // memory are always valid.
    unsafe { map.as_ptr().add(i).read_volatile() }
}

/// Writes byte `i` of a writable mapping.
fn write_byte(map: &Mapping, i: usize, v: u8) {
    assert!(i < map.len() && map.is_writable());
    // SAFETY: `i` is within the mapping, which is alive and writable; the
    // tests access each byte from one thread at a time.
    unsafe { map.as_ptr().add(i).write_volatile(v) }
}

#[test]
fn mapping_round_trip_through_a_dup() {
    let a = Mapping::create("test-round-trip", 3 * 4096 + 5).unwrap();
    assert_eq!(a.len(), 3 * 4096 + 5);
    assert!(a.is_writable());
    assert!(!a.is_empty());
    for i in [0, 4096, a.len() - 1] {
        assert_eq!(read_byte(&a, i), 0, "fresh memory reads as zeroes");
    }
    write_byte(&a, 10, 0xAB);

    let b = Mapping::open(a.fd().try_clone_to_owned().unwrap(), true).unwrap();
    assert_eq!(b.len(), a.len());
    assert_ne!(a.as_ptr(), b.as_ptr());
    assert_eq!(read_byte(&b, 10), 0xAB);
    write_byte(&b, a.len() - 1, 0xCD);
    assert_eq!(read_byte(&a, a.len() - 1), 0xCD);

    let ro = Mapping::open(a.fd().try_clone_to_owned().unwrap(), false).unwrap();
    assert!(!ro.is_writable());
    assert_eq!(read_byte(&ro, 10), 0xAB);
    drop(a);
    // The other mappings stay valid on their own.
    assert_eq!(read_byte(&ro, ro.len() - 1), 0xCD);
    assert!(format!("{ro:?}").contains("Mapping"));
}

#[test]
fn created_segments_cannot_be_resized() {
    let a = Mapping::create("test-sealed", 8192).unwrap();
    let fd = a.fd();
    for len in [4096, 16384] {
        // SAFETY: ftruncate on a descriptor we hold open; no pointers.
        let r = unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), len) };
        assert_eq!(r, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
    }
}

#[test]
fn peer_read_only_segments_refuse_writable_opens() {
    let a = Mapping::create_peer_read_only("test-ro", 4096).unwrap();
    write_byte(&a, 0, 7);
    let err = Mapping::open(a.fd().try_clone_to_owned().unwrap(), true).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    let ro = Mapping::open(a.fd().try_clone_to_owned().unwrap(), false).unwrap();
    assert_eq!(read_byte(&ro, 0), 7);
    // The owner's mapping still writes, and the reader sees it.
    write_byte(&a, 1, 8);
    assert_eq!(read_byte(&ro, 1), 8);
}

/// A memfd of `len` bytes with no seals.
fn unsealed_memfd(len: i64, allow_sealing: bool) -> OwnedFd {
    let name = CString::new("test-unsealed").unwrap();
    let flags = libc::MFD_CLOEXEC
        | if allow_sealing {
            libc::MFD_ALLOW_SEALING
        } else {
            0
        };
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    assert!(raw >= 0, "{}", io::Error::last_os_error());
    // SAFETY: memfd_create returned a new descriptor that nothing owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ftruncate on the descriptor we own.
    assert_eq!(unsafe { libc::ftruncate(raw, len) }, 0);
    fd
}

#[test]
fn open_refuses_unsealed_segments() {
    for allow_sealing in [false, true] {
        let err = Mapping::open(unsealed_memfd(4096, allow_sealing), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not sealed"), "{err}");
    }
}

#[test]
fn open_refuses_empty_segments_and_non_files() {
    let err = Mapping::open(unsealed_memfd(0, true), false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let (a, _b) = UnixStream::pair().unwrap();
    let err = Mapping::open(OwnedFd::from(a), false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let e = EventFd::new().unwrap();
    let err = Mapping::open(e.as_fd().try_clone_to_owned().unwrap(), false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn futex_wait_and_wake_across_threads() {
    let word = Arc::new(AtomicU32::new(0));
    let waiter = {
        let word = Arc::clone(&word);
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while word.load(Ordering::Acquire) == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if !futex_wait(&word, 0, Some(left)) {
                    return false;
                }
            }
            true
        })
    };
    thread::sleep(Duration::from_millis(20));
    word.store(1, Ordering::Release);
    futex_wake(&word, u32::MAX);
    assert!(waiter.join().unwrap(), "the waiter timed out");
}

#[test]
fn futex_wait_times_out_and_rechecks() {
    let word = AtomicU32::new(5);
    let start = Instant::now();
    assert!(!futex_wait(&word, 5, Some(Duration::from_millis(30))));
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(!futex_wait(&word, 5, Some(Duration::ZERO)));
    // Another value: returns at once, "look again".
    assert!(futex_wait(&word, 4, None));
    assert!(futex_wait(&word, 4, Some(Duration::MAX)));
    assert_eq!(futex_wake(&word, 1), 0);
}

#[test]
fn eventfd_signal_drain_and_poll() {
    let e = EventFd::new().unwrap();
    assert!(!wait_readable(e.as_fd(), Some(Duration::ZERO)).unwrap());
    assert!(!wait_readable(e.as_fd(), Some(Duration::from_millis(5))).unwrap());
    assert_eq!(e.drain(), 0);
    e.signal();
    e.signal();
    assert!(wait_readable(e.as_fd(), None).unwrap());
    assert_eq!(e.drain(), 2);
    assert_eq!(e.drain(), 0);

    // A copy through from_fd shares the counter.
    let f = EventFd::from_fd(e.as_fd().try_clone_to_owned().unwrap());
    f.signal();
    assert_eq!(e.drain(), 1);
}

#[test]
fn wait_readable_wakes_on_another_thread_signal() {
    let e = Arc::new(EventFd::new().unwrap());
    let signaller = {
        let e = Arc::clone(&e);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            e.signal();
        })
    };
    assert!(wait_readable(e.as_fd(), Some(Duration::from_secs(10))).unwrap());
    signaller.join().unwrap();
    assert_eq!(e.drain(), 1);
}

#[test]
fn fds_travel_over_a_socket_pair() {
    let (a, b) = UnixStream::pair().unwrap();
    let seg = Mapping::create("test-fd-passing", 4096).unwrap();
    write_byte(&seg, 100, 42);
    let ev = EventFd::new().unwrap();
    send_with_fds(&a, b"hello", &[seg.fd(), ev.as_fd()]).unwrap();

    let mut buf = [0u8; 64];
    let mut fds = Vec::new();
    let n = recv_with_fds(&b, &mut buf, &mut fds).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(fds.len(), 2);
    let ev2 = EventFd::from_fd(fds.pop().unwrap());
    let view = Mapping::open(fds.pop().unwrap(), false).unwrap();
    assert_eq!(view.len(), 4096);
    assert_eq!(read_byte(&view, 100), 42);
    ev2.signal();
    assert_eq!(ev.drain(), 1);

    // Without fds, and end of stream.
    send_with_fds(&a, b"x", &[]).unwrap();
    let n = recv_with_fds(&b, &mut buf, &mut fds).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"x"[..], 0));
    drop(a);
    assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 0);
}

#[test]
fn large_sends_complete_across_partial_writes() {
    let (a, b) = UnixStream::pair().unwrap();
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let ev = EventFd::new().unwrap();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut fds = Vec::new();
        let mut got = Vec::new();
        loop {
            let n = recv_with_fds(&b, &mut buf, &mut fds).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        (got, fds.len())
    });
    send_with_fds(&a, &data, &[ev.as_fd()]).unwrap();
    drop(a);
    let (got, nfds) = reader.join().unwrap();
    assert_eq!(nfds, 1);
    assert!(got == data, "bytes differ");
}

#[test]
fn send_to_a_closed_peer_is_an_error_not_a_signal() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let err = send_with_fds(&a, b"x", &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn nonblocking_receive_with_nothing_would_block() {
    let (_a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let mut fds = Vec::new();
    let err = recv_with_fds(&b, &mut [0u8; 4], &mut fds).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn peer_cred_of_a_pair_is_ourselves() {
    let (a, _b) = UnixStream::pair().unwrap();
    let cred = peer_cred(&a).unwrap();
    assert_eq!(cred.pid, std::process::id());
    assert_eq!(cred.uid, current_uid());
    assert_eq!(cred.gid, current_gid());
}

#[test]
fn poller_sees_readable_then_hangup() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    poller.add(a.as_fd(), 7).unwrap();
    let mut events = vec![PollEvent {
        token: 0,
        readable: false,
        hangup: false,
    }];
    poller
        .wait(&mut events, Some(Duration::from_millis(10)))
        .unwrap();
    assert!(events.is_empty(), "cleared, nothing ready: {events:?}");

    b.write_all(b"x").unwrap();
    poller
        .wait(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        events,
        vec![PollEvent {
            token: 7,
            readable: true,
            hangup: false
        }]
    );
    let mut byte = [0u8; 1];
    (&a).read_exact(&mut byte).unwrap();

    drop(b);
    poller
        .wait(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].token, 7);
    assert!(events[0].hangup);

    poller.remove(a.as_fd()).unwrap();
    poller.remove(a.as_fd()).unwrap();
    poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty());
}

#[test]
fn poller_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Poller>();
    assert_send_sync::<Mapping>();
    assert_send_sync::<EventFd>();

    let poller = Arc::new(Poller::new().unwrap());
    let e = Arc::new(EventFd::new().unwrap());
    poller.add(e.as_fd(), 1).unwrap();
    let waiter = {
        let poller = Arc::clone(&poller);
        thread::spawn(move || {
            let mut events = Vec::new();
            poller
                .wait(&mut events, Some(Duration::from_secs(10)))
                .unwrap();
            events
        })
    };
    thread::sleep(Duration::from_millis(20));
    e.signal();
    let events = waiter.join().unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].readable && !events[0].hangup);
}

#[test]
fn pid_alive_of_self_and_of_a_reaped_child() {
    assert!(pid_alive(std::process::id()));
    assert!(pid_alive(1), "pid 1 exists (EPERM counts as alive)");
    assert!(!pid_alive(0));
    assert!(!pid_alive(u32::MAX));
    assert!(!pid_alive(i32::MAX as u32 + 1));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!pid_alive(pid));
}

#[test]
fn segment_limit_is_exported() {
    assert_eq!(sys::MAX_SEGMENT_LEN, 1 << 40);
    assert_eq!(sys::MAX_FDS, 8);
}
