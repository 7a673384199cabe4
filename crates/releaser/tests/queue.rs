//! Several release managers working the store's queue at once, each with a store handle of its
//! own as a process would have, over one runtime that records what it was asked (the fake,
//! standing for a cluster they share): every release is deployed exactly once, an app's in
//! order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use slipway_releaser as releaser;

use domain::{AppName, ConfigChange, ReleaseStatus, Username};
use releaser::fake::FakeRuntime;
use releaser::{ReleaseManager, Worker, WorkerConfig};
use store::{BuildSource, BuildStatus, ConfigOutcome, NewUser, Store, WorkKind};
use test_support::{Backend, TestDatabase};

const APPS: usize = 50;
const RELEASES_PER_APP: usize = 4;
const MANAGERS: usize = 3;

async fn run(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    let user = store
        .create_user(&Username::parse("ada").unwrap(), "x", NewUser::Any)
        .await
        .unwrap()
        .unwrap();
    // 50 apps, 4 releases each (a push, then three config changes), every deploy queued as
    // the API and the gateway queue them.
    let mut expected = Vec::new();
    for n in 0..APPS {
        let app = store
            .create_app(&AppName::parse(&format!("app{n}")).unwrap(), &user)
            .await
            .unwrap();
        let build = store
            .create_build(&app, &BuildSource::Image(format!("sha256:{n:064x}")), &user)
            .await
            .unwrap();
        let procfile = BTreeMap::from([("web".to_owned(), "serve".to_owned())]);
        store
            .finish_build(
                &app,
                build.id,
                BuildStatus::Succeeded,
                &procfile,
                Some(&format!("sha256:{n:064x}")),
            )
            .await
            .unwrap();
        let mut versions = vec![
            store
                .release_build(&app, build.id, &user)
                .await
                .unwrap()
                .version,
        ];
        for k in 1..RELEASES_PER_APP {
            let change = ConfigChange::set([("K", k.to_string().as_str())]).unwrap();
            match store.change_config(&app, &change, &user).await.unwrap() {
                ConfigOutcome::Released(release) => versions.push(release.version),
                ConfigOutcome::Unchanged(_) => unreachable!("the config changed"),
            }
        }
        for version in versions {
            let deploy = WorkKind::Deploy {
                version,
                awaits_ref: false,
            };
            store.enqueue(&app.name, &deploy).await.unwrap();
            expected.push(format!("{} {version}", app.name));
        }
    }
    assert_eq!(expected.len(), APPS * RELEASES_PER_APP);

    let runtime = Arc::new(FakeRuntime::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for m in 0..MANAGERS {
        // A store handle of its own, as another process would have.
        let own = Store::open(&db.url).await.unwrap();
        let manager = ReleaseManager::new(
            own.clone(),
            Arc::clone(&runtime) as Arc<dyn releaser::Runtime>,
            releaser::Logs::default(),
            "localhost".to_owned(),
            releaser::Leftovers::none(),
        );
        let worker = Worker::new(
            manager,
            own,
            WorkerConfig {
                holder: format!("manager{m}"),
                lease: WorkerConfig::DEFAULT_LEASE,
                concurrency: 4,
            },
        );
        workers.push(tokio::spawn(worker.run(stop.clone())));
    }
    let all_done = async {
        loop {
            let mut left = 0;
            for n in 0..APPS {
                let app = AppName::parse(&format!("app{n}")).unwrap();
                left += store.unfinished_work(&app).await.unwrap().len();
            }
            if left == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_done)
        .await
        .expect("the managers did the work within 2 minutes");
    stop.cancel();
    for worker in workers {
        worker.await.unwrap();
    }

    // Each release deployed exactly once, an app's in version order.
    let deploys: Vec<String> = runtime
        .deploys()
        .into_iter()
        .map(|d| {
            d.rsplit_once(' ')
                .map_or(d.clone(), |(head, _)| head.to_owned())
        })
        .collect();
    let mut sorted = deploys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), deploys.len(), "a release was deployed twice");
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "every release deployed");
    for n in 0..APPS {
        let prefix = format!("app{n} ");
        let order: Vec<&String> = deploys.iter().filter(|d| d.starts_with(&prefix)).collect();
        let mut in_order = order.clone();
        in_order.sort_by_key(|d| d[prefix.len() + 1..].parse::<u32>().unwrap());
        assert_eq!(order, in_order, "app{n}'s releases deployed out of order");
        let app = store.app(&format!("app{n}")).await.unwrap();
        for release in store.releases(&app, 10).await.unwrap() {
            if release.build.is_some() {
                assert_eq!(
                    release.status,
                    ReleaseStatus::Succeeded,
                    "app{n} {}",
                    release.version
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_release_managers_deploy_200_releases_of_50_apps_each_exactly_once_on_postgres() {
    run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_release_managers_deploy_200_releases_of_50_apps_each_exactly_once_on_sqlite() {
    run(Backend::Sqlite).await;
}
