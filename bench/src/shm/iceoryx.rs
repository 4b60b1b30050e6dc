//! iceoryx2 (0.10) inter-process publish-subscribe with the loan API, the
//! peer BENCH.md names for the shared-memory cells: throughput (the
//! publisher in the child, the subscriber in the parent; or several
//! publishers, one child each, into one subscriber) and a busy-polling
//! ping-pong over two services.
//!
//! Configured so that nothing is lost and a lossy run fails:
//! * safe overflow off (`enable_safe_overflow(false)`; 0.10's default
//!   overwrites the oldest sample of a subscriber that falls behind), and
//!   the publisher's backpressure strategy `RetryUntilDelivered`: a publisher
//!   finding the subscriber's buffer full waits until there is room. A
//!   backpressure handler bounds that wait to [`STEP_LIMIT`], after which the
//!   send fails (`DiscardDataAndFail`) instead of hanging.
//! * the subscriber's buffer holds [`buffer_for`] samples (the service's
//!   `subscriber_max_buffer_size` and the subscriber's `buffer_size`); no
//!   history (the subscriber exists before any publisher).
//! * the subscriber is created before the child starts; the publisher waits
//!   until the service counts it and connects (`update_connections`); once
//!   every publisher is ready the subscriber connects too (a publisher finding
//!   the buffer of a subscriber that has not attached its end full drops the
//!   sample rather than wait), and only then do the publishers start. Every
//!   `send` is checked to have reached exactly one subscriber.
//! * every message carries its index in its first 8 bytes (and its sender in
//!   the next 8), checked in order on arrival, and the count is checked.
//!
//! The subscriber busy-polls `receive` (iceoryx2's publish-subscribe has no
//! blocking receive; waking would take its event service besides). 64 B
//! samples are written whole (`write_payload`); 64 KiB samples only get
//! their 16-byte header, as asyncmsg's `alloc` buffers do.
//!
//! Each run keeps iceoryx2's files apart: a root directory of its own under
//! the temporary directory and a file prefix of its own for `/dev/shm`, with
//! the pid and a counter in both; [`Place`] removes both when the run ends
//! (however it ends), and a run that left anything in `/dev/shm` but the
//! domain's global management segment (which iceoryx2 never removes) fails.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;

use super::peers::{index_of, sender_of};
use super::process::{ChildEnv, ChildProc, Control, Launcher, STEP_LIMIT, Step};
use super::{ALLOC, LATENCY_LIMIT, RECEIVER_CPU, Run, SENDER_CPU, SMALL, latency_loop, warmup_for};
use crate::{GET_STALL, pin};

/// Samples a subscriber's buffer holds for a payload of `payload` bytes.
pub(crate) fn buffer_for(payload: usize) -> usize {
    if payload <= SMALL { 256 } else { 64 }
}

/// Samples in flight in a ping-pong (one at a time is used).
const PING_BUFFER: usize = 4;

/// Empty polls between two looks at the clock while spinning.
const SPINS_PER_CHECK: u32 = 1 << 12;

fn iox<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("iceoryx2: {what}: {e:?}"))
}

/// Where a run's iceoryx2 files live; the parent's removes them on drop.
#[derive(Debug)]
struct Place {
    root: PathBuf,
    prefix: String,
    owner: bool,
}

impl Place {
    /// A root directory and a file prefix unique to this process and call.
    fn new() -> Place {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (pid, k) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Place {
            root: std::env::temp_dir().join(format!("asyncmsg-bench-iox2-{pid}-{k}")),
            prefix: format!("iox2amb{pid}x{k}_"),
            owner: true,
        }
    }

    /// The place the parent named in a child's first two arguments.
    fn from_args(env: &ChildEnv) -> Result<Place> {
        Ok(Place {
            root: PathBuf::from(env.arg(0)?),
            prefix: env.arg(1)?.to_owned(),
            owner: false,
        })
    }

    fn args(&self) -> [String; 2] {
        [self.root.display().to_string(), self.prefix.clone()]
    }

    /// A node whose files go to this place; signal handling left to the
    /// program.
    fn node(&self) -> Result<Node<ipc::Service>> {
        set_log_level_from_env_or(LogLevel::Error);
        let mut config = Config::default();
        let root = format!("{}/", self.root.display());
        config
            .global
            .set_root_path(&iox(Path::new(root.as_bytes()), "the root path")?);
        config.global.prefix = iox(FileName::new(self.prefix.as_bytes()), "the prefix")?;
        iox(
            NodeBuilder::new()
                .config(&config)
                .signal_handling_mode(SignalHandlingMode::Disabled)
                .create::<ipc::Service>(),
            "creating a node",
        )
    }

    /// A service name unique to this place.
    fn service(&self, tag: &str) -> Result<ServiceName> {
        iox(
            ServiceName::new(&format!("asyncmsg-bench/{}/{tag}", self.prefix)),
            "a service name",
        )
    }

    /// The files of this place in `/dev/shm`.
    fn shm_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/dev/shm")
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&self.prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes whatever is left of the place; what was left in `/dev/shm`.
    fn clean(&self) -> Vec<PathBuf> {
        let left = self.shm_files();
        for f in &left {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(&self.root);
        left
    }

    /// After a run whose nodes are all gone: removes the place, and fails if
    /// iceoryx2 left shared memory behind other than the domain's global
    /// management segment (`…node.0_10_0.global_mgmt`, a node counter), which
    /// iceoryx2 keeps for good by design (it is created without ownership)
    /// and which is this run's to remove, the domain (the prefix) being the
    /// run's own and every process of it gone.
    fn finish(self) -> Result<()> {
        let left: Vec<PathBuf> = self
            .clean()
            .into_iter()
            .filter(|f| !f.to_string_lossy().ends_with(".global_mgmt"))
            .collect();
        ensure!(
            left.is_empty(),
            "iceoryx2 left {} files in /dev/shm: {left:?}",
            left.len()
        );
        Ok(())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.owner {
            self.clean();
        }
    }
}

/// Spins on `poll` until it yields, failing once it has not for `limit`.
fn spin_until<T>(limit: Duration, mut poll: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        if let Some(v) = poll()? {
            return Ok(v);
        }
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_CHECK == 0 {
            let t = *since.get_or_insert_with(Instant::now);
            if t.elapsed() > limit {
                bail!("nothing arrived for {limit:?}");
            }
        }
        std::hint::spin_loop();
    }
}

/// The publish-subscribe service of `[u8; N]` samples named `name`, created
/// (by the parent) or opened (by a child) with overflow off and a subscriber
/// buffer of `buffer`, for `publishers` publishers and one subscriber.
fn service<const N: usize>(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    buffer: usize,
    publishers: usize,
    create: bool,
) -> Result<
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8; N], ()>,
> {
    let builder = node
        .service_builder(name)
        .publish_subscribe::<[u8; N]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .max_subscribers(1)
        .max_publishers(publishers)
        .max_nodes(publishers + 1);
    if create {
        iox(builder.create(), "creating the service")
    } else {
        iox(builder.open(), "opening the service")
    }
}

/// A publisher that waits for room in a full subscriber buffer (at most
/// [`STEP_LIMIT`], then its send fails), connected to the service's one
/// subscriber, which it waits for.
fn publisher<const N: usize>(
    service: &iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc::Service,
        [u8; N],
        (),
    >,
) -> Result<iceoryx2::port::publisher::Publisher<ipc::Service, [u8; N], ()>> {
    let publisher = iox(
        service
            .publisher_builder()
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .set_backpressure_handler(|info: &BackpressureInfo| {
                if info.elapsed_time < STEP_LIMIT {
                    BackpressureAction::Retry
                } else {
                    BackpressureAction::DiscardDataAndFail
                }
            })
            .create(),
        "creating the publisher",
    )?;
    let began = Instant::now();
    while service.dynamic_config().number_of_subscribers() < 1 {
        ensure!(
            began.elapsed() < STEP_LIMIT,
            "no subscriber within {STEP_LIMIT:?}"
        );
        std::thread::yield_now();
    }
    iox(publisher.update_connections(), "connecting the publisher")?;
    Ok(publisher)
}

/// Loans a sample, writes index `i` and sender `k` into it (a 64 B sample
/// whole, a larger one only its first 16 bytes), and sends it to exactly one
/// subscriber.
fn send<const N: usize>(
    publisher: &iceoryx2::port::publisher::Publisher<ipc::Service, [u8; N], ()>,
    i: u64,
    k: u64,
) -> Result<()> {
    let mut sample = iox(publisher.loan_uninit(), "loaning a sample")?;
    let sample = if N <= SMALL {
        let mut value = [0u8; N];
        value[..8].copy_from_slice(&i.to_le_bytes());
        value[8..16].copy_from_slice(&k.to_le_bytes());
        sample.write_payload(value)
    } else {
        let header = [i.to_le_bytes(), k.to_le_bytes()];
        let payload: &mut MaybeUninit<[u8; N]> = sample.payload_mut();
        // SAFETY: the payload is N ≥ 16 bytes of a live sample this process
        // loaned; the 16 header bytes are copied into its start. The rest
        // lies in iceoryx2's data segment, a shared mapping the kernel
        // zero-filled and in which nothing but these headers is ever
        // written, so every byte of the payload is initialized when it is
        // declared so.
        unsafe {
            std::ptr::copy_nonoverlapping(
                header.as_ptr().cast::<u8>(),
                payload.as_mut_ptr().cast::<u8>(),
                16,
            );
            sample.assume_init()
        }
    };
    let reached = iox(sample.send(), "sending")?;
    ensure!(reached == 1, "message {i} reached {reached} subscribers");
    Ok(())
}

/// `n` messages of `payload` bytes (64 B or 64 KiB) in all from `publishers`
/// children, one publisher each, to a subscriber in the parent; every
/// publisher's messages are checked to arrive in its order.
pub(crate) fn throughput(
    launcher: &Launcher,
    n: u64,
    payload: usize,
    publishers: u64,
) -> Result<Run> {
    match payload {
        SMALL => throughput_of::<SMALL>(launcher, n, publishers),
        ALLOC => throughput_of::<ALLOC>(launcher, n, publishers),
        other => bail!("no iceoryx2 cell carries {other} B"),
    }
}

fn throughput_of<const N: usize>(launcher: &Launcher, n: u64, publishers: u64) -> Result<Run> {
    let place = Place::new();
    let run = {
        let node = place.node()?;
        let name = place.service("throughput")?;
        let buffer = buffer_for(N);
        let service = service::<N>(&node, &name, buffer, publishers as usize, true)?;
        let subscriber = iox(
            service.subscriber_builder().buffer_size(buffer).create(),
            "creating the subscriber",
        )?;
        let mut children = Vec::new();
        for k in 0..publishers {
            let (control, their_control) = Control::pair()?;
            let [root, prefix] = place.args();
            let child = ChildProc::spawn(
                launcher,
                "iox-publish",
                &[
                    root,
                    prefix,
                    name.as_str().to_owned(),
                    super::asyncmsg::share_of(n, publishers, k).to_string(),
                    N.to_string(),
                    k.to_string(),
                    publishers.to_string(),
                ],
                &[their_control.as_fd()],
            )?;
            children.push((control, child));
        }
        let _pinned = pin(RECEIVER_CPU);
        for (control, child) in &mut children {
            control.expect_from(Step::Ready, child)?;
        }
        // Every publisher exists: attach the subscriber's end of each
        // connection now. A connection counts as connected only then, and a
        // publisher finding the buffer of an unconnected one full drops the
        // sample (`send` reports 0 subscribers) instead of waiting.
        iox(subscriber.update_connections(), "connecting the subscriber")?;

        let began = Instant::now();
        for (control, _) in &mut children {
            control.send(Step::Go)?;
        }
        let mut expected = vec![0u64; publishers as usize];
        let outcome = (|| -> Result<()> {
            for received in 0..n {
                let sample = spin_until(GET_STALL, || iox(subscriber.receive(), "receiving"))
                    .with_context(|| format!("after {received} of {n} messages"))?;
                let msg: &[u8] = sample.payload();
                let k = sender_of(msg);
                let next = expected
                    .get_mut(k as usize)
                    .with_context(|| format!("a message from publisher {k} of {publishers}"))?;
                let got = index_of(msg);
                ensure!(
                    got == *next,
                    "received message {got} of publisher {k}, expected {next}"
                );
                *next += 1;
            }
            Ok(())
        })();
        let took = began.elapsed();
        super::asyncmsg::explain_fan_in(outcome, &mut children)?;
        for (control, child) in &mut children {
            control.expect_from(Step::Done, child)?;
        }
        ensure!(
            iox(subscriber.receive(), "receiving")?.is_none(),
            "a message beyond the {n} sent"
        );
        super::asyncmsg::say_bye(children)?;
        Run::throughput(n, N, took)
    };
    place.finish()?;
    Ok(run)
}

pub(crate) fn child_publish(env: ChildEnv) -> Result<()> {
    match env.num(4)? as usize {
        SMALL => child_publish_of::<SMALL>(env),
        ALLOC => child_publish_of::<ALLOC>(env),
        other => bail!("no iceoryx2 cell carries {other} B"),
    }
}

fn child_publish_of<const N: usize>(mut env: ChildEnv) -> Result<()> {
    let place = Place::from_args(&env)?;
    let name = iox(ServiceName::new(env.arg(2)?), "a service name")?;
    let n = env.num(3)?;
    let k = env.num(5)?;
    let publishers = env.num(6)? as usize;
    let mut control = Control::from_fd(env.fd(0)?);
    let node = place.node()?;
    let service = service::<N>(&node, &name, buffer_for(N), publishers, false)?;
    let publisher = publisher(&service)?;
    let _pinned = pin(SENDER_CPU);
    control.send(Step::Ready)?;
    control.expect(Step::Go)?;
    for i in 0..n {
        send(&publisher, i, k).with_context(|| format!("message {i}"))?;
    }
    control.send(Step::Done)?;
    control.expect(Step::Bye)?;
    drop(publisher);
    drop(service);
    drop(node);
    Ok(())
}

/// Ping-pong of 64 B samples over two services (ping: parent → child, pong:
/// child → parent), both sides spinning on `receive`: `n` timed round trips
/// after a warm-up.
pub(crate) fn latency(launcher: &Launcher, n: u64) -> Result<Run> {
    let warmup = warmup_for(n);
    let place = Place::new();
    let run = {
        let node = place.node()?;
        let ping_name = place.service("ping")?;
        let pong_name = place.service("pong")?;
        let ping = service::<SMALL>(&node, &ping_name, PING_BUFFER, 1, true)?;
        let pong = service::<SMALL>(&node, &pong_name, PING_BUFFER, 1, true)?;
        let pongs = iox(
            pong.subscriber_builder().buffer_size(PING_BUFFER).create(),
            "creating the subscriber",
        )?;
        let (mut control, their_control) = Control::pair()?;
        let [root, prefix] = place.args();
        let mut child = ChildProc::spawn(
            launcher,
            "iox-echo",
            &[
                root,
                prefix,
                ping_name.as_str().to_owned(),
                pong_name.as_str().to_owned(),
                (warmup + n).to_string(),
            ],
            &[their_control.as_fd()],
        )?;
        drop(their_control);
        let _pinned = pin(SENDER_CPU);
        control.expect_from(Step::Ready, &mut child)?;
        iox(pongs.update_connections(), "connecting the subscriber")?;
        let pings = publisher(&ping)?;
        let run = latency_loop(warmup, n, |i| {
            send(&pings, i, 0)?;
            let sample = spin_until(GET_STALL, || iox(pongs.receive(), "receiving"))
                .with_context(|| format!("pong {i}"))?;
            let back = index_of(sample.payload());
            ensure!(back == i, "pong {back}, expected {i}");
            Ok(())
        });
        let run = run.map_err(|e| e.context(child.failure()))?;
        control.send(Step::Bye)?;
        child.finish()?;
        run
    };
    place.finish()?;
    Ok(run)
}

pub(crate) fn child_echo(mut env: ChildEnv) -> Result<()> {
    let place = Place::from_args(&env)?;
    let ping_name = iox(ServiceName::new(env.arg(2)?), "a service name")?;
    let pong_name = iox(ServiceName::new(env.arg(3)?), "a service name")?;
    let total = env.num(4)?;
    let mut control = Control::from_fd(env.fd(0)?);
    let node = place.node()?;
    let ping = service::<SMALL>(&node, &ping_name, PING_BUFFER, 1, false)?;
    let pong = service::<SMALL>(&node, &pong_name, PING_BUFFER, 1, false)?;
    let pings = iox(
        ping.subscriber_builder().buffer_size(PING_BUFFER).create(),
        "creating the subscriber",
    )?;
    let pongs = publisher(&pong)?;
    let _pinned = pin(RECEIVER_CPU);
    control.send(Step::Ready)?;
    for i in 0..total {
        let sample = spin_until(LATENCY_LIMIT, || iox(pings.receive(), "receiving"))
            .with_context(|| format!("ping {i}"))?;
        let got = index_of(sample.payload());
        drop(sample);
        ensure!(got == i, "ping {got}, expected {i}");
        send(&pongs, i, 0).with_context(|| format!("pong {i}"))?;
    }
    control.expect(Step::Bye)?;
    drop(pongs);
    drop(pings);
    drop((ping, pong));
    drop(node);
    Ok(())
}
