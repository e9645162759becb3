//! The benchmark contract (BENCH.md): `cargo bench --bench scenarios -- [--quick] [SCENARIO ...]`.
//!
//! Runs the named scenarios (all without names), prints a row and the goals of
//! each, writes `target/bench/<scenario>.json`, and exits non-zero if any scenario
//! lost or corrupted data (or could not run). BENCHMARKS.md has the latest results.
//!
//! | module | concept |
//! |---|---|
//! | `report` | JSON fields, rows, goals, failures; writing them |
//! | `data`, `stats`, `process` | test data and its checks; summaries; /proc figures |
//! | `peers` | two netcore endpoints on two threads joined by one link |
//! | `raw_tcp`, `yamux_base`, `threads` | the baselines, their connections kept on threads of their own |
//! | one module per scenario | `tcp_bulk`, `tcp_mux`, `tcp_rpc`, `serial_hol`, `overhead`, `large_spool`, `lossy`, `idle_cpu`, `gateway_scale`, `radio_pacing`, `resume`, `secure` (not in the contract: the authenticated mode's costs), `accept_burst` (not in the contract: `serve_tcp` against a sequential accept loop) |
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "scenarios/data.rs"]
mod data;
#[path = "scenarios/peers.rs"]
mod peers;
#[path = "scenarios/process.rs"]
mod process;
#[path = "scenarios/raw_tcp.rs"]
mod raw_tcp;
#[path = "scenarios/report.rs"]
mod report;
#[path = "scenarios/stats.rs"]
mod stats;
#[path = "scenarios/threads.rs"]
mod threads;
#[path = "scenarios/yamux_base.rs"]
mod yamux_base;

#[path = "scenarios/accept_burst.rs"]
mod accept_burst;
#[path = "scenarios/gateway_scale.rs"]
mod gateway_scale;
#[path = "scenarios/idle_cpu.rs"]
mod idle_cpu;
#[path = "scenarios/large_spool.rs"]
mod large_spool;
#[path = "scenarios/lossy.rs"]
mod lossy;
#[path = "scenarios/overhead.rs"]
mod overhead;
#[path = "scenarios/radio_pacing.rs"]
mod radio_pacing;
#[path = "scenarios/resume.rs"]
mod resume;
#[path = "scenarios/secure.rs"]
mod secure;
#[path = "scenarios/serial_hol.rs"]
mod serial_hol;
#[path = "scenarios/tcp_bulk.rs"]
mod tcp_bulk;
#[path = "scenarios/tcp_mux.rs"]
mod tcp_mux;
#[path = "scenarios/tcp_rpc.rs"]
mod tcp_rpc;

use report::Report;
use std::process::ExitCode;

/// A scenario: its name and how to run it (`quick` selects the smaller sizes).
type Scenario = (&'static str, fn(bool) -> Result<Report, peers::Error>);

/// Every scenario, in the contract's order.
const SCENARIOS: &[Scenario] = &[
    ("tcp_bulk", tcp_bulk::run),
    ("tcp_mux", tcp_mux::run),
    ("tcp_rpc", tcp_rpc::run),
    ("serial_hol", serial_hol::run),
    ("overhead", overhead::run),
    ("large_spool", large_spool::run),
    ("lossy", lossy::run),
    ("idle_cpu", idle_cpu::run),
    ("gateway_scale", gateway_scale::run),
    ("radio_pacing", radio_pacing::run),
    ("resume", resume::run),
    ("secure", secure::run),
    ("accept_burst", accept_burst::run),
];

fn usage() -> String {
    let names: Vec<&str> = SCENARIOS.iter().map(|(name, _)| *name).collect();
    format!(
        "usage: cargo bench --bench scenarios -- [--quick] [SCENARIO ...]\nscenarios: {}",
        names.join(" ")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == large_spool::CHILD_FLAG) {
        let quick = args.iter().any(|a| a == "--quick");
        return if large_spool::child(quick) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut quick = false;
    let mut chosen: Vec<Scenario> = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            // cargo bench passes `--bench` to harness = false targets.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            name => match SCENARIOS.iter().find(|(n, _)| *n == name) {
                Some(scenario) => chosen.push(*scenario),
                None => {
                    eprintln!("unknown scenario or flag {name:?}\n{}", usage());
                    return ExitCode::from(2);
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = SCENARIOS.to_vec();
    }
    let dir = report::output_dir();
    println!(
        "netcore scenarios ({}), JSON in {}",
        if quick { "quick sizes" } else { "full sizes" },
        dir.display()
    );
    let mut failed = Vec::new();
    let mut goals_missed = 0;
    for (name, run) in chosen {
        let started = std::time::Instant::now();
        let report = match run(quick) {
            Ok(report) => report,
            Err(error) => Report::errored(name, &error.to_string()),
        };
        report.print();
        println!("{:<12}   ({:.1} s)", "", started.elapsed().as_secs_f64());
        if let Err(error) = report.write_json(&dir, quick) {
            eprintln!("{name}: cannot write its JSON: {error}");
            failed.push(name);
        }
        goals_missed += report.goals.iter().filter(|g| !g.met).count();
        if !report.failures.is_empty() {
            failed.push(name);
        }
    }
    println!("goals not met: {goals_missed}");
    if failed.is_empty() {
        println!("all data verified");
        ExitCode::SUCCESS
    } else {
        println!(
            "FAILED (data lost or corrupted, or not run): {}",
            failed.join(" ")
        );
        ExitCode::FAILURE
    }
}
