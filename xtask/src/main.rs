//! `cargo xtask`: the project's own commands.
//!
//! ```text
//! cargo xtask bench [--quick] [--runs N] [--messages N]   the benchmark matrices
//! cargo xtask compare A.json B.json                        the change between two runs
//! cargo xtask stress                                       the #[ignore]d stress tests
//! cargo xtask ci                                           what CI runs (.ci/run)
//! ```

mod bench;
mod compare;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use asyncmsg_bench::shm::{self, RUNTIME_DIR_ENV, RuntimeDir};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bench [--quick] [--runs N] [--messages N]
            run the in-process throughput matrix, then the shared-memory
            (two-process) matrix, then the QUIC (loopback) matrix, from a
            release build; prints markdown tables, writes
            target/bench/results.json and REPORT.md
  compare A.json B.json
            print the change between two results.json files as markdown
  stress    run the stress tests: cargo test --workspace --release -- --ignored
  ci        run what CI runs: .ci/run
";

fn main() -> ExitCode {
    // `bench` starts this program again as the second process of every
    // shared-memory cell: such a child plays its role and exits here.
    shm::child_main();
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
            if cfg!(debug_assertions) && std::env::var_os("XTASK_RELEASE").is_none() {
                // Figures from a debug build mean nothing: run this very command
                // again from a release build of xtask.
                return status(
                    Command::new(cargo())
                        .args(["run", "--release", "--quiet", "--package", "xtask", "--"])
                        .args(&args)
                        .env("XTASK_RELEASE", "1"),
                );
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
