//! Runs every example program's logic, as `cargo run --example …` does.

use std::time::Duration;

use asyncmsg_examples::{example1, example2, example3, example4, example5, quickstart};

#[test]
fn quickstart_runs() {
    quickstart::run().unwrap();
}

#[test]
fn example1_one_message_trigger_one() {
    example1::run().unwrap();
}

#[test]
fn example2_trigger_three_one_batch() {
    example2::run().unwrap();
}

#[test]
fn example3_flush_wakes_getter_thread() {
    example3::run().unwrap();
}

#[test]
fn example4_pulse_then_get() {
    example4::run().unwrap();
}

#[test]
fn example5_time_trigger_two_seconds() {
    let delay = example5::run().unwrap();
    assert!(delay >= example5::TRIGGER_TIME, "{delay:?}");
    assert!(
        delay < example5::TRIGGER_TIME + Duration::from_secs(2),
        "{delay:?}"
    );
}
