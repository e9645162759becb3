//! A deterministic pair of [`Link`]s joined by simulated wires, for tests and demos.
//!
//! Like quinn-proto's test `Pair`, it runs both ends with virtual time: each
//! direction is a wire of a given rate and latency; a side pulls its next frame
//! exactly when its wire is free (so priorities behave as on a real serial line),
//! the bytes arrive at the other side when they would have, and time jumps to the
//! next thing that happens. A tamper hook can drop, cut or flip bytes in flight,
//! a side can read its arrivals in pieces of given sizes (partial reads), and an
//! application callback per side reacts to events (answers requests, …).
//!
//! Nothing here reads a clock or spawns anything: one seed, one outcome.

use crate::link::{Link, LinkConfig, LinkEvent};
use crate::reassembly::SinkFactory;
use crate::time::Instant;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::BytesMut;
use core::time::Duration;

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From side A to side B.
    AToB,
    /// From side B to side A.
    BToA,
}

/// One direction's wire.
#[derive(Clone, Copy, Debug)]
pub struct Wire {
    /// Bytes per second; `None` for an infinitely fast wire.
    pub bytes_per_sec: Option<u64>,
    /// Propagation delay added to every transmission.
    pub latency: Duration,
    /// Most wire bytes a side writes in one transmission (several frames are batched
    /// up to this on fast wires; on rated wires one frame per transmission).
    pub max_write: usize,
}

impl Wire {
    /// A wire of `bytes_per_sec` with no latency.
    pub fn rated(bytes_per_sec: u64) -> Wire {
        Wire {
            bytes_per_sec: Some(bytes_per_sec),
            latency: Duration::ZERO,
            max_write: 1,
        }
    }

    /// An infinitely fast wire with `latency`.
    pub fn instant(latency: Duration) -> Wire {
        Wire {
            bytes_per_sec: None,
            latency,
            max_write: 256 * 1024,
        }
    }

    fn transfer_time(&self, len: usize) -> Duration {
        match self.bytes_per_sec {
            Some(rate) if rate > 0 => {
                Duration::from_nanos((len as u64).saturating_mul(1_000_000_000) / rate)
            }
            _ => Duration::ZERO,
        }
    }
}

/// Reacts to a side's events: gets the link to answer on and the current time.
pub type App = Box<dyn FnMut(&mut Link, &LinkEvent, Instant)>;

/// Rewrites bytes in flight (drop by clearing, cut by truncating, flip bits).
pub type Tamper = Box<dyn FnMut(Direction, &mut Vec<u8>)>;

/// One end of the pair.
pub struct Side {
    /// The protocol state.
    pub link: Link,
    /// Every event with the virtual time it happened, in order.
    pub events: Vec<(Instant, LinkEvent)>,
    app: Option<App>,
    wire: Wire,
    wire_free_at: Instant,
    inbox: VecDeque<(Instant, Vec<u8>)>,
    /// Sizes of the pieces arrivals are read in, cycled; empty: one read each.
    read_sizes: Vec<usize>,
    next_read: usize,
    scratch: BytesMut,
}

impl Side {
    fn new(link: Link, wire: Wire) -> Side {
        Side {
            link,
            events: Vec::new(),
            app: None,
            wire,
            wire_free_at: Instant::ZERO,
            inbox: VecDeque::new(),
            read_sizes: Vec::new(),
            next_read: 0,
            scratch: BytesMut::new(),
        }
    }

    /// Hands arrived bytes to the link, in pieces of the configured read sizes.
    fn read(&mut self, bytes: &[u8], now: Instant) {
        if self.read_sizes.is_empty() {
            // A fatal error is reported as LinkEvent::Failed; keep driving.
            let _ = self.link.handle_input(bytes, now);
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let size = self.read_sizes[self.next_read % self.read_sizes.len()].max(1);
            self.next_read = self.next_read.wrapping_add(1);
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            let _ = self.link.handle_input(piece, now);
            rest = tail;
        }
    }

    /// Drains the link's events into `events`, letting the app react to each.
    fn collect_events(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(event) = self.link.poll_event() {
            any = true;
            if let Some(app) = self.app.as_mut() {
                app(&mut self.link, &event, now);
            }
            self.events.push((now, event));
        }
        any
    }

    /// Runs the link's timers that are due; true if that changed anything.
    fn run_timers(&mut self, now: Instant) -> bool {
        match self.link.poll_timeout() {
            Some(due) if due <= now => {
                self.link.handle_timeout(now);
                self.link.poll_timeout() != Some(due)
            }
            _ => false,
        }
    }

    /// Transmits while the wire is free; returns the bytes to deliver with arrival times.
    fn transmit(&mut self, now: Instant) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        // The link stamps and paces frames at the time it was last given: give it
        // the wire's, as the runtime does before every poll.
        self.link.set_now(now);
        while self.wire_free_at <= now {
            self.scratch.clear();
            let written = if self.wire.bytes_per_sec.is_some() {
                self.link.poll_transmit(&mut self.scratch)
            } else {
                self.link
                    .poll_transmit_batch(&mut self.scratch, self.wire.max_write)
            };
            if written == 0 {
                break;
            }
            let start = if self.wire_free_at > now {
                self.wire_free_at
            } else {
                now
            };
            let done = start + self.wire.transfer_time(written);
            self.wire_free_at = if self.wire.bytes_per_sec.is_some() {
                done
            } else {
                now
            };
            out.push((done + self.wire.latency, self.scratch.to_vec()));
        }
        out
    }
}

/// Two links joined by simulated wires.
pub struct Pair {
    /// Side A (its wire carries A → B).
    pub a: Side,
    /// Side B.
    pub b: Side,
    /// Virtual time.
    pub now: Instant,
    tamper: Option<Tamper>,
}

impl Pair {
    /// Two links with the given configs, joined by `wire` both ways.
    pub fn new(a: LinkConfig, b: LinkConfig, wire: Wire) -> Pair {
        Pair::with_sinks(a, None, b, None, wire)
    }

    /// Like [`Pair::new`], with sink factories for large inbound messages.
    pub fn with_sinks(
        a: LinkConfig,
        a_sinks: Option<Box<dyn SinkFactory>>,
        b: LinkConfig,
        b_sinks: Option<Box<dyn SinkFactory>>,
        wire: Wire,
    ) -> Pair {
        Pair {
            a: Side::new(Link::new(a, a_sinks), wire),
            b: Side::new(Link::new(b, b_sinks), wire),
            now: Instant::ZERO,
            tamper: None,
        }
    }

    /// The transport breaks and a new one is connected: everything on the wires is
    /// lost, and both links [`Link::reconnect`].
    pub fn cut_and_reconnect(&mut self) {
        for side in [&mut self.a, &mut self.b] {
            side.inbox.clear();
            side.wire_free_at = self.now;
            side.link.reconnect();
        }
    }

    /// Side B restarts with a fresh link (`config`), losing its session; the
    /// transport is replaced, and A reconnects to the new B.
    pub fn restart_b(&mut self, config: LinkConfig) {
        for side in [&mut self.a, &mut self.b] {
            side.inbox.clear();
            side.wire_free_at = self.now;
        }
        self.b.link = Link::new(config, None);
        self.a.link.reconnect();
    }

    /// Sets the wire of one direction.
    pub fn set_wire(&mut self, direction: Direction, wire: Wire) {
        match direction {
            Direction::AToB => self.a.wire = wire,
            Direction::BToA => self.b.wire = wire,
        }
    }

    /// The side receiving `direction` reads its arrivals in pieces of `sizes` bytes
    /// (cycled, across arrivals; a 0 reads 1 byte), as a reader whose reads end
    /// anywhere in a frame. Empty: each arrival is one read.
    pub fn split_reads(&mut self, direction: Direction, sizes: Vec<usize>) {
        let side = match direction {
            Direction::AToB => &mut self.b,
            Direction::BToA => &mut self.a,
        };
        side.read_sizes = sizes;
        side.next_read = 0;
    }

    /// Installs the application callback of side A.
    pub fn on_a(&mut self, app: App) {
        self.a.app = Some(app);
    }

    /// Installs the application callback of side B.
    pub fn on_b(&mut self, app: App) {
        self.b.app = Some(app);
    }

    /// Installs a hook that rewrites bytes in flight.
    pub fn tamper(&mut self, tamper: Tamper) {
        self.tamper = Some(tamper);
    }

    /// Runs until both sides are idle and nothing is in flight. Returns the time.
    ///
    /// A link with a keepalive always has a next deadline: drive it with
    /// [`Pair::drive_until`] instead.
    pub fn drive(&mut self) -> Instant {
        while self.step(None) {}
        self.now
    }

    /// Runs until `deadline` (virtual), or earlier if everything goes idle.
    pub fn drive_until(&mut self, deadline: Instant) {
        while self.step(Some(deadline)) {}
        if self.now < deadline {
            self.now = deadline;
        }
    }

    /// Processes everything due now (until nothing changes at this instant), then
    /// advances time to the next due thing. Returns false when nothing is left to do
    /// (before `deadline`).
    pub fn step(&mut self, deadline: Option<Instant>) -> bool {
        let now = self.now;
        loop {
            let mut progress = self.a.run_timers(now) | self.b.run_timers(now);
            progress |= self.a.collect_events(now) | self.b.collect_events(now);
            progress |= self.exchange(now);
            progress |= self.deliver(now);
            if !progress {
                break;
            }
        }
        match self.next_due() {
            Some(next) if deadline.is_none_or(|d| next <= d) => {
                self.now = next;
                true
            }
            _ => false,
        }
    }

    fn exchange(&mut self, now: Instant) -> bool {
        let mut progress = false;
        for (at, mut bytes) in self.a.transmit(now) {
            if let Some(tamper) = self.tamper.as_mut() {
                tamper(Direction::AToB, &mut bytes);
            }
            self.b.inbox.push_back((at, bytes));
            progress = true;
        }
        for (at, mut bytes) in self.b.transmit(now) {
            if let Some(tamper) = self.tamper.as_mut() {
                tamper(Direction::BToA, &mut bytes);
            }
            self.a.inbox.push_back((at, bytes));
            progress = true;
        }
        progress
    }

    fn deliver(&mut self, now: Instant) -> bool {
        let mut progress = false;
        for side in [&mut self.a, &mut self.b] {
            while side.inbox.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, bytes)) = side.inbox.pop_front() {
                    side.read(&bytes, now);
                    progress = true;
                }
            }
        }
        progress
    }

    /// The earliest future arrival or wire release with data waiting. Work ready at
    /// `now` was already done by `step`; what remains blocked waits for input.
    fn next_due(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for side in [&self.a, &self.b] {
            let arrival = side.inbox.front().map(|(at, _)| *at);
            let release =
                (!side.link.is_idle() && side.wire_free_at > self.now).then_some(side.wire_free_at);
            let timer = side.link.poll_timeout().filter(|t| *t > self.now);
            for t in [arrival, release, timer].into_iter().flatten() {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        }
        next
    }
}
