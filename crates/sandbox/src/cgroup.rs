//! Cgroups for sandboxes: under `slipway/` in the memory, pids and cpu controllers of cgroup
//! v1 (as mounted on hosts with the legacy layout), or in the unified v2 tree. One cgroup per
//! build or process, with its limits, killed whole and removed when it is done.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Limits;

const ROOT: &str = "/sys/fs/cgroup";
/// Every sandbox's cgroup lives under this one in each hierarchy.
const PARENT: &str = "slipway";

/// Where the host's cgroups are and which kind they are.
#[derive(Debug)]
pub(crate) enum Hierarchy {
    /// cgroup v2: one tree, controllers enabled for `slipway/`'s children.
    V2(PathBuf),
    /// cgroup v1: `slipway/` in the memory and pids hierarchies (and cpu, where mounted).
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
    },
}

impl Hierarchy {
    /// The host's cgroups, if this process may make them: `slipway/` is created (or found) in
    /// each hierarchy. `None` where neither layout has the memory and pids controllers.
    pub(crate) fn detect() -> Option<Hierarchy> {
        let root = Path::new(ROOT);
        if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if !(has("memory") && has("pids")) {
                return None;
            }
            let parent = root.join(PARENT);
            std::fs::create_dir_all(&parent).ok()?;
            let wanted: Vec<&str> = ["memory", "pids", "cpu"]
                .into_iter()
                .filter(|c| has(c))
                .collect();
            for dir in [root, parent.as_path()] {
                for c in &wanted {
                    // Best effort: a controller someone else enabled stays enabled.
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
            let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
            let on = |c: &str| enabled.split_whitespace().any(|x| x == c);
            return (on("memory") && on("pids")).then_some(Hierarchy::V2(parent));
        }
        let make = |controller: &str| {
            let dir = root.join(controller);
            if !dir.join("cgroup.procs").exists() {
                return None;
            }
            let parent = dir.join(PARENT);
            std::fs::create_dir_all(&parent).ok()?;
            Some(parent)
        };
        Some(Hierarchy::V1 {
            memory: make("memory")?,
            pids: make("pids")?,
            cpu: make("cpu"),
        })
    }

    /// Removes what a server that stopped without cleaning up (a `kill -9`) left under
    /// `slipway/`: the cgroups named for a server process that no longer runs are emptied
    /// (whatever still runs in them is killed) and removed; a running server's stay.
    pub(crate) fn sweep(&self) {
        let parents: Vec<&PathBuf> = match self {
            Hierarchy::V2(parent) => vec![parent],
            Hierarchy::V1 { memory, pids, cpu } => [Some(memory), Some(pids), cpu.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
        };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                // `s-<name>-<server pid>-<n>`
                let server = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
                let Some(server) = server else { continue };
                if Path::new(&format!("/proc/{server}")).exists() {
                    continue;
                }
                Cgroup {
                    dirs: vec![entry.path()],
                    v2: matches!(self, Hierarchy::V2(_)),
                }
                .remove();
            }
        }
    }

    /// `cgroup v1` or `cgroup v2`, for the start-up summary.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Hierarchy::V2(_) => "cgroup v2",
            Hierarchy::V1 { .. } => "cgroup v1",
        }
    }

    /// A new cgroup `name` with `limits`. A leftover of the same name (a crash) is emptied
    /// and reused.
    pub(crate) fn create(&self, name: &str, limits: &Limits) -> std::io::Result<Cgroup> {
        let name = sanitize(name);
        let cgroup = match self {
            Hierarchy::V2(parent) => Cgroup {
                dirs: vec![parent.join(&name)],
                v2: true,
            },
            Hierarchy::V1 { memory, pids, cpu } => Cgroup {
                dirs: [Some(memory), Some(pids), cpu.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|parent| parent.join(&name))
                    .collect(),
                v2: false,
            },
        };
        for dir in &cgroup.dirs {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        cgroup.kill_all();
        cgroup.set_limits(limits)?;
        Ok(cgroup)
    }
}

/// One sandbox's cgroup: a directory in each hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Cgroup {
    fn set_limits(&self, limits: &Limits) -> std::io::Result<()> {
        let write = |file: &str, value: String| -> std::io::Result<()> {
            for dir in &self.dirs {
                let path = dir.join(file);
                if path.exists() {
                    std::fs::write(&path, value.as_bytes()).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                }
            }
            Ok(())
        };
        if self.v2 {
            write("memory.max", limits.memory.to_string())?;
            write("memory.swap.max", "0".to_owned())?;
            write("pids.max", limits.pids.to_string())?;
            // v2's weight is 1..10000 around 100; v1's shares are around 1024.
            write(
                "cpu.weight",
                (u64::from(limits.cpu_shares) * 100 / 1024)
                    .clamp(1, 10_000)
                    .to_string(),
            )?;
        } else {
            write("memory.limit_in_bytes", limits.memory.to_string())?;
            write("pids.max", limits.pids.to_string())?;
            write("cpu.shares", limits.cpu_shares.max(2).to_string())?;
        }
        Ok(())
    }

    /// The files a process writes its pid to, to join.
    pub(crate) fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.iter().map(|d| d.join("cgroup.procs"))
    }

    /// SIGKILL to everything inside, until nothing is (a fork racing the kill is caught on
    /// the next round); gives up after a second.
    pub(crate) fn kill_all(&self) {
        let Some(dir) = self.dirs.first() else { return };
        if self.v2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for _ in 0..100 {
            let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids.into_iter().filter_map(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the kernel killed something inside for want of memory.
    pub(crate) fn out_of_memory(&self) -> bool {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .any(|text| counter(&text, key) > 0)
    }

    /// Whether a fork was refused for the process limit.
    pub(crate) fn hit_pid_limit(&self) -> bool {
        self.dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("pids.events")).ok())
            .any(|text| counter(&text, "max") > 0)
    }

    /// Kills what is left and removes the cgroup.
    pub(crate) fn remove(self) {
        self.kill_all();
        for dir in &self.dirs {
            // A process may take a moment to leave after SIGKILL.
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// `key N` from a flat-keyed cgroup file.
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A cgroup's directory name: only `[A-Za-z0-9._-]`, never `.` or `..` alone.
fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("s-{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(counter(text, "oom_kill"), 3);
        assert_eq!(counter(text, "under_oom"), 0);
        assert_eq!(counter("max 0\n", "max"), 0);
    }

    #[test]
    fn names_cannot_leave_the_parent() {
        assert_eq!(sanitize("../../x"), "s-.._.._x");
        assert_eq!(sanitize(".."), "s-..");
        assert_eq!(sanitize("demo.web.1-3"), "s-demo.web.1-3");
    }
}
