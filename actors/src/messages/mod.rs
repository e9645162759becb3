//! The messages the actors of a link send each other, grouped by the actor that
//! handles them, and the handles through which the application ([`LinkHandle`])
//! and the handlers ([`LinkRef`]) reach a link.
//!
//! Actors never hold each other's addresses: each holds the `Recipient`s of the
//! messages it sends (bundled here: `SchedulerInbox`, `SpoolTarget`,
//! [`LinkRef`] and [`LinkHandle`]), so any actor can be started alone with stand-ins for its
//! neighbours. Messages one actor sends only to itself stay in its module.

mod handle;
mod link;
mod router;
mod scheduler;

pub(crate) use handle::LinkInbox;
pub use handle::{LinkHandle, LinkRef};
pub(crate) use link::{
    Call, CancelStream, GoAway, InFlight, PeerSession, Reconnected, Respond, SendOneWay, Shutdown,
    SpoolTarget, Spooled, Stats, StreamOpened, TransmitterFailed, WatchState,
};
pub use link::{LinkState, PeerSessionState, Response};
pub use router::{Canceled, Incoming};
pub use scheduler::Progress;
#[cfg(test)]
pub(crate) use scheduler::SchedulerStub;
pub(crate) use scheduler::{
    Apply, Close, Flush, Pull, PushBody, SchedulerInbox, TransmitStats, Unpark, WatchProgress,
    Watchdog,
};
