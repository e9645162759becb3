//! [`IntoReply`]: whatever a handler returns becomes an answer.

use super::extract::{Json, MsgPack};
use bytes::Bytes;
use netcore_actors::{HandlerError, HandlerResult, Payload, Reply};
use serde::Serialize;
use std::path::PathBuf;

/// Converts a handler's return value into an answer or an error response.
pub trait IntoReply {
    /// The answer.
    fn into_reply(self) -> HandlerResult;
}

impl IntoReply for Reply {
    fn into_reply(self) -> HandlerResult {
        Ok(self)
    }
}

impl IntoReply for () {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::empty())
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(self))
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(self))
    }
}

impl IntoReply for String {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(self))
    }
}

impl IntoReply for &'static str {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(self))
    }
}

impl IntoReply for Payload {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(self))
    }
}

/// A file to stream back as the answer, read from disk as the link takes it.
#[derive(Clone, Debug)]
pub struct File(pub PathBuf);

impl IntoReply for File {
    fn into_reply(self) -> HandlerResult {
        Ok(Reply::new(Payload::File(self.0)))
    }
}

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> HandlerResult {
        serde_json::to_vec(&self.0)
            .map(Reply::new)
            .map_err(|e| HandlerError::failed(format!("encoding the JSON answer: {e}")))
    }
}

impl<T: Serialize> IntoReply for MsgPack<T> {
    fn into_reply(self) -> HandlerResult {
        rmp_serde::to_vec_named(&self.0)
            .map(Reply::new)
            .map_err(|e| HandlerError::failed(format!("encoding the MessagePack answer: {e}")))
    }
}

impl IntoReply for HandlerError {
    fn into_reply(self) -> HandlerResult {
        Err(self)
    }
}

/// `Result<T, HandlerError>`: the error becomes an error response. (Only
/// `HandlerError` as the error type, so `Ok(..)` in a closure needs no annotation;
/// convert other errors with `?` and a `From` impl, or `map_err`.)
impl<T: IntoReply> IntoReply for Result<T, HandlerError> {
    fn into_reply(self) -> HandlerResult {
        self.and_then(IntoReply::into_reply)
    }
}
