//! The C program's handles: chids, coids and receive ids, each naming a facade
//! object.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::types::{self, RecvBufCallback};

/// What a chid names.
pub(crate) enum Chan {
    /// `asyncmsg_channel_create`.
    Async(AsyncChan),
    /// `ChannelCreate`, `name_attach`.
    Sync(SyncChan),
}

impl Chan {
    fn is_async(&self) -> bool {
        matches!(self, Chan::Async(_))
    }

    fn destroy(&self) {
        match self {
            Chan::Async(c) => c.chan.destroy(),
            Chan::Sync(c) => c.chan.destroy(),
        }
    }
}

/// Removes and destroys channel `chid` if it is of the kind asked for
/// (asynchronous or not); whether it was.
pub(crate) fn destroy_chan(chid: c_int, asynchronous: bool) -> bool {
    match remove_chan_if(chid, |c| c.is_async() == asynchronous) {
        Some(c) => {
            c.destroy();
            true
        }
        None => false,
    }
}

pub(crate) struct AsyncChan {
    pub chan: am::Channel,
    pub buffer_size: usize,
    pub recvbuf: Option<RecvBufCallback>,
}

pub(crate) struct SyncChan {
    pub chan: am::SyncChannel,
    /// Whether the program asked for `_PULSE_CODE_DISCONNECT` pulses
    /// (`_NTO_CHF_DISCONNECT`, always for `name_attach`).
    pub disconnect: bool,
}

/// What a coid names.
pub(crate) enum Coid {
    /// `asyncmsg_connect_attach`.
    Async(AsyncConn),
    /// `ConnectAttach`, `name_open`.
    Sync(am::SyncConnection),
    /// Taken while its connection is being made (the facade needs the coid
    /// first); looked up as if absent.
    Reserved,
}

pub(crate) struct AsyncConn {
    pub conn: am::Connection,
    /// The attribute's `call_back` (a `CallBack` as an address, 0 for none):
    /// read by the delivery closure, changed by `asyncmsg_connect_attr`.
    pub call_back: Arc<AtomicUsize>,
    /// The attributes as the program last gave them.
    pub attr: Mutex<types::ConnectionAttr>,
    /// `_NTO_COF_NONBLOCK`.
    pub nonblocking: bool,
}

#[derive(Default)]
struct Tables {
    chans: RwLock<HashMap<c_int, Arc<Chan>>>,
    coids: RwLock<BTreeMap<c_int, Arc<Coid>>>,
    /// C receive id → the channel and the facade's receive id on it.
    rcvids: Mutex<HashMap<c_int, (Arc<Chan>, i32)>>,
    next_rcvid: AtomicI32,
}

/// Bumped whenever a chid or coid is removed: a thread's cached lookup is
/// good while this has not moved.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A thread's last lookup: the id, the generation it saw, what it found.
type Last<T> = RefCell<Option<(c_int, u64, Arc<T>)>>;

thread_local! {
    /// The last chid and coid this thread looked up, with the generation it
    /// saw: a put or get loop finds its handle without touching the tables.
    static LAST_CHAN: Last<Chan> = const { RefCell::new(None) };
    static LAST_COID: Last<Coid> = const { RefCell::new(None) };
}

/// Looks `id` up through the thread's one-entry cache `last`.
fn cached<T>(
    last: &'static std::thread::LocalKey<Last<T>>,
    id: c_int,
    lookup: impl FnOnce() -> Option<Arc<T>>,
) -> Option<Arc<T>> {
    let generation = GENERATION.load(Ordering::Acquire);
    let hit = last
        .try_with(|l| {
            l.try_borrow().ok().and_then(|l| match &*l {
                Some((i, g, v)) if *i == id && *g == generation => Some(v.clone()),
                _ => None,
            })
        })
        .ok()
        .flatten();
    if hit.is_some() {
        return hit;
    }
    let found = lookup()?;
    let _ = last.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = Some((id, generation, found.clone()));
        }
    });
    Some(found)
}

fn removed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(Tables::default)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn add_chan(chid: c_int, chan: Chan) {
    write(&tables().chans).insert(chid, Arc::new(chan));
}

pub(crate) fn chan(chid: c_int) -> Option<Arc<Chan>> {
    cached(&LAST_CHAN, chid, || {
        read(&tables().chans).get(&chid).cloned()
    })
}

pub(crate) fn remove_chan(chid: c_int) -> Option<Arc<Chan>> {
    let r = write(&tables().chans).remove(&chid);
    removed();
    r
}

/// Removes `chid` only if it names a channel `keep` accepts.
fn remove_chan_if(chid: c_int, keep: impl Fn(&Chan) -> bool) -> Option<Arc<Chan>> {
    let mut t = write(&tables().chans);
    if t.get(&chid).is_some_and(|c| keep(c)) {
        let r = t.remove(&chid);
        removed();
        r
    } else {
        None
    }
}

/// Adds the connection `make` builds for its coid, the first free one from
/// `index` up (QNX: "the first available connection ID starting at
/// `index`"); side-channel coids (`_NTO_SIDE_CHANNEL`) and the others are
/// separate ranges. The coid is reserved while `make` runs, without holding
/// the table. EAGAIN when the range is full, else `make`'s error.
pub(crate) fn add_coid(
    index: c_int,
    side: bool,
    make: impl FnOnce(c_int) -> Result<Coid, c_int>,
) -> Result<c_int, c_int> {
    let index = (index & !types::NTO_SIDE_CHANNEL).max(0);
    let (mut want, hi) = if side {
        (types::NTO_SIDE_CHANNEL.saturating_add(index), c_int::MAX)
    } else {
        (
            index.clamp(1, types::NTO_SIDE_CHANNEL - 1),
            types::NTO_SIDE_CHANNEL - 1,
        )
    };
    {
        let mut t = write(&tables().coids);
        for (&used, _) in t.range(want..=hi) {
            if used != want {
                break;
            }
            if want == hi {
                return Err(libc::EAGAIN);
            }
            want += 1;
        }
        t.insert(want, Arc::new(Coid::Reserved));
    }
    match make(want) {
        Ok(c) => {
            write(&tables().coids).insert(want, Arc::new(c));
            Ok(want)
        }
        Err(e) => {
            write(&tables().coids).remove(&want);
            Err(e)
        }
    }
}

pub(crate) fn coid(coid: c_int) -> Option<Arc<Coid>> {
    cached(&LAST_COID, coid, || {
        read(&tables().coids).get(&coid).cloned()
    })
}

pub(crate) fn remove_coid_if(coid: c_int, keep: impl Fn(&Coid) -> bool) -> Option<Arc<Coid>> {
    let mut t = write(&tables().coids);
    if t.get(&coid)
        .is_some_and(|c| !matches!(**c, Coid::Reserved) && keep(c))
    {
        let r = t.remove(&coid);
        removed();
        r
    } else {
        None
    }
}

/// A C receive id (> 0) for request `rcvid` of `chan`.
pub(crate) fn add_rcvid(chan: Arc<Chan>, rcvid: i32) -> c_int {
    let t = tables();
    let mut ids = lock(&t.rcvids);
    loop {
        let id = t.next_rcvid.fetch_add(1, Ordering::Relaxed);
        if id > 0 && !ids.contains_key(&id) {
            ids.insert(id, (chan, rcvid));
            return id;
        }
        if id <= 0 {
            t.next_rcvid.store(1, Ordering::Relaxed);
        }
    }
}

pub(crate) fn take_rcvid(id: c_int) -> Option<(Arc<Chan>, i32)> {
    lock(&tables().rcvids).remove(&id)
}

pub(crate) fn put_back_rcvid(id: c_int, entry: (Arc<Chan>, i32)) {
    lock(&tables().rcvids).insert(id, entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy() -> Coid {
        let node = am::Node::new().unwrap();
        let server = node.create_sync_channel(0o600).unwrap();
        let conn = node.open(server.id()).unwrap();
        // The connection outlives the channel here: only its id matters.
        std::mem::forget(server);
        Coid::Sync(conn)
    }

    #[test]
    fn coids_start_at_the_index_and_skip_used_ones() {
        let a = add_coid(5000, false, |_| Ok(dummy())).unwrap();
        assert_eq!(a, 5000);
        let b = add_coid(5000, false, |_| Ok(dummy())).unwrap();
        assert_eq!(b, 5001);
        assert!(remove_coid_if(a, |_| true).is_some());
        assert_eq!(add_coid(5000, false, |_| Ok(dummy())), Ok(5000));
        // A failed make gives its coid back.
        assert_eq!(add_coid(5002, false, Err), Err(5002));
        assert_eq!(add_coid(5002, false, |_| Ok(dummy())), Ok(5002));
        // Index 0 never gives coid 0; side channels have their own range.
        assert!(add_coid(0, false, |_| Ok(dummy())).unwrap() >= 1);
        let s = add_coid(types::NTO_SIDE_CHANNEL, true, |_| Ok(dummy())).unwrap();
        assert!(s >= types::NTO_SIDE_CHANNEL);
        assert!(coid(s).is_some());
    }

    #[test]
    fn a_removed_coid_is_not_found_through_the_cache() {
        let a = add_coid(7000, false, |_| Ok(dummy())).unwrap();
        assert!(coid(a).is_some()); // cached now
        assert!(remove_coid_if(a, |_| true).is_some());
        assert!(coid(a).is_none());
    }

    #[test]
    fn rcvids_are_positive_and_taken_once() {
        let node = am::Node::new().unwrap();
        let chan = Arc::new(Chan::Sync(SyncChan {
            chan: node.create_sync_channel(0o600).unwrap(),
            disconnect: false,
        }));
        let id = add_rcvid(chan.clone(), 9);
        assert!(id > 0);
        assert_eq!(take_rcvid(id).map(|(_, r)| r), Some(9));
        assert!(take_rcvid(id).is_none());
    }
}
