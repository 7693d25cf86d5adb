//! Facts about the machine a benchmark ran on, for the header of a results section.

use std::time::SystemTime;

/// Date, kernel, CPU model and core count.
#[derive(Debug, Clone)]
pub struct SysInfo {
    /// UTC date and time, RFC 3339.
    pub date: String,
    /// `uname -sr`.
    pub kernel: String,
    /// The first `model name` in /proc/cpuinfo.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
}

/// Collect the facts; anything unreadable becomes "unknown".
pub fn collect() -> SysInfo {
    let kernel = std::process::Command::new("uname")
        .arg("-sr")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    SysInfo {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        kernel,
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
    }
}
