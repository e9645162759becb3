//! The gateway's config file (TOML): what it opens (`[[device]]`, `[[uplink]]`),
//! where it listens (`[[listener]]`), and how requests and telemetry move
//! between them (`[[forward]]`, `[[telemetry]]`). docs/gateway-config.md
//! documents every field; examples/gateway.toml is a commented example.
//!
//! [`Config::parse`] reads and checks a file without opening anything: syntax,
//! unknown fields and wrong types (from the TOML parser), then what only the
//! whole file tells (names used twice, rules naming what does not exist, link
//! settings the library refuses). Every error names its line, column and field.

use netcore::actors::transport::{LinkSpec, SpecField};
use netcore::ReconnectPolicy;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    device: Vec<DeviceSection>,
    #[serde(default)]
    listener: Vec<ListenerSection>,
    #[serde(default)]
    uplink: Vec<UplinkSection>,
    #[serde(default)]
    forward: Vec<ForwardSection>,
    #[serde(default)]
    telemetry: Vec<TelemetrySection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    name: Option<String>,
    http: Option<Spanned<String>>,
    call_timeout: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    name: Spanned<String>,
    serial: Option<Spanned<String>>,
    usb: Option<Spanned<String>>,
    interface: Option<Spanned<u8>>,
    tcp: Option<Spanned<String>>,
    unix: Option<Spanned<String>>,
    baud: Option<Spanned<u32>>,
    data: Option<Spanned<u8>>,
    parity: Option<Spanned<String>>,
    stop: Option<Spanned<u8>>,
    flow: Option<Spanned<String>>,
    dialect: Option<Spanned<String>>,
    key_id: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
    reconnect: Option<Spanned<ReconnectSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconnectSection {
    initial: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    jitter: Option<Spanned<f64>>,
    give_up: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    name: Spanned<String>,
    tcp: Option<Spanned<String>>,
    unix: Option<Spanned<String>>,
    dialect: Option<Spanned<String>>,
    keys_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UplinkSection {
    name: Spanned<String>,
    tcp: Spanned<String>,
    dialect: Option<Spanned<String>>,
    key_id: Option<Spanned<String>>,
    psk_file: Option<Spanned<String>>,
    reconnect: Option<Spanned<ReconnectSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardSection {
    route: Spanned<String>,
    device: Spanned<String>,
    to: Option<String>,
    from: Option<Spanned<Vec<Spanned<String>>>>,
    timeout: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetrySection {
    route: Spanned<String>,
    from: Option<Spanned<Vec<Spanned<String>>>>,
    to: Spanned<Vec<Spanned<String>>>,
}

/// A checked gateway config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Names the gateway in logs, metrics and the status page.
    pub name: String,
    /// Where to serve `/metrics` and the status page, if anywhere.
    pub http: Option<SocketAddr>,
    /// The default timeout of forwarded calls.
    pub call_timeout: Duration,
    /// Devices, in file order.
    pub devices: Vec<Device>,
    /// Listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Uplinks, in file order.
    pub uplinks: Vec<Uplink>,
    /// Forwarding rules, in file order.
    pub forwards: Vec<Forward>,
    /// Telemetry rules, in file order.
    pub telemetry: Vec<Telemetry>,
}

/// The key a link this gateway opens proves to its peer.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The key id the peer knows the key by.
    pub key_id: String,
    /// The file holding the key (resolved against the config file's folder).
    pub psk_file: PathBuf,
}

/// A device the gateway opens and keeps open.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its name, used by the rules, logs and metrics.
    pub name: String,
    /// How to open it.
    pub spec: LinkSpec,
    /// The key the gateway proves to the device, if the link is authenticated.
    pub identity: Option<Identity>,
    /// How the link retries after losing the device.
    pub reconnect: ReconnectPolicy,
}

/// Where a listener listens.
#[derive(Debug, Clone)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A listener: every connection accepted is a link of the gateway.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// Where.
    pub addr: ListenAddr,
    /// The keys of the peers allowed in (they must authenticate), if any.
    pub keys_file: Option<PathBuf>,
}

/// An uplink: a TCP connection the gateway opens and keeps open.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// Its name.
    pub name: String,
    /// `tcp:HOST:PORT`.
    pub spec: LinkSpec,
    /// The key the gateway proves to the far end, if authenticated.
    pub identity: Option<Identity>,
    /// How the gateway retries after losing the connection.
    pub reconnect: ReconnectPolicy,
}

/// Requests under `route` from the `from` links go to `device` as `to` + rest.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The route prefix matched.
    pub route: String,
    /// The device's name.
    pub device: String,
    /// What replaces the prefix on the way to the device.
    pub to: String,
    /// Listener and uplink names whose requests this rule takes.
    pub from: Vec<String>,
    /// The forwarded call's timeout.
    pub timeout: Duration,
}

/// Messages under `route` from the `from` devices are sent on to every link of
/// `to` (uplinks, listeners' connections).
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// The route prefix matched.
    pub route: String,
    /// Device names.
    pub from: Vec<String>,
    /// Uplink and listener names.
    pub to: Vec<String>,
}

/// One problem in a config file: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, 0 when the error has no place (the file could not be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, as a dotted path (`device.baud`), or empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects errors with their places in the text.
struct Errors<'a> {
    text: &'a str,
    found: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    fn add(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.found.push(ConfigError {
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

/// The key of the `key = value` line holding byte `offset`, if any: names the
/// field of a type error the parser reports at the value.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |nl| nl + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_owned())
}

impl Config {
    /// Reads and checks the config file at `path`. Relative paths in it
    /// (key files, Unix sockets) are resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            vec![ConfigError {
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("reading {}: {error}", path.display()),
            }]
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base)
    }

    /// Checks config `text`; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
        let file: File = toml::from_str(text).map_err(|error| {
            let span = error.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            let message = error.message().trim().to_owned();
            let field = key_at(text, span.start).unwrap_or_default();
            vec![ConfigError {
                line,
                column,
                field,
                message,
            }]
        })?;
        let mut errors = Errors {
            text,
            found: Vec::new(),
        };
        let config = check(file, base, &mut errors);
        if errors.found.is_empty() {
            Ok(config)
        } else {
            errors.found.sort_by_key(|e| (e.line, e.column));
            Err(errors.found)
        }
    }
}

/// What kind of thing a name names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Device,
    Listener,
    Uplink,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Listener => "listener",
            Kind::Uplink => "uplink",
        }
    }
}

fn check(file: File, base: &Path, errors: &mut Errors<'_>) -> Config {
    let resolve = |path: &str| -> PathBuf {
        let path = PathBuf::from(path);
        if path.is_absolute() {
            path
        } else {
            base.join(path)
        }
    };
    let mut names: Vec<(String, Kind)> = Vec::new();
    let mut name = |errors: &mut Errors<'_>, name: &Spanned<String>, kind: Kind| {
        let field = format!("{}.name", kind.noun());
        if name.get_ref().is_empty() || name.get_ref().contains(char::is_whitespace) {
            errors.add(
                name.span(),
                field,
                "a name is a non-empty word without spaces",
            );
        } else if let Some((_, other)) = names.iter().find(|(n, _)| n == name.get_ref()) {
            errors.add(
                name.span(),
                field,
                format!(
                    "the name {:?} is taken (by a {}): devices, listeners and uplinks need distinct names",
                    name.get_ref(),
                    other.noun()
                ),
            );
        } else {
            names.push((name.get_ref().clone(), kind));
        }
    };

    let gateway = &file.gateway;
    let http = gateway
        .http
        .as_ref()
        .and_then(|addr| match addr.get_ref().parse::<SocketAddr>() {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                errors.add(
                    addr.span(),
                    "gateway.http",
                    format!("{:?} is not an address (IP:PORT)", addr.get_ref()),
                );
                None
            }
        });
    let call_timeout = seconds(
        errors,
        gateway.call_timeout.as_ref(),
        "gateway.call_timeout",
        Duration::from_secs(30),
    );

    let mut devices = Vec::new();
    for section in &file.device {
        name(errors, &section.name, Kind::Device);
        dialect(errors, section.dialect.as_ref(), "device.dialect");
        let identity = identity(
            errors,
            &section.name,
            section.key_id.as_ref(),
            section.psk_file.as_ref(),
            "device",
            &resolve,
        );
        let reconnect = reconnect(
            errors,
            section.reconnect.as_ref(),
            "device",
            ReconnectPolicy::serial(),
        );
        if let Some(spec) = device_spec(errors, section) {
            devices.push(Device {
                name: section.name.get_ref().clone(),
                spec,
                identity,
                reconnect,
            });
        }
    }

    let mut listeners = Vec::new();
    for section in &file.listener {
        name(errors, &section.name, Kind::Listener);
        dialect(errors, section.dialect.as_ref(), "listener.dialect");
        let addr = match (&section.tcp, &section.unix) {
            (Some(tcp), None) => {
                if tcp
                    .get_ref()
                    .rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_err())
                {
                    errors.add(
                        tcp.span(),
                        "listener.tcp",
                        format!("{:?} is not HOST:PORT", tcp.get_ref()),
                    );
                }
                Some(ListenAddr::Tcp(tcp.get_ref().clone()))
            }
            (None, Some(unix)) => Some(ListenAddr::Unix(resolve(unix.get_ref()))),
            (Some(_), Some(unix)) => {
                errors.add(
                    unix.span(),
                    "listener.unix",
                    "give either tcp or unix, not both",
                );
                None
            }
            (None, None) => {
                errors.add(
                    section.name.span(),
                    "listener",
                    format!(
                        "listener {:?} has no address: give tcp or unix",
                        section.name.get_ref()
                    ),
                );
                None
            }
        };
        if let Some(addr) = addr {
            listeners.push(Listener {
                name: section.name.get_ref().clone(),
                addr,
                keys_file: section.keys_file.as_ref().map(|p| resolve(p.get_ref())),
            });
        }
    }

    let mut uplinks = Vec::new();
    for section in &file.uplink {
        name(errors, &section.name, Kind::Uplink);
        dialect(errors, section.dialect.as_ref(), "uplink.dialect");
        let identity = identity(
            errors,
            &section.name,
            section.key_id.as_ref(),
            section.psk_file.as_ref(),
            "uplink",
            &resolve,
        );
        let reconnect = reconnect(
            errors,
            section.reconnect.as_ref(),
            "uplink",
            ReconnectPolicy::stream(),
        );
        let tcp = section.tcp.get_ref();
        if tcp
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            errors.add(
                section.tcp.span(),
                "uplink.tcp",
                format!("{tcp:?} is not HOST:PORT"),
            );
        } else {
            uplinks.push(Uplink {
                name: section.name.get_ref().clone(),
                spec: LinkSpec::TcpConnect(tcp.clone()),
                identity,
                reconnect,
            });
        }
    }

    let kind_of = |name: &str| names.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
    let mut forwards = Vec::new();
    let mut routes: Vec<String> = Vec::new();
    for section in &file.forward {
        let route = section.route.get_ref();
        if route.is_empty() {
            errors.add(
                section.route.span(),
                "forward.route",
                "a route prefix is not empty",
            );
        } else if routes.contains(route) {
            errors.add(
                section.route.span(),
                "forward.route",
                format!("another rule forwards {route:?} already"),
            );
        }
        routes.push(route.clone());
        match kind_of(section.device.get_ref()) {
            Some(Kind::Device) => {}
            Some(other) => errors.add(
                section.device.span(),
                "forward.device",
                format!(
                    "{:?} is a {}, not a device",
                    section.device.get_ref(),
                    other.noun()
                ),
            ),
            None => errors.add(
                section.device.span(),
                "forward.device",
                format!("no device is named {:?}", section.device.get_ref()),
            ),
        }
        let from = match &section.from {
            Some(from) => {
                for entry in from.get_ref() {
                    match kind_of(entry.get_ref()) {
                        Some(Kind::Listener | Kind::Uplink) => {}
                        Some(Kind::Device) => errors.add(
                            entry.span(),
                            "forward.from",
                            format!("{:?} is a device: requests are forwarded from listeners and uplinks", entry.get_ref()),
                        ),
                        None => errors.add(
                            entry.span(),
                            "forward.from",
                            format!("no listener or uplink is named {:?}", entry.get_ref()),
                        ),
                    }
                }
                from.get_ref().iter().map(|e| e.get_ref().clone()).collect()
            }
            None => names
                .iter()
                .filter(|(_, k)| *k != Kind::Device)
                .map(|(n, _)| n.clone())
                .collect(),
        };
        let timeout = seconds(
            errors,
            section.timeout.as_ref(),
            "forward.timeout",
            call_timeout,
        );
        forwards.push(Forward {
            route: route.clone(),
            device: section.device.get_ref().clone(),
            to: section.to.clone().unwrap_or_default(),
            from,
            timeout,
        });
    }

    let mut telemetry = Vec::new();
    for section in &file.telemetry {
        let route = section.route.get_ref();
        if route.is_empty() {
            errors.add(
                section.route.span(),
                "telemetry.route",
                "a route prefix is not empty",
            );
        } else if routes.contains(route) {
            errors.add(
                section.route.span(),
                "telemetry.route",
                format!("another rule takes {route:?} already"),
            );
        }
        routes.push(route.clone());
        let from = match &section.from {
            Some(from) => {
                for entry in from.get_ref() {
                    match kind_of(entry.get_ref()) {
                        Some(Kind::Device) => {}
                        Some(other) => errors.add(
                            entry.span(),
                            "telemetry.from",
                            format!(
                                "{:?} is a {}: telemetry comes from devices",
                                entry.get_ref(),
                                other.noun()
                            ),
                        ),
                        None => errors.add(
                            entry.span(),
                            "telemetry.from",
                            format!("no device is named {:?}", entry.get_ref()),
                        ),
                    }
                }
                from.get_ref().iter().map(|e| e.get_ref().clone()).collect()
            }
            None => names
                .iter()
                .filter(|(_, k)| *k == Kind::Device)
                .map(|(n, _)| n.clone())
                .collect(),
        };
        if section.to.get_ref().is_empty() {
            errors.add(
                section.to.span(),
                "telemetry.to",
                "name at least one uplink or listener",
            );
        }
        for entry in section.to.get_ref() {
            match kind_of(entry.get_ref()) {
                Some(Kind::Listener | Kind::Uplink) => {}
                Some(Kind::Device) => errors.add(
                    entry.span(),
                    "telemetry.to",
                    format!(
                        "{:?} is a device: telemetry goes to listeners and uplinks",
                        entry.get_ref()
                    ),
                ),
                None => errors.add(
                    entry.span(),
                    "telemetry.to",
                    format!("no listener or uplink is named {:?}", entry.get_ref()),
                ),
            }
        }
        telemetry.push(Telemetry {
            route: route.clone(),
            from,
            to: section
                .to
                .get_ref()
                .iter()
                .map(|e| e.get_ref().clone())
                .collect(),
        });
    }

    Config {
        name: gateway.name.clone().unwrap_or_else(|| "gateway".to_owned()),
        http,
        call_timeout,
        devices,
        listeners,
        uplinks,
        forwards,
        telemetry,
    }
}

/// A duration in seconds: positive and finite.
fn seconds(
    errors: &mut Errors<'_>,
    value: Option<&Spanned<f64>>,
    field: &str,
    default: Duration,
) -> Duration {
    let Some(value) = value else {
        return default;
    };
    match Duration::try_from_secs_f64(*value.get_ref()) {
        Ok(duration) if !duration.is_zero() => duration,
        _ => {
            errors.add(
                value.span(),
                field,
                "a duration is a positive number of seconds",
            );
            default
        }
    }
}

/// Only the native dialect: the library's links speak no other.
fn dialect(errors: &mut Errors<'_>, value: Option<&Spanned<String>>, field: &str) {
    if let Some(value) = value {
        match value.get_ref().as_str() {
            "native" => {}
            "py" => errors.add(
                value.span(),
                field,
                "the library's links speak the native dialect only (the Python dialect exists at the message level, in netcore-proto)",
            ),
            other => errors.add(value.span(), field, format!("unknown dialect {other:?} (native)")),
        }
    }
}

fn identity(
    errors: &mut Errors<'_>,
    name: &Spanned<String>,
    key_id: Option<&Spanned<String>>,
    psk_file: Option<&Spanned<String>>,
    noun: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<Identity> {
    match (key_id, psk_file) {
        (Some(key_id), Some(psk_file)) => Some(Identity {
            key_id: key_id.get_ref().clone(),
            psk_file: resolve(psk_file.get_ref()),
        }),
        (None, None) => None,
        (Some(key_id), None) => {
            errors.add(
                key_id.span(),
                format!("{noun}.psk_file"),
                format!("{noun} {:?} has a key_id and no psk_file", name.get_ref()),
            );
            None
        }
        (None, Some(psk_file)) => {
            errors.add(
                psk_file.span(),
                format!("{noun}.key_id"),
                format!("{noun} {:?} has a psk_file and no key_id", name.get_ref()),
            );
            None
        }
    }
}

fn reconnect(
    errors: &mut Errors<'_>,
    section: Option<&Spanned<ReconnectSection>>,
    noun: &str,
    default: ReconnectPolicy,
) -> ReconnectPolicy {
    let Some(section) = section else {
        return default;
    };
    let section = section.get_ref();
    let mut policy = default;
    policy.initial = seconds(
        errors,
        section.initial.as_ref(),
        &format!("{noun}.reconnect.initial"),
        policy.initial,
    );
    policy.max = seconds(
        errors,
        section.max.as_ref(),
        &format!("{noun}.reconnect.max"),
        policy.max,
    );
    if let Some(jitter) = &section.jitter {
        if (0.0..=1.0).contains(jitter.get_ref()) {
            policy.jitter = *jitter.get_ref();
        } else {
            errors.add(
                jitter.span(),
                format!("{noun}.reconnect.jitter"),
                "jitter is a fraction from 0 to 1",
            );
        }
    }
    if section.give_up.is_some() {
        policy.give_up = Some(seconds(
            errors,
            section.give_up.as_ref(),
            &format!("{noun}.reconnect.give_up"),
            Duration::from_secs(60),
        ));
    }
    if policy.max < policy.initial {
        if let Some(max) = &section.max {
            errors.add(
                max.span(),
                format!("{noun}.reconnect.max"),
                "the longest wait is shorter than the first",
            );
        }
    }
    policy
}

/// The device's link spec, built as text from its fields and parsed by the
/// library, whose error names the field at fault.
fn device_spec(errors: &mut Errors<'_>, section: &DeviceSection) -> Option<LinkSpec> {
    let name = section.name.get_ref();
    let places = [&section.serial, &section.usb, &section.tcp, &section.unix];
    let given: Vec<&Spanned<String>> = places.iter().filter_map(|p| p.as_ref()).collect();
    if given.len() != 1 {
        let span = given.get(1).map_or(section.name.span(), |s| s.span());
        errors.add(
            span,
            "device",
            format!("device {name:?}: give exactly one of serial, usb, tcp, unix"),
        );
        return None;
    }
    let serial_fields: [(&str, Option<Range<usize>>); 6] = [
        ("baud", section.baud.as_ref().map(Spanned::span)),
        ("data", section.data.as_ref().map(Spanned::span)),
        ("parity", section.parity.as_ref().map(Spanned::span)),
        ("stop", section.stop.as_ref().map(Spanned::span)),
        ("flow", section.flow.as_ref().map(Spanned::span)),
        ("interface", section.interface.as_ref().map(Spanned::span)),
    ];
    let text = if let Some(tcp) = &section.tcp {
        format!("tcp:{}", tcp.get_ref())
    } else if let Some(unix) = &section.unix {
        format!("unix:{}", unix.get_ref())
    } else {
        let address = match (&section.serial, &section.usb) {
            (Some(path), _) => path.get_ref().clone(),
            (_, Some(usb)) => format!("usb={}", usb.get_ref()),
            _ => return None,
        };
        let mut text = format!(
            "serial:{address}@{}",
            section.baud.as_ref().map_or(115_200, |b| *b.get_ref())
        );
        let mut options = Vec::new();
        if let Some(data) = &section.data {
            options.push(format!("data={}", data.get_ref()));
        }
        if let Some(parity) = &section.parity {
            options.push(format!("parity={}", parity.get_ref()));
        }
        if let Some(stop) = &section.stop {
            options.push(format!("stop={}", stop.get_ref()));
        }
        if let Some(flow) = &section.flow {
            options.push(format!("flow={}", flow.get_ref()));
        }
        if let Some(interface) = &section.interface {
            options.push(format!("interface={}", interface.get_ref()));
        }
        if !options.is_empty() {
            text.push('?');
            text.push_str(&options.join("&"));
        }
        text
    };
    if section.tcp.is_some() || section.unix.is_some() {
        for (field, span) in &serial_fields {
            if let Some(span) = span {
                errors.add(
                    span.clone(),
                    format!("device.{field}"),
                    format!("device {name:?} is not a serial port: {field} applies to serial and usb devices"),
                );
            }
        }
    }
    match text.parse::<LinkSpec>() {
        Ok(spec) => Some(spec),
        Err(error) => {
            let (field, span) = match error.field() {
                SpecField::Baud => ("baud", section.baud.as_ref().map(Spanned::span)),
                SpecField::DataBits => ("data", section.data.as_ref().map(Spanned::span)),
                SpecField::Parity => ("parity", section.parity.as_ref().map(Spanned::span)),
                SpecField::StopBits => ("stop", section.stop.as_ref().map(Spanned::span)),
                SpecField::FlowControl => ("flow", section.flow.as_ref().map(Spanned::span)),
                SpecField::Usb => ("usb", section.usb.as_ref().map(Spanned::span)),
                SpecField::Option => ("interface", section.interface.as_ref().map(Spanned::span)),
                _ => (
                    if section.usb.is_some() {
                        "usb"
                    } else if section.tcp.is_some() {
                        "tcp"
                    } else if section.unix.is_some() {
                        "unix"
                    } else {
                        "serial"
                    },
                    given.first().map(|s| s.span()),
                ),
            };
            errors.add(
                span.unwrap_or(section.name.span()),
                format!("device.{field}"),
                format!("device {name:?}: {}", error.reason()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        Config::parse(text, Path::new("/etc/netcore")).expect_err("the config is refused")
    }

    const GOOD: &str = r#"
[gateway]
name = "bench"
http = "127.0.0.1:9100"

[[device]]
name = "sensor-1"
serial = "/dev/ttyUSB0"
baud = 57600
parity = "even"
data = 7
reconnect = { initial = 0.05, max = 1, give_up = 600 }

[[device]]
name = "pump"
usb = "0403:6001:A50285BI"
key_id = "gw"
psk_file = "keys/pump.psk"

[[listener]]
name = "operators"
tcp = "127.0.0.1:7000"

[[uplink]]
name = "cloud"
tcp = "cloud.example:7000"

[[forward]]
route = "sensor-1/"
device = "sensor-1"

[[forward]]
route = "pump/"
device = "pump"
to = "cmd/"
from = ["cloud"]
timeout = 5

[[telemetry]]
route = "telemetry/"
to = ["cloud", "operators"]
"#;

    #[test]
    fn a_good_config_parses_with_defaults_filled_in() {
        let config = Config::parse(GOOD, Path::new("/etc/netcore")).expect("valid");
        assert_eq!(config.name, "bench");
        assert_eq!(config.http, Some("127.0.0.1:9100".parse().expect("addr")));
        assert_eq!(config.devices.len(), 2);
        assert_eq!(
            config.devices[0].spec.to_string(),
            "serial:/dev/ttyUSB0@57600?data=7&parity=even"
        );
        assert_eq!(
            config.devices[0].reconnect.give_up,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            config.devices[0].reconnect.initial,
            Duration::from_millis(50)
        );
        let identity = config.devices[1].identity.as_ref().expect("identity");
        assert_eq!(identity.psk_file, Path::new("/etc/netcore/keys/pump.psk"));
        assert_eq!(config.forwards[0].from, ["operators", "cloud"]);
        assert_eq!(config.forwards[0].timeout, Duration::from_secs(30));
        assert_eq!(config.forwards[1].from, ["cloud"]);
        assert_eq!(config.forwards[1].to, "cmd/");
        assert_eq!(config.forwards[1].timeout, Duration::from_secs(5));
        assert_eq!(config.telemetry[0].from, ["sensor-1", "pump"]);
    }

    #[test]
    fn syntax_errors_and_unknown_fields_name_line_and_field() {
        let found = errors("[gateway]\nname = \"x\"\n\n[[device]]\nname = \"a\"\nserial = \"/dev/x\"\nbaudrate = 9600\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 7, "{found:?}");
        assert!(found[0].message.contains("baudrate"), "{found:?}");

        let found = errors("[[device]]\nname = \"a\"\nserial = \"/dev/x\"\nbaud = \"fast\"\n");
        assert_eq!(
            (found[0].line, found[0].field.as_str()),
            (4, "baud"),
            "{found:?}"
        );

        let found = errors("[[device]\nname = 1\n");
        assert_eq!(found[0].line, 1, "{found:?}");
    }

    #[test]
    fn semantic_errors_name_line_and_field() {
        let text = "[[device]]\nname = \"a\"\nserial = \"/dev/x\"\nparity = \"space\"\n\n[[device]]\nname = \"a\"\ntcp = \"h:1\"\n\n[[forward]]\nroute = \"b/\"\ndevice = \"b\"\n\n[[telemetry]]\nroute = \"t/\"\nto = [\"a\"]\n";
        let found = errors(text);
        let at: Vec<(usize, &str)> = found.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            at,
            [
                (4, "device.parity"),
                (7, "device.name"),
                (12, "forward.device"),
                (16, "telemetry.to"),
            ],
            "{found:?}"
        );
        assert!(
            found[2].message.contains("no device is named \"b\""),
            "{found:?}"
        );
    }

    #[test]
    fn devices_need_one_place_and_serial_settings_only_on_serial_ports() {
        let found = errors("[[device]]\nname = \"a\"\n");
        assert_eq!((found[0].line, found[0].field.as_str()), (2, "device"));
        let found = errors("[[device]]\nname = \"a\"\ntcp = \"h:1\"\nbaud = 9600\n");
        assert_eq!((found[0].line, found[0].field.as_str()), (4, "device.baud"));
        let found = errors("[[device]]\nname = \"a\"\nserial = \"/dev/x\"\nbaud = 0\n");
        assert_eq!((found[0].line, found[0].field.as_str()), (4, "device.baud"));
        let found = errors("[[device]]\nname = \"a\"\nusb = \"zz:1\"\n");
        assert_eq!((found[0].line, found[0].field.as_str()), (3, "device.usb"));
    }

    #[test]
    fn the_python_dialect_is_refused_by_name() {
        let found = errors("[[listener]]\nname = \"l\"\ntcp = \"0.0.0.0:1\"\ndialect = \"py\"\n");
        assert_eq!(
            (found[0].line, found[0].field.as_str()),
            (4, "listener.dialect")
        );
    }

    #[test]
    fn lines_and_columns_count_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(key_at("x = 1\n  baud = \"f\"", 13), Some("baud".to_owned()));
    }
}
