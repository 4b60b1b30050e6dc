//! QNX's asyncmsg example 6, the client, ported: see `src/example6.rs`.
//!
//! Opens NAME (default `example6`), asks the server for its asyncmsg channel's
//! id, attaches to it and puts `message #N` every second (N messages with
//! `--count N`, else until stopped).
//!
//! `cargo run --example example6_client -- [NAME] [--count N]`

use asyncmsg_examples::example6;

fn main() -> anyhow::Result<()> {
    let args = example6::Args::parse(std::env::args().skip(1))?;
    example6::client(
        &args.name,
        args.count,
        example6::PERIOD,
        &mut std::io::stdout(),
    )
    .map(drop)
}
