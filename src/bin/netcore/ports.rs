//! `netcore ports`: the serial ports of this machine with their USB identities
//! (vendor and product ids, serial number, interface, strings), as a table or
//! as a JSON array (`--json`).

use crate::output::{self, CliError};
use clap::Args;
use netcore::actors::transport::{available_ports, PortInfo};

/// `netcore ports`.
#[derive(Args, Debug)]
pub struct PortsArgs {
    /// A JSON array of `{"path", "usb": null | {"vid", "pid", "serial",
    /// "manufacturer", "product", "interface"}}` (ids as 4 hexadecimal digits).
    #[arg(long)]
    pub json: bool,
}

/// Runs `netcore ports`.
pub fn run(args: PortsArgs) -> Result<(), CliError> {
    let ports =
        available_ports().map_err(|e| CliError::new(format!("listing serial ports: {e}")))?;
    if args.json {
        let list: Vec<serde_json::Value> = ports.iter().map(port_json).collect();
        return output::json_line(&list);
    }
    if ports.is_empty() {
        eprintln!("no serial ports found");
        return Ok(());
    }
    for port in &ports {
        output::line(describe(port))?;
    }
    Ok(())
}

/// One port in a line: its path, then `usb=VID:PID[:SERIAL]` (the form a
/// `--serial` option takes) and what the device says it is.
fn describe(port: &PortInfo) -> String {
    let path = port.path.display();
    match &port.usb {
        None => format!("{path}"),
        Some(usb) => {
            let mut text = format!("{path}  usb={:04x}:{:04x}", usb.vendor_id, usb.product_id);
            if let Some(serial) = &usb.serial_number {
                text.push(':');
                text.push_str(serial);
            }
            if let Some(interface) = usb.interface {
                text.push_str(&format!("  interface {interface}"));
            }
            let names: Vec<&str> = [usb.manufacturer.as_deref(), usb.product.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if !names.is_empty() {
                text.push_str("  ");
                text.push_str(&names.join(" "));
            }
            text
        }
    }
}

fn port_json(port: &PortInfo) -> serde_json::Value {
    let usb = port.usb.as_ref().map(|usb| {
        serde_json::json!({
            "vid": format!("{:04x}", usb.vendor_id),
            "pid": format!("{:04x}", usb.product_id),
            "serial": usb.serial_number,
            "manufacturer": usb.manufacturer,
            "product": usb.product,
            "interface": usb.interface,
        })
    });
    serde_json::json!({ "path": port.path.display().to_string(), "usb": usb })
}
