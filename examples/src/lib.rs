//! QNX Neutrino's documented asynchronous-messaging examples, ported to Rust.
//!
//! QNX's *Asynchronous Messaging* technote walks through five single-process
//! programs and a server and client in two processes; each module here is one
//! of them, written against the `asyncmsg` crate. The programs in
//! `examples/*.rs` only call [`example1::run`] and its siblings, and
//! `tests/run_examples.rs` calls the same functions, so `cargo test` checks
//! exactly what `cargo run --example exampleN` shows.
//!
//! | program | what it shows |
//! |---|---|
//! | [`quickstart`] | the shortest useful program: publish, connect by name, put, get, callback |
//! | [`example1`] | one message, count trigger 1, one get, its delivery callback |
//! | [`example2`] | count trigger 3: three puts become one batch |
//! | [`example3`] | no trigger at all: a getter thread waits for the pulse a flush causes |
//! | [`example4`] | count trigger 1 with a pulse event: wait for the pulse, then get |
//! | [`example5`] | a 2-second time trigger: four puts, one pulse two seconds later |
//! | [`example6`] | two processes: a server waits in one `receive()` for pulses and requests, answers a client's request for the asyncmsg channel id and drains the channel on each pulse; the client opens the name, asks for the id, attaches and puts a message every second (`example6_server`, `example6_client`) |
//!
//! Every wait has a timeout (but the example 6 server's wait for its clients)
//! and every expectation is checked: a program that finds something off
//! returns an error (and exits non-zero) instead of hanging.

pub mod example1;
pub mod example2;
pub mod example3;
pub mod example4;
pub mod example5;
pub mod example6;
pub mod quickstart;
pub mod support;
