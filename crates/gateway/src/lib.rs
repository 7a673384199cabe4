//! The SSH gateway: where `git push` arrives.
//!
//! It authenticates users by the public keys they added with `slip keys:add`, lets them run
//! `git-receive-pack` on the apps they may deploy and `git-upload-pack` on the apps they may
//! read, and refuses everything else — shells, terminals, other commands, other paths — with
//! a message and no side effect. A push is received by the real `git receive-pack` into one
//! bare repository per app; its pre-receive hook calls back into the gateway ([`hook`]),
//! which runs the push pipeline ([`pipeline`]) and streams its output to the pusher. A
//! failed build rejects the push.
//!
//! Architecture invariant: the gateway owns the repositories under `<data>/repos` and
//! nothing else on disk; it changes the platform's state only through the store, the
//! builder and the release manager's [`releaser::Deployer`].

mod command;
pub mod hook;
mod host_key;
mod limits;
mod locks;
mod pipeline;
mod repo;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use command::{GitCommand, Service, parse as parse_command};
pub use limits::ConnectionLimits;
use repo::{points_at, reachable};

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Holds `repos/`, `hooks/`, `run/hook.sock`, `tmp/` and the host key.
    pub data_dir: PathBuf,
    /// The program git runs as the pre-receive hook, with the argument `hook pre-receive`.
    pub hook_program: PathBuf,
    /// How long a push waits for another push to the same app.
    pub push_lock_timeout: Duration,
    /// The largest pack a push may send, in bytes.
    pub max_push_bytes: u64,
    /// The URL of an app, with `{app}` standing for its name.
    pub app_url_template: String,
    /// How many connections, from where, and for how long before they authenticate.
    pub limits: ConnectionLimits,
}

impl GatewayConfig {
    pub(crate) fn app_url(&self, app: &str) -> String {
        self.app_url_template.replace("{app}", app)
    }

    fn repos(&self) -> PathBuf {
        self.data_dir.join("repos")
    }

    fn hooks(&self) -> PathBuf {
        self.data_dir.join("hooks")
    }

    /// This process's hook socket: gateways sharing a data directory each have one.
    fn hook_socket(&self) -> PathBuf {
        self.data_dir
            .join("run")
            .join(format!("hook-{}.sock", std::process::id()))
    }

    /// This process's build directories.
    pub(crate) fn tmp(&self) -> PathBuf {
        self.data_dir
            .join("tmp")
            .join(std::process::id().to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the SSH host key: {0}")]
    HostKey(String),
    #[error("cannot listen on {addr} for SSH: {source}; choose another address with --ssh-listen")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot recover the pushes a restart cut off: {0}")]
    Store(store::Error),
    /// What a push sent cannot be built as it is; the message is for the pusher.
    #[error("{0}")]
    Refused(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// What every connection and hook call shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) store: store::Store,
    pub(crate) builder: Arc<builder::Builder>,
    /// Who this gateway is in the store's leases, and the name of its hook socket and
    /// build directory: unique per process, so gateways can share a data directory.
    pub(crate) instance: String,
    pub(crate) gate: Arc<limits::Gate>,
    /// Pushes in progress, by the id their hook presents.
    pub(crate) pushes: Mutex<HashMap<String, Arc<PushContext>>>,
    /// Every task a connection, a git command or a hook call runs in: waited for at
    /// shutdown, once the shutdown has cut them.
    pub(crate) tasks: TaskTracker,
}

/// A push in progress: who is pushing which app, and the token that fires if they go away.
#[derive(Debug)]
pub(crate) struct PushContext {
    pub(crate) app: store::App,
    pub(crate) user: store::User,
    pub(crate) repo: PathBuf,
    pub(crate) cancel: CancellationToken,
    /// Fires once git has exited: the push's refs have moved, or never will.
    pub(crate) git_done: CancellationToken,
    /// Held by the hook while a deployed release waits to learn whether its ref moved; the
    /// session waits for it before it tells the pusher the push is over, so the release's
    /// status is final by then.
    pub(crate) settling: tokio::sync::Mutex<()>,
}

/// A bound gateway, ready to run.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    hooks: UnixListener,
    ssh: Arc<russh::server::Config>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Prepares the data directory (repos, hooks, host key) and binds the SSH port and the
    /// hook socket.
    pub async fn bind(
        config: GatewayConfig,
        store: store::Store,
        builder: Arc<builder::Builder>,
    ) -> Result<Gateway, Error> {
        let instance = store::holder_name("gateway");
        for dir in [
            config.repos(),
            config.hooks(),
            config.data_dir.join("run"),
            config.data_dir.join("tmp"),
            config.tmp(),
        ] {
            tokio::fs::create_dir_all(&dir).await?;
        }
        clean_tmp(&config.data_dir.join("tmp")).await;
        clean_sockets(&config.data_dir.join("run")).await;
        recover(&store, &config.repos(), true).await?;
        write_hook(&config.hooks(), &config.hook_program).await?;
        let key = host_key::load_or_create(&config.data_dir.join("ssh_host_ed25519_key"))?;
        let ssh = russh::server::Config {
            server_id: russh::SshId::Standard(
                format!("SSH-2.0-Slipway_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            keys: vec![key],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(config.limits.idle_timeout),
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            ..Default::default()
        };
        let listener = listen(config.listen).map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
        let socket = config.hook_socket();
        let _ = tokio::fs::remove_file(&socket).await;
        let hooks = UnixListener::bind(&socket)?;
        set_mode(&socket, 0o600).await?;
        let shared = Arc::new(Shared {
            gate: limits::Gate::new(config.limits),
            config,
            store,
            builder,
            instance,
            pushes: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        });
        Ok(Gateway {
            shared,
            listener,
            hooks,
            ssh: Arc::new(ssh),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves SSH and the hook socket until `shutdown` fires; pushes in progress are cut,
    /// and what they were doing is waited for (up to [`DRAIN`]): their builds stop, their
    /// git processes are killed, their push leases given back.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Gateway {
            shared,
            listener,
            hooks,
            ssh,
        } = self;
        let hook_server = tokio::spawn(serve_hooks(Arc::clone(&shared), hooks, shutdown.clone()));
        // Tracked: it stops at its wait when `shutdown` fires; a sweep under way finishes.
        {
            let (store, repos, shutdown) = (
                shared.store.clone(),
                shared.config.repos(),
                shutdown.clone(),
            );
            shared.tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(SWEEP) => {}
                    }
                    if let Err(err) = recover(&store, &repos, false).await {
                        tracing::warn!(error = %err, "cannot look for cut-off pushes");
                    }
                }
            });
        }
        accept_ssh(&shared, &ssh, &listener, &shutdown).await;
        let _ = hook_server.await;
        let tasks = &shared.tasks;
        tasks.close();
        if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
            tracing::warn!(
                tasks = tasks.len(),
                "gateway work still running after {DRAIN:?}; stopping anyway"
            );
        }
        Ok(())
    }
}

/// How long the pushes a shutdown cut get to wind up.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Binds the SSH port with a long accept queue: in a burst of connections the kernel keeps
/// them waiting there instead of dropping their handshakes (which the clients would retry
/// only seconds later).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The shortest and longest pause after an accept that failed for want of resources.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Accepts SSH connections until `shutdown` fires. Never gives up: when the process is out
/// of file descriptors (or memory for sockets) it waits for connections to close, longer
/// each time, and tries again. russh's own accept loop returns on the first error, which
/// took the whole of slipwayd down with it.
async fn accept_ssh(
    shared: &Arc<Shared>,
    ssh: &Arc<russh::server::Config>,
    listener: &TcpListener,
    shutdown: &CancellationToken,
) {
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF.0;
                accepted
            }
            Err(err) if is_out_of_resources(&err) => {
                refusals.out_of_resources(&err);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
            // The client went away before we took it (ECONNABORTED and the like).
            Err(err) => {
                tracing::debug!(error = %err, "ssh accept failed");
                continue;
            }
        };
        let cut = shutdown.child_token();
        let slot = match shared.gate.admit(peer.ip(), cut.clone()) {
            Ok(slot) => Arc::new(slot),
            Err(refusal) => {
                refusals.refused(peer, refusal);
                // Closed at once: no banner, no buffer, nothing kept.
                drop(stream);
                continue;
            }
        };
        shared.tasks.spawn(serve_ssh(
            Arc::clone(shared),
            Arc::clone(ssh),
            stream,
            peer,
            slot,
            cut,
        ));
    }
}

/// One SSH connection, from the version exchange until it closes. It is cut (its stream
/// fails, so russh's session ends) when it has not authenticated within the deadline, when
/// the gate evicts it, or at shutdown.
async fn serve_ssh(
    shared: Arc<Shared>,
    ssh: Arc<russh::server::Config>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Arc<limits::Slot>,
    cut: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let deadline = shared.gate.limits().auth_timeout;
    let watchdog = {
        let (slot, cut) = (Arc::clone(&slot), cut.clone());
        async move {
            tokio::time::sleep(deadline).await;
            if slot.is_unauthenticated() {
                tracing::debug!(%peer, "ssh connection did not authenticate in time");
                cut.cancel();
            }
        }
    };
    let watchdog = tokio::spawn(watchdog);
    let handler = session::Connection::new(Arc::clone(&shared), peer, slot);
    let stream = limits::CutStream::new(stream, cut.clone());
    let session = tokio::select! {
        started = russh::server::run_stream(ssh, stream, handler) => started,
        () = cut.cancelled() => {
            watchdog.abort();
            return;
        }
    };
    match session {
        Ok(session) => {
            let handle = session.handle();
            tokio::select! {
                result = session => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "ssh connection ended with an error");
                    }
                }
                () = cut.cancelled() => {
                    // Shutdown or a deadline: say goodbye if the peer still listens; the
                    // stream is cut either way.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        handle.disconnect(
                            russh::Disconnect::ByApplication,
                            "Slipway closed the connection".to_owned(),
                            String::new(),
                        ),
                    )
                    .await;
                }
            }
        }
        Err(err) => tracing::debug!(%peer, error = %err, "ssh connection setup failed"),
    }
    watchdog.abort();
}

/// Errors of `accept` that mean the process, not the client, is short of something.
fn is_out_of_resources(err: &std::io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(err.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

/// Logs refused connections and resource shortages at most once every ten seconds, with a
/// count: a flood must not become a flood of log lines.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<tokio::time::Instant>,
    refused: u64,
    short: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn refused(&mut self, peer: SocketAddr, refusal: limits::Refusal) {
        self.refused += 1;
        if self.due() {
            tracing::warn!(
                %peer, ?refusal, refused = self.refused, out_of_resources = self.short,
                "ssh connections refused: too many (counts since the last such line)"
            );
            (self.refused, self.short) = (0, 0);
        }
    }

    fn out_of_resources(&mut self, err: &std::io::Error) {
        self.short += 1;
        if self.due() {
            tracing::error!(
                error = %err, refused = self.refused, out_of_resources = self.short,
                "cannot accept ssh connections: out of resources; waiting for connections to close"
            );
            (self.refused, self.short) = (0, 0);
        }
    }

    fn due(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if self.last.is_some_and(|last| now - last < Self::EVERY) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Writes the pre-receive hook that calls back into `program`.
async fn write_hook(dir: &Path, program: &Path) -> std::io::Result<()> {
    let program = program.to_string_lossy().replace('\'', r"'\''");
    let script = format!(
        "#!/bin/sh\n# Written by slipwayd at start: hands the push to the Slipway gateway.\nexec '{program}' hook pre-receive\n"
    );
    // Written aside and renamed into place: another gateway sharing the data directory may
    // be running the hook meanwhile.
    let path = dir.join("pre-receive");
    let aside = dir.join(format!(".pre-receive.{}", std::process::id()));
    tokio::fs::write(&aside, script).await?;
    set_mode(&aside, 0o755).await?;
    tokio::fs::rename(&aside, &path).await
}

async fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).await
}

/// What a crash cut off in the middle of a push, put right, for every app no live gateway is
/// pushing to: its builds left `running` are failed; a push's release still waiting whose commit
/// no ref of the repository reaches (the push was cut off before its ref moved, and git threw
/// its objects away) gets a `settle` saying so, and one whose ref did move gets one saying that
/// (the gateway that pushed it died before it could), so the release manager fails the first —
/// the release before it serving again — and records the second as succeeded. At start
/// (`at_start`), git's quarantine directories of cut-off pushes are removed too. Run at start
/// and every [`SWEEP`], as a gateway that dies leaves its pushes to the others.
pub(crate) async fn recover(
    store: &store::Store,
    repos: &Path,
    at_start: bool,
) -> Result<(), Error> {
    // At start every app, for its quarantines; after, only those with something unsettled.
    let apps = if at_start {
        store.all_apps().await
    } else {
        store.unsettled_apps().await
    };
    for app in apps.map_err(Error::Store)? {
        // Another gateway is pushing to it: what looks cut off is under way. (A gateway of
        // this host that has exited is pushing nothing.)
        let lease = locks::lease_name(&app.name);
        let holder = store.lease_holder(&lease).await.map_err(Error::Store)?;
        if holder.is_some_and(|h| !store::holder_gone(&h)) {
            continue;
        }
        let failed = store
            .fail_running_builds_of(&app, "cut off by a restart of slipwayd: push again")
            .await
            .map_err(Error::Store)?;
        if failed > 0 {
            tracing::warn!(app = %app.name, builds = failed, "builds cut off by a restart marked failed");
        }
        let repo = repos.join(format!("{}.git", app.name));
        if at_start {
            remove_quarantines(&repo).await;
        }
        let queued = store
            .unfinished_work(&app.name)
            .await
            .map_err(Error::Store)?;
        let settling = |version| {
            queued.iter().any(
                |w| matches!(w.kind, store::WorkKind::Settle { version: v, .. } if v == version),
            )
        };
        let releases = store.releases(&app, 20).await.map_err(Error::Store)?;
        for release in releases.iter().filter(|r| {
            matches!(
                r.status,
                domain::ReleaseStatus::Pending | domain::ReleaseStatus::Deploying
            )
        }) {
            let Some(build) = release.build else { continue };
            // Only a push's release waits for its ref; a promoted build's commit is its
            // upstream's, which this repository never sees.
            let commit = match store.build(&app, build).await {
                Ok(build) if build.is_push() => build.commit.unwrap_or_default(),
                Ok(_) => continue,
                Err(err) => return Err(Error::Store(err)),
            };
            if settling(release.version) {
                continue;
            }
            let ref_moved = reachable(&repo, &commit).await;
            if ref_moved && release.status == domain::ReleaseStatus::Pending {
                // Waiting for its deploy, which the release manager does.
                continue;
            }
            if !ref_moved {
                tracing::warn!(app = %app.name, version = %release.version, %commit, "a push cut off before its ref moved");
                // Unless a live release manager is deploying it now (the settle then undoes
                // it), it is failed at once, so that no deploy of it starts.
                let deploying = queued.iter().any(|w| {
                    w.status == store::WorkStatus::Running
                        && matches!(w.kind, store::WorkKind::Deploy { version, .. } if version == release.version)
                        && w.holder.as_deref().is_some_and(|h| !store::holder_gone(h))
                });
                if !deploying {
                    store
                        .set_release_status(
                            &app,
                            release.version,
                            domain::ReleaseStatus::Failed,
                            Some(domain::PUSH_CUT_OFF),
                        )
                        .await
                        .map_err(Error::Store)?;
                }
            }
            let settle = store::WorkKind::Settle {
                version: release.version,
                ref_moved,
            };
            store
                .enqueue(&app.name, &settle)
                .await
                .map_err(Error::Store)?;
        }
    }
    Ok(())
}

/// How often a gateway looks for pushes another gateway left cut off.
pub(crate) const SWEEP: Duration = Duration::from_secs(10);

/// Removes the quarantine directories git leaves in `objects/` when a push is cut off
/// (`tmp_objdir-incoming-*`). Only at start, when no push is running.
async fn remove_quarantines(repo: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(repo.join("objects")).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("tmp_objdir-incoming-")
        {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}

/// Removes build directories left by gateways that are gone (each has `tmp/<pid>`; another
/// gateway sharing the data directory may be building in its own).
async fn clean_tmp(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if !alive(&entry.file_name().to_string_lossy()) {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}

/// Removes the hook sockets of gateways that are gone (`run/hook-<pid>.sock`).
async fn clean_sockets(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("hook-")
            .and_then(|n| n.strip_suffix(".sock"))
            && !alive(pid)
        {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// Whether `pid` names a running process other than this one's predecessors: this process
/// counts as alive.
fn alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists())
}

async fn serve_hooks(shared: Arc<Shared>, listener: UnixListener, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "hook socket accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let tasks = shared.tasks.clone();
        let shared = Arc::clone(&shared);
        tasks.spawn(async move {
            if let Err(err) = serve_hook(&shared, stream).await {
                tracing::warn!(error = %err, "hook connection failed");
            }
        });
    }
}

/// One hook call: read the request, run the pipeline, stream its output, send the status.
async fn serve_hook(shared: &Shared, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let request: hook::HookRequest = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let push = shared
        .pushes
        .lock()
        .expect("never poisoned")
        .get(&request.push_id)
        .cloned();
    let Some(push) = push else {
        let refusal = hook::frame(
            hook::FRAME_OUTPUT,
            b"error: this push is not known to the gateway\n",
        );
        write.write_all(&refusal).await?;
        return write.write_all(&hook::frame(hook::FRAME_EXIT, &[1])).await;
    };
    let (sender, mut receiver) = logs::LineSender::channel(pipeline::PUSHER_LAG);
    let out = pipeline::Output::new(sender);
    let run = async {
        let result = pipeline::pre_receive(shared, &push, &request, &out).await;
        drop(out);
        result
    };
    let forward = async {
        while let Some(mut line) = receiver.recv().await {
            line.push('\n');
            write
                .write_all(&hook::frame(hook::FRAME_OUTPUT, line.as_bytes()))
                .await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let (result, forwarded) = tokio::join!(run, forward);
    let status = u8::from(result.is_err());
    // Taken before git can go on (it waits for the exit frame), so the session cannot miss it.
    let settling = push.settling.lock().await;
    let sent = match forwarded {
        Ok(()) => {
            write
                .write_all(&hook::frame(hook::FRAME_EXIT, &[status]))
                .await
        }
        Err(err) => Err(err),
    };
    drop(write);
    // A deployed release waits for git: it has succeeded only if the push's ref moved.
    if let Ok(Some(pushed)) = result {
        push.git_done.cancelled().await;
        let moved = points_at(&push.repo, &pushed.branch, &pushed.commit).await;
        pipeline::settle(&shared.store, &push.app.name, pushed.version, moved).await;
    }
    drop(settling);
    sent
}
