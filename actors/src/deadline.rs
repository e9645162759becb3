//! [`Deadline`]: the one actix timer an actor keeps at its protocol core's next
//! deadline (the session's delayed ACK and keepalive, the transmitter's
//! retransmission timeout). The core says when (`poll_timeout`); this re-arms the
//! timer only when that moves earlier (a later deadline is met by firing early
//! and arming again).

use crate::link_actor::now;
use actix::prelude::*;
use netcore_proto::Instant;

/// A re-armable timer at a protocol deadline.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    armed: Option<(Instant, SpawnHandle)>,
}

impl Deadline {
    /// Keeps the timer at `next` (none: disarmed). `fire` runs when it expires; it
    /// must call [`Deadline::fired`] first.
    pub(crate) fn arm<A>(
        &mut self,
        next: Option<Instant>,
        ctx: &mut Context<A>,
        fire: impl FnOnce(&mut A, &mut Context<A>) + 'static,
    ) where
        A: Actor<Context = Context<A>>,
    {
        // A timer armed before `next` stays: firing early is harmless (the core's
        // `handle_timeout` acts only on what is due, and the callback arms the
        // timer again at the real deadline). So a deadline that moves later, as
        // the keepalive does with every frame heard, costs no timer per frame.
        if let (Some((at, _)), Some(next)) = (&self.armed, next) {
            if *at <= next {
                return;
            }
        }
        if let Some((_, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
        let Some(at) = next else { return };
        let handle = ctx.run_later(at.saturating_since(now()), fire);
        self.armed = Some((at, handle));
    }

    /// The timer expired (call at the start of the `fire` callback).
    pub(crate) fn fired(&mut self) {
        self.armed = None;
    }
}
