//! QNX's asyncmsg example 1, ported: see `src/example1.rs` for the program.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::example1::run()
}
