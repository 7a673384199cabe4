//! One supervised process: launched in its sandbox, its output sent to the app's log, health
//! judged (web: its port accepts connections, or the health check path answers 2xx/3xx),
//! started again with backoff when it exits, and stopped with SIGTERM, then SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::ReleaseVersion;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use sandbox::{Bind, Isolation, Limits, Network, Sandboxed, Spec};

use crate::{Logs, ProcessInfo, ProcessState};
use logs::read_lines;

/// Where the app's code is in its image.
const APP_DIR: &str = domain::APP_DIR;
use crate::LAUNCHER;
/// A process healthy this long is doing fine: its next crash restarts it at once again.
const STABLE: Duration = Duration::from_secs(60);
/// The longest wait between restarts of a process that keeps crashing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How processes are run: in the platform's sandbox (the app's uid, its own network, its
/// cgroup) when there is one, else directly.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    pub(crate) isolation: Arc<Isolation>,
    /// Host directories bound read-only at the same path (toolchains outside `/usr`).
    pub(crate) readable: Vec<PathBuf>,
    /// The router's loopback port, forwarded into each process's network namespace.
    pub(crate) router_port: Option<u16>,
}

/// What a process of one release runs on: the unpacked image and the environment.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) rootfs: PathBuf,
    /// The image's environment with the release's config over it.
    pub(crate) env: BTreeMap<String, String>,
}

impl Sandbox {
    /// The command that runs `command` of `app` (as process `name`) from the image at
    /// `launch`, with `extra` environment; a web process's `port` is forwarded to it. It may
    /// use `memory` bytes (`slip limits:set`), or a standard process's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn command(
        &self,
        app: &str,
        name: &str,
        launch: &Launch,
        command: &str,
        extra: &[(&str, String)],
        serve: Option<u16>,
        memory: Option<u64>,
    ) -> std::io::Result<Sandboxed> {
        let limits = Limits {
            memory: memory.unwrap_or(Limits::PROCESS.memory),
            ..Limits::PROCESS
        };
        let mut env = launch.env.clone();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut args: Vec<std::ffi::OsString> = vec!["-c".into(), LAUNCHER.into(), "sh".into()];
        args.push(command.into());
        let mut sandboxed = if self.isolation.is_sandboxed() {
            let (mut mounts, binds) = root_mounts(&launch.rootfs, &self.readable);
            for arg in [
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
            ] {
                mounts.push(arg.into());
            }
            self.isolation
                .command(Spec {
                    app,
                    name: format!("{app}.{name}"),
                    mounts,
                    binds,
                    chdir: Path::new(APP_DIR),
                    network: match serve {
                        Some(port) => Network::Serve(port),
                        None => Network::Outbound,
                    },
                    host_ports: self.router_port.into_iter().collect(),
                    limits,
                    program: std::ffi::OsStr::new("/bin/sh"),
                    args,
                })
                .map_err(std::io::Error::other)?
        } else {
            // No sandbox: the app runs from the unpacked image on the host, so paths
            // into the image are rewritten to where it is.
            let root = launch.rootfs.to_string_lossy().into_owned();
            for value in env.values_mut() {
                *value = value
                    .split(':')
                    .map(|part| {
                        if part == APP_DIR || part.starts_with(&format!("{APP_DIR}/")) {
                            format!("{root}{part}")
                        } else {
                            part.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(":");
            }
            let dir = launch.rootfs.join(APP_DIR.trim_start_matches('/'));
            self.isolation
                .command(Spec {
                    app,
                    name: name.to_owned(),
                    mounts: Vec::new(),
                    binds: Vec::new(),
                    chdir: &dir,
                    network: Network::Outbound,
                    host_ports: Vec::new(),
                    limits,
                    program: std::ffi::OsStr::new("/bin/sh"),
                    args,
                })
                .map_err(std::io::Error::other)?
        };
        // No --new-session: the sandbox stays in the process group, so stopping the group
        // reaches everything inside; the sandbox dies with slipwayd.
        sandboxed
            .command
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        Ok(sandboxed)
    }

    /// Whether the process spawned as `pid` listens on `port` itself (not a forward).
    pub(crate) fn listening(&self, pid: Option<u32>, port: u16) -> bool {
        match pid {
            Some(pid) if self.isolation.own_network() => sandbox::listening(pid, port),
            // Sharing the host's network: whoever accepts on the port is the app.
            _ => true,
        }
    }
}

/// The image's top-level entries at `/`; where the image has no shell of its own (it was
/// built without a run image, on the host's userland), the host's system directories fill in
/// what it lacks, read-only — the same view the build had.
fn root_mounts(rootfs: &Path, readable: &[PathBuf]) -> (Vec<std::ffi::OsString>, Vec<Bind>) {
    let own_userland = std::fs::symlink_metadata(rootfs.join("bin/sh")).is_ok();
    let mut mounts: Vec<std::ffi::OsString> = Vec::new();
    let mut binds = Vec::new();
    let mut bound = Vec::new();
    if let Ok(entries) = std::fs::read_dir(rootfs) {
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if matches!(name.as_str(), "proc" | "dev" | "tmp" | "run") {
                continue;
            }
            let at = format!("/{name}");
            match std::fs::read_link(entry.path()) {
                Ok(target) => {
                    mounts.extend(["--symlink".into(), target.into(), at.clone().into()]);
                }
                Err(_) => binds.push(Bind {
                    src: entry.path(),
                    dest: PathBuf::from(&at),
                    writable: false,
                }),
            }
            bound.push(at);
        }
    }
    if !own_userland {
        let bound: Vec<&str> = bound.iter().map(String::as_str).collect();
        mounts.extend(sandbox::host_system_mounts(&bound));
        binds.extend(readable.iter().map(|path| Bind {
            src: path.clone(),
            dest: path.clone(),
            writable: false,
        }));
    }
    (mounts, binds)
}

/// How a supervised process is doing, as its watchers see it.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) state: ProcessState,
    pub(crate) since: OffsetDateTime,
    pub(crate) restarts: u32,
    /// How its last life ended, once one has.
    pub(crate) exit: Option<Ended>,
}

/// How a life of a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited (or could not start): `exited with status 4`.
    Exited(String),
    /// It was stopped for not becoming healthy in time: `did not accept connections …`.
    Unhealthy(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(how) | Ended::Unhealthy(how) => f.write_str(how),
        }
    }
}

/// What a supervised process needs besides its own identity.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) sandbox: Sandbox,
    pub(crate) logs: Logs,
    pub(crate) boot_timeout: Duration,
    pub(crate) stop_timeout: Duration,
    /// Called whenever a web process becomes healthy or stops being so.
    pub(crate) on_change: Arc<dyn Fn() + Send + Sync>,
}

/// A process of a release, supervised.
pub(crate) struct Proc {
    pub(crate) app: String,
    /// `web.1`
    pub(crate) name: String,
    pub(crate) process_type: String,
    pub(crate) command: String,
    pub(crate) release: ReleaseVersion,
    /// Where a web process listens.
    pub(crate) port: Option<u16>,
    pub(crate) healthcheck: Option<String>,
    memory: Option<u64>,
    status: watch::Sender<Status>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proc {
    /// Starts supervising a new process.
    pub(crate) fn start(ctx: Context, launch: Arc<Launch>, identity: ProcIdentity) -> Arc<Proc> {
        let proc = Arc::new(Proc {
            app: identity.app,
            name: format!("{}.{}", identity.process_type, identity.index),
            process_type: identity.process_type,
            command: identity.command,
            release: identity.release,
            port: identity.port,
            healthcheck: identity.healthcheck,
            memory: identity.memory,
            status: watch::Sender::new(Status {
                state: ProcessState::Starting,
                since: OffsetDateTime::now_utc(),
                restarts: 0,
                exit: None,
            }),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(Arc::clone(&proc).supervise(ctx, launch));
        *proc.task.lock().expect("never poisoned") = Some(task);
        proc
    }

    pub(crate) fn is_up(&self) -> bool {
        self.status.borrow().state == ProcessState::Up
    }

    pub(crate) fn info(&self) -> ProcessInfo {
        let status = self.status.borrow();
        ProcessInfo {
            name: self.name.clone(),
            process_type: self.process_type.clone(),
            command: self.command.clone(),
            release: self.release,
            state: status.state,
            since: status.since,
            restarts: status.restarts,
        }
    }

    /// Waits until the process is healthy; `Err` says why it will not be (it exited, or
    /// `limit` passed first).
    pub(crate) async fn healthy(&self, limit: Duration) -> Result<(), String> {
        let mut status = self.status.subscribe();
        let judged = status.wait_for(|s| s.state == ProcessState::Up || s.exit.is_some());
        match tokio::time::timeout(limit, judged).await {
            Ok(Ok(s)) if s.state == ProcessState::Up => Ok(()),
            Ok(Ok(s)) => Err(match &s.exit {
                Some(Ended::Unhealthy(how)) => format!("{} {how}", self.name),
                Some(Ended::Exited(how)) => {
                    format!("{} {how} before it was healthy", self.name)
                }
                None => format!("{} stopped before it was healthy", self.name),
            }),
            Ok(Err(_)) => Err(format!("{} stopped before it was healthy", self.name)),
            Err(_) => Err(match (self.port, &self.healthcheck) {
                (Some(port), Some(path)) => format!(
                    "{} did not answer {path} with 2xx or 3xx on port {port} within {}s",
                    self.name,
                    limit.as_secs()
                ),
                (Some(port), None) => format!(
                    "{} did not accept connections on its PORT ({port}) within {}s",
                    self.name,
                    limit.as_secs()
                ),
                _ => format!("{} did not start within {}s", self.name, limit.as_secs()),
            }),
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after the stop timeout) and waits for it.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().expect("never poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn set(&self, ctx: &Context, state: ProcessState, exit: Option<Ended>) {
        let web_changed = self.port.is_some()
            && (state == ProcessState::Up) != (self.status.borrow().state == ProcessState::Up);
        self.status.send_modify(|s| {
            if state == ProcessState::Crashed {
                s.restarts += 1;
            }
            s.state = state;
            s.since = OffsetDateTime::now_utc();
            if exit.is_some() {
                s.exit = exit;
            }
        });
        if web_changed {
            (ctx.on_change)();
        }
    }

    async fn supervise(self: Arc<Self>, ctx: Context, launch: Arc<Launch>) {
        let mut crashes: u32 = 0;
        loop {
            self.set(&ctx, ProcessState::Starting, None);
            let mut extra = vec![("DYNO", self.name.clone())];
            if let Some(port) = self.port {
                extra.push(("PORT", port.to_string()));
            }
            let started = Instant::now();
            let sandboxed = ctx.sandbox.command(
                &self.app,
                &self.name,
                &launch,
                &self.command,
                &extra,
                self.port,
                self.memory,
            );
            let exit = match sandboxed {
                Ok(Sandboxed { mut command, cell }) => match command.spawn() {
                    Ok(child) => {
                        let exit = self.run(&ctx, child).await;
                        match (exit, cell.finish().await) {
                            (Some(Ended::Exited(how)), Some(limit)) => {
                                Some(Ended::Exited(format!("{how}: {limit}")))
                            }
                            (exit, _) => exit,
                        }
                    }
                    Err(err) => Some(Ended::Exited(format!("could not start: {err}"))),
                },
                Err(err) => Some(Ended::Exited(format!("could not start: {err}"))),
            };
            let Some(exit) = exit else {
                self.set(&ctx, ProcessState::Stopping, None);
                return;
            };
            ctx.logs
                .push(&self.app, &self.name, &format!("Process {exit}"));
            self.set(&ctx, ProcessState::Crashed, Some(exit));
            if started.elapsed() >= STABLE {
                crashes = 0;
            }
            // The first crash restarts at once; then 1 s, 2 s, 4 s, … up to a minute.
            let backoff = match crashes {
                0 => Duration::ZERO,
                n => Duration::from_secs(1 << (n - 1).min(6)).min(MAX_BACKOFF),
            };
            crashes = crashes.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => {
                    self.set(&ctx, ProcessState::Stopping, None);
                    return;
                }
            }
        }
    }

    /// Runs one life of the process. `None`: it was stopped; `Some`: how it ended.
    async fn run(&self, ctx: &Context, mut child: tokio::process::Child) -> Option<Ended> {
        let group = child.id().and_then(|id| i32::try_from(id).ok());
        let guard = GroupGuard(group);
        let app = self.app.clone();
        let name = self.name.clone();
        let logs = ctx.logs.clone();
        let out = child.stdout.take();
        let err = child.stderr.take();
        let pipes = tokio::spawn(async move {
            let sink = |line: &str| logs.push(&app, &name, line);
            let pace = logs.pace(&app);
            tokio::join!(read_lines(out, &sink, &pace), read_lines(err, &sink, &pace));
        });
        let pid = child.id();
        let boot = async {
            match self.port {
                Some(port) => {
                    let listening = || ctx.sandbox.listening(pid, port);
                    probe(
                        port,
                        self.healthcheck.as_deref(),
                        ctx.boot_timeout,
                        &listening,
                    )
                    .await
                }
                None => true,
            }
        };
        let exit = tokio::select! {
            status = child.wait() => Some(Ended::Exited(describe(status))),
            healthy = boot => {
                if healthy {
                    self.set(ctx, ProcessState::Up, None);
                    tokio::select! {
                        status = child.wait() => Some(Ended::Exited(describe(status))),
                        () = self.stop.cancelled() => None,
                    }
                } else {
                    let what = match &self.healthcheck {
                        Some(path) => format!("answer {path} with 2xx or 3xx"),
                        None => "accept connections on its PORT".to_owned(),
                    };
                    ctx.logs.push(&self.app, &self.name, &format!(
                        "Did not {what} within {}s; stopping it",
                        ctx.boot_timeout.as_secs()
                    ));
                    terminate(&mut child, group, ctx.stop_timeout).await;
                    Some(Ended::Unhealthy(format!(
                        "did not {what} within {}s",
                        ctx.boot_timeout.as_secs()
                    )))
                }
            }
            () = self.stop.cancelled() => None,
        };
        if exit.is_none() {
            self.set(ctx, ProcessState::Stopping, None);
            terminate(&mut child, group, ctx.stop_timeout).await;
        }
        drop(guard);
        let _ = pipes.await;
        exit
    }
}

/// Who a new process is.
pub(crate) struct ProcIdentity {
    pub(crate) app: String,
    pub(crate) process_type: String,
    pub(crate) index: u32,
    pub(crate) command: String,
    pub(crate) release: ReleaseVersion,
    pub(crate) port: Option<u16>,
    pub(crate) healthcheck: Option<String>,
    /// Its memory limit, when its type has one.
    pub(crate) memory: Option<u64>,
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "exited".to_owned(),
        },
        Err(err) => format!("could not be waited for: {err}"),
    }
}

/// SIGTERM to the process group, then SIGKILL once `grace` has passed.
pub(crate) async fn terminate(
    child: &mut tokio::process::Child,
    group: Option<i32>,
    grace: Duration,
) {
    signal_group(group, rustix::process::Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(group, rustix::process::Signal::KILL);
        let _ = child.wait().await;
    }
    // Whatever it left in its group goes too.
    signal_group(group, rustix::process::Signal::KILL);
}

fn signal_group(group: Option<i32>, signal: rustix::process::Signal) {
    if let Some(pid) = group.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Kills the process group when dropped: a process whose supervisor went away (a one-off
/// whose caller disconnected) does not live on.
pub(crate) struct GroupGuard(pub(crate) Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, rustix::process::Signal::KILL);
    }
}

/// Waits until the process on `port` is healthy: it listens (`listening`: the process
/// itself, not a forward in front of it) and accepts connections or, with a health check
/// path, answers it with 2xx or 3xx. `false` once `limit` has passed.
pub(crate) async fn probe(
    port: u16,
    path: Option<&str>,
    limit: Duration,
    listening: &(dyn Fn() -> bool + Sync),
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if listening() && check(port, path).await {
            return true;
        }
        if tokio::time::Instant::now() + pause > deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

async fn check(port: u16, path: Option<&str>) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return false;
    };
    let Some(path) = path else { return true };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: slipway-healthcheck\r\n\r\n"
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        // "HTTP/1.x NNN"
        let code: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some((200..400).contains(&code))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), exchange).await,
        Ok(Some(true))
    )
}

/// A free port on loopback for a web process.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
