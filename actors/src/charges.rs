//! [`Charges`]: what each queued outbound message costs a bounded pool, given back
//! when its last frame was handed to the writer or it was dropped.
//!
//! The scheduler actor keeps one per bounded pool: the link's one-way queue
//! ([`crate::one_way_queue`]) and the link's share of the endpoint's work budget
//! for answers ([`crate::work_budget`]). Each pool says which messages it charges
//! and how much ([`Pool::charge_of`]); the scheduler actor notes every command it
//! applies ([`Charges::note`]) and releases a stream's charge on `Sent`.

use netcore_proto::frame::Open;
use netcore_proto::link::Command;
use netcore_proto::scheduler::Body;
use netcore_proto::StreamId;
use std::collections::HashMap;

/// A bound that queued messages are charged to.
pub(crate) trait Pool {
    /// The charge of a message queued with this head and body (`None`: not
    /// charged); a pool charged when the message is queued takes it here.
    fn charge_of(&self, open: &Open, body: &Body) -> Option<u64>;
    /// Gives `charge` back.
    fn refund(&self, charge: u64);
}

/// The charge of every queued message a pool charges, by stream.
#[derive(Debug)]
pub(crate) struct Charges<P: Pool> {
    pool: P,
    by_stream: HashMap<StreamId, u64>,
}

impl<P: Pool> Charges<P> {
    pub(crate) fn new(pool: P) -> Charges<P> {
        Charges {
            pool,
            by_stream: HashMap::new(),
        }
    }

    /// Notes the charge of a message `command` queues (returning its stream, for
    /// the caller to check that the transmitter took it), and gives back the
    /// charges of what it drops.
    pub(crate) fn note(&mut self, command: &Command) -> Option<StreamId> {
        match command {
            Command::Enqueue { open, body } => {
                let charge = self.pool.charge_of(open, body)?;
                if let Some(old) = self.by_stream.insert(open.stream, charge) {
                    self.pool.refund(old);
                }
                return Some(open.stream);
            }
            Command::Cancel { stream, .. } => self.release(*stream),
            Command::Reset => self.release_all(),
            _ => {}
        }
        None
    }

    /// The message on `stream` left (or was dropped): its charge goes back.
    pub(crate) fn release(&mut self, stream: StreamId) {
        if self.by_stream.is_empty() {
            return;
        }
        if let Some(charge) = self.by_stream.remove(&stream) {
            self.pool.refund(charge);
        }
    }

    /// Every charge goes back (the queue was emptied).
    pub(crate) fn release_all(&mut self) {
        for (_, charge) in self.by_stream.drain() {
            self.pool.refund(charge);
        }
    }
}
