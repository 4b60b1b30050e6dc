//! `<sys/asyncmsg.h>`: channels, connections, put, flush, get, free.

use std::ffi::{c_int, c_uint, c_void};
use std::mem::offset_of;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use am::{ChannelConfig, ChannelEvent, ChannelId, Delivery, Flush, SendBuf};

use crate::table::{self, AsyncChan, AsyncConn, Chan, Coid};
use crate::types::{self, CallBack, GetHeader, MsgInfo, RecvBufCallback};
use crate::{fail, guard, node, set_errno};

/// `max_num_buffer` 0 on a channel: this many messages per get.
const DEFAULT_GET_BATCH: usize = 16;
/// `max_num_buffer` 0 on a connection: this many messages in flight.
const DEFAULT_CONN_BUFFERS: u32 = 64;

/// The delivery callback's `err` for a delivery.
fn delivery_errno(d: &Delivery) -> c_int {
    match d.result {
        Ok(()) => 0,
        Err(kind) => kind.errno(),
    }
}

fn call_back_from(addr: usize) -> Option<CallBack> {
    if addr == 0 {
        None
    } else {
        // SAFETY: non-zero values only ever come from `CallBack` pointers
        // (`call_back_addr`).
        Some(unsafe { std::mem::transmute::<usize, CallBack>(addr) })
    }
}

fn call_back_addr(f: Option<CallBack>) -> usize {
    f.map_or(0, |f| f as usize)
}

/// Calls a C delivery callback.
fn call(f: CallBack, err: c_int, buf: *const c_void, handle: u64) {
    // SAFETY: the program gave this callback for exactly this call; `buf` is
    // the pointer it put. The handle is the 32-bit one it gave.
    unsafe { f(err, buf.cast_mut(), handle as c_uint) };
}

/// The facade attributes for a C `struct _asyncmsg_connection_attr`.
fn facade_attr(
    a: &types::ConnectionAttr,
    nonblocking: bool,
    call_back: &Arc<AtomicUsize>,
) -> am::ConnectionAttr {
    let max = if a.max_num_buffer == 0 {
        DEFAULT_CONN_BUFFERS
    } else {
        a.max_num_buffer
    };
    let mut attr = am::ConnectionAttr::default()
        .max_buffers(max)
        .trigger_count(a.trigger_num_msg)
        .nonblocking(nonblocking)
        .no_trigger_time();
    if a.trigger_time.nsec > 0 {
        attr = attr.trigger_time(Duration::from_nanos(a.trigger_time.nsec));
    }
    if a.trigger_time.interval_nsec > 0 {
        attr = attr.trigger_interval(Duration::from_nanos(a.trigger_time.interval_nsec));
    }
    let cb = call_back.clone();
    attr.on_delivered(move |d| {
        if let Some(f) = call_back_from(cb.load(Ordering::Acquire)) {
            let buf = d.buf.lent_ptr().unwrap_or(d.buf.as_ptr());
            call(f, delivery_errno(&d), buf.cast(), d.handle);
        }
    })
}

/// The event a C `struct sigevent` asks for.
///
/// # Safety
/// `ev` is NULL or points to a readable `struct sigevent`.
unsafe fn channel_event(ev: *const types::SigEvent) -> Result<ChannelEvent, c_int> {
    if ev.is_null() {
        return Ok(ChannelEvent::None);
    }
    // SAFETY: the caller's contract.
    let ev = unsafe { ptr::read_unaligned(ev) };
    match ev.notify {
        types::SIGEV_NONE => Ok(ChannelEvent::None),
        types::SIGEV_SIGNAL => {
            let signo = ev.signo;
            if !(1..=libc::SIGRTMAX()).contains(&signo) {
                return Err(libc::EINVAL);
            }
            Ok(ChannelEvent::closure(move || {
                // SAFETY: plain syscalls on this process.
                unsafe { libc::kill(libc::getpid(), signo) };
            }))
        }
        types::SIGEV_PULSE => {
            let code = i8::try_from(ev.pad[1]).map_err(|_| libc::EINVAL)?;
            let value = ev.value as u32 as i32;
            match table::coid(ev.signo).as_deref() {
                Some(Coid::Sync(conn)) => Ok(ChannelEvent::pulse(conn, code, value)),
                _ => Err(libc::EINVAL),
            }
        }
        _ => Err(libc::EINVAL),
    }
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `ev` is NULL or points to a `struct sigevent`; `recvbuf_callback` is NULL
/// or a function of the documented signature.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_channel_create(
    flags: c_uint,
    mode: libc::mode_t,
    buffer_size: usize,
    max_num_buffer: c_uint,
    ev: *const types::SigEvent,
    recvbuf_callback: Option<RecvBufCallback>,
) -> c_int {
    guard(-1, || {
        if buffer_size == 0 || buffer_size > am::sync::MAX_MESSAGE {
            return fail(libc::EINVAL, -1);
        }
        // SAFETY: the caller's contract.
        let event = match unsafe { channel_event(ev) } {
            Ok(e) => e,
            Err(e) => return fail(e, -1),
        };
        let node = match node() {
            Ok(n) => n,
            Err(e) => return fail(e, -1),
        };
        let batch = if max_num_buffer == 0 {
            DEFAULT_GET_BATCH
        } else {
            max_num_buffer as usize
        };
        let cfg = ChannelConfig::default()
            .buffer_size(buffer_size)
            .max_buffers(batch)
            .nonblocking(flags & types::NTO_CHF_ASYNC_NONBLOCK != 0)
            .mode(mode & 0o777)
            .event(event);
        match node.create_channel(cfg) {
            Ok(chan) => {
                let chid = chan.chid();
                table::add_chan(
                    chid,
                    Chan::Async(AsyncChan {
                        chan,
                        buffer_size,
                        recvbuf: recvbuf_callback,
                    }),
                );
                chid
            }
            Err(e) => fail(e.kind().errno(), -1),
        }
    })
}

/// See `<sys/asyncmsg.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn asyncmsg_channel_destroy(chid: c_int) -> c_int {
    guard(-1, || {
        if table::destroy_chan(chid, true) {
            0
        } else {
            fail(libc::EBADF, -1)
        }
    })
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `attr` is NULL or points to a `struct _asyncmsg_connection_attr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_connect_attach(
    nd: u32,
    pid: libc::pid_t,
    chid: c_int,
    index: c_uint,
    flags: c_uint,
    attr: *const types::ConnectionAttr,
) -> c_int {
    guard(-1, || {
        let pid = match crate::peer_pid(nd, pid) {
            Ok(p) => p,
            Err(e) => return fail(e, -1),
        };
        let a = if attr.is_null() {
            types::ConnectionAttr::default()
        } else {
            // SAFETY: the caller's contract.
            unsafe { ptr::read_unaligned(attr) }
        };
        let node = match node() {
            Ok(n) => n,
            Err(e) => return fail(e, -1),
        };
        let nonblocking = flags & types::NTO_COF_NONBLOCK != 0;
        let index = c_int::try_from(index).unwrap_or(c_int::MAX);
        let made = table::add_coid(index, false, |coid| {
            let call_back = Arc::new(AtomicUsize::new(call_back_addr(a.call_back)));
            let fattr = facade_attr(&a, nonblocking, &call_back).with_coid(coid);
            let conn = node
                .connect(ChannelId { nd: 0, pid, chid }, fattr)
                .map_err(|e| crate::connect_errno(&e))?;
            Ok(Coid::Async(AsyncConn {
                conn,
                call_back,
                attr: Mutex::new(a),
                nonblocking,
            }))
        });
        made.unwrap_or_else(|e| fail(e, -1))
    })
}

/// See `<sys/asyncmsg.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn asyncmsg_connect_detach(coid: c_int) -> c_int {
    guard(-1, || {
        match table::remove_coid_if(coid, |c| matches!(c, Coid::Async(_))).as_deref() {
            Some(Coid::Async(c)) => {
                c.conn.detach();
                0
            }
            _ => fail(libc::EBADF, -1),
        }
    })
}

fn async_conn(coid: c_int) -> Result<Arc<Coid>, c_int> {
    match table::coid(coid) {
        Some(c) if matches!(*c, Coid::Async(_)) => Ok(c),
        _ => Err(libc::EBADF),
    }
}

/// Runs `f` on connection `coid` (EBADF if there is none).
fn with_conn(coid: c_int, f: impl FnOnce(&AsyncConn) -> c_int) -> c_int {
    match async_conn(coid) {
        Ok(c) => match &*c {
            Coid::Async(conn) => f(conn),
            _ => fail(libc::EBADF, -1),
        },
        Err(e) => fail(e, -1),
    }
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `old_attr` is NULL or writable, `new_attr` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_connect_attr(
    coid: c_int,
    old_attr: *mut types::ConnectionAttr,
    new_attr: *const types::ConnectionAttr,
) -> c_int {
    guard(-1, || {
        with_conn(coid, |c| {
            let mut current = c.attr.lock().unwrap_or_else(|p| p.into_inner());
            if !old_attr.is_null() {
                // SAFETY: the caller's contract.
                unsafe { ptr::write_unaligned(old_attr, *current) };
            }
            if new_attr.is_null() {
                return 0;
            }
            // SAFETY: the caller's contract.
            let a = unsafe { ptr::read_unaligned(new_attr) };
            let fattr = facade_attr(&a, c.nonblocking, &c.call_back).with_coid(c.conn.coid());
            if let Err(e) = c.conn.set_attr(fattr) {
                return fail(e.kind().errno(), -1);
            }
            c.call_back
                .store(call_back_addr(a.call_back), Ordering::Release);
            *current = a;
            0
        })
    })
}

/// Puts `buf` on `c`. Its callback is `own`, else the connection's; a lent
/// buffer tells the connection's callback its pointer, any other message
/// (gathered by `asyncmsg_putv`) calls back with `cb_buf`.
fn put(
    c: &AsyncConn,
    buf: SendBuf,
    handle: c_uint,
    own: Option<CallBack>,
    cb_buf: *const c_void,
) -> c_int {
    let handle = u64::from(handle);
    let plain = buf.lent_ptr().is_some()
        && (own.is_none() || call_back_addr(own) == c.call_back.load(Ordering::Acquire));
    let r = if plain {
        c.conn.put(buf, handle)
    } else {
        let conn_cb = c.call_back.clone();
        let cb_buf = cb_buf as usize;
        c.conn.put_with(buf, handle, move |d| {
            if let Some(f) = own.or_else(|| call_back_from(conn_cb.load(Ordering::Acquire))) {
                call(f, delivery_errno(&d), cb_buf as *const c_void, d.handle);
            }
        })
    };
    match r {
        Ok(()) => 0,
        Err(e) => fail(e.kind().errno(), -1),
    }
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `buff` points to `size` readable bytes that stay valid and unchanged until
/// the message's callback runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_put(
    coid: c_int,
    buff: *const c_void,
    size: usize,
    handle: c_uint,
    call_back: Option<CallBack>,
) -> c_int {
    guard(-1, || {
        if buff.is_null() && size > 0 {
            return fail(libc::EINVAL, -1);
        }
        with_conn(coid, |c| {
            // SAFETY: the caller's contract, which is `SendBuf::lent`'s.
            let buf = unsafe { SendBuf::lent(buff.cast(), size) };
            put(c, buf, handle, call_back, buff)
        })
    })
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `iov` points to `parts` readable `iov_t`s, each naming readable memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_putv(
    coid: c_int,
    iov: *const libc::iovec,
    parts: c_int,
    handle: c_uint,
    call_back: Option<CallBack>,
) -> c_int {
    guard(-1, || {
        let Ok(n) = usize::try_from(parts) else {
            return fail(libc::EINVAL, -1);
        };
        if iov.is_null() && n > 0 {
            return fail(libc::EINVAL, -1);
        }
        with_conn(coid, |c| {
            let parts: &[libc::iovec] = if n == 0 {
                &[]
            } else {
                // SAFETY: the caller's contract.
                unsafe { std::slice::from_raw_parts(iov, n) }
            };
            let mut total = 0usize;
            for p in parts {
                if p.iov_base.is_null() && p.iov_len > 0 {
                    return fail(libc::EINVAL, -1);
                }
                total = match total.checked_add(p.iov_len) {
                    Some(t) if t <= c.conn.max_message() => t,
                    _ => return fail(libc::EMSGSIZE, -1),
                };
            }
            let mut buf = c.conn.alloc(total);
            let mut at = 0;
            for p in parts.iter().filter(|p| p.iov_len > 0) {
                // SAFETY: the caller's contract: `iov_len` readable bytes.
                let src = unsafe { std::slice::from_raw_parts(p.iov_base.cast::<u8>(), p.iov_len) };
                buf[at..at + src.len()].copy_from_slice(src);
                at += src.len();
            }
            put(c, buf, handle, call_back, iov.cast())
        })
    })
}

/// See `<sys/asyncmsg.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn asyncmsg_flush(coid: c_int, mode: c_int) -> c_int {
    guard(-1, || {
        let mode = if mode & types::ASYNCMSG_FLUSH_NONBLOCK != 0 {
            Flush::NoWait
        } else {
            Flush::Wait
        };
        with_conn(coid, |c| match c.conn.flush(mode) {
            Ok(()) => 0,
            Err(e) => fail(e.kind().errno(), -1),
        })
    })
}

// ---------------------------------------------------------------------------
// Received messages and asyncmsg_malloc buffers
// ---------------------------------------------------------------------------

/// Marks memory this library allocated, just before the pointer it handed out.
const MAGIC: u32 = 0xA5C3_4D47;
const KIND_HEADER: u32 = 1;
const KIND_MALLOC: u32 = 2;

/// One received message: header, its one `iov_t` and (unless a
/// `recvbuf_callback` gave the body's buffer) the body, in one allocation.
#[repr(C)]
struct Block {
    /// The `recvbuf_callback` that gave the body's buffer, as an address (0:
    /// the body follows the block).
    recvbuf: usize,
    /// The size that callback was asked for.
    bufsize: usize,
    magic: u32,
    kind: u32,
    hdr: GetHeader,
    iov: libc::iovec,
}

/// What precedes an `asyncmsg_malloc` buffer.
#[repr(C)]
struct MallocPrefix {
    size: usize,
    magic: u32,
    kind: u32,
}

// `asyncmsg_free` finds the marks 8 bytes before the pointer either way.
const _: () = assert!(offset_of!(Block, hdr) - offset_of!(Block, magic) == 8);
const _: () = assert!(size_of::<MallocPrefix>() - offset_of!(MallocPrefix, magic) == 8);

fn msg_info(info: &am::MsgInfo, dst: usize) -> MsgInfo {
    let len = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    MsgInfo {
        nd: info.nd,
        pid: info.pid as libc::pid_t,
        tid: info.tid as i32,
        chid: info.chid,
        scoid: info.scoid,
        coid: info.coid,
        msglen: len(info.msglen),
        srcmsglen: len(info.srcmsglen),
        dstmsglen: len(dst),
        ..MsgInfo::default()
    }
}

/// Copies `msg` into a new list node (`recvbuf` gives the body's buffer if
/// set). NULL if memory ran out.
fn node_for(
    msg: &am::Message,
    buffer_size: usize,
    recvbuf: Option<RecvBufCallback>,
) -> *mut GetHeader {
    let data = msg.data();
    let mut body: *mut c_void = ptr::null_mut();
    let mut from_cb = None;
    if let Some(f) = recvbuf {
        let mut bufs = [ptr::null_mut::<c_void>()];
        // SAFETY: the program's allocator, called as documented: one buffer of
        // `buffer_size` bytes into bufs[0].
        let got = unsafe {
            f(
                buffer_size,
                1,
                bufs.as_mut_ptr(),
                types::ASYNCMSG_RECVBUF_ALLOC,
            )
        };
        if got >= 1 && !bufs[0].is_null() && data.len() <= buffer_size {
            body = bufs[0];
            from_cb = Some(f);
        } else if got >= 1 && !bufs[0].is_null() {
            // SAFETY: as above, giving back the buffer it just gave.
            unsafe {
                f(
                    buffer_size,
                    1,
                    bufs.as_mut_ptr(),
                    types::ASYNCMSG_RECVBUF_FREE,
                )
            };
        }
    }
    let tail = if from_cb.is_some() { 0 } else { data.len() };
    let Some(size) = size_of::<Block>().checked_add(tail) else {
        return ptr::null_mut();
    };
    // SAFETY: plain allocation; checked below.
    let block = unsafe { libc::malloc(size) }.cast::<Block>();
    if block.is_null() {
        if let (Some(f), false) = (from_cb, body.is_null()) {
            let mut bufs = [body];
            // SAFETY: giving back the buffer the program's allocator gave.
            unsafe {
                f(
                    buffer_size,
                    1,
                    bufs.as_mut_ptr(),
                    types::ASYNCMSG_RECVBUF_FREE,
                )
            };
        }
        return ptr::null_mut();
    }
    if from_cb.is_none() {
        // SAFETY: the body follows the block inside the allocation.
        body = unsafe { block.add(1) }.cast();
    }
    // SAFETY: `body` has room for `data.len()` bytes (checked against
    // `buffer_size` for a program's buffer, allocated above otherwise), and
    // does not overlap `data`.
    unsafe { ptr::copy_nonoverlapping(data.as_ptr(), body.cast::<u8>(), data.len()) };
    // SAFETY: `block` is a fresh allocation of at least `size_of::<Block>()`
    // bytes, aligned by malloc for any type.
    unsafe {
        let iov = &raw mut (*block).iov;
        block.write(Block {
            recvbuf: call_back_addr_recv(from_cb),
            bufsize: buffer_size,
            magic: MAGIC,
            kind: KIND_HEADER,
            hdr: GetHeader {
                info: msg_info(&msg.info(), buffer_size),
                err: 0,
                iov,
                parts: 1,
                next: ptr::null_mut(),
                reserve: [0; 2],
            },
            iov: libc::iovec {
                iov_base: body,
                iov_len: data.len(),
            },
        });
        &raw mut (*block).hdr
    }
}

fn call_back_addr_recv(f: Option<RecvBufCallback>) -> usize {
    f.map_or(0, |f| f as usize)
}

/// See `<sys/asyncmsg.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn asyncmsg_get(chid: c_int) -> *mut GetHeader {
    guard(ptr::null_mut(), || {
        let Some(entry) = table::chan(chid) else {
            return fail(libc::EBADF, ptr::null_mut());
        };
        let Chan::Async(c) = &*entry else {
            return fail(libc::EBADF, ptr::null_mut());
        };
        thread_local! {
            static BATCH: std::cell::RefCell<Vec<am::Message>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // The thread's batch vector, reused (a nested get, from a callback,
        // makes its own).
        let mut own = Vec::new();
        let mut reused = BATCH
            .try_with(|b| b.try_borrow_mut().ok().map(|mut v| std::mem::take(&mut *v)))
            .ok()
            .flatten();
        let batch = reused.as_mut().unwrap_or(&mut own);
        if let Err(e) = c.chan.get_into(batch, None) {
            return fail(e.kind().errno(), ptr::null_mut());
        }
        let head = list_of(batch, c);
        batch.clear();
        if let Some(v) = reused {
            let _ = BATCH.try_with(|b| {
                if let Ok(mut b) = b.try_borrow_mut() {
                    *b = v;
                }
            });
        }
        if head.is_null() {
            return fail(libc::ENOMEM, ptr::null_mut());
        }
        head
    })
}

/// The list of nodes for `batch`.
fn list_of(batch: &[am::Message], c: &AsyncChan) -> *mut GetHeader {
    let mut head: *mut GetHeader = ptr::null_mut();
    let mut tail: *mut GetHeader = ptr::null_mut();
    for msg in batch {
        let n = node_for(msg, c.buffer_size, c.recvbuf);
        if n.is_null() {
            // Out of memory: what was copied is returned; the rest is
            // lost to this receiver, and said so.
            set_errno(libc::ENOMEM);
            eprintln!("asyncmsg_get: out of memory, messages dropped");
            break;
        }
        if tail.is_null() {
            head = n;
        } else {
            // SAFETY: `tail` is a node made above.
            unsafe { (*tail).next = n };
        }
        tail = n;
    }
    head
}

/// See `<sys/asyncmsg.h>`.
///
/// # Safety
/// `buf` is NULL, a node from `asyncmsg_get`, or a buffer from
/// `asyncmsg_malloc` (or `malloc`), not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn asyncmsg_free(buf: *mut c_void) {
    guard((), || {
        if buf.is_null() {
            return;
        }
        // SAFETY: every pointer the caller may pass has at least 8 readable
        // bytes before it: our marks, or malloc's chunk header.
        let (magic, kind) = unsafe {
            let marks = buf.cast::<u32>().sub(2);
            (marks.read(), marks.add(1).read())
        };
        match (magic, kind) {
            (MAGIC, KIND_HEADER) => {
                // SAFETY: a node of ours: the block starts `hdr`'s offset
                // before it.
                unsafe {
                    let block = buf.cast::<u8>().sub(offset_of!(Block, hdr)).cast::<Block>();
                    if (*block).recvbuf != 0 {
                        let f: RecvBufCallback =
                            std::mem::transmute::<usize, RecvBufCallback>((*block).recvbuf);
                        let mut bufs = [(*block).iov.iov_base];
                        f(
                            (*block).bufsize,
                            1,
                            bufs.as_mut_ptr(),
                            types::ASYNCMSG_RECVBUF_FREE,
                        );
                    }
                    (*block).magic = 0;
                    libc::free(block.cast());
                }
            }
            (MAGIC, KIND_MALLOC) => {
                // SAFETY: a buffer of `asyncmsg_malloc`: the prefix precedes it.
                unsafe {
                    let prefix = buf.cast::<MallocPrefix>().sub(1);
                    (*prefix).magic = 0;
                    libc::free(prefix.cast());
                }
            }
            // SAFETY: the caller's contract: memory from malloc.
            _ => unsafe { libc::free(buf) },
        }
    })
}

/// See `<sys/asyncmsg.h>`.
#[unsafe(no_mangle)]
pub extern "C" fn asyncmsg_malloc(size: usize) -> *mut c_void {
    guard(ptr::null_mut(), || {
        let Some(total) = size.checked_add(size_of::<MallocPrefix>()) else {
            return fail(libc::ENOMEM, ptr::null_mut());
        };
        // SAFETY: plain allocation; checked below.
        let p = unsafe { libc::malloc(total) }.cast::<MallocPrefix>();
        if p.is_null() {
            return fail(libc::ENOMEM, ptr::null_mut());
        }
        // SAFETY: `p` has room for the prefix and `size` bytes after it.
        unsafe {
            p.write(MallocPrefix {
                size,
                magic: MAGIC,
                kind: KIND_MALLOC,
            });
            p.add(1).cast()
        }
    })
}
