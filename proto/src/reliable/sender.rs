//! The sending half of the reliable mode: sequence numbers, the retransmission
//! buffer, acknowledgements, the retransmission timer and the tail-loss probe.
//!
//! **Tail-loss probe** (RFC 8985's TLP). A lost frame followed by others is
//! found by the selective ACKs of those others (fast retransmission); a lost
//! frame with nothing after it (the last frame of an answer, the tail of a
//! burst) is followed by silence, which only the retransmission timeout ends,
//! and that timeout (`SRTT + 4 RTTVAR`, backed off) is long on a path whose
//! round trip varies. So when frames are unacknowledged and no ACK has come
//! for a probe timeout, `PTO = 2 SRTT + ack_delay` (the peer's delayed ACK
//! for a lone frame; 10 ms at least), the newest unacknowledged frame is sent once more: its
//! ACK acknowledges it or, selectively, shows what before it is missing. One
//! probe per silence (the next needs an ACK of something new first), none
//! before the first round-trip sample or while the timeout is backed off, and
//! none when the retransmission timer fires first. A probe is counted as a
//! retransmission (and in [`Sender::tail_probes`]), gives no round-trip sample
//! (Karn), and does not count against `max_sends`.

use super::pacer::{Pacer, PacingConfig, SendStamp};
use super::rto::{RtoConfig, RtoEstimator};
use crate::frame::Ack;
use crate::time::Instant;
use alloc::collections::VecDeque;
use bytes::Bytes;

/// A frame sent and not yet acknowledged: its encoded head (with the sequence
/// byte) and payload, ready to be framed again.
#[derive(Clone, Debug)]
struct Pending {
    head: Bytes,
    payload: Bytes,
    sent_at: Instant,
    /// Sent more than once: no round-trip sample from it (Karn's rule).
    retransmitted: bool,
    /// The peer reported it received (selective ack).
    sacked: bool,
    /// Queued for retransmission.
    queued: bool,
    sends: u32,
    /// The pacer's stamp of its latest send.
    stamp: Option<SendStamp>,
}

/// The shortest probe timeout (Linux's floor for its tail-loss probe): on a
/// fast local link twice a round trip of microseconds is shorter than the
/// peer's scheduling.
const TAIL_PROBE_MIN: core::time::Duration = core::time::Duration::from_millis(10);

/// Wire bytes of a frame of `head` and `payload` as the pacer counts them: the
/// frame plus 6 bytes of framing (a serial frame's CRC, delimiter and COBS code).
fn wire_size(head: &Bytes, payload: &Bytes) -> u64 {
    (head.len() + payload.len() + 6) as u64
}

/// Sequence numbers, the window of unacknowledged frames, retransmissions.
#[derive(Clone, Debug)]
pub struct Sender {
    window: usize,
    max_sends: u32,
    /// Absolute sequence number of `unacked[0]` (of the next frame when empty).
    base: u64,
    unacked: VecDeque<Pending>,
    retransmit: VecDeque<u64>,
    rto: RtoEstimator,
    timer: Option<Instant>,
    failed: bool,
    retransmissions: u64,
    /// A frame to send once more as a probe of a silent peer (see [`Sender::probe`]).
    probe: Option<u64>,
    /// Paces new frames to the path's delivery rate, when pacing is on.
    pacer: Option<Pacer>,
    /// The peer's longest ACK delay for a lone frame, added to the probe
    /// timeout; `None`: no tail-loss probes.
    tail_probe_delay: Option<core::time::Duration>,
    /// When the tail-loss probe fires, if armed.
    tail_probe_at: Option<Instant>,
    /// A tail-loss probe was sent and no ACK of anything new came since.
    tail_probe_sent: bool,
    /// The frame to send as the tail-loss probe with the next poll.
    tail_probe: Option<u64>,
    tail_probes: u64,
}

impl Sender {
    /// A sender with at most `window` frames in flight (1..=64) that gives up on a
    /// frame after `max_sends` transmissions.
    pub fn new(window: usize, max_sends: u32, rto: RtoConfig) -> Sender {
        Sender {
            window: window.clamp(1, 64),
            max_sends: max_sends.max(1),
            base: 0,
            unacked: VecDeque::new(),
            retransmit: VecDeque::new(),
            rto: RtoEstimator::new(rto),
            timer: None,
            failed: false,
            retransmissions: 0,
            probe: None,
            pacer: None,
            tail_probe_delay: None,
            tail_probe_at: None,
            tail_probe_sent: false,
            tail_probe: None,
            tail_probes: 0,
        }
    }

    /// The same sender sending a tail-loss probe after `2 SRTT + ack_delay` of
    /// silence with frames unacknowledged (`ack_delay`: the peer's longest
    /// delay before acknowledging; `None`: no probes). See the module docs.
    pub fn with_tail_probe(mut self, ack_delay: Option<core::time::Duration>) -> Sender {
        self.tail_probe_delay = ack_delay;
        self
    }

    /// The same sender pacing its frames with `pacing` (`None`: unpaced).
    pub fn with_pacing(mut self, pacing: Option<PacingConfig>) -> Sender {
        self.pacer = pacing.map(Pacer::new);
        self
    }

    /// The pacer, when pacing is on.
    pub fn pacer(&self) -> Option<&Pacer> {
        self.pacer.as_ref()
    }

    /// A paced frame (a retransmission or a new data frame) may leave at `now`.
    pub fn may_send_paced(&self, now: Instant) -> bool {
        self.pacer.as_ref().is_none_or(|p| p.may_send(now))
    }

    /// When the next paced frame may leave, if pacing holds frames back.
    pub fn paced_release(&self) -> Option<Instant> {
        self.pacer.as_ref().and_then(Pacer::release_at)
    }

    /// Room under the pacer's in-flight cap for a new data frame.
    pub fn window_open(&self) -> bool {
        self.pacer.as_ref().is_none_or(Pacer::window_open)
    }

    /// A frame is queued for retransmission (or as a probe).
    pub fn has_retransmit(&self) -> bool {
        !self.retransmit.is_empty() || self.probe.is_some() || self.tail_probe.is_some()
    }

    /// The sender had nothing to send with room to send it (see
    /// [`Pacer::set_app_limited`]).
    pub fn set_app_limited(&mut self) {
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.set_app_limited();
        }
    }

    /// Room in the window for a new frame.
    pub fn can_send(&self) -> bool {
        self.unacked.len() < self.window && !self.failed
    }

    /// The wire sequence number of the next new frame.
    pub fn next_seq(&self) -> u8 {
        self.next() as u8
    }

    fn next(&self) -> u64 {
        self.base + self.unacked.len() as u64
    }

    /// Count of frames ever sent (the absolute next sequence number).
    pub fn sent_total(&self) -> u64 {
        self.next()
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.unacked.len()
    }

    /// Frames sent again so far (tail-loss probes included).
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Tail-loss probes sent so far.
    pub fn tail_probes(&self) -> u64 {
        self.tail_probes
    }

    /// Arms the tail-loss probe at `now + PTO` if frames are unacknowledged,
    /// the round trip is known, no probe is outstanding, the timeout is not
    /// backed off, and the retransmission timer would not fire first.
    fn arm_tail_probe(&mut self, now: Instant) {
        self.tail_probe_at = None;
        let (Some(delay), Some(srtt)) = (self.tail_probe_delay, self.rto.srtt()) else {
            return;
        };
        if self.tail_probe_sent
            || self.failed
            || self.rto.backoffs() > 0
            || !self.unacked.iter().any(|p| !p.sacked)
        {
            return;
        }
        let at = now + (srtt.saturating_mul(2) + delay).max(TAIL_PROBE_MIN);
        if self.timer.is_none_or(|rto| at < rto) {
            self.tail_probe_at = Some(at);
        }
    }

    /// A frame went out with sequence number [`Sender::next_seq`].
    pub fn record(&mut self, head: Bytes, payload: Bytes, now: Instant) {
        let size = wire_size(&head, &payload);
        let stamp = self.pacer.as_mut().map(|p| p.on_send(size, now, false));
        self.unacked.push_back(Pending {
            head,
            payload,
            sent_at: now,
            retransmitted: false,
            sacked: false,
            queued: false,
            sends: 1,
            stamp,
        });
        if self.timer.is_none() {
            self.timer = Some(now + self.rto.rto());
        }
        self.arm_tail_probe(now);
    }

    /// The next frame to send again, if any is due (retransmissions go before new
    /// frames). Returns its head and payload.
    pub fn poll_retransmit(&mut self, now: Instant) -> Option<(Bytes, Bytes)> {
        if let Some(seq) = self.probe.take() {
            let index = seq.checked_sub(self.base).map(|i| i as usize);
            if let Some(pending) = index.and_then(|i| self.unacked.get_mut(i)) {
                pending.retransmitted = true;
                pending.sends = pending.sends.saturating_add(1);
                pending.sent_at = now;
                self.retransmissions += 1;
                return Some((pending.head.clone(), pending.payload.clone()));
            }
        }
        if self.failed {
            return None;
        }
        if let Some(seq) = self.tail_probe.take() {
            let index = seq.checked_sub(self.base).map(|i| i as usize);
            if let Some(pending) = index.and_then(|i| self.unacked.get_mut(i)) {
                if !pending.sacked {
                    pending.retransmitted = true;
                    pending.sent_at = now;
                    if let Some(pacer) = self.pacer.as_mut() {
                        let size = wire_size(&pending.head, &pending.payload);
                        pending.stamp = Some(pacer.on_send(size, now, true));
                    }
                    self.retransmissions += 1;
                    self.tail_probes += 1;
                    return Some((pending.head.clone(), pending.payload.clone()));
                }
            }
        }
        while let Some(seq) = self.retransmit.pop_front() {
            let Some(index) = seq.checked_sub(self.base) else {
                continue; // acknowledged meanwhile
            };
            let Some(pending) = self.unacked.get_mut(index as usize) else {
                continue;
            };
            pending.queued = false;
            if pending.sacked {
                continue;
            }
            if pending.sends >= self.max_sends {
                self.failed = true;
                return None;
            }
            // A frame resent after a reconnection (`sends` 0) is the only copy
            // that can still be acknowledged: its round trip is a valid sample.
            pending.retransmitted = pending.sends > 0;
            pending.sends += 1;
            pending.sent_at = now;
            if let Some(pacer) = self.pacer.as_mut() {
                let size = wire_size(&pending.head, &pending.payload);
                // A copy resent after a reconnection is back in flight.
                pending.stamp = Some(pacer.on_send(size, now, pending.sends > 1));
            }
            self.retransmissions += 1;
            if self.timer.is_none() {
                self.timer = Some(now + self.rto.rto());
            }
            return Some((pending.head.clone(), pending.payload.clone()));
        }
        None
    }

    fn queue(&mut self, seq: u64) {
        if let Some(pending) = self.unacked.get_mut((seq - self.base) as usize) {
            if !pending.queued && !pending.sacked {
                pending.queued = true;
                self.retransmit.push_back(seq);
            }
        }
    }

    /// An acknowledgement from the peer. Stale or impossible ones are ignored.
    pub fn on_ack(&mut self, ack: Ack, now: Instant) {
        let offset = u64::from(ack.next.wrapping_sub(self.base as u8));
        if offset > self.unacked.len() as u64 {
            return; // older than our window base, or beyond what we sent
        }
        let mut sample = None;
        for _ in 0..offset {
            if let Some(pending) = self.unacked.pop_front() {
                if !pending.retransmitted {
                    sample = Some((
                        now - pending.sent_at,
                        wire_size(&pending.head, &pending.payload),
                    ));
                }
                if let (Some(pacer), Some(stamp), false) =
                    (self.pacer.as_mut(), pending.stamp.as_ref(), pending.sacked)
                {
                    pacer.on_delivered(stamp, now);
                }
            }
            self.base += 1;
        }
        if let Some((rtt, _)) = sample {
            self.rto.sample(rtt);
        }
        // Selective part: frames after the first missing one that arrived.
        let mut highest_sacked = None;
        let mut news = offset > 0;
        let mut bits = ack.selective;
        let mut i = 0u64;
        while bits != 0 {
            if bits & 1 == 1 {
                let index = 1 + i;
                if let Some(pending) = self.unacked.get_mut(index as usize) {
                    if !pending.sacked {
                        news = true;
                        if let (Some(pacer), Some(stamp)) = (self.pacer.as_mut(), &pending.stamp) {
                            pacer.on_delivered(stamp, now);
                        }
                    }
                    pending.sacked = true;
                    highest_sacked = Some(index);
                }
            }
            bits >>= 1;
            i += 1;
        }
        // Fast retransmit: frames before the highest selectively acknowledged one
        // are missing; send each again if it was last sent a round trip ago.
        if let Some(highest) = highest_sacked {
            let rtt = self.rto.srtt().unwrap_or_else(|| self.rto.rto());
            for index in 0..highest {
                let stale = self
                    .unacked
                    .get(index as usize)
                    .is_some_and(|p| !p.sacked && now - p.sent_at >= rtt);
                if stale {
                    self.queue(self.base + index);
                }
            }
        }
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.on_ack(now, sample);
        }
        self.timer = if self.unacked.iter().all(|p| p.sacked) {
            None
        } else if offset > 0 {
            Some(now + self.rto.rto())
        } else {
            self.timer
        };
        if news {
            // Something new arrived: the silence, if any, is over.
            self.tail_probe_sent = false;
            self.arm_tail_probe(now);
        }
    }

    /// After a reconnection: the peer received `peer_received` frames in order
    /// (absolute count from its HELLO); those are dropped, every other frame in
    /// flight is queued to be sent again (the old transport may have lost any).
    /// The old transport is gone with whatever it still carried, so each frame's
    /// copy on the new one counts as its first send (an RTT sample, Karn's
    /// ambiguity cannot arise), and the backoff earned on the dead transport is
    /// cleared: a link that comes back recovers at its round-trip pace, not at
    /// the backed-off timeout's.
    pub fn resume(&mut self, peer_received: u64) {
        self.failed = false;
        self.probe = None;
        self.tail_probe = None;
        self.tail_probe_at = None;
        self.tail_probe_sent = false;
        while self.base < peer_received && !self.unacked.is_empty() {
            self.unacked.pop_front();
            self.base += 1;
        }
        self.retransmit.clear();
        for index in 0..self.unacked.len() {
            if let Some(pending) = self.unacked.get_mut(index) {
                pending.queued = true;
                pending.sacked = false;
                pending.sends = 0;
            }
            self.retransmit.push_back(self.base + index as u64);
        }
        self.rto.clear_backoff();
        self.timer = None;
        // A new transport may be another path: learn it again.
        if let Some(pacer) = self.pacer.as_mut() {
            *pacer = Pacer::new(pacer.config());
        }
    }

    /// The peer is silent: the oldest frame it has not acknowledged goes out
    /// once more with the next [`Sender::poll_retransmit`], even past
    /// `max_sends` (its answer, an ACK, is the sign of life). False when
    /// nothing is in flight (probe with a new frame then: a PING).
    pub fn probe(&mut self) -> bool {
        match self.unacked.iter().position(|p| !p.sacked) {
            Some(index) => {
                self.probe = Some(self.base + index as u64);
                true
            }
            None => false,
        }
    }

    /// The peer was heard after a silence: every frame it has not acknowledged
    /// goes again (the silence may have swallowed any of them), the timeout's
    /// backoff is cleared and the retransmission limit counts afresh, as after a
    /// reconnection.
    pub fn revive(&mut self) {
        let base = self.base;
        self.resume(base);
    }

    /// When [`Sender::handle_timeout`] must run next (the retransmission
    /// timer or the tail-loss probe, whichever is first).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer, self.tail_probe_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The retransmission timer: the oldest unacknowledged frame is sent again
    /// and the timeout doubles. Before it, the tail-loss probe: the newest
    /// unacknowledged frame is sent again, once.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.tail_probe_at.is_some_and(|at| at <= now) {
            self.tail_probe_at = None;
            if self.timer.is_none_or(|rto| now < rto) {
                if let Some(index) = self.unacked.iter().rposition(|p| !p.sacked) {
                    self.tail_probe = Some(self.base + index as u64);
                    self.tail_probe_sent = true;
                }
            }
        }
        let Some(deadline) = self.timer else { return };
        if now < deadline {
            return;
        }
        self.rto.back_off();
        self.timer = Some(now + self.rto.rto());
        // The timeout recovers now; no probe until an ACK of something new.
        self.tail_probe = None;
        self.tail_probe_at = None;
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.on_timeout(now);
        }
        if let Some(index) = self.unacked.iter().position(|p| !p.sacked) {
            self.queue(self.base + index as u64);
        }
    }

    /// A frame was sent `max_sends` times without an acknowledgement: the peer is
    /// gone.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> core::time::Duration {
        self.rto.rto()
    }

    /// The round-trip estimator (smoothed RTT and its variance).
    pub fn rtt(&self) -> &RtoEstimator {
        &self.rto
    }

    /// Bytes of the frames in flight (sequenced head and payload, before
    /// framing): at most `window` frames are summed.
    pub fn in_flight_bytes(&self) -> u64 {
        self.unacked
            .iter()
            .map(|p| (p.head.len() + p.payload.len()) as u64)
            .sum()
    }
}
