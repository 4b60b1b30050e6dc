//! The shortest useful asyncmsg program: see `src/quickstart.rs`.

fn main() -> anyhow::Result<()> {
    asyncmsg_examples::quickstart::run()
}
