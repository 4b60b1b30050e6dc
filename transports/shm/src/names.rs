//! The runtime directory: where the processes of one host find each other.
//!
//! Layout of the directory ([`runtime_dir`]):
//!
//! * `node-<pid>.sock`: a process's listening Unix socket, which other
//!   processes connect to ([`node_socket_path`]).
//! * `names/<name>`: a published name; the file holds `"<pid> <chid>\n"`,
//!   the process and channel that serve it ([`publish`], [`lookup`]).
//!
//! Names are published atomically (a complete temporary file is hard-linked
//! to its final name, which fails if the name exists), so a reader never sees
//! a half-written entry. An entry whose process is gone is stale: whoever
//! meets it removes it, and the name can be taken over.
//!
//! Every removal of an entry happens under an exclusive `flock` of
//! `names/.lock` (released by the kernel if its holder dies), after checking
//! the entry again: so two processes taking over the same stale name cannot
//! remove each other's fresh entry, and exactly one of them wins. Adding an
//! entry needs no lock (the hard link is atomic), and neither does reading.
//! Files in `names/` whose name starts with `.` belong to this module (the
//! lock and temporary files) and are never names.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys;

/// Environment variable naming the runtime directory explicitly.
pub const RUNTIME_DIR_ENV: &str = "ASYNCMSG_RUNTIME_DIR";

/// The longest name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// How many times [`publish`] retries after finding a stale entry.
const PUBLISH_ATTEMPTS: usize = 8;

/// Prefix of the temporary files in `names/`.
const TEMP_PREFIX: &str = ".tmp-";

/// The lock file in `names/`.
const LOCK_FILE: &str = ".lock";

/// The longest entry file a valid entry can be (`"4294967295 -2147483648\n"`
/// is 23 bytes); longer files are not entries.
const MAX_ENTRY_FILE: u64 = 32;

/// Source of unique temporary file names within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The runtime directory, created (with `names/` inside) if missing.
///
/// * `$ASYNCMSG_RUNTIME_DIR` if set and non-empty (used as given; it should be
///   absolute so that every process finds the same one);
/// * otherwise `$XDG_RUNTIME_DIR/asyncmsg` if `XDG_RUNTIME_DIR` is set to an
///   absolute path;
/// * otherwise `/tmp/asyncmsg-<uid>`.
///
/// Directories this call creates get mode 0700; existing ones are left as
/// they are. In the two default locations the directory must be a real
/// directory (not a symbolic link) owned by the calling user, so another user
/// cannot plant one in `/tmp` beforehand.
///
/// # Errors
/// [`io::ErrorKind::PermissionDenied`] if a default location is owned by
/// another user or is not a directory; the OS error of creating the
/// directories otherwise.
pub fn runtime_dir() -> io::Result<PathBuf> {
    let explicit = std::env::var_os(RUNTIME_DIR_ENV).filter(|v| !v.is_empty());
    let dir = match explicit {
        Some(dir) => PathBuf::from(dir),
        None => {
            let xdg = std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute());
            let dir = match xdg {
                Some(xdg) => xdg.join("asyncmsg"),
                None => {
                    let mut name = OsString::from("asyncmsg-");
                    name.push(sys::current_uid().to_string());
                    Path::new("/tmp").join(name)
                }
            };
            create_private_dirs(&dir)?;
            check_own_dir(&dir)?;
            dir
        }
    };
    create_private_dirs(&dir)?;
    create_private_dirs(&dir.join("names"))?;
    Ok(dir)
}

/// Fails unless `dir` is a directory (not a link to one) owned by us.
fn check_own_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("runtime directory {} is not a directory", dir.display()),
        ));
    }
    if meta.uid() != sys::current_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "runtime directory {} belongs to uid {}, not to us",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// `create_dir_all(path)`, then mode 0700 on each directory that did not
/// exist before (the umask could have narrowed it further).
fn create_private_dirs(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    for dir in missing {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Path of the listening socket of process `pid`: `<dir>/node-<pid>.sock`.
pub fn node_socket_path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("node-{pid}.sock"))
}

/// Checks that `name` can be published: 1 to 255 bytes, no `/`, no NUL, and
/// not starting with `.` (which also rules out `.` and `..`; names starting
/// with a dot are reserved for the directory's temporary files).
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] saying what is wrong.
pub fn check_name(name: &str) -> io::Result<()> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME_LEN {
        "is longer than 255 bytes"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else if name == "." || name == ".." {
        "is '.' or '..'"
    } else if name.starts_with('.') {
        "starts with '.' (reserved)"
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid name {:?}: it {problem}", truncate(name)),
    ))
}

/// At most 64 characters of `name`, for messages.
fn truncate(name: &str) -> &str {
    match name.char_indices().nth(64) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

/// A published name: the process and channel that serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The published name.
    pub name: String,
    /// The serving process.
    pub pid: u32,
    /// The serving channel, within that process.
    pub chid: i32,
}

/// What `names/<name>` holds.
enum Slot {
    /// Nothing.
    Missing,
    /// A well-formed entry: `(pid, chid)`.
    Entry(u32, i32),
    /// A regular file that is not an entry.
    Garbage,
}

impl Slot {
    /// Whether the slot holds something to remove: an entry of a process
    /// that is gone, or a file that is not an entry.
    fn is_stale(&self) -> bool {
        match *self {
            Slot::Missing => false,
            Slot::Entry(pid, _) => !sys::pid_alive(pid),
            Slot::Garbage => true,
        }
    }
}

/// Parses `"<pid> <chid>\n"`.
fn parse_entry(bytes: &[u8]) -> Option<(u32, i32)> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let (pid, chid) = text.split_once(' ')?;
    let digits = |s: &str, signed: bool| {
        let s = if signed {
            s.strip_prefix('-').unwrap_or(s)
        } else {
            s
        };
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(pid, false) || !digits(chid, true) {
        return None;
    }
    Some((pid.parse().ok()?, chid.parse().ok()?))
}

/// Reads `path` as an entry file.
fn read_slot(path: &Path) -> io::Result<Slot> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Slot::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENTRY_FILE + 1).read_to_end(&mut bytes)?;
    Ok(match parse_entry(&bytes) {
        Some((pid, chid)) => Slot::Entry(pid, chid),
        None => Slot::Garbage,
    })
}

/// A fresh temporary name in `names`: `.tmp-<our pid>-<counter>`.
fn temp_path(names: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    names.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()))
}

/// The pid in a temporary file name of this module, if `file_name` is one.
fn temp_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix(TEMP_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Takes the exclusive lock of the `names` directory; it is held until the
/// returned file is dropped.
fn lock_names(names: &Path) -> io::Result<File> {
    let path = names.join(LOCK_FILE);
    // Opened read-only when it exists (flock needs no write access), so
    // users sharing a directory can all lock it.
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?,
        Err(e) => return Err(e),
    };
    sys::lock_exclusive(file.as_fd())?;
    Ok(file)
}

/// Removes `path`, treating an already missing file as removed. Only called
/// with the directory lock held, after judging the file stale under it.
fn remove_entry_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A temporary file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    /// Creates a new temporary file in `names` holding `content`.
    fn create(names: &Path, content: &[u8]) -> io::Result<Self> {
        let mut attempts = 0;
        loop {
            let path = temp_path(names);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let temp = TempFile(path);
                    file.write_all(content)?;
                    return Ok(temp);
                }
                // Left over by an earlier process with our pid: take another.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Publishes `name` as served by channel `chid` of process `pid`, in
/// `<dir>/names/` (created if missing).
///
/// Atomic: the entry is written to a temporary file, then hard-linked to
/// `names/<name>`, which fails if the name exists. An existing entry of a
/// process that is gone, or a file that is not an entry, is removed and the
/// name taken over. Publishing the same `(name, pid, chid)` again succeeds.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] for a bad name (see [`check_name`]);
/// [`io::ErrorKind::AlreadyExists`] if a live process (another one, or `pid`
/// itself with another channel) has the name; an I/O error of the
/// directory otherwise.
pub fn publish(dir: &Path, name: &str, pid: u32, chid: i32) -> io::Result<()> {
    check_name(name)?;
    let names = dir.join("names");
    create_private_dirs(&names)?;
    let target = names.join(name);
    let temp = TempFile::create(&names, format!("{pid} {chid}\n").as_bytes())?;
    // Fast path: the name is free.
    match fs::hard_link(&temp.0, &target) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // Under the lock nobody else removes entries, so what we judge below
    // stays true until we act on it; others can only add an entry while the
    // name is free.
    let _lock = lock_names(&names)?;
    for _ in 0..PUBLISH_ATTEMPTS {
        match read_slot(&target)? {
            Slot::Missing => {}
            Slot::Entry(p, c) if p == pid && c == chid => return Ok(()),
            Slot::Entry(p, c) if sys::pid_alive(p) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "name {:?} is published by process {p} (channel {c})",
                        truncate(name)
                    ),
                ));
            }
            Slot::Entry(..) | Slot::Garbage => remove_entry_file(&target)?,
        }
        match fs::hard_link(&temp.0, &target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "name {:?} kept changing while publishing it",
        truncate(name)
    )))
}

/// Withdraws `name` if it still says `(pid, chid)`; an entry of someone else
/// is left alone. A missing name is not an error.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] for a bad name; an I/O error of the
/// directory otherwise.
pub fn withdraw(dir: &Path, name: &str, pid: u32, chid: i32) -> io::Result<()> {
    check_name(name)?;
    let names = dir.join("names");
    let path = names.join(name);
    if !matches!(read_slot(&path)?, Slot::Entry(p, c) if p == pid && c == chid) {
        return Ok(());
    }
    let _lock = lock_names(&names)?;
    match read_slot(&path)? {
        Slot::Entry(p, c) if p == pid && c == chid => remove_entry_file(&path),
        _ => Ok(()),
    }
}

/// Looks `name` up. `None` if it is not published; a stale entry (its
/// process is gone, or the file is not an entry) is removed and gives `None`.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] for a bad name;
/// [`io::ErrorKind::InvalidData`] if `names/<name>` is not a regular file; an
/// I/O error of the directory otherwise.
pub fn lookup(dir: &Path, name: &str) -> io::Result<Option<Entry>> {
    check_name(name)?;
    let names = dir.join("names");
    let path = names.join(name);
    let mut slot = read_slot(&path)?;
    if slot.is_stale() {
        let _lock = lock_names(&names)?;
        // Judge again under the lock: it may have been taken over since.
        slot = read_slot(&path)?;
        if slot.is_stale() {
            remove_entry_file(&path)?;
            return Ok(None);
        }
    }
    Ok(match slot {
        Slot::Entry(pid, chid) if sys::pid_alive(pid) => Some(Entry {
            name: name.to_owned(),
            pid,
            chid,
        }),
        _ => None,
    })
}

/// Every live published name, sorted by name. Stale entries are removed on
/// the way, and so are temporary files left by processes that are gone;
/// anything else that is not an entry is skipped.
///
/// # Errors
/// An I/O error reading the directory (a missing `names/` gives an empty
/// list).
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let names = dir.join("names");
    let read = match fs::read_dir(&names) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut stale = Vec::new();
    for item in read {
        let item = item?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if let Some(owner) = temp_owner(&name) {
            if !sys::pid_alive(owner) {
                let _ = fs::remove_file(item.path());
            }
            continue;
        }
        if check_name(&name).is_err() {
            continue;
        }
        let path = item.path();
        match read_slot(&path) {
            Ok(slot) if slot.is_stale() => stale.push(path),
            Ok(Slot::Entry(pid, chid)) => entries.push(Entry { name, pid, chid }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
            Err(e) => return Err(e),
        }
    }
    if !stale.is_empty() {
        let _lock = lock_names(&names)?;
        for path in stale {
            // Judge again under the lock: it may have been taken over since
            // (then it is simply missing from this list).
            if read_slot(&path).is_ok_and(|slot| slot.is_stale()) {
                remove_entry_file(&path)?;
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The pid in a node socket file name `node-<pid>.sock`.
fn socket_owner(file_name: &str) -> Option<u32> {
    let pid = file_name.strip_prefix("node-")?.strip_suffix(".sock")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the node sockets (`node-<pid>.sock`) of processes that are gone;
/// returns how many were removed. Directories are left alone.
///
/// # Errors
/// An I/O error reading the directory or removing a socket (a socket removed
/// concurrently by someone else is not an error).
pub fn remove_stale_sockets(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for item in fs::read_dir(dir)? {
        let item = item?;
        let Some(pid) = item.file_name().to_str().and_then(socket_owner) else {
            continue;
        };
        if sys::pid_alive(pid) || item.file_type()?.is_dir() {
            continue;
        }
        match fs::remove_file(item.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_strictly() {
        assert_eq!(parse_entry(b"12 3\n"), Some((12, 3)));
        assert_eq!(parse_entry(b"12 -3\n"), Some((12, -3)));
        assert_eq!(
            parse_entry(b"4294967295 -2147483648\n"),
            Some((u32::MAX, i32::MIN))
        );
        for bad in [
            &b"12 3"[..],
            b"12 3\n\n",
            b"+12 3\n",
            b"12  3\n",
            b"-12 3\n",
            b"12 3 4\n",
            b"4294967296 1\n",
            b"12 2147483648\n",
            b"",
            b"\n",
            b"x y\n",
        ] {
            assert_eq!(parse_entry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_name_owners() {
        assert_eq!(socket_owner("node-42.sock"), Some(42));
        assert_eq!(socket_owner("node-+42.sock"), None);
        assert_eq!(socket_owner("node-.sock"), None);
        assert_eq!(socket_owner("node-42.socket"), None);
        assert_eq!(temp_owner(".tmp-42-7"), Some(42));
        assert_eq!(temp_owner(".tmp-x-7"), None);
        assert_eq!(temp_owner("tmp-42-7"), None);
    }
}
