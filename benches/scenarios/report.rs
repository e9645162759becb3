//! What a scenario hands back: its JSON fields, a human-readable row, its goals
//! (met or not) and any verification failure; and writing them out.

use crate::stats::{median, PairedRatio};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A JSON value (only what the reports need).
#[derive(Clone, Debug)]
pub enum Json {
    /// A number (non-finite values are written as `null`).
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn write(&self, out: &mut String) {
        match self {
            Json::Num(n) if n.is_finite() => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    let _ = write!(out, "{}", *n as i64);
                } else {
                    let _ = write!(out, "{n}");
                }
            }
            Json::Num(_) => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(key, out);
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as JSON text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

impl From<f64> for Json {
    fn from(n: f64) -> Json {
        Json::Num(n)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Num(n as f64)
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Json {
        Json::Num(n as f64)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<Vec<f64>> for Json {
    fn from(v: Vec<f64>) -> Json {
        Json::Arr(v.into_iter().map(Json::Num).collect())
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One goal of the contract and whether this run met it.
#[derive(Clone, Debug)]
pub struct Goal {
    /// What was required, e.g. `ratio_raw ≥ 0.80`.
    pub what: String,
    /// Met in this run.
    pub met: bool,
    /// The measured value(s), or why the goal could not be met.
    pub got: String,
}

/// The outcome of one scenario.
#[derive(Debug)]
pub struct Report {
    /// Scenario name (also the JSON file's name).
    pub scenario: &'static str,
    fields: Vec<(String, Json)>,
    /// The human-readable row.
    pub row: String,
    /// The contract's goals for this scenario.
    pub goals: Vec<Goal>,
    /// Lost or corrupted data, or a run that did not complete: any makes the exit
    /// code non-zero.
    pub failures: Vec<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            fields: Vec::new(),
            row: String::new(),
            goals: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// A report for a scenario that could not run at all.
    pub fn errored(scenario: &'static str, error: &str) -> Report {
        let mut report = Report::new(scenario);
        report.field("error", Json::Str(error.to_string()));
        report.row = format!("error: {error}");
        report.failures.push(format!("did not complete: {error}"));
        report
    }

    /// Adds a JSON field.
    pub fn field(&mut self, name: &str, value: impl Into<Json>) {
        self.fields.push((name.to_string(), value.into()));
    }

    /// Records a goal; `got` says what was measured.
    pub fn goal(&mut self, what: &str, met: bool, got: String) {
        self.goals.push(Goal {
            what: what.to_string(),
            met,
            got,
        });
    }

    /// Adds a comparison with a baseline: `ratio_<name>` (the median of the
    /// per-round paired ratios), `ratio_<name>_spread` (smallest, largest) and
    /// `ratio_<name>_rounds`.
    pub fn ratio(&mut self, name: &str, ratio: &PairedRatio) {
        self.field(&format!("ratio_{name}"), ratio.median);
        self.field(
            &format!("ratio_{name}_spread"),
            vec![ratio.spread.0, ratio.spread.1],
        );
        self.field(&format!("ratio_{name}_rounds"), ratio.rounds.clone());
    }

    /// Adds what both TCP throughput scenarios report against their baselines:
    /// the medians of each system's rounds in MB/s (`netcore_mbps`,
    /// `raw_tcp_mbps`, `yamux_mbps`), the per-round figures, `ratio_raw` and
    /// `ratio_yamux` as medians of per-round paired ratios with their spread
    /// ([`Report::ratio`]), and the row `<what>: netcore … MB/s, raw TCP … MB/s,
    /// yamux … MB/s; ratio_raw …, ratio_yamux …`. Returns both ratios for the goals.
    pub fn throughput_vs_baselines(
        &mut self,
        what: &str,
        netcore: Vec<f64>,
        raw: Vec<f64>,
        yamux: Vec<f64>,
    ) -> (PairedRatio, PairedRatio) {
        let (n, r, y) = (median(&netcore), median(&raw), median(&yamux));
        let ratio_raw = PairedRatio::of(&netcore, &raw);
        let ratio_yamux = PairedRatio::of(&netcore, &yamux);
        self.field("netcore_mbps", n);
        self.field("raw_tcp_mbps", r);
        self.field("yamux_mbps", y);
        self.ratio("raw", &ratio_raw);
        self.ratio("yamux", &ratio_yamux);
        self.field("netcore_rounds_mbps", netcore);
        self.field("raw_tcp_rounds_mbps", raw);
        self.field("yamux_rounds_mbps", yamux);
        self.row = format!(
            "{what}: netcore {n:.0} MB/s, raw TCP {r:.0} MB/s, yamux {y:.0} MB/s; ratio_raw {}, ratio_yamux {} (medians of per-round ratios, with their range)",
            ratio_raw.describe(),
            ratio_yamux.describe()
        );
        (ratio_raw, ratio_yamux)
    }

    /// Records the goal `ratio ≥ at`, met when the median of the paired ratios is.
    pub fn ratio_goal(&mut self, what: &str, ratio: &PairedRatio, at: f64) {
        self.goal(what, ratio.median >= at, ratio.describe());
    }

    /// Records a verification failure (data lost or corrupted).
    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }

    /// The JSON object: the fields plus `quick`, `unix_time`, `verified` and the goals.
    pub fn to_json(&self, quick: bool) -> Json {
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut fields = vec![("scenario".to_string(), Json::Str(self.scenario.into()))];
        fields.extend(self.fields.iter().cloned());
        fields.push(("quick".into(), Json::Bool(quick)));
        fields.push(("unix_time".into(), Json::Num(unix_time as f64)));
        fields.push(("verified".into(), Json::Bool(self.failures.is_empty())));
        if !self.failures.is_empty() {
            let failures = self.failures.iter().map(|f| Json::Str(f.clone()));
            fields.push(("failures".into(), Json::Arr(failures.collect())));
        }
        let goals = self.goals.iter().map(|g| {
            Json::Obj(vec![
                ("goal".into(), Json::Str(g.what.clone())),
                ("met".into(), Json::Bool(g.met)),
            ])
        });
        fields.push(("goals".into(), Json::Arr(goals.collect())));
        Json::Obj(fields)
    }

    /// Writes `<dir>/<scenario>.json`.
    pub fn write_json(&self, dir: &Path, quick: bool) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.scenario));
        let mut text = self.to_json(quick).to_text();
        text.push('\n');
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Prints the row, the goals and the failures.
    pub fn print(&self) {
        println!("{:<12} {}", self.scenario, self.row);
        for goal in &self.goals {
            let verdict = if goal.met { "met    " } else { "NOT MET" };
            println!("{:<12}   goal {verdict} {}  ({})", "", goal.what, goal.got);
        }
        for failure in &self.failures {
            println!("{:<12}   FAILED: {failure}", "");
        }
    }
}

/// Where the JSON files go: `<target dir>/bench`, found from the running binary
/// (`<target>/<profile>/deps/scenarios-…`), else `./target/bench`.
pub fn output_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|target| target.join("CACHEDIR.TAG").exists() || target.ends_with("target"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench")
}
