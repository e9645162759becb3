//! Stand-ins for an actor's neighbours in unit tests: [`stub`] starts a tiny
//! actor that records every message of one type and answers it with a closure;
//! the test passes its `Recipient` where the real neighbour's would go.

use actix::prelude::*;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How a [`stub`] answers a message.
type Answer<M> = Box<dyn FnMut(&M) -> <M as Message>::Result>;

/// Records messages of type `M` and answers each with `answer`.
struct Stub<M: Message> {
    seen: Seen<M>,
    answer: Answer<M>,
}

impl<M: Message + 'static> Actor for Stub<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Stub<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Result = MessageResult<M>;

    fn handle(&mut self, msg: M, _: &mut Self::Context) -> MessageResult<M> {
        let answer = (self.answer)(&msg);
        self.seen.lock().push(msg);
        MessageResult(answer)
    }
}

/// The messages a [`stub`] received, in order.
pub(crate) struct Seen<M>(Arc<Mutex<Vec<M>>>);

impl<M> Clone for Seen<M> {
    fn clone(&self) -> Self {
        Seen(self.0.clone())
    }
}

impl<M> Seen<M> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<M>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many arrived so far.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Takes what arrived so far.
    pub(crate) fn take(&self) -> Vec<M> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits (up to 5 s) until at least `n` arrived, then takes them all.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<M> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 5 s for {n} messages, got {}",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.take()
    }
}

/// Starts a stand-in for whoever handles `M`: it records each message and
/// answers it with `answer`.
pub(crate) fn stub<M>(answer: impl FnMut(&M) -> M::Result + 'static) -> (Recipient<M>, Seen<M>)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let seen = Seen(Arc::new(Mutex::new(Vec::new())));
    let actor = Stub {
        seen: seen.clone(),
        answer: Box::new(answer),
    };
    (actor.start().recipient(), seen)
}

/// A stand-in for a neighbour whose messages of type `M` the test ignores
/// (answered with the result's default).
pub(crate) fn ignore<M>() -> Recipient<M>
where
    M: Message + Send + 'static,
    M::Result: Send + Default,
{
    stub(|_: &M| M::Result::default()).0
}
