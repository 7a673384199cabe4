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
mod locks;
mod pipeline;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

pub use command::{GitCommand, Service, parse as parse_command};

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

    fn hook_socket(&self) -> PathBuf {
        self.data_dir.join("run").join("hook.sock")
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
}

/// What every connection and hook call shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) store: store::Store,
    pub(crate) builder: Arc<builder::Builder>,
    pub(crate) deployer: Arc<dyn releaser::Deployer>,
    pub(crate) locks: locks::AppLocks,
    /// Pushes in progress, by the id their hook presents.
    pub(crate) pushes: Mutex<HashMap<String, Arc<PushContext>>>,
}

/// A push in progress: who is pushing which app, and the token that fires if they go away.
#[derive(Debug)]
pub(crate) struct PushContext {
    pub(crate) app: store::App,
    pub(crate) user: store::User,
    pub(crate) repo: PathBuf,
    pub(crate) cancel: CancellationToken,
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
        deployer: Arc<dyn releaser::Deployer>,
    ) -> Result<Gateway, Error> {
        for dir in [
            config.repos(),
            config.hooks(),
            config.data_dir.join("run"),
            config.data_dir.join("tmp"),
        ] {
            tokio::fs::create_dir_all(&dir).await?;
        }
        clean_tmp(&config.data_dir.join("tmp")).await;
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
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            ..Default::default()
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let socket = config.hook_socket();
        let _ = tokio::fs::remove_file(&socket).await;
        let hooks = UnixListener::bind(&socket)?;
        set_mode(&socket, 0o600).await?;
        let shared = Arc::new(Shared {
            config,
            store,
            builder,
            deployer,
            locks: locks::AppLocks::default(),
            pushes: Mutex::new(HashMap::new()),
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

    /// Serves SSH and the hook socket until `shutdown` fires; pushes in progress are cut.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Gateway {
            shared,
            listener,
            hooks,
            ssh,
        } = self;
        let hook_server = tokio::spawn(serve_hooks(Arc::clone(&shared), hooks, shutdown.clone()));
        let mut server = session::SshServer {
            shared: Arc::clone(&shared),
        };
        let running = russh::server::Server::run_on_socket(&mut server, ssh, &listener);
        let handle = running.handle();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            handle.shutdown("Slipway is shutting down".to_owned());
        });
        running.await?;
        hook_server.abort();
        Ok(())
    }
}

/// Writes the pre-receive hook that calls back into `program`.
async fn write_hook(dir: &Path, program: &Path) -> std::io::Result<()> {
    let program = program.to_string_lossy().replace('\'', r"'\''");
    let script = format!(
        "#!/bin/sh\n# Written by slipwayd at start: hands the push to the Slipway gateway.\nexec '{program}' hook pre-receive\n"
    );
    let path = dir.join("pre-receive");
    tokio::fs::write(&path, script).await?;
    set_mode(&path, 0o755).await
}

async fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).await
}

/// Removes build directories left by a crash.
async fn clean_tmp(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let _ = tokio::fs::remove_dir_all(entry.path()).await;
    }
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
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
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
    let (sender, mut receiver) = releaser::LineSender::channel(pipeline::PUSHER_LAG);
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
    forwarded?;
    write
        .write_all(&hook::frame(hook::FRAME_EXIT, &[status]))
        .await
}
