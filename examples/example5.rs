//! QNX's asyncmsg example 5, ported: see `src/example5.rs` for the program.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::example5::run().map(drop)
}
