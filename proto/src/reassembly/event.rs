//! What reassembly hands the runtime: message heads and events.

use crate::error::{ErrorCode, ProtocolError};
use crate::frame::{Header, Open};
use crate::ids::{MessageKind, Priority, StreamId};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

/// Everything about an inbound message except its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageHead {
    /// The exchange the message belongs to.
    pub stream: StreamId,
    /// Request, response, one-way or error response.
    pub kind: MessageKind,
    /// Scheduling class the sender chose.
    pub priority: Priority,
    /// Where the message goes; empty for answers.
    pub route: String,
    /// Why the request failed, for error responses.
    pub code: Option<ErrorCode>,
    /// The body length the sender announced, if it did.
    pub total_len: Option<u64>,
    /// Application headers.
    pub headers: Vec<Header>,
}

impl MessageHead {
    /// Splits an OPEN into the head, the first body bytes, and its FIN flag.
    pub fn from_open(open: Open) -> (MessageHead, Bytes, bool) {
        let Open {
            stream,
            kind,
            priority,
            route,
            code,
            total_len,
            headers,
            payload,
            fin,
        } = open;
        let head = MessageHead {
            stream,
            kind,
            priority,
            route,
            code,
            total_len,
            headers,
        };
        (head, payload, fin)
    }
}

/// What reassembly tells the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundEvent {
    /// A complete message, body in memory.
    Message {
        /// Its head.
        head: MessageHead,
        /// The whole body (for a single-frame message, the OPEN's payload itself).
        body: Bytes,
    },
    /// A message is going to a sink: route it now; [`InboundEvent::StreamFinished`]
    /// (or `Refused` / `Canceled`) follows.
    Streaming {
        /// Its head.
        head: MessageHead,
    },
    /// A streamed message is complete: its sink's `finish` succeeded.
    StreamFinished {
        /// The stream.
        stream: StreamId,
        /// Body bytes written.
        len: u64,
    },
    /// This side refused or aborted the stream (a limit, a sink failure): the link
    /// must send CANCEL(`code`) to the peer.
    Refused {
        /// The stream.
        stream: StreamId,
        /// The code for the CANCEL frame.
        code: ErrorCode,
        /// Why, with the limit and value.
        error: ProtocolError,
    },
    /// The peer canceled a stream being reassembled; its sink (if any) was aborted.
    Canceled {
        /// The stream.
        stream: StreamId,
        /// The peer's code.
        code: ErrorCode,
    },
}
