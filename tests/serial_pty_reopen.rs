//! Real pseudo-terminal pairs closed mid-transfer and reopened through the
//! links' connectors: the transfer completes byte-identical (the session
//! resumes), with a hand-made connector and with the one `Endpoint::open` gives
//! a `serial:` spec (by path, and by USB identity in a fake sysfs).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{pty_pair, BoxedTransport, FaultConfig, Faulty};
use netcore::actors::Connector;
use netcore::{Endpoint, LinkOptions};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[actix_rt::test]
async fn a_pty_closed_and_reopened_mid_transfer_loses_nothing() {
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (x, y) = pty_pair().unwrap();
    // The host's end can be "unplugged": a cut closes it like a vanished device.
    let host_end = Faulty::new(x, FaultConfig::new(1));
    let unplug = host_end.handle();
    let (to_device, from_host) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let from_host = Arc::new(tokio::sync::Mutex::new(from_host));
    let reopened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = reopened.clone();
    let host_connector = Connector::new(move || {
        let to_device = to_device.clone();
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            // "Reopen the device": a fresh PTY pair, the other end for the device.
            let (x, y) = pty_pair()?;
            let _ = to_device.send(Box::new(y));
            Ok(Box::new(x) as BoxedTransport)
        }
    });
    let device_connector = Connector::new(move || {
        let from_host = from_host.clone();
        async move {
            from_host
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("host gone"))
        }
    });
    let options = |connector: Connector| {
        let mut options = LinkOptions::serial(115_200);
        options.connector = Some(connector);
        options
    };
    let got: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let sink = got.clone();
    let device = Endpoint::builder()
        .route("upload", move |body: Bytes| {
            *sink.lock().unwrap() = Some(body.to_vec());
            async { "ok" }
        })
        .start();
    let host = Endpoint::builder().start();
    let (h, _d) = tokio::join!(
        host.attach(host_end, options(host_connector)),
        device.attach(y, options(device_connector))
    );
    let link = h.unwrap();
    let call = async {
        let answer = link
            .request("upload", data.clone())
            .timeout(Duration::from_secs(60))
            .await;
        // Whether the PTY had been closed before the upload completed.
        (answer, unplug.is_cut())
    };
    let pull_the_plug = async {
        // Unplug once a quarter of the upload went into the PTY (polled: a PTY
        // has no event for it; the upload needs far longer than a poll).
        while unplug.sent().bytes_written < (data.len() / 4) as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        unplug.cut();
    };
    let ((answer, cut_mid_transfer), ()) = tokio::join!(call, pull_the_plug);
    assert!(
        cut_mid_transfer,
        "the PTY closed while the upload was in flight"
    );
    assert_eq!(answer.unwrap().body.as_bytes().unwrap().as_ref(), b"ok");
    let received = got.lock().unwrap().take().unwrap();
    assert!(received == data, "1 MiB intact across the reopen");
    assert!(unplug.is_cut());
    assert_eq!(
        reopened.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the transfer was still running when the PTY closed, and it was reopened once"
    );
}

/// How the host's spec finds the device.
#[derive(Clone, Copy, Debug)]
enum Found {
    /// By a path that is a symlink to the device node, as
    /// `/dev/serial/by-id/…` is to a `ttyUSBn`: re-pointed on a replug.
    ByPath,
    /// By USB identity, in a fake sysfs: each replug makes another `ttyUSBn`.
    ByUsb,
}

/// A device the test plugs in and out: a PTY whose slave is exposed as the
/// spec expects it, and kept open by the test (a master reads an error while
/// no slave is open).
struct Socket {
    dir: tempfile::TempDir,
    found: Found,
    plugs: u32,
}

impl Socket {
    fn new(found: Found) -> Socket {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/tty")).unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        Socket {
            dir,
            found,
            plugs: 0,
        }
    }

    fn by_id(&self) -> std::path::PathBuf {
        self.dir.path().join("usb-FTDI_FT232R_A50285BI-if00-port0")
    }

    fn spec(&self, options: &str) -> netcore::actors::transport::LinkSpec {
        use netcore::actors::transport::serial::{DeviceRoots, SerialSpec};
        let device = match self.found {
            Found::ByPath => self.by_id().display().to_string(),
            Found::ByUsb => "usb=0403:6001:A50285BI".to_owned(),
        };
        let mut spec: SerialSpec = format!("serial:{device}@115200?{options}").parse().unwrap();
        spec.roots = DeviceRoots {
            sysfs: self.dir.path().join("sys"),
            dev: self.dir.path().join("dev"),
        };
        netcore::actors::transport::LinkSpec::Serial(spec)
    }

    fn plug(&mut self) -> (tokio_serial::SerialStream, std::fs::File) {
        use std::os::unix::fs::symlink;
        use tokio_serial::SerialPort;
        let (master, slave) = pty_pair().unwrap();
        let node = slave.name().unwrap();
        drop(slave);
        let kept = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .unwrap();
        self.plugs += 1;
        match self.found {
            Found::ByPath => symlink(&node, self.by_id()).unwrap(),
            Found::ByUsb => {
                let root = self.dir.path();
                let name = format!("ttyUSB{}", self.plugs);
                let usb = root.join(format!("sys/devices/usb1/1-{}", self.plugs));
                let tty = usb.join(&name);
                std::fs::create_dir_all(&tty).unwrap();
                std::fs::write(usb.join("idVendor"), "0403\n").unwrap();
                std::fs::write(usb.join("idProduct"), "6001\n").unwrap();
                std::fs::write(usb.join("serial"), "A50285BI\n").unwrap();
                symlink(&usb, tty.join("device")).unwrap();
                symlink(&tty, root.join("sys/class/tty").join(&name)).unwrap();
                symlink(&node, root.join("dev").join(&name)).unwrap();
            }
        }
        (master, kept)
    }

    fn unplug(&self) {
        match self.found {
            Found::ByPath => std::fs::remove_file(self.by_id()).unwrap(),
            Found::ByUsb => {
                let name = format!("ttyUSB{}", self.plugs);
                let root = self.dir.path();
                std::fs::remove_file(root.join("sys/class/tty").join(&name)).unwrap();
                std::fs::remove_file(root.join("dev").join(&name)).unwrap();
            }
        }
    }
}

/// `Endpoint::open` on a `serial:` spec reopens the device by itself: the
/// host's port (7E2 with XON/XOFF) is found by `found`; the device unplugs
/// mid-upload (its end closes, its path goes), comes back half a second later
/// as another PTY (by USB identity: under another `ttyUSBn`), and the spec's
/// connector finds it.
async fn serial_spec_reopens_its_device(found: Found) {
    use netcore::actors::transport::serial::{LineCode, LineCoded};

    let data: Vec<u8> = (0..(1u32 << 18))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut socket = Socket::new(found);
    let (master, _kept) = socket.plug();
    let spec = socket.spec("data=7&parity=even&stop=2&flow=xonxoff");
    let rate = spec.bytes_per_sec().unwrap();
    // The device speaks the same line code on its end (a PTY master has no
    // termios of its own), and can be unplugged.
    let code = LineCode::seven_bit(true);
    let read = Arc::new(AtomicU64::new(0));
    let device_end = Faulty::new(Counted(master, read.clone()), FaultConfig::new(2));
    let unplug = device_end.handle();
    let (replug, plugged) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let plugged = Arc::new(tokio::sync::Mutex::new(plugged));
    let mut device_options = LinkOptions::serial_at_rate(rate);
    device_options.connector = Some(Connector::new(move || {
        let plugged = plugged.clone();
        async move {
            plugged
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("test over"))
        }
    }));
    let got: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let sink = got.clone();
    let device = Endpoint::builder()
        .route("upload", move |body: Bytes| {
            *sink.lock().unwrap() = Some(body.to_vec());
            async { "ok" }
        })
        .start();
    let host = Endpoint::builder().start();
    let (h, d) = tokio::join!(
        host.open(spec),
        device.attach(LineCoded::new(device_end, code), device_options)
    );
    let link = h.unwrap();
    d.unwrap();
    let call = async {
        let answer = link
            .request("upload", data.clone())
            .timeout(Duration::from_secs(60))
            .await;
        (answer, unplug.is_cut())
    };
    let unplug_and_replug = async {
        while read.load(Ordering::SeqCst) < (data.len() / 4) as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Unplugged: the device's end closes and its path goes away.
        socket.unplug();
        unplug.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Back, as another PTY.
        let (master, kept) = socket.plug();
        replug.send(Box::new(LineCoded::new(master, code))).unwrap();
        kept
    };
    let ((answer, cut_mid_transfer), _kept) = tokio::join!(call, unplug_and_replug);
    assert!(cut_mid_transfer, "unplugged while the upload was in flight");
    assert_eq!(answer.unwrap().body.as_bytes().unwrap().as_ref(), b"ok");
    let received = got.lock().unwrap().take().unwrap();
    assert!(
        received == data,
        "the upload arrived intact across the replug"
    );
    // The same link carries on over the new device.
    let echo = link
        .request("upload", Bytes::from_static(b"after"))
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(echo.body.as_bytes().unwrap().as_ref(), b"ok");
    assert!(link.is_up());
}

#[actix_rt::test]
async fn a_serial_spec_reopens_its_device_behind_the_same_path() {
    serial_spec_reopens_its_device(Found::ByPath).await;
}

#[actix_rt::test]
async fn a_serial_spec_by_usb_identity_finds_its_adapter_under_a_new_name() {
    serial_spec_reopens_its_device(Found::ByUsb).await;
}

/// A transport counting the bytes read from it.
struct Counted<T>(T, Arc<AtomicU64>);

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.0).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.1.fetch_add(read as u64, Ordering::SeqCst);
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
