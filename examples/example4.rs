//! QNX's asyncmsg example 4, ported: see `src/example4.rs` for the program.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::example4::run()
}
