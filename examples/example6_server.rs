//! QNX's asyncmsg example 6, the server, ported: see `src/example6.rs`.
//!
//! Publishes NAME (default `example6`), accepts clients' opens, answers their
//! channel id requests and prints every message its asyncmsg channel receives;
//! with `--count N` it stops once it has N messages and its clients are gone.
//!
//! `cargo run --example example6_server -- [NAME] [--count N]`

fn main() -> anyhow::Result<()> {
    let args = asyncmsg_examples::example6::Args::parse(std::env::args().skip(1))?;
    asyncmsg_examples::example6::server(&args.name, args.count, &mut std::io::stdout()).map(drop)
}
