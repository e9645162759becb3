//! Small vocabulary types shared by every layer: stream ids, priorities, message kinds.

use core::fmt;

/// Identifies one message exchange on a link: a request and its response share it.
///
/// Ids are allocated by the side that opens the exchange, odd by one side and even
/// by the other ([`Parity`], settled by the HELLO exchange), so both sides open
/// streams without coordination and never collide. Id 0 is never used by a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

impl StreamId {
    /// Which side's namespace this id belongs to.
    pub const fn parity(self) -> Parity {
        if self.0 & 1 == 1 {
            Parity::Odd
        } else {
            Parity::Even
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The half of the stream-id space a side allocates from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parity {
    /// Allocates 1, 3, 5, …
    Odd,
    /// Allocates 2, 4, 6, …
    Even,
}

impl Parity {
    /// The other side's parity.
    pub const fn opposite(self) -> Parity {
        match self {
            Parity::Odd => Parity::Even,
            Parity::Even => Parity::Odd,
        }
    }

    /// The first id this side allocates.
    pub const fn first_id(self) -> StreamId {
        match self {
            Parity::Odd => StreamId(1),
            Parity::Even => StreamId(2),
        }
    }
}

/// Scheduling class of a message. Lower value = more urgent.
///
/// The scheduler shares the link between classes by weight (so none starves) and
/// lets a newly queued urgent message out at the next chunk boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Commands, alarms, heartbeats of the application: small and late-sensitive.
    Urgent = 0,
    /// Interactive calls.
    High = 1,
    /// The default class.
    #[default]
    Normal = 2,
    /// Bulk transfers: files, logs, firmware images.
    Bulk = 3,
}

impl Priority {
    /// Every class, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::High,
        Priority::Normal,
        Priority::Bulk,
    ];

    /// Number of classes.
    pub const COUNT: usize = 4;

    /// The 2-bit wire value.
    pub const fn to_bits(self) -> u8 {
        self as u8
    }

    /// From the 2-bit wire value (higher bits ignored).
    pub const fn from_bits(bits: u8) -> Priority {
        match bits & 0b11 {
            0 => Priority::Urgent,
            1 => Priority::High,
            2 => Priority::Normal,
            _ => Priority::Bulk,
        }
    }

    /// Index into per-class arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What a message is, as carried by its OPEN frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Fire and forget: no response.
    OneWay = 0,
    /// Expects a response on the same stream id.
    Request = 1,
    /// The successful answer to the request of the same stream id.
    Response = 2,
    /// A failed answer: carries an [`ErrorCode`](crate::ErrorCode), the body says why.
    ErrorResponse = 3,
}

impl MessageKind {
    /// The 2-bit wire value.
    pub const fn to_bits(self) -> u8 {
        self as u8
    }

    /// From the 2-bit wire value (higher bits ignored).
    pub const fn from_bits(bits: u8) -> MessageKind {
        match bits & 0b11 {
            0 => MessageKind::OneWay,
            1 => MessageKind::Request,
            2 => MessageKind::Response,
            _ => MessageKind::ErrorResponse,
        }
    }

    /// True for the two answer kinds, which travel on the requester's stream id.
    pub const fn is_answer(self) -> bool {
        matches!(self, MessageKind::Response | MessageKind::ErrorResponse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_bits(p.to_bits()), p);
        }
        for k in [
            MessageKind::OneWay,
            MessageKind::Request,
            MessageKind::Response,
            MessageKind::ErrorResponse,
        ] {
            assert_eq!(MessageKind::from_bits(k.to_bits()), k);
        }
        assert_eq!(StreamId(7).parity(), Parity::Odd);
        assert_eq!(Parity::Odd.opposite().first_id(), StreamId(2));
    }
}
