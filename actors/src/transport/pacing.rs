//! What the in-process test lines (throttled, faulty, modem) share: the byte clock of a
//! rate-limited wire, re-armable timers and waker slots.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{sleep_until, Instant, Sleep};

pub(super) const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Bytes a wire of `rate` bytes/s serializes in `elapsed` (saturating).
pub(super) fn bytes_in(rate: u128, elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos() * rate / NANOS_PER_SEC).unwrap_or(u64::MAX)
}

/// Time a wire of `rate` bytes/s takes for `count` bytes, rounded up (saturating).
pub(super) fn time_for(rate: u128, count: u64) -> Duration {
    let nanos = (u128::from(count) * NANOS_PER_SEC).div_ceil(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Polls `slot`'s timer for `deadline`, creating or re-arming it as needed.
pub(super) fn poll_sleep(
    slot: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let sleep = match slot {
        Some(sleep) => {
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            sleep
        }
        None => slot.insert(Box::pin(sleep_until(deadline))),
    };
    sleep.as_mut().poll(cx)
}

/// Wakes the task waiting in `slot`, if any.
pub(super) fn wake(slot: &mut Option<Waker>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}
