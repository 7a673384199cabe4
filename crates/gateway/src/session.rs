//! One SSH connection: authentication, the requests a git client makes, and the refusal of
//! everything else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use russh::keys::HashAlg;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use store::{Access, Need};

use crate::locks;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::command::{self, GitCommand, Service};
use crate::hook;
use crate::limits::Slot;
use crate::{PushContext, Shared};

/// Exit status for a refused command, as git uses for fatal errors.
const REFUSED: u32 = 128;

/// Who authenticated: a platform user (through a deploy key, limited to one app), or a
/// valid key nobody has added (told so on any command).
enum Identity {
    User {
        user: store::User,
        /// A deploy key's app: the key acts as `user`, on this app only.
        only_app: Option<uuid::Uuid>,
    },
    UnknownKey(String),
}

pub(crate) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Its place in the gateway's connection counts, given back when the connection ends.
    slot: Arc<Slot>,
    identity: Option<Identity>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// `GIT_PROTOCOL`, the one environment variable passed on (it selects git's wire protocol).
    git_protocol: Option<String>,
    /// A terminal was asked for: whatever command follows is refused.
    pty_requested: bool,
    /// Fires when the connection ends, for whatever reason: the push it carries is cancelled.
    closed: CancellationToken,
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>, peer: SocketAddr, slot: Arc<Slot>) -> Connection {
        Connection {
            shared,
            peer,
            slot,
            identity: None,
            channels: HashMap::new(),
            git_protocol: None,
            pty_requested: false,
            closed: CancellationToken::new(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let identity = match self.shared.store.user_by_key(&fingerprint).await {
            Ok(Some(owner)) => {
                tracing::info!(peer = %self.peer, ssh_user = user, user = %owner.user.username,
                    deploy_key = owner.only_app.is_some(), key = %owner.comment, "ssh login");
                Identity::User {
                    user: owner.user,
                    only_app: owner.only_app,
                }
            }
            Ok(None) => {
                // Let the client in, but only to be told what to do: every command is refused.
                tracing::info!(peer = %self.peer, %fingerprint, "ssh login with an unregistered key");
                Identity::UnknownKey(fingerprint)
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot look up an SSH key");
                return Ok(Auth::reject());
            }
        };
        // A platform user's connection leaves the unauthenticated count, unless the gate
        // has already closed it (deadline or eviction). A key nobody added stays counted
        // there: it may only hear why it is refused, within the authentication deadline.
        if matches!(identity, Identity::User { .. }) && !self.slot.authenticated() {
            return Ok(Auth::reject());
        }
        self.identity = Some(identity);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Refusing the request itself makes OpenSSH exit before it prints why; so take note,
        // and refuse the command that follows with the reason.
        self.pty_requested = true;
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let valid_protocol = name == "GIT_PROTOCOL"
            && value.len() < 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=:.".contains(&b));
        if valid_protocol {
            self.git_protocol = Some(value.to_owned());
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let greeting = match &self.identity {
            Some(Identity::User { user, .. }) => format!("Hi {}! ", user.username),
            _ => String::new(),
        };
        session.channel_success(channel)?;
        refuse(
            session,
            channel,
            &format!(
                "{greeting}Slipway gives no shell or terminal: push with `git push slipway main`"
            ),
        )
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        refuse(
            session,
            channel,
            &format!("Slipway offers no {name} subsystem: push with `git push slipway main`"),
        )
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        if self.pty_requested {
            return refuse(
                session,
                channel,
                "Slipway gives no terminal: git does not ask for one; push with `git push slipway main`",
            );
        }
        let (user, only_app) = match &self.identity {
            Some(Identity::User { user, only_app }) => (user.clone(), *only_app),
            Some(Identity::UnknownKey(fingerprint)) => {
                return refuse(
                    session,
                    channel,
                    &format!(
                        "the key {fingerprint} is not registered with Slipway: add it with `slip keys:add`"
                    ),
                );
            }
            None => return refuse(session, channel, "not authenticated"),
        };
        let command = match command::parse(data) {
            Ok(command) => command,
            Err(message) => return refuse(session, channel, &message),
        };
        let app = match self.authorize(&user, only_app, &command).await {
            Ok(app) => app,
            Err(message) => return refuse(session, channel, &message),
        };
        let Some(channel) = self.channels.remove(&channel) else {
            return refuse(session, channel, "no such channel");
        };
        let job = GitJob {
            shared: Arc::clone(&self.shared),
            user,
            app,
            command,
            git_protocol: self.git_protocol.clone(),
            closed: self.closed.clone(),
        };
        self.shared.tasks.spawn(job.run(channel));
        Ok(())
    }
}

impl Connection {
    /// The app, if `user` may do what `command` asks (through a deploy key, only on
    /// `only_app`); otherwise the reason, for the pusher.
    async fn authorize(
        &self,
        user: &store::User,
        only_app: Option<uuid::Uuid>,
        command: &GitCommand,
    ) -> Result<store::App, String> {
        let need = match command.service {
            Service::ReceivePack => Need::Deploy,
            Service::UploadPack => Need::Read,
        };
        let (app, access) = match self
            .shared
            .store
            .app_access(command.app.as_str(), user)
            .await
        {
            Ok(found) => found,
            Err(store::Error::NotFound(_)) => return Err(no_such_app(&command.app)),
            Err(err) => {
                tracing::error!(error = %err, "cannot authorise a git command");
                return Err("internal error; the server log has the details".to_owned());
            }
        };
        if only_app.is_some_and(|only| only != app.id) {
            // A deploy key is for its one app: any other is as good as missing.
            Err(no_such_app(&command.app))
        } else if Access::permits(access, user.admin, need) {
            Ok(app)
        } else if access == Access::None {
            // Someone else's app: told exactly what they would be told if it did not exist.
            Err(no_such_app(&command.app))
        } else {
            Err(format!(
                "you ({}) may not push to {}: ask its owner to run `slip perms:add {}`",
                user.username, app.name, user.username
            ))
        }
    }
}

/// What a pusher hears about an app that does not exist, or that they cannot see.
fn no_such_app(app: &impl std::fmt::Display) -> String {
    format!("there is no app {app}: create it with `slip create {app}`")
}

/// Writes one line to the client's stderr.
fn say(session: &mut Session, channel: ChannelId, message: &str) -> Result<(), russh::Error> {
    session.extended_data(channel, 1, format!("{message}\n").into_bytes())
}

/// Tells the client why, and ends the channel with a failing status.
fn refuse(session: &mut Session, channel: ChannelId, message: &str) -> Result<(), russh::Error> {
    say(session, channel, &format!("error: {message}"))?;
    session.exit_status_request(channel, REFUSED)?;
    session.eof(channel)?;
    session.close(channel)
}

/// One authorised git command, running in its own task.
struct GitJob {
    shared: Arc<Shared>,
    user: store::User,
    app: store::App,
    command: GitCommand,
    git_protocol: Option<String>,
    closed: CancellationToken,
}

impl GitJob {
    async fn run(self, channel: Channel<Msg>) {
        let (mut read, write) = channel.split();
        let mut stderr = write.make_writer_ext(Some(1));
        let status = match self.serve(&mut read, &write).await {
            Ok(status) => status,
            Err(message) => {
                let _ = stderr
                    .write_all(format!("error: {message}\n").as_bytes())
                    .await;
                let _ = stderr.flush().await;
                REFUSED
            }
        };
        let _ = write.exit_status(status).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    }

    /// Runs git for the command, wired to the channel. Returns git's exit status.
    async fn serve(
        &self,
        read: &mut russh::ChannelReadHalf,
        write: &russh::ChannelWriteHalf<Msg>,
    ) -> Result<u32, String> {
        let app = self.app.name.as_str();
        let repo = crate::repo::repo_path(&self.shared.config.repos(), &self.app.name);
        let mut stderr = write.make_writer_ext(Some(1));
        let mut env: Vec<(&str, String)> = Vec::new();
        let mut config: Vec<String> = Vec::new();
        let _guard;
        let push_id;
        match self.command.service {
            Service::UploadPack => {
                if !tokio::fs::try_exists(&repo).await.unwrap_or(false) {
                    return Err(format!(
                        "{app} has no code yet: push some with `git push slipway main`"
                    ));
                }
                push_id = None;
            }
            Service::ReceivePack => {
                let limit = self.shared.config.push_lock_timeout;
                let id = uuid::Uuid::new_v4().simple().to_string();
                let holder = format!("{}/{id}", self.shared.instance);
                let store = &self.shared.store;
                let lease_failed = |e: store::Error| {
                    tracing::error!(error = %e, "cannot take a push lease");
                    "cannot take the app's push lock; the server log has the details".to_owned()
                };
                let guard = match locks::try_acquire(
                    store,
                    &self.shared.tasks,
                    &self.app.name,
                    &holder,
                )
                .await
                .map_err(lease_failed)?
                {
                    Some(guard) => guard,
                    None => {
                        let notice = format!(
                            "-----> Another push to {app} is running; waiting up to {}s for it\n",
                            limit.as_secs()
                        );
                        let _ = stderr.write_all(notice.as_bytes()).await;
                        let _ = stderr.flush().await;
                        locks::wait(store, &self.shared.tasks, &self.app.name, &holder, limit)
                            .await
                            .map_err(lease_failed)?
                            .ok_or_else(|| {
                                format!("another push to {app} is still running after {}s; try again when it ends", limit.as_secs())
                            })?
                    }
                };
                _guard = guard;
                crate::repo::create(&repo).await.map_err(|e| {
                    tracing::error!(error = %e, repo = %repo.display(), "cannot create a repository");
                    "cannot create the repository; the server log has the details".to_owned()
                })?;
                let context = PushContext {
                    app: self.app.clone(),
                    user: self.user.clone(),
                    repo: repo.clone(),
                    cancel: self.closed.child_token(),
                    git_done: CancellationToken::new(),
                    settling: tokio::sync::Mutex::new(()),
                };
                self.shared
                    .pushes
                    .lock()
                    .expect("never poisoned")
                    .insert(id.clone(), Arc::new(context));
                env.push((hook::PUSH_ID_VAR, id.clone()));
                env.push((
                    hook::SOCKET_VAR,
                    self.shared
                        .config
                        .hook_socket()
                        .to_string_lossy()
                        .into_owned(),
                ));
                config.push(format!(
                    "core.hooksPath={}",
                    self.shared.config.hooks().display()
                ));
                config.push(format!(
                    "receive.maxInputSize={}",
                    self.shared.config.max_push_bytes
                ));
                push_id = Some(id);
            }
        }
        let result = self.spawn_git(&repo, &env, &config, read, write).await;
        if let Some(id) = push_id {
            let push = self
                .shared
                .pushes
                .lock()
                .expect("never poisoned")
                .remove(&id);
            // git has exited (or was killed): whatever ref it was going to move, it has.
            if let Some(push) = push {
                push.git_done.cancel();
                // The pusher hears the push is over once its release's status is final.
                let _settled = push.settling.lock().await;
            }
        }
        result
    }

    async fn spawn_git(
        &self,
        repo: &std::path::Path,
        env: &[(&str, String)],
        config: &[String],
        read: &mut russh::ChannelReadHalf,
        write: &russh::ChannelWriteHalf<Msg>,
    ) -> Result<u32, String> {
        let mut git = tokio::process::Command::new("git");
        for entry in config {
            git.arg("-c").arg(entry);
        }
        git.arg(self.command.service.git_subcommand())
            .arg(repo)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.shared.config.data_dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(protocol) = &self.git_protocol {
            git.env("GIT_PROTOCOL", protocol);
        }
        let mut child = git.spawn().map_err(|e| format!("cannot start git: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let mut out = write.make_writer();
        let mut err = write.make_writer_ext(Some(1));
        let upload = async move {
            let mut reader = read.make_reader();
            let _ = tokio::io::copy(&mut reader, &mut stdin).await;
            // Closing the pipe is git's end of input; a pipe's shutdown() does not close it.
            drop(stdin);
        };
        let output = async {
            let copy_out = async {
                let _ = tokio::io::copy(&mut stdout, &mut out).await;
                let _ = out.flush().await;
            };
            let copy_err = async {
                let _ = tokio::io::copy(&mut stderr, &mut err).await;
                let _ = err.flush().await;
            };
            tokio::join!(copy_out, copy_err);
        };
        // Done when git has exited and its output is delivered. The upload runs alongside
        // but does not hold the end up: the client may keep its side open until it has read
        // the reply. Dropping `child` (kill_on_drop) ends git if the connection goes first.
        let finished = async { tokio::join!(output, child.wait()).1 };
        tokio::pin!(upload, finished);
        let mut uploading = true;
        let status = loop {
            tokio::select! {
                () = &mut upload, if uploading => uploading = false,
                status = &mut finished => break status,
                () = self.closed.cancelled() => return Err("the connection closed".to_owned()),
            }
        };
        let status = status.map_err(|e| format!("git failed: {e}"))?;
        Ok(status.code().map_or(REFUSED, |c| c as u32))
    }
}
