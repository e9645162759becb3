//! Pacing to the rate the path delivers, learned from the reliable mode's
//! acknowledgement clock, so that a buffer between the sender and the path's
//! slowest hop (a radio modem behind a fast UART) stays short.
//!
//! ```text
//!  frame sent ─► stamp (delivered so far, when) ─► … ACK ─► delivery-rate sample ─► max over the rate window ─► bw
//!                                                        └► RTT sample ─► min over 10 s ─► base RTT (and its frame's size)
//!  queueing delay = min over the last 4 samples of (RTT − base RTT − size difference / bw)
//!  gain = 1 + ¼ · (target − queueing delay) / target, within [¾, 5/4]
//!  pacing rate = gain · bw          in-flight cap = max(2 · bw · smoothed RTT + one frame, 1 s of bw)
//! ```
//!
//! * **Delivery rate** (from BBR): every frame is stamped at its send with the
//!   bytes delivered so far and when; an ACK that delivers frames gives one
//!   sample, bytes delivered since the newest of them was sent divided by the
//!   longer of its send interval and its ACK interval (so neither a burst of
//!   sends nor a compressed burst of ACKs inflates it). Samples taken while the
//!   sender had nothing to send (application-limited), or while it recovered from
//!   a retransmission timeout, or across one, only count when they raise the
//!   estimate (they measure the sender or a silence, not the path). The estimate `bw` is the largest sample of the rate
//!   window (`PacingConfig::rate_window`, at least 10 base round trips), kept by
//!   a three-sample windowed max (Kathleen Nichols' filter, as Linux's
//!   `win_minmax`).
//! * **Queueing delay** (from LEDBAT): the smallest round trip over
//!   `PacingConfig::rtt_window` is the path's base, kept with its frame's size. A
//!   round trip over it, less what the size difference takes at `bw` (a full chunk
//!   spends longer on a slow air than the small frame that set the base), is time
//!   spent in buffers; the minimum of the last four (LEDBAT's noise filter) is the
//!   queueing delay. Only the size difference depends on `bw`, so an estimate
//!   still climbing does not read as a queue.
//! * **Control**: the pacing rate is `bw` times a gain set, like LEDBAT's window,
//!   in proportion to how far the queueing delay is from its target: a quarter
//!   more than the path delivered with no queue (probing for more, as BBR's 5/4
//!   phase), exactly the delivery rate at the target, down to three quarters
//!   (draining, as BBR's 3/4 phase) at twice the target. A modem buffer thus
//!   holds about `target_delay` of data: enough that the slow hop never idles,
//!   little enough that an urgent frame behind it waits only that long. BBR's
//!   fixed gain cycle is not used: behind a UART it would spend an eighth of the
//!   time at 3/4 of a rate the UART already enforces.
//! * **In-flight cap** (BBR's `cwnd_gain` of 2): at most twice the delivery
//!   rate times the smoothed round trip, plus one frame, unacknowledged, so even a
//!   wrong rate cannot fill a deep buffer; before the first sample,
//!   `initial_window`. The smoothed round trip rather than BBR's minimum: on a
//!   fast local line the peer's delayed ACK (5 ms) and the hosts' scheduling are
//!   most of the round trip, and a cap below what they hold would throttle the
//!   link, lower its delivery rate and so its cap, sample after sample. And at
//!   least a second of `bw`: the cap is a backstop, not the control (the delay
//!   signal keeps the queue near the target), and a path that falls silent
//!   still takes a frame of every queued message, so a call's request leaves
//!   and its timeout runs, as it would without pacing.
//! * **Startup**: before the first sample nothing is paced and at most
//!   `initial_window` (two frames at least) is in flight, about the
//!   bandwidth-delay product of the slowest radios, so the first round trip
//!   queues little. Pacing starts at the first sample without idle credit, at
//!   5/4 of it; the first samples underestimate (the round trip is in their
//!   interval) and the estimate climbs by up to that gain per ACK until the
//!   delay signal sees a queue. Not BBR's startup gain of 2/ln 2: it overshoots
//!   into a deep buffer by design, and that overshoot is what urgent frames
//!   would wait behind.
//!
//! Everything is integer arithmetic on microseconds and bytes, time a parameter.

use crate::time::Instant;
use core::time::Duration;

/// Settings of the pacer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacingConfig {
    /// Queueing delay above the path's base delay the pacer aims at: the
    /// standing queue in the slowest hop's buffer.
    pub target_delay: Duration,
    /// Bytes that may be in flight before the first delivery-rate sample (two
    /// of the largest frames at least).
    pub initial_window: u64,
    /// Delivery-rate samples stay in the estimate this long (at least 10 base
    /// round trips).
    pub rate_window: Duration,
    /// The base delay is the minimum over this long.
    pub rtt_window: Duration,
}

impl Default for PacingConfig {
    /// Target 50 ms (two of the largest serial chunks at 2,400 B/s fit in it
    /// with the chunk on the air; on a line as fast as its UART nothing queues
    /// and the target is never reached); 400 bytes before the first sample (two
    /// chunks of a 115,200-baud link, about the path's bandwidth-delay product
    /// on a 2,400 B/s radio: the first round trip queues at most ~0.17 s
    /// there); a 1 s rate window; 10 s of base delay, as BBR's min-RTT filter.
    fn default() -> Self {
        PacingConfig {
            target_delay: Duration::from_millis(50),
            initial_window: 400,
            rate_window: Duration::from_secs(1),
            rtt_window: Duration::from_secs(10),
        }
    }
}

/// Gain bounds, in thousandths: 5/4 when nothing queues, 3/4 at twice the target.
const MAX_GAIN: u64 = 1250;
const MIN_GAIN: u64 = 750;
const UNIT_GAIN: u64 = 1000;
/// LEDBAT's filter of the current delay: the minimum of the last samples.
const DELAY_SAMPLES: usize = 4;
const MICROS_PER_SEC: u64 = 1_000_000;
/// Idle time the pacer credits (see [`Pacer::on_send`]).
const BURST: Duration = Duration::from_millis(4);

/// What the pacer remembers about one frame sent, to take a delivery-rate
/// sample when it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendStamp {
    /// Wire bytes of the frame.
    pub size: u64,
    sent_at: Instant,
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    app_limited: bool,
}

/// A windowed maximum (or minimum) over time: the best of three samples from
/// successive parts of the window (Nichols' algorithm, as Linux's `win_minmax`).
/// Each sample carries a tag (the base RTT's frame size).
#[derive(Clone, Copy, Debug, Default)]
struct Windowed {
    /// (time in µs, value, tag), best first.
    samples: [(u64, u64, u64); 3],
    set: bool,
}

impl Windowed {
    fn get(&self) -> Option<u64> {
        self.set.then_some(self.samples[0].1)
    }

    /// The best value and its tag.
    fn get_tagged(&self) -> Option<(u64, u64)> {
        self.set.then_some((self.samples[0].1, self.samples[0].2))
    }

    /// Adds `value` at `t` (µs); `better(a, b)`: `a` is at least as good as `b`.
    fn update(&mut self, t: u64, value: u64, window: u64, better: fn(u64, u64) -> bool) {
        self.update_tagged(t, value, 0, window, better);
    }

    fn update_tagged(
        &mut self,
        t: u64,
        value: u64,
        tag: u64,
        window: u64,
        better: fn(u64, u64) -> bool,
    ) {
        let new = (t, value, tag);
        if !self.set
            || better(value, self.samples[0].1)
            || t.saturating_sub(self.samples[2].0) > window
        {
            self.samples = [new; 3];
            self.set = true;
            return;
        }
        if better(value, self.samples[1].1) {
            self.samples[1] = new;
            self.samples[2] = new;
        } else if better(value, self.samples[2].1) {
            self.samples[2] = new;
        }
        let age = t.saturating_sub(self.samples[0].0);
        if age > window {
            self.samples[0] = self.samples[1];
            self.samples[1] = self.samples[2];
            self.samples[2] = new;
            if t.saturating_sub(self.samples[0].0) > window {
                self.samples[0] = self.samples[1];
                self.samples[1] = self.samples[2];
            }
        } else if self.samples[1].0 == self.samples[0].0 && age > window / 4 {
            self.samples[1] = new;
            self.samples[2] = new;
        } else if self.samples[2].0 == self.samples[1].0 && age > window / 2 {
            self.samples[2] = new;
        }
    }
}

fn max_better(a: u64, b: u64) -> bool {
    a >= b
}

fn min_better(a: u64, b: u64) -> bool {
    a <= b
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The pacing state of one link's outbound direction (see the module docs).
#[derive(Clone, Debug)]
pub struct Pacer {
    config: PacingConfig,
    /// Wire bytes of frames acknowledged (cumulatively or selectively), ever.
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    /// Samples of frames sent before `delivered` passes this are
    /// application-limited (0: none).
    app_limited_until: u64,
    /// Wire bytes sent and not yet acknowledged.
    in_flight: u64,
    largest_frame: u64,
    /// Delivery rate, bytes/s.
    bw: Windowed,
    /// Round trips, µs, tagged with the frame's size.
    base_rtt: Windowed,
    /// Smoothed round trip, µs (RFC 6298's 1/8 gain).
    srtt: Option<u64>,
    /// Queueing delays of the last samples, µs.
    recent_delays: [u64; DELAY_SAMPLES],
    recent_len: usize,
    recent_next: usize,
    /// Thousandths.
    gain: u64,
    /// The newest frame delivered by the acknowledgement being processed.
    newest: Option<SendStamp>,
    /// The last retransmission timeout: samples whose interval spans it measure
    /// the outage, not the path.
    timeout_at: Option<Instant>,
    /// From a retransmission timeout to the next round-trip sample: what the
    /// sender manages to deliver then is limited by its loss recovery, so its
    /// frames' samples count as application-limited.
    recovering: bool,
    /// A paced frame may leave at or after this.
    next_send: Instant,
}

impl Pacer {
    /// A pacer that knows nothing of its path yet.
    pub fn new(config: PacingConfig) -> Pacer {
        Pacer {
            config,
            delivered: 0,
            delivered_at: Instant::ZERO,
            first_sent_at: Instant::ZERO,
            app_limited_until: 0,
            in_flight: 0,
            largest_frame: 0,
            bw: Windowed::default(),
            base_rtt: Windowed::default(),
            srtt: None,
            recent_delays: [0; DELAY_SAMPLES],
            recent_len: 0,
            recent_next: 0,
            gain: MAX_GAIN,
            newest: None,
            timeout_at: None,
            recovering: false,
            next_send: Instant::ZERO,
        }
    }

    /// The settings.
    pub fn config(&self) -> PacingConfig {
        self.config
    }

    /// The delivery-rate estimate, bytes/s, once sampled.
    pub fn delivery_rate(&self) -> Option<u64> {
        self.bw.get()
    }

    /// The rate paced frames leave at, bytes/s (`None`: not paced yet).
    pub fn pacing_rate(&self) -> Option<u64> {
        self.bw
            .get()
            .map(|bw| (bw.saturating_mul(self.gain) / UNIT_GAIN).max(1))
    }

    /// The smallest round trip of the window.
    pub fn base_rtt(&self) -> Option<Duration> {
        self.base_rtt.get().map(Duration::from_micros)
    }

    /// The queueing delay the last samples show above the base delay.
    pub fn queueing_delay(&self) -> Option<Duration> {
        let recent = self.recent_delays.get(..self.recent_len)?.iter().min()?;
        Some(Duration::from_micros(*recent))
    }

    /// Wire bytes sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The most bytes that may be in flight: twice the delivery rate times the
    /// smoothed round trip, plus the largest frame, and at least a second of the
    /// delivery rate and two of the largest frames (`initial_window` before the
    /// first sample).
    pub fn window(&self) -> u64 {
        match (self.bw.get(), self.srtt) {
            (Some(bw), Some(rtt)) => {
                // The smoothed round trip, not the base: it holds the peer's
                // delayed ACKs and the hosts' scheduling delays, which a window
                // sized on the base RTT would take for a slower path and shrink
                // to, sample after sample.
                let bdp =
                    u64::try_from(u128::from(bw) * u128::from(rtt) / u128::from(MICROS_PER_SEC))
                        .unwrap_or(u64::MAX);
                bdp.saturating_mul(2)
                    .saturating_add(self.largest_frame)
                    .max(bw)
                    .max(self.largest_frame.saturating_mul(2))
            }
            _ => self
                .config
                .initial_window
                .max(self.largest_frame.saturating_mul(2)),
        }
    }

    /// Room for one more new frame in flight.
    pub fn window_open(&self) -> bool {
        self.in_flight < self.window()
    }

    /// When the next paced frame may leave (`None`: not paced yet).
    pub fn release_at(&self) -> Option<Instant> {
        self.bw.get().map(|_| self.next_send)
    }

    /// A paced frame may leave at `now`.
    pub fn may_send(&self, now: Instant) -> bool {
        self.release_at().is_none_or(|at| at <= now)
    }

    /// The sender had nothing more to send: samples of what is in flight now
    /// describe the sender, not the path, unless they raise the estimate.
    pub fn set_app_limited(&mut self) {
        self.app_limited_until = self.delivered.saturating_add(self.in_flight).max(1);
    }

    /// A frame of `size` wire bytes leaves at `now` (`retransmission`: a copy of a
    /// frame already in flight). Every frame, paced or not, pays for its bytes:
    /// the next paced frame leaves `size / rate` later. Returns the frame's stamp.
    pub fn on_send(&mut self, size: u64, now: Instant, retransmission: bool) -> SendStamp {
        if self.in_flight == 0 {
            self.first_sent_at = now;
            self.delivered_at = now;
        }
        if !retransmission {
            self.in_flight = self.in_flight.saturating_add(size);
        }
        self.largest_frame = self.largest_frame.max(size);
        if let Some(rate) = self.pacing_rate() {
            // Idle time earns a little credit: two of the largest frames or
            // `BURST` of the rate, so a timer firing late (tokio's tick is 1 ms)
            // costs no rate, while nothing bursts more than that into a buffer.
            let credit = self
                .time_for(self.largest_frame.saturating_mul(2), rate)
                .max(micros(BURST));
            let from = self
                .next_send
                .max(Instant::from_micros(now.as_micros().saturating_sub(credit)));
            self.next_send = from + Duration::from_micros(self.time_for(size, rate));
        }
        SendStamp {
            size,
            sent_at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_sent_at: self.first_sent_at,
            app_limited: self.app_limited_until != 0 || self.recovering,
        }
    }

    fn time_for(&self, bytes: u64, rate: u64) -> u64 {
        u64::try_from(u128::from(bytes) * u128::from(MICROS_PER_SEC) / u128::from(rate.max(1)))
            .unwrap_or(u64::MAX)
    }

    /// The retransmission timer expired at `now`: what is in flight may be lost,
    /// and a sample whose interval spans this instant measures the silence, so
    /// it may raise the estimate but not lower it (as Linux's rate sampling
    /// starts afresh once a timeout leaves nothing counted in flight); frames
    /// sent from now on are measured from now.
    pub fn on_timeout(&mut self, now: Instant) {
        self.timeout_at = Some(now);
        self.recovering = true;
        self.delivered_at = now;
        self.first_sent_at = now;
    }

    /// The frame stamped `stamp` was acknowledged at `now` (each frame once:
    /// cumulatively, or selectively before that). Call for every frame one ACK
    /// delivers, then [`Pacer::on_ack`].
    pub fn on_delivered(&mut self, stamp: &SendStamp, now: Instant) {
        self.delivered = self.delivered.saturating_add(stamp.size);
        self.in_flight = self.in_flight.saturating_sub(stamp.size);
        self.delivered_at = now;
        if self.newest.is_none_or(|n| stamp.sent_at >= n.sent_at) {
            self.newest = Some(*stamp);
        }
    }

    /// An acknowledgement was processed at `now`; `rtt`: the round trip of a frame
    /// sent once that it acknowledged, with that frame's wire size (Karn's rule
    /// is the caller's).
    pub fn on_ack(&mut self, now: Instant, rtt: Option<(Duration, u64)>) {
        if let Some(newest) = self.newest.take() {
            self.rate_sample(&newest, now);
        }
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        if let Some((rtt, size)) = rtt {
            self.recovering = false;
            self.delay_sample(now, micros(rtt), size);
        }
    }

    fn rate_sample(&mut self, newest: &SendStamp, now: Instant) {
        self.first_sent_at = newest.sent_at;
        let send_elapsed = micros(newest.sent_at - newest.first_sent_at);
        let ack_elapsed = micros(now - newest.delivered_at);
        let interval = send_elapsed.max(ack_elapsed);
        let bytes = self.delivered.saturating_sub(newest.delivered);
        if interval == 0 || bytes == 0 {
            return;
        }
        let rate =
            u64::try_from(u128::from(bytes) * u128::from(MICROS_PER_SEC) / u128::from(interval))
                .unwrap_or(u64::MAX);
        let spans_timeout = self.timeout_at.is_some_and(|at| newest.delivered_at < at);
        if (newest.app_limited || spans_timeout) && self.bw.get().is_some_and(|bw| rate < bw) {
            return;
        }
        let window = micros(self.config.rate_window)
            .max(self.base_rtt.get().unwrap_or(0).saturating_mul(10));
        if self.bw.get().is_none() {
            // Pacing starts now: no idle credit for the time before it (what was
            // sent unpaced is in the path already).
            self.next_send = self.next_send.max(now);
        }
        self.bw.update(now.as_micros(), rate, window, max_better);
    }

    fn delay_sample(&mut self, now: Instant, rtt: u64, size: u64) {
        let window = micros(self.config.rtt_window);
        let t = now.as_micros();
        self.base_rtt
            .update_tagged(t, rtt, size, window, min_better);
        self.srtt = Some(self.srtt.map_or(rtt, |srtt| srtt - srtt / 8 + rtt / 8));
        let Some((base, base_size)) = self.base_rtt.get_tagged() else {
            return;
        };
        // What this frame's round trip would be with nothing queued.
        let bw = self.bw.get();
        let unqueued = if size >= base_size {
            base.saturating_add(bw.map_or(0, |bw| self.time_for(size - base_size, bw)))
        } else {
            base.saturating_sub(bw.map_or(0, |bw| self.time_for(base_size - size, bw)))
        };
        if let Some(slot) = self.recent_delays.get_mut(self.recent_next) {
            *slot = rtt.saturating_sub(unqueued);
        }
        self.recent_next = (self.recent_next + 1) % DELAY_SAMPLES;
        self.recent_len = (self.recent_len + 1).min(DELAY_SAMPLES);
        let target = micros(self.config.target_delay).max(1);
        let queued = self.queueing_delay().map_or(0, micros);
        // gain = 1 + ¼ (target − queued) / target, in thousandths, within bounds.
        let gain = if queued <= target {
            UNIT_GAIN + (MAX_GAIN - UNIT_GAIN) * (target - queued) / target
        } else {
            let over = ((queued - target).min(target) * (UNIT_GAIN - MIN_GAIN)) / target;
            UNIT_GAIN - over
        };
        self.gain = gain.clamp(MIN_GAIN, MAX_GAIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    /// A frame crossing the model path.
    struct InFlight {
        stamp: SendStamp,
        sent_at: u64,
        acked_at: u64,
    }

    /// What a run over the model path measured after its first `settle` µs.
    #[derive(Debug)]
    struct Outcome {
        /// The longest a frame waited in the bottleneck's buffer, µs.
        max_queued: u64,
        /// Bytes the bottleneck sent ÷ what it could have sent.
        utilization: f64,
        /// The pacer's delivery-rate estimate at the end.
        estimate: u64,
        /// The largest pacing rate ÷ delivery-rate estimate seen.
        gains: (f64, f64),
    }

    /// A sender that always has frames of `size` bytes, paced by a [`Pacer`],
    /// into a bottleneck of `rate` bytes/s with an unbounded buffer (a modem),
    /// `one_way` µs each way, ACKs sent at once; `duration` µs of virtual time.
    fn run(rate: u64, one_way: u64, size: u64, duration: u64, settle: u64) -> Outcome {
        run_with(
            PacingConfig::default(),
            rate,
            one_way,
            size,
            duration,
            settle,
        )
    }

    /// [`run`] with a pacer of `config`.
    fn run_with(
        config: PacingConfig,
        rate: u64,
        one_way: u64,
        size: u64,
        duration: u64,
        settle: u64,
    ) -> Outcome {
        let mut pacer = Pacer::new(config);
        let mut flight: VecDeque<InFlight> = VecDeque::new();
        let mut free_at = 0u64; // the bottleneck is busy until then
        let mut t = 0u64;
        let mut max_queued = 0;
        let mut busy_after_settle = 0u64;
        let mut gains = (f64::MAX, 0f64);
        let serialization = size * MICROS_PER_SEC / rate;
        while t < duration {
            let now = Instant::from_micros(t);
            // Deliver the ACKs due.
            let mut acked = false;
            while flight.front().is_some_and(|f| f.acked_at <= t) {
                if let Some(frame) = flight.pop_front() {
                    pacer.on_delivered(&frame.stamp, now);
                    let rtt = Duration::from_micros(t - frame.sent_at);
                    pacer.on_ack(now, Some((rtt, size)));
                    acked = true;
                }
            }
            if acked {
                if let (Some(paced), Some(bw)) = (pacer.pacing_rate(), pacer.delivery_rate()) {
                    let gain = paced as f64 / bw as f64;
                    gains = (gains.0.min(gain), gains.1.max(gain));
                }
            }
            // Send what the pacer allows.
            while pacer.may_send(now) && pacer.window_open() {
                let stamp = pacer.on_send(size, now, false);
                let start = free_at.max(t);
                let departs = start + serialization;
                if t >= settle {
                    max_queued = max_queued.max(start - t);
                    busy_after_settle += serialization;
                }
                free_at = departs;
                flight.push_back(InFlight {
                    stamp,
                    sent_at: t,
                    acked_at: departs + 2 * one_way,
                });
            }
            // The next event: an ACK, or the pacer's release time.
            let next_ack = flight.front().map_or(u64::MAX, |f| f.acked_at);
            let release = match pacer.release_at() {
                Some(at) if pacer.window_open() => at.as_micros().max(t + 1),
                _ => u64::MAX,
            };
            // A real timer fires up to 1 ms late.
            t = next_ack.min(release.saturating_add(500));
        }
        Outcome {
            max_queued,
            utilization: busy_after_settle as f64 / (duration - settle) as f64,
            estimate: pacer.delivery_rate().unwrap_or(0),
            gains,
        }
    }

    #[test]
    fn a_slow_radio_keeps_a_short_queue_and_a_busy_air() {
        // 2,400 B/s air, 20 ms each way, 180-byte frames: 75 ms each.
        let outcome = run(2_400, 20_000, 180, 60_000_000, 10_000_000);
        assert!(outcome.max_queued <= 250_000, "{outcome:?}");
        assert!(outcome.utilization >= 0.9, "{outcome:?}");
        assert!((2_200..=2_700).contains(&outcome.estimate), "{outcome:?}");
    }

    #[test]
    fn windowed_filters_forget_old_samples() {
        let mut max = Windowed::default();
        max.update(0, 100, 1_000, max_better);
        max.update(500, 50, 1_000, max_better);
        assert_eq!(max.get(), Some(100));
        max.update(1_200, 40, 1_000, max_better);
        assert_eq!(max.get(), Some(50));
        max.update(3_000, 10, 1_000, max_better);
        assert_eq!(max.get(), Some(10));
        let mut min = Windowed::default();
        min.update(0, 5, 1_000, min_better);
        min.update(10, 9, 1_000, min_better);
        assert_eq!(min.get(), Some(5));
        min.update(2_000, 9, 1_000, min_better);
        assert_eq!(min.get(), Some(9));
    }

    #[test]
    fn nothing_is_paced_before_the_first_sample() {
        let mut pacer = Pacer::new(PacingConfig::default());
        assert!(pacer.may_send(Instant::ZERO));
        assert_eq!(pacer.pacing_rate(), None);
        let mut sent = 0;
        while pacer.window_open() {
            pacer.on_send(100, Instant::ZERO, false);
            sent += 100;
        }
        assert_eq!(sent, 400, "the initial window");
        // Two frames at least, however large.
        let mut pacer = Pacer::new(PacingConfig::default());
        let mut frames = 0;
        while pacer.window_open() {
            pacer.on_send(1_000, Instant::ZERO, false);
            frames += 1;
        }
        assert_eq!(frames, 2);
    }

    #[test]
    fn startup_queues_little_behind_a_slow_radio() {
        // From the first frame on (no settling): the first round trip, before
        // any estimate, queues only the initial window (two frames), pacing
        // starts without a burst, and the estimate's climb to the path's rate
        // does not pile a queue up.
        // 2,400 B/s air, 20 ms each way, 180-byte frames (75 ms each). With a
        // 1 KiB initial window and idle credit at the first estimate, 375 ms.
        let outcome = run(2_400, 20_000, 180, 10_000_000, 0);
        assert!(outcome.max_queued <= 200_000, "{outcome:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Over any path from a 300 B/s radio to a 1 MB/s line, with any delay,
        /// the estimate converges to the path's rate, the paced rate stays within
        /// its gains of the estimate, the bottleneck's buffer holds about the
        /// target delay (never more than the in-flight cap allows), and the
        /// bottleneck stays busy.
        #[test]
        fn pacing_finds_the_rate_and_keeps_the_queue_short(
            rate in 300u64..1_000_000,
            one_way in 0u64..200_000,
            size in 20u64..400,
        ) {
            let serialization = size * MICROS_PER_SEC / rate;
            // Long enough for 400 frames or 40 round trips after settling.
            let round = 2 * one_way + serialization;
            let span = (400 * serialization).max(40 * round).max(2_000_000);
            let outcome = run(rate, one_way, size, 3 * span, span);
            prop_assert!(outcome.gains.0 >= 0.749 && outcome.gains.1 <= 1.251, "{:?}", outcome);
            let estimate = outcome.estimate as f64 / rate as f64;
            prop_assert!((0.85..=1.3).contains(&estimate), "{:?}", outcome);
            // The queue: the target, plus what one round trip of probing adds,
            // plus two frames; and never more than the in-flight cap allows.
            let bound = 2 * 50_000 + round / 2 + 3 * serialization + 2_000;
            prop_assert!(outcome.max_queued <= bound, "bound {} µs: {:?}", bound, outcome);
            prop_assert!(outcome.utilization >= 0.85, "{:?}", outcome);
        }

        /// Whatever order of sends, acknowledgements and app-limited marks, the
        /// pacer never panics, counts in flight what was sent and not delivered,
        /// and paces within its gains of its estimate.
        #[test]
        fn any_event_sequence_keeps_the_books(
            events in proptest::collection::vec((0u8..4, 1u64..2_000, 0u64..50_000), 1..400),
        ) {
            let mut pacer = Pacer::new(PacingConfig::default());
            let mut flight: VecDeque<(SendStamp, u64)> = VecDeque::new();
            let mut t = 0u64;
            let mut outstanding = 0u64;
            for (kind, size, dt) in events {
                t += dt;
                let now = Instant::from_micros(t);
                match kind {
                    0 | 1 => {
                        let stamp = pacer.on_send(size, now, false);
                        flight.push_back((stamp, t));
                        outstanding += size;
                    }
                    2 => {
                        if let Some((stamp, sent)) = flight.pop_front() {
                            pacer.on_delivered(&stamp, now);
                            outstanding -= stamp.size;
                            pacer.on_ack(now, Some((Duration::from_micros(t - sent), stamp.size)));
                        } else {
                            pacer.on_ack(now, None);
                        }
                    }
                    _ => pacer.set_app_limited(),
                }
                prop_assert_eq!(pacer.in_flight(), outstanding);
                if let (Some(paced), Some(bw)) = (pacer.pacing_rate(), pacer.delivery_rate()) {
                    prop_assert!(paced * 1000 >= bw * 749 && paced * 1000 <= bw * 1251 + 1000);
                    prop_assert!(pacer.release_at().is_some());
                }
                prop_assert!(pacer.window() >= 1);
            }
        }
    }
}
