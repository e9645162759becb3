//! Supervised service actors: restart after a panic (same `Addr`, still
//! serving, typed error for the lost message, event on the bus), escalation,
//! the restart policy's bookkeeping, cache TTL and capacity, event bus and
//! timer behaviour around panicking callbacks.

use futures_util::future::join;
use netcore_actors::cache_actor::CacheConfig;
use netcore_actors::event_bus::{Event, EventBus, EventBusConfig};
use netcore_actors::proto::StreamId;
use netcore_actors::supervision::{
    guard, Decision, InjectPanic, RestartPolicy, RestartTracker, ServiceError,
};
use netcore_actors::timer_actor::Timers;
use netcore_actors::{Cache, LinkId};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

const PATIENCE: Duration = Duration::from_secs(10);

/// Restarts quickly; allows `max` restarts per minute.
fn policy(max: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts: max,
        within: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
    }
}

fn bus() -> EventBus {
    EventBus::start(EventBusConfig {
        policy: policy(3),
        ..EventBusConfig::default()
    })
}

fn cache(max: u32, bus: &EventBus) -> Cache {
    Cache::start(
        CacheConfig {
            max_entries: 1000,
            policy: policy(max),
        },
        Some(bus.clone()),
    )
}

/// The next event `pred` accepts.
async fn next_event(rx: &mut broadcast::Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("event bus closed"),
            }
        }
    })
    .await
    .expect("event in time")
}

/// Waits until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

fn is_restart_of(actor: &'static str) -> impl Fn(&Event) -> bool {
    move |event| matches!(event, Event::ActorRestarted { actor: a, .. } if a == actor)
}

fn restarted(actor: &str, reason: &str) -> ServiceError {
    ServiceError::Restarted {
        actor: actor.into(),
        reason: reason.into(),
    }
}

#[actix_rt::test]
async fn cache_restarts_after_panic_keeps_addr_contents_and_serves() {
    let bus = bus();
    let mut events = bus.subscribe();
    let cache = cache(3, &bus);
    cache.set("k", "v", None).await.unwrap();
    let addr = cache.addr().clone();

    let lost = addr.send(InjectPanic("boom".into())).await.unwrap();
    assert_eq!(lost, Err(restarted("cache", "boom")));
    let event = next_event(&mut events, is_restart_of("cache")).await;
    assert_eq!(
        event,
        Event::ActorRestarted {
            actor: "cache".into(),
            restarts: 1,
            reason: "boom".into()
        }
    );

    // Same Addr, same contents, still serving.
    assert!(addr.connected());
    assert_eq!(cache.addr(), &addr);
    assert_eq!(cache.get("k").await.unwrap(), Some("v".into()));
    cache.set("k2", "v2", None).await.unwrap();
    assert_eq!(cache.delete("k2").await.unwrap(), Some("v2".into()));
    assert_eq!(cache.get("k2").await.unwrap(), None);
}

#[actix_rt::test]
async fn only_the_message_in_flight_is_lost() {
    let bus = bus();
    let cache = cache(3, &bus);
    cache.set("k", "v", None).await.unwrap();
    // Queued behind the panicking message: served after the restart's backoff.
    let (lost, next) = join(
        cache.addr().send(InjectPanic("bad message".into())),
        cache.get("k"),
    )
    .await;
    assert_eq!(lost.unwrap(), Err(restarted("cache", "bad message")));
    assert_eq!(next.unwrap(), Some("v".into()));
}

#[actix_rt::test]
async fn escalates_after_max_restarts_within_the_window() {
    let bus = bus();
    let mut events = bus.subscribe();
    let cache = cache(2, &bus);
    let addr = cache.addr().clone();
    for n in 1..=2 {
        let lost = addr.send(InjectPanic(format!("panic {n}"))).await.unwrap();
        assert_eq!(lost, Err(restarted("cache", &format!("panic {n}"))));
    }
    let lost = addr.send(InjectPanic("panic 3".into())).await.unwrap();
    assert_eq!(
        lost,
        Err(ServiceError::Escalated {
            actor: "cache".into(),
            reason: "panic 3".into()
        })
    );
    let event = next_event(&mut events, |e| matches!(e, Event::ActorEscalated { .. })).await;
    assert_eq!(
        event,
        Event::ActorEscalated {
            actor: "cache".into(),
            reason: "panic 3".into()
        }
    );
    // Stopped for good: later senders get a typed error, never a hang.
    eventually("the cache actor to stop", || !addr.connected()).await;
    assert_eq!(
        cache.get("k").await,
        Err(ServiceError::Stopped {
            actor: "cache".into()
        })
    );
}

#[actix_rt::test]
async fn timer_restarts_and_its_tasks_survive() {
    let bus = bus();
    let mut events = bus.subscribe();
    let timers = Timers::start(policy(3), Some(bus.clone()));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let _task = timers.schedule(Duration::ZERO, Some(Duration::from_millis(2)), move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    eventually("the task to run", || runs.load(Ordering::SeqCst) >= 2).await;

    let addr = timers.addr().clone();
    let lost = addr.send(InjectPanic("timer boom".into())).await.unwrap();
    assert_eq!(lost, Err(restarted("timers", "timer boom")));
    next_event(&mut events, is_restart_of("timers")).await;

    let before = runs.load(Ordering::SeqCst);
    eventually("the task to run after the restart", || {
        runs.load(Ordering::SeqCst) >= before + 3
    })
    .await;
    assert!(addr.connected());
    assert_eq!(timers.scheduled().await.unwrap(), 1);
}

#[actix_rt::test]
async fn event_bus_restarts_keeps_subscribers_and_reports_itself() {
    let bus = bus();
    let mut events = bus.subscribe();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    bus.on(
        |e| matches!(e, Event::LinkUp { .. }),
        move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
    );
    let addr = bus.addr().clone();
    let lost = addr.send(InjectPanic("bus boom".into())).await.unwrap();
    assert_eq!(lost, Err(restarted("event-bus", "bus boom")));
    next_event(&mut events, is_restart_of("event-bus")).await;

    bus.publish(Event::LinkUp { link: LinkId(7) });
    let event = next_event(&mut events, |e| matches!(e, Event::LinkUp { .. })).await;
    assert_eq!(event, Event::LinkUp { link: LinkId(7) });
    eventually("the closure subscriber", || {
        seen.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[actix_rt::test]
async fn event_bus_escalation_is_delivered_then_receivers_close() {
    let bus = EventBus::start(EventBusConfig {
        policy: policy(0),
        ..EventBusConfig::default()
    });
    let mut events = bus.subscribe();
    let lost = bus.addr().send(InjectPanic("fatal".into())).await.unwrap();
    assert!(matches!(lost, Err(ServiceError::Escalated { .. })));
    let event = tokio::time::timeout(PATIENCE, events.recv()).await.unwrap();
    assert_eq!(
        event,
        Ok(Event::ActorEscalated {
            actor: "event-bus".into(),
            reason: "fatal".into()
        })
    );
    let closed = tokio::time::timeout(PATIENCE, events.recv()).await.unwrap();
    assert_eq!(closed, Err(RecvError::Closed));
    // A late subscriber gets a closed receiver, not one that waits forever.
    assert_eq!(bus.subscribe().recv().await, Err(RecvError::Closed));
}

#[actix_rt::test]
async fn panicking_subscriber_does_not_stop_delivery_to_others() {
    let bus = bus();
    let panicked = Arc::new(AtomicUsize::new(0));
    let good = Arc::new(AtomicUsize::new(0));
    let once = Arc::new(AtomicUsize::new(0));
    let off = Arc::new(AtomicUsize::new(0));
    let p = panicked.clone();
    bus.on(
        |_| true,
        move |_| {
            p.fetch_add(1, Ordering::SeqCst);
            panic!("bad subscriber");
        },
    );
    let g = good.clone();
    bus.on(
        |_| true,
        move |_| {
            g.fetch_add(1, Ordering::SeqCst);
        },
    );
    let o = once.clone();
    bus.once(
        |_| true,
        move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        },
    );
    let f = off.clone();
    let id = bus.on(
        |_| true,
        move |_| {
            f.fetch_add(1, Ordering::SeqCst);
        },
    );
    bus.off(id);
    for n in 0..3 {
        bus.publish(Event::Canceled {
            link: LinkId(1),
            stream: StreamId(n),
        });
    }
    eventually("the good subscriber", || good.load(Ordering::SeqCst) == 3).await;
    // The panicking subscriber was removed after its first panic.
    assert_eq!(panicked.load(Ordering::SeqCst), 1);
    assert_eq!(once.load(Ordering::SeqCst), 1);
    assert_eq!(off.load(Ordering::SeqCst), 0);
}

#[actix_rt::test]
async fn panicking_periodic_task_keeps_firing_until_canceled() {
    // Virtual time: the window after the cancel is exact whatever the load.
    tokio::time::pause();
    let bus = bus();
    let mut events = bus.subscribe();
    let timers = Timers::start(policy(3), Some(bus.clone()));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let task = timers.schedule(
        Duration::from_millis(1),
        Some(Duration::from_millis(2)),
        move || {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("task boom");
        },
    );
    eventually("the task to keep firing", || {
        runs.load(Ordering::SeqCst) >= 3
    })
    .await;
    // Not an actor failure: no restart.
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));

    task.cancel();
    assert!(task.is_canceled());
    assert_eq!(timers.scheduled().await.unwrap(), 0);
    let after_cancel = runs.load(Ordering::SeqCst);
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(runs.load(Ordering::SeqCst), after_cancel);
}

#[actix_rt::test]
async fn one_shot_task_runs_once() {
    let timers = Timers::start(RestartPolicy::default(), None);
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    timers.schedule(Duration::from_millis(1), None, move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    eventually("the task to run", || runs.load(Ordering::SeqCst) == 1).await;
    assert_eq!(timers.scheduled().await.unwrap(), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn huge_delays_and_ttls_are_served_not_failures() {
    let bus = bus();
    let mut events = bus.subscribe();
    let timers = Timers::start(policy(0), Some(bus.clone()));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    timers.schedule(Duration::MAX, Some(Duration::MAX), || {});
    timers.schedule(Duration::ZERO, Some(Duration::MAX), move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    eventually("the task to run", || runs.load(Ordering::SeqCst) == 1).await;
    assert_eq!(timers.scheduled().await.unwrap(), 2);
    let cache = cache(0, &bus);
    cache.set("k", "v", Some(Duration::MAX)).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some("v".into()));
    assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
}

#[actix_rt::test]
async fn cache_ttl_expiry() {
    let bus = bus();
    let cache = cache(3, &bus);
    // The cache (moka) expires entries on the wall clock, so the bounds are the
    // TTL's own: an entry is there while less than its TTL has passed since it
    // was set, and gone some time after (a loaded machine can only make each
    // look later).
    const TTL: Duration = Duration::from_millis(300);
    let set_at = Instant::now();
    cache.set("short", "s", Some(TTL)).await.unwrap();
    cache.set("long", "l", None).await.unwrap();
    cache.set("renewed", "r", Some(TTL)).await.unwrap();
    cache.set("renewed", "r2", None).await.unwrap(); // a new set replaces the TTL
    let short = cache.get("short").await.unwrap();
    if set_at.elapsed() < TTL {
        assert_eq!(short, Some("s".into()), "within its TTL");
    }
    loop {
        let short = cache.get("short").await.unwrap();
        let looked_at = set_at.elapsed();
        if short.is_none() {
            assert!(
                looked_at >= TTL,
                "expired after {looked_at:?}, before its TTL"
            );
            break;
        }
        assert!(looked_at < TTL * 20, "still there after {looked_at:?}");
        actix_rt::time::sleep(TTL / 10).await;
    }
    assert_eq!(cache.get("long").await.unwrap(), Some("l".into()));
    assert_eq!(cache.get("renewed").await.unwrap(), Some("r2".into()));
}

#[actix_rt::test]
async fn cache_capacity_delete_and_clear() {
    let cache = Cache::start(
        CacheConfig {
            max_entries: 16,
            ..CacheConfig::default()
        },
        None,
    );
    for n in 0..200 {
        cache
            .set(format!("k{n}"), vec![0u8; 8], None)
            .await
            .unwrap();
    }
    let count = cache.entry_count().await.unwrap();
    assert!(count <= 16, "{count} entries, limit 16");
    cache.set("x", "y", None).await.unwrap();
    assert_eq!(cache.delete("missing").await.unwrap(), None);
    cache.clear().await.unwrap();
    assert_eq!(cache.entry_count().await.unwrap(), 0);
    assert_eq!(cache.get("x").await.unwrap(), None);
}

#[test]
fn backoff_grows_exponentially_is_capped_and_resets_after_a_quiet_window() {
    let policy = RestartPolicy {
        max_restarts: 10,
        within: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    };
    let mut tracker = RestartTracker::new(policy);
    let t0 = Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let afters: Vec<Decision> = (0..6).map(|s| tracker.on_failure(at(s))).collect();
    let ms = |m| Decision::Restart {
        after: Duration::from_millis(m),
    };
    assert_eq!(afters, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
    // No restart for a whole window: the backoff starts over.
    assert_eq!(tracker.on_failure(at(5 + 60)), ms(10));
    assert_eq!(tracker.on_failure(at(5 + 61)), ms(20));
}

#[test]
fn tracker_escalates_when_the_window_is_full_and_recovers_as_it_slides() {
    let policy = RestartPolicy {
        max_restarts: 3,
        within: Duration::from_secs(5),
        ..RestartPolicy::default()
    };
    let mut tracker = RestartTracker::new(policy);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    for t in [0, 1000, 2000] {
        assert!(matches!(
            tracker.on_failure(at(t)),
            Decision::Restart { .. }
        ));
    }
    assert_eq!(tracker.on_failure(at(3000)), Decision::Escalate);
    assert_eq!(tracker.on_failure(at(4999)), Decision::Escalate);
    // The restart at 0 left the window.
    assert!(matches!(
        tracker.on_failure(at(5000)),
        Decision::Restart { .. }
    ));
    assert_eq!(tracker.on_failure(at(5001)), Decision::Escalate);
}

#[test]
fn default_policy_escalates_a_crash_loop_quickly() {
    let policy = RestartPolicy::default();
    let tracker = RestartTracker::new(policy);
    let total: Duration = (0..policy.max_restarts).map(|n| tracker.backoff(n)).sum();
    assert!(total < policy.within);
    assert!(total <= Duration::from_millis(100));
}

#[test]
fn guard_returns_the_value_or_the_panic_text() {
    assert_eq!(guard(|| 41 + 1), Ok(42));
    assert_eq!(guard(|| -> u8 { panic!("oops") }), Err("oops".to_string()));
    let n = 3;
    assert_eq!(
        guard(|| -> u8 { panic!("formatted {n}") }),
        Err("formatted 3".to_string())
    );
}

proptest! {
    #[test]
    fn tracker_never_exceeds_the_policy(
        max_restarts in 0u32..6,
        within_ms in 1u64..5_000,
        initial_ms in 0u64..200,
        max_ms in 0u64..3_000,
        gaps in proptest::collection::vec(0u64..3_000, 1..80),
    ) {
        let policy = RestartPolicy {
            max_restarts,
            within: Duration::from_millis(within_ms),
            backoff_initial: Duration::from_millis(initial_ms),
            backoff_max: Duration::from_millis(max_ms),
        };
        let mut tracker = RestartTracker::new(policy);
        let t0 = Instant::now();
        let mut now = 0u64;
        let mut restarts: Vec<(u64, Duration)> = Vec::new();
        let in_window = |restarts: &[(u64, Duration)], t: u64| {
            restarts.iter().filter(|&&(s, _)| t - s < within_ms).count()
        };
        for gap in gaps {
            now += gap;
            match tracker.on_failure(t0 + Duration::from_millis(now)) {
                Decision::Restart { after } => {
                    prop_assert!(after <= policy.backoff_max);
                    prop_assert!(after >= policy.backoff_initial.min(policy.backoff_max));
                    restarts.push((now, after));
                }
                // Escalates only when the window is full.
                Decision::Escalate => {
                    prop_assert_eq!(in_window(&restarts, now), max_restarts as usize);
                }
            }
        }
        // Any window of length `within` holds at most `max_restarts` restarts:
        // check the window ending at each restart.
        for i in 0..restarts.len() {
            let (t, _) = restarts[i];
            prop_assert!(in_window(&restarts[..=i], t) <= max_restarts as usize);
        }
        // Within a burst (restarts closer than the window), the backoff never shrinks.
        for pair in restarts.windows(2) {
            if pair[1].0 - pair[0].0 < within_ms {
                prop_assert!(pair[1].1 >= pair[0].1);
            }
        }
    }
}

#[actix_rt::test]
async fn the_bus_knows_whether_anyone_listens() {
    let bus = bus();
    assert!(!bus.is_heard(), "a new bus has no listener");
    let id = bus.on(|_| true, |_| {});
    assert!(bus.is_heard(), "a subscription counts at once");
    bus.off(id);
    eventually("off() to take effect", || !bus.is_heard()).await;

    let got = Arc::new(AtomicUsize::new(0));
    let seen = got.clone();
    bus.once(
        |e| matches!(e, Event::Stopped),
        move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        },
    );
    assert!(bus.is_heard());
    bus.publish(Event::Stopped);
    eventually("the once subscription to fire and go", || {
        got.load(Ordering::SeqCst) == 1 && !bus.is_heard()
    })
    .await;

    bus.on(|_| true, |_| panic!("a broken subscriber"));
    bus.publish(Event::Started);
    eventually("the panicking subscriber to be removed", || !bus.is_heard()).await;

    let mut rx = bus.subscribe();
    assert!(bus.is_heard(), "a broadcast receiver counts");
    bus.publish(Event::Started);
    next_event(&mut rx, |e| matches!(e, Event::Started)).await;
    drop(rx);
    assert!(!bus.is_heard());
}
