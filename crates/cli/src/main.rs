//! `asyncmsg`: the command-line tool of the asyncmsg project.
//!
//! One subcommand per job: `demo` runs a self-contained tour and throughput
//! measurement; `serve`, `send` and `names` are a receiver, a sender and the
//! list of published names, for use across processes (and, over QUIC, across
//! machines); `cert init` creates the trust root those nodes share. Each
//! subcommand lives in its own module with its own clap arguments struct, so
//! adding one is a module and a [`Command`] variant.

mod cert;
mod demo;
mod hop;
mod names;
mod send;
mod serve;

use clap::{Parser, Subcommand};

/// QNX Neutrino-style asynchronous messaging on Linux.
#[derive(Debug, Parser)]
#[command(name = "asyncmsg", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a receiver and sender threads over each transport: shows a few
    /// messages with their info and delivery callbacks, then measures throughput.
    Demo(demo::DemoArgs),
    /// Publishes a channel under NAME and prints the messages it receives.
    Serve(serve::ServeArgs),
    /// Connects to TARGET, sends messages and reports their delivery.
    Send(send::SendArgs),
    /// Lists the names published on this host.
    Names(names::NamesArgs),
    /// Manages the trust root of nodes connected over QUIC.
    Cert(cert::CertArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Names(args) => names::run(&args),
        Command::Cert(args) => cert::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
