//! How a serial line frames each character: data bits, parity, stop bits, and
//! flow control ([`SerialOptions`]), and the payload rate that follows from them.

use std::fmt;

use super::line_code::LineCode;

/// Data bits per character on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataBits {
    /// 5 data bits (a raw port only: a link needs 7 or 8).
    Five,
    /// 6 data bits (a raw port only: a link needs 7 or 8).
    Six,
    /// 7 data bits: a link sends every byte of 0x80 and above, and the code's
    /// escape bytes, as two or three characters (see [`LineCode`]).
    Seven,
    /// 8 data bits (the default).
    #[default]
    Eight,
}

impl DataBits {
    /// The number of data bits, 5 to 8.
    pub fn bits(self) -> u32 {
        match self {
            Self::Five => 5,
            Self::Six => 6,
            Self::Seven => 7,
            Self::Eight => 8,
        }
    }

    /// The setting with `bits` data bits, if 5 to 8.
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            5 => Some(Self::Five),
            6 => Some(Self::Six),
            7 => Some(Self::Seven),
            8 => Some(Self::Eight),
            _ => None,
        }
    }
}

/// The parity bit of every character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Parity {
    /// No parity bit (the default).
    #[default]
    None,
    /// An odd parity bit. A character received with a bad parity reads as 0x00
    /// (the serial framing's delimiter: the frame it hit fails its CRC-32C and
    /// is dropped, then retransmitted by the reliable mode).
    Odd,
    /// An even parity bit; bad characters read as for [`Parity::Odd`].
    Even,
}

/// Stop bits after every character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StopBits {
    /// One stop bit (the default).
    #[default]
    One,
    /// Two stop bits.
    Two,
}

/// Flow control between the port and the device at its other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlowControl {
    /// None (the default): the line must take what is sent.
    #[default]
    None,
    /// Hardware flow control on the RTS and CTS lines.
    RtsCts,
    /// Software flow control: the receiver sends XOFF (0x13) to pause the
    /// sender and XON (0x11) to resume it, in band. The kernel (`IXON`)
    /// swallows both bytes wherever they appear in what it receives, so a link
    /// escapes them (and its escape byte) in what it sends: see [`LineCode`].
    XonXoff,
}

/// How a serial port frames its characters: data bits, parity, stop bits and
/// flow control. The default is 8N1 without flow control.
///
/// A link over the port runs its bytes through the [`LineCode`] these settings
/// need ([`SerialOptions::line_code`]): none for 8 data bits without XON/XOFF,
/// escapes otherwise, so no byte value is lost on the line. Both ends must use
/// the same settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SerialOptions {
    /// Data bits per character.
    pub data_bits: DataBits,
    /// Parity bit.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// Flow control.
    pub flow_control: FlowControl,
}

impl SerialOptions {
    /// Bits on the wire per character: the start bit, the data bits, the
    /// parity bit if any and the stop bits (10 for 8N1, 11 for 7E2).
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        1 + self.data_bits.bits() + parity + stop
    }

    /// The code a link's bytes go through on this line (escapes for 7 data bits
    /// and for XON/XOFF), or `None` for 5 and 6 data bits, which cannot carry a
    /// link.
    pub fn line_code(&self) -> Option<LineCode> {
        let xon_xoff = self.flow_control == FlowControl::XonXoff;
        match self.data_bits {
            DataBits::Eight => Some(LineCode::eight_bit(xon_xoff)),
            DataBits::Seven => Some(LineCode::seven_bit(xon_xoff)),
            DataBits::Five | DataBits::Six => None,
        }
    }

    /// A link's payload rate in bytes per second at `baud`: `baud` divided by
    /// the bits per character, and by the line code's mean characters per byte
    /// (over all 256 byte values): 11 520 B/s at 115200 8N1, 7 600 at 115200 7E1.
    /// For 5 and 6 data bits (no link), one byte per character.
    pub fn bytes_per_sec(&self, baud: u32) -> u32 {
        let chars_per_256 = self
            .line_code()
            .map_or(256, |code| u64::from(code.chars_per_256_bytes()));
        let rate = u64::from(baud) * 256 / (u64::from(self.bits_per_char()) * chars_per_256).max(1);
        u32::try_from(rate).unwrap_or(u32::MAX)
    }

    /// Whether these are the defaults (8N1, no flow control).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub(crate) fn to_port(self) -> PortSettings {
        PortSettings {
            data_bits: match self.data_bits {
                DataBits::Five => tokio_serial::DataBits::Five,
                DataBits::Six => tokio_serial::DataBits::Six,
                DataBits::Seven => tokio_serial::DataBits::Seven,
                DataBits::Eight => tokio_serial::DataBits::Eight,
            },
            parity: match self.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Odd => tokio_serial::Parity::Odd,
                Parity::Even => tokio_serial::Parity::Even,
            },
            stop_bits: match self.stop_bits {
                StopBits::One => tokio_serial::StopBits::One,
                StopBits::Two => tokio_serial::StopBits::Two,
            },
            flow_control: match self.flow_control {
                FlowControl::None => tokio_serial::FlowControl::None,
                FlowControl::RtsCts => tokio_serial::FlowControl::Hardware,
                FlowControl::XonXoff => tokio_serial::FlowControl::Software,
            },
        }
    }
}

/// [`SerialOptions`] in tokio-serial's types.
pub(crate) struct PortSettings {
    pub data_bits: tokio_serial::DataBits,
    pub parity: tokio_serial::Parity,
    pub stop_bits: tokio_serial::StopBits,
    pub flow_control: tokio_serial::FlowControl,
}

impl fmt::Display for SerialOptions {
    /// The short form: `8N1`, `7E2`, with `/rtscts` or `/xonxoff` after it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
        };
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        write!(f, "{}{parity}{stop}", self.data_bits.bits())?;
        match self.flow_control {
            FlowControl::None => Ok(()),
            FlowControl::RtsCts => f.write_str("/rtscts"),
            FlowControl::XonXoff => f.write_str("/xonxoff"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(data: u32, parity: Parity, stop: StopBits, flow: FlowControl) -> SerialOptions {
        SerialOptions {
            data_bits: DataBits::from_bits(data).expect("5 to 8"),
            parity,
            stop_bits: stop,
            flow_control: flow,
        }
    }

    #[test]
    fn bits_per_char_count_start_data_parity_and_stop() {
        let eight_n_one = SerialOptions::default();
        assert_eq!(eight_n_one.bits_per_char(), 10);
        assert_eq!(eight_n_one.to_string(), "8N1");
        let seven_e_two = options(7, Parity::Even, StopBits::Two, FlowControl::RtsCts);
        assert_eq!(seven_e_two.bits_per_char(), 11);
        assert_eq!(seven_e_two.to_string(), "7E2/rtscts");
        assert_eq!(
            options(8, Parity::Odd, StopBits::Two, FlowControl::None).bits_per_char(),
            12
        );
        assert_eq!(
            options(5, Parity::None, StopBits::One, FlowControl::None).bits_per_char(),
            7
        );
    }

    #[test]
    fn the_rate_follows_the_bits_per_char_and_the_line_code() {
        // 8N1: ten bits a byte, no code.
        assert_eq!(SerialOptions::default().bytes_per_sec(115_200), 11_520);
        // 8E2: twelve bits a byte.
        let eight_e_two = options(8, Parity::Even, StopBits::Two, FlowControl::None);
        assert_eq!(eight_e_two.bytes_per_sec(115_200), 9_600);
        // XON/XOFF escapes 3 byte values of 256 into two characters.
        let xon_xoff = options(8, Parity::None, StopBits::One, FlowControl::XonXoff);
        assert_eq!(xon_xoff.bytes_per_sec(115_200), 115_200 * 256 / (10 * 259));
        // 7 data bits: the high half of the bytes takes two characters or more.
        let seven = options(7, Parity::Even, StopBits::One, FlowControl::None);
        let code = seven.line_code().expect("7 bits carry a link");
        assert!(code.chars_per_256_bytes() > 256 + 128, "{code:?}");
        assert_eq!(
            seven.bytes_per_sec(115_200),
            (115_200u64 * 256 / (10 * u64::from(code.chars_per_256_bytes()))) as u32
        );
        assert!(options(5, Parity::None, StopBits::One, FlowControl::None)
            .line_code()
            .is_none());
        assert_eq!(
            // 6N1: 8 bits a character, one byte each (a raw port, no link).
            options(6, Parity::None, StopBits::One, FlowControl::None).bytes_per_sec(9_000),
            1_125
        );
    }
}
