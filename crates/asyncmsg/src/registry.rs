//! The process's channel table: channel ids and published names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::channel::ChannelId;
use crate::error::{ChannelError, ConnectError};
use crate::link::{ChanShared, lock};

#[derive(Default)]
struct Table {
    by_chid: HashMap<i32, Weak<ChanShared>>,
    by_name: HashMap<String, Weak<ChanShared>>,
}

fn table() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Default::default)
}

pub(crate) fn insert(chan: &Arc<ChanShared>) {
    lock(table())
        .by_chid
        .insert(chan.chid, Arc::downgrade(chan));
}

pub(crate) fn remove(chan: &ChanShared) {
    let mut t = lock(table());
    t.by_chid.remove(&chan.chid);
    for name in lock(&chan.names).drain(..) {
        if t.by_name
            .get(&name)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), chan))
        {
            t.by_name.remove(&name);
        }
    }
}

pub(crate) fn publish(name: &str, chan: &Arc<ChanShared>) -> Result<(), ChannelError> {
    let mut t = lock(table());
    // Under the table lock, so that a destroy (which withdraws the channel's
    // names under it too) either comes first and refuses, or comes after and
    // withdraws this name.
    if chan.destroyed.load(std::sync::atomic::Ordering::Acquire) {
        return Err(ChannelError::Destroyed);
    }
    if let Some(w) = t.by_name.get(name)
        && w.strong_count() > 0
        && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(chan))
    {
        return Err(ChannelError::NameTaken(name.to_owned()));
    }
    t.by_name.insert(name.to_owned(), Arc::downgrade(chan));
    let mut names = lock(&chan.names);
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
    Ok(())
}

pub(crate) fn by_id(id: ChannelId) -> Result<Arc<ChanShared>, ConnectError> {
    if id.nd != 0 || id.pid != std::process::id() {
        return Err(ConnectError::Unsupported(format!(
            "channel {}/{}/{} (another process or node)",
            id.nd, id.pid, id.chid
        )));
    }
    lock(table())
        .by_chid
        .get(&id.chid)
        .and_then(Weak::upgrade)
        .ok_or_else(|| ConnectError::NotFound(format!("chid {}", id.chid)))
}

pub(crate) fn by_address(addr: &str) -> Result<Arc<ChanShared>, ConnectError> {
    let name = match addr.split_once("://") {
        None => addr,
        Some(("inproc", name)) => name,
        Some(_) => return Err(ConnectError::Unsupported(addr.to_owned())),
    };
    lock(table())
        .by_name
        .get(name)
        .and_then(Weak::upgrade)
        .ok_or_else(|| ConnectError::NotFound(addr.to_owned()))
}
