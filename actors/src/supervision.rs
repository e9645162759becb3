//! Supervision of service actors: an OTP-like restart policy, the panic guard
//! at a handler's boundary, and the in-place restart shared by the service
//! actors ([`EventBusActor`](crate::event_bus_actor::EventBusActor),
//! [`TimerActor`](crate::timer_actor::TimerActor),
//! [`CacheActor`](crate::cache_actor::CacheActor)) and reusable by others.
//!
//! - [`RestartPolicy`]: at most `max_restarts` restarts within `within`, with an
//!   exponential backoff between them; one more failure escalates.
//! - [`RestartTracker`]: the policy's bookkeeping, clock-free (the time of each
//!   failure is passed in), so it is tested with simulated time.
//! - [`guard`]: runs a closure under `catch_unwind`, returning the panic text;
//!   [`guard_future`] does the same for a future (every handler task).
//! - [`Supervision`] + [`Restartable`] + [`run_supervised`]: what an actor
//!   needs to restart itself after a panic in one of its handlers.
//!
//! Why not actix's `Supervisor`: it restarts an actor only when the actor stops
//! itself (a panic in a handler unwinds through the runtime instead), and it
//! restarts it whenever any `Addr` is alive, so it cannot express escalation
//! (stop for good). Here the handler's work runs under [`guard`]; a caught panic
//! restarts the actor *in place*: its restartable state is rebuilt
//! ([`Restartable::rebuild`]), state meant to outlive restarts is kept, the
//! mailbox pauses for the backoff (queued messages wait, none are dropped), and
//! the `Addr` never changes. The message being handled is lost: its sender gets
//! [`ServiceError::Restarted`]. On escalation the actor stops: the sender of the
//! failing message gets [`ServiceError::Escalated`], later senders
//! [`ServiceError::Stopped`].

use crate::event::Event;
use actix::prelude::*;
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an actor may restart before its failure escalates.
///
/// Defaults: 3 restarts within 5 s, backoff 10 ms doubling up to 1 s. OTP's
/// supervisor default is intensity 1 / period 5 s, tuned for a tree where
/// escalation restarts the parent, which is cheap. Here nothing sits above the
/// service actors, so escalation stops the service for good: we tolerate a
/// short burst (each panic loses one message) before giving up, yet a crash
/// loop still escalates within ~100 ms (10 + 20 + 40 ms of backoff). OTP
/// restarts at once; the backoff keeps a crash loop from spinning the arbiter
/// and gives a failing dependency time to recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Most restarts within any period of length `within` (OTP's intensity).
    pub max_restarts: u32,
    /// The sliding window (OTP's period).
    pub within: Duration,
    /// Delay before the first restart of a burst; doubles with each restart.
    pub backoff_initial: Duration,
    /// Cap of the delay.
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 3,
            within: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restart, once `after` has passed.
    Restart {
        /// The backoff before the restarted actor handles messages again.
        after: Duration,
    },
    /// Too many restarts within the window: stop and report.
    Escalate,
}

/// The bookkeeping of a [`RestartPolicy`]; the time of each failure is passed in.
///
/// A failure restarts unless `max_restarts` restarts already happened within
/// the last `within` (sliding window); escalated failures are not recorded.
/// The backoff is `backoff_initial * 2^n` capped at `backoff_max`, where `n`
/// counts the restarts of the current burst; a burst ends when no restart
/// happened for a whole window, and the backoff starts over.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    streak: u32,
}

impl RestartTracker {
    /// A tracker for this policy, with no failure yet.
    pub fn new(policy: RestartPolicy) -> Self {
        RestartTracker {
            policy,
            recent: VecDeque::new(),
            streak: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// Records a failure at `now` and decides. Times should not go backwards;
    /// if they do, the earlier restarts count as simultaneous with `now`.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        let within = self.policy.within;
        while let Some(&first) = self.recent.front() {
            if now.saturating_duration_since(first) >= within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.is_empty() {
            self.streak = 0;
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return Decision::Escalate;
        }
        let after = self.backoff(self.streak);
        self.streak = self.streak.saturating_add(1);
        self.recent.push_back(now);
        Decision::Restart { after }
    }

    /// The delay before the restart number `n` (from 0) of a burst.
    pub fn backoff(&self, n: u32) -> Duration {
        let RestartPolicy {
            backoff_initial,
            backoff_max,
            ..
        } = self.policy;
        2u32.checked_pow(n)
            .and_then(|factor| backoff_initial.checked_mul(factor))
            .map_or(backoff_max, |delay| delay.min(backoff_max))
    }
}

/// Runs `f`, catching a panic; returns the panic's text on failure.
///
/// The closure is asserted unwind-safe: callers must treat whatever it touched
/// as suspect after a panic (the service actors rebuild their state).
pub fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_message)
}

/// Runs the future `work`, catching a panic; returns the panic's text on
/// failure. The one place handler panics are caught: the router runs every
/// handler task under it, and the application layer every boxed handler.
///
/// The returned future is `Unpin` when `work` is, so the router can poll it once
/// in place and, if it is still pending, move it into a task.
pub fn guard_future<F: Future>(work: F) -> Guarded<F> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .map(panic_to_text as fn(_) -> _)
}

/// The future [`guard_future`] returns.
pub type Guarded<F> = futures_util::future::Map<
    futures_util::future::CatchUnwind<AssertUnwindSafe<F>>,
    fn(std::thread::Result<<F as Future>::Output>) -> Result<<F as Future>::Output, String>,
>;

/// A caught panic as its text.
fn panic_to_text<T>(outcome: std::thread::Result<T>) -> Result<T, String> {
    outcome.map_err(panic_message)
}

/// The text of a panic payload.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

/// Where a supervised actor reports its restarts and escalation: a function
/// that publishes the event (the event bus makes one: `Reporter::from(bus)`).
#[derive(Clone)]
pub struct Reporter(Arc<dyn Fn(Event) + Send + Sync>);

impl Reporter {
    /// A reporter calling `report` with each event.
    pub fn new(report: impl Fn(Event) + Send + Sync + 'static) -> Reporter {
        Reporter(Arc::new(report))
    }

    /// Reports `event`.
    pub fn report(&self, event: Event) {
        (self.0)(event)
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// Why a service did not handle a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceError {
    /// The service panicked while handling this message and restarted: the
    /// message was lost (not retried), the service goes on with the next one.
    Restarted {
        /// The service.
        actor: String,
        /// The panic's text.
        reason: String,
    },
    /// The service panicked while handling this message, once too often: it
    /// escalated and stopped.
    Escalated {
        /// The service.
        actor: String,
        /// The panic's text.
        reason: String,
    },
    /// The service is stopped (escalated earlier, or all its handles dropped).
    Stopped {
        /// The service.
        actor: String,
    },
}

impl ServiceError {
    /// The error for a message whose `send` failed (the mailbox is closed).
    pub fn stopped(actor: &str, _: MailboxError) -> ServiceError {
        ServiceError::Stopped {
            actor: actor.to_string(),
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Restarted { actor, reason } => {
                write!(f, "{actor} restarted while handling the message: {reason}")
            }
            ServiceError::Escalated { actor, reason } => {
                write!(f, "{actor} failed too often and stopped: {reason}")
            }
            ServiceError::Stopped { actor } => write!(f, "{actor} is stopped"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// An actor's supervision state: name, restart tracker, restart count and
/// where its restarts are reported. Lives in the actor and survives restarts.
#[derive(Debug)]
pub struct Supervision {
    actor: String,
    tracker: RestartTracker,
    restarts: u32,
    reporter: Option<Reporter>,
}

impl Supervision {
    /// Supervision for the actor named `actor`, reporting to `reporter` if given.
    pub fn new(
        actor: impl Into<String>,
        policy: RestartPolicy,
        reporter: Option<Reporter>,
    ) -> Self {
        Supervision {
            actor: actor.into(),
            tracker: RestartTracker::new(policy),
            restarts: 0,
            reporter,
        }
    }

    /// The actor's name (as in events and errors).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Restarts so far (since the actor started, not only within the window).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Where restarts are reported.
    pub fn reporter(&self) -> Option<&Reporter> {
        self.reporter.as_ref()
    }

    /// Records a failure at `now`, logs it and returns the decision with the
    /// event to report.
    pub fn failed(&mut self, reason: &str, now: Instant) -> Failure {
        let decision = self.tracker.on_failure(now);
        let actor = self.actor.clone();
        let event = match decision {
            Decision::Restart { after } => {
                self.restarts = self.restarts.saturating_add(1);
                tracing::warn!(
                    actor = %actor, restarts = self.restarts, %reason, ?after,
                    "actor panicked; restarting"
                );
                Event::ActorRestarted {
                    actor,
                    restarts: self.restarts,
                    reason: reason.to_string(),
                }
            }
            Decision::Escalate => {
                tracing::error!(
                    actor = %actor, restarts = self.restarts, %reason,
                    "actor failed too often; escalating (stopping)"
                );
                Event::ActorEscalated {
                    actor,
                    reason: reason.to_string(),
                }
            }
        };
        Failure { decision, event }
    }
}

/// What [`Supervision::failed`] decided about a failure, and how to report it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Restart (after a backoff) or escalate.
    pub decision: Decision,
    /// [`Event::ActorRestarted`] or [`Event::ActorEscalated`], to publish.
    pub event: Event,
}

/// An actor that restarts in place after a panic caught by [`run_supervised`].
pub trait Restartable: Actor<Context = Context<Self>> {
    /// Its supervision state.
    fn supervision(&mut self) -> &mut Supervision;

    /// Replaces the restartable state with a fresh one (state meant to outlive
    /// restarts is kept). Runs before the backoff.
    fn rebuild(&mut self, ctx: &mut Context<Self>);

    /// Reports a restart or escalation (default: to the supervision's reporter).
    fn announce(&mut self, event: Event) {
        if let Some(reporter) = self.supervision().reporter() {
            reporter.report(event);
        }
    }
}

/// Runs a handler's work under [`guard`]. After a panic the actor restarts in
/// place (rebuild, announce, pause the mailbox for the backoff) or escalates
/// (announce, stop), and the error for the lost message is returned.
pub fn run_supervised<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    work: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Result<R, ServiceError>
where
    A: Restartable,
{
    let reason = match guard(|| work(&mut *act, &mut *ctx)) {
        Ok(result) => return Ok(result),
        Err(reason) => reason,
    };
    let Failure { decision, event } = act.supervision().failed(&reason, Instant::now());
    let actor = act.supervision().actor().to_string();
    match decision {
        Decision::Restart { after } => {
            act.rebuild(ctx);
            act.announce(event);
            if !after.is_zero() {
                ctx.wait(actix::clock::sleep(after).into_actor(act));
            }
            Err(ServiceError::Restarted { actor, reason })
        }
        Decision::Escalate => {
            act.announce(event);
            ctx.stop();
            Err(ServiceError::Escalated { actor, reason })
        }
    }
}

/// Test tooling (feature `test-util`): makes a service actor panic inside its
/// handler, to prove it restarts. The sender gets [`ServiceError::Restarted`]
/// (or `Escalated`).
#[cfg(feature = "test-util")]
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ServiceError>")]
pub struct InjectPanic(pub String);
