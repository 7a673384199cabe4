//! Running a buildpack's script: output streamed line by line to the build log, the build's
//! deadline and output budget enforced, and the whole process group killed when either runs
//! out, so nothing a buildpack started outlives its build.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::{BuildError, Log};

/// Where a build's scripts run: with bubblewrap, in a mount namespace that has the system's
/// directories read-only and, writable, only what the build needs — its source, its cache and
/// its scratch space — so a build cannot read the platform's data, its database or other
/// apps' sources. Without bubblewrap, scripts run as the server's user (`Off`).
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    pub(crate) bwrap: Option<std::path::PathBuf>,
    /// Bound read-write at the same path.
    pub(crate) writable: Vec<std::path::PathBuf>,
    /// Bound read-only at the same path (toolchains outside /usr, buildpacks).
    pub(crate) readable: Vec<std::path::PathBuf>,
}

impl Sandbox {
    /// The command that runs `program args` inside the sandbox.
    fn command(&self, program: &Path, args: &[&Path], dir: &Path) -> tokio::process::Command {
        let Some(bwrap) = &self.bwrap else {
            let mut command = tokio::process::Command::new(program);
            command.args(args);
            return command;
        };
        let mut command = tokio::process::Command::new(bwrap);
        // No --new-session: the sandbox stays in the script's process group, so killing the group
        // on a deadline reaches everything inside at once (builds get no terminal to hijack).
        command.args(["--die-with-parent", "--unshare-all", "--share-net"]);
        bind_host_system(&mut command, &[]);
        command.args([
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
        ]);
        for path in &self.readable {
            command.arg("--ro-bind-try").arg(path).arg(path);
        }
        // The buildpack itself, wherever it lives.
        if let Some(buildpack) = program.parent().and_then(Path::parent) {
            command.arg("--ro-bind-try").arg(buildpack).arg(buildpack);
        }
        for path in &self.writable {
            command.arg("--bind").arg(path).arg(path);
        }
        command
            .arg("--chdir")
            .arg(dir)
            .arg("--")
            .arg(program)
            .args(args);
        command
    }
}

/// Adds to a bubblewrap command the host's system directories (`/usr`, `/etc`, `/bin`,
/// `/sbin`, `/lib*`), read-only and symlinks kept as symlinks, except those in `except`; and
/// `/etc/resolv.conf`'s target when it points outside `/etc`, so name resolution works. The
/// view builds run in, and apps built on the host's userland run in.
pub fn bind_host_system(command: &mut tokio::process::Command, except: &[&str]) {
    for top in ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
        if except.contains(&top) {
            continue;
        }
        match std::fs::read_link(top) {
            Ok(target) => {
                command.arg("--symlink").arg(target).arg(top);
            }
            Err(_) if Path::new(top).is_dir() => {
                command.args(["--ro-bind", top, top]);
            }
            Err(_) => {}
        }
    }
    if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf")
        && !resolv.starts_with("/etc")
    {
        command.arg("--ro-bind-try").arg(&resolv).arg(&resolv);
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
    let open = Sandbox {
        bwrap: None,
        writable: Vec::new(),
        readable: Vec::new(),
    };
    run_in(&open, program, args, dir, env, Stdout::Log, budget, log).await
}

#[allow(clippy::too_many_arguments)]
async fn run_in(
    sandbox: &Sandbox,
    program: &Path,
    args: &[&Path],
    dir: &Path,
    env: &BTreeMap<String, String>,
    stdout_mode: Stdout,
    budget: &Budget,
    log: Log<'_>,
) -> Result<Finished, BuildError> {
    let mut command = sandbox.command(program, args, dir);
    command
        .current_dir(dir)
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
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let total =
                    budget.output.fetch_add(line.len() + 1, Ordering::Relaxed) + line.len() + 1;
                if total > budget.max_output {
                    over.store(true, Ordering::Relaxed);
                    exceeded.notify_one();
                    return;
                }
                if capture {
                    let mut text = captured.lock().expect("never poisoned");
                    text.push_str(&line);
                    text.push('\n');
                } else {
                    log(&line);
                }
            }
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
    let status = tokio::select! {
        status = async { tokio::join!(outputs, child.wait()).1 } => status,
        () = exceeded.notified() => {
            kill_group();
            return Err(BuildError::TooMuchOutput(budget.max_output));
        }
        () = tokio::time::sleep(remaining) => {
            kill_group();
            return Err(BuildError::TimedOut(budget.limit));
        }
    };
    let status =
        status.map_err(|e| BuildError::Buildpack(format!("{} failed: {e}", program.display())))?;
    // Whatever the script left running in its group goes with it.
    kill_group();
    // The script may have died of the closed pipe before the budget's notice was seen.
    if over.load(Ordering::Relaxed) {
        return Err(BuildError::TooMuchOutput(budget.max_output));
    }
    Ok(Finished {
        code: status.code(),
        stdout: captured.into_inner().expect("never poisoned"),
    })
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
