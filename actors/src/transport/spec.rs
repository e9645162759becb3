//! [`LinkSpec`]: how to open one link, parsed from text (`serial:…`, `tcp:…`,
//! `unix:…`, and the same with `+py` for the Python dialect: `tcp+py:…`), and
//! [`LinkSpecError`], which names the field a bad spec got wrong.

use std::fmt;
use std::io;
#[cfg(unix)]
use std::path::PathBuf;
use std::str::FromStr;

use super::serial::SerialSpec;
use super::{connect_tcp, with_context, BoxedTransport};

/// How to open one link: the address of the far end of the byte channel.
///
/// Parsed from and displayed as `serial:DEVICE@BAUD[?OPTIONS]` (see
/// [`SerialSpec`]: a path or `usb=VID:PID[:SERIAL]`, and `data`, `parity`,
/// `stop`, `flow`), `tcp:HOST:PORT` and `unix:PATH`:
///
/// ```
/// use netcore_actors::transport::{LinkSpec, SerialSpec};
///
/// let spec: LinkSpec = "serial:/dev/ttyUSB0@115200".parse()?;
/// assert_eq!(spec, LinkSpec::Serial(SerialSpec::new("/dev/ttyUSB0", 115_200)));
/// assert_eq!(spec.bytes_per_sec(), Some(11_520));
/// // 7 data bits, even parity, 2 stop bits: 11 bits a character, and bytes of
/// // 0x80 and above take two characters.
/// let seven_e_two: LinkSpec = "serial:/dev/ttyS1@115200?data=7&parity=even&stop=2".parse()?;
/// assert_eq!(seven_e_two.bytes_per_sec(), Some(6_909));
/// assert_eq!("tcp:127.0.0.1:4000".parse::<LinkSpec>()?.bytes_per_sec(), None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkSpec {
    /// A serial port (or a radio modem behind one), opened raw with its
    /// options, by path or by USB identity.
    Serial(SerialSpec),
    /// A TCP connection to `host:port`, opened with `TCP_NODELAY`.
    TcpConnect(String),
    /// A connection to a Unix stream socket at this path.
    #[cfg(unix)]
    Unix(PathBuf),
    /// The same channel, speaking Python Netcore 0.1.3 (`tcp+py:HOST:PORT`,
    /// `unix+py:PATH`, `serial+py:DEVICE@BAUD[?OPTIONS]`): a link opened on it runs
    /// through a bridge ([`Dialect::Python`](super::Dialect::Python)). Never nested.
    Python(Box<LinkSpec>),
}

impl LinkSpec {
    /// Opens the link, returning its transport (for a serial port, through the
    /// line code its options need: [`SerialSpec::open`]).
    ///
    /// Must be called inside a tokio runtime (actix's included).
    ///
    /// # Errors
    /// The operating system's error, its message prefixed with what was being
    /// opened (for example `serial port /dev/ttyUSB0 at 115200 baud: ...`).
    pub async fn open(&self) -> io::Result<BoxedTransport> {
        tracing::debug!(link = %self, "opening link");
        let transport: BoxedTransport = match self {
            Self::Python(inner) => Box::pin(inner.open()).await?,
            Self::Serial(serial) => serial.open()?,
            Self::TcpConnect(addr) => Box::new(connect_tcp(addr).await?),
            #[cfg(unix)]
            Self::Unix(path) => {
                Box::new(tokio::net::UnixStream::connect(path).await.map_err(|err| {
                    with_context(err, format_args!("unix socket {}", path.display()))
                })?)
            }
        };
        tracing::debug!(link = %self, "link open");
        Ok(transport)
    }

    /// The nominal payload rate of the link in bytes per second, when the link
    /// has one: for a serial line the baud rate over the bits a byte takes on
    /// the wire ([`SerialSpec::bytes_per_sec`]: `baud / 10` at 8N1), `None` for
    /// sockets. Used to size chunks so one does not hold the wire too long.
    pub fn bytes_per_sec(&self) -> Option<u32> {
        match self {
            Self::Python(inner) => inner.bytes_per_sec(),
            Self::Serial(serial) => Some(serial.bytes_per_sec()),
            Self::TcpConnect(_) => None,
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }
}

impl LinkSpec {
    /// The dialect the spec asks for: Python Netcore 0.1.3 (default limits) for a
    /// `+py` scheme, else native.
    pub fn dialect(&self) -> super::Dialect {
        match self {
            Self::Python(_) => super::Dialect::python(),
            _ => super::Dialect::Native,
        }
    }

    /// The channel without its dialect (`tcp+py:h:1` → `tcp:h:1`).
    pub fn channel(&self) -> &LinkSpec {
        match self {
            Self::Python(inner) => inner,
            other => other,
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Python(inner) => {
                let text = inner.to_string();
                match text.split_once(':') {
                    Some((scheme, rest)) => write!(f, "{scheme}+py:{rest}"),
                    None => write!(f, "{text}+py"),
                }
            }
            Self::Serial(serial) => serial.fmt(f),
            Self::TcpConnect(addr) => write!(f, "tcp:{addr}"),
            #[cfg(unix)]
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for LinkSpec {
    type Err = LinkSpecError;

    /// Parses `serial:DEVICE@BAUD[?OPTIONS]`, `tcp:HOST:PORT` or `unix:PATH`, each
    /// with `+py` after its scheme for the Python dialect (`tcp+py:HOST:PORT`).
    ///
    /// # Errors
    /// A [`LinkSpecError`] naming the text, the field and the expected forms.
    fn from_str(text: &str) -> Result<Self, LinkSpecError> {
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| LinkSpecError::new(text, SpecField::Scheme, "no scheme"))?;
        if rest.is_empty() {
            return Err(LinkSpecError::new(
                text,
                SpecField::Address,
                "empty address",
            ));
        }
        if let Some(base) = scheme.strip_suffix("+py") {
            if base.contains('+') {
                return Err(LinkSpecError::new(
                    text,
                    SpecField::Scheme,
                    "unknown scheme",
                ));
            }
            let channel = format!("{base}:{rest}");
            return match channel.parse::<LinkSpec>() {
                Ok(spec) => Ok(Self::Python(Box::new(spec))),
                Err(err) => Err(LinkSpecError::new(text, err.field(), err.reason())),
            };
        }
        match scheme {
            "serial" => SerialSpec::parse(text, rest).map(Self::Serial),
            "tcp" => Ok(Self::TcpConnect(rest.to_owned())),
            #[cfg(unix)]
            "unix" => Ok(Self::Unix(PathBuf::from(rest))),
            _ => Err(LinkSpecError::new(
                text,
                SpecField::Scheme,
                "unknown scheme",
            )),
        }
    }
}

/// The part of a link spec that was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpecField {
    /// The scheme (`serial`, `tcp`, `unix`).
    Scheme,
    /// The address: a device path, host and port, or socket path.
    Address,
    /// A serial port's USB identity (`usb=VID:PID[:SERIAL]`).
    Usb,
    /// The baud rate (`@BAUD` or `baud=`).
    Baud,
    /// Data bits (`data=`).
    DataBits,
    /// Parity (`parity=`).
    Parity,
    /// Stop bits (`stop=`).
    StopBits,
    /// Flow control (`flow=`).
    FlowControl,
    /// An option that is not `KEY=VALUE` or whose key is unknown.
    Option,
}

impl SpecField {
    /// The field's name in the spec's text (`baud`, `data`, `parity`…).
    pub fn name(self) -> &'static str {
        match self {
            Self::Scheme => "scheme",
            Self::Address => "address",
            Self::Usb => "usb",
            Self::Baud => "baud",
            Self::DataBits => "data",
            Self::Parity => "parity",
            Self::StopBits => "stop",
            Self::FlowControl => "flow",
            Self::Option => "option",
        }
    }
}

/// A link spec that does not parse: the text, the field at fault and why.
/// Converts into an `io::Error` of kind `InvalidInput`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpecError {
    text: String,
    field: SpecField,
    reason: String,
}

impl LinkSpecError {
    pub(crate) fn new(text: &str, field: SpecField, reason: &str) -> LinkSpecError {
        LinkSpecError {
            text: text.to_owned(),
            field,
            reason: reason.to_owned(),
        }
    }

    /// The field at fault.
    pub fn field(&self) -> SpecField {
        self.field
    }

    /// The text that did not parse.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Why it did not.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for LinkSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "link spec {:?}: {}: {} (expected serial:DEVICE@BAUD[?data=7|8&parity=none|odd|even&stop=1|2&flow=none|rtscts|xonxoff], tcp:HOST:PORT or unix:PATH; SCHEME+py:… for the Python dialect)",
            self.text,
            self.field.name(),
            self.reason
        )
    }
}

impl std::error::Error for LinkSpecError {}

impl From<LinkSpecError> for io::Error {
    fn from(err: LinkSpecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn link_specs_display_as_they_parse() {
        for text in [
            "serial:/dev/ttyUSB0@115200",
            "serial:COM3@9600",
            "serial:/dev/ttyS1@57600?data=7&parity=odd&stop=2&flow=xonxoff",
            "serial:usb=0403:6001@115200?flow=rtscts",
            "tcp:127.0.0.1:4000",
            "tcp:[::1]:4000",
            "unix:/run/netcore.sock",
            "tcp+py:127.0.0.1:4000",
            "unix+py:/run/py.sock",
            "serial+py:/dev/ttyS1@57600?data=7&parity=odd&stop=2&flow=xonxoff",
        ] {
            let spec: LinkSpec = text.parse().expect(text);
            assert_eq!(spec.to_string(), text);
            assert_eq!(spec.dialect().is_python(), text.contains("+py:"), "{text}");
        }
        assert_eq!(
            "tcp+py:h:1".parse::<LinkSpec>().expect("py"),
            LinkSpec::Python(Box::new(LinkSpec::TcpConnect("h:1".into())))
        );
        assert_eq!(
            "serial+py:/dev/ttyS0@9600"
                .parse::<LinkSpec>()
                .expect("py")
                .bytes_per_sec(),
            Some(960)
        );
        assert_eq!(
            "unix:/run/netcore.sock".parse::<LinkSpec>().expect("unix"),
            LinkSpec::Unix(PathBuf::from("/run/netcore.sock"))
        );
    }

    #[test]
    fn bad_link_specs_are_rejected_with_the_text_and_field() {
        for (text, field) in [
            ("", SpecField::Scheme),
            ("/dev/ttyUSB0", SpecField::Scheme),
            ("serial:/dev/ttyUSB0", SpecField::Baud),
            ("serial:/dev/ttyUSB0@fast", SpecField::Baud),
            ("serial:/dev/ttyUSB0@0", SpecField::Baud),
            ("serial:@9600", SpecField::Address),
            ("serial:/dev/ttyUSB0@9600?parity=space", SpecField::Parity),
            ("tcp:", SpecField::Address),
            ("udp:127.0.0.1:4000", SpecField::Scheme),
            ("tcp+py:", SpecField::Address),
            ("tcp+py+py:h:1", SpecField::Scheme),
            ("udp+py:h:1", SpecField::Scheme),
            ("serial+py:/dev/ttyUSB0@fast", SpecField::Baud),
        ] {
            let err = text.parse::<LinkSpec>().expect_err(text);
            assert_eq!(err.field(), field, "{err}");
            assert_eq!(err.text(), text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
            let io = io::Error::from(err);
            assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn only_serial_links_have_a_nominal_rate() {
        let serial = LinkSpec::Serial(SerialSpec::new("/dev/ttyS0", 9_600));
        assert_eq!(serial.bytes_per_sec(), Some(960));
        assert_eq!(LinkSpec::TcpConnect("h:1".into()).bytes_per_sec(), None);
        assert_eq!(LinkSpec::Unix("/s".into()).bytes_per_sec(), None);
    }

    proptest::proptest! {
        #[test]
        fn specs_with_either_dialect_display_as_they_parse(
            host in "[a-z0-9.]{1,20}",
            port in proptest::prelude::any::<u16>(),
            path in "/[a-zA-Z0-9/_.-]{1,30}",
            baud in 1u32..,
            kind in 0u8..3,
            python in proptest::prelude::any::<bool>(),
        ) {
            let channel = match kind {
                0 => LinkSpec::TcpConnect(format!("{host}:{port}")),
                1 => LinkSpec::Unix(PathBuf::from(&path)),
                _ => LinkSpec::Serial(SerialSpec::new(&path, baud)),
            };
            let spec = if python { LinkSpec::Python(Box::new(channel.clone())) } else { channel.clone() };
            let text = spec.to_string();
            let parsed: LinkSpec = text.parse().expect("its own text");
            proptest::prop_assert_eq!(&parsed, &spec);
            proptest::prop_assert_eq!(parsed.dialect().is_python(), python);
            proptest::prop_assert_eq!(parsed.channel(), &channel);
        }

        #[test]
        fn python_scheme_text_parses_or_is_refused_with_its_text(rest in "[a-z0-9=&?@:/+]{0,40}") {
            let text = format!("tcp+py:{rest}");
            match text.parse::<LinkSpec>() {
                Ok(spec) => proptest::prop_assert!(spec.dialect().is_python()),
                Err(err) => proptest::prop_assert_eq!(err.text(), text.as_str()),
            }
        }
    }
}
