//! [`IntoPayload`]: what a caller may send as a body (a call's request or a
//! one-way message): anything that converts into a [`Payload`] (bytes, text, a
//! file, a channel), and [`Json`] or [`MsgPack`] values, encoded on the way.

use super::extract::{Json, MsgPack};
use netcore_actors::{CallError, Payload};
use serde::Serialize;

/// A body a call or a one-way message can carry. Encoding may fail (a map with
/// non-string keys as JSON, say): the call then fails with
/// [`CallError::Codec`] before anything is sent.
pub trait IntoPayload {
    /// The body, encoded.
    fn into_payload(self) -> Result<Payload, CallError>;
}

impl<T: Into<Payload>> IntoPayload for T {
    fn into_payload(self) -> Result<Payload, CallError> {
        Ok(self.into())
    }
}

impl<T: Serialize> IntoPayload for Json<T> {
    fn into_payload(self) -> Result<Payload, CallError> {
        serde_json::to_vec(&self.0)
            .map(Payload::from)
            .map_err(|e| CallError::encoding("JSON", e))
    }
}

impl<T: Serialize> IntoPayload for MsgPack<T> {
    fn into_payload(self) -> Result<Payload, CallError> {
        rmp_serde::to_vec_named(&self.0)
            .map(Payload::from)
            .map_err(|e| CallError::encoding("MessagePack", e))
    }
}
