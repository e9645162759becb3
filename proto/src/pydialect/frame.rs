//! The frames of the Python dialect and their codec.
//!
//! ```text
//! int32 LE ext_len | ext (UTF-8 JSON object with "type") | int32 LE meta_len | meta
//! ```
//!
//! [`PyDecoder`] delimits frames on a byte stream and decodes them; [`encode`] writes a
//! frame exactly as Python Netcore 0.1.3 does (ARCHITECTURE.md, "Python Netcore 0.1.3
//! dialect").
//!
//! # Errors and sync
//!
//! A negative length or one above the limits is **fatal**: the format has no resync
//! point, so the decoder stays failed and returns [`PyError::StreamLost`] from then on
//! (the link must close). It checks both lengths before waiting for the bytes they
//! announce, so it never holds more than `8 + max_ext_len + max_meta_len` bytes of a
//! frame. Anything wrong *inside* a well-delimited frame (ext or head meta not JSON, not
//! an object, missing or mistyped fields, an unknown `type`) consumes that frame and
//! returns a typed error; the stream stays in sync and the next call decodes the next
//! frame.

use super::json::{self, Object, Value};
use super::{PyError, PyLimits};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Python's own sender writes ext this long at most and its receiver reads no longer
/// (`LsoProtocol.function_recv` keeps only the last 2048-byte piece).
pub const PY_MAX_EXT_LEN: usize = 2048;
/// Body bytes per data frame, as Python chunks (`Pipe.create_mission`, `buff=4096`).
pub const PY_CHUNK_LEN: usize = 4096;
/// Longest head meta a Python receiver reads intact (above 4096 it over-reads unless
/// the length is a multiple of 2048).
pub const PY_MAX_HEAD_META_LEN: usize = 4096;

/// A mission id: names one message's frames, chosen by its sender (Python: 6 random
/// `[A-Za-z0-9]`); one namespace per direction.
pub type MissionId = String;

/// One frame of the Python dialect.
#[derive(Clone, Debug, PartialEq)]
pub enum PyFrame {
    /// `{"type": "mission"}`: a message starts; `length` body bytes follow in data frames.
    Head {
        /// The mission.
        mission: MissionId,
        /// The body's length in bytes.
        length: u64,
        /// The message's info (`route`, `message_id`, `is_response`, headers), in order.
        info: Object,
    },
    /// `{"type": "data", "extension": E}`: the next chunk of mission E's body.
    Data {
        /// The mission.
        mission: MissionId,
        /// The chunk.
        chunk: Bytes,
    },
    /// `{"type": "cancel", "extension": E}`: mission E ends without its remaining data.
    Cancel {
        /// The mission.
        mission: MissionId,
    },
}

impl PyFrame {
    /// The mission the frame belongs to.
    pub fn mission(&self) -> &str {
        match self {
            PyFrame::Head { mission, .. }
            | PyFrame::Data { mission, .. }
            | PyFrame::Cancel { mission } => mission,
        }
    }
}

/// The ext JSON of a frame, exactly as Python writes it.
fn ext_bytes(frame: &PyFrame) -> Vec<u8> {
    let mut ext = Object::new();
    match frame {
        PyFrame::Head { .. } => ext.push("type", Value::String("mission".into())),
        PyFrame::Data { mission, .. } => {
            ext.push("type", Value::String("data".into()));
            ext.push("extension", Value::String(mission.clone()));
        }
        PyFrame::Cancel { mission } => {
            ext.push("type", Value::String("cancel".into()));
            ext.push("extension", Value::String(mission.clone()));
        }
    }
    let mut out = Vec::new();
    json::write_object(&ext, &mut out);
    out
}

/// The meta of a head or cancel frame, exactly as Python writes it.
fn meta_json(frame: &PyFrame) -> Option<Vec<u8>> {
    let mut meta = Object::new();
    match frame {
        PyFrame::Head {
            mission,
            length,
            info,
        } => {
            meta.push("extension", Value::String(mission.clone()));
            meta.push("length", Value::from_u64(*length));
            meta.push("info", Value::Object(info.clone()));
        }
        PyFrame::Cancel { mission } => meta.push("extension", Value::String(mission.clone())),
        PyFrame::Data { .. } => return None,
    }
    let mut out = Vec::new();
    json::write_object(&meta, &mut out);
    Some(out)
}

/// Appends `frame` to `out` as Python Netcore 0.1.3 writes it, byte for byte.
///
/// Refuses ([`PyError::Unsendable`]) what a Python receiver could not read: an ext
/// above [`PY_MAX_EXT_LEN`], a head meta above [`PY_MAX_HEAD_META_LEN`], a data chunk
/// above [`PY_CHUNK_LEN`] whose length is not a multiple of 2048. Nothing is appended
/// then.
pub fn encode(frame: &PyFrame, out: &mut BytesMut) -> Result<(), PyError> {
    let ext = ext_bytes(frame);
    if ext.len() > PY_MAX_EXT_LEN {
        return Err(PyError::Unsendable {
            what: "ext",
            len: ext.len(),
            max: PY_MAX_EXT_LEN,
        });
    }
    let meta_owned = meta_json(frame);
    let meta: &[u8] = match (frame, &meta_owned) {
        (PyFrame::Data { chunk, .. }, _) => chunk,
        (_, Some(meta)) => meta,
        (_, None) => &[],
    };
    if let PyFrame::Head { .. } = frame {
        if meta.len() > PY_MAX_HEAD_META_LEN {
            return Err(PyError::Unsendable {
                what: "head meta",
                len: meta.len(),
                max: PY_MAX_HEAD_META_LEN,
            });
        }
    }
    if meta.len() > PY_CHUNK_LEN && meta.len() % 2048 != 0 {
        return Err(PyError::Unsendable {
            what: "data chunk",
            len: meta.len(),
            max: PY_CHUNK_LEN,
        });
    }
    let (Ok(ext_len), Ok(meta_len)) = (i32::try_from(ext.len()), i32::try_from(meta.len())) else {
        return Err(PyError::Unsendable {
            what: "meta",
            len: meta.len(),
            max: i32::MAX as usize,
        });
    };
    out.reserve(8 + ext.len() + meta.len());
    out.put_i32_le(ext_len);
    out.put_slice(&ext);
    out.put_i32_le(meta_len);
    out.put_slice(meta);
    Ok(())
}

/// Wire bytes of `frame` ([`encode`] into a fresh buffer).
pub fn to_bytes(frame: &PyFrame) -> Result<Bytes, PyError> {
    let mut out = BytesMut::new();
    encode(frame, &mut out)?;
    Ok(out.freeze())
}

/// Counters of a [`PyDecoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyDecoderStats {
    /// Frames decoded.
    pub frames: u64,
    /// Well-delimited frames dropped for what they held (bad JSON, fields, type).
    pub frames_dropped: u64,
    /// Bytes consumed from the stream.
    pub bytes: u64,
}

/// Splits a byte stream into [`PyFrame`]s under [`PyLimits`] (see the
/// [module docs](self) for errors and sync).
#[derive(Clone, Debug)]
pub struct PyDecoder {
    limits: PyLimits,
    failed: Option<PyError>,
    stats: PyDecoderStats,
}

impl PyDecoder {
    /// A decoder under `limits`.
    pub fn new(limits: PyLimits) -> PyDecoder {
        PyDecoder {
            limits,
            failed: None,
            stats: PyDecoderStats::default(),
        }
    }

    /// Whether a fatal error lost the stream.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The fatal error that lost the stream, if any.
    pub fn failure(&self) -> Option<&PyError> {
        self.failed.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> PyDecoderStats {
        self.stats
    }

    /// Bytes `src` must hold before the next call can make progress (at least 1),
    /// bounded by the limits: a reader may read this much without over-buffering.
    pub fn needed(&self, src: &[u8]) -> usize {
        let Some(ext_len) = read_len(src, 0) else {
            return 4usize.saturating_sub(src.len()).max(1);
        };
        let ext_len = usize::try_from(ext_len)
            .unwrap_or(0)
            .min(self.limits.max_ext_len);
        let Some(meta_len) = read_len(src, 4 + ext_len) else {
            return (8 + ext_len).saturating_sub(src.len()).max(1);
        };
        let meta_len = usize::try_from(meta_len)
            .unwrap_or(0)
            .min(self.limits.max_meta_len);
        (8 + ext_len + meta_len).saturating_sub(src.len()).max(1)
    }

    /// Decodes the next frame from the front of `src`: `Ok(None)` when `src` holds no
    /// whole frame yet (nothing consumed), `Ok(Some(frame))` with its bytes consumed,
    /// or an error: fatal ([`PyError::is_fatal`], the decoder stays failed and discards
    /// its input) or about one frame (consumed; decoding goes on at the next).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PyFrame>, PyError> {
        if self.failed.is_some() {
            src.clear();
            return Err(PyError::StreamLost);
        }
        let Some(ext_len) = read_len(src, 0) else {
            return Ok(None);
        };
        let ext_len = self.check_len("ext", ext_len, self.limits.max_ext_len, src)?;
        let Some(meta_len) = read_len(src, 4 + ext_len) else {
            return Ok(None);
        };
        let meta_len = self.check_len("meta", meta_len, self.limits.max_meta_len, src)?;
        let total = 8 + ext_len + meta_len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        self.stats.bytes += total as u64;
        frame.advance(4);
        let ext = frame.split_to(ext_len);
        frame.advance(4);
        let meta = frame.freeze();
        match parse_frame(&ext, meta, &self.limits) {
            Ok(frame) => {
                self.stats.frames += 1;
                Ok(Some(frame))
            }
            Err(e) => {
                self.stats.frames_dropped += 1;
                Err(e)
            }
        }
    }

    fn check_len(
        &mut self,
        field: &'static str,
        len: i32,
        max: usize,
        src: &mut BytesMut,
    ) -> Result<usize, PyError> {
        let error = match usize::try_from(len) {
            Ok(len) if len <= max => return Ok(len),
            Ok(len) => PyError::LengthOverLimit { field, len, max },
            Err(_) => PyError::NegativeLength { field, len },
        };
        src.clear();
        self.failed = Some(error.clone());
        Err(error)
    }
}

/// The int32 LE at `at`, if `src` holds it.
fn read_len(src: &[u8], at: usize) -> Option<i32> {
    let bytes = src.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads `bytes` as a JSON object.
fn object(bytes: &[u8], field: &'static str, limits: &PyLimits) -> Result<Object, PyError> {
    match json::parse(bytes, limits.max_json_depth) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(PyError::BadField {
            field,
            reason: other.kind(),
        }),
        Err(error) => Err(PyError::InvalidJson { field, error }),
    }
}

/// The `"extension"` string of `object`.
fn extension(object: &Object, field: &'static str) -> Result<MissionId, PyError> {
    match object.get("extension") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(PyError::BadField {
            field,
            reason: other.kind(),
        }),
        None => Err(PyError::MissingField { field }),
    }
}

/// A frame from its ext and meta bytes.
fn parse_frame(ext: &[u8], meta: Bytes, limits: &PyLimits) -> Result<PyFrame, PyError> {
    let ext = object(ext, "ext", limits)?;
    let kind = match ext.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(PyError::BadField {
                field: "ext.type",
                reason: other.kind(),
            })
        }
        None => return Err(PyError::MissingField { field: "ext.type" }),
    };
    match kind {
        "mission" => {
            let head = object(&meta, "head meta", limits)?;
            let mission = extension(&head, "head meta.extension")?;
            let length = match head.get("length") {
                Some(value) => value.as_u64().ok_or(PyError::BadField {
                    field: "head meta.length",
                    reason: "not a non-negative integer",
                })?,
                None => {
                    return Err(PyError::MissingField {
                        field: "head meta.length",
                    })
                }
            };
            let info = match head.get("info") {
                Some(Value::Object(info)) => info.clone(),
                Some(other) => {
                    return Err(PyError::BadField {
                        field: "head meta.info",
                        reason: other.kind(),
                    })
                }
                None => {
                    return Err(PyError::MissingField {
                        field: "head meta.info",
                    })
                }
            };
            Ok(PyFrame::Head {
                mission,
                length,
                info,
            })
        }
        "data" => Ok(PyFrame::Data {
            mission: extension(&ext, "ext.extension")?,
            chunk: meta,
        }),
        // Python reads the id from the ext and ignores the meta.
        "cancel" => Ok(PyFrame::Cancel {
            mission: extension(&ext, "ext.extension")?,
        }),
        other => {
            let mut kind = String::new();
            // At most 32 characters of the peer's text in the error.
            kind.extend(other.chars().take(32));
            Err(PyError::UnknownFrameType(kind))
        }
    }
}
