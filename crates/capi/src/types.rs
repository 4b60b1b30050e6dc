//! The C structures of the headers in `include/`, field for field. Their sizes
//! and offsets are asserted here and, with the same numbers, in the C tests.

use std::ffi::{c_int, c_uint, c_void};

/// `int (*call_back)(int err, void *buf, unsigned handle)`.
pub(crate) type CallBack = unsafe extern "C" fn(c_int, *mut c_void, c_uint) -> c_int;
/// `int (*recvbuf_callback)(size_t bufsize, unsigned num_bufs, void *bufs[], int flags)`.
pub(crate) type RecvBufCallback =
    unsafe extern "C" fn(usize, c_uint, *mut *mut c_void, c_int) -> c_int;

/// `struct _itimer`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Itimer {
    pub nsec: u64,
    pub interval_nsec: u64,
}

/// `struct _asyncmsg_connection_attr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectionAttr {
    pub call_back: Option<CallBack>,
    pub buffer_size: usize,
    pub max_num_buffer: c_uint,
    pub trigger_num_msg: c_uint,
    pub trigger_time: Itimer,
    pub reserve: c_uint,
}

/// `struct _msg_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MsgInfo {
    pub nd: u32,
    pub srcnd: u32,
    pub pid: libc::pid_t,
    pub tid: i32,
    pub chid: i32,
    pub scoid: i32,
    pub coid: i32,
    pub msglen: i32,
    pub srcmsglen: i32,
    pub dstmsglen: i32,
    pub priority: i16,
    pub flags: i16,
    pub reserved: u32,
}

/// `struct _server_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerInfo {
    pub nd: u32,
    pub srcnd: u32,
    pub pid: libc::pid_t,
    pub tid: i32,
    pub chid: i32,
    pub scoid: i32,
    pub coid: i32,
    pub priority: i16,
    pub flags: i16,
    pub reserved: u32,
}

/// `struct _asyncmsg_get_header`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct GetHeader {
    pub info: MsgInfo,
    pub err: c_int,
    pub iov: *mut libc::iovec,
    pub parts: c_int,
    pub next: *mut GetHeader,
    pub reserve: [c_uint; 2],
}

/// `struct _pulse`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pulse {
    pub type_: u16,
    pub subtype: u16,
    pub code: i8,
    pub zero: [u8; 3],
    /// `union sigval`: `sival_int` in the low (first, little-endian) half.
    pub value: u64,
    pub scoid: i32,
}

/// glibc's `struct sigevent`, with QNX's pulse fields in its spare room (see
/// `include/sys/siginfo.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigEvent {
    /// `sigev_value`: `sival_int` in the low half.
    pub value: u64,
    /// `sigev_signo`, also `sigev_coid`.
    pub signo: c_int,
    pub notify: c_int,
    /// `_sigev_un._pad`: `[0]` is `sigev_priority`, `[1]` is `sigev_code`.
    pub pad: [c_int; 12],
}

/// `name_attach_t`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct NameAttach {
    pub dpp: *mut c_void,
    pub chid: c_int,
    pub mntid: c_int,
    pub zero: [c_int; 2],
}

pub(crate) const SIGEV_SIGNAL: c_int = 0;
pub(crate) const SIGEV_NONE: c_int = 1;
pub(crate) const SIGEV_PULSE: c_int = 0x50;

pub(crate) const NTO_CHF_DISCONNECT: c_uint = 0x0008;
pub(crate) const NTO_CHF_ASYNC_NONBLOCK: c_uint = 0x0200;
pub(crate) const NTO_COF_NONBLOCK: c_uint = 0x0100;
pub(crate) const NTO_SIDE_CHANNEL: c_int = 0x4000_0000;
pub(crate) const ASYNCMSG_FLUSH_NONBLOCK: c_int = 1;
pub(crate) const ASYNCMSG_RECVBUF_ALLOC: c_int = 1;
pub(crate) const ASYNCMSG_RECVBUF_FREE: c_int = 2;

// The layouts the headers promise (LP64). The C tests assert the same numbers.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Itimer>() == 16);
    assert!(size_of::<ConnectionAttr>() == 48);
    assert!(offset_of!(ConnectionAttr, trigger_time) == 24);
    assert!(size_of::<MsgInfo>() == 48);
    assert!(offset_of!(MsgInfo, msglen) == 28);
    assert!(size_of::<ServerInfo>() == 36);
    assert!(size_of::<GetHeader>() == 88);
    assert!(offset_of!(GetHeader, iov) == 56);
    assert!(offset_of!(GetHeader, next) == 72);
    assert!(size_of::<Pulse>() == 24);
    assert!(offset_of!(Pulse, value) == 8);
    assert!(offset_of!(Pulse, scoid) == 16);
    assert!(size_of::<SigEvent>() == 64);
    assert!(offset_of!(SigEvent, pad) == 16);
    assert!(size_of::<NameAttach>() == 24);
};
