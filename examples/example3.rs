//! QNX's asyncmsg example 3, ported: see `src/example3.rs` for the program.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::example3::run()
}
