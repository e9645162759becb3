//! [`TimerActor`]: runs closures after a delay, once or periodically;
//! [`Timers`] is its cloneable handle, [`TaskHandle`] cancels one task.
//!
//! - Tasks run on the timer actor's arbiter, one at a time: they must be short
//!   (spawn or send a message for real work), or they delay the others.
//! - A panicking task is caught and logged; the actor goes on and a periodic
//!   task stays scheduled (the next run may succeed). This is not a failure of
//!   the actor and does not count as a restart.
//! - Supervised: a panic of the actor itself restarts it in place (see
//!   [`supervision`](crate::supervision)). The task table outlives the restart;
//!   what is rebuilt are the armed timers: every timer is canceled and re-armed
//!   from its task's next due time, so a panic halfway through a firing cannot
//!   leave a task armed twice or not at all. Tasks due during the backoff run
//!   right after it.
//! - Periodic tasks are re-armed `interval` after a run ends (fixed delay, no
//!   catch-up burst after a stall); an interval below 1 ms counts as 1 ms, a
//!   delay beyond 30 years as 30 years.

use crate::event_bus::EventBus;
#[cfg(feature = "test-util")]
use crate::supervision::InjectPanic;
use crate::supervision::{
    guard, run_supervised, RestartPolicy, Restartable, ServiceError, Supervision,
};
use actix::prelude::*;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a scheduled task (unique within the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

impl TaskId {
    fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Where a delay too long for `Instant` ends (tokio caps its timers alike).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `delay` from now, saturating (the delay is the caller's value: never panic).
fn due_in(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

type TaskFn = Box<dyn Fn() + Send>;

struct Task {
    run: TaskFn,
    interval: Option<Duration>,
    next_due: Instant,
    canceled: Arc<AtomicBool>,
    armed: Option<SpawnHandle>,
}

/// The timer actor (use it through [`Timers`]).
pub struct TimerActor {
    tasks: HashMap<TaskId, Task>,
    supervision: Supervision,
}

impl TimerActor {
    /// Arms (or re-arms) the timer of a task for its next due time.
    fn arm(&mut self, id: TaskId, ctx: &mut Context<Self>) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        if let Some(handle) = task.armed.take() {
            ctx.cancel_future(handle);
        }
        let delay = task.next_due.saturating_duration_since(Instant::now());
        task.armed = Some(ctx.run_later(delay, move |act, ctx| act.fire(id, ctx)));
    }

    fn fire(&mut self, id: TaskId, ctx: &mut Context<Self>) {
        let _ = run_supervised(self, ctx, |act, ctx| act.run_task(id, ctx));
    }

    fn run_task(&mut self, id: TaskId, ctx: &mut Context<Self>) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.armed = None;
        if !task.canceled.load(Ordering::Acquire) {
            if let Err(why) = guard(|| (task.run)()) {
                tracing::warn!(task = id.0, %why, "scheduled task panicked");
            }
        }
        match task.interval {
            Some(every) if !task.canceled.load(Ordering::Acquire) => {
                task.next_due = due_in(every);
                self.arm(id, ctx);
            }
            _ => {
                self.tasks.remove(&id);
            }
        }
    }
}

impl Actor for TimerActor {
    type Context = Context<Self>;
}

impl Restartable for TimerActor {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.supervision
    }

    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.arm(id, ctx);
        }
    }
}

/// Schedules a task (see [`Timers::schedule`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Schedule {
    id: TaskId,
    delay: Duration,
    interval: Option<Duration>,
    run: TaskFn,
    canceled: Arc<AtomicBool>,
}

impl Handler<Schedule> for TimerActor {
    type Result = ();

    fn handle(&mut self, msg: Schedule, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, ctx| {
            let task = Task {
                run: msg.run,
                interval: msg.interval.map(|every| every.max(MIN_INTERVAL)),
                next_due: due_in(msg.delay),
                canceled: msg.canceled,
                armed: None,
            };
            act.tasks.insert(msg.id, task);
            act.arm(msg.id, ctx);
        });
    }
}

/// Cancels a task (nothing if it is gone already).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Cancel(pub TaskId);

impl Handler<Cancel> for TimerActor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, ctx| {
            if let Some(handle) = act.tasks.remove(&msg.0).and_then(|task| task.armed) {
                ctx.cancel_future(handle);
            }
        });
    }
}

/// How many tasks are scheduled.
#[derive(Message, Debug)]
#[rtype(result = "Result<usize, ServiceError>")]
pub(crate) struct Scheduled;

impl Handler<Scheduled> for TimerActor {
    type Result = Result<usize, ServiceError>;

    fn handle(&mut self, _: Scheduled, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| act.tasks.len())
    }
}

#[cfg(feature = "test-util")]
impl Handler<InjectPanic> for TimerActor {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, msg: InjectPanic, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |_, _| panic!("{}", msg.0))
    }
}

/// Handle of the timer actor: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Timers {
    addr: Addr<TimerActor>,
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("connected", &self.addr.connected())
            .finish()
    }
}

impl Timers {
    /// Starts a timer actor on the current arbiter, reporting restarts on `bus`.
    pub fn start(policy: RestartPolicy, bus: Option<EventBus>) -> Timers {
        let addr = TimerActor {
            tasks: HashMap::new(),
            supervision: Supervision::new("timers", policy, bus.map(|bus| bus.reporter())),
        }
        .start();
        Timers { addr }
    }

    /// The timer actor's address (unchanged by restarts). Test tooling
    /// (feature `test-util`): tests send it `InjectPanic`.
    #[cfg(feature = "test-util")]
    pub fn addr(&self) -> &Addr<TimerActor> {
        &self.addr
    }

    /// Runs `task` after `delay`, then every `interval` if given, until
    /// canceled. Never blocks. Dropping the [`TaskHandle`] does not cancel.
    /// If the timer actor is stopped, the task never runs.
    pub fn schedule(
        &self,
        delay: Duration,
        interval: Option<Duration>,
        task: impl Fn() + Send + 'static,
    ) -> TaskHandle {
        let id = TaskId::next();
        let canceled = Arc::new(AtomicBool::new(false));
        self.addr.do_send(Schedule {
            id,
            delay,
            interval,
            run: Box::new(task),
            canceled: canceled.clone(),
        });
        TaskHandle {
            id,
            canceled,
            addr: self.addr.clone(),
        }
    }

    /// How many tasks are scheduled (periodic ones, and one-shot ones not run yet).
    pub async fn scheduled(&self) -> Result<usize, ServiceError> {
        self.addr
            .send(Scheduled)
            .await
            .map_err(|e| ServiceError::stopped("timers", e))?
    }
}

/// Cancels a scheduled task; cloneable.
#[derive(Clone)]
pub struct TaskHandle {
    id: TaskId,
    canceled: Arc<AtomicBool>,
    addr: Addr<TimerActor>,
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("canceled", &self.is_canceled())
            .finish()
    }
}

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the task: it does not run again from now on (takes effect at
    /// once, even before the timer actor has handled the cancellation), unless
    /// it is running right now, in which case that run completes.
    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::Release);
        self.addr.do_send(Cancel(self.id));
    }

    /// True once [`TaskHandle::cancel`] was called.
    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Acquire)
    }
}
