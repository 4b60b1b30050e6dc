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

/// Forgets a destroyed channel; returns the names it was published under.
pub(crate) fn remove(chan: &ChanShared) -> Vec<String> {
    let mut t = lock(table());
    t.by_chid.remove(&chan.chid);
    let names: Vec<String> = lock(&chan.names).drain(..).collect();
    for name in &names {
        if t.by_name
            .get(name)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), chan))
        {
            t.by_name.remove(name);
        }
    }
    names
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

/// What an address string resolves to.
pub(crate) enum Resolved {
    /// A channel of this process.
    Local(Arc<ChanShared>),
    /// A name to look up among the host's processes (shared memory).
    Shm(String),
    /// `quic://HOST:PORT/NAME`: the node's address as written, and the name.
    Quic(String, String),
}

/// Resolves an address (B19): `NAME` (this process first, then the host),
/// `inproc://NAME` (this process only), `shm://NAME` (the host, over shared
/// memory, even when this process publishes the name).
pub(crate) fn resolve(addr: &str) -> Result<Resolved, ConnectError> {
    let (scheme, name) = match addr.split_once("://") {
        None => (None, addr),
        Some((scheme, name)) => (Some(scheme), name),
    };
    if name.is_empty() {
        return Err(ConnectError::InvalidArgument("an address names a channel"));
    }
    let local = || lock(table()).by_name.get(name).and_then(Weak::upgrade);
    match scheme {
        None => Ok(local().map_or_else(|| Resolved::Shm(name.to_owned()), Resolved::Local)),
        Some("inproc") => local()
            .map(Resolved::Local)
            .ok_or_else(|| ConnectError::NotFound(addr.to_owned())),
        Some("shm") => Ok(Resolved::Shm(name.to_owned())),
        Some("quic") => match name.split_once('/') {
            Some((host, name)) if !host.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Resolved::Quic(host.to_owned(), name.to_owned()))
            }
            _ => Err(ConnectError::InvalidArgument(
                "a QUIC address is quic://HOST:PORT/NAME",
            )),
        },
        Some(_) => Err(ConnectError::Unsupported(addr.to_owned())),
    }
}

/// A channel of this process published under `name` (what another node's
/// `quic://HOST:PORT/NAME` finds).
pub(crate) fn by_name(name: &str) -> Option<Arc<ChanShared>> {
    lock(table()).by_name.get(name).and_then(Weak::upgrade)
}

/// Withdraws one name of `chan` (after publishing it host-wide failed).
pub(crate) fn unpublish(name: &str, chan: &ChanShared) {
    let mut t = lock(table());
    if t.by_name
        .get(name)
        .is_some_and(|w| std::ptr::eq(w.as_ptr(), chan))
    {
        t.by_name.remove(name);
    }
    lock(&chan.names).retain(|n| n != name);
}

/// Checks a name to publish (QNX `name_attach`): non-empty, no `/`.
pub(crate) fn check_name(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() || name.contains('/') || name.contains("://") {
        return Err(ChannelError::InvalidArgument(
            "a name is non-empty and has no '/'",
        ));
    }
    Ok(())
}
