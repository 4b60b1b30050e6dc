//! The SPEC rules that `asyncmsg-core` owns, one test (or a few) per rule, on a
//! virtual clock: `t0 + ms(x)` stands for "x milliseconds later"; nothing sleeps.

use std::time::{Duration, Instant};

use asyncmsg_core::send::AckError;
use asyncmsg_core::{ChannelCore, Publish, PutOutcome, PutRefused, SendConfig, SendCore, Wake};

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

fn cfg(max_buffers: u32, trigger_count: u32) -> SendConfig {
    SendConfig {
        max_buffers,
        trigger_count,
        trigger_time: None,
        trigger_interval: None,
    }
}

fn timed(trigger_count: u32, time: u64, interval: Option<u64>) -> SendConfig {
    SendConfig {
        max_buffers: 64,
        trigger_count,
        trigger_time: Some(ms(time)),
        trigger_interval: interval.map(ms),
    }
}

/// Connections `0..n` and one channel, wired the way a driver wires them:
/// a trigger is announced to the channel, a get acknowledges what it took.
struct Rig {
    conns: Vec<SendCore>,
    chan: ChannelCore<usize>,
}

impl Rig {
    fn new(capacity: usize, conns: &[SendConfig]) -> Self {
        Rig {
            conns: conns.iter().map(|c| SendCore::new(*c)).collect(),
            chan: ChannelCore::new(capacity),
        }
    }

    /// Tells the channel about a publish; returns its wake decision.
    fn announce(&mut self, k: usize, p: Publish) -> Wake {
        match p {
            Publish::Trigger { visible } => {
                assert_eq!(visible, self.conns[k].visible());
                self.chan.on_trigger(k)
            }
            Publish::Extend { visible } => {
                assert_eq!(visible, self.conns[k].visible());
                Wake::Nothing
            }
            Publish::None => Wake::Nothing,
        }
    }

    /// An accepted put, announced to the channel as a driver would.
    fn put_out(&mut self, k: usize, now: Instant) -> Result<PutOutcome, PutRefused> {
        let out = self.conns[k].put(now)?;
        self.announce(k, out.publish);
        Ok(out)
    }

    fn put(&mut self, k: usize, now: Instant) -> (Publish, Wake) {
        let out = self.conns[k].put(now).expect("put accepted");
        let w = self.announce(k, out.publish);
        (out.publish, w)
    }

    fn flush(&mut self, k: usize) -> (Publish, u64, Wake) {
        let (p, target) = self.conns[k].flush();
        let w = self.announce(k, p);
        (p, target, w)
    }

    fn timeout(&mut self, k: usize, now: Instant) -> (Publish, Option<Instant>) {
        let (p, next) = self.conns[k].handle_timeout(now);
        self.announce(k, p);
        (p, next)
    }

    /// One get: the (connection, sequence) pairs it returns, and the wake
    /// decision for what it left behind.
    fn get_wake(&mut self) -> (Vec<(usize, u64)>, Wake) {
        let conns = &self.conns;
        let (plan, wake) = self
            .chan
            .plan_get(|&k| conns[k].visible() - conns[k].taken());
        let mut out = Vec::new();
        for t in plan {
            let c = &mut self.conns[t.key];
            let start = c.taken();
            out.extend((start..start + t.count).map(|s| (t.key, s)));
            c.on_taken(start + t.count).expect("ack within visible");
        }
        (out, wake)
    }

    fn get(&mut self) -> Vec<(usize, u64)> {
        self.get_wake().0
    }

    fn seqs(&mut self) -> Vec<u64> {
        self.get().into_iter().map(|(_, s)| s).collect()
    }
}

// ---------------------------------------------------------------- B01

#[test]
fn b01_trigger_count_one_makes_each_put_visible_to_next_get() {
    let t0 = Instant::now();
    let mut r = Rig::new(8, &[cfg(8, 1)]);
    for i in 0..5 {
        let (p, w) = r.put(0, t0);
        assert_eq!(p, Publish::Trigger { visible: i + 1 });
        assert_eq!(w, Wake::Event);
        assert_eq!(r.seqs(), vec![i]);
    }
}

#[test]
fn b01_first_n_minus_one_puts_invisible_nth_makes_all_visible_in_order() {
    let t0 = Instant::now();
    let mut r = Rig::new(8, &[cfg(8, 3)]);
    assert_eq!(r.put(0, t0).0, Publish::None);
    assert!(r.get().is_empty(), "a get after one put finds nothing");
    assert_eq!(r.put(0, t0).0, Publish::None);
    assert!(r.get().is_empty(), "a get after N-1 puts finds nothing");
    assert!(!r.chan.has_ready());
    assert_eq!(r.put(0, t0), (Publish::Trigger { visible: 3 }, Wake::Event));
    assert_eq!(r.seqs(), vec![0, 1, 2], "one get returns all N, in order");
    assert!(r.get().is_empty());
}

// ---------------------------------------------------------------- B02

#[test]
fn b02_every_put_at_or_above_threshold_triggers_again() {
    let t0 = Instant::now();
    let mut r = Rig::new(16, &[cfg(16, 3)]);
    r.put(0, t0);
    r.put(0, t0);
    // Puts 3, 4, 5: each makes itself visible at once.
    assert_eq!(r.put(0, t0).0, Publish::Trigger { visible: 3 });
    assert_eq!(r.put(0, t0).0, Publish::Extend { visible: 4 });
    assert_eq!(r.put(0, t0).0, Publish::Extend { visible: 5 });
    assert_eq!(r.conns[0].visible(), 5);
    assert_eq!(r.seqs(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn b02_threshold_counts_untaken_messages() {
    let t0 = Instant::now();
    let mut r = Rig::new(16, &[cfg(16, 3)]);
    for _ in 0..3 {
        r.put(0, t0);
    }
    assert_eq!(r.seqs(), vec![0, 1, 2]);
    // Everything was taken: counting starts again from zero untaken.
    assert_eq!(r.put(0, t0).0, Publish::None);
    assert_eq!(r.put(0, t0).0, Publish::None);
    assert!(r.get().is_empty());
    assert_eq!(r.put(0, t0).0, Publish::Trigger { visible: 6 });
    assert_eq!(r.seqs(), vec![3, 4, 5]);
}

#[test]
fn b02_taken_but_not_called_back_messages_do_not_count() {
    let t0 = Instant::now();
    let mut r = Rig::new(16, &[cfg(16, 2)]);
    r.put(0, t0);
    r.put(0, t0);
    assert_eq!(r.seqs(), vec![0, 1]);
    // Messages 0 and 1 are taken but not called back (still in flight).
    assert_eq!(r.conns[0].in_flight(), 2);
    assert_eq!(r.put(0, t0).0, Publish::None);
    assert_eq!(r.put(0, t0).0, Publish::Trigger { visible: 4 });
}

// ---------------------------------------------------------------- B03

#[test]
fn b03_count_zero_without_time_trigger_needs_a_flush() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(64, 0)]);
    for i in 0..40 {
        let out = r.put_out(0, t0 + ms(i)).unwrap();
        assert_eq!(out.publish, Publish::None);
        assert_eq!(out.armed, None);
    }
    assert_eq!(r.conns[0].poll_timeout(), None);
    assert_eq!(r.timeout(0, t0 + ms(1_000_000)), (Publish::None, None));
    assert!(r.get().is_empty());
    let (p, target, w) = r.flush(0);
    assert_eq!(p, Publish::Trigger { visible: 40 });
    assert_eq!(target, 40);
    assert_eq!(w, Wake::Event);
    assert_eq!(r.seqs(), (0..40).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- B04

#[test]
fn b04_time_trigger_armed_by_first_non_triggering_put_fires_nsec_after_it() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, None)]);
    let out = r.put_out(0, t0 + ms(3)).unwrap();
    assert_eq!(out.publish, Publish::None);
    assert_eq!(out.armed, Some(t0 + ms(13)));
    assert_eq!(r.conns[0].poll_timeout(), Some(t0 + ms(13)));
    // Early timeouts do nothing and keep the deadline.
    assert_eq!(
        r.timeout(0, t0 + ms(12)),
        (Publish::None, Some(t0 + ms(13)))
    );
    assert!(r.get().is_empty());
    assert_eq!(
        r.timeout(0, t0 + ms(13)),
        (Publish::Trigger { visible: 1 }, None)
    );
    assert_eq!(r.seqs(), vec![0]);
    assert_eq!(r.conns[0].poll_timeout(), None);
}

#[test]
fn b04_later_puts_do_not_push_the_deadline_back() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, None)]);
    assert_eq!(r.put_out(0, t0).unwrap().armed, Some(t0 + ms(10)));
    for x in [2, 5, 9] {
        let out = r.put_out(0, t0 + ms(x)).unwrap();
        assert_eq!(out.armed, None, "put at {x} ms re-armed");
        assert_eq!(r.conns[0].poll_timeout(), Some(t0 + ms(10)));
    }
    assert_eq!(r.timeout(0, t0 + ms(10)).0, Publish::Trigger { visible: 4 });
    assert_eq!(r.seqs(), vec![0, 1, 2, 3]);
}

#[test]
fn b04_a_triggering_put_does_not_arm_and_disarms() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(3, 10, None)]);
    assert_eq!(r.put_out(0, t0).unwrap().armed, Some(t0 + ms(10)));
    r.put(0, t0 + ms(1));
    let out = r.put_out(0, t0 + ms(2)).unwrap();
    assert_eq!(out.publish, Publish::Trigger { visible: 3 });
    assert_eq!(out.armed, None);
    assert_eq!(r.conns[0].poll_timeout(), None);
    // The driver's stale timer fires: nothing happens.
    assert_eq!(r.timeout(0, t0 + ms(10)), (Publish::None, None));
    assert_eq!(r.seqs(), vec![0, 1, 2]);
}

#[test]
fn b04_time_trigger_rearms_for_the_next_batch() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, None)]);
    r.put(0, t0);
    r.timeout(0, t0 + ms(10));
    assert_eq!(r.seqs(), vec![0]);
    let out = r.put_out(0, t0 + ms(20)).unwrap();
    assert_eq!(out.armed, Some(t0 + ms(30)));
    assert_eq!(r.timeout(0, t0 + ms(30)).0, Publish::Trigger { visible: 2 });
    assert_eq!(r.seqs(), vec![1]);
}

#[test]
fn b04_interval_rearms_while_messages_are_untaken() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, Some(5))]);
    r.put(0, t0);
    assert_eq!(
        r.timeout(0, t0 + ms(10)),
        (Publish::Trigger { visible: 1 }, Some(t0 + ms(15)))
    );
    // Not taken yet: the timer keeps re-arming every interval.
    assert_eq!(
        r.timeout(0, t0 + ms(15)),
        (Publish::None, Some(t0 + ms(20)))
    );
    assert_eq!(
        r.timeout(0, t0 + ms(20)),
        (Publish::None, Some(t0 + ms(25)))
    );
    assert_eq!(r.seqs(), vec![0]);
    // Everything taken: the interval stops.
    assert_eq!(r.conns[0].poll_timeout(), None);
    assert_eq!(r.timeout(0, t0 + ms(25)), (Publish::None, None));
}

#[test]
fn b04_interval_keeps_its_period_when_the_driver_is_late() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, Some(5))]);
    r.put(0, t0);
    // The driver handles the 10 ms deadline at 13 ms, then the next at 27 ms.
    assert_eq!(r.timeout(0, t0 + ms(13)).1, Some(t0 + ms(15)));
    assert_eq!(r.timeout(0, t0 + ms(27)).1, Some(t0 + ms(30)));
    assert_eq!(r.timeout(0, t0 + ms(30)).1, Some(t0 + ms(35)));
}

#[test]
fn b04_put_after_everything_was_taken_arms_afresh_despite_interval() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, Some(100))]);
    r.put(0, t0);
    assert_eq!(r.timeout(0, t0 + ms(10)).1, Some(t0 + ms(110)));
    assert_eq!(r.seqs(), vec![0]);
    // Nothing is pending any more; a new put is the first that did not
    // trigger and fires 10 ms after it, not at the old interval deadline.
    let out = r.put_out(0, t0 + ms(20)).unwrap();
    assert_eq!(out.publish, Publish::None);
    assert_eq!(out.armed, Some(t0 + ms(30)));
    assert_eq!(r.conns[0].poll_timeout(), Some(t0 + ms(30)));
    assert_eq!(r.timeout(0, t0 + ms(30)).0, Publish::Trigger { visible: 2 });
    assert_eq!(r.seqs(), vec![1]);
}

#[test]
fn b04_zero_interval_fires_once() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, Some(0))]);
    r.put(0, t0);
    assert_eq!(
        r.timeout(0, t0 + ms(10)),
        (Publish::Trigger { visible: 1 }, None)
    );
}

#[test]
fn b04_without_time_trigger_interval_alone_arms_nothing() {
    let t0 = Instant::now();
    let c = SendConfig {
        trigger_count: 0,
        trigger_interval: Some(ms(5)),
        ..SendConfig::default()
    };
    let mut r = Rig::new(64, &[c]);
    assert_eq!(r.put_out(0, t0).unwrap().armed, None);
    assert_eq!(r.conns[0].poll_timeout(), None);
}

// ---------------------------------------------------------------- B05

#[test]
fn b05_put_after_trigger_before_get_joins_the_batch() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(64, 2)]);
    r.put(0, t0);
    assert_eq!(r.put(0, t0), (Publish::Trigger { visible: 2 }, Wake::Event));
    // The channel already knows about this connection: no second announcement.
    assert_eq!(
        r.put(0, t0),
        (Publish::Extend { visible: 3 }, Wake::Nothing)
    );
    assert_eq!(
        r.put(0, t0),
        (Publish::Extend { visible: 4 }, Wake::Nothing)
    );
    assert_eq!(r.seqs(), vec![0, 1, 2, 3]);
    // After the get the batch is gone: counting starts again.
    assert_eq!(r.put(0, t0).0, Publish::None);
}

#[test]
fn b05_extension_ignores_count_and_time_triggers() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(50, 10, None)]);
    r.put_out(0, t0).unwrap();
    assert_eq!(r.flush(0).0, Publish::Trigger { visible: 1 });
    let out = r.put_out(0, t0 + ms(1)).unwrap();
    assert_eq!(out.publish, Publish::Extend { visible: 2 });
    assert_eq!(out.armed, None);
    assert_eq!(r.conns[0].poll_timeout(), None);
}

#[test]
fn b05_put_after_a_partial_get_joins_what_is_left() {
    let t0 = Instant::now();
    let mut r = Rig::new(2, &[cfg(64, 3)]);
    for _ in 0..3 {
        r.put(0, t0);
    }
    assert_eq!(r.seqs(), vec![0, 1]);
    assert_eq!(r.put(0, t0).0, Publish::Extend { visible: 4 });
    assert_eq!(r.seqs(), vec![2, 3]);
    assert!(r.get().is_empty());
}

// ---------------------------------------------------------------- B06

#[test]
fn b06_a_get_returns_at_most_capacity_rest_waits_fifo() {
    let t0 = Instant::now();
    let mut r = Rig::new(4, &[cfg(64, 0)]);
    for _ in 0..10 {
        r.put(0, t0);
    }
    r.flush(0);
    assert_eq!(r.seqs(), vec![0, 1, 2, 3]);
    assert_eq!(r.seqs(), vec![4, 5, 6, 7]);
    assert_eq!(r.seqs(), vec![8, 9]);
    assert!(r.get().is_empty());
}

#[test]
fn b06_connections_are_served_in_trigger_order() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(64, 0), cfg(64, 0), cfg(64, 0)]);
    for k in 0..3 {
        r.put(k, t0);
        r.put(k, t0);
    }
    for k in [2, 0, 1] {
        r.flush(k);
    }
    assert_eq!(r.chan.ready().copied().collect::<Vec<_>>(), vec![2, 0, 1]);
    assert_eq!(
        r.get(),
        vec![(2, 0), (2, 1), (0, 0), (0, 1), (1, 0), (1, 1)]
    );
}

#[test]
fn b06_a_connection_cut_short_by_capacity_stays_at_the_head() {
    let t0 = Instant::now();
    let mut r = Rig::new(3, &[cfg(64, 0), cfg(64, 0)]);
    for _ in 0..5 {
        r.put(0, t0);
    }
    r.put(1, t0);
    r.put(1, t0);
    r.flush(0);
    r.flush(1);
    assert_eq!(r.get(), vec![(0, 0), (0, 1), (0, 2)]);
    assert_eq!(r.chan.ready().copied().collect::<Vec<_>>(), vec![0, 1]);
    // Connection 1 triggering again does not overtake connection 0.
    r.put(1, t0);
    assert_eq!(r.get(), vec![(0, 3), (0, 4), (1, 0)]);
    assert_eq!(r.get(), vec![(1, 1), (1, 2)]);
    assert!(!r.chan.has_ready());
}

#[test]
fn b06_a_drained_connection_that_triggers_again_goes_to_the_back() {
    let t0 = Instant::now();
    let mut r = Rig::new(1, &[cfg(64, 1), cfg(64, 1)]);
    r.put(0, t0);
    r.put(1, t0);
    assert_eq!(r.get(), vec![(0, 0)]);
    r.put(0, t0);
    assert_eq!(r.chan.ready().copied().collect::<Vec<_>>(), vec![1, 0]);
    assert_eq!(r.get(), vec![(1, 0)]);
    assert_eq!(r.get(), vec![(0, 1)]);
}

#[test]
fn b06_queued_connections_with_nothing_visible_are_skipped() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.on_trigger(1);
    chan.on_trigger(2);
    chan.on_trigger(3);
    let (plan, _) = chan.plan_get(|&k| if k == 2 { 0 } else { 3 });
    assert_eq!(
        plan.iter().map(|t| (t.key, t.count)).collect::<Vec<_>>(),
        vec![(1, 3), (3, 1)]
    );
    assert_eq!(chan.ready().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn b06_stale_empty_entries_left_after_a_full_get_are_not_announced() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(2);
    chan.on_trigger(1);
    chan.on_trigger(2);
    // Connection 2's batch went away (e.g. its messages were withdrawn).
    let (plan, wake) = chan.plan_get(|&k| if k == 1 { 2 } else { 0 });
    assert_eq!(plan.len(), 1);
    assert_eq!(wake, Wake::Nothing, "nothing is left to announce");
    assert!(!chan.has_ready());
}

// ---------------------------------------------------------------- B07

#[test]
fn b07_never_more_than_max_buffers_in_flight() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(4, 1)]);
    for i in 0..4 {
        assert_eq!(r.put_out(0, t0).unwrap().seq, i);
    }
    assert!(r.conns[0].is_full());
    assert_eq!(r.put_out(0, t0), Err(PutRefused::Full(4)));
    // Taken is not free: the slot holds the message until its callback.
    assert_eq!(r.get().len(), 4);
    assert_eq!(r.put_out(0, t0), Err(PutRefused::Full(4)));
    r.conns[0].on_completed(1).unwrap();
    assert_eq!(r.conns[0].in_flight(), 3);
    let out = r.put_out(0, t0).unwrap();
    assert_eq!(out.seq, 4, "slot 4 % 4 = 0, the one just freed");
    assert_eq!(r.put_out(0, t0), Err(PutRefused::Full(4)));
}

#[test]
fn b07_one_buffer_means_one_message_no_hidden_sentinel() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(1, 1)]);
    r.put(0, t0);
    assert_eq!(r.put_out(0, t0), Err(PutRefused::Full(1)));
    assert_eq!(r.seqs(), vec![0]);
    assert_eq!(r.put_out(0, t0), Err(PutRefused::Full(1)));
    r.conns[0].on_completed(1).unwrap();
    assert_eq!(r.put_out(0, t0).unwrap().seq, 1);
}

#[test]
fn b07_a_refused_put_changes_nothing() {
    let t0 = Instant::now();
    let mut c = SendCore::new(SendConfig {
        max_buffers: 2,
        trigger_count: 0,
        trigger_time: Some(ms(10)),
        trigger_interval: None,
    });
    c.put(t0).unwrap();
    c.put(t0 + ms(1)).unwrap();
    let before = (
        c.next_seq(),
        c.visible(),
        c.taken(),
        c.completed(),
        c.poll_timeout(),
    );
    assert_eq!(c.put(t0 + ms(2)), Err(PutRefused::Full(2)));
    let after = (
        c.next_seq(),
        c.visible(),
        c.taken(),
        c.completed(),
        c.poll_timeout(),
    );
    assert_eq!(before, after);
    // Nothing is dropped: both messages are still there to flush.
    assert_eq!(c.flush(), (Publish::Trigger { visible: 2 }, 2));
}

#[test]
fn b07_acknowledgements_beyond_what_was_possible_are_refused() {
    let t0 = Instant::now();
    let mut c = SendCore::new(cfg(8, 2));
    c.put(t0).unwrap();
    assert_eq!(c.on_taken(1), Err(AckError::Ahead { ack: 1, limit: 0 }));
    c.put(t0).unwrap();
    c.on_taken(1).unwrap();
    assert_eq!(c.on_completed(2), Err(AckError::Ahead { ack: 2, limit: 1 }));
    c.on_completed(1).unwrap();
    // Old acknowledgements are ignored, counters never move back.
    c.on_taken(0).unwrap();
    c.on_completed(0).unwrap();
    assert_eq!((c.taken(), c.completed()), (1, 1));
}

// ---------------------------------------------------------------- B09

#[test]
fn b09_sequence_numbers_are_per_connection_from_zero() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(8, 1), cfg(8, 1)]);
    r.put(0, t0);
    r.put(0, t0);
    r.put(1, t0);
    assert_eq!(r.get(), vec![(0, 0), (0, 1), (1, 0)]);
    assert_eq!(r.conns[0].next_seq(), 2);
    assert_eq!(r.conns[1].next_seq(), 1);
}

// ---------------------------------------------------------------- B12

#[test]
fn b12_flush_triggers_at_once_and_names_its_target() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(10, 10, None)]);
    r.put(0, t0);
    r.put(0, t0);
    let (p, target, w) = r.flush(0);
    assert_eq!(p, Publish::Trigger { visible: 2 });
    assert_eq!(
        target, 2,
        "a waiting flush waits for every message put before it"
    );
    assert_eq!(w, Wake::Event);
    assert_eq!(
        r.conns[0].poll_timeout(),
        None,
        "flush disarms the time trigger"
    );
    assert!(r.conns[0].taken() < target);
    r.get();
    assert!(r.conns[0].taken() >= target);
}

#[test]
fn b12_flush_with_nothing_pending_publishes_nothing() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[cfg(64, 1)]);
    assert_eq!(r.flush(0), (Publish::None, 0, Wake::Nothing));
    r.put(0, t0);
    // The batch is already visible and announced.
    assert_eq!(r.flush(0), (Publish::None, 1, Wake::Nothing));
    r.get();
    assert_eq!(r.flush(0), (Publish::None, 1, Wake::Nothing));
}

// ---------------------------------------------------------------- B13

#[test]
fn b13_trigger_with_no_getter_waiting_fires_the_event() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    assert_eq!(chan.on_trigger(1), Wake::Event);
    assert_eq!(chan.on_trigger(2), Wake::Event);
}

#[test]
fn b13_trigger_wakes_a_waiting_getter_instead_of_the_event() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    assert_eq!(chan.end_wait(true, false), Wake::Nothing);
    assert_eq!(chan.waiting(), 0);
    let (plan, wake) = chan.plan_get(|_| 1);
    assert_eq!(plan.len(), 1);
    assert_eq!(wake, Wake::Nothing);
}

#[test]
fn b13_one_trigger_wakes_one_getter() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    for _ in 0..3 {
        chan.begin_wait();
    }
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    assert_eq!(chan.on_trigger(2), Wake::Getter);
    // One getter is still asleep and not yet told.
    assert_eq!(chan.on_trigger(3), Wake::Getter);
    // All three are already on their way: the next trigger fires the event.
    assert_eq!(chan.on_trigger(4), Wake::Event);
}

#[test]
fn b13_a_woken_getter_that_waits_again_can_be_woken_again() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    chan.end_wait(true, false);
    // Someone else took the batch meanwhile: the getter finds nothing, waits.
    chan.plan_get(|_| 1);
    chan.begin_wait();
    assert_eq!(chan.on_trigger(2), Wake::Getter);
}

#[test]
fn b13_a_retrigger_of_a_queued_connection_announces_nothing_new() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    assert_eq!(chan.on_trigger(1), Wake::Event);
    assert_eq!(chan.on_trigger(1), Wake::Nothing);
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Nothing);
    assert_eq!(chan.ready().count(), 1);
}

#[test]
fn b13_a_getter_giving_up_reannounces_the_queued_batch() {
    // The only getter was told, but is cancelled before it takes: the event.
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    assert_eq!(chan.end_wait(true, true), Wake::Event);

    // Two getters; the one told gives up: the other is woken instead.
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    assert_eq!(chan.end_wait(true, true), Wake::Getter);
    assert_eq!(chan.end_wait(true, false), Wake::Nothing);
    assert_eq!(chan.waiting(), 0);

    // A getter that was not told gives up: the batch is announced again
    // (spurious, since the told getter is still coming, but never lost).
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    chan.begin_wait();
    assert_eq!(chan.on_trigger(1), Wake::Getter);
    assert_ne!(chan.end_wait(false, true), Wake::Nothing);
}

#[test]
fn b13_a_getter_giving_up_with_nothing_queued_announces_nothing() {
    let mut chan: ChannelCore<u32> = ChannelCore::new(4);
    chan.begin_wait();
    assert_eq!(chan.end_wait(false, true), Wake::Nothing);
    assert_eq!(chan.waiting(), 0);
}

#[test]
fn b13_a_get_that_leaves_messages_behind_announces_them() {
    let t0 = Instant::now();
    // No getter waits: the rest is announced by the event.
    let mut r = Rig::new(2, &[cfg(64, 0)]);
    for _ in 0..3 {
        r.put(0, t0);
    }
    assert_eq!(r.flush(0).2, Wake::Event);
    let (got, wake) = r.get_wake();
    assert_eq!(got.len(), 2);
    assert_eq!(wake, Wake::Event);
    let (got, wake) = r.get_wake();
    assert_eq!(got, vec![(0, 2)]);
    assert_eq!(wake, Wake::Nothing, "drained: nothing to announce");

    // Two getters wait; the one woken by the trigger takes two of three and
    // the other is woken for the rest.
    let mut r = Rig::new(2, &[cfg(64, 0)]);
    r.chan.begin_wait();
    r.chan.begin_wait();
    for _ in 0..3 {
        r.put(0, t0);
    }
    assert_eq!(r.flush(0).2, Wake::Getter);
    assert_eq!(r.chan.end_wait(true, false), Wake::Nothing);
    let (got, wake) = r.get_wake();
    assert_eq!(got.len(), 2);
    assert_eq!(wake, Wake::Getter);
    assert_eq!(r.chan.end_wait(true, false), Wake::Nothing);
    assert_eq!(r.get_wake(), (vec![(0, 2)], Wake::Nothing));
}

// ---------------------------------------------------------------- B14

#[test]
fn b14_detach_withdraws_the_untaken_messages() {
    let t0 = Instant::now();
    let mut r = Rig::new(2, &[cfg(8, 3), cfg(8, 1), timed(0, 10, None)]);
    for _ in 0..5 {
        r.put(0, t0);
    }
    r.put(1, t0);
    assert_eq!(r.get(), vec![(0, 0), (0, 1)]);
    assert_eq!(r.put(0, t0).0, Publish::Extend { visible: 6 });
    // Detach connection 0: 2..6 are visible but not taken.
    r.chan.remove(&0);
    assert_eq!(r.conns[0].fail_untaken(), 2..6);
    let c = &r.conns[0];
    assert_eq!((c.next_seq(), c.visible(), c.taken()), (6, 6, 6));
    assert_eq!(r.get(), vec![(1, 0)]);
    // The taken ones complete as usual; then every slot is free.
    r.conns[0].on_completed(2).unwrap();
    r.conns[0].on_completed(6).unwrap();
    assert_eq!(r.conns[0].in_flight(), 0);
    assert_eq!(r.conns[0].flush().0, Publish::None);

    // A pending message with an armed time trigger: withdrawn and disarmed.
    r.put(2, t0);
    assert_eq!(r.conns[2].poll_timeout(), Some(t0 + ms(10)));
    assert_eq!(r.conns[2].fail_untaken(), 0..1);
    assert_eq!(r.conns[2].poll_timeout(), None);
    assert_eq!(r.timeout(2, t0 + ms(10)), (Publish::None, None));
}

// ---------------------------------------------------------------- B15

#[test]
fn b15_destroy_wakes_every_waiting_getter_and_serves_nothing() {
    let t0 = Instant::now();
    let mut r = Rig::new(4, &[cfg(8, 1), cfg(8, 1)]);
    r.put(0, t0);
    r.chan.begin_wait();
    r.chan.begin_wait();
    assert_eq!(r.chan.destroy(), 2, "both waiting getters are to be woken");
    assert!(r.chan.is_destroyed());
    assert!(!r.chan.has_ready());
    assert!(r.get().is_empty(), "nothing is delivered after destroy");
    assert_eq!(r.put(1, t0).1, Wake::Nothing);
    assert!(r.get().is_empty());
    assert_eq!(r.chan.end_wait(true, true), Wake::Nothing);
    assert_eq!(r.chan.end_wait(false, true), Wake::Nothing);
    // Each connection's untaken messages are failed with the destroyed error.
    assert_eq!(r.conns[0].fail_untaken(), 0..1);
    assert_eq!(r.conns[1].fail_untaken(), 0..1);
}

// ---------------------------------------------------------------- B16

#[test]
fn b16_trigger_changes_apply_from_the_next_put() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 10, None)]);
    r.put_out(0, t0).unwrap();
    r.conns[0].set_triggers(2, None, None);
    assert_eq!(r.conns[0].poll_timeout(), None, "time trigger removed");
    assert_eq!(r.timeout(0, t0 + ms(10)).0, Publish::None);
    assert_eq!(r.put(0, t0 + ms(11)).0, Publish::Trigger { visible: 2 });
    r.get();
    r.conns[0].set_triggers(0, Some(ms(5)), None);
    assert_eq!(r.put_out(0, t0 + ms(20)).unwrap().armed, Some(t0 + ms(25)));
    assert_eq!(r.conns[0].config().trigger_count, 0);
    assert_eq!(r.conns[0].config().max_buffers, 64);
}

#[test]
fn b16_huge_trigger_times_never_fire_and_never_panic() {
    let t0 = Instant::now();
    let mut r = Rig::new(64, &[timed(0, 0, None)]);
    r.conns[0].set_triggers(0, Some(Duration::MAX), Some(Duration::MAX));
    let out = r.put_out(0, t0).unwrap();
    assert_eq!((out.publish, out.armed), (Publish::None, None));
    assert_eq!(r.conns[0].poll_timeout(), None);
    assert_eq!(r.flush(0).0, Publish::Trigger { visible: 1 });

    // A representable deadline with an interval too large to re-arm.
    let mut r = Rig::new(64, &[timed(0, 10, None)]);
    r.conns[0].set_triggers(0, Some(ms(10)), Some(Duration::MAX));
    r.put(0, t0);
    assert_eq!(
        r.timeout(0, t0 + ms(10)),
        (Publish::Trigger { visible: 1 }, None)
    );
}
