//! Whether the process that wrote an outcome record runs still, seen from
//! where `spanguard why` runs. A record's pid is counted in the writer's
//! PID namespace: a container's PID 1, read on the host from its spool
//! volume, is some other pid here, and pid 1 here is the host's init. Its
//! start (clock ticks after boot, the same from any namespace), its boot
//! and its namespace's inode say which process it was; the process is
//! looked for among those this namespace can see, by start and by its pid
//! in its own namespace (/proc/PID/status's NSpid, innermost last). Not
//! found, it ended only if its namespace's processes would be visible
//! here: from the host's namespace (every process is), or when others of
//! its namespace are. Otherwise (a sibling container's record, or one
//! whose container is gone, read from another container) that cannot be
//! told from here, and is said so rather than guessed.

use std::collections::{HashMap, HashSet};

use spanguard::export::outcome::{self, Outcome, ProcessStart};

/// The initial PID namespace's inode (the kernel's PROC_PID_INIT_INO, a
/// fixed number): the host's, from which every process is visible.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// What is known of a record's process from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs; `pid_here` is its pid in this namespace when that is not
    /// the record's (a container's process seen from outside).
    Running { pid_here: Option<u32> },
    /// It is gone (or the pid is another process's now).
    Ended,
    /// It ran in a PID namespace none of whose processes this one sees:
    /// alive or not, it would not be visible here.
    CannotTell,
}

/// The processes visible here, read from /proc once and only when a
/// record's writer is not found at its own pid here.
#[derive(Default)]
pub struct ProcessTable {
    /// Start ticks -> the pids here of the processes that started then.
    by_start: Option<HashMap<u64, Vec<u32>>>,
    /// The PID namespaces of the processes visible here (those whose
    /// namespace could be read).
    namespaces: Option<HashSet<u64>>,
}

impl ProcessTable {
    /// What is known of `o`'s process. A record without a start (of a
    /// version before it was written) is judged by its pid and its start
    /// second, as then.
    pub fn liveness(&mut self, o: &Outcome) -> Liveness {
        let Some(start) = &o.start else {
            return if older_record_alive(o) {
                Liveness::Running { pid_here: None }
            } else {
                Liveness::Ended
            };
        };
        let here = outcome::pid_namespace_of("self");
        let mine = outcome::ProcessStart::of_this_process();
        let this_boot = mine.as_ref().map_or("", |m| m.boot_id.as_str());
        if !start.boot_id.is_empty() && !this_boot.is_empty() && start.boot_id != this_boot {
            return Liveness::Ended; // another boot's
        }
        let same_namespace = start.pid_ns.is_some() && start.pid_ns == here;
        if (same_namespace || start.pid_ns.is_none())
            && ProcessStart::of_pid(o.pid).is_some_and(|now| now.ticks == start.ticks)
            && !exited(o.pid)
        {
            return Liveness::Running { pid_here: None };
        }
        if same_namespace {
            return Liveness::Ended;
        }
        // Another namespace's (or one that did not say which): looked for
        // among every process here that started in the same tick.
        if let Some(pid_here) = self.find(o.pid, start) {
            return Liveness::Running {
                pid_here: (pid_here != o.pid).then_some(pid_here),
            };
        }
        match start.pid_ns {
            // Not said (a record of the version before): as then, the
            // process would have been found at its pid here.
            None => Liveness::Ended,
            Some(_) if here == Some(INITIAL_PID_NAMESPACE) => Liveness::Ended,
            Some(ns) if self.namespaces().contains(&ns) => Liveness::Ended,
            Some(_) => Liveness::CannotTell,
        }
    }

    /// The pid here of the process that started as `start` says with
    /// `pid` in its own namespace, and in the record's namespace when the
    /// record says which and the process's can be read.
    fn find(&mut self, pid: u32, start: &ProcessStart) -> Option<u32> {
        let by_start = self.by_start.get_or_insert_with(read_starts);
        by_start.get(&start.ticks)?.iter().copied().find(|&here| {
            let here_s = here.to_string();
            !exited(here)
                && innermost_pid(&here_s) == Some(pid)
                && match (start.pid_ns, outcome::pid_namespace_of(&here_s)) {
                    (Some(want), Some(ns)) => want == ns,
                    _ => true,
                }
        })
    }

    fn namespaces(&mut self) -> &HashSet<u64> {
        self.namespaces.get_or_insert_with(|| {
            pids_here()
                .filter_map(|pid| outcome::pid_namespace_of(&pid.to_string()))
                .collect()
        })
    }
}

/// The pids of the processes visible here (/proc's numbered entries).
fn pids_here() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Every visible process's start ticks, with its pid here.
fn read_starts() -> HashMap<u64, Vec<u32>> {
    let mut by_start: HashMap<u64, Vec<u32>> = HashMap::new();
    for pid in pids_here() {
        if let Some(ticks) = outcome::start_ticks_of(&pid.to_string()) {
            by_start.entry(ticks).or_default().push(pid);
        }
    }
    by_start
}

/// Process `pid`'s pid in its own PID namespace: the last of the NSpid
/// line of /proc/PID/status (this namespace's first, then each nested
/// one's). None when /proc cannot say (a kernel before 4.1).
fn innermost_pid(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// A record from before records said which process wrote it: its pid is
/// there and started no later than the record's tracer.
fn older_record_alive(o: &Outcome) -> bool {
    process_start_unix_s(o.pid).is_some_and(|start| start <= o.started_unix_s.saturating_add(2))
        && !exited(o.pid)
}

/// Whether process `pid`, still listed in /proc, has exited: a zombie
/// (`Z`, its parent has not waited for it yet: a harness that looks
/// first, a container's PID 1 that reaps nothing) or dead (`X`), by the
/// state /proc/PID/stat gives after the command's name. Its entry and its
/// start stay until it is reaped, but nothing of it runs.
fn exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // After the last `)`: the name may hold anything, `)` and spaces too.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let state = stat[close + 1..].iter().find(|b| !b.is_ascii_whitespace());
    matches!(state, Some(b'Z' | b'X'))
}

/// When process `pid` started, in seconds since the epoch: its start
/// in clock ticks after boot (`outcome::start_ticks_of`) and the boot
/// time (/proc/stat's btime). None when there is no such process.
fn process_start_unix_s(pid: u32) -> Option<u64> {
    let ticks = outcome::start_ticks_of(&pid.to_string())?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(boot + ticks / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, start: Option<ProcessStart>) -> Outcome {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Outcome {
            pid,
            started_unix_s: now,
            updated_unix_s: now,
            start,
            ..Outcome::default()
        }
    }

    /// A restarted container's new process runs as the dead one's pid,
    /// moments later: a record that says which process wrote it is alive
    /// only while that very process is there, not one given its pid
    /// since. (Judged by pid and start second, the new process was taken
    /// for the killed one, said "running".) One from before the records
    /// said so is judged as before.
    #[test]
    fn a_record_of_a_process_whose_pid_runs_another_is_not_alive() {
        let mine = ProcessStart::of_this_process().expect("/proc/self/stat");
        let me = std::process::id();
        let mut table = ProcessTable::default();
        let running = Liveness::Running { pid_here: None };
        assert_eq!(table.liveness(&record(me, Some(mine.clone()))), running);
        let earlier = ProcessStart {
            ticks: mine.ticks.saturating_sub(1),
            ..mine.clone()
        };
        assert_eq!(table.liveness(&record(me, Some(earlier))), Liveness::Ended);
        let another_boot = ProcessStart {
            boot_id: "another-boot".to_string(),
            ..mine.clone()
        };
        assert_eq!(
            table.liveness(&record(me, Some(another_boot))),
            Liveness::Ended
        );
        assert_eq!(table.liveness(&record(me, None)), running);
        // A record of the version before pid_ns, of this process: found.
        let no_namespace = ProcessStart {
            pid_ns: None,
            ..mine
        };
        assert_eq!(table.liveness(&record(me, Some(no_namespace))), running);
    }

    /// A record written in another PID namespace whose process is not
    /// visible here and none of whose processes is: it cannot be told
    /// (unless this is the host's namespace, which sees every process).
    /// One of a namespace some visible process is in, whose process is
    /// gone: ended.
    #[test]
    fn a_process_of_a_namespace_not_seen_here_is_said_to_be_unknown() {
        let mine = ProcessStart::of_this_process().expect("/proc/self/stat");
        let here = mine.pid_ns.expect("/proc/self/ns/pid");
        let mut table = ProcessTable::default();
        let elsewhere = ProcessStart {
            ticks: mine.ticks.saturating_sub(1),
            // No namespace has this inode: nsfs numbers are far below.
            pid_ns: Some(u64::MAX - 7),
            ..mine.clone()
        };
        let unseen = table.liveness(&record(1, Some(elsewhere)));
        if here == INITIAL_PID_NAMESPACE {
            assert_eq!(unseen, Liveness::Ended);
        } else {
            assert_eq!(unseen, Liveness::CannotTell);
        }
        // A record of this namespace whose process is gone: ended.
        let gone = ProcessStart {
            ticks: mine.ticks.saturating_sub(1),
            ..mine
        };
        assert_eq!(
            table.liveness(&record(u32::MAX - 1, Some(gone))),
            Liveness::Ended
        );
    }
}
