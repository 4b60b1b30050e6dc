//! QNX's asyncmsg example 2, ported: see `src/example2.rs` for the program.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::example2::run()
}
