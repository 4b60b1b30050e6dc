//! The second process of a cell: how the parent starts this same program again
//! as a child, hands it file descriptors, talks to it, watches it, and always
//! reaps it.
//!
//! * The child is this program run again ([`Launcher`]) with
//!   [`CHILD_ENV`]`=<role>` set; the program calls [`super::child_main`] first
//!   thing, which runs the role and exits.
//! * File descriptors (socket pairs, eventfds, a memfd) are created close-on-exec
//!   and made inheritable only in the forked child, just before `exec`, so a
//!   process that another thread spawns at the same moment inherits none of
//!   them. Their numbers travel in [`FDS_ENV`], the role's arguments in
//!   [`ARGS_ENV`].
//! * The child dies with the thread that spawned it (`PR_SET_PDEATHSIG`), and
//!   [`ChildProc`] kills and reaps it on drop, so no path of the parent, a
//!   panic included, leaves one behind.
//! * A [`Control`] socket pair carries the run's handshake (ready, go, done,
//!   bye). The child keeps its end open until the parent says bye, so the end
//!   of the child before that is a failure the parent sees: as an end of file
//!   on [`Control`], or through a [`Watchdog`] that also ends a run that takes
//!   too long.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

/// Set in a child's environment to the role it is to play.
pub const CHILD_ENV: &str = "ASYNCMSG_BENCH_CHILD";
/// The child's inherited file descriptors, space separated, in role order.
pub const FDS_ENV: &str = "ASYNCMSG_BENCH_FDS";
/// The child's arguments, space separated, in role order.
pub const ARGS_ENV: &str = "ASYNCMSG_BENCH_ARGS";

/// How long the parent waits for any one step of the child (its start, a
/// handshake message, its exit) before it declares the child hung.
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(30);

/// How to start this program again as a child process.
///
/// The program must call [`child_main`](super::child_main) before anything
/// else in `main` (a criterion bench, `cargo xtask bench`); a libtest binary
/// runs a test that does (see the unit tests of [`shm`](super)).
#[derive(Debug, Clone)]
pub struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Launcher {
    /// The running executable, with no arguments.
    pub fn current_exe() -> Result<Launcher> {
        Ok(Launcher {
            program: std::env::current_exe().context("finding the running executable")?,
            args: Vec::new(),
        })
    }

    /// `program` with `args`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Launcher {
        Launcher {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// A child process playing one role; killed and reaped when dropped unless
/// [`finish`](ChildProc::finish)ed.
#[derive(Debug)]
pub(crate) struct ChildProc {
    child: Option<Child>,
    role: String,
}

impl ChildProc {
    /// Starts `launcher` as `role` with `args`, handing it `fds` (which keep
    /// their numbers in the child).
    pub(crate) fn spawn(
        launcher: &Launcher,
        role: &str,
        args: &[String],
        fds: &[BorrowedFd<'_>],
    ) -> Result<ChildProc> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let fd_list = raw
            .iter()
            .map(|fd| fd.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut cmd = Command::new(&launcher.program);
        cmd.args(&launcher.args)
            .env(CHILD_ENV, role)
            .env(FDS_ENV, fd_list)
            .env(ARGS_ENV, args.join(" "))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (fcntl, prctl, getppid) on
        // descriptors the parent holds open for the duration of the spawn.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &raw {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The spawning process may have died before the prctl.
                if libc::getppid() != me {
                    return Err(std::io::Error::other("the parent exited"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| {
            format!("starting the {role} child ({})", launcher.program.display())
        })?;
        Ok(ChildProc {
            child: Some(child),
            role: role.to_owned(),
        })
    }

    /// Waits for the child to exit (at most [`STEP_LIMIT`]) and checks that it
    /// succeeded.
    pub(crate) fn finish(mut self) -> Result<()> {
        let status = self.wait(STEP_LIMIT)?;
        ensure!(status.success(), "the {} child failed: {status}", self.role);
        Ok(())
    }

    /// Why the child is gone, if it is, for an error message: its exit status,
    /// after a short grace period.
    pub(crate) fn failure(&mut self) -> String {
        match self.wait(Duration::from_millis(500)) {
            Ok(status) => format!("the {} child exited: {status}", self.role),
            Err(_) => format!("the {} child is still running", self.role),
        }
    }

    fn wait(&mut self, limit: Duration) -> Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .context("the child was already reaped")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().context("waiting for the child")? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("the {} child did not exit within {limit:?}", self.role);
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// In a child: its role's arguments and inherited descriptors.
#[derive(Debug)]
pub(crate) struct ChildEnv {
    args: Vec<String>,
    fds: Vec<Option<OwnedFd>>,
}

impl ChildEnv {
    /// Reads [`ARGS_ENV`] and takes ownership of the descriptors in [`FDS_ENV`].
    pub(crate) fn from_env() -> Result<ChildEnv> {
        let args = std::env::var(ARGS_ENV)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut fds = Vec::new();
        for word in std::env::var(FDS_ENV)
            .unwrap_or_default()
            .split_whitespace()
        {
            let fd: RawFd = word
                .parse()
                .with_context(|| format!("{FDS_ENV}: {word:?} is not a descriptor"))?;
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            ensure!(flags >= 0, "{FDS_ENV}: descriptor {fd} is not open");
            // SAFETY: the descriptor is open (checked above), was handed to this
            // process by its parent for this role, and nothing else here owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sets a flag on a descriptor this process owns.
            unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
            fds.push(Some(owned));
        }
        Ok(ChildEnv { args, fds })
    }

    /// Argument `i` parsed as a number.
    pub(crate) fn num(&self, i: usize) -> Result<u64> {
        let word = self.arg(i)?;
        word.parse()
            .with_context(|| format!("argument {i}: {word:?} is not a number"))
    }

    /// Argument `i`.
    pub(crate) fn arg(&self, i: usize) -> Result<&str> {
        self.args
            .get(i)
            .map(String::as_str)
            .with_context(|| format!("argument {i} missing"))
    }

    /// Takes inherited descriptor `i`.
    pub(crate) fn fd(&mut self, i: usize) -> Result<OwnedFd> {
        self.fds
            .get_mut(i)
            .and_then(Option::take)
            .with_context(|| format!("descriptor {i} missing"))
    }
}

/// A handshake message on [`Control`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Step {
    /// Child → parent: set up, waiting for [`Step::Go`].
    Ready = 1,
    /// Parent → child: start.
    Go = 2,
    /// Child → parent: its half of the run is complete.
    Done = 3,
    /// Parent → child: exit now.
    Bye = 4,
}

impl Step {
    fn from_u64(v: u64) -> Option<Step> {
        [Step::Ready, Step::Go, Step::Done, Step::Bye]
            .into_iter()
            .find(|s| *s as u64 == v)
    }
}

/// One end of the control socket pair.
#[derive(Debug)]
pub(crate) struct Control {
    stream: UnixStream,
}

impl Control {
    /// A connected pair: (the parent's end, the child's end).
    pub(crate) fn pair() -> Result<(Control, OwnedFd)> {
        let (a, b) = UnixStream::pair().context("creating the control socket pair")?;
        a.set_read_timeout(Some(STEP_LIMIT))
            .context("setting the control read timeout")?;
        Ok((Control { stream: a }, OwnedFd::from(b)))
    }

    /// The child's end, from an inherited descriptor.
    pub(crate) fn from_fd(fd: OwnedFd) -> Control {
        Control {
            stream: UnixStream::from(fd),
        }
    }

    pub(crate) fn send(&mut self, step: Step) -> Result<()> {
        self.stream
            .write_all(&(step as u64).to_le_bytes())
            .with_context(|| format!("sending {step:?} on the control socket"))
    }

    /// Waits for `step`; an end of file means the peer is gone.
    pub(crate) fn expect(&mut self, step: Step) -> Result<()> {
        let mut word = [0u8; 8];
        self.stream.read_exact(&mut word).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow!("the peer hung up while {step:?} was awaited")
            } else {
                anyhow!("waiting for {step:?} on the control socket: {e}")
            }
        })?;
        let got = u64::from_le_bytes(word);
        match Step::from_u64(got) {
            Some(s) if s == step => Ok(()),
            other => bail!("control: expected {step:?}, got {other:?} ({got})"),
        }
    }

    /// Parent side: waits for `step`, saying why the child is gone if it never
    /// comes.
    pub(crate) fn expect_from(&mut self, step: Step, child: &mut ChildProc) -> Result<()> {
        self.expect(step).map_err(|e| e.context(child.failure()))
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// Watches the control socket from a thread of its own while a run blocks or
/// spins where no timeout can reach it: if the child hangs up (it exited or
/// crashed before the parent's bye) or the run outlasts its limit, the watchdog
/// sets [`tripped`](Watchdog::tripped) and calls `on_trip` (which wakes a
/// blocked wait, e.g. by writing to the eventfd it reads).
#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: Arc<OwnedFd>,
    tripped: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start(
        control: &Control,
        limit: Duration,
        on_trip: impl FnOnce() + Send + 'static,
    ) -> Result<Watchdog> {
        let watched = control
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the control socket")?;
        let stop = Arc::new(eventfd().context("creating the watchdog's stop eventfd")?);
        let tripped = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let tripped = tripped.clone();
            thread::Builder::new()
                .name("bench-watchdog".into())
                .spawn(move || {
                    let deadline = Instant::now() + limit;
                    loop {
                        let mut fds = [
                            libc::pollfd {
                                fd: watched.as_raw_fd(),
                                events: libc::POLLRDHUP,
                                revents: 0,
                            },
                            libc::pollfd {
                                fd: stop.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            },
                        ];
                        let left = deadline.saturating_duration_since(Instant::now());
                        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
                        // SAFETY: `fds` is a valid array of two pollfd for the
                        // duration of the call; both descriptors are open.
                        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
                        if r < 0
                            && std::io::Error::last_os_error().kind()
                                == std::io::ErrorKind::Interrupted
                        {
                            continue;
                        }
                        if fds[1].revents != 0 {
                            return;
                        }
                        let hung_up = fds[0].revents
                            & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL)
                            != 0;
                        if hung_up || r < 0 || Instant::now() >= deadline {
                            tripped.store(true, Ordering::Release);
                            on_trip();
                            return;
                        }
                    }
                })
                .context("spawning the watchdog")?
        };
        Ok(Watchdog {
            stop,
            tripped,
            thread: Some(thread),
        })
    }

    /// The flag a spinning loop checks now and then.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.tripped
    }

    pub(crate) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Stops watching; whether it had tripped.
    pub(crate) fn stop(mut self) -> bool {
        self.halt();
        self.tripped()
    }

    fn halt(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = write_u64(self.stop.as_fd(), 1);
            let _ = thread.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A blocking, close-on-exec eventfd with a count of zero.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    ensure!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes one 8-byte word (an eventfd increment).
pub(crate) fn write_u64(fd: BorrowedFd<'_>, v: u64) -> std::io::Result<()> {
    let bytes = v.to_ne_bytes();
    loop {
        // SAFETY: writes 8 bytes from a live local buffer to an open descriptor.
        let r = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), 8) };
        if r == 8 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if r < 0 && e.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Err(if r < 0 {
            e
        } else {
            std::io::Error::other("short write")
        });
    }
}

/// Reads one 8-byte word (an eventfd's count, which resets it), blocking.
pub(crate) fn read_u64(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    loop {
        // SAFETY: reads at most 8 bytes into a live local buffer from an open
        // descriptor.
        let r = unsafe { libc::read(fd.as_raw_fd(), bytes.as_mut_ptr().cast(), 8) };
        if r == 8 {
            return Ok(u64::from_ne_bytes(bytes));
        }
        let e = std::io::Error::last_os_error();
        if r < 0 && e.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Err(if r < 0 {
            e
        } else {
            std::io::Error::other("short read")
        });
    }
}

/// A page of memory shared with the child through a memfd.
#[derive(Debug)]
pub(crate) struct SharedPage {
    fd: OwnedFd,
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
    /// A new zeroed page backed by a close-on-exec memfd.
    pub(crate) fn create(len: usize) -> Result<SharedPage> {
        // SAFETY: the name is a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"asyncmsg-bench".as_ptr(), libc::MFD_CLOEXEC) };
        ensure!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor this process owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizes a memfd this process owns.
        let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
        ensure!(r == 0, "ftruncate: {}", std::io::Error::last_os_error());
        SharedPage::map(fd, len)
    }

    /// Maps `len` bytes of an inherited memfd.
    pub(crate) fn map(fd: OwnedFd, len: usize) -> Result<SharedPage> {
        // SAFETY: maps a fresh shared region of a memfd at least `len` bytes
        // long; the result is checked and unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        ensure!(
            ptr != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Ok(SharedPage {
            fd,
            ptr: ptr.cast(),
            len,
        })
    }

    /// The atomic word at the start of the page.
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: the mapping is page aligned, at least 8 bytes long, lives as
        // long as `self`, and is only ever accessed atomically (in both
        // processes).
        unsafe { &*self.ptr.cast::<std::sync::atomic::AtomicU64>() }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps the region mapped in `map`; no reference into it
        // outlives `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}
