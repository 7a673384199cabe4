//! The isolation that builds and apps run under, in one place: each app's code runs as an
//! unprivileged uid of its own, with no capabilities and `no_new_privs`, in bubblewrap's
//! namespaces behind a seccomp filter, inside a cgroup with memory and process limits, and in
//! a network namespace of its own (pasta) that reaches the outside world but not the host's
//! loopback.
//!
//! [`Isolation::detect`] finds out once, at start, which of these the host can give, and
//! [`Isolation::summary`] says so; [`SandboxMode::Required`] refuses to start without all of
//! them. [`Isolation::command`] turns a [`Spec`] — what to run, what it may see — into the
//! command that runs it so, and a [`Cell`] that kills whatever it left behind.
//!
//! The launch is a chain of small, well-known programs, each doing one thing as root before it
//! hands over: `sh` moves itself into the cgroups and opens the seccomp filter, `prlimit` sets
//! the rlimits, `setpriv` drops to the app's uid, `pasta` makes the network namespace, and
//! `bwrap` makes the rest and runs the program. Every step is an `exec`, so the spawned child's
//! pid is the whole chain's, and its process group holds everything inside.

mod cgroup;
mod seccomp;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use cgroup::Cgroup;

/// Whether builds and apps are sandboxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Run them directly, as the server's user (development only).
    Off,
    /// Sandbox with whatever the host offers, and say what is missing.
    #[default]
    Auto,
    /// Refuse to start unless every layer of isolation is in force.
    Required,
}

/// Why the sandbox cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the sandbox is required but incomplete: {0}; install what is missing or run with --sandbox auto"
    )]
    Incomplete(String),
    #[error(
        "this step runs on its own root file system, which needs bubblewrap: ask the operator to install it and run with --sandbox auto"
    )]
    NoRoot,
    #[error("cannot prepare the sandbox: {0}")]
    Io(#[from] std::io::Error),
}

/// The first uid handed to an app; each app gets the next. Below 2^21, so that tar's ustar
/// headers (which builds write) can still hold it.
pub const FIRST_APP_UID: u32 = 1_700_000;
const LAST_APP_UID: u32 = 2_097_151;

/// What the host gives: found once by [`Isolation::detect`], shared by the builder and the
/// local runtime.
#[derive(Debug)]
pub struct Isolation {
    bwrap: Option<PathBuf>,
    /// bubblewrap 0.8 or newer: `--disable-userns` keeps the sandbox from making namespaces.
    disable_userns: bool,
    /// slipwayd runs as root, so each app runs as a uid of its own.
    own_uids: bool,
    pasta: Option<PathBuf>,
    cgroups: Option<cgroup::Hierarchy>,
    seccomp: Option<PathBuf>,
    uids: Mutex<Uids>,
}

/// Makes each cell's name unique in this process's life, whatever number of `Isolation`s it
/// has (tests have many).
static CELLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Default)]
struct Uids {
    by_app: HashMap<String, u32>,
    next: u32,
}

/// What network a sandboxed program gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Its own namespace, reaching the outside world but not the host's loopback or any
    /// port of another app.
    Outbound,
    /// As `Outbound`, and the host's `127.0.0.1:port` forwarded to its `port`, for the router.
    Serve(u16),
}

/// Resource limits of one sandboxed program and everything it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory, in bytes, page cache and tmpfs included.
    pub memory: u64,
    /// Processes and threads at once.
    pub pids: u32,
    /// Relative CPU weight, 1024 being the default share.
    pub cpu_shares: u32,
    /// The largest file it may write, in bytes.
    pub file_size: u64,
    /// What it may keep on disk in the directories it may write, in bytes (a build's
    /// source, cache and scratch space; a process writes only its memory-backed `/tmp`).
    pub disk: u64,
}

impl Limits {
    /// A build's: compilers want room.
    pub const BUILD: Limits = Limits {
        memory: 4 << 30,
        pids: 512,
        cpu_shares: 512,
        file_size: 2 << 30,
        disk: 10 << 30,
    };
    /// An app process's, like a standard dyno.
    pub const PROCESS: Limits = Limits {
        memory: 1 << 30,
        pids: 256,
        cpu_shares: 1024,
        file_size: 1 << 30,
        disk: 0,
    };
}

/// The processes one uid may have at once, across all of an app's sandboxes: the last bound
/// on a fork bomb where cgroups are missing.
const NPROC_PER_APP: u32 = 2_048;

/// One program to run in the sandbox.
#[derive(Debug)]
pub struct Spec<'a> {
    /// The app whose code it is: it runs as the app's uid.
    pub app: &'a str,
    /// Names its cgroup (`build-demo`, `demo.web.1`), with a number that makes it unique.
    pub name: String,
    /// bubblewrap's arguments that make its file system from the host's system directories
    /// (`--ro-bind /usr /usr`, `--tmpfs /tmp`, …): paths anyone may read.
    pub mounts: Vec<OsString>,
    /// The platform's own directories it sees (source, cache, image, buildpack), which sit
    /// under directories only root may enter: staged for it (see [`Bind`]).
    pub binds: Vec<Bind>,
    /// Where it starts.
    pub chdir: &'a Path,
    pub network: Network,
    /// Ports of the host's loopback it may still reach, at the same port on its own loopback
    /// (the router's, so apps can call each other through it). Nothing else on the host.
    pub host_ports: Vec<u16>,
    pub limits: Limits,
    pub program: &'a OsStr,
    pub args: Vec<OsString>,
}

/// A directory of the platform's bound into the sandbox at `dest`. bubblewrap runs as the
/// app's uid and so could not reach it where it is (under the data directory, which only
/// root may enter): the launch binds it, as root, in a private mount namespace, onto a
/// directory anyone may enter, and bubblewrap binds it from there. Nothing changes in the
/// host's mount table.
#[derive(Debug, Clone)]
pub struct Bind {
    pub src: PathBuf,
    pub dest: PathBuf,
    pub writable: bool,
}

/// The command that runs a [`Spec`], and its cell.
#[derive(Debug)]
pub struct Sandboxed {
    /// Spawn it with `process_group(0)` and the environment the program should see; nothing
    /// else in the chain adds to or reads that environment.
    pub command: tokio::process::Command,
    pub cell: Cell,
}

/// The cgroup a sandboxed program runs in, if the host has them. Dropping it kills whatever
/// is still in it and removes it.
#[derive(Debug)]
pub struct Cell {
    cgroup: Option<Cgroup>,
    limits: Limits,
}

impl Cell {
    /// Kills every process still in the cell.
    pub fn kill(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
    }

    /// Why the program was stopped by its limits, if it was: for the error the user sees.
    pub fn limit_hit(&self) -> Option<String> {
        let cgroup = self.cgroup.as_ref()?;
        if cgroup.out_of_memory() {
            return Some(format!(
                "it ran out of memory (the limit is {} MiB)",
                self.limits.memory >> 20
            ));
        }
        if cgroup.hit_pid_limit() {
            return Some(format!(
                "it tried to run more than {} processes at once",
                self.limits.pids
            ));
        }
        None
    }

    /// Kills what is left in the cell, removes it, and says why the program was stopped by
    /// its limits, if it was — on a blocking thread, since killing waits for the processes
    /// to leave. Dropping a cell does the same on the caller's thread.
    pub async fn finish(mut self) -> Option<String> {
        let cgroup = self.cgroup.take()?;
        let limits = self.limits;
        tokio::task::spawn_blocking(move || {
            let cell = Cell {
                cgroup: Some(cgroup),
                limits,
            };
            cell.kill();
            cell.limit_hit()
        })
        .await
        .ok()
        .flatten()
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.remove();
        }
    }
}

/// Run as root in a mount namespace of its own: opens the seccomp filter (`$1`, or `-`) as
/// fd 9, moves itself into the cgroups named up to the first `--`, binds the platform
/// directories named up to the second `--` onto `$STAGE/0`, `$STAGE/1`, … (on a tmpfs of its
/// own at the stage, `$2`), then runs the rest: everything it starts is born inside the cell.
const ENTER: &str = r#"s=$1; stage=$2; shift 2
if [ "$s" != - ]; then exec 9<"$s" || exit 125; fi
while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done
shift
if [ "$1" != -- ]; then mount -t tmpfs -o mode=0755,size=64k slipway-stage "$stage" || exit 125; fi
n=0
while [ "$1" != -- ]; do
  mkdir "$stage/$n" && mount --bind "$1" "$stage/$n" || exit 125
  n=$((n + 1)); shift
done
shift
exec "$@""#;

/// Where [`ENTER`] stages the platform's directories: created at start, empty, on the host.
const STAGE: &str = "/run/slipway-sandbox";

impl Isolation {
    /// No sandbox at all: programs run as the server's user ([`SandboxMode::Off`]).
    pub fn off() -> Isolation {
        Isolation {
            bwrap: None,
            disable_userns: false,
            own_uids: false,
            pasta: None,
            cgroups: None,
            seccomp: None,
            uids: Mutex::default(),
        }
    }

    /// Finds what the host offers for `mode`; `state_dir` (the platform's, not a tenant's)
    /// holds the compiled seccomp filter. With [`SandboxMode::Required`], anything missing is
    /// an error that names it.
    pub fn detect(mode: SandboxMode, state_dir: &Path) -> Result<Isolation, SandboxError> {
        if mode == SandboxMode::Off {
            return Ok(Isolation::off());
        }
        let bwrap = find(&["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]);
        let disable_userns = bwrap.as_deref().is_some_and(bwrap_disables_userns);
        let root = rustix::process::geteuid().is_root();
        let own_uids =
            root && Path::new(SETPRIV).exists() && Path::new(PRLIMIT).exists() && bwrap.is_some();
        let pasta = find(&["/usr/bin/pasta", "/usr/local/bin/pasta"])
            .filter(|_| bwrap.is_some() && tun_usable(own_uids));
        let cgroups = if root {
            cgroup::Hierarchy::detect()
        } else {
            None
        };
        if let Some(cgroups) = &cgroups {
            cgroups.sweep();
        }
        let seccomp = match bwrap {
            Some(_) => {
                std::fs::create_dir_all(state_dir)?;
                let path = state_dir.join("seccomp.bpf");
                match seccomp::write_filter(&path) {
                    Ok(()) => Some(path),
                    Err(err) => {
                        tracing::warn!("no seccomp filter: {err}");
                        None
                    }
                }
            }
            None => None,
        };
        let mut isolation = Isolation {
            bwrap,
            disable_userns,
            own_uids,
            pasta,
            cgroups,
            seccomp,
            uids: Mutex::new(Uids {
                by_app: HashMap::new(),
                next: FIRST_APP_UID,
            }),
        };
        // A kernel can refuse what the files promise (user namespaces off, no tun device
        // for this uid): try the chain once, and do without what fails.
        if isolation.pasta.is_some() && !isolation.probe() {
            tracing::warn!(
                "pasta cannot make a network namespace here; sandboxes share the host's network"
            );
            isolation.pasta = None;
        }
        if isolation.bwrap.is_some() && !isolation.probe() {
            isolation.seccomp = None;
            isolation.disable_userns = false;
            if !isolation.probe() {
                tracing::warn!("bubblewrap does not work here; builds and apps run unsandboxed");
                isolation.bwrap = None;
                isolation.own_uids = false;
            }
        }
        let missing = isolation.missing();
        if mode == SandboxMode::Required && !missing.is_empty() {
            return Err(SandboxError::Incomplete(missing.join("; ")));
        }
        Ok(isolation)
    }

    /// Whether programs run in bubblewrap at all.
    pub fn is_sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }

    /// Whether sandboxed programs have a network namespace of their own: then a port an app
    /// listens on is reached through a forward, and [`listening`] says whether the app
    /// itself listens.
    pub fn own_network(&self) -> bool {
        self.pasta.is_some()
    }

    /// What is not in force, each with what would bring it.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.bwrap.is_none() {
            missing.push("no bubblewrap (apt-get install bubblewrap)");
            return missing;
        }
        if !self.own_uids {
            missing.push(
                "apps run as the server's user, not a uid of their own (run slipwayd as root, with util-linux's setpriv and prlimit)",
            );
        }
        if self.pasta.is_none() {
            missing.push(
                "no network namespace: apps can reach the host's loopback (apt-get install passt; /dev/net/tun must be usable, mode 0666)",
            );
        }
        if self.cgroups.is_none() {
            missing.push(
                "no cgroup limits on memory and processes (run as root with the memory and pids controllers mounted)",
            );
        }
        if self.seccomp.is_none() {
            missing.push("no seccomp filter");
        }
        if !self.disable_userns {
            missing.push("sandboxes may make user namespaces (bubblewrap 0.8 or newer stops it)");
        }
        missing
    }

    /// One line per layer of isolation, for the server's start-up output.
    pub fn summary(&self) -> Vec<String> {
        let Some(bwrap) = &self.bwrap else {
            return vec!["sandbox: off — builds and apps run as the server's user".to_owned()];
        };
        let yes_no = |on: bool, yes: &str, no: &str| if on { yes } else { no }.to_owned();
        vec![
            format!("sandbox: bubblewrap ({})", bwrap.display()),
            format!(
                "sandbox: users: {}",
                yes_no(
                    self.own_uids,
                    "a uid per app from 1700000, no capabilities, no_new_privs, no new user namespaces",
                    "the server's own uid, no capabilities, no_new_privs"
                )
            ),
            format!(
                "sandbox: network: {}",
                yes_no(
                    self.pasta.is_some(),
                    "a namespace per process (pasta), host loopback unreachable",
                    "the host's (apps can reach loopback services)"
                )
            ),
            format!(
                "sandbox: limits: {}",
                match &self.cgroups {
                    Some(h) => format!("{} memory, pids and cpu per build and process", h.kind()),
                    None => "rlimits only (no cgroups)".to_owned(),
                }
            ),
            format!(
                "sandbox: syscalls: {}",
                yes_no(
                    self.seccomp.is_some(),
                    "seccomp filter (mount, namespaces, modules, kexec, bpf, perf, keyring, io_uring … refused)",
                    "no seccomp filter"
                )
            ),
        ]
    }

    /// Gives `app` the uid its number among all apps (the store's, the same in every process)
    /// derives from, so its builds in a gateway and its processes in a release manager run
    /// as one uid, and no two live apps share one.
    pub fn assign(&self, app: &str, number: u32) {
        let uid = FIRST_APP_UID + number % (LAST_APP_UID - FIRST_APP_UID + 1);
        self.uids
            .lock()
            .expect("never poisoned")
            .by_app
            .insert(app.to_owned(), uid);
    }

    /// The uid `app`'s code runs as, if apps get uids of their own: the one [`assign`]ed, or
    /// else one from this server's pool, the same for its builds and its processes for the
    /// life of this server.
    ///
    /// [`assign`]: Isolation::assign
    pub fn uid_for(&self, app: &str) -> Option<u32> {
        if !self.own_uids {
            return None;
        }
        let mut uids = self.uids.lock().expect("never poisoned");
        if let Some(uid) = uids.by_app.get(app) {
            return Some(*uid);
        }
        let uid = uids.next;
        // Past the last uid, start again: an app that long gone has no files left.
        uids.next = if uid >= LAST_APP_UID {
            FIRST_APP_UID
        } else {
            uid + 1
        };
        uids.by_app.insert(app.to_owned(), uid);
        Some(uid)
    }

    /// Gives every file under `path` (links themselves, never their targets) to `app`'s uid,
    /// so its sandboxed program can write there. Blocking; call it off the async threads.
    pub fn hand_over(&self, app: &str, path: &Path) -> std::io::Result<()> {
        match self.uid_for(app) {
            Some(uid) => chown_tree(path, uid),
            None => Ok(()),
        }
    }

    /// The command that runs `spec` in the sandbox, and the cell that holds it.
    pub fn command(&self, spec: Spec<'_>) -> Result<Sandboxed, SandboxError> {
        self.chain(spec, None)
    }

    /// Like [`Isolation::command`], with the directory `root` (a root file system the
    /// platform unpacked for the app, and handed over to it) bound writable at `/` before
    /// `spec`'s mounts and binds, and the program running as uid 0 *inside* the user
    /// namespace — still the app's uid outside, with no capabilities: a Dockerfile's `RUN`.
    /// Refused without bubblewrap, which alone can make `root` the program's `/`.
    pub fn command_in_root(&self, spec: Spec<'_>, root: &Path) -> Result<Sandboxed, SandboxError> {
        if self.bwrap.is_none() {
            return Err(SandboxError::NoRoot);
        }
        self.chain(spec, Some(root))
    }

    fn chain(&self, spec: Spec<'_>, root: Option<&Path>) -> Result<Sandboxed, SandboxError> {
        let Some(bwrap) = &self.bwrap else {
            let mut command = tokio::process::Command::new(spec.program);
            command.args(&spec.args).current_dir(spec.chdir);
            return Ok(Sandboxed {
                command,
                cell: Cell {
                    cgroup: None,
                    limits: spec.limits,
                },
            });
        };
        let cgroup = match &self.cgroups {
            Some(hierarchy) => {
                let n = CELLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("{}-{}-{n}", spec.name, std::process::id());
                Some(hierarchy.create(&name, &spec.limits)?)
            }
            None => None,
        };
        let uid = self.uid_for(spec.app);
        let root_bind = root.map(|root| Bind {
            src: root.to_path_buf(),
            dest: PathBuf::from("/"),
            writable: true,
        });
        // Staged only when bubblewrap runs as another uid than ours.
        let staged: Vec<&Bind> = root_bind
            .iter()
            .chain(&spec.binds)
            .filter(|b| uid.is_some() && b.src.exists())
            .collect();
        // As root, in a mount namespace of its own, where the staging binds stay.
        let mut command = match uid {
            Some(_) => {
                let mut command = tokio::process::Command::new(UNSHARE);
                command.args(["--mount", "--propagation", "private", "--", "/bin/sh"]);
                command
            }
            None => tokio::process::Command::new("/bin/sh"),
        };
        command.args(["-c", ENTER, "slipway-sandbox"]);
        match &self.seccomp {
            Some(filter) => command.arg(filter),
            None => command.arg("-"),
        };
        command.arg(STAGE);
        if let Some(cgroup) = &cgroup {
            command.args(cgroup.procs_files());
        }
        command.arg("--");
        command.args(staged.iter().map(|b| &b.src));
        command.arg("--");
        if let Some(uid) = uid {
            let (pids, size) = (NPROC_PER_APP, spec.limits.file_size);
            command
                .arg(PRLIMIT)
                .arg(format!("--nproc={pids}:{pids}"))
                .arg(format!("--fsize={size}:{size}"))
                .args(["--core=0:0", "--"])
                .arg(SETPRIV)
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                // The uid change clears a parent-death signal: set it again, so pasta (and
                // bubblewrap, which dies with it) goes when slipwayd does.
                .args([
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--pdeathsig=KILL",
                    "--",
                ]);
        }
        if let Some(pasta) = &self.pasta {
            let host_ports = match spec.host_ports.as_slice() {
                [] => "none".to_owned(),
                ports => ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            };
            command
                .arg(pasta)
                .args(["--config-net", "--quiet", "--no-map-gw", "-T"]);
            command
                .arg(host_ports)
                .args(["-U", "none", "-u", "none", "-t"]);
            match spec.network {
                Network::Serve(port) => command.arg(format!("127.0.0.1/{port}")),
                Network::Outbound => command.arg("none"),
            };
            command.arg("--");
        }
        command.arg(bwrap).args([
            "--die-with-parent",
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop",
            "ALL",
            "--hostname",
            "slipway",
        ]);
        if self.disable_userns {
            command.arg("--disable-userns");
        }
        if root.is_some() {
            command.args(["--uid", "0", "--gid", "0"]);
        } else if let Some(uid) = uid {
            let uid = uid.to_string();
            command.args(["--uid", &uid, "--gid", &uid]);
        }
        if self.seccomp.is_some() {
            command.args(["--seccomp", "9"]);
        }
        let mut n = 0;
        // The root first: the mounts and binds then go on top of it.
        if let Some(bind) = &root_bind {
            if uid.is_none() {
                command.arg("--bind").arg(&bind.src).arg("/");
            } else {
                command.arg("--bind").arg(format!("{STAGE}/{n}")).arg("/");
                n += 1;
            }
        }
        command.args(&spec.mounts);
        for bind in &spec.binds {
            let kind = if bind.writable { "--bind" } else { "--ro-bind" };
            if uid.is_none() {
                command
                    .arg(format!("{kind}-try"))
                    .arg(&bind.src)
                    .arg(&bind.dest);
            } else if staged.iter().any(|b| std::ptr::eq(*b, bind)) {
                command
                    .arg(kind)
                    .arg(format!("{STAGE}/{n}"))
                    .arg(&bind.dest);
                n += 1;
            }
        }
        command
            .arg("--chdir")
            .arg(spec.chdir)
            .arg("--")
            .arg(spec.program)
            .args(&spec.args);
        Ok(Sandboxed {
            command,
            cell: Cell {
                cgroup,
                limits: spec.limits,
            },
        })
    }

    /// Runs `true` through the whole chain once: whether this host can run it.
    fn probe(&self) -> bool {
        let Ok(sandboxed) = self.command(Spec {
            app: "slipway-probe",
            name: "probe".to_owned(),
            mounts: host_system_mounts(&[]),
            binds: Vec::new(),
            chdir: Path::new("/"),
            network: Network::Outbound,
            host_ports: Vec::new(),
            limits: Limits::PROCESS,
            program: OsStr::new("/bin/true"),
            args: Vec::new(),
        }) else {
            return false;
        };
        let std_command = sandboxed.command.as_std();
        let mut command = std::process::Command::new(std_command.get_program());
        command
            .args(std_command.get_args())
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        match command.output() {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                tracing::debug!(
                    "sandbox probe failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                false
            }
            Err(_) => false,
        }
    }
}

const SETPRIV: &str = "/usr/bin/setpriv";
const UNSHARE: &str = "/usr/bin/unshare";
const PRLIMIT: &str = "/usr/bin/prlimit";

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// bubblewrap 0.8 brought `--disable-userns`.
fn bwrap_disables_userns(bwrap: &Path) -> bool {
    let Ok(out) = std::process::Command::new(bwrap).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version: Vec<u32> = text
        .split_whitespace()
        .last()
        .unwrap_or("")
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    version.as_slice() >= [0, 8].as_slice()
}

/// pasta needs `/dev/net/tun`, openable by the uid it runs as.
fn tun_usable(other_uid: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata("/dev/net/tun") {
        Ok(meta) if other_uid => meta.permissions().mode() & 0o006 == 0o006,
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Whether a process in the network namespace of `pid`'s sandbox listens on TCP `port`: how
/// a web process is known to be up when a forward, not the app, answers on the host's side.
/// `pid` is the spawned chain's; the first process below pasta is inside the namespace.
pub fn listening(pid: u32, port: u16) -> bool {
    let inside = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|children| children.split_whitespace().next().map(str::to_owned));
    let Some(inside) = inside else { return false };
    ["tcp", "tcp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{inside}/net/{table}"))
            .is_ok_and(|text| listens_on(&text, port))
    })
}

/// Whether `/proc/net/tcp`-formatted `table` has a socket listening on `port`.
fn listens_on(table: &str, port: u16) -> bool {
    const LISTEN: &str = "0A";
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1).unwrap_or("");
        let state = fields.nth(1).unwrap_or("");
        let local_port = local
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok());
        state == LISTEN && local_port == Some(port)
    })
}

/// The host's system directories (`/usr`, `/etc`, `/bin`, `/sbin`, `/lib*`) for bubblewrap,
/// read-only and symlinks kept as symlinks, except those in `except`; and
/// `/etc/resolv.conf`'s target when it points outside `/etc`, so name resolution works. The
/// view builds run in, and apps built on the host's userland run in.
pub fn host_system_mounts(except: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    for top in ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
        if except.contains(&top) {
            continue;
        }
        match std::fs::read_link(top) {
            Ok(target) => {
                args.extend(["--symlink".into(), target.into(), top.into()]);
            }
            Err(_) if Path::new(top).is_dir() => {
                args.extend(["--ro-bind".into(), top.into(), top.into()]);
            }
            Err(_) => {}
        }
    }
    if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf")
        && !resolv.starts_with("/etc")
    {
        args.extend([
            "--ro-bind-try".into(),
            resolv.clone().into_os_string(),
            resolv.into_os_string(),
        ]);
    }
    args
}

/// `lchown -R`: every entry under `root` given to `uid`, links never followed.
fn chown_tree(root: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = Some(rustix::fs::Uid::from_raw(uid));
    let group = Some(rustix::fs::Gid::from_raw(uid));
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        // What the uid owns already is left alone: a chown, even to the same owner, marks the
        // file changed, and an unchanged cache must look unchanged.
        if (meta.uid(), meta.gid()) != (uid, uid) {
            rustix::fs::chownat(
                rustix::fs::CWD,
                &path,
                owner,
                group,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )?;
            // chown clears a file's setuid and setgid bits: a hand-over changes only the owner.
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            if meta.is_file() && mode & 0o6000 != 0 {
                let file = rustix::fs::openat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::NONBLOCK
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )?;
                if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&file)?.st_mode)
                    == rustix::fs::FileType::RegularFile
                {
                    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(mode & 0o7777))?;
                }
            }
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0\n";
        assert!(listens_on(table, 8080));
        // Established, not listening.
        assert!(!listens_on(table, 8081));
        assert!(!listens_on(table, 80));
    }

    #[test]
    fn apps_keep_their_uid_and_get_distinct_ones() {
        let isolation = Isolation {
            own_uids: true,
            uids: Mutex::new(Uids {
                by_app: HashMap::new(),
                next: FIRST_APP_UID,
            }),
            ..Isolation::off()
        };
        let a = isolation.uid_for("a").expect("own uids");
        let b = isolation.uid_for("b").expect("own uids");
        assert_ne!(a, b);
        assert_eq!(isolation.uid_for("a"), Some(a));
        // An app's number from the store decides its uid, whatever the pool would give.
        isolation.assign("c", 7);
        assert_eq!(isolation.uid_for("c"), Some(FIRST_APP_UID + 7));
        assert!(a >= FIRST_APP_UID && b <= LAST_APP_UID);
        assert_eq!(Isolation::off().uid_for("a"), None);
    }
}
