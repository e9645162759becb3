//! A real pseudo-terminal pair closed mid-transfer and reopened through the
//! links' connectors: the transfer completes byte-identical (the session resumes).
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

/// `Endpoint::open` on a `serial:` spec reopens the device by itself: the
/// host's port is a symlink to a PTY (as `/dev/serial/by-id/…` is to a
/// `ttyUSBn`), 7E2 with XON/XOFF; the device unplugs mid-upload (its end
/// closes, the symlink goes), comes back half a second later as another PTY,
/// and the spec's connector finds it under the same path.
#[actix_rt::test]
async fn a_serial_spec_reopens_its_device_when_it_comes_back() {
    use netcore::actors::transport::serial::{LineCode, LineCoded};
    use netcore::actors::transport::LinkSpec;
    use tokio_serial::SerialPort;

    let data: Vec<u8> = (0..(1u32 << 18))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("usb-FTDI_FT232R_A50285BI-if00-port0");
    // A plugged device: a PTY whose slave the test keeps open (a master reads
    // an error while no slave is open), behind the path.
    let plug = |by_id: &std::path::Path| {
        let (master, slave) = pty_pair().unwrap();
        let node = slave.name().unwrap();
        drop(slave);
        let kept = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node)
            .unwrap();
        let _ = std::fs::remove_file(by_id);
        std::os::unix::fs::symlink(&node, by_id).unwrap();
        (master, kept)
    };
    let (master, _kept) = plug(&by_id);
    let spec: LinkSpec = format!(
        "serial:{}@115200?data=7&parity=even&stop=2&flow=xonxoff",
        by_id.display()
    )
    .parse()
    .unwrap();
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
        std::fs::remove_file(&by_id).unwrap();
        unplug.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Back, as another PTY behind the same path.
        let (master, kept) = plug(&by_id);
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
