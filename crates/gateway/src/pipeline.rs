//! The push pipeline, run from the pre-receive hook: export the pushed commit, build it,
//! record the build, make the release, hand it to the release manager, and tell the pusher
//! how it went. An `Err` rejects the push; nothing is released then.

use std::path::Path;
use std::process::Stdio;

use store::{BuildSource, BuildStatus};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::hook::{HookRequest, RefUpdate};
use crate::{PushContext, Shared};

/// Branches that deploy; others are accepted and stored, but not built.
const DEPLOY_BRANCHES: &[&str] = &["refs/heads/main", "refs/heads/master"];

/// Sends lines to the pusher.
#[derive(Clone)]
pub(crate) struct Output(mpsc::UnboundedSender<Vec<u8>>);

impl Output {
    pub(crate) fn new(sender: mpsc::UnboundedSender<Vec<u8>>) -> Output {
        Output(sender)
    }

    pub(crate) fn line(&self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        let _ = self.0.send(bytes);
    }
}

/// Runs the pipeline for one hook invocation. `Err(message)` rejects the push.
pub(crate) async fn pre_receive(
    shared: &Shared,
    push: &PushContext,
    request: &HookRequest,
    out: &Output,
) -> Result<(), String> {
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
    let Some(update) = deploy else { return Ok(()) };
    let commit = update.new.clone();
    let short = &commit[..commit.len().min(7)];
    out.line(&format!(
        "-----> Building {} from {short}...",
        push.app.name
    ));

    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(shared.config.data_dir.join("tmp"))
        .map_err(|e| internal(out, "cannot make a build directory", e))?;
    let source = work.path().join("source");
    export(&push.repo, &commit, &request.git_env, &source)
        .await
        .map_err(|e| internal(out, "cannot export the pushed commit", e))?;

    let app = &push.app;
    let build = shared
        .store
        .create_build(app, &BuildSource::Commit(commit.clone()), &push.user)
        .await
        .map_err(|e| internal(out, "cannot record the build", e))?;
    let config = match shared.store.latest_release(app).await {
        Ok(release) => release.config,
        Err(err) => {
            let _ = shared
                .store
                .finish_build(
                    app,
                    build.id,
                    BuildStatus::Failed,
                    &Default::default(),
                    None,
                )
                .await;
            return Err(internal(out, "cannot read the app's config", err));
        }
    };
    let job = builder::BuildJob {
        app: app.name.as_str(),
        commit: &commit,
        source: &source,
        config: &config,
    };
    let log = |line: &str| out.line(line);
    let built = tokio::select! {
        built = shared.builder.build(&job, &log) => built,
        () = push.cancel.cancelled() => {
            let _ = shared.store.finish_build(app, build.id, BuildStatus::Failed, &Default::default(), None).await;
            return Err("the push was cancelled: the connection closed".to_owned());
        }
    };
    let output = match built {
        Ok(output) => output,
        Err(err) => {
            let _ = shared
                .store
                .finish_build(
                    app,
                    build.id,
                    BuildStatus::Failed,
                    &Default::default(),
                    None,
                )
                .await;
            return Err(format!("build failed: {err}"));
        }
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
            build.id,
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
    shared.deployer.deploy(&app.name, release.version);
    let url = shared.config.app_url(app.name.as_str());
    if shared.deployer.deploys() {
        out.line(&format!(
            "-----> {} released, deploying to {url}",
            release.version
        ));
    } else {
        out.line(&format!(
            "-----> {} released; not deployed: this platform has no runtime yet, so it stays pending",
            release.version
        ));
    }
    Ok(())
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
