//! [`SerialSpec`]: which serial port a link opens (a path, or a USB identity
//! looked up at each open) and how (baud rate and [`SerialOptions`]), parsed
//! from and displayed as the `serial:` form of a link spec.

use std::fmt;
use std::io;

use super::line_code::LineCoded;
use super::ports::{DeviceRoots, UsbSelector};
use super::settings::{DataBits, FlowControl, Parity, SerialOptions, StopBits};
use crate::transport::spec::{LinkSpecError, SpecField};
use crate::transport::{with_context, BoxedTransport};

/// Which device a serial spec opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SerialDevice {
    /// A device path, e.g. `/dev/ttyUSB0`, `/dev/serial/by-id/…` or `COM3`.
    Path(String),
    /// The one port on a USB device with this identity, looked up at each
    /// open (a replugged adapter is found under its new path).
    Usb(UsbSelector),
}

impl fmt::Display for SerialDevice {
    /// The path, or `usb=VID:PID[:SERIAL]` and the interface if given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => f.write_str(path),
            Self::Usb(usb) => write!(f, "usb={usb}"),
        }
    }
}

/// A serial link: the device, its baud rate and its character framing.
///
/// Written `serial:DEVICE@BAUD[?OPTIONS]`, where DEVICE is a path or
/// `usb=VID:PID[:SERIAL]` (hexadecimal ids) and OPTIONS are `&`-separated
/// `data=7|8`, `parity=none|odd|even`, `stop=1|2`, `flow=none|rtscts|xonxoff`
/// (defaults: 8, none, 1, none), and for a USB device `interface=N` (one port
/// of a multi-port adapter); `baud=BAUD` may stand among the options instead
/// of `@BAUD`. It displays with `@BAUD` and only the options that
/// differ from the defaults.
///
/// ```
/// use netcore_actors::transport::serial::{Parity, SerialSpec, StopBits};
///
/// let spec: SerialSpec = "serial:/dev/ttyUSB0?baud=57600&parity=even&stop=2".parse()?;
/// assert_eq!(spec.baud, 57_600);
/// assert_eq!(spec.options.parity, Parity::Even);
/// assert_eq!(spec.options.stop_bits, StopBits::Two);
/// assert_eq!(spec.to_string(), "serial:/dev/ttyUSB0@57600?parity=even&stop=2");
/// // 8E2: 12 bits on the wire per byte.
/// assert_eq!(spec.bytes_per_sec(), 4_800);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialSpec {
    /// The device.
    pub device: SerialDevice,
    /// Line speed in bits per second.
    pub baud: u32,
    /// Data bits, parity, stop bits and flow control.
    pub options: SerialOptions,
    /// Where a USB identity is looked up (`/sys` and `/dev`; not part of the
    /// spec's text).
    pub roots: DeviceRoots,
}

impl SerialSpec {
    /// The port at `path` at `baud`, 8N1 without flow control.
    pub fn new(path: impl Into<String>, baud: u32) -> SerialSpec {
        SerialSpec {
            device: SerialDevice::Path(path.into()),
            baud,
            options: SerialOptions::default(),
            roots: DeviceRoots::default(),
        }
    }

    /// The link's payload rate: [`SerialOptions::bytes_per_sec`] at the baud
    /// rate (`baud / 10` for 8N1).
    pub fn bytes_per_sec(&self) -> u32 {
        self.options.bytes_per_sec(self.baud)
    }

    /// The device path to open now: the path, or the USB identity looked up.
    ///
    /// # Errors
    /// See [`UsbSelector::resolve`].
    pub fn resolve(&self) -> io::Result<String> {
        match &self.device {
            SerialDevice::Path(path) => Ok(path.clone()),
            SerialDevice::Usb(usb) => usb
                .resolve(&self.roots)
                .map(|path| path.to_string_lossy().into_owned()),
        }
    }

    /// Opens the port for a link: resolves the device, opens it raw with the
    /// options, and runs the link's bytes through the line code they need
    /// ([`SerialOptions::line_code`]). Each call resolves afresh, so a
    /// connector calling it finds a replugged adapter.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// `InvalidInput` for 5 or 6 data bits; the error of resolving the device;
    /// the operating system's error opening it, prefixed with the path, baud
    /// rate and settings (a missing device is `NotFound`).
    pub fn open(&self) -> io::Result<BoxedTransport> {
        let code = self.options.line_code().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "serial port {}: {} data bits cannot carry a link's bytes (use 7 or 8)",
                    self.device,
                    self.options.data_bits.bits()
                ),
            )
        })?;
        let path = self.resolve()?;
        let port = super::open_serial_with(&path, self.baud, &self.options)?;
        tracing::debug!(device = %self.device, %path, options = %self.options, "serial port open");
        Ok(if code.is_identity() {
            Box::new(port)
        } else {
            Box::new(LineCoded::new(port, code))
        })
    }

    /// Parses what follows `serial:`; `text` is the whole spec, for errors.
    pub(crate) fn parse(text: &str, rest: &str) -> Result<SerialSpec, LinkSpecError> {
        let error = |field, why: &str| LinkSpecError::new(text, field, why);
        let (head, query) = match rest.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (rest, None),
        };
        let (address, mut baud) = match head.rsplit_once('@') {
            Some((address, baud)) => (
                address,
                Some(parse_baud(baud).map_err(|why| error(SpecField::Baud, why))?),
            ),
            None => (head, None),
        };
        let mut device = if let Some(usb) = address.strip_prefix("usb=") {
            SerialDevice::Usb(parse_usb(usb).map_err(|why| error(SpecField::Usb, &why))?)
        } else if address.is_empty() {
            return Err(error(SpecField::Address, "empty device path"));
        } else {
            SerialDevice::Path(address.to_owned())
        };
        let mut options = SerialOptions::default();
        let mut seen: Vec<SpecField> = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| error(SpecField::Option, &format!("{pair:?} is not KEY=VALUE")))?;
            let field = match key {
                "baud" => SpecField::Baud,
                "data" => SpecField::DataBits,
                "parity" => SpecField::Parity,
                "stop" => SpecField::StopBits,
                "flow" => SpecField::FlowControl,
                "interface" => SpecField::Usb,
                _ => return Err(error(SpecField::Option, &format!("unknown option {key:?}"))),
            };
            if seen.contains(&field) || (field == SpecField::Baud && baud.is_some()) {
                return Err(error(field, "given twice"));
            }
            seen.push(field);
            let value = value.to_ascii_lowercase();
            match field {
                SpecField::Baud => {
                    baud = Some(parse_baud(&value).map_err(|why| error(field, why))?)
                }
                SpecField::Usb => {
                    let SerialDevice::Usb(usb) = &mut device else {
                        return Err(error(field, "interface= needs a usb= device"));
                    };
                    let number = value
                        .parse::<u8>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| error(field, "interface is not a number 0 to 255"))?;
                    usb.interface = Some(number);
                }
                SpecField::DataBits => {
                    options.data_bits = match value.as_str() {
                        "7" => DataBits::Seven,
                        "8" => DataBits::Eight,
                        "5" | "6" => {
                            return Err(error(
                                field,
                                "5 or 6 data bits cannot carry a link's bytes (use 7 or 8)",
                            ))
                        }
                        _ => return Err(error(field, "expected 7 or 8")),
                    }
                }
                SpecField::Parity => {
                    options.parity = match value.as_str() {
                        "none" => Parity::None,
                        "odd" => Parity::Odd,
                        "even" => Parity::Even,
                        _ => return Err(error(field, "expected none, odd or even")),
                    }
                }
                SpecField::StopBits => {
                    options.stop_bits = match value.as_str() {
                        "1" => StopBits::One,
                        "2" => StopBits::Two,
                        _ => return Err(error(field, "expected 1 or 2")),
                    }
                }
                _ => {
                    options.flow_control = match value.as_str() {
                        "none" => FlowControl::None,
                        "rtscts" => FlowControl::RtsCts,
                        "xonxoff" => FlowControl::XonXoff,
                        _ => return Err(error(field, "expected none, rtscts or xonxoff")),
                    }
                }
            }
        }
        let baud =
            baud.ok_or_else(|| error(SpecField::Baud, "no baud rate (@BAUD or baud=BAUD)"))?;
        Ok(SerialSpec {
            device,
            baud,
            options,
            roots: DeviceRoots::default(),
        })
    }
}

fn parse_baud(text: &str) -> Result<u32, &'static str> {
    match text.parse::<u32>() {
        Ok(0) => Err("zero baud rate"),
        Ok(baud) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(baud),
        _ => Err("baud rate is not a number"),
    }
}

fn parse_usb(text: &str) -> Result<UsbSelector, String> {
    let mut parts = text.splitn(3, ':');
    let mut id = |what: &str| {
        let part = parts.next().unwrap_or("");
        if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{what} id {part:?} is not 1 to 4 hexadecimal digits (usb=VID:PID[:SERIAL])"
            ));
        }
        u16::from_str_radix(part, 16).map_err(|err| format!("{what} id {part:?}: {err}"))
    };
    let vendor_id = id("vendor")?;
    let product_id = id("product")?;
    let serial_number = match parts.next() {
        None => None,
        Some("") => return Err("empty serial number (usb=VID:PID[:SERIAL])".to_owned()),
        Some(serial) => Some(serial.to_owned()),
    };
    Ok(UsbSelector {
        vendor_id,
        product_id,
        serial_number,
        interface: None,
    })
}

impl fmt::Display for SerialSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let interface = match &self.device {
            SerialDevice::Usb(usb) => {
                write!(f, "serial:usb={:04x}:{:04x}", usb.vendor_id, usb.product_id)?;
                if let Some(serial) = &usb.serial_number {
                    write!(f, ":{serial}")?;
                }
                usb.interface.map(|number| number.to_string())
            }
            SerialDevice::Path(path) => {
                write!(f, "serial:{path}")?;
                None
            }
        };
        write!(f, "@{}", self.baud)?;
        let options = &self.options;
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(number) = &interface {
            pairs.push(("interface", number));
        }
        if options.data_bits != DataBits::Eight {
            pairs.push((
                "data",
                match options.data_bits {
                    DataBits::Five => "5",
                    DataBits::Six => "6",
                    DataBits::Seven => "7",
                    DataBits::Eight => "8",
                },
            ));
        }
        match options.parity {
            Parity::None => {}
            Parity::Odd => pairs.push(("parity", "odd")),
            Parity::Even => pairs.push(("parity", "even")),
        }
        if options.stop_bits == StopBits::Two {
            pairs.push(("stop", "2"));
        }
        match options.flow_control {
            FlowControl::None => {}
            FlowControl::RtsCts => pairs.push(("flow", "rtscts")),
            FlowControl::XonXoff => pairs.push(("flow", "xonxoff")),
        }
        for (i, (key, value)) in pairs.iter().enumerate() {
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SerialSpec {
    type Err = LinkSpecError;

    /// Parses `serial:DEVICE@BAUD[?OPTIONS]` (see [`SerialSpec`]).
    fn from_str(text: &str) -> Result<Self, LinkSpecError> {
        let rest = text
            .strip_prefix("serial:")
            .ok_or_else(|| LinkSpecError::new(text, SpecField::Scheme, "not serial:"))?;
        SerialSpec::parse(text, rest)
    }
}

/// Context for errors opening `path`.
pub(super) fn port_context(
    err: io::Error,
    path: &str,
    baud: u32,
    options: &SerialOptions,
) -> io::Error {
    if options.is_default() {
        with_context(err, format_args!("serial port {path} at {baud} baud"))
    } else {
        with_context(
            err,
            format_args!("serial port {path} at {baud} baud {options}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field_of(text: &str) -> SpecField {
        text.parse::<SerialSpec>().expect_err(text).field()
    }

    #[test]
    fn serial_specs_parse_every_setting() {
        let spec: SerialSpec =
            "serial:/dev/ttyUSB0?baud=57600&parity=even&stop=2&flow=rtscts&data=7"
                .parse()
                .expect("a spec");
        assert_eq!(spec.device, SerialDevice::Path("/dev/ttyUSB0".into()));
        assert_eq!(spec.baud, 57_600);
        assert_eq!(
            spec.options,
            SerialOptions {
                data_bits: DataBits::Seven,
                parity: Parity::Even,
                stop_bits: StopBits::Two,
                flow_control: FlowControl::RtsCts,
            }
        );
        assert_eq!(
            spec.to_string(),
            "serial:/dev/ttyUSB0@57600?data=7&parity=even&stop=2&flow=rtscts"
        );
        let usb: SerialSpec = "serial:usb=0403:6001:A50285BI@115200?flow=XONXOFF"
            .parse()
            .expect("usb");
        assert_eq!(
            usb.device,
            SerialDevice::Usb(UsbSelector {
                vendor_id: 0x0403,
                product_id: 0x6001,
                serial_number: Some("A50285BI".into()),
                interface: None,
            })
        );
        assert_eq!(usb.options.flow_control, FlowControl::XonXoff);
        assert_eq!(
            usb.to_string(),
            "serial:usb=0403:6001:A50285BI@115200?flow=xonxoff"
        );
        let any_ftdi: SerialSpec = "serial:usb=403:6001@9600".parse().expect("no serial");
        assert_eq!(any_ftdi.to_string(), "serial:usb=0403:6001@9600");
        let port_b: SerialSpec = "serial:usb=0403:6010:FT2232@9600?parity=odd&interface=1"
            .parse()
            .expect("an interface");
        assert!(matches!(&port_b.device, SerialDevice::Usb(usb) if usb.interface == Some(1)));
        assert_eq!(
            port_b.to_string(),
            "serial:usb=0403:6010:FT2232@9600?interface=1&parity=odd"
        );
    }

    #[test]
    fn every_bad_value_names_its_field() {
        for (text, field) in [
            ("serial:/dev/ttyS0", SpecField::Baud),
            ("serial:/dev/ttyS0@", SpecField::Baud),
            ("serial:/dev/ttyS0@0", SpecField::Baud),
            ("serial:/dev/ttyS0@+9600", SpecField::Baud),
            ("serial:/dev/ttyS0@fast", SpecField::Baud),
            ("serial:/dev/ttyS0@9600?baud=9600", SpecField::Baud),
            ("serial:/dev/ttyS0?baud=99999999999", SpecField::Baud),
            ("serial:@9600", SpecField::Address),
            ("serial:?baud=9600", SpecField::Address),
            ("serial:/dev/ttyS0@9600?data=9", SpecField::DataBits),
            ("serial:/dev/ttyS0@9600?data=5", SpecField::DataBits),
            ("serial:/dev/ttyS0@9600?data=6", SpecField::DataBits),
            ("serial:/dev/ttyS0@9600?data=", SpecField::DataBits),
            ("serial:/dev/ttyS0@9600?data=7&data=8", SpecField::DataBits),
            ("serial:/dev/ttyS0@9600?parity=mark", SpecField::Parity),
            ("serial:/dev/ttyS0@9600?parity=E", SpecField::Parity),
            ("serial:/dev/ttyS0@9600?stop=1.5", SpecField::StopBits),
            ("serial:/dev/ttyS0@9600?stop=0", SpecField::StopBits),
            ("serial:/dev/ttyS0@9600?flow=dtrdsr", SpecField::FlowControl),
            (
                "serial:/dev/ttyS0@9600?flow=hardware",
                SpecField::FlowControl,
            ),
            ("serial:/dev/ttyS0@9600?speed=1", SpecField::Option),
            ("serial:/dev/ttyS0@9600?", SpecField::Option),
            ("serial:/dev/ttyS0@9600?data=7&", SpecField::Option),
            ("serial:/dev/ttyS0@9600?data", SpecField::Option),
            ("serial:usb=@9600", SpecField::Usb),
            ("serial:usb=0403@9600", SpecField::Usb),
            ("serial:usb=0403:@9600", SpecField::Usb),
            ("serial:usb=04030:6001@9600", SpecField::Usb),
            ("serial:usb=0x03:6001@9600", SpecField::Usb),
            ("serial:usb=0403:6001:@9600", SpecField::Usb),
            ("serial:usb=0403:6001@9600?interface=x", SpecField::Usb),
            ("serial:usb=0403:6001@9600?interface=256", SpecField::Usb),
            (
                "serial:usb=0403:6001@9600?interface=1&interface=1",
                SpecField::Usb,
            ),
            ("serial:/dev/ttyS0@9600?interface=1", SpecField::Usb),
            ("tcp:/dev/ttyS0@9600", SpecField::Scheme),
        ] {
            assert_eq!(field_of(text), field, "{text}");
            let err = text.parse::<SerialSpec>().expect_err(text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
            assert!(err.to_string().contains(field.name()), "{err}");
            assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
        }
    }

    fn options() -> impl Strategy<Value = SerialOptions> {
        (
            prop_oneof![Just(DataBits::Seven), Just(DataBits::Eight)],
            prop_oneof![Just(Parity::None), Just(Parity::Odd), Just(Parity::Even)],
            prop_oneof![Just(StopBits::One), Just(StopBits::Two)],
            prop_oneof![
                Just(FlowControl::None),
                Just(FlowControl::RtsCts),
                Just(FlowControl::XonXoff)
            ],
        )
            .prop_map(
                |(data_bits, parity, stop_bits, flow_control)| SerialOptions {
                    data_bits,
                    parity,
                    stop_bits,
                    flow_control,
                },
            )
    }

    proptest! {
        #[test]
        fn serial_specs_display_as_they_parse(
            path in "/[a-zA-Z0-9/_.:-]{1,30}",
            usb in proptest::option::of((any::<u16>(), any::<u16>(), proptest::option::of("[A-Z0-9:]{1,12}"), proptest::option::of(any::<u8>()))),
            baud in 1u32..,
            options in options(),
        ) {
            let device = match usb {
                Some((vendor_id, product_id, serial_number, interface)) => SerialDevice::Usb(UsbSelector { vendor_id, product_id, serial_number, interface }),
                None => SerialDevice::Path(path),
            };
            let spec = SerialSpec { device, baud, options, roots: DeviceRoots::default() };
            let text = spec.to_string();
            prop_assert_eq!(text.parse::<SerialSpec>().expect("its own text"), spec);
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(rest in "[a-z0-9=&?@:/]{0,40}") {
            let text = format!("serial:{rest}");
            if let Err(err) = text.parse::<SerialSpec>() {
                prop_assert!(err.to_string().contains(err.field().name()));
            }
        }
    }
}
