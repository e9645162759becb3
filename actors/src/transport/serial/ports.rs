//! Finding serial ports: listing them with their USB identity ([`PortInfo`],
//! [`available_ports`]) and finding one by USB identity ([`UsbSelector`]), so a
//! USB adapter replugged under another device path is found again.
//!
//! On Linux the ports are read from sysfs (`/sys/class/tty/*/device`), under a
//! root that tests point at a fake tree ([`DeviceRoots`]); no libudev is needed.
//! A port's USB attributes (`idVendor`, `idProduct`, `serial`, `manufacturer`,
//! `product`) are those of the nearest USB device above its `device` directory.
//! Elsewhere the list is tokio-serial's.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The USB identity of a port's device, as far as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsbInfo {
    /// Vendor id (`idVendor`), e.g. 0x0403 for FTDI.
    pub vendor_id: u16,
    /// Product id (`idProduct`), e.g. 0x6001 for an FT232R.
    pub product_id: u16,
    /// The device's serial number string, if it has one.
    pub serial_number: Option<String>,
    /// The manufacturer string, if any.
    pub manufacturer: Option<String>,
    /// The product string, if any.
    pub product: Option<String>,
    /// The number of the USB interface the port belongs to (`bInterfaceNumber`),
    /// which tells the ports of a multi-port adapter apart (an FT2232's two
    /// ports share the device's ids and serial number), where known.
    pub interface: Option<u8>,
}

/// A serial port found on the system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortInfo {
    /// The device path to open, e.g. `/dev/ttyUSB0`.
    pub path: PathBuf,
    /// The USB identity, for a port on a USB device.
    pub usb: Option<UsbInfo>,
}

/// Where ports are looked up: the sysfs and `/dev` directories (`/sys` and
/// `/dev` by default; tests point them at a fake tree).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRoots {
    /// The sysfs root, holding `class/tty/`.
    pub sysfs: PathBuf,
    /// The directory of device nodes: a port named `ttyUSB0` is `dev/ttyUSB0`.
    pub dev: PathBuf,
}

impl Default for DeviceRoots {
    fn default() -> Self {
        DeviceRoots {
            sysfs: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

impl DeviceRoots {
    /// The serial ports under these roots, sorted by path: every
    /// `class/tty/NAME` with a `device` (virtual terminals have none) whose
    /// `dev/NAME` exists, except 8250 UART slots with no UART behind them
    /// (`type` 0).
    ///
    /// # Errors
    /// Reading `class/tty` failed (for example, no sysfs there).
    pub fn ports(&self) -> io::Result<Vec<PortInfo>> {
        let class = self.sysfs.join("class").join("tty");
        let entries = std::fs::read_dir(&class).map_err(|err| {
            super::super::with_context(err, format_args!("listing {}", class.display()))
        })?;
        let mut ports = Vec::new();
        for entry in entries {
            let entry = entry?;
            let tty = entry.path();
            let device = tty.join("device");
            if !device.is_dir() {
                continue;
            }
            if read_attr(&tty, "type").as_deref() == Some("0") {
                continue; // an 8250 slot without a UART
            }
            let path = self.dev.join(entry.file_name());
            if !path.exists() {
                continue;
            }
            ports.push(PortInfo {
                path,
                usb: self.usb_info(&device),
            });
        }
        ports.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(ports)
    }

    /// The USB attributes of the nearest USB device at or above `device`,
    /// never looking above the sysfs root.
    fn usb_info(&self, device: &Path) -> Option<UsbInfo> {
        let root = self.sysfs.canonicalize().ok()?;
        let mut dir = device.canonicalize().ok()?;
        // The directory just below the one being looked at: the interface, once
        // the USB device is reached.
        let mut below: Option<PathBuf> = None;
        while dir.starts_with(&root) && dir != root {
            if let (Some(vendor), Some(product)) =
                (read_attr(&dir, "idVendor"), read_attr(&dir, "idProduct"))
            {
                return Some(UsbInfo {
                    vendor_id: u16::from_str_radix(&vendor, 16).ok()?,
                    product_id: u16::from_str_radix(&product, 16).ok()?,
                    serial_number: read_attr(&dir, "serial"),
                    manufacturer: read_attr(&dir, "manufacturer"),
                    product: read_attr(&dir, "product"),
                    interface: below
                        .and_then(|interface| read_attr(&interface, "bInterfaceNumber"))
                        .and_then(|number| u8::from_str_radix(&number, 16).ok()),
                });
            }
            below = Some(dir.clone());
            if !dir.pop() {
                break;
            }
        }
        None
    }
}

/// A sysfs attribute's text, trimmed; `None` if missing, unreadable or empty.
fn read_attr(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The serial ports of this system, with their USB identity where known.
///
/// # Errors
/// Listing failed (on Linux: `/sys/class/tty` could not be read).
pub fn available_ports() -> io::Result<Vec<PortInfo>> {
    system_ports(&DeviceRoots::default())
}

#[cfg(target_os = "linux")]
fn system_ports(roots: &DeviceRoots) -> io::Result<Vec<PortInfo>> {
    roots.ports()
}

#[cfg(not(target_os = "linux"))]
fn system_ports(_: &DeviceRoots) -> io::Result<Vec<PortInfo>> {
    let ports = tokio_serial::available_ports().map_err(io::Error::from)?;
    Ok(ports
        .into_iter()
        .map(|port| PortInfo {
            path: PathBuf::from(port.port_name),
            usb: match port.port_type {
                tokio_serial::SerialPortType::UsbPort(usb) => Some(UsbInfo {
                    vendor_id: usb.vid,
                    product_id: usb.pid,
                    serial_number: usb.serial_number,
                    manufacturer: usb.manufacturer,
                    product: usb.product,
                    interface: None,
                }),
                _ => None,
            },
        })
        .collect())
}

/// A USB serial adapter by identity: vendor and product id, the serial
/// number when several of the same kind are plugged in, and the interface
/// number for one port of a multi-port adapter. Displayed `VID:PID[:SERIAL]`,
/// ids in hexadecimal (`0403:6001:A50285BI`); in a link spec the interface is
/// the option `interface=N`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsbSelector {
    /// Vendor id.
    pub vendor_id: u16,
    /// Product id.
    pub product_id: u16,
    /// The serial number the device must report, if given.
    pub serial_number: Option<String>,
    /// The USB interface number the port must belong to, if given.
    pub interface: Option<u8>,
}

impl UsbSelector {
    /// Whether a port's USB identity is this one.
    pub fn matches(&self, usb: &UsbInfo) -> bool {
        usb.vendor_id == self.vendor_id
            && usb.product_id == self.product_id
            && self
                .serial_number
                .as_ref()
                .is_none_or(|serial| usb.serial_number.as_ref() == Some(serial))
            && self
                .interface
                .is_none_or(|interface| usb.interface == Some(interface))
    }

    /// The path of the one port with this identity under `roots` (the system's
    /// on other systems than Linux), looked up afresh at each call.
    ///
    /// # Errors
    /// `NotFound` carrying [`UsbLookupError::NotFound`] if no port matches (not
    /// plugged in: worth retrying), `InvalidInput` carrying
    /// [`UsbLookupError::Ambiguous`] if several do (give the serial number), or
    /// the error of listing the ports.
    pub fn resolve(&self, roots: &DeviceRoots) -> io::Result<PathBuf> {
        let mut found: Vec<PathBuf> = system_ports(roots)?
            .into_iter()
            .filter(|port| port.usb.as_ref().is_some_and(|usb| self.matches(usb)))
            .map(|port| port.path)
            .collect();
        match found.len() {
            0 => Err(io::Error::new(
                io::ErrorKind::NotFound,
                UsbLookupError::NotFound(self.clone()),
            )),
            1 => Ok(found.remove(0)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                UsbLookupError::Ambiguous(self.clone(), found),
            )),
        }
    }
}

impl fmt::Display for UsbSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor_id, self.product_id)?;
        if let Some(serial) = &self.serial_number {
            write!(f, ":{serial}")?;
        }
        match self.interface {
            Some(interface) => write!(f, " interface {interface}"),
            None => Ok(()),
        }
    }
}

/// Why a [`UsbSelector`] found no single port (inside the `io::Error` of
/// [`UsbSelector::resolve`]: `err.get_ref()` and downcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbLookupError {
    /// No port has this identity.
    NotFound(UsbSelector),
    /// Several ports have it (their paths).
    Ambiguous(UsbSelector, Vec<PathBuf>),
}

impl fmt::Display for UsbLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(usb) => write!(f, "no serial port on USB device {usb}"),
            Self::Ambiguous(usb, paths) => {
                write!(f, "{} serial ports on USB devices {usb} (", paths.len())?;
                for (i, path) in paths.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", path.display())?;
                }
                f.write_str(
                    "); give the serial number (usb=VID:PID:SERIAL) or the interface (interface=N)",
                )
            }
        }
    }
}

impl std::error::Error for UsbLookupError {}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs and /dev: ports are added and removed as a kernel would.
    pub(crate) struct FakeTree {
        pub dir: tempfile::TempDir,
    }

    impl FakeTree {
        pub fn new() -> FakeTree {
            let tree = FakeTree {
                dir: tempfile::tempdir().expect("a temporary directory"),
            };
            std::fs::create_dir_all(tree.roots().sysfs.join("class/tty")).expect("class/tty");
            std::fs::create_dir_all(&tree.roots().dev).expect("dev");
            tree
        }

        pub fn roots(&self) -> DeviceRoots {
            DeviceRoots {
                sysfs: self.dir.path().join("sys"),
                dev: self.dir.path().join("dev"),
            }
        }

        fn write(dir: &Path, name: &str, text: &str) {
            std::fs::write(dir.join(name), format!("{text}\n")).expect("an attribute");
        }

        /// A USB adapter (an FTDI-style `ttyUSBn` below a USB interface,
        /// `usb.interface` or 0) on `port` of the bus, its node `dev/NAME`
        /// linking to `node`.
        pub fn plug_usb(&self, name: &str, port: u32, usb: &UsbInfo, node: &Path) {
            let roots = self.roots();
            let device = roots
                .sysfs
                .join(format!("devices/pci0000:00/usb1/1-{port}"));
            let number = usb.interface.unwrap_or(0);
            let interface = device.join(format!("1-{port}:1.{number}"));
            let serial_port = interface.join(name);
            let tty = serial_port.join("tty").join(name);
            std::fs::create_dir_all(&tty).expect("device dirs");
            Self::write(&device, "idVendor", &format!("{:04x}", usb.vendor_id));
            Self::write(&device, "idProduct", &format!("{:04x}", usb.product_id));
            for (attr, value) in [
                ("serial", &usb.serial_number),
                ("manufacturer", &usb.manufacturer),
                ("product", &usb.product),
            ] {
                if let Some(value) = value {
                    Self::write(&device, attr, value);
                }
            }
            Self::write(&interface, "bInterfaceNumber", &format!("{number:02x}"));
            symlink(&serial_port, tty.join("device")).expect("device link");
            symlink(&tty, roots.sysfs.join("class/tty").join(name)).expect("class link");
            symlink(node, roots.dev.join(name)).expect("dev node");
        }

        /// A CDC-ACM device (`ttyACMn`): its `device` is the USB interface.
        pub fn plug_acm(&self, name: &str, port: u32, usb: &UsbInfo, node: &Path) {
            let roots = self.roots();
            let device = roots
                .sysfs
                .join(format!("devices/pci0000:00/usb1/1-{port}"));
            let number = usb.interface.unwrap_or(0);
            let interface = device.join(format!("1-{port}:1.{number}"));
            let tty = interface.join("tty").join(name);
            std::fs::create_dir_all(&tty).expect("device dirs");
            Self::write(&device, "idVendor", &format!("{:04x}", usb.vendor_id));
            Self::write(&device, "idProduct", &format!("{:04x}", usb.product_id));
            Self::write(&interface, "bInterfaceNumber", &format!("{number:02x}"));
            symlink(&interface, tty.join("device")).expect("device link");
            symlink(&tty, roots.sysfs.join("class/tty").join(name)).expect("class link");
            symlink(node, roots.dev.join(name)).expect("dev node");
        }

        /// A built-in UART slot (`ttySn`), with a UART behind it or not.
        pub fn add_uart(&self, name: &str, present: bool) {
            let roots = self.roots();
            let device = roots.sysfs.join(format!("devices/pnp0/00:0{}", name.len()));
            let tty = device.join("tty").join(name);
            std::fs::create_dir_all(&tty).expect("uart dirs");
            symlink(&device, tty.join("device")).expect("device link");
            Self::write(&tty, "type", if present { "4" } else { "0" });
            symlink(&tty, roots.sysfs.join("class/tty").join(name)).expect("class link");
            std::fs::write(roots.dev.join(name), "").expect("dev node");
        }

        /// A virtual terminal: in `class/tty` without a device.
        pub fn add_virtual(&self, name: &str) {
            let roots = self.roots();
            let tty = roots.sysfs.join("devices/virtual/tty").join(name);
            std::fs::create_dir_all(&tty).expect("virtual dirs");
            symlink(&tty, roots.sysfs.join("class/tty").join(name)).expect("class link");
            std::fs::write(roots.dev.join(name), "").expect("dev node");
        }

        /// Unplugs the adapter `name`: its class entry and node go.
        pub fn unplug(&self, name: &str) {
            let roots = self.roots();
            std::fs::remove_file(roots.sysfs.join("class/tty").join(name)).expect("class link");
            std::fs::remove_file(roots.dev.join(name)).expect("dev node");
        }
    }

    pub(crate) fn ftdi(serial: &str) -> UsbInfo {
        UsbInfo {
            vendor_id: 0x0403,
            product_id: 0x6001,
            serial_number: Some(serial.to_owned()),
            manufacturer: Some("FTDI".to_owned()),
            product: Some("FT232R USB UART".to_owned()),
            interface: Some(0),
        }
    }

    fn selector(serial: Option<&str>) -> UsbSelector {
        UsbSelector {
            vendor_id: 0x0403,
            product_id: 0x6001,
            serial_number: serial.map(str::to_owned),
            interface: None,
        }
    }

    #[test]
    fn ports_are_listed_with_their_usb_identity() {
        let tree = FakeTree::new();
        tree.plug_usb("ttyUSB0", 2, &ftdi("A50285BI"), Path::new("/dev/null"));
        tree.add_uart("ttyS0", true);
        tree.add_uart("ttyS1", false);
        tree.add_virtual("tty1");
        let dev = tree.roots().dev;
        let ports = tree.roots().ports().expect("listed");
        assert_eq!(
            ports,
            vec![
                PortInfo {
                    path: dev.join("ttyS0"),
                    usb: None
                },
                PortInfo {
                    path: dev.join("ttyUSB0"),
                    usb: Some(ftdi("A50285BI"))
                },
            ]
        );
    }

    #[test]
    fn a_replugged_adapter_is_found_under_its_new_path() {
        let tree = FakeTree::new();
        let roots = tree.roots();
        tree.plug_usb("ttyUSB0", 2, &ftdi("A"), Path::new("/dev/null"));
        tree.plug_usb("ttyUSB1", 3, &ftdi("B"), Path::new("/dev/null"));
        assert_eq!(
            selector(Some("B")).resolve(&roots).expect("B"),
            roots.dev.join("ttyUSB1")
        );
        let err = selector(None).resolve(&roots).expect_err("two match");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let lookup = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<UsbLookupError>())
            .expect("a lookup error");
        assert!(matches!(lookup, UsbLookupError::Ambiguous(_, paths) if paths.len() == 2));
        assert!(err.to_string().contains("ttyUSB0"), "{err}");

        // B unplugged: not found (retry later); replugged on another USB port,
        // it comes back as ttyUSB2 while A stays.
        tree.unplug("ttyUSB1");
        let err = selector(Some("B")).resolve(&roots).expect_err("gone");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("0403:6001:B"), "{err}");
        tree.plug_usb("ttyUSB2", 4, &ftdi("B"), Path::new("/dev/null"));
        assert_eq!(
            selector(Some("B")).resolve(&roots).expect("B again"),
            roots.dev.join("ttyUSB2")
        );
        assert_eq!(
            selector(Some("A")).resolve(&roots).expect("A"),
            roots.dev.join("ttyUSB0")
        );
    }

    #[test]
    fn the_ports_of_a_two_port_adapter_are_told_apart_by_interface() {
        let tree = FakeTree::new();
        let roots = tree.roots();
        let dual = |interface| UsbInfo {
            vendor_id: 0x0403,
            product_id: 0x6010,
            serial_number: Some("FT2232".to_owned()),
            manufacturer: None,
            product: Some("Dual RS232-HS".to_owned()),
            interface: Some(interface),
        };
        tree.plug_usb("ttyUSB0", 5, &dual(0), Path::new("/dev/null"));
        tree.plug_usb("ttyUSB1", 5, &dual(1), Path::new("/dev/null"));
        let ports = roots.ports().expect("listed");
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1].usb, Some(dual(1)));
        let mut selector = UsbSelector {
            vendor_id: 0x0403,
            product_id: 0x6010,
            serial_number: Some("FT2232".to_owned()),
            interface: None,
        };
        let err = selector.resolve(&roots).expect_err("two ports");
        assert!(err.to_string().contains("interface=N"), "{err}");
        selector.interface = Some(1);
        assert_eq!(
            selector.resolve(&roots).expect("port B"),
            roots.dev.join("ttyUSB1")
        );
        assert_eq!(selector.to_string(), "0403:6010:FT2232 interface 1");
    }

    #[test]
    fn a_cdc_acm_device_is_found_with_its_interface() {
        let tree = FakeTree::new();
        let board = UsbInfo {
            vendor_id: 0x2341,
            product_id: 0x0043,
            serial_number: None,
            manufacturer: None,
            product: None,
            interface: Some(0),
        };
        tree.plug_acm("ttyACM0", 1, &board, Path::new("/dev/null"));
        let ports = tree.roots().ports().expect("listed");
        assert_eq!(
            ports,
            vec![PortInfo {
                path: tree.roots().dev.join("ttyACM0"),
                usb: Some(board)
            }]
        );
    }

    /// This system's ports list from sysfs without libudev; every one listed
    /// has its device node.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_systems_ports_are_listed() {
        if !Path::new("/sys/class/tty").is_dir() {
            return; // no sysfs in this sandbox
        }
        for port in available_ports().expect("listed") {
            assert!(port.path.exists(), "{port:?}");
        }
    }

    #[test]
    fn listing_without_sysfs_is_an_error_naming_the_directory() {
        let roots = DeviceRoots {
            sysfs: PathBuf::from("/netcore-no-such-sysfs"),
            dev: PathBuf::from("/dev"),
        };
        let err = roots.ports().expect_err("no sysfs");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("/netcore-no-such-sysfs"), "{err}");
    }
}
