//! The push pipeline, run from the pre-receive hook: export the pushed commit, build it,
//! record the build, make the release, hand it to the release manager, and tell the pusher
//! how it went. An `Err` rejects the push; nothing is released then.
//!
//! The deploy runs before git moves the ref (a failed deploy rejects the push), so a
//! deployed release stays `deploying` until the push has ended and the gateway has seen
//! whether the ref moved ([`Pushed`], settled in `serve_hook`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use store::{BuildSource, BuildStatus};
use tokio::io::AsyncWriteExt;

use crate::hook::{HookRequest, RefUpdate};
use crate::{PushContext, Shared};

/// Branches that deploy; others are accepted and stored, but not built.
const DEPLOY_BRANCHES: &[&str] = &["refs/heads/main", "refs/heads/master"];

/// Sends lines to the pusher, and keeps a copy for the build's log. The pusher's queue is
/// bounded: a pusher who reads slower than the build and deploy print misses lines, with a
/// count, rather than the gateway holding them.
#[derive(Clone)]
pub(crate) struct Output {
    sender: Arc<logs::LineSender>,
    kept: Arc<Mutex<String>>,
}

/// Lines waiting for the pusher, at most.
pub(crate) const PUSHER_LAG: usize = 4_096;

impl Output {
    pub(crate) fn new(sender: logs::LineSender) -> Output {
        Output {
            sender: Arc::new(sender),
            kept: Arc::default(),
        }
    }

    pub(crate) fn line(&self, text: &str) {
        self.sender.send(text);
        let mut kept = self.kept.lock().expect("never poisoned");
        // The builder bounds a build's output; this bound only guards the lines around it.
        if kept.len() < MAX_KEPT_LOG {
            kept.push_str(text);
            kept.push('\n');
        }
    }

    fn kept(&self) -> String {
        self.kept.lock().expect("never poisoned").clone()
    }
}

/// The most of a push's output kept as its build log.
const MAX_KEPT_LOG: usize = builder::BuilderConfig::DEFAULT_MAX_OUTPUT + 64 * 1024;

/// A release deployed before its push's ref moved: once git is done, it has succeeded if
/// `branch` points at `commit`, and failed if not.
#[derive(Debug)]
pub(crate) struct Pushed {
    pub(crate) version: domain::ReleaseVersion,
    pub(crate) branch: String,
    pub(crate) commit: String,
}

/// Runs the pipeline for one hook invocation. `Err(message)` rejects the push; the
/// message has been shown to the pusher.
pub(crate) async fn pre_receive(
    shared: &Shared,
    push: &PushContext,
    request: &HookRequest,
    out: &Output,
) -> Result<Option<Pushed>, String> {
    let mut build = None;
    let result = run(shared, push, request, out, &mut build).await;
    if let Err(message) = &result {
        out.line(&format!(" !     {message}"));
    }
    if let Some(id) = build {
        if result.is_err() {
            // A build that ended before succeeding is marked failed; one that succeeded stays so.
            let _ = shared
                .store
                .finish_build(&push.app, id, BuildStatus::Failed, &BTreeMap::new(), None)
                .await;
        }
        if let Err(err) = shared.store.set_build_log(&push.app, id, &out.kept()).await {
            tracing::error!(error = %err, "cannot keep the build log");
        }
    }
    result
}

async fn run(
    shared: &Shared,
    push: &PushContext,
    request: &HookRequest,
    out: &Output,
    build: &mut Option<uuid::Uuid>,
) -> Result<Option<Pushed>, String> {
    let Some(update) = deployed_update(push, request, out)? else {
        return Ok(None);
    };
    let commit = update.new.clone();
    let short = &commit[..commit.len().min(7)];
    out.line(&format!(
        "-----> Building {} from {short}...",
        push.app.name
    ));
    let record = shared
        .store
        .create_build(&push.app, &BuildSource::Commit(commit.clone()), &push.user)
        .await
        .map_err(|e| internal(out, "cannot record the build", e))?;
    *build = Some(record.id);
    let version = build_and_release(shared, push, request, out, record.id, &commit).await?;
    Ok(version.map(|version| Pushed {
        version,
        branch: update.name.clone(),
        commit,
    }))
}

/// The ref update that deploys (main, else master), after checking the others.
fn deployed_update<'a>(
    push: &PushContext,
    request: &'a HookRequest,
    out: &Output,
) -> Result<Option<&'a RefUpdate>, String> {
    let mut deploy: Option<&RefUpdate> = None;
    for update in &request.updates {
        let deploys = DEPLOY_BRANCHES.contains(&update.name.as_str());
        if update.is_delete() {
            if deploys {
                return Err(format!(
                    "deleting {} is not allowed: it is what {} runs",
                    update.name, push.app.name
                ));
            }
            continue;
        }
        if deploys {
            // When both are pushed at once, main wins.
            if deploy.is_none_or(|d| d.name != DEPLOY_BRANCHES[0]) {
                deploy = Some(update);
            }
        } else {
            out.line(&format!(
                "-----> {} accepted, not built: only main and master are deployed",
                update.name
            ));
        }
    }
    Ok(deploy)
}

/// Export, build, record, release, deploy. Any `Err` leaves no release. `Some` is the
/// deployed release, waiting for the ref to move.
async fn build_and_release(
    shared: &Shared,
    push: &PushContext,
    request: &HookRequest,
    out: &Output,
    build: uuid::Uuid,
    commit: &str,
) -> Result<Option<domain::ReleaseVersion>, String> {
    let app = &push.app;
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(shared.config.data_dir.join("tmp"))
        .map_err(|e| internal(out, "cannot make a build directory", e))?;
    let source = work.path().join("source");
    export(&push.repo, commit, &request.git_env, &source)
        .await
        .map_err(|e| internal(out, "cannot export the pushed commit", e))?;
    let config = shared
        .store
        .latest_release(app)
        .await
        .map_err(|e| internal(out, "cannot read the app's config", e))?
        .config;
    let job = builder::BuildJob {
        app: app.name.as_str(),
        commit,
        source: &source,
        config: &config,
    };
    let log = |line: &str| out.line(line);
    let output = tokio::select! {
        built = shared.builder.build(&job, &log) => built.map_err(|e| format!("build failed: {e}"))?,
        () = push.cancel.cancelled() => return Err("the push was cancelled: the connection closed".to_owned()),
    };
    let procfile = output
        .procfile
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_owned()))
        .collect();
    let build = shared
        .store
        .finish_build(
            app,
            build,
            BuildStatus::Succeeded,
            &procfile,
            output.image.as_deref(),
        )
        .await
        .map_err(|e| internal(out, "cannot record the build", e))?;
    // The last moment to back out: a pusher who has gone gets no release.
    if push.cancel.is_cancelled() {
        return Err("the push was cancelled: the connection closed".to_owned());
    }
    let release = shared
        .store
        .release_build(app, build.id, &push.user)
        .await
        .map_err(|e| internal(out, "cannot make the release", e))?;
    let url = shared.config.app_url(app.name.as_str());
    if !shared.deployer.deploys() {
        shared.deployer.deploy(&app.name, release.version);
        out.line(&format!(
            "-----> {} released; not deployed: this platform has no runtime, so it stays pending",
            release.version
        ));
        return Ok(None);
    }
    out.line(&format!("-----> {} released, deploying", release.version));
    let (progress, mut lines) = logs::LineSender::channel(releaser::READER_LAG);
    let deploying = shared
        .deployer
        .deploy_push(&app.name, release.version, progress);
    tokio::pin!(deploying);
    let outcome = loop {
        tokio::select! {
            Some(line) = lines.recv() => out.line(&line),
            outcome = &mut deploying => break outcome,
        }
    };
    while let Some(line) = lines.try_recv() {
        out.line(&line);
    }
    match outcome {
        Ok(()) => {
            out.line(&format!("-----> {} deployed to {url}", release.version));
            Ok(Some(release.version))
        }
        Err(err) => Err(format!(
            "{} failed: {err}; the previous release keeps serving. `slip logs` shows the app's output",
            release.version
        )),
    }
}

/// Logs an internal failure in full and gives the pusher a short reason.
fn internal(out: &Output, what: &str, err: impl std::fmt::Display) -> String {
    tracing::error!(error = %err, "{what}");
    out.line(&format!("       {what}; the server log has the details"));
    format!("{what}: the push was not released")
}

/// Writes the tree of `commit` into `dest` with `git archive | tar -x`, reading the objects
/// from git's quarantine, where they wait until the hook accepts the push.
async fn export(
    repo: &Path,
    commit: &str,
    git_env: &std::collections::BTreeMap<String, String>,
    dest: &Path,
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dest).await?;
    let mut archive = tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["archive", "--format=tar", commit])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(git_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut tar = tokio::process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(dest)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut from = archive.stdout.take().expect("piped");
    let mut to = tar.stdin.take().expect("piped");
    let copy = async {
        tokio::io::copy(&mut from, &mut to).await?;
        to.shutdown().await
    };
    let (copied, archived, untarred) = tokio::join!(copy, archive.wait_with_output(), tar.wait());
    copied?;
    let archived = archived?;
    if !archived.status.success() {
        return Err(std::io::Error::other(format!(
            "git archive: {}",
            String::from_utf8_lossy(&archived.stderr).trim()
        )));
    }
    if !untarred?.success() {
        return Err(std::io::Error::other("tar -x failed"));
    }
    Ok(())
}
