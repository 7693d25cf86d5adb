//! Idle cost of one process, read from `/proc`: CPU time, context switches (wake-ups),
//! read/write system calls, and memory (RSS, PSS).
//!
//! Counters are summed over every thread in `/proc/<pid>/task/*`; a sample is a
//! snapshot, and the cost over an interval is the difference of two snapshots.

use std::path::Path;

/// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on every Linux we run on).
const CLK_TCK: f64 = 100.0;

/// Cumulative counters of one process (all threads) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// voluntary + nonvoluntary context switches over all threads.
    pub switches: u64,
    /// read + write system calls (`syscr` + `syscw` of `/proc/<pid>/io`).
    pub syscalls: u64,
}

/// Memory of one process at one moment, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size.
    pub rss_kib: u64,
    /// Proportional set size.
    pub pss_kib: u64,
}

/// The counters of `pid`, or None when it is gone.
pub fn counters(pid: u32) -> Option<Counters> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let cpu_ticks = cpu_ticks(&stat)?;
    let mut switches = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        if let Ok(status) = std::fs::read_to_string(t.path().join("status")) {
            switches += switches_of(&status);
        }
    }
    let syscalls = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .map(|io| field(&io, "syscr") + field(&io, "syscw"))
        .unwrap_or(0);
    Some(Counters {
        cpu_ticks,
        switches,
        syscalls,
    })
}

/// RSS and PSS of `pid` from `smaps_rollup`, or None when it is gone.
pub fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(
        Path::new("/proc")
            .join(pid.to_string())
            .join("smaps_rollup"),
    )
    .ok()?;
    Some(Memory {
        rss_kib: field(&text, "Rss"),
        pss_kib: field(&text, "Pss"),
    })
}

/// The cost over `secs` seconds between two snapshots: CPU as a percentage of one core,
/// context switches per second, read/write syscalls per second.
pub fn rates(before: Counters, after: Counters, secs: f64) -> (f64, f64, f64) {
    let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs.max(1e-9);
    (
        d(after.cpu_ticks, before.cpu_ticks) / CLK_TCK * 100.0,
        d(after.switches, before.switches),
        d(after.syscalls, before.syscalls),
    )
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15, after the `(comm)`).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 → index 11, stime → index 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn switches_of(status: &str) -> u64 {
    field(status, "voluntary_ctxt_switches") + field(status, "nonvoluntary_ctxt_switches")
}

/// The first number after `name:` at the start of a line.
fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.split_whitespace().next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_switches_and_memory_fields() {
        let stat = "42 (pg baton) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(12));
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(switches_of(status), 13);
        let smaps = "Rss:               11000 kB\nPss:                3300 kB\n";
        assert_eq!(field(smaps, "Rss"), 11000);
        assert_eq!(field(smaps, "Pss"), 3300);
    }

    #[test]
    fn own_process_is_measurable() {
        let me = std::process::id();
        assert!(counters(me).is_some());
        assert!(memory(me).is_some_and(|m| m.rss_kib > 0));
        let (cpu, sw, _) = rates(
            Counters {
                cpu_ticks: 0,
                switches: 0,
                syscalls: 0,
            },
            Counters {
                cpu_ticks: 10,
                switches: 50,
                syscalls: 0,
            },
            10.0,
        );
        assert!((cpu - 1.0).abs() < 1e-9);
        assert!((sw - 5.0).abs() < 1e-9);
    }
}
