//! The user guide: from a first device to a supervised gateway, one topic per
//! section (the runtime, a first device and gateway, blocking handlers and
//! workers, priorities, big transfers, forwarding, handler actors, reconnecting
//! links, logging, testing). Every example is a doc test, so it compiles (and most run) with the
//! test suite.
//!
//! # The runtime
//!
//! netcore's links, router and services are actix actors: an endpoint starts on
//! an actix System. Run the program under `#[actix_rt::main]` (or
//! `actix_rt::System::new().block_on(..)`); `tokio` works inside it as usual.
//! [`EndpointBuilder::start`](crate::EndpointBuilder::start) outside a System
//! fails at once, saying so. A busy gateway can spread its links over a few
//! threads ([`EndpointBuilder::link_threads`](crate::EndpointBuilder::link_threads)).
//!
//! # A first device and gateway
//!
//! An endpoint serves routes and calls its peers. Handlers are async functions of
//! extractors ([`Bytes`](crate::Bytes), [`Json`](crate::Json),
//! [`State`](crate::State), [`Head`](crate::Head), [`Request`](crate::Request),
//! ...) returning anything that becomes an answer ([`IntoReply`](crate::IntoReply)).
//! Here the device and the gateway share an in-memory pipe; on hardware, the
//! device side is `device.open("serial:/dev/ttyUSB0@115200".parse()?)` and the
//! gateway the same on its port (serial framing and chunk sizes follow from the
//! baud rate; see [Serial ports](#serial-ports)).
//!
//! ```
//! use netcore::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Reading {
//!     celsius: f32,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! actix_rt::System::new().block_on(async {
//!     let device = Endpoint::builder()
//!         .name("thermometer")
//!         .route("temperature", || async { Json(Reading { celsius: 21.5 }) })
//!         .start();
//!     let gateway = Endpoint::builder().name("gateway").start();
//!
//!     let (a, b) = tokio::io::duplex(64 * 1024);
//!     let (link, _) = tokio::join!(
//!         gateway.attach(a, LinkOptions::serial(115_200)),
//!         device.attach(b, LinkOptions::serial(115_200)),
//!     );
//!     let reading: Reading = link?.call("temperature", ()).await?.json().await?;
//!     assert_eq!(reading.celsius, 21.5);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Serial ports
//!
//! [`Endpoint::open`](crate::Endpoint::open) opens a link from a spec
//! ([`LinkSpec`](crate::actors::transport::LinkSpec), parsed from text):
//!
//! | spec | opens |
//! |---|---|
//! | `serial:/dev/ttyUSB0@115200` | the port at that path, 115200 baud, 8N1, no flow control |
//! | `serial:/dev/ttyS1@57600?data=7&parity=even&stop=2` | 7E2 (`baud=57600` may stand among the options instead of `@57600`) |
//! | `serial:/dev/ttyUSB0@115200?flow=rtscts` | hardware flow control (`flow=xonxoff`: software, `flow=none`: the default) |
//! | `serial:usb=0403:6001@115200` | the one port on a USB device with vendor 0403, product 6001 (hexadecimal), looked up at each open |
//! | `serial:usb=0403:6001:A50285BI@115200` | the same, the device with that serial number (when several are plugged in) |
//! | `serial:usb=0403:6010:FT2232@115200?interface=1` | the second port (USB interface 1) of a two-port adapter |
//! | `tcp:HOST:PORT`, `unix:PATH` | a TCP connection, a Unix socket |
//! | `tcp+py:HOST:PORT`, `unix+py:PATH`, `serial+py:DEVICE@BAUD` | the same channels to a Python Netcore 0.1.3 peer ([`Dialect::Python`](crate::Dialect::Python): README, "Python Netcore 0.1.3 dialect") |
//!
//! Options: `data=7|8` (default 8), `parity=none|odd|even` (none), `stop=1|2`
//! (1), `flow=none|rtscts|xonxoff` (none), `interface=N` (USB devices only).
//! A bad value fails to parse with a
//! [`LinkSpecError`](crate::actors::transport::LinkSpecError) naming its field
//! (`err.field()`); 5 and 6 data bits are refused, as they cannot carry a link's
//! bytes.
//!
//! Both ends of a line need the same settings. With 7 data bits or XON/XOFF a
//! link escapes the byte values the line cannot carry (see
//! [`LineCode`](crate::actors::transport::serial::LineCode): a 7-bit line drops
//! each byte's top bit, and XON/XOFF makes the kernel take 0x11 and 0x13 out of
//! what it reads), so the peer must be a netcore link with the same spec.
//! Chunk sizes and the one-way queue follow the real payload rate: the baud
//! rate over the bits each byte takes on the wire (start, data, parity and stop
//! bits, and the escapes), e.g. 11 520 B/s at 115200 8N1, 6 909 at 115200 7E2.
//!
//! A serial link opened this way reopens its port when it breaks (an unplugged
//! adapter): the same path, or the same USB identity looked up afresh (a
//! replugged adapter may come back as another `/dev/ttyUSBn`), with the same
//! options, retried with backoff until the device is back; the session then
//! resumes (see [Reconnecting links](#reconnecting-links)).
//! [`available_ports`](crate::actors::transport::available_ports) lists the
//! ports with their USB identity:
//!
//! ```no_run
//! # async fn run(gateway: netcore::Endpoint) -> Result<(), Box<dyn std::error::Error>> {
//! use netcore::actors::transport::available_ports;
//!
//! for port in available_ports()? {
//!     if let Some(usb) = &port.usb {
//!         tracing::info!(path = %port.path.display(), vid = usb.vendor_id, pid = usb.product_id,
//!             serial = ?usb.serial_number, product = ?usb.product, "serial port");
//!     }
//! }
//! let _radio = gateway.open("serial:usb=0403:6001@57600?parity=even".parse()?).await?;
//! # Ok(()) }
//! ```
//!
//! # Blocking handlers and workers
//!
//! Handlers run on the endpoint's thread, with the router and (on machines with
//! one or two cores) the links: a handler that blocks that thread
//! (`std::thread::sleep`, synchronous file or database I/O, heavy computation)
//! stalls every link. Such a handler belongs on tokio's blocking pool:
//! [`blocking`](crate::blocking) wraps a plain function of extractors (the
//! extractors run first, on the endpoint's thread; then the function on the pool,
//! and its result becomes the answer), and [`run_blocking`](crate::run_blocking)
//! runs a closure on the pool from inside an async handler.
//!
//! ```
//! use netcore::prelude::*;
//! use std::sync::Mutex;
//!
//! /// A synchronous store, e.g. a database connection.
//! struct Store(Mutex<Vec<String>>);
//!
//! let server = Endpoint::builder()
//!     .state(Store(Mutex::new(Vec::new())))
//!     // A plain function: runs on the blocking pool.
//!     .route("put", netcore::blocking(|State(store): State<Store>, text: String| {
//!         let mut rows = store.0.lock().map_err(|_| HandlerError::failed("store poisoned"))?;
//!         rows.push(text);
//!         Ok::<_, HandlerError>(rows.len().to_string())
//!     }))
//!     // An async handler with one blocking step.
//!     .route("hash", |body: Bytes| async move {
//!         let sum = netcore::run_blocking(move || crc32c(&body)).await?;
//!         Ok::<_, HandlerError>(sum.to_string())
//!     });
//! # fn crc32c(bytes: &[u8]) -> u32 { bytes.iter().map(|b| u32::from(*b)).sum() }
//! # drop(server);
//! ```
//!
//! A handler that waits (for I/O, a timer, a call, blocking work) holds one of
//! the endpoint's workers: at most [`max_workers`](crate::EndpointBuilder::max_workers)
//! (64) at once, and at most [`max_workers_per_link`](crate::EndpointBuilder::max_workers_per_link)
//! (3/4 of them) for one link, so one link's burst of slow requests leaves
//! workers for the others. Waiting requests queue per link, served in turn, up to
//! [`max_queued`](crate::EndpointBuilder::max_queued) (4096); beyond it they are
//! refused as busy (`Refused`). Blocking work holds its worker until it returns,
//! even when its request was canceled (a thread cannot be stopped), so an
//! endpoint's blocking work occupies at most `max_workers` of the pool's threads
//! (tokio's default pool: up to 512 threads, shared by the runtime's endpoints).
//!
//! # Priorities
//!
//! Every message has a [`Priority`](crate::Priority): `Urgent`, `High`, `Normal`
//! (the default) or `Bulk`. Big messages travel in chunks, and at every chunk
//! boundary the scheduler picks by priority, so a small urgent command overtakes
//! a file transfer within one chunk (about 10 ms of a serial line), while lower
//! classes still get a share and never starve.
//!
//! ```no_run
//! # use netcore::prelude::*;
//! # use std::time::Duration;
//! # async fn run(link: Link) -> Result<(), CallError> {
//! // An emergency stop overtakes whatever else is on the line.
//! link.request("motor/stop", ())
//!     .priority(Priority::Urgent)
//!     .timeout(Duration::from_millis(500))
//!     .await?;
//! // Telemetry goes one way: no answer, paced by the link when it is busy.
//! link.send_with("telemetry", Json(vec![1.0, 2.5]), Priority::Bulk).await?;
//! # Ok(()) }
//! ```
//!
//! # Big transfers
//!
//! [`Link::upload`](crate::Link::upload) streams a file from disk as the link
//! takes it, reports its progress, and ends with the device's answer (an upload
//! to a route the device does not serve fails with its `NotFound`). The call's
//! timeout starts once the file has left. On the receiving side a large body is
//! spooled to a temporary file (`Body::File`) within hard limits, or, for routes
//! listed with
//! [`EndpointBuilder::stream_bodies`](crate::EndpointBuilder::stream_bodies),
//! handed to the handler chunk by chunk as it arrives (`Body::Stream`, flow
//! controlled: a slow handler slows the sender).
//!
//! ```no_run
//! # use netcore::prelude::*;
//! # async fn run(link: Link) -> Result<(), CallError> {
//! let mut upload = link.upload("firmware", "/var/lib/images/fw-2.1.bin").start().await?;
//! if let Some(transfer) = upload.transfer() {
//!     while let Some(Progress { sent, total }) = transfer.changed().await {
//!         println!("{sent} of {} bytes", total.unwrap_or(0));
//!     }
//! }
//! println!("device: {}", upload.response().await?.text().await?);
//! # Ok(()) }
//! ```
//!
//! # Forwarding
//!
//! A gateway forwards a request to a device in one line. Handlers can take the
//! [`Endpoint`](crate::Endpoint) (held weakly: a stopped endpoint answers
//! `GoingAway`), and a blueprint's default handler the
//! [`Remainder`](crate::Remainder) of the route after its prefix.
//! [`Link::forward`](crate::Link::forward) keeps the request's priority, headers
//! and body (a spooled or streamed body is streamed on); `?` turns a failed call
//! into an error answer with the device's own code (`From<CallError> for
//! HandlerError`); and when the caller cancels, the handler is dropped, which
//! cancels the forwarded call on the wire.
//!
//! ```no_run
//! # use netcore::prelude::*;
//! # use netcore::LinkId;
//! let gateway = Endpoint::builder().blueprint(Blueprint::new("devices", "dev/").default_handler(
//!     |endpoint: Endpoint, Remainder(rest): Remainder, request: Request| async move {
//!         // "dev/3/temp": device 3, route "temp".
//!         let (id, route) = rest.split_once('/').unwrap_or((&rest, ""));
//!         let id = LinkId(id.parse().map_err(|_| HandlerError::bad_request("no such device"))?);
//!         Ok::<Response, HandlerError>(endpoint.try_link(id)?.forward(request).route(route).await?)
//!     },
//! ));
//! ```
//!
//! # Handler actors
//!
//! A route can be served by an actor of your own (`impl Handler<HandleRequest>`),
//! with its own state and mailbox. [`route_supervised`](crate::EndpointBuilder::route_supervised)
//! builds it at the first request from a factory that gets the endpoint's
//! [`Services`](crate::Services) (state, cache, timers, events, the endpoint), and
//! rebuilds it, with fresh state, if it panics (backoff, then escalation, as the
//! restart policy says). `examples/gateway.rs` is a whole program: a gateway whose
//! telemetry-aggregating actor publishes what it gathers in the endpoint's cache.
//!
//! ```no_run
//! use actix::prelude::*;
//! use netcore::prelude::*;
//! use netcore::{HandleRequest, RestartPolicy};
//!
//! /// Counts the requests it served; remembers the last body in the cache.
//! struct Counter {
//!     services: Services,
//!     served: u64,
//! }
//!
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<HandleRequest> for Counter {
//!     type Result = ResponseFuture<HandlerResult>;
//!
//!     fn handle(&mut self, HandleRequest(request): HandleRequest, _: &mut Context<Self>) -> Self::Result {
//!         self.served += 1;
//!         let (services, served) = (self.services.clone(), self.served);
//!         Box::pin(async move {
//!             let body = request.body.into_bytes().await?;
//!             services.cache().set("last", body, None).await?;
//!             Ok(Reply::new(format!("request {served}")))
//!         })
//!     }
//! }
//!
//! let gateway = Endpoint::builder().route_supervised(
//!     "count",
//!     RestartPolicy::default(),
//!     |services: &Services| Counter { services: services.clone(), served: 0 },
//! );
//! ```
//!
//! # Reconnecting links
//!
//! A link that loses its peer after it was up does not go down: it is
//! [`LinkState::Reconnecting`](crate::LinkState::Reconnecting) until the peer is
//! back, and resumes its session in reliable mode: nothing lost, nothing twice;
//! a call whose peer restarted fails with
//! [`CallError::PeerReset`](crate::CallError::PeerReset), and calls made
//! meanwhile wait with their own timeouts.
//!
//! - A link with a [`Connector`](crate::actors::Connector) reopens its transport
//!   when it breaks. [`Endpoint::connect_tcp`](crate::Endpoint::connect_tcp)
//!   installs one, and so does [`Endpoint::open`](crate::Endpoint::open) for a
//!   serial port; on the accepting side,
//!   [`EndpointBuilder::tcp_resume`](crate::EndpointBuilder::tcp_resume) hands a
//!   returning client's connection back to its link.
//! - A serial or radio link ([`LinkOptions::serial`](crate::LinkOptions::serial))
//!   whose peer falls silent (out of range: keepalive PINGs unanswered) keeps its
//!   port open and probes the peer; the first frame the peer sends resumes the
//!   link at once.
//!
//! [`LinkOptions::reconnect`](crate::LinkOptions) ([`ReconnectPolicy`](crate::ReconnectPolicy))
//! sets the backoff between attempts (serial: 20 ms doubling to 250 ms, so a
//! line that comes back is used within about a quarter second; TCP: up to 5 s),
//! its jitter, and an optional give-up time, after which the link goes down with
//! [`DownReason::GaveUp`](crate::DownReason::GaveUp). The event bus reports
//! `Event::LinkDown` with [`DownReason::Reconnecting`](crate::DownReason::Reconnecting),
//! an `Event::LinkRetrying` per attempt (its number, [`Retry::Reopen`](crate::Retry)
//! or `Retry::Probe`, why the peer is still missing, the wait), then
//! `Event::LinkRecovered` and `Event::LinkUp`; [`Link::closed`](crate::Link::closed)
//! says why a link finally went down.
//!
//! ```no_run
//! # use netcore::prelude::*;
//! use netcore::actors::transport::{BoxedTransport, LinkSpec};
//! use netcore::actors::Connector;
//! use netcore::{Event, ReconnectPolicy};
//!
//! # async fn run(gateway: Endpoint) -> Result<(), Box<dyn std::error::Error>> {
//! let spec: LinkSpec = "serial:/dev/ttyUSB0@115200".parse()?;
//! let mut options = LinkOptions::serial(115_200);
//! let reopen = spec.clone();
//! options.connector = Some(Connector::new(move || {
//!     let spec = reopen.clone();
//!     async move { spec.open().await }
//! }));
//! // Give up after an hour without the peer (the default: never).
//! options.reconnect = ReconnectPolicy {
//!     give_up: Some(std::time::Duration::from_secs(3600)),
//!     ..ReconnectPolicy::serial()
//! };
//! gateway.events().on(
//!     |event| matches!(event, Event::LinkRetrying { .. }),
//!     |event| {
//!         if let Event::LinkRetrying { link, attempt, error, wait, .. } = event {
//!             tracing::info!(%link, attempt, ?wait, %error, "link retrying");
//!         }
//!     },
//! );
//! let transport: BoxedTransport = spec.open().await?;
//! let link = gateway.attach(transport, options).await?;
//! println!("link down for good: {}", link.closed().await);
//! # Ok(()) }
//! ```
//!
//! # Link statistics
//!
//! [`Link::stats`](crate::Link::stats) takes a snapshot of one link
//! ([`LinkStats`](crate::LinkStats): a plain `Copy` value) and
//! [`Endpoint::stats`](crate::Endpoint::stats) one of every attached link with
//! their totals ([`EndpointStats`](crate::EndpointStats)). Counters (bytes,
//! frames and payload each way, integrity drops by reason, retransmissions,
//! duplicates, reconnects) only grow over a link's life; gauges (round trip and
//! retransmission timeout, bytes in flight, queued bytes per priority class, open
//! streams and calls, state and time in it) are the moment's. A read costs two
//! mailbox hops (a few microseconds), so a status page may poll it many times a
//! second; both types serialize with serde (durations as seconds):
//!
//! ```no_run
//! # use netcore::prelude::*;
//! # async fn run(gateway: Endpoint, link: Link) -> Result<(), Box<dyn std::error::Error>> {
//! if let Some(stats) = link.stats().await {
//!     println!(
//!         "{}: {:?} for {:?}, {} B sent, {} retransmitted frames, srtt {:?}",
//!         stats.link, stats.state, stats.time_in_state, stats.payload_out,
//!         stats.retransmissions, stats.srtt,
//!     );
//! }
//! let all = gateway.stats().await;
//! println!("{}", serde_json::to_string(&all.totals)?);
//! # Ok(()) }
//! ```
//!
//! # Logging
//!
//! netcore logs through `tracing`. What a handler logs runs inside a debug-level
//! `request` span naming the endpoint
//! ([`EndpointBuilder::name`](crate::EndpointBuilder::name)), the link, the route
//! and the stream; link events (up, down, reconnecting, refused streams) are
//! logged at info and warn. A `tracing-subscriber` set-up for a gateway:
//!
//! ```no_run
//! tracing_subscriber::fmt()
//!     .with_max_level(tracing::Level::DEBUG) // or an EnvFilter from RUST_LOG
//!     .init();
//! ```
//!
//! # Testing with the fault injector
//!
//! With the `test-util` feature (in your dev-dependencies:
//! `netcore = { version = "…", features = ["test-util"] }`), tests get lines
//! that misbehave on purpose: `netcore::actors::transport::throttled_pair`
//! (a serial line at a baud rate), `faulty_pair` (seeded frame loss,
//! bit errors, duplicates, truncation, latency, cuts) and `modem_pair` (a radio
//! modem behind a fast UART: a bounded buffer that drops when full, a slower
//! air with latency and seeded frame loss). Reliable mode (the serial
//! default) delivers every message exactly once through them:
//!
//! ```
//! use netcore::actors::transport::{faulty_pair, FaultConfig, Faults};
//! use netcore::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! actix_rt::System::new().block_on(async {
//!     let device = Endpoint::builder()
//!         .route("echo", |body: Bytes| async move { body })
//!         .start();
//!     let gateway = Endpoint::builder().start();
//!     // One frame in ten lost each way, after each side's handshake frame.
//!     let lossy = Faults::none().with_drop(0.1).with_clean_frames(1);
//!     let (a, b) = faulty_pair(FaultConfig::new(7).with_faults(lossy));
//!     let (link, _) = tokio::join!(
//!         gateway.attach(a, LinkOptions::serial(1_000_000)),
//!         device.attach(b, LinkOptions::serial(1_000_000)),
//!     );
//!     let link = link?;
//!     for i in 0..20 {
//!         let answer = link.call("echo", format!("ping {i}")).await?;
//!         assert_eq!(answer.text().await?, format!("ping {i}"));
//!     }
//!     Ok(())
//! })
//! # }
//! ```
