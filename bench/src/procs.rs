//! Process helpers for fault injection: the postmaster of a data directory, the
//! descendants of a process, and SIGKILL/SIGTERM by pid.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// The postmaster pid recorded in `data_dir/postmaster.pid`, if that file exists and
/// the process is alive.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse::<u32>().ok()?;
    alive(pid).then_some(pid)
}

/// Whether process `pid` exists (and is not a zombie we could still reap).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_state(&stat) != Some('Z'),
        Err(_) => false,
    }
}

/// Every live descendant of `root` (children, grandchildren, ...), not `root` itself.
pub fn descendants(root: u32) -> Vec<u32> {
    let table = parent_table();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &table {
            if ppid == p && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// Send `sig` to every pid in `pids`, ignoring those already gone.
pub fn signal_all(pids: &[u32], sig: Signal) {
    for &pid in pids {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), sig);
        }
    }
}

/// (pid, parent pid) of every process in /proc.
fn parent_table() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, stat_ppid(&stat)?))
        })
        .collect()
}

/// The fields after the command name in a /proc/PID/stat line (the name may hold spaces).
fn after_comm(stat: &str) -> Option<&str> {
    Some(stat[stat.rfind(')')? + 1..].trim_start())
}

fn stat_state(stat: &str) -> Option<char> {
    after_comm(stat)?.chars().next()
}

fn stat_ppid(stat: &str) -> Option<u32> {
    after_comm(stat)?.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_spaces_and_parens_in_the_name() {
        let stat = "4242 (postgres: a (b) c) S 17 4242 4242 0 -1";
        assert_eq!(stat_state(stat), Some('S'));
        assert_eq!(stat_ppid(stat), Some(17));
    }

    #[test]
    fn finds_own_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        signal_all(&[child.id()], Signal::SIGKILL);
        let _ = child.wait();
        assert!(!alive(child.id()));
    }
}
