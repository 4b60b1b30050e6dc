//! `asyncmsg cert init [--home DIR]`: the trust root of the QUIC transport.
//!
//! Nodes connected over QUIC trust exactly the certificate authority in their
//! asyncmsg home directory (`ca.pem` and `ca.key`): `$ASYNCMSG_HOME`, else
//! `$XDG_DATA_HOME/asyncmsg`, else `~/.local/share/asyncmsg`, or `--home DIR`.
//! Every node on one machine shares it, and a node creates it on its first
//! QUIC use, so this command is only needed to create it ahead of time (to
//! copy its two files to other machines, whose nodes then trust these). It
//! prints `created the trust root in DIR`, or `the trust root in DIR exists`
//! when it is there and valid; anything else is an error.

use std::path::{Path, PathBuf};

use anyhow::Context;
use asyncmsg_quic::cert::{Home, InitOutcome};
use clap::{Args, Subcommand};

/// Arguments of `asyncmsg cert`.
#[derive(Debug, Clone, Args)]
pub struct CertArgs {
    #[command(subcommand)]
    pub command: CertCommand,
}

/// The `cert` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CertCommand {
    /// Creates the trust root if it is missing (or checks the one there).
    Init(InitArgs),
}

/// Arguments of `asyncmsg cert init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// The directory to keep the trust root in (default: $ASYNCMSG_HOME, else
    /// $XDG_DATA_HOME/asyncmsg, else ~/.local/share/asyncmsg).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

/// Runs `asyncmsg cert`.
pub fn run(args: &CertArgs) -> anyhow::Result<()> {
    match &args.command {
        CertCommand::Init(a) => {
            println!("{}", init(a)?);
            Ok(())
        }
    }
}

/// Creates or checks the trust root; returns the line to print.
pub fn init(args: &InitArgs) -> anyhow::Result<String> {
    let home = match &args.home {
        Some(dir) => Home::at(dir),
        None => Home::from_env()?,
    };
    let outcome = home
        .init()
        .with_context(|| format!("cannot set up the trust root in {}", home.path().display()))?;
    let dir = shown(home.path());
    Ok(match outcome {
        InitOutcome::Created => format!("created the trust root in {dir}"),
        InitOutcome::Existing => format!("the trust root in {dir} exists"),
    })
}

/// The directory as printed: absolute when it can be resolved.
fn shown(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_then_finds_the_trust_root() {
        let dir = std::env::temp_dir().join(format!("asyncmsg-cli-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = InitArgs {
            home: Some(dir.join("home")),
        };
        let created = init(&args).unwrap();
        let shown = shown(&dir.join("home"));
        assert_eq!(created, format!("created the trust root in {shown}"));
        assert!(dir.join("home/ca.pem").is_file());
        assert_eq!(
            init(&args).unwrap(),
            format!("the trust root in {shown} exists")
        );
        // A certificate without its key is reported, not replaced.
        std::fs::remove_file(dir.join("home/ca.key")).unwrap();
        let err = format!("{:#}", init(&args).unwrap_err());
        assert!(err.contains("cannot set up the trust root in"), "{err}");
        assert!(err.contains("ca.key is missing"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
