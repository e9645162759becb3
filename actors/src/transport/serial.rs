//! Serial ports: opening a real one raw at 8N1, and pseudo-terminal pairs that
//! stand in for a cable in tests.
//!
//! Note on flushing: `tokio_serial::SerialStream::poll_flush` calls
//! `tcdrain(3)`, a *blocking* wait until the UART has sent everything, on the
//! executor thread. Callers that care about latency should not flush a serial
//! transport after every frame; writing is enough for the bytes to leave.

use std::io;

#[cfg(unix)]
use tokio_serial::SerialStream;
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, StopBits};

use super::with_context;

/// The payload rate of a serial line at `baud` bits per second with 8N1
/// framing: one start bit, eight data bits and one stop bit make ten bits per
/// byte, so `baud / 10` bytes per second (`115_200` baud gives `11_520`).
pub fn bytes_per_sec_8n1(baud: u32) -> u32 {
    baud / 10
}

/// Opens the serial port at `path` raw (no echo, no line editing, no
/// translation of bytes), 8 data bits, no parity, 1 stop bit, no flow control,
/// at `baud` bits per second. On Unix the port is opened exclusively.
///
/// Must be called inside a tokio runtime: the port registers with its reactor.
///
/// # Errors
/// The operating system's error, prefixed with the path and baud rate; a
/// missing device is `NotFound`.
pub fn open_serial(path: &str, baud: u32) -> io::Result<tokio_serial::SerialStream> {
    tokio_serial::new(path, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .open_native_async()
        .map_err(|err| {
            with_context(
                io::Error::from(err),
                format_args!("serial port {path} at {baud} baud"),
            )
        })
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

    #[test]
    fn eight_n_one_is_ten_bits_a_byte() {
        assert_eq!(bytes_per_sec_8n1(115_200), 11_520);
        assert_eq!(bytes_per_sec_8n1(9_600), 960);
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
