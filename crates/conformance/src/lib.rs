//! # asyncmsg-conformance
//!
//! The behaviour contract of `SPEC.md` (rules B01–B17) as one generic test
//! suite that every transport runs.
//!
//! A transport implements [`Harness`]: how a test gets a receiving
//! [`Channel`] and a sending [`Connection`] to it. Each rule is one or more
//! public generic functions named after it (`b01_…` … `b17_…`); each sets up its
//! own isolated nodes and channels through the harness, so the functions may run
//! in parallel. The [`conformance_suite!`] macro turns every function into a
//! `#[test]` of the same name:
//!
//! ```no_run
//! use asyncmsg::Node;
//! use asyncmsg_conformance::{Harness, conformance_suite};
//!
//! struct InProc {
//!     node: Node,
//! }
//!
//! impl Harness for InProc {
//!     const IMMEDIATE: bool = true;
//!     const SHARED_ADDRESS_SPACE: bool = true;
//!     fn setup() -> Self {
//!         InProc { node: Node::new().unwrap() }
//!     }
//!     fn receiver(&self) -> &Node {
//!         &self.node
//!     }
//!     fn sender(&self) -> &Node {
//!         &self.node
//!     }
//! }
//!
//! conformance_suite!(InProc);
//! # fn main() {}
//! ```
//!
//! House rules the suite keeps: no fixed sleeps (every wait is on the event
//! itself, bounded by a timeout, so a broken transport fails instead of hanging),
//! generous bounds on time measurements, and a few seconds for the whole suite.
//!
//! Rule B18 (`mode` enforcement) is not part of this suite: it only applies
//! across processes and nodes, and is tested by those transports.

mod delivery;
mod events;
mod flow;
mod lifecycle;
mod support;
mod triggers;

use asyncmsg::{Channel, ChannelConfig, Connection, ConnectionAttr, Node, Target};

pub use delivery::*;
pub use events::*;
pub use flow::*;
pub use lifecycle::*;
pub use triggers::*;

/// How the suite reaches a transport: where channels are created and from where
/// connections are attached to them.
///
/// The in-process transport uses one [`Node`] for both sides. A shared-memory or
/// QUIC transport returns a second node from [`sender`](Self::sender) that
/// stands for the other process or host, and says how that node addresses a
/// channel ([`target`](Self::target), [`name_target`](Self::name_target)) and
/// what identity its messages carry ([`sender_identity`](Self::sender_identity)).
pub trait Harness: Sized {
    /// Whether a trigger is visible to a get as soon as the put or flush that
    /// caused it returns. True in process (and on a shared ring); false where a
    /// batch is in flight for a while (across a network). When false, the suite
    /// waits (bounded) for batches it expects, and gives a wrongly visible batch
    /// a moment to arrive before it checks that a get would block.
    const IMMEDIATE: bool = false;

    /// Whether the receiver reads the sender's own buffer (one address space).
    /// When true, the suite also checks zero copy by address: the bytes a get
    /// returns, and the buffer the delivery callback hands back, are the very
    /// allocation that was put (B11, B17).
    const SHARED_ADDRESS_SPACE: bool = false;

    /// Sets up an isolated environment for one test: fresh nodes, nothing shared
    /// with other tests (tests run in parallel in one process).
    fn setup() -> Self;

    /// The node that owns the channels under test.
    fn receiver(&self) -> &Node;

    /// The node whose connections send to those channels. In process this is
    /// the receiver's node; elsewhere a node standing for another process or host.
    fn sender(&self) -> &Node;

    /// How the sender addresses `chan`. Default: its `(nd, pid, chid)`.
    fn target(&self, chan: &Channel) -> Target {
        chan.id().into()
    }

    /// How the sender addresses a channel published under `name`. Default: the
    /// bare name.
    fn name_target(&self, name: &str) -> Target {
        name.into()
    }

    /// The `(nd, pid)` that messages from [`sender`](Self::sender) carry in their
    /// [`MsgInfo`](asyncmsg::MsgInfo) (B09). Default: this node, this process.
    fn sender_identity(&self) -> (u32, u32) {
        (0, std::process::id())
    }

    /// Creates a channel on the receiver's node; panics on failure.
    fn channel(&self, cfg: ChannelConfig) -> Channel {
        self.receiver()
            .create_channel(cfg)
            .expect("create a channel")
    }

    /// Attaches a connection from the sender's node to `chan`; panics on failure.
    fn connect(&self, chan: &Channel, attr: ConnectionAttr) -> Connection {
        self.sender()
            .connect(self.target(chan), attr)
            .expect("connect to the channel")
    }
}

/// Expands to one `#[test]` per suite function, each named after the function
/// (so `cargo test` lists `b01_…` … `b17_…`) and run with the given
/// [`Harness`] type.
///
/// See the [crate documentation](crate) for a whole example.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:ty) => {
        $crate::__conformance_tests! {
            $harness;
            b01_count_trigger_one_is_visible_to_next_get,
            b01_count_trigger_n_shows_all_n_in_order,
            b02_every_put_at_threshold_triggers_again,
            b03_no_trigger_nothing_visible_until_flush,
            b04_time_trigger_fires_nsec_after_first_put,
            b04_later_puts_do_not_push_deadline_back,
            b04_interval_rearms_only_while_pending,
            b05_puts_after_trigger_join_the_batch,
            b06_get_returns_at_most_channel_max_buffers,
            b06_connections_served_in_trigger_order,
            b07_nonblocking_connection_holds_exactly_max_buffers,
            b07_blocking_put_waits_for_a_slot,
            b07_timed_and_try_put_give_message_back,
            b07_b12_async_put_and_flush_wait_without_a_thread,
            b08_nonblocking_get_would_block_at_once,
            b08_blocking_get_waits_and_timeout_bounds_it,
            b08_one_trigger_wakes_one_waiting_getter,
            b08_async_recv_waits_without_a_thread,
            b08_async_one_trigger_wakes_one_task,
            b09_message_carries_its_info,
            b09_dropping_message_frees_its_buffer,
            b10_too_large_put_refused_with_message_back,
            b11_one_callback_per_message_in_put_order,
            b11_per_put_callback_replaces_default,
            b11_callback_gets_buffer_back_for_reuse,
            b11_callback_may_put_on_same_connection,
            b11_deliveries_as_async_stream,
            b12_flush_nowait_triggers_at_once,
            b12_flush_wait_returns_when_all_taken,
            b12_flush_wait_times_out,
            b13_closure_event_fires_when_no_getter_waits,
            b13_pulse_event_fires_when_no_getter_waits,
            b13_fd_event_becomes_readable,
            b13_waiting_getter_woken_instead_of_event,
            b13_events_coalesced_but_never_lost,
            b14_detach_calls_back_untaken_before_return,
            b14_detach_taken_messages_called_back_ok,
            b14_detach_wakes_blocked_put_and_flush,
            b15_destroy_fails_pending_and_later_calls,
            b15_destroy_wakes_blocked_put_and_flush,
            b15_destroy_wakes_waiting_getters,
            b16_bad_handles_and_arguments_are_typed_errors,
            b16_connect_attr_applies_from_next_put,
            b16_max_buffers_change_refused,
            b17_alloc_gives_a_send_buffer,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::$name::<$harness>();
            }
        )*
    };
}
