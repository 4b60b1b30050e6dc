//! `cargo xtask`: the project's own commands.
//!
//! ```text
//! cargo xtask bench [--quick] [--runs N] [--filter ID] ...  the benchmark matrix
//! cargo xtask publish [DIR]                                a full run into bench/RESULTS.md
//! cargo xtask compare A.json B.json                        the change between two runs
//! cargo xtask stress                                       the #[ignore]d stress tests
//! cargo xtask ci                                           what CI runs (.ci/run)
//! ```

mod bench;
mod compare;
mod memory;
mod publish;
mod report;
mod svg;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use asyncmsg_bench::shm::{self, RUNTIME_DIR_ENV, RuntimeDir};

// Counts allocations for the memory probes of `bench` (a relaxed atomic add
// per allocation; xtask's own work does not notice).
#[global_allocator]
static ALLOC: asyncmsg_bench::alloc::Counting = asyncmsg_bench::alloc::Counting;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bench [--quick] [--runs N] [--filter PART]... [--no-memory] [--no-peers]
        [--publish] [--out DIR]
            run the benchmark matrix (in process, shared memory, network;
            asyncmsg and the peer libraries) from a release build, then the
            memory probes; writes target/bench/results.json, REPORT.md and
            charts/*.svg and prints the report. --quick: the reduced matrix
            (under 3 minutes once built); --filter: only cells whose id
            contains PART; --no-peers: without the peer libraries that take
            long to build (kanal, rtrb, iceoryx2, zmq); --publish: also
            write bench/RESULTS.md, bench/results/ (a full run only)
  publish [DIR]
            copy a full run's outputs from DIR (default target/bench) into
            bench/RESULTS.md and bench/results/
  compare A.json B.json
            print the change between two results.json files as markdown
  stress    run the stress tests: cargo test --workspace --release -- --ignored
  ci        run what CI runs: .ci/run
";

fn main() -> ExitCode {
    // `bench` starts this program again as the second process of every
    // shared-memory cell, and for every memory probe: such a child plays its
    // role and exits here.
    shm::child_main();
    memory::child_main();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match cmd.as_str() {
        "bench" => {
            let opts = bench::Options::parse(rest)?;
            let peers = !rest.iter().any(|a| a == "--no-peers");
            if std::env::var_os("XTASK_RELEASE").is_none()
                && (cfg!(debug_assertions) || peers != cfg!(feature = "peers"))
            {
                // Figures from a debug build mean nothing, and the peers are
                // a cargo feature: run this very command again from a release
                // build of xtask with the peer libraries (unless --no-peers).
                let mut cmd = Command::new(cargo());
                cmd.args(["run", "--release", "--quiet", "--package", "xtask"]);
                if peers {
                    eprintln!(
                        "bench: building the release harness with the peer libraries \
                         (the first build takes a few minutes)"
                    );
                    cmd.args(["--features", "peers"]);
                }
                return status(cmd.arg("--").args(&args).env("XTASK_RELEASE", "1"));
            }
            // asyncmsg publishes names under its runtime directory: give this
            // run one of its own, which the children inherit.
            let runtime = RuntimeDir::create()?;
            // SAFETY: no other thread has been started yet.
            unsafe { std::env::set_var(RUNTIME_DIR_ENV, runtime.path()) };
            bench::run(&opts, &workspace_root())?;
            drop(runtime);
            Ok(ExitCode::SUCCESS)
        }
        "publish" => {
            let from = rest
                .first()
                .map_or_else(|| workspace_root().join("target/bench"), PathBuf::from);
            let written = publish::publish(&from, &workspace_root().join("bench"))?;
            eprintln!("published {}", written.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        "compare" => {
            let [a, b] = rest else {
                bail!("usage: cargo xtask compare A.json B.json");
            };
            print!("{}", compare::compare(Path::new(a), Path::new(b))?);
            Ok(ExitCode::SUCCESS)
        }
        "stress" => status(
            Command::new(cargo())
                // Release: the stress tests move tens of millions of messages.
                .args(["test", "--workspace", "--release", "--", "--ignored"])
                .args(rest),
        ),
        "ci" => status(Command::new("bash").arg(workspace_root().join(".ci/run"))),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("unknown command {other:?}\n\n{USAGE}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The workspace root (xtask sits one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd` in the workspace root with inherited stdio; its exit code is ours.
fn status(cmd: &mut Command) -> Result<ExitCode> {
    let st = cmd
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    Ok(match st.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
