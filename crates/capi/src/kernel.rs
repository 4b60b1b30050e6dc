//! `<sys/neutrino.h>` and `<sys/dispatch.h>`: the synchronous companion's
//! channels, connections, messages, pulses and names.

use std::ffi::{CStr, c_char, c_int, c_long, c_uint, c_void};
use std::ptr;
use std::sync::Arc;

use am::{ChannelId, ConnectError, ReceiveError, Received, ReplyError};

use crate::table::{self, Chan, Coid, SyncChan};
use crate::types::{self, MsgInfo, NameAttach, Pulse, ServerInfo};
use crate::{fail, guard, node};

/// Who may connect to a channel made by `ChannelCreate` or `name_attach`
/// from another process of the same host (QNX has no mode for them).
const SYNC_MODE: u32 = 0o666;

fn create_sync(disconnect: bool) -> Result<(c_int, Arc<Chan>), c_int> {
    let node = node()?;
    let chan = node
        .create_sync_channel(SYNC_MODE)
        .map_err(|e| e.kind().errno())?;
    let chid = chan.chid();
    table::add_chan(chid, Chan::Sync(SyncChan { chan, disconnect }));
    let entry = table::chan(chid).ok_or(libc::ESRCH)?;
    Ok((chid, entry))
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn ChannelCreate(flags: c_uint) -> c_int {
    guard(-1, || {
        match create_sync(flags & types::NTO_CHF_DISCONNECT != 0) {
            Ok((chid, _)) => chid,
            Err(e) => fail(e, -1),
        }
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn ChannelDestroy(chid: c_int) -> c_int {
    guard(-1, || {
        if table::destroy_chan(chid, false) {
            0
        } else {
            fail(libc::EINVAL, -1)
        }
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn ConnectAttach(
    nd: u32,
    pid: libc::pid_t,
    chid: c_int,
    index: c_uint,
    _flags: c_int,
) -> c_int {
    guard(-1, || {
        let pid = match crate::peer_pid(nd, pid) {
            Ok(p) => p,
            Err(e) => return fail(e, -1),
        };
        let node = match node() {
            Ok(n) => n,
            Err(e) => return fail(e, -1),
        };
        let index = index as c_int;
        let side = index & types::NTO_SIDE_CHANNEL != 0;
        table::add_coid(index, side, |_| {
            node.open(ChannelId { nd: 0, pid, chid })
                .map(Coid::Sync)
                .map_err(|e| crate::connect_errno(&e))
        })
        .unwrap_or_else(|e| fail(e, -1))
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn ConnectDetach(coid: c_int) -> c_int {
    guard(-1, || {
        match table::remove_coid_if(coid, |_| true).as_deref() {
            Some(Coid::Sync(c)) => {
                c.close();
                0
            }
            Some(Coid::Async(c)) => {
                c.conn.detach();
                0
            }
            Some(Coid::Reserved) | None => fail(libc::EINVAL, -1),
        }
    })
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ConnectServerInfo(
    _pid: libc::pid_t,
    coid: c_int,
    info: *mut ServerInfo,
) -> c_int {
    guard(-1, || {
        let Some(c) = table::coid(coid) else {
            return fail(libc::EINVAL, -1);
        };
        let id = match &*c {
            Coid::Sync(s) => s.channel_id(),
            Coid::Async(a) => a.conn.channel_id(),
            Coid::Reserved => return fail(libc::EINVAL, -1),
        };
        if !info.is_null() {
            let si = ServerInfo {
                nd: id.nd,
                pid: id.pid as libc::pid_t,
                chid: id.chid,
                coid,
                ..ServerInfo::default()
            };
            // SAFETY: the caller's contract.
            unsafe { ptr::write_unaligned(info, si) };
        }
        coid
    })
}

/// Copies up to `cap` bytes of `src` to `dst`; returns how many.
///
/// # Safety
/// `dst` is writable for `cap` bytes (or `cap` is 0).
unsafe fn copy_out(src: &[u8], dst: *mut c_void, cap: usize) -> usize {
    let n = src.len().min(cap);
    if n > 0 {
        // SAFETY: the caller's contract; `src` is ours and cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst.cast::<u8>(), n) };
    }
    n
}

/// Stores a pulse as `struct _pulse` (up to `cap` bytes).
///
/// # Safety
/// As [`copy_out`].
unsafe fn store_pulse(
    p: &am::Pulse,
    dst: *mut c_void,
    cap: usize,
    info: *mut MsgInfo,
    chid: c_int,
) {
    let cp = Pulse {
        code: p.code,
        value: u64::from(p.value as u32),
        scoid: p.scoid,
        ..Pulse::default()
    };
    // SAFETY: `cp` is a plain repr(C) value without padding bytes left
    // uninitialised that matter to C (its padding is never read as data).
    let bytes =
        unsafe { std::slice::from_raw_parts((&raw const cp).cast::<u8>(), size_of::<Pulse>()) };
    // SAFETY: the caller's contract.
    unsafe { copy_out(bytes, dst, cap) };
    if !info.is_null() {
        let mi = MsgInfo {
            chid,
            scoid: p.scoid,
            ..MsgInfo::default()
        };
        // SAFETY: the caller's contract.
        unsafe { ptr::write_unaligned(info, mi) };
    }
}

fn sync_chan(chid: c_int) -> Result<Arc<Chan>, c_int> {
    match table::chan(chid) {
        Some(c) if matches!(*c, Chan::Sync(_)) => Ok(c),
        _ => Err(libc::ESRCH),
    }
}

/// Whether a pulse is one the program did not ask for (a disconnect pulse on
/// a channel made without `_NTO_CHF_DISCONNECT`).
fn unwanted(c: &SyncChan, p: &am::Pulse) -> bool {
    !c.disconnect && p.code == am::sync::PULSE_CODE_DISCONNECT
}

fn receive_errno(e: ReceiveError) -> c_int {
    match e {
        ReceiveError::Destroyed => libc::ESRCH,
        _ => libc::EINTR,
    }
}

/// MsgReceive and MsgReceivePulse: waits with `next` for what the program
/// wants (a disconnect pulse it did not ask for is passed over) and stores
/// it: a pulse as `struct _pulse` (returns 0), a request's bytes (returns
/// its rcvid).
///
/// # Safety
/// `buf` is writable for `bytes` bytes; `info` is NULL or writable.
unsafe fn receive_with(
    chid: c_int,
    buf: *mut c_void,
    bytes: usize,
    info: *mut MsgInfo,
    next: impl Fn(&am::SyncChannel) -> Result<Received, ReceiveError>,
) -> c_int {
    if buf.is_null() && bytes > 0 {
        return fail(libc::EFAULT, -1);
    }
    let entry = match sync_chan(chid) {
        Ok(c) => c,
        Err(e) => return fail(e, -1),
    };
    let Chan::Sync(c) = &*entry else {
        return fail(libc::ESRCH, -1);
    };
    loop {
        match next(&c.chan) {
            Ok(Received::Pulse(p)) if unwanted(c, &p) => continue,
            Ok(Received::Pulse(p)) => {
                // SAFETY: the caller's contract.
                unsafe { store_pulse(&p, buf, bytes, info, chid) };
                return 0;
            }
            Ok(Received::Request(r)) => {
                // SAFETY: the caller's contract.
                let n = unsafe { copy_out(r.data(), buf, bytes) };
                if !info.is_null() {
                    let len = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
                    let mi = MsgInfo {
                        pid: r.pid() as libc::pid_t,
                        chid,
                        scoid: r.scoid(),
                        coid: r.scoid(),
                        msglen: len(n),
                        srcmsglen: len(r.data().len()),
                        dstmsglen: len(bytes),
                        ..MsgInfo::default()
                    };
                    // SAFETY: the caller's contract.
                    unsafe { ptr::write_unaligned(info, mi) };
                }
                return table::add_rcvid(entry.clone(), r.rcvid());
            }
            Err(e) => return fail(receive_errno(e), -1),
        }
    }
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `msg` is writable for `bytes` bytes; `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReceive(
    chid: c_int,
    msg: *mut c_void,
    bytes: usize,
    info: *mut MsgInfo,
) -> c_int {
    // SAFETY: the caller's contract.
    guard(-1, || unsafe {
        receive_with(chid, msg, bytes, info, |c| c.receive())
    })
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `pulse` is writable for `bytes` bytes; `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReceivePulse(
    chid: c_int,
    pulse: *mut c_void,
    bytes: usize,
    info: *mut MsgInfo,
) -> c_int {
    guard(-1, || {
        // SAFETY: the caller's contract.
        unsafe {
            receive_with(chid, pulse, bytes, info, |c| {
                c.receive_pulse().map(Received::Pulse)
            })
        }
    })
}

fn sync_conn(coid: c_int) -> Result<Arc<Coid>, c_int> {
    match table::coid(coid) {
        Some(c) if matches!(*c, Coid::Sync(_)) => Ok(c),
        _ => Err(libc::EBADF),
    }
}

/// Sends `data` on `coid` and stores the reply with `store`; returns the
/// reply's status.
fn send_with(coid: c_int, data: &[u8], store: impl FnOnce(&[u8])) -> c_int {
    let c = match sync_conn(coid) {
        Ok(c) => c,
        Err(e) => return fail(e, -1),
    };
    let Coid::Sync(conn) = &*c else {
        return fail(libc::EBADF, -1);
    };
    match conn.send(data) {
        Ok(reply) => {
            store(&reply.data);
            reply.status
        }
        Err(e) => fail(e.errno(), -1),
    }
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `smsg` is readable for `sbytes`, `rmsg` writable for `rbytes` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgSend(
    coid: c_int,
    smsg: *const c_void,
    sbytes: usize,
    rmsg: *mut c_void,
    rbytes: usize,
) -> c_int {
    guard(-1, || {
        if (smsg.is_null() && sbytes > 0) || (rmsg.is_null() && rbytes > 0) {
            return fail(libc::EFAULT, -1);
        }
        if sbytes > am::sync::MAX_MESSAGE {
            return fail(libc::EMSGSIZE, -1);
        }
        let data: &[u8] = if sbytes == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(smsg.cast(), sbytes) }
        };
        send_with(coid, data, |reply| {
            // SAFETY: the caller's contract.
            unsafe { copy_out(reply, rmsg, rbytes) };
        })
    })
}

/// An I/O vector as slices; `None` if it is malformed.
///
/// # Safety
/// `iov` points to `parts` readable `iov_t`s.
unsafe fn iov_parts<'a>(iov: *const libc::iovec, parts: c_int) -> Option<&'a [libc::iovec]> {
    let n = usize::try_from(parts).ok()?;
    if n == 0 {
        return Some(&[]);
    }
    if iov.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let v = unsafe { std::slice::from_raw_parts(iov, n) };
    v.iter()
        .all(|p| !p.iov_base.is_null() || p.iov_len == 0)
        .then_some(v)
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `siov`/`riov` point to `sparts`/`rparts` `iov_t`s naming readable
/// (sending) and writable (replying) memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgSendv(
    coid: c_int,
    siov: *const libc::iovec,
    sparts: c_int,
    riov: *const libc::iovec,
    rparts: c_int,
) -> c_int {
    guard(-1, || {
        // SAFETY: the caller's contract.
        let (Some(s), Some(r)) = (unsafe { iov_parts(siov, sparts) }, unsafe {
            iov_parts(riov, rparts)
        }) else {
            return fail(libc::EFAULT, -1);
        };
        let mut data = Vec::new();
        for p in s.iter().filter(|p| p.iov_len > 0) {
            if data.len() + p.iov_len > am::sync::MAX_MESSAGE {
                return fail(libc::EMSGSIZE, -1);
            }
            // SAFETY: the caller's contract.
            data.extend_from_slice(unsafe {
                std::slice::from_raw_parts(p.iov_base.cast::<u8>(), p.iov_len)
            });
        }
        send_with(coid, &data, |mut reply| {
            for p in r {
                // SAFETY: the caller's contract.
                let n = unsafe { copy_out(reply, p.iov_base, p.iov_len) };
                reply = &reply[n..];
            }
        })
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn MsgSendPulse(coid: c_int, _priority: c_int, code: c_int, value: c_int) -> c_int {
    guard(-1, || {
        let Ok(code) = i8::try_from(code) else {
            return fail(libc::EINVAL, -1);
        };
        let c = match sync_conn(coid) {
            Ok(c) => c,
            Err(e) => return fail(e, -1),
        };
        let Coid::Sync(conn) = &*c else {
            return fail(libc::EBADF, -1);
        };
        match conn.send_pulse(code, value) {
            Ok(()) => 0,
            Err(e) => fail(e.errno(), -1),
        }
    })
}

/// Answers C receive id `rcvid` with `answer`.
fn answer(
    rcvid: c_int,
    answer: impl FnOnce(&am::SyncChannel, i32) -> Result<(), ReplyError>,
) -> c_int {
    let Some((entry, id)) = table::take_rcvid(rcvid) else {
        return fail(libc::ESRCH, -1);
    };
    let Chan::Sync(c) = &*entry else {
        return fail(libc::ESRCH, -1);
    };
    match answer(&c.chan, id) {
        Ok(()) => 0,
        Err(ReplyError::TooLarge(_)) => {
            table::put_back_rcvid(rcvid, (entry.clone(), id));
            fail(libc::EMSGSIZE, -1)
        }
        Err(_) => fail(libc::ESRCH, -1),
    }
}

/// See `<sys/neutrino.h>`.
///
/// # Safety
/// `msg` is readable for `bytes` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MsgReply(
    rcvid: c_int,
    status: c_long,
    msg: *const c_void,
    bytes: usize,
) -> c_int {
    guard(-1, || {
        if msg.is_null() && bytes > 0 {
            return fail(libc::EFAULT, -1);
        }
        let data: &[u8] = if bytes == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(msg.cast(), bytes) }
        };
        let status = i32::try_from(status).unwrap_or(if status < 0 { i32::MIN } else { i32::MAX });
        answer(rcvid, |chan, id| chan.reply(id, status, data))
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn MsgError(rcvid: c_int, error: c_int) -> c_int {
    guard(-1, || {
        answer(rcvid, |chan, id| {
            // QNX: MsgError with EOK makes the client's MsgSend return EOK.
            if error == 0 {
                chan.reply(id, 0, &[])
            } else {
                chan.reply_error(id, error)
            }
        })
    })
}

/// See `<sys/neutrino.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn delay(duration: c_uint) -> c_uint {
    guard(0, || {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(duration)));
        0
    })
}

/// A C string as UTF-8, or EINVAL.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn c_str<'a>(s: *const c_char) -> Result<&'a str, c_int> {
    if s.is_null() {
        return Err(libc::EINVAL);
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| libc::EINVAL)
}

/// See `<sys/dispatch.h>`.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn name_attach(
    dpp: *mut c_void,
    path: *const c_char,
    _flags: c_uint,
) -> *mut NameAttach {
    guard(ptr::null_mut(), || {
        // SAFETY: the caller's contract.
        let name = match unsafe { c_str(path) } {
            Ok(n) => n,
            Err(e) => return fail(e, ptr::null_mut()),
        };
        let (chid, entry) = match create_sync(true) {
            Ok(c) => c,
            Err(e) => return fail(e, ptr::null_mut()),
        };
        let Chan::Sync(c) = &*entry else {
            return fail(libc::EINVAL, ptr::null_mut());
        };
        if let Err(e) = c.chan.publish(name) {
            let errno = match e {
                am::ChannelError::NameTaken(_) => libc::EEXIST,
                e => e.kind().errno(),
            };
            table::remove_chan(chid);
            c.chan.destroy();
            return fail(errno, ptr::null_mut());
        }
        Box::into_raw(Box::new(NameAttach {
            dpp,
            chid,
            mntid: 0,
            zero: [0; 2],
        }))
    })
}

/// See `<sys/dispatch.h>`.
///
/// # Safety
/// `attach` is NULL or what `name_attach` returned, not detached before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn name_detach(attach: *mut NameAttach, _flags: c_uint) -> c_int {
    guard(-1, || {
        if attach.is_null() {
            return fail(libc::EINVAL, -1);
        }
        // SAFETY: the caller's contract.
        let chid = unsafe { (*attach).chid };
        if !table::destroy_chan(chid, false) {
            return fail(libc::EINVAL, -1);
        }
        // SAFETY: made by `Box::into_raw` in `name_attach`, freed once (its
        // channel was still in the table).
        drop(unsafe { Box::from_raw(attach) });
        0
    })
}

/// See `<sys/dispatch.h>`.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn name_open(name: *const c_char, _flags: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: the caller's contract.
        let name = match unsafe { c_str(name) } {
            Ok(n) => n,
            Err(e) => return fail(e, -1),
        };
        let node = match node() {
            Ok(n) => n,
            Err(e) => return fail(e, -1),
        };
        table::add_coid(1, false, |_| match node.open(name) {
            Ok(c) => Ok(Coid::Sync(c)),
            Err(ConnectError::NotFound(_)) => Err(libc::ENOENT),
            Err(ConnectError::InvalidArgument(_)) => Err(libc::EINVAL),
            Err(e) => Err(crate::connect_errno(&e)),
        })
        .unwrap_or_else(|e| fail(e, -1))
    })
}

/// See `<sys/dispatch.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn name_close(coid: c_int) -> c_int {
    ConnectDetach(coid)
}
