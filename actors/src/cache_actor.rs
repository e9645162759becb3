//! [`CacheActor`]: a key/value cache of bytes (moka), with an optional time to
//! live per entry; [`Cache`] is its cloneable handle.
//!
//! - Capacity: at most `max_entries` entries. Eviction is moka's (TinyLFU
//!   admission, LRU eviction) and runs in moka's housekeeping, so the count may
//!   exceed the limit briefly, and a new entry that is unlikely to be read again
//!   may be rejected instead of evicting a popular one.
//!   [`Cache::entry_count`] runs the housekeeping first, so it is exact.
//! - TTL: `set(key, value, Some(ttl))` expires the entry `ttl` after the set;
//!   `None` keeps it until evicted or deleted. A new `set` replaces the TTL too.
//!   An expired entry is never returned, even before housekeeping removes it.
//! - Supervised: a panic in a handler restarts the actor in place (see
//!   [`supervision`](crate::supervision)). The moka cache is a shared handle
//!   that lives outside the restarted state: the contents survive a restart,
//!   only the operation being handled is lost (its sender gets
//!   [`ServiceError::Restarted`]).

use crate::event_bus::EventBus;
#[cfg(feature = "test-util")]
use crate::supervision::InjectPanic;
use crate::supervision::{run_supervised, RestartPolicy, Restartable, ServiceError, Supervision};
use actix::prelude::*;
use bytes::Bytes;
use moka::Expiry;
use std::fmt;
use std::time::{Duration, Instant};

/// A cached value with its time to live (what the moka cache stores: moka's
/// per-entry expiry reads the TTL from the value).
#[derive(Clone, Debug)]
struct Stored {
    value: Bytes,
    ttl: Option<Duration>,
}

/// Expires each entry after its own TTL, counted from its last `set`.
struct PerEntryTtl;

impl Expiry<String, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, stored: &Stored, _: Instant) -> Option<Duration> {
        stored.ttl
    }

    fn expire_after_update(
        &self,
        _: &String,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        stored.ttl
    }
}

/// Settings of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Most entries kept (see the module docs for how moka enforces it).
    pub max_entries: u64,
    /// Restart policy of the cache actor.
    pub policy: RestartPolicy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            policy: RestartPolicy::default(),
        }
    }
}

/// The cache actor (use it through [`Cache`]).
pub struct CacheActor {
    /// The contents: a shared handle, kept across restarts.
    cache: moka::sync::Cache<String, Stored>,
    supervision: Supervision,
}

impl Actor for CacheActor {
    type Context = Context<Self>;
}

impl Restartable for CacheActor {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.supervision
    }

    fn rebuild(&mut self, _: &mut Context<Self>) {
        // The contents outlive restarts and moka keeps itself consistent (its
        // operations are atomic); settle its pending housekeeping.
        self.cache.run_pending_tasks();
    }
}

/// Reads an entry.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<Bytes>, ServiceError>")]
pub(crate) struct Get(pub String);

impl Handler<Get> for CacheActor {
    type Result = Result<Option<Bytes>, ServiceError>;

    fn handle(&mut self, msg: Get, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| {
            act.cache.get(&msg.0).map(|stored| stored.value)
        })
    }
}

/// Writes an entry, with an optional time to live.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ServiceError>")]
pub(crate) struct Set {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Expire the entry this long after the write (`None`: never).
    pub ttl: Option<Duration>,
}

impl Handler<Set> for CacheActor {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, msg: Set, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| {
            let Set { key, value, ttl } = msg;
            act.cache.insert(key, Stored { value, ttl });
        })
    }
}

/// Removes an entry; answers its value, if it had one.
#[derive(Message, Debug)]
#[rtype(result = "Result<Option<Bytes>, ServiceError>")]
pub(crate) struct Delete(pub String);

impl Handler<Delete> for CacheActor {
    type Result = Result<Option<Bytes>, ServiceError>;

    fn handle(&mut self, msg: Delete, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| {
            act.cache.remove(&msg.0).map(|stored| stored.value)
        })
    }
}

/// Removes every entry.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ServiceError>")]
pub(crate) struct Clear;

impl Handler<Clear> for CacheActor {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, _: Clear, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| {
            act.cache.invalidate_all();
            act.cache.run_pending_tasks();
        })
    }
}

/// Counts the entries (after moka's housekeeping, so the count is exact).
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, ServiceError>")]
pub(crate) struct EntryCount;

impl Handler<EntryCount> for CacheActor {
    type Result = Result<u64, ServiceError>;

    fn handle(&mut self, _: EntryCount, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |act, _| {
            act.cache.run_pending_tasks();
            act.cache.entry_count()
        })
    }
}

#[cfg(feature = "test-util")]
impl Handler<InjectPanic> for CacheActor {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, msg: InjectPanic, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |_, _| panic!("{}", msg.0))
    }
}

/// Handle of the cache actor: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Cache {
    addr: Addr<CacheActor>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("connected", &self.addr.connected())
            .finish()
    }
}

const NAME: &str = "cache";

impl Cache {
    /// Starts a cache actor on the current arbiter, reporting restarts on `bus`.
    pub fn start(config: CacheConfig, bus: Option<EventBus>) -> Cache {
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(PerEntryTtl)
            .build();
        let addr = CacheActor {
            cache,
            supervision: Supervision::new(NAME, config.policy, bus.map(|bus| bus.reporter())),
        }
        .start();
        Cache { addr }
    }

    /// The cache actor's address (unchanged by restarts). Test tooling
    /// (feature `test-util`): tests send it `InjectPanic`.
    #[cfg(feature = "test-util")]
    pub fn addr(&self) -> &Addr<CacheActor> {
        &self.addr
    }

    async fn call<M>(&self, msg: M) -> Result<M::Result, ServiceError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        CacheActor: Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|e| ServiceError::stopped(NAME, e))
    }

    /// The value of `key`, if present and not expired.
    pub async fn get(&self, key: impl Into<String>) -> Result<Option<Bytes>, ServiceError> {
        self.call(Get(key.into())).await?
    }

    /// Sets `key` to `value`, expiring after `ttl` if given.
    pub async fn set(
        &self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), ServiceError> {
        self.call(Set {
            key: key.into(),
            value: value.into(),
            ttl,
        })
        .await?
    }

    /// Removes `key`; returns its value if it had one.
    pub async fn delete(&self, key: impl Into<String>) -> Result<Option<Bytes>, ServiceError> {
        self.call(Delete(key.into())).await?
    }

    /// Removes every entry.
    pub async fn clear(&self) -> Result<(), ServiceError> {
        self.call(Clear).await?
    }

    /// How many entries the cache holds.
    pub async fn entry_count(&self) -> Result<u64, ServiceError> {
        self.call(EntryCount).await?
    }
}
