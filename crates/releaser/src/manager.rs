//! The release manager: one deploy at a time per app — release phase, then the runtime's
//! rollout — with the outcome recorded on the release (`deploying`, then `succeeded` or
//! `failed` with its reason).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AppName, ConfigVars, Formation, ImageRef, ProcessType, Procfile, ReleaseStatus, ReleaseVersion,
};
use store::{App, Release, Store};
use tokio_util::task::TaskTracker;

use crate::{
    CertificatePem, DeployError, Deployer, Leftovers, Lines, Logs, ProcessInfo, Progress,
    ReleaseSpec, RoutedHost, Routing, Runtime,
};

/// Releases looked at when finding what an app should run after a restart.
const HISTORY: u32 = 100;
/// Apps brought back at once when a release manager starts.
const RECOVER_AT_ONCE: usize = 32;

/// Why a push's release failed after its deploy: the ref never moved.
pub use domain::PUSH_CUT_OFF as CUT_OFF;

/// Deploys releases through a [`Runtime`]. Cheap to clone.
#[derive(Clone)]
pub struct ReleaseManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReleaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseManager")
            .field("domain", &self.inner.domain)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    runtime: Arc<dyn Runtime>,
    logs: Logs,
    /// The platform domain: app `demo` answers at `demo.<domain>`.
    domain: String,
    /// One deploy, scale or restart per app at a time.
    locks: Mutex<HashMap<AppName, Arc<tokio::sync::Mutex<()>>>>,
    /// Numbers one-off processes per app: `run.1`, `run.2`, …
    runs: Mutex<HashMap<AppName, u32>>,
    /// Host updates take turns.
    hosts: tokio::sync::Mutex<()>,
    /// What an app keeps on disk under its name, removed when it is destroyed.
    leftovers: Leftovers,
    /// Work running in tasks of its own (deploys a caller stopped waiting for, and the
    /// like): waited for by [`ReleaseManager::drain`].
    tasks: TaskTracker,
}

impl ReleaseManager {
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        logs: Logs,
        domain: String,
        leftovers: Leftovers,
    ) -> Self {
        ReleaseManager {
            inner: Arc::new(Inner {
                store,
                runtime,
                logs,
                domain,
                leftovers,
                locks: Mutex::default(),
                runs: Mutex::default(),
                hosts: tokio::sync::Mutex::default(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Waits, up to `deadline`, for the work it runs in tasks of its own to end; none is
    /// cut in the middle. Work handed to it afterwards still runs. `false`: some was still
    /// running at the deadline.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let tasks = &self.inner.tasks;
        tasks.close();
        let drained = tokio::time::timeout(deadline, tasks.wait()).await.is_ok();
        tasks.reopen();
        if !drained {
            tracing::warn!(
                tasks = tasks.len(),
                "release manager work still running after {deadline:?}; stopping anyway"
            );
        }
        drained
    }

    /// Finishes what destroys left undone: removes the directories and logs of apps no
    /// longer in the store, and empties the trash. Run at start, before pushes and requests
    /// are served.
    pub async fn sweep(&self) -> Result<(), store::Error> {
        let apps: std::collections::HashSet<String> = self
            .inner
            .store
            .all_apps()
            .await?
            .into_iter()
            .map(|a| a.name.to_string())
            .collect();
        for logged in self.inner.logs.apps() {
            if !apps.contains(&logged) {
                self.inner.logs.remove(&logged).await;
            }
        }
        self.inner.logs.flush().await;
        let leftovers = self.inner.leftovers.clone();
        let swept = tokio::task::spawn_blocking(move || leftovers.sweep(&apps)).await;
        match swept {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "cannot remove what destroyed apps left"),
            Err(err) => tracing::error!(error = %err, "removing what destroyed apps left failed"),
        }
        Ok(())
    }

    /// Brings every app back on its current release (the newest that succeeded), then
    /// finishes what a stop interrupted: the newest release, if it was still waiting to be
    /// deployed, is deployed now; older ones that waited are marked failed.
    pub async fn recover(&self) -> Result<(), store::Error> {
        let apps = self.inner.store.all_apps().await?;
        let mut tasks = tokio::task::JoinSet::new();
        // A few at a time: a thousand apps are a thousand rounds of requests to a cluster.
        let turns = Arc::new(tokio::sync::Semaphore::new(RECOVER_AT_ONCE));
        for app in apps {
            let manager = self.clone();
            let turns = Arc::clone(&turns);
            tasks.spawn(async move {
                let _turn = turns.acquire().await;
                if let Err(err) = manager.recover_app(&app).await {
                    tracing::error!(app = %app.name, error = %err, "cannot bring the app back");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn recover_app(&self, app: &App) -> Result<(), DeployError> {
        let _turn = self.lock(&app.name).await;
        let routing = self
            .routing(app)
            .await
            .map_err(|e| store_error("read the app's routing", &e))?;
        self.inner.runtime.set_routing(&app.name, &routing).await?;
        let releases = self
            .inner
            .store
            .releases(app, HISTORY)
            .await
            .map_err(|e| store_error("read the releases", &e))?;
        let current = releases
            .iter()
            .find(|r| r.status == ReleaseStatus::Succeeded && r.build.is_some());
        if let Some(release) = current {
            let spec = self
                .spec(app, release)
                .await
                .map_err(|e| store_error("read the release's build", &e))?;
            let formation = self
                .formation(app, &spec)
                .await
                .map_err(|e| store_error("read the formation", &e))?;
            let quiet = |_: &str| {};
            match self
                .inner
                .runtime
                .deploy(&spec, &formation, None, &quiet)
                .await
            {
                Ok(()) => self.log(app, &format!("{} started again", release.version)),
                Err(reason) => {
                    self.log(
                        app,
                        &format!("{} did not start again: {reason}", release.version),
                    );
                }
            }
        }
        let waiting: Vec<&Release> = releases
            .iter()
            .filter(|r| matches!(r.status, ReleaseStatus::Pending | ReleaseStatus::Deploying))
            .collect();
        for release in waiting {
            if release.version == releases[0].version {
                // Deployed by the queue: the piece of work that was doing it, when its lease
                // lapses, or a new one when none was queued.
                if self
                    .inner
                    .store
                    .unfinished_work(&app.name)
                    .await
                    .map_err(|e| store_error("read the app's work", &e))?
                    .is_empty()
                {
                    // A release of a pushed commit is deployed as a push's: it serves, but
                    // has succeeded only once a gateway has seen the commit in the
                    // repository. A promoted build's commit is another app's: it never will.
                    let awaits_ref = match release.build {
                        Some(build) => self
                            .inner
                            .store
                            .build(app, build)
                            .await
                            .map_err(|e| store_error("read the release's build", &e))?
                            .is_push(),
                        None => false,
                    };
                    let kind = store::WorkKind::Deploy {
                        version: release.version,
                        awaits_ref,
                    };
                    self.inner
                        .store
                        .enqueue(&app.name, &kind)
                        .await
                        .map_err(|e| store_error("queue the deploy", &e))?;
                }
            } else {
                self.inner
                    .store
                    .set_release_status(
                        app,
                        release.version,
                        ReleaseStatus::Failed,
                        Some("interrupted: slipwayd stopped before it was deployed, and a newer release replaced it"),
                    )
                    .await
                    .map_err(|e| store_error("record the interrupted release", &e))?;
            }
        }
        Ok(())
    }

    /// The app was destroyed: its directories go to the trash at once; then its processes
    /// stop, its log is dropped and the trash emptied, all before this returns.
    pub async fn destroy(&self, name: &AppName) {
        let leftovers = self.inner.leftovers.clone();
        let app = name.as_str().to_owned();
        let trashed = tokio::task::spawn_blocking(move || leftovers.trash(&app)).await;
        if !matches!(trashed, Ok(Ok(()))) {
            tracing::error!(app = %name, "cannot move the destroyed app's directories to the trash");
        }
        let _turn = self.lock(name).await;
        if let Err(err) = self.inner.runtime.stop(name).await {
            tracing::error!(app = %name, error = %err, "cannot stop the destroyed app");
        }
        self.inner.logs.remove(name.as_str()).await;
        let leftovers = self.inner.leftovers.clone();
        let _ = tokio::task::spawn_blocking(move || leftovers.empty_trash()).await;
    }

    async fn lock(&self, app: &AppName) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = Arc::clone(
            self.inner
                .locks
                .lock()
                .expect("never poisoned")
                .entry(app.clone())
                .or_default(),
        );
        lock.lock_owned().await
    }

    fn log(&self, app: &App, text: &str) {
        self.inner.logs.push(app.name.as_str(), "slipway", text);
    }

    /// The app's routing as the store has it: its own host and its verified custom domains
    /// (a pending one has not been proved to be the app owner's).
    /// The app's hosts, each with the certificate to serve (one uploaded and attached to it,
    /// else a current one from the ACME server, else the platform's), and its switches.
    async fn routing(&self, app: &App) -> Result<Routing, store::Error> {
        let store = &self.inner.store;
        let own = format!("{}.{}", app.name, self.inner.domain);
        let mut names = vec![own.clone()];
        names.extend(
            store
                .domains(app)
                .await?
                .into_iter()
                .filter(|d| d.is_verified() && d.domain != own)
                .map(|d| d.domain),
        );
        let served = store
            .served_certificates(app, &names, time::OffsetDateTime::now_utc())
            .await?;
        let hosts = names
            .into_iter()
            .zip(served)
            .map(|(name, served)| RoutedHost {
                name,
                certificate: served.map(|served| {
                    let pem = served.pem();
                    Arc::new(CertificatePem {
                        chain: pem.chain_pem.clone(),
                        key: pem.key_pem.clone(),
                    })
                }),
            })
            .collect();
        Ok(Routing {
            hosts,
            settings: store.routing_settings(app).await?,
        })
    }

    async fn spec(&self, app: &App, release: &Release) -> Result<ReleaseSpec, store::Error> {
        let build_id = release.build.ok_or_else(|| {
            store::Error::NotFound(format!("a build for release {}", release.version))
        })?;
        let build = self.inner.store.build(app, build_id).await?;
        let image = build.image.ok_or_else(|| {
            store::Error::NotFound(format!("an image for release {}", release.version))
        })?;
        // What the store holds was checked on the way in; checked again, it cannot surprise
        // a runtime.
        Ok(ReleaseSpec {
            app: app.name.clone(),
            uid_slot: app.uid_slot,
            version: release.version,
            image: ImageRef::parse(&image)?,
            processes: Procfile::from_entries(
                build.procfile.iter().map(|(t, c)| (t.as_str(), c.as_str())),
            )?,
            config: ConfigVars::from_map(release.config.clone())?,
            settings: self.inner.store.process_settings(app).await?,
        })
    }

    /// The counts to run: the formation's, for the types the release's build declares.
    async fn formation(&self, app: &App, spec: &ReleaseSpec) -> Result<Formation, store::Error> {
        let counts = self.inner.store.formation(app).await?;
        Ok(Formation::from_counts(
            spec.processes
                .process_types()
                .filter(|t| !t.is_one_off())
                .filter_map(|t| {
                    let count = counts.iter().find(|p| p.process_type == t.as_str())?;
                    Some((t.clone(), count.count))
                }),
        ))
    }

    async fn app(&self, name: &AppName) -> Result<App, DeployError> {
        self.inner
            .store
            .app(name.as_str())
            .await
            .map_err(|e| store_error("read the app", &e))
    }

    /// One deploy, start to end, under the app's lock. A deploy that `awaits_ref` (a push's)
    /// leaves a release that serves `deploying`, for [`Deployer::push_settled`] to finish.
    async fn deploy_locked(
        &self,
        name: &AppName,
        version: ReleaseVersion,
        progress: &Progress,
        awaits_ref: bool,
    ) -> Result<(), DeployError> {
        let say = |line: &str| progress.send(line);
        let _turn = self.lock(name).await;
        let app = self.app(name).await?;
        let store = &self.inner.store;
        let release = store
            .release(&app, version)
            .await
            .map_err(|e| store_error("read the release", &e))?;
        // `deploying` seen here, under the lock, is a deploy a stop cut short: do it again.
        if !matches!(
            release.status,
            ReleaseStatus::Pending | ReleaseStatus::Deploying
        ) {
            // Deployed already (a second call for the same release): report how it went.
            return match release.status {
                ReleaseStatus::Failed => Err(DeployError::Failed(
                    release.reason.unwrap_or_else(|| "failed".to_owned()),
                )),
                _ => Ok(()),
            };
        }
        let running = match self.inner.runtime.current(name).await {
            Ok(running) => running,
            Err(err) => {
                let reason = format!("cannot tell which release runs: {err}");
                self.finish(&app, version, Err(&reason)).await?;
                return Err(DeployError::Failed(reason));
            }
        };
        if let Some(running) = running
            && running > version
        {
            let reason = format!("superseded: {running} was deployed first");
            self.finish(&app, version, Err(&reason)).await?;
            return Err(DeployError::Failed(reason));
        }
        let spec = match self.spec(&app, &release).await {
            Ok(spec) => spec,
            Err(err) => {
                let reason = format!("cannot deploy: {err}");
                self.finish(&app, version, Err(&reason)).await?;
                return Err(DeployError::Failed(reason));
            }
        };
        store
            .set_release_status(&app, version, ReleaseStatus::Deploying, None)
            .await
            .map_err(|e| store_error("record the deploy", &e))?;
        self.log(
            &app,
            &format!("Deploying {} ({})", version, release.summary),
        );
        let routing = self
            .routing(&app)
            .await
            .map_err(|e| store_error("read the app's routing", &e))?;

        // What serves now, for a runtime that must put it back if this one fails.
        let previous = match running {
            Some(running) => match store.release(&app, running).await {
                Ok(release) => self.spec(&app, &release).await.ok(),
                Err(_) => None,
            },
            None => None,
        };

        let outcome = self
            .roll_out(&app, &spec, previous.as_ref(), routing, &say)
            .await;
        match &outcome {
            Ok(()) if awaits_ref => {}
            Ok(()) => {
                self.log(&app, &format!("{version} deployed"));
                self.finish(&app, version, Ok(())).await?;
            }
            Err(reason) => {
                self.log(&app, &format!("{version} failed: {reason}"));
                self.finish(&app, version, Err(reason)).await?;
            }
        }
        outcome.map_err(DeployError::Failed)
    }

    /// The routing, the release phase, then the runtime's rollout. `Err` is the reason the
    /// release failed.
    async fn roll_out(
        &self,
        app: &App,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseSpec>,
        routing: Routing,
        say: Lines<'_>,
    ) -> Result<(), String> {
        self.inner
            .runtime
            .set_routing(&app.name, &routing)
            .await
            .map_err(|e| format!("cannot route the app's host names: {e}"))?;
        if let Some(command) = spec.processes.command(ProcessType::RELEASE) {
            say(&format!("-----> Running the release command: {command}"));
            let logs = &self.inner.logs;
            let app_name = app.name.as_str();
            let output = |line: &str| {
                logs.push(app_name, "release", line);
                say(&format!("       {line}"));
            };
            // Recorded before the command may change any data, so that a rollback across
            // this release asks for confirmation even if the command fails half-way; a
            // command that cannot be recorded is not run.
            self.inner
                .store
                .release_phase_started(app, spec.version)
                .await
                .map_err(|e| {
                    format!("cannot record that the release command starts, so it did not run: {e}")
                })?;
            let status = self
                .inner
                .runtime
                .run_once(spec, command, "release", &output)
                .await
                .map_err(|e| format!("the release command could not run: {e}"))?;
            if status != 0 {
                return Err(format!(
                    "the release command exited with status {status}; nothing was deployed"
                ));
            }
            // Only for the dashboard's timings: a failure to record it fails nothing.
            if let Err(err) = self.inner.store.release_phase_done(app, spec.version).await {
                tracing::warn!(app = %app.name, error = %err, "cannot record the release phase's end");
            }
        }
        let formation = self
            .formation(app, spec)
            .await
            .map_err(|e| format!("cannot read the formation: {e}"))?;
        self.inner
            .runtime
            .deploy(spec, &formation, previous, say)
            .await
            .map_err(|e| e.to_string())
    }

    async fn finish(
        &self,
        app: &App,
        version: ReleaseVersion,
        outcome: Result<(), &str>,
    ) -> Result<(), DeployError> {
        let (status, reason) = match outcome {
            Ok(()) => (ReleaseStatus::Succeeded, None),
            Err(reason) => (ReleaseStatus::Failed, Some(reason)),
        };
        self.inner
            .store
            .set_release_status(app, version, status, reason)
            .await
            .map_err(|e| store_error("record how the deploy went", &e))
    }

    /// The release the app runs now, for one-off processes.
    async fn current_spec(&self, app: &App) -> Result<ReleaseSpec, DeployError> {
        let releases = self
            .inner
            .store
            .releases(app, HISTORY)
            .await
            .map_err(|e| store_error("read the releases", &e))?;
        let running = self.inner.runtime.current(&app.name).await?;
        let release = releases
            .iter()
            .find(|r| Some(r.version) == running)
            .or_else(|| {
                releases
                    .iter()
                    .find(|r| r.status == ReleaseStatus::Succeeded && r.build.is_some())
            })
            .ok_or_else(|| {
                DeployError::Unavailable(format!(
                    "{} has no deployed release yet: push code with `git push slipway main`",
                    app.name
                ))
            })?;
        self.spec(app, release)
            .await
            .map_err(|e| store_error("read the release's build", &e))
    }
    /// Records how a push's deploy ended once the push has: succeeded if its ref moved;
    /// else failed, with the release that served before it deployed again.
    async fn settle_locked(
        &self,
        name: &AppName,
        version: ReleaseVersion,
        ref_moved: bool,
    ) -> Result<(), DeployError> {
        let _turn = self.lock(name).await;
        let app = self.app(name).await?;
        let release = self
            .inner
            .store
            .release(&app, version)
            .await
            .map_err(|e| store_error("read the release", &e))?;
        if release.status == ReleaseStatus::Pending && !ref_moved {
            // Cut off before it was deployed: it never will be.
            self.log(&app, &format!("{version} failed: {CUT_OFF}"));
            return self.finish(&app, version, Err(CUT_OFF)).await;
        }
        if release.status != ReleaseStatus::Deploying {
            // Failed already (its deploy did), or superseded meanwhile.
            return Ok(());
        }
        if ref_moved {
            if self.inner.runtime.current(name).await? != Some(version) {
                // Its deploy was cut off (the release manager doing it stopped): do it now.
                drop(_turn);
                let (progress, _) = crate::LineSender::channel(1);
                return self.deploy_locked(name, version, &progress, false).await;
            }
            self.log(&app, &format!("{version} deployed"));
            return self.finish(&app, version, Ok(())).await;
        }
        self.log(&app, &format!("{version} failed: {CUT_OFF}"));
        self.finish(&app, version, Err(CUT_OFF)).await?;
        if self.inner.runtime.current(name).await? != Some(version) {
            return Ok(());
        }
        // It serves a commit the repository does not have: back to the release before it.
        let releases = self
            .inner
            .store
            .releases(&app, HISTORY)
            .await
            .map_err(|e| store_error("read the releases", &e))?;
        let previous = releases
            .iter()
            .find(|r| r.status == ReleaseStatus::Succeeded && r.build.is_some());
        match previous {
            Some(previous) => {
                let spec = self
                    .spec(&app, previous)
                    .await
                    .map_err(|e| store_error("read the release's build", &e))?;
                let formation = self
                    .formation(&app, &spec)
                    .await
                    .map_err(|e| store_error("read the formation", &e))?;
                let quiet = |_: &str| {};
                match self
                    .inner
                    .runtime
                    .deploy(&spec, &formation, None, &quiet)
                    .await
                {
                    Ok(()) => self.log(&app, &format!("{} serves again", previous.version)),
                    Err(reason) => self.log(
                        &app,
                        &format!("{} did not start again: {reason}", previous.version),
                    ),
                }
            }
            None => {
                // Nothing served before it: nothing serves now.
                self.inner.runtime.stop(name).await?;
                let routing = self
                    .routing(&app)
                    .await
                    .map_err(|e| store_error("read the app's routing", &e))?;
                self.inner.runtime.set_routing(name, &routing).await?;
            }
        }
        Ok(())
    }

    async fn scale_locked(&self, name: &AppName) -> Result<(), DeployError> {
        let _turn = self.lock(name).await;
        let app = self.app(name).await?;
        let Some(running) = self.inner.runtime.current(name).await? else {
            return Ok(());
        };
        let release = self
            .inner
            .store
            .release(&app, running)
            .await
            .map_err(|e| store_error("read the release", &e))?;
        let spec = self
            .spec(&app, &release)
            .await
            .map_err(|e| store_error("read the release's build", &e))?;
        let formation = self
            .formation(&app, &spec)
            .await
            .map_err(|e| store_error("read the formation", &e))?;
        Ok(self.inner.runtime.scale(&spec, &formation).await?)
    }

    async fn restart_locked(
        &self,
        name: &AppName,
        process_type: Option<&str>,
    ) -> Result<(), DeployError> {
        let _turn = self.lock(name).await;
        if self.inner.runtime.current(name).await?.is_none() {
            return Err(DeployError::Unavailable(format!(
                "{name} has no deployed release to restart: push code with `git push slipway main`"
            )));
        }
        let app = self.app(name).await?;
        self.log(
            &app,
            &format!("Restarting {}", process_type.unwrap_or("all processes")),
        );
        Ok(self.inner.runtime.restart(name, process_type).await?)
    }
}

impl ReleaseManager {
    /// Runs `work` in its own tracked task and waits for it: a caller that goes away (a
    /// request cut off by its timeout) does not leave the work half done.
    async fn detached<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, DeployError>> + Send + 'static,
    ) -> Result<T, DeployError> {
        self.inner
            .tasks
            .spawn(work)
            .await
            .map_err(|e| DeployError::Failed(format!("stopped unexpectedly: {e}")))?
    }
}

/// What a test run runs in: the tested build's image and process types, the test
/// environment as its config (never the app's), no process settings, and the run's number
/// where a release's version would be.
fn test_spec(app: &App, test: &store::TestRun) -> Result<ReleaseSpec, domain::Error> {
    let number = u32::try_from(test.number)
        .ok()
        .and_then(ReleaseVersion::new)
        .ok_or_else(|| domain::Error::ReleaseVersion(test.number.to_string()))?;
    Ok(ReleaseSpec {
        app: app.name.clone(),
        uid_slot: app.uid_slot,
        version: number,
        image: ImageRef::parse(&test.image)?,
        processes: Procfile::from_entries(
            test.procfile.iter().map(|(t, c)| (t.as_str(), c.as_str())),
        )?,
        config: ConfigVars::from_map(test.env.clone())?,
        settings: Default::default(),
    })
}

fn store_error(doing: &str, err: &store::Error) -> DeployError {
    match err {
        store::Error::NotFound(what) => DeployError::Invalid(format!("{what} not found")),
        other => {
            tracing::error!(error = %other, "release manager cannot {doing}");
            DeployError::Failed(format!("cannot {doing}: {other}"))
        }
    }
}

#[async_trait]
impl Deployer for ReleaseManager {
    fn deploy(&self, app: &AppName, version: ReleaseVersion) {
        let manager = self.clone();
        let app = app.clone();
        self.inner.tasks.spawn(async move {
            let (progress, _) = crate::LineSender::channel(1);
            if let Err(err) = manager.deploy_locked(&app, version, &progress, false).await {
                tracing::warn!(%app, %version, error = %err, "deploy failed");
            }
        });
    }

    async fn deploy_and_wait(
        &self,
        app: &AppName,
        version: ReleaseVersion,
        progress: Progress,
    ) -> Result<(), DeployError> {
        // A pusher who goes away (a closed connection) does not cut the deploy in half.
        let manager = self.clone();
        let app = app.clone();
        self.detached(async move { manager.deploy_locked(&app, version, &progress, false).await })
            .await
    }

    async fn deploy_push(
        &self,
        app: &AppName,
        version: ReleaseVersion,
        progress: Progress,
    ) -> Result<(), DeployError> {
        let manager = self.clone();
        let app = app.clone();
        self.detached(async move { manager.deploy_locked(&app, version, &progress, true).await })
            .await
    }

    async fn push_settled(&self, name: &AppName, version: ReleaseVersion, ref_moved: bool) {
        let manager = self.clone();
        let name = name.clone();
        let settled =
            self.detached(async move { manager.settle_locked(&name, version, ref_moved).await });
        if let Err(err) = settled.await {
            tracing::error!(%version, error = %err, "cannot record how a push ended");
        }
    }

    async fn scale(&self, name: &AppName) -> Result<(), DeployError> {
        let manager = self.clone();
        let name = name.clone();
        self.detached(async move { manager.scale_locked(&name).await })
            .await
    }

    async fn restart(&self, name: &AppName, process_type: Option<&str>) -> Result<(), DeployError> {
        let manager = self.clone();
        let name = name.clone();
        let process_type = process_type.map(str::to_owned);
        self.detached(async move { manager.restart_locked(&name, process_type.as_deref()).await })
            .await
    }

    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, DeployError> {
        Ok(self.inner.runtime.processes(app).await?)
    }

    async fn run(
        &self,
        name: &AppName,
        command: &str,
        output: crate::LineSender,
    ) -> Result<i32, DeployError> {
        let app = self.app(name).await?;
        let spec = self.current_spec(&app).await?;
        let number = {
            let mut runs = self.inner.runs.lock().expect("never poisoned");
            let n = runs.entry(name.clone()).or_default();
            *n += 1;
            *n
        };
        let source = format!("run.{number}");
        self.log(&app, &format!("Starting {source}: {command}"));
        // A caller that went away, or fell behind, loses lines; the process runs to its end.
        let sink = |line: &str| output.send(line);
        let status = self
            .inner
            .runtime
            .run_once(&spec, command, &source, &sink)
            .await?;
        self.log(&app, &format!("{source} exited with status {status}"));
        Ok(status)
    }

    async fn test(
        &self,
        name: &AppName,
        run: u64,
        output: crate::LineSender,
    ) -> Result<i32, DeployError> {
        let app = self.app(name).await?;
        let test = self
            .inner
            .store
            .test_run(&app, run)
            .await
            .map_err(|e| store_error("read the test run", &e))?;
        if test.status != store::TestStatus::Running {
            return Err(DeployError::Invalid(format!(
                "test run {run} of {name} has ended already"
            )));
        }
        let source = format!("test.{run}");
        // Kept for the test run as well as sent to the caller, up to the store's bound.
        let kept = Mutex::new(String::new());
        let sink = |line: &str| {
            let mut kept = kept.lock().expect("never poisoned");
            if kept.len() <= store::MAX_TEST_OUTPUT {
                kept.push_str(line);
                kept.push('\n');
            }
            output.send(line);
        };
        let ran = match test_spec(&app, &test) {
            Ok(spec) => {
                self.log(&app, &format!("Starting {source}: {}", test.command));
                self.inner
                    .runtime
                    .run_test(&spec, &test.command, &source, &sink)
                    .await
                    .map_err(DeployError::from)
            }
            Err(err) => Err(DeployError::Invalid(err.to_string())),
        };
        let (status, exit_status) = match &ran {
            Ok(0) => (store::TestStatus::Succeeded, Some(0)),
            Ok(code) => (store::TestStatus::Failed, Some(*code)),
            Err(err) => {
                sink(&err.to_string());
                (store::TestStatus::Errored, None)
            }
        };
        if let Ok(code) = ran {
            self.log(&app, &format!("{source} exited with status {code}"));
        }
        let kept = kept.into_inner().expect("never poisoned");
        self.inner
            .store
            .finish_test_run(&app, run, status, exit_status, &kept)
            .await
            .map_err(|e| store_error("record how the test run ended", &e))?;
        ran
    }

    async fn hosts_changed(&self, name: &AppName) {
        // One update at a time, each reading the store afresh, so the last one wins with
        // the newest hosts. Not the app's lock: a deploy in progress need not finish first.
        let _turn = self.inner.hosts.lock().await;
        let routing = match self.inner.store.app(name.as_str()).await {
            Ok(app) => self.routing(&app).await,
            Err(err) => Err(err),
        };
        let routing = match routing {
            Ok(routing) => routing,
            Err(err) => {
                tracing::error!(app = %name, error = %err, "cannot read the app's routing");
                return;
            }
        };
        if let Err(err) = self.inner.runtime.set_routing(name, &routing).await {
            tracing::error!(app = %name, error = %err, "cannot route the app's host names");
        }
    }
}
