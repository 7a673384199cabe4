//! Running a buildpack's script: output streamed line by line to the build log, the build's
//! deadline and output budget enforced, and the whole process group killed when either runs
//! out, so nothing a buildpack started outlives its build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sandbox::{Bind, Isolation, Limits, Network, Sandboxed, Spec};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::{BuildError, Log};

/// Where a build's scripts run: in the platform's sandbox (see the `sandbox` crate) as the
/// app's own uid, with the system's directories read-only and, writable, only what the build
/// needs — its source, its cache and its scratch space — so a build cannot read the platform's
/// data, its database or other apps' sources, nor reach the host's loopback services. With
/// the sandbox off, scripts run as the server's user.
///
/// Inside, every build sees the same paths, whatever the data directory and the build's own
/// temporary directory: the source at `/workspace`, the layers at `/layers`, the cache at
/// `/cache` (see [`Mount`]). Tools write the paths they are given into what they make (a
/// virtualenv's scripts, compiled bytecode, build caches), so a build at a path of its own
/// could never make the same image twice. With the sandbox off, paths are the host's.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    pub(crate) isolation: Arc<Isolation>,
    /// Whose build it is: the scripts run as the app's uid.
    pub(crate) app: String,
    /// The build's own directories, read-write, each at a fixed path.
    pub(crate) mounts: Vec<Mount>,
    /// Bound read-only at the same path (toolchains outside /usr, buildpacks).
    pub(crate) readable: Vec<PathBuf>,
    pub(crate) limits: Limits,
    /// A root file system to run on instead of the host's system directories, as uid 0 inside
    /// the sandbox (a Dockerfile's `RUN`); `writable` and `readable` are then not bound.
    pub(crate) root: Option<std::path::PathBuf>,
}

/// A directory of the build's, bound read-write at `at` in the sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    pub(crate) host: PathBuf,
    pub(crate) at: PathBuf,
}

impl Sandbox {
    /// No sandbox: for the platform's own steps.
    fn open() -> Sandbox {
        Sandbox {
            isolation: Arc::new(Isolation::off()),
            app: String::new(),
            mounts: Vec::new(),
            readable: Vec::new(),
            limits: Limits::BUILD,
            root: None,
        }
    }

    /// Gives `path` (a tree the platform made for the build) to the app's uid, which the
    /// build runs as.
    pub(crate) fn hand_over(&self, path: &Path) -> std::io::Result<()> {
        self.isolation.hand_over(&self.app, path)
    }

    /// Where the host's `path` is seen by the build's scripts: beneath the mount holding it
    /// most closely, or where it is when no mount holds it or there is no sandbox.
    pub(crate) fn inside(&self, path: &Path) -> PathBuf {
        if !self.isolation.is_sandboxed() {
            return path.to_path_buf();
        }
        self.mounts
            .iter()
            .filter_map(|m| path.strip_prefix(&m.host).ok().map(|rest| (m, rest)))
            .max_by_key(|(m, _)| m.host.components().count())
            .map_or_else(
                || path.to_path_buf(),
                |(m, rest)| {
                    if rest.as_os_str().is_empty() {
                        m.at.clone()
                    } else {
                        m.at.join(rest)
                    }
                },
            )
    }

    /// `path` as the build's scripts see it, as a string for their environment.
    pub(crate) fn inside_str(&self, path: &Path) -> String {
        self.inside(path).to_string_lossy().into_owned()
    }

    /// The command that runs `program args` inside the sandbox, and its cell.
    fn command(&self, program: &Path, args: &[&Path], dir: &Path) -> Result<Sandboxed, BuildError> {
        // No --new-session: the sandbox stays in the script's process group, so killing the group
        // on a deadline reaches everything inside at once (builds get no terminal to hijack).
        if let Some(root) = &self.root {
            let mut mounts: Vec<std::ffi::OsString> = ["--proc", "/proc", "--dev", "/dev"]
                .into_iter()
                .map(Into::into)
                .collect();
            // The host's resolver, so names resolve; the file itself is not in the layer.
            // Asked through the root's handle: a link the build left there is not followed.
            let has_resolv = crate::tenant_fs::Tree::open(root, "")
                .and_then(|tree| tree.kind(Path::new("etc/resolv.conf")))
                .is_ok_and(|kind| kind == Some(crate::tenant_fs::Kind::File));
            if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf")
                && has_resolv
            {
                mounts.extend([
                    "--ro-bind".into(),
                    resolv.into_os_string(),
                    "/etc/resolv.conf".into(),
                ]);
            }
            return self
                .isolation
                .command_in_root(
                    Spec {
                        app: &self.app,
                        name: format!("build-{}", self.app),
                        mounts,
                        binds: Vec::new(),
                        chdir: dir,
                        network: Network::Outbound,
                        host_ports: Vec::new(),
                        limits: self.limits,
                        program: program.as_os_str(),
                        args: args.iter().map(|a| a.as_os_str().to_owned()).collect(),
                    },
                    root,
                )
                .map_err(|e| BuildError::Buildpack(e.to_string()));
        }
        let mut mounts = sandbox::host_system_mounts(&[]);
        for arg in [
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
        ] {
            mounts.push(arg.into());
        }
        let readable = |path: &Path| Bind {
            src: path.to_path_buf(),
            dest: path.to_path_buf(),
            writable: false,
        };
        let mut binds: Vec<Bind> = self.readable.iter().map(|p| readable(p)).collect();
        // The buildpack itself, wherever it lives.
        if let Some(buildpack) = program.parent().and_then(Path::parent) {
            binds.push(readable(buildpack));
        }
        // Outer directories first, so a mount inside another one is bound over it.
        let mut own: Vec<&Mount> = self.mounts.iter().collect();
        own.sort_by_key(|m| m.at.components().count());
        binds.extend(own.into_iter().map(|m| Bind {
            src: m.host.clone(),
            dest: if self.isolation.is_sandboxed() {
                m.at.clone()
            } else {
                m.host.clone()
            },
            writable: true,
        }));
        let args: Vec<std::ffi::OsString> = args
            .iter()
            .map(|a| self.inside(a).into_os_string())
            .collect();
        let chdir = self.inside(dir);
        self.isolation
            .command(Spec {
                app: &self.app,
                name: format!("build-{}", self.app),
                mounts,
                binds,
                chdir: &chdir,
                network: Network::Outbound,
                host_ports: Vec::new(),
                limits: self.limits,
                program: program.as_os_str(),
                args,
            })
            .map_err(|e| BuildError::Io(std::io::Error::other(e)))
    }
}

/// What a build may still spend: time until `deadline`, bytes of output up to `max_output`.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) deadline: Instant,
    pub(crate) limit: std::time::Duration,
    pub(crate) max_output: usize,
    pub(crate) output: AtomicUsize,
    /// Time spent inside buildpack scripts, in microseconds (the rest is the platform's).
    pub(crate) in_scripts: std::sync::atomic::AtomicU64,
    pub(crate) sandbox: Sandbox,
}

/// How a script's stdout is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// Streamed to the build log, like stderr.
    Log,
    /// Kept and returned (detect's framework name, release's YAML).
    Capture,
}

/// A script that ran to its end.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
}

/// Runs `program args` in `dir` with exactly `env`, within the budget, in the build's sandbox.
pub(crate) async fn run(
    program: &Path,
    args: &[&Path],
    dir: &Path,
    env: &BTreeMap<String, String>,
    stdout_mode: Stdout,
    budget: &Budget,
    log: Log<'_>,
) -> Result<Finished, BuildError> {
    run_in(
        &budget.sandbox,
        program,
        args,
        dir,
        env,
        stdout_mode,
        budget,
        log,
    )
    .await
}

/// Like [`run`], outside the sandbox: for the platform's own steps, such as fetching a
/// buildpack, that need to see more than a build may.
pub(crate) async fn run_unsandboxed(
    program: &Path,
    args: &[&Path],
    dir: &Path,
    env: &BTreeMap<String, String>,
    budget: &Budget,
    log: Log<'_>,
) -> Result<Finished, BuildError> {
    run_in(
        &Sandbox::open(),
        program,
        args,
        dir,
        env,
        Stdout::Log,
        budget,
        log,
    )
    .await
}

/// Runs `program args` in `sandbox` (a Dockerfile's RUN: on its root), within the budget.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_in(
    sandbox: &Sandbox,
    program: &Path,
    args: &[&Path],
    dir: &Path,
    env: &BTreeMap<String, String>,
    stdout_mode: Stdout,
    budget: &Budget,
    log: Log<'_>,
) -> Result<Finished, BuildError> {
    let Sandboxed { mut command, cell } = sandbox.command(program, args, dir)?;
    // On a root of its own, `dir` is inside it: the sandbox changes into it.
    let host_dir = if sandbox.root.is_some() {
        Path::new("/")
    } else {
        dir
    };
    command
        .current_dir(host_dir)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let _timing = ScriptTimer { budget, started };
    let mut child = command
        .spawn()
        .map_err(|e| BuildError::Buildpack(format!("cannot run {}: {e}", program.display())))?;
    let pgid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let captured = std::sync::Mutex::new(String::new());
    let exceeded = tokio::sync::Notify::new();
    let over = std::sync::atomic::AtomicBool::new(false);
    let pump = |stream: Box<dyn AsyncRead + Unpin + Send>, capture: bool| {
        let (captured, exceeded, over) = (&captured, &exceeded, &over);
        async move {
            // Every byte counts against the budget as it arrives, newline or not; lines are
            // cut at MAX_LINE, so a flood without newlines holds no more than that.
            let spend = |bytes: usize| {
                let total = budget.output.fetch_add(bytes, Ordering::Relaxed) + bytes;
                if total > budget.max_output {
                    over.store(true, Ordering::Relaxed);
                    exceeded.notify_one();
                    return false;
                }
                true
            };
            let line = |line: &str| {
                if capture {
                    let mut text = captured.lock().expect("never poisoned");
                    text.push_str(line);
                    text.push('\n');
                } else {
                    log(line);
                }
            };
            read_lines(stream, spend, line).await;
        }
    };
    let outputs = async {
        tokio::join!(
            pump(Box::new(stdout), stdout_mode == Stdout::Capture),
            pump(Box::new(stderr), false)
        );
    };
    let kill_group = || {
        if let Some(pgid) = pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    };
    let remaining = budget.deadline.saturating_duration_since(Instant::now());
    let writable: Vec<PathBuf> = sandbox.mounts.iter().map(|m| m.host.clone()).collect();
    let disk = watch_disk(
        &writable,
        sandbox
            .isolation
            .is_sandboxed()
            .then_some(sandbox.limits.disk),
    );
    let status = tokio::select! {
        status = async { tokio::join!(outputs, child.wait()).1 } => status,
        used = disk => {
            kill_group();
            cell.finish().await;
            return Err(BuildError::OverLimit(format!(
                "it wrote more than {} MiB to its source, cache and scratch space ({} MiB); `slip builds:purge-cache` empties the cache",
                sandbox.limits.disk >> 20,
                used >> 20
            )));
        }
        () = exceeded.notified() => {
            kill_group();
            cell.finish().await;
            return Err(BuildError::TooMuchOutput(budget.max_output));
        }
        () = tokio::time::sleep(remaining) => {
            kill_group();
            cell.finish().await;
            return Err(BuildError::TimedOut(budget.limit));
        }
    };
    let status =
        status.map_err(|e| BuildError::Buildpack(format!("{} failed: {e}", program.display())))?;
    // Whatever the script left running in its group or its cell goes with it.
    kill_group();
    let limit_hit = cell.finish().await;
    if !status.success()
        && let Some(reason) = limit_hit
    {
        return Err(BuildError::OverLimit(reason));
    }
    // The script may have died of the closed pipe before the budget's notice was seen.
    if over.load(Ordering::Relaxed) {
        return Err(BuildError::TooMuchOutput(budget.max_output));
    }
    Ok(Finished {
        code: status.code(),
        stdout: captured.into_inner().expect("never poisoned"),
    })
}

/// The longest line kept from a build's output; the rest of a longer one is dropped.
const MAX_LINE: usize = 16 * 1024;

/// Reads `stream` to its end: `spend` is told of every chunk as it arrives (and stops the
/// reading by answering `false`), `line` gets each line, cut at [`MAX_LINE`] bytes.
async fn read_lines(
    stream: impl AsyncRead + Unpin,
    spend: impl Fn(usize) -> bool,
    line: impl Fn(&str),
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) if !buf.is_empty() => buf,
            _ => break,
        };
        let newline = buf.iter().position(|&b| b == b'\n');
        let taken = newline.map_or(buf.len(), |at| at + 1);
        let text = &buf[..newline.unwrap_or(buf.len())];
        let room = MAX_LINE.saturating_sub(pending.len());
        pending.extend_from_slice(&text[..text.len().min(room)]);
        cut |= text.len() > room;
        reader.consume(taken);
        if !spend(taken) {
            return;
        }
        if newline.is_some() {
            line(&String::from_utf8_lossy(&pending));
            if cut {
                line(&format!(
                    "(the line above was cut at {} KiB)",
                    MAX_LINE >> 10
                ));
            }
            pending.clear();
            cut = false;
        }
    }
    if !pending.is_empty() {
        line(&String::from_utf8_lossy(&pending));
    }
}

/// Resolves, with the bytes in use, once the build's writable directories hold more than
/// `limit`; never without a limit. Measured every second, links never followed.
async fn watch_disk(dirs: &[std::path::PathBuf], limit: Option<u64>) -> u64 {
    let Some(limit) = limit.filter(|_| !dirs.is_empty()) else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let dirs = dirs.to_vec();
        let used = tokio::task::spawn_blocking(move || dirs.iter().map(|d| disk_usage(d)).sum())
            .await
            .unwrap_or(0);
        if used > limit {
            return used;
        }
    }
}

/// Bytes allocated on disk under `root` (sparse files count what they use).
fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// Adds a script's run time to the budget's total when the run ends, however it ends.
struct ScriptTimer<'a> {
    budget: &'a Budget,
    started: Instant,
}

impl Drop for ScriptTimer<'_> {
    fn drop(&mut self) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.budget.in_scripts.fetch_add(micros, Ordering::Relaxed);
    }
}
