//! Every raw OS call of the transport, each behind a safe function.
//!
//! * [`Mapping`]: a sealed memfd mapped `MAP_SHARED`. A creator's segment is
//!   sealed against shrinking and growing before a peer can ever see it, so a
//!   peer cannot truncate it under a reader (no `SIGBUS`); a receiver refuses
//!   any segment that is not sealed that way.
//! * [`futex_wait`] / [`futex_wake`]: sleeping on a 32-bit word that may live
//!   in shared memory (shared futexes, not `FUTEX_PRIVATE_FLAG`).
//! * [`EventFd`] and [`wait_readable`]: a pollable doorbell.
//! * [`send_with_fds`] / [`recv_with_fds`]: bytes plus file descriptors over a
//!   Unix stream socket (`SCM_RIGHTS`); [`peer_cred`] (`SO_PEERCRED`),
//!   [`pid_alive`], [`current_uid`], [`current_gid`].
//! * [`lock_exclusive`]: an advisory `flock` that dies with its holder.
//! * [`Poller`]: a level-triggered epoll set.
//!
//! No function here panics on bad input: every failure is an [`io::Error`].

use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem::{self, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// The largest segment [`Mapping::create`] makes and [`Mapping::open`]
/// accepts: 1 TiB.
pub const MAX_SEGMENT_LEN: usize = 1 << 40;

/// The most file descriptors one [`send_with_fds`] call passes, and the most
/// one [`recv_with_fds`] call accepts.
pub const MAX_FDS: usize = 8;

/// Longest `memfd_create` name, in bytes, without the terminating NUL (the
/// kernel's limit is 249).
const MEMFD_NAME_MAX: usize = 249;

/// `errno` of the last failed call.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Turns a `-1` return into the current `errno` as an [`io::Error`].
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An [`io::ErrorKind::InvalidInput`] error with a message.
fn invalid_input(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// An [`io::ErrorKind::InvalidData`] error with a message.
fn invalid_data(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

// ---------------------------------------------------------------------------
// Mapping
// ---------------------------------------------------------------------------

/// An owning `MAP_SHARED` mapping of a memfd.
///
/// Made by [`Mapping::create`] (a fresh, zero-filled, sealed segment) or by
/// [`Mapping::open`] (a segment received from a peer, checked to be sealed
/// against shrinking and growing). The mapping's length never changes and the
/// underlying file cannot be truncated by anyone, so every byte of
/// `as_ptr()..as_ptr() + len()` stays accessible for the mapping's life.
///
/// Dropping it unmaps the memory and closes the descriptor.
///
/// The memory is shared with other processes: this type hands out a raw
/// pointer only, and the code using it decides how the bytes are accessed
/// (atomics, or a protocol under which one side writes at a time).
pub struct Mapping {
    /// `None` once released ([`Mapping::release_fd`]): the memory stays
    /// mapped without it.
    fd: Option<OwnedFd>,
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: a Mapping is an address range of plain shared memory plus an owned
// fd; neither is tied to the creating thread. The type itself never reads or
// writes the memory: every access goes through the raw pointer from `as_ptr`,
// and the callers do it with atomics or under their own protocol, exactly as
// they must anyway because other processes share the memory. Unmapping
// happens once, in Drop, which needs `&mut self` (no other borrow alive).
unsafe impl Send for Mapping {}
// SAFETY: see the Send impl: `&Mapping` only exposes the length, the fd and
// the raw pointer, none of which has interior mutability.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a fresh shared segment of `len` bytes that reads as zeroes.
    ///
    /// `memfd_create(debug_name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`, then
    /// `ftruncate(len)`, then the seals `F_SEAL_SHRINK | F_SEAL_GROW |
    /// F_SEAL_SEAL` (nobody, us included, can ever change its size, so a peer
    /// can never make our accesses fault), then a read-write `MAP_SHARED |
    /// MAP_NORESERVE` mapping: pages are only backed once touched. A memfd has
    /// no path: it never appears in `/dev/shm`.
    ///
    /// `debug_name` only shows in `/proc/<pid>/fd` and `/proc/<pid>/maps`;
    /// it is cut to 249 bytes.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if `len` is 0 or above
    /// [`MAX_SEGMENT_LEN`] or `debug_name` contains a NUL byte; the OS error
    /// of a failed call otherwise.
    pub fn create(debug_name: &str, len: usize) -> io::Result<Mapping> {
        Self::create_sealed(debug_name, len, false)
    }

    /// Like [`Mapping::create`], and in addition seals the segment with
    /// `F_SEAL_FUTURE_WRITE` once this mapping exists: this mapping stays
    /// writable, but nobody (a peer holding the fd included) can map it
    /// writable or write to it any more. Peers get a read-only view; this
    /// mapping is the segment's only writer.
    ///
    /// # Errors
    /// As [`Mapping::create`]; a kernel older than Linux 5.1 refuses the seal
    /// with `EINVAL`.
    pub fn create_peer_read_only(debug_name: &str, len: usize) -> io::Result<Mapping> {
        Self::create_sealed(debug_name, len, true)
    }

    fn create_sealed(debug_name: &str, len: usize, peer_read_only: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(invalid_input("segment length is 0"));
        }
        if len > MAX_SEGMENT_LEN {
            return Err(invalid_input("segment length is above 1 TiB"));
        }
        let mut name = debug_name.as_bytes();
        if name.len() > MEMFD_NAME_MAX {
            name = &name[..MEMFD_NAME_MAX];
        }
        let name = CString::new(name)
            .map_err(|_| invalid_input("segment debug name contains a NUL byte"))?;
        let size = libc::off_t::try_from(len).map_err(|_| invalid_input("segment too long"))?;

        // SAFETY: `name` is a valid NUL-terminated string that outlives the
        // call; the flags are valid memfd_create flags.
        let raw = cvt(unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })?;
        // SAFETY: memfd_create just returned `raw`, a new descriptor that
        // nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // SAFETY: ftruncate on a descriptor we own; no memory is passed.
        cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;

        let size_seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if peer_read_only {
            add_seals(fd.as_fd(), size_seals)?;
        } else {
            add_seals(fd.as_fd(), size_seals | libc::F_SEAL_SEAL)?;
        }

        let map = Self::map(fd, len, true, libc::MAP_NORESERVE)?;
        if peer_read_only {
            // Allowed with a writable mapping alive (unlike F_SEAL_WRITE):
            // only later mappings and writes are refused.
            add_seals(map.fd(), libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL)?;
        }
        Ok(map)
    }

    /// Maps a segment received from a peer, read-write when `writable`,
    /// read-only otherwise.
    ///
    /// The descriptor must be a regular file of 1 byte to
    /// [`MAX_SEGMENT_LEN`] carrying the seals `F_SEAL_SHRINK` and
    /// `F_SEAL_GROW`, so that the peer can never change its size under us.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] if the descriptor is not a regular file,
    /// its size is 0 or above [`MAX_SEGMENT_LEN`], or it is not sealed
    /// ("segment not sealed"); the OS error of `mmap` otherwise (for instance
    /// `EPERM` when asking for a writable mapping of a segment sealed with
    /// `F_SEAL_FUTURE_WRITE`).
    pub fn open(fd: OwnedFd, writable: bool) -> io::Result<Mapping> {
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `st` is a writable buffer of the size fstat fills; the fd
        // is open (we own it).
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat succeeded, so it initialised the whole struct.
        let st = unsafe { st.assume_init() };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(invalid_data("segment is not a regular file"));
        }
        let len = match usize::try_from(st.st_size) {
            Ok(len) if len > 0 && len <= MAX_SEGMENT_LEN => len,
            _ => return Err(invalid_data("segment size is 0 or above 1 TiB")),
        };

        // SAFETY: F_GET_SEALS takes no pointer argument; the fd is open.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals == -1 {
            return Err(if errno() == libc::EINVAL {
                // The file does not support sealing at all.
                invalid_data("segment not sealed")
            } else {
                io::Error::last_os_error()
            });
        }
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if seals & needed != needed {
            return Err(invalid_data("segment not sealed"));
        }
        // No MAP_NORESERVE here: for a hugetlbfs segment, the reservation made
        // by mmap is what guarantees later faults succeed.
        Self::map(fd, len, writable, 0)
    }

    /// `mmap`s `len` bytes of `fd` shared; on success the Mapping owns both.
    fn map(fd: OwnedFd, len: usize, writable: bool, extra_flags: libc::c_int) -> io::Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks (null hint),
        // so no existing memory is replaced; `fd` is open and `len` is at
        // most the file's size, which is sealed against shrinking.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED | extra_flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(Mapping {
            fd: Some(fd),
            ptr,
            len,
            writable,
        })
    }

    /// The segment's descriptor, to pass to a peer (see [`send_with_fds`]).
    ///
    /// # Panics
    /// If the descriptor was released ([`Mapping::release_fd`]): only
    /// mappings that are never passed on release theirs.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd
            .as_ref()
            .expect("the descriptor of a mapping that passes it on is kept")
            .as_fd()
    }

    /// Closes the descriptor, keeping the memory mapped: a process holding
    /// many peers' segments then holds no descriptor for them.
    pub fn release_fd(&mut self) {
        self.fd = None;
    }

    /// The mapping's length in bytes (the segment's size; never 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a mapping is at least one byte long. Present for
    /// symmetry with [`Mapping::len`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte of the mapping. `len()` bytes from here stay mapped
    /// until the Mapping is dropped.
    ///
    /// Writing through it is only allowed if [`Mapping::is_writable`]; the
    /// bytes may change at any time under a peer's writes, so concurrent
    /// accesses must be atomic or follow a protocol agreed with the peer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Whether the memory is mapped read-write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is exactly the range our mmap returned and
        // nothing else unmapped it; `&mut self` means no borrow of the memory
        // made through this Mapping is alive. A failure cannot be reported
        // from Drop and leaves only an unused mapping behind.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("fd", &self.fd.as_ref().map(|f| f.as_raw_fd()))
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

/// `fcntl(F_ADD_SEALS, seals)`.
fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an int argument, no pointer; the fd is open.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

// ---------------------------------------------------------------------------
// Futexes
// ---------------------------------------------------------------------------

/// Sleeps while `word` holds `expected`, at most `timeout` (relative; `None`,
/// or a duration too large for the kernel's `timespec`, waits without limit).
///
/// The futex is shared (no `FUTEX_PRIVATE_FLAG`), so `word` may live in
/// memory shared with other processes and be woken by them.
///
/// Returns `false` only when the timeout expired. `true` means "look again":
/// woken by [`futex_wake`], the word did not hold `expected` (`EAGAIN`), a
/// signal interrupted the wait (`EINTR`), or a spurious wake-up. Callers loop
/// on their own condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = timeout.and_then(|d| {
        Some(libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).ok()?,
            // Below 10^9: fits a c_long on every target.
            tv_nsec: d.subsec_nanos() as libc::c_long,
        })
    });
    let ts_ptr: *const libc::timespec = ts.as_ref().map_or(ptr::null(), ptr::from_ref);
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (an AtomicU32
    // has u32's size and alignment and is valid for the call's duration) and
    // the optional timespec, which lives on our stack until the call returns;
    // uaddr2 and val3 are unused by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            ptr::null::<u32>(),
            0u32,
        )
    };
    r == 0 || errno() != libc::ETIMEDOUT
}

/// Wakes up to `n` threads sleeping in [`futex_wait`] on `word` (in any
/// process); `u32::MAX` (or anything above `i32::MAX`) wakes all. Returns how
/// many were woken.
pub fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key (valid,
    // aligned u32); the remaining arguments are unused.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(r).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// eventfd and poll
// ---------------------------------------------------------------------------

/// A non-blocking eventfd: a counter that is readable (pollable) while
/// non-zero.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    ///
    /// # Errors
    /// The OS error (for instance `EMFILE`).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd just returned `raw`, a new descriptor nobody owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd })
    }

    /// Wraps an eventfd received from a peer.
    ///
    /// Sets `O_NONBLOCK` on it (best effort), so that [`EventFd::drain`] never
    /// blocks even if the peer created it blocking. If `fd` is not an eventfd,
    /// signal and drain do nothing useful but stay harmless.
    pub fn from_fd(fd: OwnedFd) -> Self {
        // SAFETY: F_GETFL/F_SETFL take an int argument, no pointer; the fd is
        // open (we own it).
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags != -1 && flags & libc::O_NONBLOCK == 0 {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Self { fd }
    }

    /// Adds 1 to the counter, making the fd readable. A counter at its
    /// maximum (`EAGAIN`) is already readable and is left as is.
    pub fn signal(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64 on our stack.
            let r = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    ptr::from_ref(&one).cast(),
                    mem::size_of::<u64>(),
                )
            };
            if r == -1 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
    }

    /// Reads and resets the counter; returns its value, 0 if it was 0.
    pub fn drain(&self) -> u64 {
        let mut value: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into a live u64 on our stack.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    ptr::from_mut(&mut value).cast(),
                    mem::size_of::<u64>(),
                )
            };
            if r == -1 && errno() == libc::EINTR {
                continue;
            }
            return if r == 8 { value } else { 0 };
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Milliseconds until `deadline` for poll/epoll, rounded up (so a sub-ms
/// timeout does not spin); `None` → `-1` (no limit).
fn poll_timeout_ms(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            duration_ms_ceil(left).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// `d` in milliseconds rounded up, if it fits a `c_int`.
fn duration_ms_ceil(d: Duration) -> Option<libc::c_int> {
    let ms = d.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).ok()
}

/// Waits until `fd` has one of `events` (or an error/hang-up) or until
/// `deadline` passes; retries on EINTR. Returns whether the fd is ready.
fn poll_fd(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one pollfd, live on our stack for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, poll_timeout_ms(deadline)) };
        if r == -1 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        if r > 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(true);
        }
        // r == 0: time is up, unless the kernel's ms-granular timeout ended
        // before the deadline (it was clamped).
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Waits until `fd` is readable, at most `timeout` (`None`: no limit).
///
/// Returns `Ok(true)` when the fd is readable or reports a hang-up or error
/// (reading it then tells which), `Ok(false)` on timeout. Signals (`EINTR`)
/// are retried with the time left.
///
/// # Errors
/// The OS error of `poll`; `EBADF` if the kernel reports the fd invalid.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    poll_fd(fd.as_raw_fd(), libc::POLLIN, deadline)
}

// ---------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------

/// Room for one `SCM_RIGHTS` message of [`MAX_FDS`] descriptors.
// SAFETY: CMSG_SPACE is pure arithmetic on its argument.
const CMSG_RIGHTS_SPACE: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<libc::c_int>()) as libc::c_uint) } as usize;

/// A control-message buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_RIGHTS_SPACE]);

/// A zeroed `msghdr` (its layout has private padding fields on some
/// targets, so it is built from zeroes rather than a struct literal).
fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct of integers and raw pointers, for
    // which all-zero bytes are a valid value (null pointers, zero lengths).
    unsafe { mem::zeroed() }
}

/// Sends `bytes` and, attached to their first byte, the descriptors `fds`
/// (`SCM_RIGHTS`) over a Unix stream socket.
///
/// One `sendmsg(MSG_NOSIGNAL)` carries the descriptors with as many bytes as
/// the socket takes; the rest of the bytes follow in further calls. `EINTR` is
/// retried. On a non-blocking socket, `WouldBlock` is returned only if nothing
/// was sent yet; once part of the bytes is out, the call waits for the socket
/// to be writable and finishes, so a message is never cut.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] if more than [`MAX_FDS`] descriptors are
/// given, or descriptors with no bytes (a stream socket needs at least one
/// byte to carry them); the OS error otherwise (`EPIPE` when the peer is gone:
/// no `SIGPIPE` is raised).
pub fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(invalid_input("more than 8 file descriptors in one message"));
    }
    send_fds_unchecked(sock, bytes, fds)
}

/// [`send_with_fds`] without the [`MAX_FDS`] limit (up to what the buffer
/// below can hold, checked).
fn send_fds_unchecked(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if bytes.is_empty() {
        if fds.is_empty() {
            return Ok(());
        }
        return Err(invalid_input(
            "file descriptors need at least one byte to travel with",
        ));
    }
    let fds_len = fds.len() * mem::size_of::<libc::c_int>();
    // A Vec<u64> keeps the buffer 8-byte aligned for cmsghdr.
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(fds_len as libc::c_uint) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];

    let mut sent = 0usize;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        let mut iov = libc::iovec {
            iov_base: rest.as_ptr().cast_mut().cast(),
            iov_len: rest.len(),
        };
        let mut msg = zeroed_msghdr();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if sent == 0 && !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` zeroed, 8-aligned bytes
            // that we own, which is room for one cmsghdr and `fds_len` data
            // bytes (CMSG_SPACE), so CMSG_FIRSTHDR returns a non-null header
            // inside the buffer and CMSG_DATA + fds_len stays inside it too.
            unsafe {
                let hdr = libc::CMSG_FIRSTHDR(&msg);
                if hdr.is_null() {
                    return Err(io::Error::other("control buffer too small"));
                }
                (*hdr).cmsg_level = libc::SOL_SOCKET;
                (*hdr).cmsg_type = libc::SCM_RIGHTS;
                (*hdr).cmsg_len = libc::CMSG_LEN(fds_len as libc::c_uint) as _;
                let data = libc::CMSG_DATA(hdr).cast::<libc::c_int>();
                for (i, fd) in fds.iter().enumerate() {
                    data.add(i).write_unaligned(fd.as_raw_fd());
                }
            }
        }
        // SAFETY: `msg` points at one iovec over `rest` (borrowed, alive) and,
        // when set, at the control buffer filled above; sendmsg only reads
        // them.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r == -1 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if sent > 0 => {
                    poll_fd(sock.as_raw_fd(), libc::POLLOUT, None)?;
                    continue;
                }
                _ => return Err(err),
            }
        }
        if r == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        sent += r as usize;
    }
    Ok(())
}

/// Receives bytes into `buf` and any descriptors sent with them.
///
/// One `recvmsg(MSG_CMSG_CLOEXEC)` with room for [`MAX_FDS`] descriptors.
/// Every descriptor received is pushed to `fds` as an [`OwnedFd`], so none can
/// leak. Returns the number of bytes read; 0 means the peer closed the
/// connection. `EINTR` is retried.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] if `buf` is empty;
/// [`io::ErrorKind::InvalidData`] if the peer sent more descriptors than fit
/// (`MSG_CTRUNC`; the descriptors received in that call are closed and the
/// connection should be dropped, its bytes being out of step); the OS error
/// otherwise (`WouldBlock` on a non-blocking socket with nothing to read).
pub fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    if buf.is_empty() {
        return Err(invalid_input("receive buffer is empty"));
    }
    loop {
        let mut control = CmsgBuf([0; CMSG_RIGHTS_SPACE]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg = zeroed_msghdr();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_RIGHTS_SPACE as _;
        // SAFETY: `msg` points at one iovec over `buf` (exclusively borrowed)
        // and at `control`, both alive for the call; the kernel writes at most
        // iov_len and msg_controllen bytes into them.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }

        // Take ownership of every descriptor first, whatever happens next.
        let mut received = Vec::new();
        let base = control.0.as_ptr() as usize;
        let end = base + CMSG_RIGHTS_SPACE;
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR only return headers that lie
        // within msg_control..msg_control + msg_controllen (our buffer, which
        // the kernel filled and whose length it set); the data range is
        // checked against the buffer's end before reading, and unaligned
        // reads are used for the ints.
        unsafe {
            let mut hdr = libc::CMSG_FIRSTHDR(&msg);
            while !hdr.is_null() {
                let level = (*hdr).cmsg_level;
                let kind = (*hdr).cmsg_type;
                let cmsg_len = (*hdr).cmsg_len as usize;
                if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(hdr);
                    let data_len = cmsg_len.saturating_sub(libc::CMSG_LEN(0) as usize);
                    let data_len = data_len.min(end.saturating_sub(data as usize));
                    let n = data_len / mem::size_of::<libc::c_int>();
                    let ints = data.cast::<libc::c_int>();
                    for i in 0..n {
                        let raw = ints.add(i).read_unaligned();
                        if raw >= 0 {
                            // The kernel installed this descriptor for us
                            // just now; nothing else owns it.
                            received.push(OwnedFd::from_raw_fd(raw));
                        }
                    }
                }
                hdr = libc::CMSG_NXTHDR(&msg, hdr);
            }
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            drop(received);
            return Err(invalid_data(
                "control data truncated: the peer sent too many file descriptors",
            ));
        }
        fds.extend(received);
        return Ok(r as usize);
    }
}

/// Takes an exclusive `flock` on the open file `fd`, waiting for it;
/// `EINTR` is retried. The lock belongs to the open file description: it is
/// released when the last descriptor of it is closed (in particular when the
/// process dies), so a crashed holder never leaves it locked. Two separate
/// `open`s of the same file exclude each other, even within one process.
///
/// # Errors
/// The OS error of `flock` (for instance `ENOLCK`).
pub fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        // SAFETY: flock takes no pointers; the fd is open for the call.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The credentials of a Unix socket's peer, as the kernel recorded them when
/// the connection was made (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id (0 if it is not visible from our pid namespace).
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// The peer's credentials (`getsockopt(SO_PEERCRED)`).
///
/// # Errors
/// The OS error of `getsockopt`.
pub fn peer_cred(sock: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes (a ucred) into `cred`
    // and the written length into `len`, both live on our stack.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    })?;
    Ok(PeerCred {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Whether a process `pid` exists (`kill(pid, 0)` succeeds or fails with
/// `EPERM`: it exists but belongs to someone else). A zombie counts as alive
/// until reaped. Pid 0 and pids above `i32::MAX` are never alive (they would
/// name process groups).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 performs only the existence and permission checks; no
    // signal is delivered.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || errno() == libc::EPERM
}

/// The real user id of this process.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The real group id of this process.
pub fn current_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

// ---------------------------------------------------------------------------
// epoll
// ---------------------------------------------------------------------------

/// Events reported per [`Poller::wait`] call at most.
const POLL_BATCH: usize = 64;

/// A level-triggered epoll set (`EPOLL_CLOEXEC`). Send and Sync: `add`,
/// `remove` and `wait` may be called from different threads.
#[derive(Debug)]
pub struct Poller {
    epfd: OwnedFd,
}

/// One ready descriptor reported by [`Poller::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollEvent {
    /// The token given to [`Poller::add`].
    pub token: u64,
    /// Data can be read (`EPOLLIN`).
    pub readable: bool,
    /// The peer hung up or the fd is in error (`EPOLLHUP`, `EPOLLRDHUP` or
    /// `EPOLLERR`).
    pub hangup: bool,
}

impl Poller {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    ///
    /// # Errors
    /// The OS error (for instance `EMFILE`).
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers.
        let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 just returned `raw`, a new descriptor nobody
        // owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { epfd })
    }

    /// Watches `fd` for `EPOLLIN | EPOLLRDHUP`, level-triggered, reporting
    /// `token`. The caller keeps `fd` open until [`Poller::remove`] (a closed
    /// fd leaves the set by itself once every duplicate of it is closed).
    ///
    /// # Errors
    /// The OS error of `epoll_ctl` (`EEXIST` if `fd` is already watched).
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event on our stack; both fds are open.
        cvt(unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })
        .map(drop)
    }

    /// Stops watching `fd`. Not watched (`ENOENT`, `EBADF`) is not an error.
    ///
    /// # Errors
    /// Any other OS error of `epoll_ctl`.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is a live epoll_event (ignored by EPOLL_CTL_DEL, but
        // old kernels want a non-null pointer); both fds are open.
        let r = unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if r == -1 {
            let e = errno();
            if e != libc::ENOENT && e != libc::EBADF {
                return Err(io::Error::from_raw_os_error(e));
            }
        }
        Ok(())
    }

    /// Waits until a watched fd is ready or `timeout` passes (`None`, or a
    /// timeout above `i32::MAX` milliseconds: no limit; rounded up to whole
    /// milliseconds). Clears `out`, then fills it with up to 64 ready fds.
    /// An empty `out` means the timeout passed or a signal interrupted the
    /// wait (`EINTR` is not an error).
    ///
    /// # Errors
    /// Any other OS error of `epoll_wait`.
    pub fn wait(&self, out: &mut Vec<PollEvent>, timeout: Option<Duration>) -> io::Result<()> {
        out.clear();
        let ms = timeout.and_then(duration_ms_ceil).unwrap_or(-1);
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; POLL_BATCH];
        // SAFETY: the kernel writes at most POLL_BATCH events into `events`,
        // which is live on our stack for the call.
        let r = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                POLL_BATCH as libc::c_int,
                ms,
            )
        };
        if r == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err);
        }
        let n = usize::try_from(r).unwrap_or(0).min(POLL_BATCH);
        let hangup = (libc::EPOLLHUP | libc::EPOLLRDHUP | libc::EPOLLERR) as u32;
        out.extend(events[..n].iter().map(|ev| {
            // Copies out of the (packed on x86-64) struct; no references.
            let flags = ev.events;
            let token = ev.u64;
            PollEvent {
                token,
                readable: flags & libc::EPOLLIN as u32 != 0,
                hangup: flags & hangup != 0,
            }
        }));
        Ok(())
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }
}

/// Reads what a Unix stream socket has, without waiting, whatever the socket's
/// own blocking mode (`recv` with `MSG_DONTWAIT`): so one thread can poll a
/// socket that others write to in blocking mode. Returns 0 at end of file;
/// `WouldBlock` when nothing is there. `EINTR` is retried.
pub fn recv_nonblocking(sock: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes and
        // the descriptor is open for the duration of the call.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn too_many_fds_is_refused_by_the_sender() {
        let (a, _b) = UnixStream::pair().unwrap();
        let e = EventFd::new().unwrap();
        let fds = vec![e.as_fd(); MAX_FDS + 1];
        let err = send_with_fds(&a, b"x", &fds).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn too_many_fds_received_is_invalid_data_and_closes_them() {
        let (a, b) = UnixStream::pair().unwrap();
        let e = EventFd::new().unwrap();
        let fds = vec![e.as_fd(); MAX_FDS + 2];
        send_fds_unchecked(&a, b"xy", &fds).unwrap();
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        let err = recv_with_fds(&b, &mut buf, &mut got).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(got.is_empty());
        // The stream itself still works.
        (&a).write_all(b"z").unwrap();
        let n = recv_with_fds(&b, &mut buf, &mut got).unwrap();
        assert_eq!(&buf[..n], b"z");
    }

    #[test]
    fn empty_buffers_are_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let e = EventFd::new().unwrap();
        assert_eq!(
            send_with_fds(&a, b"", &[e.as_fd()]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        send_with_fds(&a, b"", &[]).unwrap();
        let mut fds = Vec::new();
        assert_eq!(
            recv_with_fds(&b, &mut [], &mut fds).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(duration_ms_ceil(Duration::ZERO), Some(0));
        assert_eq!(duration_ms_ceil(Duration::from_nanos(1)), Some(1));
        assert_eq!(duration_ms_ceil(Duration::from_micros(1500)), Some(2));
        assert_eq!(duration_ms_ceil(Duration::MAX), None);
    }

    #[test]
    fn create_rejects_bad_input() {
        assert_eq!(
            Mapping::create("x", 0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            Mapping::create("x", MAX_SEGMENT_LEN + 1)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            Mapping::create("a\0b", 4096).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let long = "n".repeat(1000);
        assert_eq!(Mapping::create(&long, 4096).unwrap().len(), 4096);
    }
}
