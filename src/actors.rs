//! The runtime pieces an application configures: the byte [`transport`]s a
//! link runs over, [`LinkOptions`], reconnection ([`Connector`]) and spooling
//! ([`SpoolLimits`]). The actors themselves and the messages between them stay
//! inside `netcore-actors`; a link is used through [`Link`](crate::Link).

pub use netcore_actors::transport;
pub use netcore_actors::{Connector, LinkOptions, SpoolLimits};

/// Supervision of the endpoint's service actors (event bus, timers, cache).
pub mod supervision {
    #[cfg(feature = "test-util")]
    pub use netcore_actors::supervision::InjectPanic;
    pub use netcore_actors::supervision::{Decision, RestartPolicy, ServiceError};
}

/// What a queued one-way message counts against `LinkOptions::one_way_queue`.
pub mod one_way_queue {
    pub use netcore_actors::one_way_queue::PER_MESSAGE;
}

/// How far a link's bodies on their way to spool files may run past the memory
/// budget before its reader waits.
pub mod spool_backlog {
    pub use netcore_actors::spool_backlog::SpoolBacklog;
}
