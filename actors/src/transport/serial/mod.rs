//! Serial ports: opening a real one raw with its character framing, the line
//! code a link's bytes need on it, finding ports by USB identity, and
//! pseudo-terminal pairs that stand in for a cable in tests.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | opening a port ([`open_serial`], [`open_serial_with`]) and [`pty_pair`] |
//! | `settings.rs` | [`SerialOptions`]: data bits, parity, stop bits, flow control, and the payload rate they leave |
//! | `line_code.rs` | [`LineCode`] and [`LineCoded`]: escapes for 7-bit lines and XON/XOFF |
//! | `ports.rs` | listing ports with their USB identity ([`available_ports`]) and finding one ([`UsbSelector`]) |
//! | `spec.rs` | [`SerialSpec`]: device, baud rate and options of a `serial:` link spec, and opening it |
//!
//! Note on flushing: `tokio_serial::SerialStream::poll_flush` calls
//! `tcdrain(3)`, a *blocking* wait until the UART has sent everything, on the
//! executor thread. Callers that care about latency should not flush a serial
//! transport after every frame; writing is enough for the bytes to leave.

use std::io;

#[cfg(unix)]
use tokio_serial::SerialStream;
use tokio_serial::{SerialPort, SerialPortBuilderExt};

use super::with_context;

mod line_code;
mod ports;
mod settings;
mod spec;

pub use line_code::{LineCode, LineCoded};
pub use ports::{available_ports, DeviceRoots, PortInfo, UsbInfo, UsbLookupError, UsbSelector};
pub use settings::{DataBits, FlowControl, Parity, SerialOptions, StopBits};
pub use spec::{SerialDevice, SerialSpec};

/// The payload rate of a serial line at `baud` bits per second with 8N1
/// framing: one start bit, eight data bits and one stop bit make ten bits per
/// byte, so `baud / 10` bytes per second (`115_200` baud gives `11_520`).
pub fn bytes_per_sec_8n1(baud: u32) -> u32 {
    baud / 10
}

/// Opens the serial port at `path` raw (no echo, no line editing, no
/// translation of bytes), 8 data bits, no parity, 1 stop bit, no flow control,
/// at `baud` bits per second: [`open_serial_with`] and the default options.
///
/// Must be called inside a tokio runtime: the port registers with its reactor.
///
/// # Errors
/// The operating system's error, prefixed with the path and baud rate; a
/// missing device is `NotFound`.
pub fn open_serial(path: &str, baud: u32) -> io::Result<tokio_serial::SerialStream> {
    open_serial_with(path, baud, &SerialOptions::default())
}

/// Opens the serial port at `path` raw (no echo, no line editing, no
/// translation of bytes) at `baud` bits per second with `options`' data bits,
/// parity, stop bits and flow control. On Unix the port is opened exclusively.
///
/// The port carries bytes as the line does: with 7 data bits each byte loses
/// its top bit, with XON/XOFF the kernel takes 0x11 and 0x13 out of what it
/// reads. A link's bytes need [`SerialOptions::line_code`] on top
/// ([`SerialSpec::open`] does both).
///
/// Must be called inside a tokio runtime: the port registers with its reactor.
///
/// # Errors
/// The operating system's error, prefixed with the path, baud rate and
/// options; a missing device is `NotFound`.
pub fn open_serial_with(
    path: &str,
    baud: u32,
    options: &SerialOptions,
) -> io::Result<tokio_serial::SerialStream> {
    let settings = options.to_port();
    let port = tokio_serial::new(path, baud)
        .data_bits(settings.data_bits)
        .parity(settings.parity)
        .stop_bits(settings.stop_bits)
        .flow_control(settings.flow_control)
        .open_native_async()
        .map_err(|err| spec::port_context(io::Error::from(err), path, baud, options))?;
    let took = (
        port.data_bits(),
        port.parity(),
        port.stop_bits(),
        port.flow_control(),
    );
    if !matches!(took, (Ok(d), Ok(p), Ok(s), Ok(f))
        if d == settings.data_bits && p == settings.parity && s == settings.stop_bits && f == settings.flow_control)
    {
        // A PTY keeps 8 bits without parity; some UARTs lack a setting. The
        // line code still works (it needs at least 7 bits); the far end must
        // agree with what the device really does.
        tracing::warn!(path, %options, device = ?took, "the serial device did not take every setting");
    }
    Ok(port)
}

/// Opens a connected pair of pseudo-terminals (the master side and its slave),
/// a serial cable in a box: what one writes, the other reads.
///
/// The pair passes raw binary unchanged in both directions: the slave side is
/// put in raw mode (`cfmakeraw`) when it is opened, so no echo, no `\n` →
/// `\r\n`, no `^C` or `^S` interpretation, and the master side has no line
/// discipline of its own. A PTY has no baud rate: bytes move as fast as the
/// kernel copies them, whatever rate is configured. Use
/// `throttled_pair` (feature `test-util`) to test at a line rate.
///
/// Must be called inside a tokio runtime.
///
/// # Errors
/// The error from opening `/dev/ptmx` or the slave device.
#[cfg(unix)]
pub fn pty_pair() -> io::Result<(SerialStream, SerialStream)> {
    let (master, slave) = SerialStream::pair()
        .map_err(|err| with_context(io::Error::from(err), "opening a pseudo-terminal pair"))?;
    tracing::debug!("opened pseudo-terminal pair");
    Ok((master, slave))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::path::Path;

    #[test]
    fn eight_n_one_is_ten_bits_a_byte() {
        assert_eq!(bytes_per_sec_8n1(115_200), 11_520);
        assert_eq!(bytes_per_sec_8n1(9_600), 960);
    }

    /// A USB spec opens whatever port has the identity at each open: after a
    /// replug under another name, the new one.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_usb_spec_finds_its_adapter_again_after_a_replug() {
        use super::ports::tests::{ftdi, FakeTree};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_serial::SerialPort;

        let tree = FakeTree::new();
        let pty = || {
            let (master, slave) = pty_pair().expect("a pty");
            let node = slave.name().expect("a slave path");
            drop(slave);
            (master, node)
        };
        let mut spec: SerialSpec = "serial:usb=0403:6001:B@115200?flow=xonxoff"
            .parse()
            .expect("a spec");
        spec.roots = tree.roots();
        let err = spec.open().err().expect("nothing plugged in");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");

        let (mut first, node) = pty();
        tree.plug_usb("ttyUSB0", 2, &ftdi("A"), Path::new("/dev/null"));
        tree.plug_usb("ttyUSB1", 3, &ftdi("B"), Path::new(&node));
        assert_eq!(
            spec.resolve().expect("B"),
            tree.roots().dev.join("ttyUSB1").to_string_lossy()
        );
        let mut port = spec.open().expect("B opens");
        port.write_all(b"one\n").await.expect("written");
        let mut got = [0; 4];
        first.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"one\n");
        drop(port);

        // Replugged on another USB port: ttyUSB2, another device node.
        tree.unplug("ttyUSB1");
        let (mut second, node) = pty();
        tree.plug_usb("ttyUSB2", 4, &ftdi("B"), Path::new(&node));
        let mut port = spec.open().expect("B opens again");
        port.write_all(b"two\n").await.expect("written");
        second.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"two\n");
    }

    #[tokio::test]
    async fn missing_serial_device_names_the_path() {
        let err = open_serial("/dev/netcore-no-such-port", 9_600)
            .expect_err("opening a missing device fails");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(
            err.to_string().contains("/dev/netcore-no-such-port"),
            "{err}"
        );
        assert!(err.to_string().contains("9600 baud"), "{err}");
    }
}
