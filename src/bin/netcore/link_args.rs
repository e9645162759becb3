//! The link options every command takes the same way (`--serial`, `--tcp`,
//! `--listen`, `--unix`, serial settings, keys), and turning them into links of
//! an endpoint: a link opened ([`Side::Open`], a `LinkSpec` the library parses
//! and opens, reopening serial ports that come and go), or a listener whose
//! accepted connections become links ([`Side::Listen`]).

use crate::output::CliError;
use clap::Args;
use netcore::actors::transport::{Dialect, LinkSpec};
use netcore::proto::secure::{KeyId, Psk, SecureKeys};
use netcore::{Endpoint, EndpointBuilder, Link, ServeHandle};
use std::path::{Path, PathBuf};

/// How to reach the peer: one of `--serial`, `--tcp`, `--unix` (links this side
/// opens) or `--listen` (links peers open).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Link")]
pub struct LinkArgs {
    /// A serial port: its device path, or `usb=VID:PID[:SERIAL]` (hexadecimal
    /// ids) for a USB adapter looked up by identity at each open. The link
    /// reopens the port when the device comes back after a loss.
    #[arg(long, value_name = "PATH|usb=VID:PID[:SERIAL]")]
    pub serial: Option<String>,
    /// Serial line speed in bits per second.
    #[arg(long, value_name = "N", default_value_t = 115_200)]
    pub baud: u32,
    /// Serial data bits.
    #[arg(long, value_name = "BITS", default_value = "8", value_parser = ["7", "8"])]
    pub data: String,
    /// Serial parity.
    #[arg(long, default_value = "none", value_parser = ["none", "odd", "even"])]
    pub parity: String,
    /// Serial stop bits.
    #[arg(long, value_name = "BITS", default_value = "1", value_parser = ["1", "2"])]
    pub stop: String,
    /// Serial flow control.
    #[arg(long, default_value = "none", value_parser = ["none", "rtscts", "xonxoff"])]
    pub flow: String,
    /// Connect over TCP to HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    /// Listen for TCP connections on ADDR (`127.0.0.1:7000`, port 0 for any
    /// free port), or on a Unix socket with `unix:PATH`; every connection is a
    /// link. The bound address is printed on stderr as `listening on ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Connect to the Unix stream socket at PATH.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// What the link speaks: netcore's own protocol, or Python Netcore 0.1.3
    /// (`py`; its peers are neither authenticated nor resumed).
    #[arg(long, value_enum, default_value_t = DialectArg::Native)]
    pub dialect: DialectArg,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Keys for authenticated links (Noise with pre-shared keys): the side that
/// opens a link proves a key id (`--key-id` with `--psk-file`), the side that
/// accepts one checks it against its keys (`--keys`, or with `--listen` the one
/// given by `--key-id`/`--psk-file`). Both ends of a serial line: one side
/// `--keys`, the other `--key-id`/`--psk-file`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Authentication")]
pub struct KeyArgs {
    /// This side's key id on the links it opens (a listener accepts this one).
    #[arg(long, value_name = "ID", requires = "psk_file")]
    pub key_id: Option<String>,
    /// The pre-shared key of `--key-id`: a file of 32 bytes, or of 64
    /// hexadecimal digits.
    #[arg(long, value_name = "FILE", requires = "key_id")]
    pub psk_file: Option<PathBuf>,
    /// The keys of the peers allowed in (this side answers their handshake): a
    /// file of lines `KEY_ID HEX_KEY` (64 hexadecimal digits); `#` starts a
    /// comment.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
}

/// The dialect a link speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DialectArg {
    /// netcore's own protocol.
    Native,
    /// Python Netcore 0.1.3.
    Py,
}

impl DialectArg {
    /// The scheme of a link spec in this dialect (`tcp` → `tcp+py`).
    fn scheme(self, scheme: &str) -> String {
        match self {
            DialectArg::Native => scheme.to_owned(),
            DialectArg::Py => format!("{scheme}+py"),
        }
    }

    /// The library's dialect.
    fn dialect(self) -> Dialect {
        match self {
            DialectArg::Native => Dialect::Native,
            DialectArg::Py => Dialect::python(),
        }
    }
}

/// Where one link of a command comes from.
#[derive(Debug, Clone)]
pub enum Side {
    /// A link this side opens.
    Open(LinkSpec),
    /// A listener; each accepted connection is a link speaking the dialect.
    Listen(ListenAddr, Dialect),
}

/// A listener's address.
#[derive(Debug, Clone)]
pub enum ListenAddr {
    /// A TCP address, `HOST:PORT`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Side::Open(spec) => spec.fmt(f),
            Side::Listen(addr, dialect) => {
                let py = if dialect.is_python() { "+py" } else { "" };
                match addr {
                    ListenAddr::Tcp(addr) => write!(f, "listen{py}:{addr}"),
                    ListenAddr::Unix(path) => write!(f, "listen{py}:unix:{}", path.display()),
                }
            }
        }
    }
}

impl LinkArgs {
    /// The one link of a command; a usage error if none or several are given.
    pub fn side(&self) -> Result<Side, CliError> {
        let mut sides = self.sides()?;
        match sides.len() {
            1 => Ok(sides.remove(0)),
            0 => Err(CliError::usage(
                "no link given: use one of --serial, --tcp, --listen, --unix",
            )),
            _ => Err(CliError::usage(
                "give one link only: one of --serial, --tcp, --listen, --unix",
            )),
        }
    }

    /// Every link given, in the order `--serial`, `--tcp`, `--unix`, `--listen`.
    pub fn sides(&self) -> Result<Vec<Side>, CliError> {
        let mut sides = Vec::new();
        if let Some(device) = &self.serial {
            sides.push(Side::Open(self.serial_spec(device)?));
        }
        if let Some(addr) = &self.tcp {
            let scheme = self.dialect.scheme("tcp");
            sides.push(Side::Open(parse_spec(&format!("{scheme}:{addr}"))?));
        }
        if let Some(path) = &self.unix {
            let scheme = self.dialect.scheme("unix");
            sides.push(Side::Open(parse_spec(&format!(
                "{scheme}:{}",
                path.display()
            ))?));
        }
        if let Some(addr) = &self.listen {
            sides.push(Side::Listen(
                match addr.strip_prefix("unix:") {
                    Some(path) => ListenAddr::Unix(PathBuf::from(path)),
                    None => ListenAddr::Tcp(addr.clone()),
                },
                self.dialect.dialect(),
            ));
        }
        Ok(sides)
    }

    /// The serial link spec of `device` with the serial options.
    fn serial_spec(&self, device: &str) -> Result<LinkSpec, CliError> {
        parse_spec(&format!(
            "{}:{device}@{}?data={}&parity={}&stop={}&flow={}",
            self.dialect.scheme("serial"),
            self.baud,
            self.data,
            self.parity,
            self.stop,
            self.flow
        ))
    }

    /// An endpoint builder with the keys applied: links opened prove
    /// `--key-id`, listeners accept the keys of `--keys` (and `--key-id`).
    pub fn builder(&self, sides: &[Side]) -> Result<EndpointBuilder, CliError> {
        let mut builder = Endpoint::builder().name("netcore");
        let listens = sides.iter().any(|s| matches!(s, Side::Listen(..)));
        let mut table: Option<SecureKeys> = match &self.keys.keys {
            Some(path) => Some(read_keys(path)?),
            None => None,
        };
        if let (Some(id), Some(path)) = (&self.keys.key_id, &self.keys.psk_file) {
            let psk = read_psk(path)?;
            if listens {
                table = Some(table.unwrap_or_default().with(id.as_str(), psk));
            }
            builder = builder.identity(id.as_str(), psk);
        }
        if let Some(table) = table {
            builder = builder.keys(table);
        }
        Ok(builder)
    }
}

/// A link spec from text the tool built; a bad one is a usage error naming
/// its field.
pub fn parse_spec(text: &str) -> Result<LinkSpec, CliError> {
    text.parse::<LinkSpec>()
        .map_err(|e| CliError::usage(e.to_string()))
}

/// One side brought up: a link, or a listener handing out links.
pub enum Opened {
    /// A link this side opened (up).
    Link(Link),
    /// A listener.
    Serving(ServeHandle),
}

/// Opens the link of `side` on `endpoint` (waiting for its handshake), or
/// starts listening and prints `listening on ADDR` on stderr.
pub async fn open(endpoint: &Endpoint, side: &Side) -> Result<Opened, CliError> {
    match side {
        Side::Open(spec) => {
            let link = endpoint
                .open(spec.clone())
                .await
                .map_err(|e| CliError::new(format!("opening {spec}: {}", CliError::from(e))))?;
            tracing::info!(link = %link.id(), %spec, "link up");
            Ok(Opened::Link(link))
        }
        Side::Listen(addr, dialect) => {
            let dialect = dialect.clone();
            let serving = match addr {
                ListenAddr::Tcp(addr) => endpoint.serve_tcp_dialect(addr.as_str(), dialect).await,
                ListenAddr::Unix(path) => {
                    endpoint.serve_unix_dialect(path.as_path(), dialect).await
                }
            }
            .map_err(|e| CliError::new(format!("listening on {side}: {}", CliError::from(e))))?;
            // The address as `--tcp` takes it (a Unix socket as `unix:PATH`).
            match serving.local_addr().tcp() {
                Some(addr) => eprintln!("listening on {addr}"),
                None => eprintln!("listening on {}", serving.local_addr()),
            }
            Ok(Opened::Serving(serving))
        }
    }
}

impl Opened {
    /// The link to use: the one opened, or the first connection accepted.
    pub async fn first_link(&self) -> Result<Link, CliError> {
        match self {
            Opened::Link(link) => Ok(link.clone()),
            Opened::Serving(serving) => serving
                .next_link()
                .await
                .ok_or_else(|| CliError::new("the listener stopped before a peer connected")),
        }
    }
}

/// Reads a pre-shared key: 32 bytes, or 64 hexadecimal digits (surrounding
/// whitespace ignored).
pub fn read_psk(path: &Path) -> Result<Psk, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::new(format!("reading the key file {}: {e}", path.display())))?;
    if let Ok(psk) = Psk::try_from(bytes.as_slice()) {
        return Ok(psk);
    }
    let text = String::from_utf8_lossy(&bytes);
    parse_hex_key(text.trim()).ok_or_else(|| {
        CliError::new(format!(
            "{}: a key file holds 32 bytes or 64 hexadecimal digits",
            path.display()
        ))
    })
}

/// 64 hexadecimal digits as a key.
fn parse_hex_key(text: &str) -> Option<Psk> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut psk = [0u8; 32];
    for (i, byte) in psk.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(psk)
}

/// Reads a key table: lines `KEY_ID HEX_KEY`, `#` comments, blank lines.
pub fn read_keys(path: &Path) -> Result<SecureKeys, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("reading the keys file {}: {e}", path.display())))?;
    let mut keys = SecureKeys::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            CliError::new(format!(
                "{} line {}: expected `KEY_ID HEX_KEY` (64 hexadecimal digits)",
                path.display(),
                number + 1
            ))
        };
        let (id, key) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let psk = parse_hex_key(key.trim()).ok_or_else(bad)?;
        keys = keys.with(KeyId::new(id), psk);
    }
    if keys.is_empty() {
        return Err(CliError::new(format!("{}: no keys", path.display())));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_parse_and_bad_ones_do_not() {
        let hex = "00".repeat(31) + "ff";
        let psk = parse_hex_key(&hex).expect("64 digits");
        assert_eq!(psk[31], 0xff);
        assert_eq!(psk[0], 0);
        assert!(parse_hex_key(&hex[..62]).is_none());
        assert!(parse_hex_key(&("zz".repeat(32))).is_none());
    }
}
