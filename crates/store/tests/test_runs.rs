//! Test runs in the store, on both backends: numbered per app, their own copy of the build and
//! the test environment, the output bounded, the end recorded once with its event, and their
//! work a one-off beside the app's queue.

mod common;

use std::collections::BTreeMap;

use common::{app, both_backends, user};
use slipway_store::{
    BuildSource, Claimable, MAX_TEST_OUTPUT, NewTestRun, Store, TestCause, TestStatus, WorkKind,
};

const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

both_backends! {
    async fn test_runs_are_numbered_per_app_and_finish_once_with_their_event(store: Store) {
        let ada = user(&store, "ada").await;
        let (demo, other) = (app(&store, "demo", &ada).await, app(&store, "other", &ada).await);
        let build = store
            .create_build(&demo, &BuildSource::Commit("c0ffee1234".to_owned()), &ada)
            .await
            .unwrap();
        let procfile = BTreeMap::from([("web".to_owned(), "serve".to_owned())]);
        let plan = domain::TestPlan {
            command: "pytest".to_owned(),
            env: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
        };
        let new = NewTestRun {
            build: build.id,
            commit: build.commit.as_deref(),
            image: "sha256:abc",
            procfile: &procfile,
            plan: &plan,
            cause: TestCause::Push,
        };
        assert_eq!(store.build_test_plan(&demo, build.id).await.unwrap(), None);
        store.set_build_test_plan(&demo, build.id, &plan).await.unwrap();
        assert_eq!(store.build_test_plan(&demo, build.id).await.unwrap(), Some(plan.clone()));
        assert!(store.build_test_plan(&other, build.id).await.is_err(), "another app's build");
        let first = store.create_test_run(&demo, &new, &ada).await.unwrap();
        let second = store.create_test_run(&demo, &new, &ada).await.unwrap();
        let elsewhere = store.create_test_run(&other, &NewTestRun { cause: TestCause::Api, ..new.clone() }, &ada).await.unwrap();
        assert_eq!((first.number, second.number, elsewhere.number), (1, 2, 1));
        assert_eq!((first.status, first.cause, first.created_by.as_str()), (TestStatus::Running, TestCause::Push, "ada"));
        assert_eq!((first.image.as_str(), first.command.as_str(), &first.procfile), ("sha256:abc", "pytest", &procfile));
        let env: Vec<String> = first.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["A=1", "CI=true", "SLIPWAY_APP=demo", "SLIPWAY_TEST_RUN=1", "SOURCE_VERSION=c0ffee1234"]);

        assert!(store.finish_test_run(&demo, 1, TestStatus::Failed, Some(1), "F test_x\n").await.unwrap());
        // Once: a second end (a cut-off noticed late) changes nothing.
        assert!(!store.finish_test_run(&demo, 1, TestStatus::Errored, None, "").await.unwrap());
        let done = store.test_run(&demo, 1).await.unwrap();
        assert_eq!((done.status, done.exit_status, done.output.as_str()), (TestStatus::Failed, Some(1), "F test_x\n"));
        assert!(done.finished_at.is_some());

        // Output beyond the bound is cut, not kept.
        let huge = "x".repeat(MAX_TEST_OUTPUT + 10);
        assert!(store.finish_test_run(&demo, 2, TestStatus::Succeeded, Some(0), &huge).await.unwrap());
        let kept = store.test_run(&demo, 2).await.unwrap().output;
        assert!(kept.len() <= MAX_TEST_OUTPUT && kept.ends_with("keep at most 4 MiB)\n"), "{}", kept.len());

        let listed: Vec<(u64, TestStatus, usize)> = store
            .test_runs(&demo, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.number, r.status, r.output.len()))
            .collect();
        assert_eq!(listed, [(2, TestStatus::Succeeded, 0), (1, TestStatus::Failed, 0)]);
        assert!(store.test_run(&demo, 3).await.is_err());

        let events: Vec<(String, String)> = store
            .events(Some("demo"), 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "ci.test")
            .map(|e| (e.actor, e.detail))
            .collect();
        assert_eq!(
            events,
            [
                ("ada".to_owned(), "#2 succeeded exit 0 c0ffee1".to_owned()),
                ("ada".to_owned(), "#1 failed exit 1 c0ffee1".to_owned()),
            ]
        );
    }

    async fn a_test_is_a_one_off_beside_the_apps_queue_and_never_retried(store: Store) {
        let x = domain::AppName::parse("x").unwrap();
        let deploy = WorkKind::Deploy { version: domain::ReleaseVersion::new(2).unwrap(), awaits_ref: true };
        let deploying = store.enqueue(&x, &deploy).await.unwrap();
        let test = store.enqueue(&x, &WorkKind::Test { run: 7 }).await.unwrap();
        let scale = store.enqueue(&x, &WorkKind::Scale).await.unwrap();
        assert_eq!(store.claim("a", LEASE, Claimable::Any).await.unwrap().unwrap().id, deploying);
        // Claimed beside the running deploy, in the one-off slots.
        assert!(store.claim("a", LEASE, Claimable::NotRuns).await.unwrap().is_none());
        let claimed = store.claim("a", LEASE, Claimable::Runs).await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.kind), (test, WorkKind::Test { run: 7 }));
        assert!(!WorkKind::Test { run: 7 }.retried());
        assert!(store.claim("a", LEASE, Claimable::Any).await.unwrap().is_none(), "{scale} waits for the deploy only");

        // Cut off, it fails rather than running twice.
        let cut = store.enqueue(&x, &WorkKind::Test { run: 8 }).await.unwrap();
        let short = std::time::Duration::from_millis(1);
        assert_eq!(store.claim("dead", short, Claimable::Runs).await.unwrap().unwrap().id, cut);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(store.claim("alive", LEASE, Claimable::Runs).await.unwrap().is_none());
        assert!(matches!(
            store.work(cut).await.unwrap().outcome,
            Some(slipway_store::WorkOutcome::Failed { .. })
        ));
    }
}
