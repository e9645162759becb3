//! The JSON of the Python dialect: a small value type, a reader as liberal as Python's
//! `json.loads`, and a writer byte-identical to Python's `json.dumps` defaults.
//!
//! Reading accepts any key order, extra keys, whitespace, raw UTF-8 in strings, `NaN`
//! and `±Infinity` (as `json.loads` does); a repeated key reads as its last value. It
//! refuses raw control characters in strings and trailing bytes (as `json.loads` does),
//! and nesting deeper than a limit (Python would recurse until its stack limit). A lone
//! UTF-16 surrogate escape reads as U+FFFD, as Rust strings cannot hold one.
//!
//! Writing follows `json.dumps(obj)` byte for byte: separators `", "` and `": "`, keys in
//! the object's order, `true`/`false`/`null`, numbers as read, and `ensure_ascii`:
//! `"` and `\` escaped, `\n \r \t \b \f` short escapes, every other byte outside
//! 0x20–0x7E as `\u00xx`, non-ASCII as `\uxxxx` in lowercase hex (surrogate pairs above
//! U+FFFF), `/` as is.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A JSON value. Objects keep their keys in order, so what was read writes back the
/// same; numbers keep their text, so integers of any size round-trip.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its text (`12`, `-1.5e3`, `NaN`, `-Infinity`).
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in order (a key may repeat; [`Object::get`] takes the last).
    Object(Object),
}

/// A JSON object: key/value pairs in their order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object {
    /// The pairs, in order.
    pub entries: Vec<(String, Value)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    /// The value of `key` (the last one if the key repeats, as Python reads it).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Appends `key: value` (after the keys already there, as a Python dict does).
    pub fn push(&mut self, key: impl Into<String>, value: Value) {
        self.entries.push((key.into(), value));
    }

    /// The string value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl Value {
    /// A number value from an unsigned integer.
    pub fn from_u64(n: u64) -> Value {
        let mut text = String::new();
        let _ = fmt::write(&mut text, format_args!("{n}"));
        Value::Number(text)
    }

    /// This value as a non-negative integer that fits a `u64`: plain decimal digits
    /// only (no sign, fraction or exponent).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().ok()
            }
            _ => None,
        }
    }

    /// The JSON kind's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Why bytes are not JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where reading stopped.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// Reads one JSON value filling all of `input` (whitespace around it allowed), nested
/// at most `max_depth` arrays/objects deep.
pub fn parse(input: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let mut reader = Reader {
        input,
        pos: 0,
        max_depth,
    };
    reader.skip_ws();
    let value = reader.value(0)?;
    reader.skip_ws();
    if reader.pos != input.len() {
        return Err(reader.err("extra data after the value"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        if self.input[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err("expected a value, found the end")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b'N') if self.eat(b"NaN") => Ok(Value::Number("NaN".into())),
            Some(b'I') if self.eat(b"Infinity") => Ok(Value::Number("Infinity".into())),
            Some(b'-') if self.eat(b"-Infinity") => Ok(Value::Number("-Infinity".into())),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.max_depth {
            return Err(self.err("nested too deep"));
        }
        self.pos += 1; // '{'
        let mut object = Object::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(object));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key string"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            object.entries.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(object));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > self.max_depth {
            return Err(self.err("nested too deep"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            let dot = self.pos;
            self.pos += 1;
            if self.digits() == 0 {
                // Python reads `1.` as 1 followed by extra data.
                self.pos = dot;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            let e = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                self.pos = e;
            }
        }
        let text = core::str::from_utf8(&self.input[start..self.pos])
            .map_err(|_| self.err("number is not ASCII"))?;
        Ok(Value::Number(text.into()))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(hex) = self.input.get(self.pos..self.pos + 4) else {
            return Err(self.err("truncated \\u escape"));
        };
        let mut code = 0u32;
        for &b in hex {
            let digit = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.err("bad \\u escape"))?;
            code = code * 16 + digit;
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run of plain bytes up to the next quote, backslash or control.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let run =
                core::str::from_utf8(&self.input[start..self.pos]).map_err(|e| JsonError {
                    offset: start + e.valid_up_to(),
                    reason: "string is not UTF-8",
                })?;
            out.push_str(run);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(escape) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&first)
                                && self.input[self.pos..].starts_with(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                                } else {
                                    // A lone high surrogate; the next escape stands alone.
                                    self.pos = save;
                                    first
                                }
                            } else {
                                first
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.err("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }
}

/// Appends `value` as Python's `json.dumps(value)` writes it.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(text) => out.extend_from_slice(text.as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(object, out),
    }
}

/// Appends `object` as Python's `json.dumps` writes a dict.
pub fn write_object(object: &Object, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in object.entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_str(key, out);
        out.extend_from_slice(b": ");
        write(value, out);
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string with Python's `ensure_ascii` escapes.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let unit = |out: &mut Vec<u8>, u: u16| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((u >> shift) & 0xF)]);
        }
    };
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    unit(out, *u);
                }
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn dumps(v: &Value) -> String {
        let mut out = Vec::new();
        write(v, &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn writes_like_python_json_dumps() {
        // Expected texts from CPython 3.11: json.dumps({...}).
        let mut o = Object::new();
        o.push("route", Value::String("a\"b\\c/d\n\u{7f}\u{1}é😀".into()));
        o.push("is_response", Value::Bool(true));
        o.push("n", Value::Array(vec![Value::from_u64(1), Value::Null]));
        assert_eq!(
            dumps(&Value::Object(o)),
            r#"{"route": "a\"b\\c/d\n\u007f\u0001\u00e9\ud83d\ude00", "is_response": true, "n": [1, null]}"#
        );
    }

    #[test]
    fn reads_liberally_and_round_trips() {
        let text = br#" {"a" :1,"b":[true,false,null,-1.5e3,"x\u00e9\ud83d\ude00"],"c":{},"a":2} "#;
        let v = parse(text, 8).expect("json");
        let Value::Object(o) = &v else {
            panic!("object")
        };
        assert_eq!(o.get("a").and_then(Value::as_u64), Some(2));
        assert_eq!(
            dumps(&v),
            r#"{"a": 1, "b": [true, false, null, -1.5e3, "x\u00e9\ud83d\ude00"], "c": {}, "a": 2}"#
        );
        assert_eq!(parse(b"NaN", 1), Ok(Value::Number("NaN".into())));
        assert_eq!(parse("\"é\"".as_bytes(), 1), Ok(Value::String("é".into())));
    }

    #[test]
    fn refuses_what_python_refuses() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\" 1}",
            b"[1,]",
            b"\"a\nb\"",
            b"\"\\x\"",
            b"01x",
            b"{} x",
            b"\"\xff\"",
            b"tru",
        ] {
            assert!(parse(bad, 8).is_err(), "{bad:?}");
        }
        assert!(parse(b"[[[1]]]", 2).is_err());
        assert!(parse(b"[[[1]]]", 3).is_ok());
    }
}
