//! [`Deadline`]: the one actix timer an actor keeps at its protocol core's next
//! deadline (the session's delayed ACK and keepalive, the transmitter's
//! retransmission timeout). The core says when (`poll_timeout`); this re-arms the
//! timer only when that moves earlier (a later deadline is met by firing early
//! and arming again), and keeps the later timer it displaced for when the earlier
//! one has fired.

use crate::clock::now;
use actix::prelude::*;
use netcore_proto::Instant;

/// A re-armable timer at a protocol deadline.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    /// The timer at (or before) the next deadline.
    armed: Option<(Instant, SpawnHandle)>,
    /// A later timer kept, instead of canceled, when an earlier deadline came:
    /// the keepalive's timer behind a delayed ACK's. Once the earlier one fired it
    /// serves again, if the deadline did not move before it, so a link that gets
    /// a frame (and owes an ACK) every few tens of milliseconds arms one timer per
    /// frame, not two.
    later: Option<(Instant, SpawnHandle)>,
}

impl Deadline {
    /// Keeps a timer at `next` (none: disarmed). `fire` runs when it expires with
    /// the instant it was armed for; it must pass that to [`Deadline::fired`]
    /// first.
    pub(crate) fn arm<A>(
        &mut self,
        next: Option<Instant>,
        ctx: &mut Context<A>,
        fire: impl FnOnce(&mut A, &mut Context<A>, Instant) + 'static,
    ) where
        A: Actor<Context = Context<A>>,
    {
        let Some(next) = next else {
            for (_, handle) in [self.armed.take(), self.later.take()].into_iter().flatten() {
                ctx.cancel_future(handle);
            }
            return;
        };
        // A timer armed before `next` stays: firing early is harmless (the core's
        // `handle_timeout` acts only on what is due, and the callback arms the
        // timer again at the real deadline). So a deadline that moves later, as
        // the keepalive does with every frame heard, costs no timer per frame.
        if let Some((at, _)) = &self.armed {
            if *at <= next {
                return;
            }
        }
        if self.armed.is_none() && self.later.as_ref().is_some_and(|(at, _)| *at <= next) {
            self.armed = self.later.take();
            return;
        }
        if let Some(earlier) = self.armed.take() {
            if let Some((_, handle)) = self.later.replace(earlier) {
                ctx.cancel_future(handle);
            }
        }
        let handle = ctx.run_later(next.saturating_since(now()), move |act, ctx| {
            fire(act, ctx, next)
        });
        self.armed = Some((next, handle));
    }

    /// The timer armed for `at` expired (call at the start of the `fire` callback).
    pub(crate) fn fired(&mut self, at: Instant) {
        if self.armed.as_ref().is_some_and(|(armed, _)| *armed == at) {
            self.armed = None;
        } else if self.later.as_ref().is_some_and(|(later, _)| *later == at) {
            self.later = None;
        }
    }
}
