//! Property tests: a two-endpoint harness drives several [`SendCore`]s and one
//! [`ChannelCore`] with random operations on a virtual clock, the way a driver
//! would, and checks the contract after every step and at the end:
//!
//! * nothing lost: after a final flush and drain, every put was taken;
//! * nothing duplicated and FIFO per connection: each connection's messages are
//!   taken as `0, 1, 2, …`;
//! * never more than `max_buffers` in flight, a refused put changes nothing;
//! * counters move forward only and `completed <= taken <= visible <= next`;
//! * a get never returns more than the channel's capacity;
//! * the count trigger leaves fewer than N messages pending, the time trigger
//!   leaves no message pending longer than its `nsec`;
//! * every queued batch is announced: a waiting getter was told, or the event is
//!   pending (B13), and a getter is told only if one waits untold;
//! * after destroy nothing is delivered, and every message was either taken or
//!   failed, exactly once (B15).

use std::time::{Duration, Instant};

use asyncmsg_core::{ChannelCore, Publish, PutRefused, SendConfig, SendCore, Wake};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(usize),
    Flush(usize),
    Advance(u64),
    /// An ordinary get (a poller, or the owner after an event).
    Get,
    /// The owner reacts to a pending event: consume it and get.
    EventGet,
    /// A getter gets; if it finds nothing it starts waiting.
    WaitingGet,
    /// A waiting getter that was told runs: ends its wait and gets (and waits
    /// again if someone else took the batch).
    WakeGetter(usize),
    /// A waiting getter gives up: cancelled (`end_wait(.., true)`), or timed
    /// out and taking a last look itself (`end_wait(.., false)` + get).
    GiveUp(usize, bool),
    /// Some taken messages of a connection are called back, in order.
    Complete(usize, u64),
    Destroy,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4usize).prop_map(Op::Put),
        1 => (0..4usize).prop_map(Op::Flush),
        3 => (0..25u64).prop_map(Op::Advance),
        2 => Just(Op::Get),
        2 => Just(Op::EventGet),
        2 => Just(Op::WaitingGet),
        2 => (0..4usize).prop_map(Op::WakeGetter),
        1 => (0..4usize, any::<bool>()).prop_map(|(g, c)| Op::GiveUp(g, c)),
        4 => (0..4usize, 1..6u64).prop_map(|(c, n)| Op::Complete(c, n)),
    ]
}

fn send_config() -> impl Strategy<Value = SendConfig> {
    (
        1..8u32,
        0..5u32,
        prop::option::of(1..20u64),
        prop::option::of(0..10u64),
    )
        .prop_map(|(max_buffers, trigger_count, time, interval)| SendConfig {
            max_buffers,
            trigger_count,
            trigger_time: time.map(Duration::from_millis),
            trigger_interval: interval.map(Duration::from_millis),
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    next: u64,
    visible: u64,
    taken: u64,
    completed: u64,
}

fn counters(c: &SendCore) -> Counters {
    Counters {
        next: c.next_seq(),
        visible: c.visible(),
        taken: c.taken(),
        completed: c.completed(),
    }
}

struct Conn {
    core: SendCore,
    /// When each message was put, by sequence number.
    put_at: Vec<Instant>,
    /// Sequence numbers taken by gets, in the order they were returned.
    received: Vec<u64>,
    /// Sequence numbers failed by destroy.
    failed: std::ops::Range<u64>,
    last: Counters,
}

#[derive(Debug)]
struct Getter {
    told: bool,
}

struct Harness {
    now: Instant,
    conns: Vec<Conn>,
    chan: ChannelCore<usize>,
    capacity: usize,
    getters: Vec<Getter>,
    event_pending: bool,
    destroyed: bool,
}

impl Harness {
    fn new(capacity: usize, cfgs: &[SendConfig]) -> Self {
        let now = Instant::now();
        Harness {
            now,
            conns: cfgs
                .iter()
                .map(|c| {
                    let core = SendCore::new(*c);
                    Conn {
                        last: counters(&core),
                        core,
                        put_at: Vec::new(),
                        received: Vec::new(),
                        failed: 0..0,
                    }
                })
                .collect(),
            chan: ChannelCore::new(capacity),
            capacity,
            getters: Vec::new(),
            event_pending: false,
            destroyed: false,
        }
    }

    fn apply(&mut self, w: Wake) {
        match w {
            Wake::Getter => {
                let g = self
                    .getters
                    .iter_mut()
                    .find(|g| !g.told)
                    .expect("Wake::Getter with no untold getter waiting");
                g.told = true;
            }
            Wake::Event => self.event_pending = true,
            Wake::Nothing => {}
        }
    }

    fn publish(&mut self, k: usize, p: Publish) {
        let queued = self.chan.ready().any(|&q| q == k);
        match p {
            Publish::Trigger { visible } => {
                assert_eq!(visible, self.conns[k].core.visible());
                // A trigger only happens when the connection had no batch.
                assert!(!queued, "trigger of a connection already queued");
                let w = self.chan.on_trigger(k);
                // B13: a getter waiting untold is woken instead of the event.
                assert_eq!(w, self.expected_wake(), "trigger announced wrongly");
                self.apply(w);
            }
            Publish::Extend { visible } => {
                assert_eq!(visible, self.conns[k].core.visible());
                assert!(queued, "extension of a batch the channel does not hold");
            }
            Publish::None => {}
        }
    }

    fn put(&mut self, k: usize) {
        if self.destroyed {
            return; // the driver refuses puts on a destroyed channel
        }
        let c = &mut self.conns[k];
        let before = counters(&c.core);
        let deadline = c.core.poll_timeout();
        match c.core.put(self.now) {
            Ok(out) => {
                assert_eq!(out.seq, before.next);
                c.put_at.push(self.now);
                if let Some(at) = out.armed {
                    assert_eq!(c.core.poll_timeout(), Some(at));
                    let t = c.core.config().trigger_time.expect("armed without time");
                    assert_eq!(at, self.now + t);
                }
                self.publish(k, out.publish);
            }
            Err(PutRefused::Full(n)) => {
                assert_eq!(n, c.core.config().max_buffers);
                assert_eq!(before.next - before.completed, u64::from(n));
                assert_eq!(counters(&c.core), before, "a refused put changed counters");
                assert_eq!(c.core.poll_timeout(), deadline);
            }
        }
    }

    fn flush(&mut self, k: usize) {
        if self.destroyed {
            return;
        }
        let (p, target) = self.conns[k].core.flush();
        assert_eq!(target, self.conns[k].core.next_seq());
        assert_eq!(self.conns[k].core.visible(), target);
        self.publish(k, p);
    }

    fn advance(&mut self, by: u64) {
        self.now += Duration::from_millis(by);
        if self.destroyed {
            return;
        }
        for k in 0..self.conns.len() {
            let (p, next) = self.conns[k].core.handle_timeout(self.now);
            assert_eq!(next, self.conns[k].core.poll_timeout());
            if let Some(at) = next {
                assert!(at > self.now, "re-armed in the past");
            }
            self.publish(k, p);
        }
    }

    /// One get; returns how many messages it took.
    fn get(&mut self) -> usize {
        let conns = &self.conns;
        let (plan, wake) = self
            .chan
            .plan_get(|&k| conns[k].core.visible() - conns[k].core.taken());
        let total: u64 = plan.iter().map(|t| t.count).sum();
        assert!(total <= self.capacity as u64, "get beyond capacity");
        if self.destroyed {
            assert!(plan.is_empty(), "delivered after destroy");
        }
        let mut seen = Vec::new();
        for t in &plan {
            assert!(t.count > 0);
            assert!(!seen.contains(&t.key), "a connection twice in one get");
            seen.push(t.key);
            let c = &mut self.conns[t.key];
            let start = c.core.taken();
            assert!(start + t.count <= c.core.visible(), "took invisible");
            c.received.extend(start..start + t.count);
            c.core.on_taken(start + t.count).unwrap();
        }
        // A cut-short connection stays at the head: only the last take may be
        // partial, and then its connection heads the queue.
        if let Some(last) = plan.last() {
            let c = &self.conns[last.key].core;
            if c.visible() > c.taken() {
                assert_eq!(self.chan.ready().next(), Some(&last.key));
                assert_eq!(total, self.capacity as u64);
            }
        }
        if self.chan.has_ready() {
            assert_eq!(
                wake,
                self.expected_wake(),
                "rest of a get announced wrongly"
            );
        } else {
            assert_eq!(wake, Wake::Nothing, "announced an empty queue");
        }
        self.apply(wake);
        total as usize
    }

    /// What announcing a batch must do: wake a getter that waits and was not
    /// told yet, else fire the event.
    fn expected_wake(&self) -> Wake {
        if self.destroyed {
            Wake::Nothing
        } else if self.getters.iter().any(|g| !g.told) {
            Wake::Getter
        } else {
            Wake::Event
        }
    }

    fn waiting_get(&mut self) {
        if self.destroyed {
            return;
        }
        if self.get() == 0 {
            self.chan.begin_wait();
            self.getters.push(Getter { told: false });
        }
    }

    fn wake_getter(&mut self, i: usize) {
        let Some(idx) = self
            .getters
            .iter()
            .enumerate()
            .filter(|(_, g)| g.told)
            .map(|(i, _)| i)
            .nth(i)
        else {
            return;
        };
        self.getters.remove(idx);
        let w = self.chan.end_wait(true, false);
        assert_eq!(w, Wake::Nothing);
        if self.destroyed {
            return;
        }
        if self.get() == 0 {
            // Spurious: someone else took the batch. Wait again.
            self.chan.begin_wait();
            self.getters.push(Getter { told: false });
        }
    }

    fn give_up(&mut self, i: usize, cancelled: bool) {
        if self.getters.is_empty() {
            return;
        }
        let g = self.getters.remove(i % self.getters.len());
        if cancelled {
            let w = self.chan.end_wait(g.told, true);
            // B13: giving up re-announces whatever is queued.
            if self.chan.has_ready() {
                assert_eq!(w, self.expected_wake(), "give-up announced wrongly");
            } else {
                assert_eq!(w, Wake::Nothing);
            }
            self.apply(w);
        } else {
            assert_eq!(self.chan.end_wait(g.told, false), Wake::Nothing);
            self.get();
        }
    }

    fn event_get(&mut self) {
        if self.event_pending {
            self.event_pending = false;
            self.get();
        }
    }

    fn complete(&mut self, k: usize, n: u64) {
        let c = &mut self.conns[k].core;
        let upto = (c.completed() + n).min(c.taken());
        c.on_completed(upto).unwrap();
    }

    fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        assert_eq!(self.chan.destroy(), self.getters.len());
        // Every waiting getter wakes with a destroyed error.
        for g in std::mem::take(&mut self.getters) {
            assert_eq!(self.chan.end_wait(g.told, false), Wake::Nothing);
        }
        for (k, c) in self.conns.iter_mut().enumerate() {
            let before = counters(&c.core);
            c.failed = c.core.fail_untaken();
            assert_eq!(c.failed, before.taken..before.next, "conn {k}");
            assert_eq!(c.core.poll_timeout(), None);
        }
        assert_eq!(self.chan.on_trigger(0), Wake::Nothing);
    }

    fn step(&mut self, op: &Op) {
        let n = self.conns.len();
        match *op {
            Op::Put(k) => self.put(k % n),
            Op::Flush(k) => self.flush(k % n),
            Op::Advance(ms) => self.advance(ms),
            Op::Get => {
                self.get();
            }
            Op::EventGet => self.event_get(),
            Op::WaitingGet => self.waiting_get(),
            Op::WakeGetter(i) => self.wake_getter(i),
            Op::GiveUp(i, cancelled) => self.give_up(i, cancelled),
            Op::Complete(k, m) => self.complete(k % n, m),
            Op::Destroy => self.destroy(),
        }
        self.check();
    }

    fn check(&mut self) {
        for (k, c) in self.conns.iter_mut().enumerate() {
            let now = counters(&c.core);
            let cfg = *c.core.config();
            assert!(
                now.completed <= now.taken && now.taken <= now.visible && now.visible <= now.next,
                "conn {k}: {now:?}"
            );
            assert!(now.next - now.completed <= u64::from(cfg.max_buffers));
            assert_eq!(c.core.in_flight(), now.next - now.completed);
            let l = c.last;
            assert!(
                now.next >= l.next
                    && now.visible >= l.visible
                    && now.taken >= l.taken
                    && now.completed >= l.completed,
                "conn {k}: counters went back: {l:?} -> {now:?}"
            );
            c.last = now;
            // FIFO, no duplicates, nothing taken that was not put.
            let got = now.taken - (c.failed.end - c.failed.start);
            assert!(
                c.received.iter().copied().eq(0..got),
                "conn {k}: {:?}",
                c.received
            );
            assert_eq!(c.put_at.len() as u64, now.next);
            if self.destroyed {
                continue;
            }
            let pending = now.next - now.visible;
            // B01/B02: the count trigger leaves fewer than N pending.
            if cfg.trigger_count > 0 {
                assert!(
                    pending < u64::from(cfg.trigger_count),
                    "conn {k}: {pending} pending"
                );
            }
            // B04: nothing pending longer than the time trigger's nsec, and the
            // deadline is no later than nsec after the oldest pending put.
            if let (Some(t), true) = (cfg.trigger_time, pending > 0) {
                let oldest = c.put_at[now.visible as usize];
                assert!(oldest + t > self.now, "conn {k}: pending past its deadline");
                let at = c.core.poll_timeout().expect("pending without a deadline");
                assert!(at <= oldest + t, "conn {k}: deadline pushed back");
            }
            // Pending implies no untaken visible batch (every put extends it).
            if pending > 0 {
                assert_eq!(now.visible, now.taken);
            }
            // A visible batch is queued at the channel.
            if now.visible > now.taken {
                assert!(
                    self.chan.ready().any(|&q| q == k),
                    "conn {k} visible but not queued"
                );
            }
        }
        let ready: Vec<usize> = self.chan.ready().copied().collect();
        for (i, k) in ready.iter().enumerate() {
            assert!(!ready[..i].contains(k), "connection queued twice");
        }
        assert_eq!(self.chan.waiting(), self.getters.len());
        // B13: a queued batch is announced: by a pending event or a told getter.
        if self.chan.has_ready() {
            assert!(
                self.event_pending || self.getters.iter().any(|g| g.told),
                "a queued batch nobody was told about"
            );
        }
    }

    /// Final flush and drain, then the end-to-end properties.
    fn finish(&mut self) {
        if !self.destroyed {
            for k in 0..self.conns.len() {
                self.flush(k);
                self.check();
            }
            let mut rounds = 0;
            while self.chan.has_ready() {
                assert!(self.get() > 0, "a queued connection gave nothing");
                self.check();
                rounds += 1;
                assert!(rounds < 10_000);
            }
        }
        for (k, c) in self.conns.iter().enumerate() {
            let next = c.core.next_seq();
            // Nothing lost, nothing duplicated, FIFO: taken ++ failed = 0..next.
            let all: Vec<u64> = c.received.iter().copied().chain(c.failed.clone()).collect();
            assert_eq!(all, (0..next).collect::<Vec<_>>(), "conn {k}");
            assert_eq!(c.core.taken(), next);
        }
    }
}

fn run(capacity: usize, cfgs: &[SendConfig], ops: &[Op]) {
    let mut h = Harness::new(capacity, cfgs);
    h.check();
    for op in ops {
        h.step(op);
    }
    h.finish();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn one_connection_nothing_lost_fifo_bounded(
        capacity in 1..6usize,
        cfg in send_config(),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        run(capacity, &[cfg], &ops);
    }

    #[test]
    fn several_connections_nothing_lost_fifo_bounded(
        capacity in 1..6usize,
        cfgs in prop::collection::vec(send_config(), 2..5),
        ops in prop::collection::vec(op(), 0..300),
    ) {
        run(capacity, &cfgs, &ops);
    }

    #[test]
    fn destroy_fails_exactly_what_was_not_taken(
        capacity in 1..6usize,
        cfgs in prop::collection::vec(send_config(), 1..4),
        before in prop::collection::vec(op(), 0..150),
        after in prop::collection::vec(op(), 0..50),
    ) {
        let mut ops = before;
        ops.push(Op::Destroy);
        ops.extend(after);
        run(capacity, &cfgs, &ops);
    }
}
