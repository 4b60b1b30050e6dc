//! Compiling and running the C programs of `tests/c/` against the built
//! libasyncmsg.
//!
//! Cargo builds the library (every crate type: `libasyncmsg.so`,
//! `libasyncmsg.a`) into the directory of the test executables,
//! `target/<profile>/deps/`; programs are compiled there with `cc`, linked
//! to it, and run each in a runtime directory of its own so that their
//! names never meet another test's.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a program may run before it is killed and its test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The crate's headers.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// The C programs.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("c")
}

/// `target/<profile>/deps/`: where cargo left libasyncmsg.so and
/// libasyncmsg.a next to this test executable.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    for lib in ["libasyncmsg.so", "libasyncmsg.a"] {
        assert!(
            dir.join(lib).is_file(),
            "{lib} is not in {} (the directory of the test executable, where cargo builds \
             the asyncmsg-capi library with crate-type cdylib + staticlib)",
            dir.display()
        );
    }
    dir
}

/// A fresh directory of this test's own for compiled programs; removed when
/// dropped, unless the test failed (the programs stay for a look).
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh [`WorkDir`] under cargo's temporary directory for tests.
pub fn work_dir(test: &str) -> WorkDir {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("capi-c")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    WorkDir(dir)
}

/// How a program is linked to libasyncmsg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `-L<deps> -Wl,-rpath,<deps> -lasyncmsg -lpthread`
    Shared,
    /// `<deps>/libasyncmsg.a -lpthread -ldl -lm`
    Static,
}

/// Runs a compiler command; panics with its stderr if it fails. Returns what
/// it printed on stderr (warnings).
fn run_compiler(mut cmd: Command, what: &str) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler for {what} ({shown}): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "compiling {what} failed ({}):\n{shown}\n{stderr}",
        out.status
    );
    stderr
}

/// Compiles `tests/c/<name>.c` into `<dir>/<name>`, linked to libasyncmsg.
pub fn compile(dir: &Path, name: &str, link: Link) -> PathBuf {
    let source = c_dir().join(format!("{name}.c"));
    let exe = dir.join(name);
    let lib = lib_dir();
    let mut cmd = Command::new("cc");
    cmd.args(["-std=gnu11", "-Wall", "-g"])
        .arg("-I")
        .arg(include_dir())
        .arg(&source);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&lib)
                .arg(format!("-Wl,-rpath,{}", lib.display()))
                .args(["-lasyncmsg", "-lpthread"]);
        }
        Link::Static => {
            cmd.arg(lib.join("libasyncmsg.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    cmd.arg("-o").arg(&exe);
    let warnings = run_compiler(cmd, &format!("{name}.c"));
    if !warnings.is_empty() {
        eprintln!("cc warnings for {name}.c:\n{warnings}");
    }
    exe
}

/// Compiles `tests/c/<source>` to an object file only, with `compiler` and
/// `flags`; panics with the compiler's output if it fails.
pub fn compile_only(dir: &Path, compiler: &str, source: &str, flags: &[&str]) {
    let object = dir.join(format!(
        "{source}-{}.o",
        flags.join("").replace(['/', '='], "_")
    ));
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(include_dir())
        .arg("-c")
        .arg(c_dir().join(source))
        .arg("-o")
        .arg(object);
    run_compiler(cmd, &format!("{source} ({compiler} {})", flags.join(" ")));
}

/// Whether `compiler` runs at all.
pub fn have_compiler(compiler: &str) -> bool {
    Command::new(compiler)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A runtime directory of its own (where names are published), removed when
/// dropped. It lives under the system's temporary directory: the Unix
/// sockets inside must have short paths.
#[derive(Debug)]
pub struct RuntimeDir(pub PathBuf);

impl RuntimeDir {
    pub fn new() -> RuntimeDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "asyncmsg-capi-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        RuntimeDir(dir)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished program did.
#[derive(Debug)]
pub struct Outcome {
    /// Where the program was compiled: kept while the outcome is, so that a
    /// failed test leaves the program behind.
    pub dir: Option<WorkDir>,
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Everything the program printed, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "{} exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// Panics (showing everything) unless the program exited with 0.
    pub fn assert_success(&self) -> &Outcome {
        assert!(self.status.success(), "{}", self.report());
        self
    }

    /// Panics (showing everything) unless stdout has a line containing `text`.
    pub fn assert_line(&self, text: &str) -> &Outcome {
        assert!(
            self.stdout.lines().any(|l| l.contains(text)),
            "no line with {text:?}: {}",
            self.report()
        );
        self
    }
}

/// A running program: its stdout arrives line by line, its stderr is
/// collected; killed and reaped if still running when dropped.
#[derive(Debug)]
pub struct Running {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Starts `program args` with `ASYNCMSG_RUNTIME_DIR=runtime`.
    pub fn start(program: &Path, args: &[&str], runtime: &RuntimeDir) -> Running {
        let what = format!(
            "{} {}",
            program.file_name().unwrap_or_default().to_string_lossy(),
            args.join(" ")
        );
        let mut child = Command::new(program)
            .args(args)
            // cargo's LD_LIBRARY_PATH lists target/<profile> before deps/: a
            // libasyncmsg.so left there by an earlier `cargo build` would win
            // over the one this test was built with (the program's rpath).
            .env_remove("LD_LIBRARY_PATH")
            .env("ASYNCMSG_RUNTIME_DIR", &runtime.0)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        });
        Running {
            what,
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits (at most `limit`) for a stdout line containing `text`. On
    /// timeout, or if the program's stdout ends first, kills it and panics
    /// with what it printed.
    pub fn wait_for_line(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let outcome = self.kill();
                    panic!(
                        "no line with {text:?} within {limit:?}: {}",
                        outcome.report()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let outcome = self.finish(limit);
                    panic!(
                        "{} ended before printing {text:?}: {}",
                        outcome.what,
                        outcome.report()
                    );
                }
            }
        }
    }

    /// The program's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for the exit and collects the output; on
    /// timeout, kills the program and panics with what it printed.
    pub fn finish(&mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        loop {
            if self
                .child
                .try_wait()
                .expect("wait for the program")
                .is_some()
            {
                break;
            }
            if Instant::now() >= deadline {
                let outcome = self.kill();
                panic!("timed out after {limit:?}: {}", outcome.report());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.collect()
    }

    /// Kills the program and collects its output.
    fn kill(&mut self) -> Outcome {
        let _ = self.child.kill();
        let mut outcome = self.collect();
        outcome.what = format!("{} (killed)", outcome.what);
        outcome
    }

    fn collect(&mut self) -> Outcome {
        let status = self.child.wait().expect("reap the program");
        // The pipes close with the process (unless it left children holding
        // them): read what is left, without waiting for ever.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.stdout.push(line),
                Err(_) => break,
            }
        }
        let stderr = match self.stderr.take() {
            Some(handle) if handle.is_finished() || wait_finished(&handle, deadline) => {
                handle.join().unwrap_or_default()
            }
            _ => String::from("(stderr not closed)"),
        };
        let mut stdout = self.stdout.join("\n");
        stdout.push('\n');
        Outcome {
            dir: None,
            what: self.what.clone(),
            status,
            stdout,
            stderr,
        }
    }
}

/// Polls until `handle`'s thread finished or `deadline` passed.
fn wait_finished<T>(handle: &JoinHandle<T>, deadline: Instant) -> bool {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Compiles `tests/c/<name>.c` (linked as `link`), runs it with `args` in a
/// runtime directory of its own, and returns what it did (a timeout panics).
pub fn compile_and_run(test: &str, name: &str, link: Link, args: &[&str]) -> Outcome {
    let dir = work_dir(test);
    let exe = compile(dir.path(), name, link);
    let runtime = RuntimeDir::new();
    let mut running = Running::start(&exe, args, &runtime);
    let mut outcome = running.finish(RUN_LIMIT);
    outcome.dir = Some(dir);
    outcome
}
