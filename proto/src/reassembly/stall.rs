//! The stall timeout: an inbound stream on which the peer could send and did not
//! for `stall_timeout` is refused ([`ProtocolError::Stalled`](crate::error::ProtocolError::Stalled),
//! CANCEL `Timeout`), so a peer that sends half a body and then nothing on it
//! holds no memory and no spool file for longer than that.
//!
//! # What counts
//!
//! A stream's stall clock runs only while all of these hold:
//!
//! * the peer has credit to send on it: stream credit **and** link credit (a
//!   stream this side holds back, because its reader is slow, its sink is busy or
//!   the link window is full, is never stalled by the peer);
//! * the peer is heard from: time counts between frames the peer sends (in
//!   order; ACKs excluded), but a silence (no such frame) counts for at most a
//!   twelfth of the timeout (5 s of the default 60 s; [`ActiveClock`]). A lossy
//!   line whose retransmissions back off to 10 s moves in bursts, and a
//!   transport being reconnected is quiet on every stream at once: that is not
//!   the stream's fault. A peer that answers the keepalive PINGs (every 5 s on
//!   serial links, 10 s on TCP) is heard often enough for its stalled streams to
//!   go within one to two timeouts; one that went silent altogether is the
//!   keepalive's to detect (`LinkConfig::keepalive`).
//!
//! The twelfth was measured: `proto/tests/pipeline.rs`'s
//! `faulty_traffic_arrives_exactly_once` (up to 12% loss, 8% damage, 15%
//! reordering, reliable mode) cancels legitimate streams with a quarter and a
//! 30 s timeout within a few hundred cases; with a twelfth, not in 3000 cases
//! even at 10 s.
//!
//! It restarts whenever the stream makes progress (body bytes; an empty DATA is
//! not progress) and whenever the peer's stream or link credit comes back from 0
//! (the peer needs the time to react to the CREDIT).
//!
//! # Cost
//!
//! Progress and credit changes only record a time in the stream: O(1) per frame.
//! Deadlines sit in an ordered set with one entry per live stream, invalidated
//! lazily: an entry that comes due early (the stream progressed since) is moved
//! to the stream's real deadline then, so each stream costs O(log n) once per
//! timeout, never a scan of all streams per poll.

use crate::ids::StreamId;
use crate::time::Instant;
use alloc::collections::BTreeSet;
use core::time::Duration;

/// A silence counts for at most the timeout divided by this (see the module doc).
pub(super) const MAX_SILENCE_DIVISOR: u32 = 12;

/// A clock that runs while the peer is heard from: time between two frames from
/// the peer counts, up to `max_silence` of each silence. Readings are in
/// microseconds of that clock.
#[derive(Clone, Debug)]
pub(super) struct ActiveClock {
    /// Reading at `heard_at`.
    active: u64,
    /// When the peer was last heard from.
    heard_at: Instant,
    /// Most of one silence that counts (µs).
    max_silence: u64,
}

impl ActiveClock {
    pub(super) fn new(max_silence: Duration) -> ActiveClock {
        ActiveClock {
            active: 0,
            heard_at: Instant::ZERO,
            max_silence: micros(max_silence),
        }
    }

    /// The reading at `now`.
    pub(super) fn at(&self, now: Instant) -> u64 {
        let silence = now.as_micros().saturating_sub(self.heard_at.as_micros());
        self.active.saturating_add(silence.min(self.max_silence))
    }

    /// The peer sent a frame at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        if now <= self.heard_at {
            return;
        }
        self.active = self.at(now);
        self.heard_at = now;
    }

    /// When the clock reads `reading` if the peer stays silent; `None` if it
    /// never does (the silence stops counting first).
    pub(super) fn instant_of(&self, reading: u64) -> Option<Instant> {
        let ahead = reading.saturating_sub(self.active);
        (ahead <= self.max_silence)
            .then(|| Instant::from_micros(self.heard_at.as_micros().saturating_add(ahead)))
    }
}

/// One live stream's stall state (readings of the [`ActiveClock`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StreamClock {
    /// Its last progress (or its OPEN).
    pub(super) progress_at: u64,
    /// Since when the peer has had stream credit for it; `None`: none now.
    pub(super) credit_since: Option<u64>,
    /// Its entry in the deadline set, if it has one.
    pub(super) queued: Option<u64>,
}

impl StreamClock {
    /// A stream opened at `reading`, with credit or not.
    pub(super) fn new(reading: u64, has_credit: bool) -> StreamClock {
        StreamClock {
            progress_at: reading,
            credit_since: has_credit.then_some(reading),
            queued: None,
        }
    }

    /// Where its own clock started: the later of its progress and its credit.
    fn start(&self) -> Option<u64> {
        self.credit_since.map(|c| c.max(self.progress_at))
    }
}

/// The stall timeout of one link's inbound streams: its clock, the link
/// credit's, and the deadline set.
#[derive(Clone, Debug)]
pub(super) struct Stalls {
    /// The timeout (µs); `None`: streams never stall.
    timeout: Option<u64>,
    clock: ActiveClock,
    /// The latest time the reassembler was told.
    now: Instant,
    /// Since when the peer has had link credit; `None`: none now.
    link_credit_since: Option<u64>,
    /// (deadline reading, stream): at most one entry per live stream; an entry
    /// may be early (lazy invalidation), never late.
    queue: BTreeSet<(u64, StreamId)>,
}

/// What [`Stalls::check`] decided about a stream whose entry came due.
pub(super) enum Due {
    /// Stalled: refuse it.
    Stalled,
    /// Not yet: its entry moved to its real deadline, or it has none (no credit).
    Later,
}

impl Stalls {
    /// Stall tracking with `timeout` (`None`: off), at time zero, the peer
    /// holding link credit.
    pub(super) fn new(timeout: Option<Duration>) -> Stalls {
        let max_silence = timeout.map_or(Duration::ZERO, |t| t / MAX_SILENCE_DIVISOR);
        Stalls {
            timeout: timeout.map(micros),
            clock: ActiveClock::new(max_silence),
            now: Instant::ZERO,
            link_credit_since: Some(0),
            queue: BTreeSet::new(),
        }
    }

    /// The clock's reading now.
    pub(super) fn reading(&self) -> u64 {
        self.clock.at(self.now)
    }

    /// Time passed (no frame from the peer).
    pub(super) fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// A frame from the peer at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.set_now(now);
        self.clock.heard(self.now);
    }

    /// The peer's link credit is now `available`.
    pub(super) fn link_credit(&mut self, available: u64) {
        if available == 0 {
            self.link_credit_since = None;
        } else if self.link_credit_since.is_none() {
            self.link_credit_since = Some(self.reading());
        }
    }

    /// The peer's credit on stream `id` is now `available`: records when it came
    /// back, and gives the stream a deadline entry if it has none.
    pub(super) fn stream_credit(&mut self, id: StreamId, clock: &mut StreamClock, available: u64) {
        if available == 0 {
            clock.credit_since = None;
            return;
        }
        if clock.credit_since.is_none() {
            clock.credit_since = Some(self.reading());
        }
        self.enqueue(id, clock);
    }

    /// Stream `id` made progress now.
    pub(super) fn progress(&mut self, clock: &mut StreamClock) {
        clock.progress_at = self.reading();
    }

    /// A new stream `id`: its clock, with a deadline entry if the peer may send on it.
    pub(super) fn open(&mut self, id: StreamId, available: u64) -> StreamClock {
        let mut clock = StreamClock::new(self.reading(), available > 0);
        self.enqueue(id, &mut clock);
        clock
    }

    /// Stream `id` is no longer live: its entry goes.
    pub(super) fn remove(&mut self, id: StreamId, clock: &StreamClock) {
        if let Some(deadline) = clock.queued {
            self.queue.remove(&(deadline, id));
        }
    }

    /// Every stream is gone.
    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    fn enqueue(&mut self, id: StreamId, clock: &mut StreamClock) {
        let (Some(timeout), None, Some(start)) = (self.timeout, clock.queued, clock.start()) else {
            return;
        };
        let deadline = start.saturating_add(timeout);
        self.queue.insert((deadline, id));
        clock.queued = Some(deadline);
    }

    /// When [`Stalls::next_due`] may yield a stream: the earliest entry's time, if
    /// the peer has link credit and the clock reaches it without hearing more.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timeout?;
        self.link_credit_since?;
        let &(deadline, _) = self.queue.first()?;
        self.clock.instant_of(deadline).map(|at| at.max(self.now))
    }

    /// The next stream whose entry is due now, taken out of the set (pass it to
    /// [`Stalls::check`]); `None` when none is, or the peer has no link credit.
    pub(super) fn next_due(&mut self) -> Option<(StreamId, u64)> {
        self.link_credit_since?;
        let reading = self.reading();
        let &(deadline, id) = self.queue.first()?;
        if deadline > reading {
            return None;
        }
        self.queue.remove(&(deadline, id));
        Some((id, deadline))
    }

    /// A stream whose entry `deadline` came due: stalled, or moved to its real
    /// deadline. A stream without credit is left without an entry (credit
    /// coming back gives it one).
    pub(super) fn check(&mut self, id: StreamId, clock: &mut StreamClock, deadline: u64) -> Due {
        if clock.queued != Some(deadline) {
            // Not this stream's entry (it was re-opened since): nothing to do.
            return Due::Later;
        }
        clock.queued = None;
        let (Some(timeout), Some(start)) = (self.timeout, clock.start()) else {
            return Due::Later;
        };
        let start = start.max(self.link_credit_since.unwrap_or(u64::MAX));
        let real = start.saturating_add(timeout);
        if real <= self.reading() {
            return Due::Stalled;
        }
        self.queue.insert((real, id));
        clock.queued = Some(real);
        Due::Later
    }

    /// Deadline entries (for the invariants).
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_counts_up_to_its_cap() {
        let mut c = ActiveClock::new(Duration::from_secs(15));
        assert_eq!(c.at(Instant::from_millis(10_000)), 10_000_000);
        assert_eq!(c.at(Instant::from_millis(100_000)), 15_000_000);
        c.heard(Instant::from_millis(100_000));
        assert_eq!(c.at(Instant::from_millis(101_000)), 16_000_000);
        assert_eq!(
            c.instant_of(20_000_000),
            Some(Instant::from_millis(105_000))
        );
        assert_eq!(c.instant_of(31_000_000), None);
        // Already reached: the last time heard.
        assert_eq!(c.instant_of(1), Some(Instant::from_millis(100_000)));
    }

    #[test]
    fn an_early_entry_moves_to_the_real_deadline() {
        let mut s = Stalls::new(Some(Duration::from_secs(60)));
        let id = StreamId(2);
        let mut clock = s.open(id, 100);
        // Never heard from: a silence longer than a quarter of the timeout does not count.
        assert_eq!(s.poll_timeout(), None);
        // Heard every 5 s; progress at 30 s.
        for t in 1..=24 {
            s.heard(Instant::from_millis(t * 5_000));
            if t == 6 {
                s.progress(&mut clock);
            }
            while let Some((due, deadline)) = s.next_due() {
                assert_eq!(due, id);
                let verdict = s.check(id, &mut clock, deadline);
                if t < 18 {
                    assert!(matches!(verdict, Due::Later), "stalled at {} s", t * 5);
                } else {
                    assert!(matches!(verdict, Due::Stalled));
                    return;
                }
            }
        }
        panic!("never stalled");
    }
}
