//! QNX's asyncmsg example 6, the client, ported: see `src/example6.rs`.
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
