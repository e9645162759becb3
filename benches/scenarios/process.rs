//! What the kernel says about this process: peak resident memory (`VmHWM`) and
//! CPU time (user + system, all threads).

use std::time::Duration;

/// Peak resident set size of this process in MiB (`VmHWM` in /proc/self/status).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// User + system CPU time of the whole process so far, from /proc/self/stat
/// (fields 14 and 15, in clock ticks).
pub fn cpu_time(ticks_per_sec: u64) -> Option<Duration> {
    stat_cpu_time("/proc/self/stat", ticks_per_sec)
}

/// The calling thread's id, to read its CPU time later with [`thread_cpu_time`].
pub fn thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// User + system CPU time of one thread of this process so far.
pub fn thread_cpu_time(tid: u64, ticks_per_sec: u64) -> Option<Duration> {
    stat_cpu_time(&format!("/proc/self/task/{tid}/stat"), ticks_per_sec)
}

fn stat_cpu_time(path: &str, ticks_per_sec: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_sec.max(1),
    ))
}

/// CPU time of every thread of the process in nanoseconds from
/// /proc/self/task/*/schedstat (first field): finer than the clock ticks of
/// [`cpu_time`], but only counts threads alive when read.
pub fn cpu_time_schedstat() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Resident set size of this process now, in KiB (`VmRSS` in /proc/self/status).
pub fn rss_kib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
