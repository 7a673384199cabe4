//! The push pipeline, run from the pre-receive hook: export the pushed commit, build it,
//! record the build, make the release, hand it to the release manager, and tell the pusher
//! how it went. An `Err` rejects the push; nothing is released then.
//!
//! The deploy runs before git moves the ref (a failed deploy rejects the push), so a
//! deployed release stays `deploying` until the push has ended and the gateway has seen
//! whether the ref moved ([`Pushed`], settled in `serve_hook`).
//!
//! An app in a pipeline is tested before its build counts as succeeded: a failing test
//! rejects the push with the build failed and nothing released, so an untested image is
//! never deployable by digest nor a rollback target. A push to `refs/slipway/ci` builds and
//! tests any app's commit and never releases it: the push's result is the test's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use store::{BuildSource, BuildStatus};

use crate::hook::{HookRequest, RefUpdate};
use crate::{PushContext, Shared};

/// Branches that deploy; others are accepted and stored, but not built.
const DEPLOY_BRANCHES: &[&str] = &["refs/heads/main", "refs/heads/master"];

/// The ref `slip ci:run` pushes: built and tested, never released.
const CI_REF: &str = "refs/slipway/ci";

/// What a push's commit is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A deploy branch: released (tested first when the app is in a pipeline).
    Deploy,
    /// `refs/slipway/ci`: tested, never released.
    Test,
}

/// How long a test may print nothing before the pusher is told it still runs, which also
/// keeps the SSH connection from counting as idle.
const TEST_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

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
    let Some((update, purpose)) = deployed_update(push, request, out)? else {
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
    // The log so far reaches the store while the build runs, so the dashboard can show it.
    let flushing = tokio::spawn(flush_log(
        shared.store.clone(),
        push.app.clone(),
        record.id,
        out.clone(),
    ));
    let built = build_and_release(shared, push, request, out, record.id, &commit, purpose).await;
    flushing.abort();
    let version = built?;
    Ok(version.map(|version| Pushed {
        version,
        branch: update.name.clone(),
        commit,
    }))
}

/// How often a running build's log is written to the store.
const LOG_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the build's log to the store whenever it has grown, until aborted; the last
/// write, once the push is done, is `pre_receive`'s. The log is bounded (`MAX_KEPT_LOG`).
async fn flush_log(store: store::Store, app: store::App, build: uuid::Uuid, out: Output) {
    let mut written = 0;
    let mut every = tokio::time::interval(LOG_FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let kept = out.kept();
        if kept.len() == written {
            continue;
        }
        match store.set_build_log(&app, build, &kept).await {
            Ok(()) => written = kept.len(),
            Err(err) => tracing::warn!(error = %err, "cannot write the running build's log"),
        }
    }
}

/// The ref update that deploys (main, else master), else a push to [`CI_REF`], after
/// checking the others.
fn deployed_update<'a>(
    push: &PushContext,
    request: &'a HookRequest,
    out: &Output,
) -> Result<Option<(&'a RefUpdate, Purpose)>, String> {
    let mut deploy: Option<&RefUpdate> = None;
    let mut test: Option<&RefUpdate> = None;
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
        } else if update.name == CI_REF {
            test = Some(update);
        } else {
            out.line(&format!(
                "-----> {} accepted, not built: only main and master are deployed",
                update.name
            ));
        }
    }
    Ok(match (deploy, test) {
        (Some(deploy), Some(_)) => {
            out.line(&format!(
                "-----> {CI_REF} accepted, not tested on its own: {} is deployed",
                deploy.name
            ));
            Some((deploy, Purpose::Deploy))
        }
        (Some(deploy), None) => Some((deploy, Purpose::Deploy)),
        (None, Some(test)) => Some((test, Purpose::Test)),
        (None, None) => None,
    })
}

/// Export, build, test (an app in a pipeline, or [`Purpose::Test`]), record, release,
/// deploy. Any `Err` leaves no release. `Some` is the deployed release, waiting for the ref
/// to move.
async fn build_and_release(
    shared: &Shared,
    push: &PushContext,
    request: &HookRequest,
    out: &Output,
    build: uuid::Uuid,
    commit: &str,
    purpose: Purpose,
) -> Result<Option<domain::ReleaseVersion>, String> {
    let app = &push.app;
    let tmp = shared.config.tmp();
    let work = tokio::task::spawn_blocking(move || {
        tempfile::Builder::new().prefix("build-").tempdir_in(tmp)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|made| made)
    .map_err(|e| internal(out, "cannot make a build directory", e))?;
    let work = BuildDir {
        dir: Some(work),
        tasks: shared.tasks.clone(),
    };
    let source = work.path().join("source");
    let limits = crate::repo::Limits::new(shared.config.max_push_bytes);
    let exported = crate::repo::export(
        &push.repo,
        commit,
        &request.git_env,
        &source,
        limits,
        &push.cancel,
    )
    .await
    .map_err(|e| match e {
        crate::Error::Refused(message) => message,
        e => internal(out, "cannot export the pushed commit", e),
    })?;
    for notice in &exported.notices {
        out.line(notice);
    }
    let config = shared
        .store
        .latest_release(app)
        .await
        .map_err(|e| internal(out, "cannot read the app's config", e))?
        .config;
    // Its builds run as the uid its number gives, as its processes do.
    shared
        .builder
        .isolation()
        .assign(app.name.as_str(), app.uid_slot);
    let job = builder::BuildJob {
        app: app.name.as_str(),
        commit,
        source: &source,
        config: &config,
        stack: app.stack,
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
    // Tested before the build counts as succeeded: a failure fails the build.
    let tested = match purpose {
        Purpose::Test => true,
        Purpose::Deploy => shared
            .store
            .pipeline_of(app)
            .await
            .map_err(|e| internal(out, "cannot read the app's pipeline", e))?
            .is_some(),
    };
    if tested {
        match (&output.test, output.image.as_deref()) {
            (Some(plan), Some(image)) => {
                let cause = match purpose {
                    Purpose::Deploy => store::TestCause::Push,
                    Purpose::Test => store::TestCause::CiRun,
                };
                let run = store::NewTestRun {
                    build,
                    commit: Some(commit),
                    image,
                    procfile: &procfile,
                    plan,
                    cause,
                };
                run_tests(shared, push, out, &run).await?;
            }
            (Some(_), None) => {
                return Err(internal(out, "cannot test the build", "it made no image"));
            }
            (None, _) if purpose == Purpose::Test => {
                return Err(format!(
                    "{NO_TEST_COMMAND}: nothing to test. Add one, such as `test: pytest` in the Procfile"
                ));
            }
            (None, _) => out.line(&format!("-----> {NO_TEST_COMMAND}: not tested")),
        }
    }
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
    if let Some(plan) = &output.test {
        shared
            .store
            .set_build_test_plan(app, build.id, plan)
            .await
            .map_err(|e| internal(out, "cannot record the build", e))?;
    }
    if let Some(bytes) = output.pushed_bytes {
        shared
            .store
            .set_build_pushed_bytes(app, build.id, bytes)
            .await
            .map_err(|e| internal(out, "cannot record the build", e))?;
    }
    // The last moment to back out: a pusher who has gone gets no release.
    if push.cancel.is_cancelled() {
        return Err("the push was cancelled: the connection closed".to_owned());
    }
    if purpose == Purpose::Test {
        out.line(&format!(
            "-----> {CI_REF} built and tested; nothing was released"
        ));
        return Ok(None);
    }
    let release = shared
        .store
        .release_build(app, build.id, &push.user)
        .await
        .map_err(|e| internal(out, "cannot make the release", e))?;
    let url = shared.config.app_url(app.name.as_str());
    out.line(&format!("-----> {} released, deploying", release.version));
    let deploy = store::WorkKind::Deploy {
        version: release.version,
        awaits_ref: true,
    };
    let work = shared
        .store
        .enqueue(&app.name, &deploy)
        .await
        .map_err(|e| internal(out, "cannot queue the deploy", e))?;
    let outcome = tokio::select! {
        outcome = await_deploy(&shared.store, work, out) => outcome,
        () = push.cancel.cancelled() => {
            // The deploy goes on without the pusher; once it has, the release it made is
            // failed and the one before serves again, as for any push cut off.
            settle(&shared.store, &app.name, release.version, false).await;
            return Err("the push was cancelled: the connection closed".to_owned());
        }
    };
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

/// Said when a build has nothing to test it with.
const NO_TEST_COMMAND: &str = "no test command (app.json scripts.test or Procfile test:)";

/// Records a test run of the build, has a release manager run it, and streams its output to
/// the pusher. `Err` unless it passed: the push is rejected, nothing released.
async fn run_tests(
    shared: &Shared,
    push: &PushContext,
    out: &Output,
    new: &store::NewTestRun<'_>,
) -> Result<(), String> {
    let store = &shared.store;
    let app = &push.app;
    let run = store
        .create_test_run(app, new, &push.user)
        .await
        .map_err(|e| internal(out, "cannot record the test run", e))?;
    let number = run.number;
    out.line(&format!(
        "-----> Running tests (test run #{number}): {}",
        run.command
    ));
    let work = store
        .enqueue(&app.name, &store::WorkKind::Test { run: number })
        .await
        .map_err(|e| internal(out, "cannot queue the test run", e))?;
    let last_line = Mutex::new(tokio::time::Instant::now());
    let heard = |line: &str| {
        *last_line.lock().expect("never poisoned") = tokio::time::Instant::now();
        out.line(line);
    };
    let heartbeat = async {
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(TEST_HEARTBEAT).await;
            let quiet = last_line.lock().expect("never poisoned").elapsed();
            if quiet >= TEST_HEARTBEAT {
                out.line(&format!(
                    "-----> Tests still running ({}m)",
                    started.elapsed().as_secs() / 60
                ));
            }
        }
    };
    let followed = tokio::select! {
        followed = follow(store, work, "test run", out, heard) => followed,
        () = heartbeat => unreachable!("the heartbeat never ends"),
        () = push.cancel.cancelled() => {
            // The work is never retried; the run is recorded as cut off now, and the
            // release manager's late end of it changes nothing.
            let _ = store
                .finish_test_run(app, number, store::TestStatus::Errored, None, "cut off: the push was cancelled")
                .await;
            return Err("the push was cancelled: the connection closed".to_owned());
        }
    };
    if let Err(reason) = &followed {
        // A run that never started (no release manager could run it) ends here.
        let _ = store
            .finish_test_run(app, number, store::TestStatus::Errored, None, reason)
            .await;
    }
    let run = store
        .test_run(app, number)
        .await
        .map_err(|e| internal(out, "cannot read the test run", e))?;
    match (run.status, run.exit_status) {
        (store::TestStatus::Succeeded, _) => {
            out.line(&format!("-----> Tests passed (test run #{number})"));
            Ok(())
        }
        (store::TestStatus::Failed, Some(code)) => Err(format!(
            "tests failed (exit {code}): see `slip ci:info {number}`; nothing was released"
        )),
        _ => Err(format!(
            "tests could not run{}: see `slip ci:info {number}`; nothing was released",
            followed
                .err()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
    }
}

/// A push's build directory: removed, however the push ends, on a blocking thread the
/// gateway waits for at shutdown (a build's tree can be large).
struct BuildDir {
    dir: Option<tempfile::TempDir>,
    tasks: tokio_util::task::TaskTracker,
}

impl BuildDir {
    fn path(&self) -> &std::path::Path {
        self.dir.as_ref().expect("present until dropped").path()
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            self.tasks.spawn_blocking(move || drop(dir));
        }
    }
}

/// How long a push waits for a release manager to take its deploy before saying so.
const UNCLAIMED_NOTICE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for a queued deploy, whichever release manager does it, passing its progress lines
/// to the pusher.
async fn await_deploy(
    store: &store::Store,
    work: store::WorkId,
    out: &Output,
) -> Result<(), String> {
    follow(store, work, "deploy", out, |line| out.line(line)).await
}

/// Waits for queued work, whichever release manager does it, handing its output lines to
/// `on_line`; tells the pusher if none takes it for a while.
async fn follow(
    store: &store::Store,
    work: store::WorkId,
    what: &str,
    out: &Output,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<(), String> {
    let notice = tokio::time::Instant::now() + UNCLAIMED_NOTICE;
    let outcome = match store.await_work(work, Some(notice), &mut on_line).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => {
            if store
                .work(work)
                .await
                .is_ok_and(|w| w.status == store::WorkStatus::Queued)
            {
                out.line(&format!("-----> Waiting for a release manager to take the {what}: is `slipwayd releaser` (or `up`) running?"));
            }
            store
                .await_work(work, None, &mut on_line)
                .await
                .map_err(|e| internal(out, &format!("cannot follow the {what}"), e))?
                .expect("no deadline")
        }
        Err(err) => return Err(internal(out, &format!("cannot follow the {what}"), err)),
    };
    match outcome {
        store::WorkOutcome::Succeeded { .. } => Ok(()),
        store::WorkOutcome::Failed { reason, .. } => Err(reason),
    }
}

/// Queues the end of a push whose release was deployed — its ref moved, or not — and waits
/// until it is recorded, so the pusher's `git push` returns with the release's final status.
pub(crate) async fn settle(
    store: &store::Store,
    app: &domain::AppName,
    version: domain::ReleaseVersion,
    ref_moved: bool,
) {
    let kind = store::WorkKind::Settle { version, ref_moved };
    let settled = match store.enqueue(app, &kind).await {
        Ok(work) => store.await_work(work, None, |_| {}).await.map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = settled {
        tracing::error!(%app, %version, error = %err, "cannot record how a push ended");
    }
}

/// Logs an internal failure in full and gives the pusher a short reason.
fn internal(out: &Output, what: &str, err: impl std::fmt::Display) -> String {
    tracing::error!(error = %err, "{what}");
    out.line(&format!("       {what}; the server log has the details"));
    format!("{what}: the push was not released")
}
