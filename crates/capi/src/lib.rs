//! libasyncmsg: QNX Neutrino's asynchronous messaging C API (`<sys/asyncmsg.h>`)
//! and the kernel calls around it (`<sys/neutrino.h>`, `<sys/dispatch.h>`), on
//! the asyncmsg facade.
//!
//! The headers in `include/` are the documentation of every function. Here:
//! - the process has one [`am::Node`], made on first use;
//! - chids and coids are the C program's handles to facade objects, kept in
//!   tables ([`table`]); a call clones what it needs and releases the table
//!   before it blocks, so a blocked get, receive, send or put never holds up
//!   another thread's attach or detach;
//! - every entry point returns -1 (or NULL) with `errno` set on failure, and
//!   catches panics, so no input makes it unwind into C.

mod asyncmsg_api;
mod kernel;
mod table;
mod types;

use std::ffi::c_int;
use std::sync::OnceLock;

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Sets `errno` to `e` and returns `v` (the failure value).
pub(crate) fn fail<T>(e: c_int, v: T) -> T {
    set_errno(e);
    v
}

/// Runs an entry point's body; a panic becomes `on_panic` with `errno` EFAULT
/// instead of unwinding into C.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => fail(libc::EFAULT, on_panic),
    }
}

/// The errno of a failed connect: QNX's EACCES for a mode that refuses us,
/// ESRCH for a channel that is not there.
pub(crate) fn connect_errno(e: &am::ConnectError) -> c_int {
    match e.kind() {
        am::ErrorKind::PermissionDenied => libc::EACCES,
        k => k.errno(),
    }
}

/// The process a connection goes to: `pid` 0 is this one; `nd` must be this
/// node (ESRCH otherwise).
pub(crate) fn peer_pid(nd: u32, pid: libc::pid_t) -> Result<u32, c_int> {
    match (nd, pid) {
        (0, 0) => Ok(std::process::id()),
        (0, p) if p > 0 => Ok(p as u32),
        _ => Err(libc::ESRCH),
    }
}

/// The process's node, made on first use.
pub(crate) fn node() -> Result<&'static am::Node, c_int> {
    static NODE: OnceLock<am::Node> = OnceLock::new();
    if let Some(n) = NODE.get() {
        return Ok(n);
    }
    let n = am::Node::new().map_err(|_| libc::EAGAIN)?;
    // Two first callers may race: one node is kept, the other dropped.
    Ok(NODE.get_or_init(|| n))
}
