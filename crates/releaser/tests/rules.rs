//! The release manager's own rules, over a real store (SQLite) and the fake runtime: which
//! release gets deployed, how each outcome is recorded, and what a restart brings back. No
//! process runs, so each test takes milliseconds.

use std::sync::Arc;
use std::time::Duration;

use slipway_releaser as releaser;

use domain::{AppName, ConfigChange, ProcessType, ReleaseStatus, ReleaseVersion, Username};
use expect_test::{Expect, expect};
use releaser::fake::{Call, FakeRuntime};
use releaser::{CUT_OFF, DeployError, Deployer, LineSender, ReleaseManager, RuntimeError};
use store::{App, BuildSource, BuildStatus, ConfigOutcome, NewUser, Store, User};
use test_support::{Backend, TestDatabase};

/// An app `demo` in a fresh store, released by a release manager over a fake runtime.
struct Rig {
    store: Store,
    runtime: Arc<FakeRuntime>,
    manager: ReleaseManager,
    app: App,
    user: User,
    builds: u32,
    _db: TestDatabase,
}

impl Rig {
    async fn new() -> Rig {
        let db = TestDatabase::new(Backend::Sqlite)
            .await
            .expect("sqlite is always there");
        let store = Store::open(&db.url).await.expect("open the store");
        let user = store
            .create_user(&Username::parse("alice").unwrap(), "x", NewUser::Any)
            .await
            .unwrap()
            .expect("the first user");
        let app = store
            .create_app(&AppName::parse("demo").unwrap(), &user)
            .await
            .unwrap();
        let runtime = Arc::new(FakeRuntime::new());
        let manager = manager(&store, &runtime);
        Rig {
            store,
            runtime,
            manager,
            app,
            user,
            builds: 0,
            _db: db,
        }
    }

    /// slipwayd stopped and started again: a new release manager over a runtime that runs
    /// nothing yet, on the same store.
    fn restarted(&mut self) {
        self.runtime = Arc::new(FakeRuntime::new());
        self.manager = manager(&self.store, &self.runtime);
    }

    /// A push: a build with `procfile` and an image of its own, and its (pending) release.
    async fn push(&mut self, procfile: &[(&str, &str)]) -> ReleaseVersion {
        self.builds += 1;
        let commit = format!("{:040x}", self.builds);
        let build = self
            .store
            .create_build(&self.app, &BuildSource::Commit(commit), &self.user)
            .await
            .unwrap();
        let procfile = procfile
            .iter()
            .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
            .collect();
        let image = image(self.builds);
        self.store
            .finish_build(
                &self.app,
                build.id,
                BuildStatus::Succeeded,
                &procfile,
                Some(&image),
            )
            .await
            .unwrap();
        let release = self
            .store
            .release_build(&self.app, build.id, &self.user)
            .await
            .unwrap();
        release.version
    }

    /// A config change: a release with the previous one's build.
    async fn config(&self, key: &str, value: &str) -> ReleaseVersion {
        let change = ConfigChange::set([(key, value)]).unwrap();
        match self
            .store
            .change_config(&self.app, &change, &self.user)
            .await
            .unwrap()
        {
            ConfigOutcome::Released(release) => release.version,
            ConfigOutcome::Unchanged(_) => panic!("the config did not change"),
        }
    }

    async fn deploy(&self, version: ReleaseVersion) -> Result<(), DeployError> {
        let (progress, _lines) = LineSender::channel(100);
        self.manager
            .deploy_and_wait(&self.app.name, version, progress)
            .await
    }

    async fn deploy_push(&self, version: ReleaseVersion) -> Result<(), DeployError> {
        let (progress, _lines) = LineSender::channel(100);
        self.manager
            .deploy_push(&self.app.name, version, progress)
            .await
    }

    async fn status(&self, version: ReleaseVersion) -> ReleaseStatus {
        self.store.release(&self.app, version).await.unwrap().status
    }

    /// Does the queued work (what `recover` queued) as a release manager's worker would, and
    /// waits for `version`'s deploy to end.
    async fn settled(&self, version: ReleaseVersion) {
        let stop = tokio_util::sync::CancellationToken::new();
        let worker = releaser::Worker::new(
            self.manager.clone(),
            self.store.clone(),
            releaser::WorkerConfig {
                holder: "rules".to_owned(),
                lease: releaser::WorkerConfig::DEFAULT_LEASE,
                concurrency: 1,
            },
        );
        let working = tokio::spawn(worker.run(stop.clone()));
        let _stop = stop.drop_guard();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut settled = false;
        while matches!(
            self.status(version).await,
            ReleaseStatus::Pending | ReleaseStatus::Deploying
        ) {
            // A release of a commit redeployed by `recover` serves but waits for a gateway to
            // find its commit in the repository; the gateway's sweep does, here.
            let idle = self
                .store
                .unfinished_work(&self.app.name)
                .await
                .unwrap()
                .is_empty();
            if !settled && idle && self.status(version).await == ReleaseStatus::Deploying {
                let settle = store::WorkKind::Settle {
                    version,
                    ref_moved: true,
                };
                self.store.enqueue(&self.app.name, &settle).await.unwrap();
                settled = true;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{version} was never deployed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(_stop);
        working.await.unwrap();
    }

    /// The release history, oldest first: `v2 failed: why`.
    async fn check_history(&self, expected: Expect) {
        let releases = self.store.releases(&self.app, 100).await.unwrap();
        let lines: Vec<String> = releases
            .iter()
            .rev()
            .map(|r| match &r.reason {
                Some(reason) => format!("{} {}: {reason}", r.version, r.status),
                None => format!("{} {}", r.version, r.status),
            })
            .collect();
        expected.assert_eq(&lines.join("\n"));
    }

    fn check_deploys(&self, expected: Expect) {
        expected.assert_eq(&self.runtime.deploys().join("\n"));
    }

    fn v(&self, n: u32) -> ReleaseVersion {
        ReleaseVersion::new(n).unwrap()
    }
}

fn manager(store: &Store, runtime: &Arc<FakeRuntime>) -> ReleaseManager {
    ReleaseManager::new(
        store.clone(),
        Arc::clone(runtime) as Arc<dyn releaser::Runtime>,
        releaser::Logs::default(),
        "localhost".to_owned(),
        releaser::Leftovers::none(),
    )
}

/// A digest of the local image store, one per build.
fn image(n: u32) -> String {
    format!("sha256:{n:064x}")
}

const WEB: &[(&str, &str)] = &[("web", "serve")];

#[tokio::test]
async fn a_deploy_succeeds_and_is_recorded_once() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded"#]])
        .await;
    rig.check_deploys(expect!["demo v2 web=1"]);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v2));
    assert_eq!(
        rig.runtime.hosts(&rig.app.name),
        ["demo.localhost"],
        "the app answers at its own name"
    );
    let calls = rig.runtime.calls();
    let hosts_at = calls
        .iter()
        .position(|c| matches!(c, Call::SetHosts { .. }));
    let deploy_at = calls.iter().position(|c| matches!(c, Call::Deploy { .. }));
    assert!(hosts_at < deploy_at, "{calls:?}");

    // A second call for the same release deploys nothing and reports how it went.
    rig.deploy(v2).await.unwrap();
    rig.check_deploys(expect!["demo v2 web=1"]);

    let processes = rig.manager.processes(&rig.app.name).await.unwrap();
    let names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web.1"]);
}

#[tokio::test]
async fn a_failed_deploy_is_recorded_and_the_previous_release_keeps_running() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    let v3 = rig.push(WEB).await;
    rig.runtime.fail_next_deploy(RuntimeError::App(
        "web.1 exited with status 1 before it became healthy".to_owned(),
    ));
    let err = rig.deploy(v3).await.unwrap_err();
    assert_eq!(
        err,
        DeployError::Failed("web.1 exited with status 1 before it became healthy".to_owned())
    );
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded
        v3 failed: web.1 exited with status 1 before it became healthy"#]])
        .await;
    rig.check_deploys(expect![[r#"
        demo v2 web=1
        demo v3 web=1"#]]);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v2));

    // A failed release is not deployed again by a second call, which reports why it failed.
    let again = rig.deploy(v3).await.unwrap_err();
    assert_eq!(err, again);
    assert_eq!(rig.runtime.deploys().len(), 2);

    // One-off processes run with the release that serves, not the failed one.
    let (output, _lines) = LineSender::channel(10);
    rig.manager
        .run(&rig.app.name, "rake db:migrate", output)
        .await
        .unwrap();
    let ran = rig.runtime.calls().into_iter().find_map(|c| match c {
        Call::RunOnce {
            version, source, ..
        } => Some((version, source)),
        _ => None,
    });
    assert_eq!(ran, Some((v2, "run.1".to_owned())));
}

#[tokio::test]
async fn a_release_command_that_fails_fails_the_release_and_deploys_nothing() {
    let mut rig = Rig::new().await;
    let procfile = &[("web", "serve"), ("release", "migrate")];
    let v2 = rig.push(procfile).await;
    rig.runtime.exit_next_run(3);
    rig.deploy(v2).await.unwrap_err();
    let v3 = rig.push(procfile).await;
    rig.runtime
        .fail_next_run(RuntimeError::Runtime("cannot unpack the image".to_owned()));
    rig.deploy(v3).await.unwrap_err();
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 failed: the release command exited with status 3; nothing was deployed
        v3 failed: the release command could not run: cannot unpack the image"#]])
        .await;
    rig.check_deploys(expect![""]);
    let runs: Vec<(ReleaseVersion, String, String)> = rig
        .runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::RunOnce {
                version,
                command,
                source,
                ..
            } => Some((version, command, source)),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        [
            (v2, "migrate".to_owned(), "release".to_owned()),
            (v3, "migrate".to_owned(), "release".to_owned())
        ]
    );

    // With a release command that succeeds, the release phase runs, then the deploy.
    let v4 = rig.push(procfile).await;
    rig.deploy(v4).await.unwrap();
    rig.check_deploys(expect!["demo v4 web=1"]);
}

#[tokio::test]
async fn the_release_phase_is_recorded_as_started_before_its_command_runs() {
    let mut rig = Rig::new().await;
    let procfile = &[("web", "serve"), ("release", "migrate")];
    let v2 = rig.push(procfile).await;
    let mut held = rig.runtime.hold_next_run();
    let deploying = {
        let (manager, app) = (rig.manager.clone(), rig.app.name.clone());
        tokio::spawn(async move {
            let (progress, _lines) = LineSender::channel(100);
            manager.deploy_and_wait(&app, v2, progress).await
        })
    };
    // While the command runs, its start is on record and its end is not.
    held.started().await;
    let running = rig.store.release(&rig.app, v2).await.unwrap();
    assert!(running.release_phase_started_at.is_some(), "{running:?}");
    assert_eq!(running.release_phase_finished_at, None);
    held.finish(0);
    deploying.await.unwrap().unwrap();
    let done = rig.store.release(&rig.app, v2).await.unwrap();
    assert!(done.release_phase_started_at <= done.release_phase_finished_at);
    assert!(done.release_phase_finished_at.is_some());

    // A command that fails half-way has a start and no end: it counts as run.
    let v3 = rig.push(procfile).await;
    rig.runtime.exit_next_run(1);
    rig.deploy(v3).await.unwrap_err();
    let failed = rig.store.release(&rig.app, v3).await.unwrap();
    assert!(failed.release_phase_started_at.is_some());
    assert_eq!(failed.release_phase_finished_at, None);
    assert_eq!(failed.status, ReleaseStatus::Failed);

    // A release without a release command records no phase.
    let v4 = rig.push(WEB).await;
    rig.deploy(v4).await.unwrap();
    let plain = rig.store.release(&rig.app, v4).await.unwrap();
    assert_eq!(plain.release_phase_started_at, None);

    // So a rollback from v4 to v2 crosses v3, the failed one, and needs confirming.
    let err = rig
        .store
        .rollback(&rig.app, Some(v2), &rig.user, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, store::Error::Rollback(domain::RollbackRefused::NeedsConfirmation { crossed, .. }) if crossed == &[v3]),
        "{err}"
    );
}

#[tokio::test]
async fn an_older_release_deployed_after_a_newer_one_is_superseded() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    let v3 = rig.config("GREETING", "hi").await;
    rig.deploy(v3).await.unwrap();
    let err = rig.deploy(v2).await.unwrap_err();
    assert_eq!(
        err,
        DeployError::Failed("superseded: v3 was deployed first".to_owned())
    );
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 failed: superseded: v3 was deployed first
        v3 succeeded"#]])
        .await;
    rig.check_deploys(expect!["demo v3 web=1"]);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v3));
}

#[tokio::test]
async fn recover_brings_back_the_current_release_and_finishes_the_newest_waiting_one() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    rig.config("A", "1").await;
    let v4 = rig.config("A", "2").await;
    let v5 = rig.config("A", "3").await;
    // v4's deploy was cut short by the stop; v3 and v5 never started.
    rig.store
        .set_release_status(&rig.app, v4, ReleaseStatus::Deploying, None)
        .await
        .unwrap();

    rig.restarted();
    rig.manager.recover().await.unwrap();
    rig.settled(v5).await;
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded
        v3 failed: interrupted: slipwayd stopped before it was deployed, and a newer release replaced it
        v4 failed: interrupted: slipwayd stopped before it was deployed, and a newer release replaced it
        v5 succeeded"#]]).await;
    rig.check_deploys(expect![[r#"
        demo v2 web=1
        demo v5 web=1"#]]);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v5));
    assert_eq!(rig.runtime.hosts(&rig.app.name), ["demo.localhost"]);
}

#[tokio::test]
async fn recover_deploys_again_the_newest_release_whose_deploy_a_stop_cut_short() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    let v3 = rig.push(WEB).await;
    rig.store
        .set_release_status(&rig.app, v3, ReleaseStatus::Deploying, None)
        .await
        .unwrap();

    rig.restarted();
    rig.manager.recover().await.unwrap();
    rig.settled(v3).await;
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded
        v3 succeeded"#]])
        .await;
    rig.check_deploys(expect![[r#"
        demo v2 web=1
        demo v3 web=1"#]]);
}

#[tokio::test]
async fn recover_deploys_a_promoted_release_without_waiting_for_a_push() {
    // A release promoted from another app carries that app's commit, which this app's
    // repository never sees: cut short by a stop, it is deployed again as a release that
    // waits for no ref (a push's would wait for a gateway to find its commit, forever).
    let mut rig = Rig::new().await;
    let upstream = rig
        .store
        .create_app(&AppName::parse("demo-staging").unwrap(), &rig.user)
        .await
        .unwrap();
    let pipeline = rig
        .store
        .create_pipeline(&domain::PipelineName::parse("demo").unwrap(), &rig.user)
        .await
        .unwrap();
    for (app, stage) in [
        (&upstream, domain::Stage::Staging),
        (&rig.app, domain::Stage::Production),
    ] {
        rig.store
            .add_to_pipeline(&pipeline, app, stage, &rig.user)
            .await
            .unwrap();
    }
    let build = rig
        .store
        .create_build(&upstream, &BuildSource::Commit("e".repeat(40)), &rig.user)
        .await
        .unwrap();
    let procfile = [("web".to_owned(), "./serve".to_owned())].into();
    rig.store
        .finish_build(
            &upstream,
            build.id,
            BuildStatus::Succeeded,
            &procfile,
            Some(&image(9)),
        )
        .await
        .unwrap();
    let staged = rig
        .store
        .release_build(&upstream, build.id, &rig.user)
        .await
        .unwrap();
    rig.store
        .set_release_status(&upstream, staged.version, ReleaseStatus::Succeeded, None)
        .await
        .unwrap();
    let pipeline = rig.store.pipeline("demo").await.unwrap();
    let pinned = rig.store.promotable_build(&upstream).await.unwrap();
    let promoted = rig
        .store
        .promote(&pipeline, &rig.app, &pinned, &rig.user, false)
        .await
        .unwrap()
        .release
        .unwrap();
    rig.store
        .set_release_status(&rig.app, promoted, ReleaseStatus::Deploying, None)
        .await
        .unwrap();

    rig.restarted();
    rig.manager.recover().await.unwrap();
    let queued: Vec<store::WorkKind> = rig
        .store
        .unfinished_work(&rig.app.name)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.kind)
        .collect();
    assert_eq!(
        queued,
        [store::WorkKind::Deploy {
            version: promoted,
            awaits_ref: false
        }]
    );
    rig.settled(promoted).await;
    assert_eq!(rig.status(promoted).await, ReleaseStatus::Succeeded);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(promoted));
}

#[tokio::test]
async fn recover_with_a_failing_runtime_leaves_the_history_as_it_was() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();

    rig.restarted();
    rig.runtime
        .fail_next_deploy(RuntimeError::Transient("the runtime timed out".to_owned()));
    rig.manager.recover().await.unwrap();
    // Bringing a release back is no deploy of it: it stays succeeded, nothing is recorded.
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded"#]])
        .await;
    rig.check_deploys(expect!["demo v2 web=1"]);
    assert_eq!(rig.runtime.running(&rig.app.name), None);
}

#[tokio::test]
async fn a_push_cut_off_after_its_deploy_fails_and_the_previous_release_serves_again() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    let v3 = rig.push(WEB).await;
    rig.deploy_push(v3).await.unwrap();
    // It serves, but is not recorded as succeeded until the ref moves.
    assert_eq!(rig.status(v3).await, ReleaseStatus::Deploying);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v3));

    rig.manager.push_settled(&rig.app.name, v3, false).await;
    assert_eq!(
        rig.store.release(&rig.app, v3).await.unwrap().reason,
        Some(CUT_OFF.to_owned())
    );
    assert_eq!(rig.status(v3).await, ReleaseStatus::Failed);
    rig.check_deploys(expect![[r#"
        demo v2 web=1
        demo v3 web=1
        demo v2 web=1"#]]);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v2));

    // A push whose ref moved has succeeded.
    let v4 = rig.push(WEB).await;
    rig.deploy_push(v4).await.unwrap();
    rig.manager.push_settled(&rig.app.name, v4, true).await;
    assert_eq!(rig.status(v4).await, ReleaseStatus::Succeeded);
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v4));
}

#[tokio::test]
async fn a_first_push_cut_off_after_its_deploy_leaves_nothing_running() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy_push(v2).await.unwrap();
    rig.manager.push_settled(&rig.app.name, v2, false).await;
    assert_eq!(rig.status(v2).await, ReleaseStatus::Failed);
    assert_eq!(rig.runtime.running(&rig.app.name), None);
    let calls = rig.runtime.calls();
    assert!(
        matches!(
            calls.as_slice(),
            [.., Call::Stop { .. }, Call::SetHosts { .. }]
        ),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_rollback_deploys_the_target_build_and_a_refused_one_changes_nothing() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    rig.deploy(v2).await.unwrap();
    let v3 = rig.push(WEB).await;
    rig.runtime
        .fail_next_deploy(RuntimeError::App("web.1 crashed".to_owned()));
    rig.deploy(v3).await.unwrap_err();
    let v4 = rig.push(WEB).await;
    rig.deploy(v4).await.unwrap();

    // Refused: to a failed release, to the current one, to one that never was.
    for target in [v3, v4, rig.v(9)] {
        let err = rig
            .store
            .rollback(&rig.app, Some(target), &rig.user, false)
            .await
            .unwrap_err();
        assert!(matches!(err, store::Error::Rollback(_)), "{err}");
    }
    rig.check_history(expect![[r#"
        v1 succeeded
        v2 succeeded
        v3 failed: web.1 crashed
        v4 succeeded"#]])
        .await;
    let before = rig.runtime.calls().len();

    // Allowed: to the release before the current one, with its build (its image).
    let v5 = rig
        .store
        .rollback(&rig.app, None, &rig.user, false)
        .await
        .unwrap();
    rig.deploy(v5.version).await.unwrap();
    let deployed = rig.runtime.calls()[before..].iter().find_map(|c| match c {
        Call::Deploy { version, image, .. } => Some((*version, image.to_string())),
        _ => None,
    });
    assert_eq!(deployed, Some((v5.version, image(1))));
    assert_eq!(rig.runtime.running(&rig.app.name), Some(v5.version));
}

#[tokio::test]
async fn scale_and_restart_reach_the_runtime_for_the_current_release_only() {
    let mut rig = Rig::new().await;
    // Nothing deployed: nothing to restart, and scaling only records the formation.
    let err = rig.manager.restart(&rig.app.name, None).await.unwrap_err();
    assert!(matches!(err, DeployError::Unavailable(_)), "{err}");
    rig.manager.scale(&rig.app.name).await.unwrap();
    assert!(rig.runtime.calls().is_empty());

    let v2 = rig
        .push(&[("web", "serve"), ("worker", "work"), ("release", "migrate")])
        .await;
    rig.deploy(v2).await.unwrap();
    let changes = [
        (ProcessType::parse("web").unwrap(), 2),
        (ProcessType::parse("worker").unwrap(), 1),
    ];
    rig.store
        .scale(&rig.app, &changes, None, &rig.user)
        .await
        .unwrap();
    rig.manager.scale(&rig.app.name).await.unwrap();
    let scaled = rig.runtime.calls().into_iter().find_map(|c| match c {
        Call::Scale { formation, .. } => Some(formation),
        _ => None,
    });
    assert_eq!(scaled.as_deref(), Some("web=2 worker=1"));
    let processes = rig.manager.processes(&rig.app.name).await.unwrap();
    let names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web.1", "web.2", "worker.1"]);

    // A type the release lacks is the caller's mistake.
    let err = rig
        .manager
        .restart(&rig.app.name, Some("clock"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeployError::Invalid("no process of type clock in v2".to_owned())
    );
    rig.manager
        .restart(&rig.app.name, Some("web"))
        .await
        .unwrap();
}

#[tokio::test]
async fn drain_waits_for_a_deploy_started_in_the_background() {
    let mut rig = Rig::new().await;
    let v2 = rig.push(WEB).await;
    // Handed off: `deploy` returns at once, the deploy runs in a task of the manager's.
    rig.manager.deploy(&rig.app.name, v2);
    assert!(rig.manager.drain(Duration::from_secs(10)).await);
    assert_eq!(rig.status(v2).await, ReleaseStatus::Succeeded);
    rig.check_deploys(expect![[r#"demo v2 web=1"#]]);
    // Drained, it still takes work.
    let v3 = rig.config("A", "1").await;
    rig.manager.deploy(&rig.app.name, v3);
    assert!(rig.manager.drain(Duration::from_secs(10)).await);
    assert_eq!(rig.status(v3).await, ReleaseStatus::Succeeded);
}

#[tokio::test]
async fn routing_reaches_the_runtime_with_switches_and_each_hosts_certificate() {
    let rig = Rig::new().await;
    let store = &rig.store;
    for (domain, token) in [
        ("shop.example.com", None),
        ("other.example.com", None),
        ("pending.example.com", Some("token")),
    ] {
        let domain = domain::Hostname::parse(domain).unwrap();
        store
            .add_domain(&rig.app, &domain, token, &rig.user)
            .await
            .unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    let uploaded = store::NewCertificate {
        name: "shop".to_owned(),
        chain_pem: "CHAIN shop".to_owned(),
        key_pem: "KEY shop".to_owned(),
        names: vec!["shop.example.com".to_owned()],
        not_before: now,
        not_after: now + time::Duration::days(30),
        fingerprint: "00".to_owned(),
        issuer: "CN=shop".to_owned(),
        subject: "CN=shop".to_owned(),
    };
    store
        .add_certificate(&rig.app, &uploaded, &rig.user)
        .await
        .unwrap();
    // An ACME certificate for the same host loses to the uploaded one; an expired one is
    // not served.
    for (host, days) in [
        ("shop.example.com", 60),
        ("other.example.com", 60),
        ("demo.localhost", -1),
    ] {
        store
            .save_acme_certificate(
                &rig.app,
                host,
                &format!("CHAIN acme {host}"),
                &format!("KEY acme {host}"),
                now + time::Duration::days(days),
            )
            .await
            .unwrap();
    }
    store
        .change_routing(
            &rig.app,
            &domain::RoutingChange::Maintenance(true),
            &rig.user,
        )
        .await
        .unwrap();

    rig.manager.hosts_changed(&rig.app.name).await;

    let routing = rig.runtime.routing(&rig.app.name).expect("routing was set");
    assert!(routing.settings.maintenance && routing.settings.enabled);
    let served: Vec<String> = routing
        .hosts
        .iter()
        .map(|h| match &h.certificate {
            Some(pem) => format!("{} {} / {}", h.name, pem.chain, pem.key),
            None => format!("{} platform", h.name),
        })
        .collect();
    assert_eq!(
        served,
        [
            "demo.localhost platform",
            "other.example.com CHAIN acme other.example.com / KEY acme other.example.com",
            "shop.example.com CHAIN shop / KEY shop",
        ]
    );
}

/// A test run of the newest build, with app.json's `A=1` as its environment.
async fn test_run(rig: &mut Rig) -> u64 {
    let version = rig.push(&[("web", "serve"), ("test", "pytest")]).await;
    let release = rig.store.release(&rig.app, version).await.unwrap();
    let build = rig
        .store
        .build(&rig.app, release.build.unwrap())
        .await
        .unwrap();
    let plan = domain::TestPlan {
        command: "pytest -x".to_owned(),
        env: [("A".to_owned(), "1".to_owned())].into(),
    };
    let new = store::NewTestRun {
        build: build.id,
        commit: build.commit.as_deref(),
        image: build.image.as_deref().unwrap(),
        procfile: &build.procfile,
        plan: &plan,
        cause: store::TestCause::Push,
    };
    rig.store
        .create_test_run(&rig.app, &new, &rig.user)
        .await
        .unwrap()
        .number
}

#[tokio::test]
async fn a_test_runs_with_the_test_environment_and_records_how_it_ended() {
    let mut rig = Rig::new().await;
    rig.config("SECRET", "production only").await;
    let (passing, failing, cut) = (
        test_run(&mut rig).await,
        test_run(&mut rig).await,
        test_run(&mut rig).await,
    );
    let test = |run: u64| {
        let manager = rig.manager.clone();
        let app = rig.app.name.clone();
        async move {
            let (sink, _lines) = LineSender::channel(100);
            manager.test(&app, run, sink).await
        }
    };
    assert_eq!(test(passing).await.unwrap(), 0);
    rig.runtime.exit_next_run(3);
    assert_eq!(test(failing).await.unwrap(), 3);
    rig.runtime
        .fail_next_run(RuntimeError::Runtime("the runtime went away".to_owned()));
    assert!(test(cut).await.is_err());
    // An ended run is not run again.
    assert!(matches!(
        test(passing).await,
        Err(DeployError::Invalid(e)) if e == "test run 1 of demo has ended already"
    ));

    let runs: Vec<String> = rig
        .store
        .test_runs(&rig.app, 10)
        .await
        .unwrap()
        .iter()
        .rev()
        .map(|r| format!("#{} {} {:?}", r.number, r.status.as_str(), r.exit_status))
        .collect();
    expect![[r#"
        #1 succeeded Some(0)
        #2 failed Some(3)
        #3 errored None"#]]
    .assert_eq(&runs.join("\n"));
    let output = rig.store.test_run(&rig.app, 3).await.unwrap().output;
    assert_eq!(output, "running pytest -x\nthe runtime went away\n");

    // Never the app's config: app.json's environment and the platform's variables only.
    let calls: Vec<String> = rig
        .runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::RunTest {
                app,
                command,
                source,
                config,
            } => {
                let config: Vec<String> = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Some(format!("{app} {source} {command:?} {}", config.join(" ")))
            }
            _ => None,
        })
        .collect();
    expect![[r#"
        demo test.1 "pytest -x" A=1 CI=true SLIPWAY_APP=demo SLIPWAY_TEST_RUN=1 SOURCE_VERSION=0000000000000000000000000000000000000001
        demo test.2 "pytest -x" A=1 CI=true SLIPWAY_APP=demo SLIPWAY_TEST_RUN=2 SOURCE_VERSION=0000000000000000000000000000000000000002
        demo test.3 "pytest -x" A=1 CI=true SLIPWAY_APP=demo SLIPWAY_TEST_RUN=3 SOURCE_VERSION=0000000000000000000000000000000000000003"#]]
    .assert_eq(&calls.join("\n"));
    // Nothing was deployed by testing.
    rig.check_deploys(expect![""]);
}
