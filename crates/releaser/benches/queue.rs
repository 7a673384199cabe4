//! Benchmark of the store's work queue: deploys per second that release managers sustain on
//! one PostgreSQL, 2 of them working at once against 1 alone, measured in this same run.
//!
//! Each run takes a fresh database with 200 apps, each with a built release waiting. The
//! release managers run as two processes would: each over its own [`FakeRuntime`] (a runtime
//! that only records what it is asked, so the queue and the release manager's store work are
//! what is measured), with its own `Store` handle and a `Worker` under its own holder name.
//! Round one queues a deploy per app; round two, a config change per app and its deploy: 400
//! deploys, timed from the first deploy queued until every piece of work has finished (the
//! releases of round two are made between the rounds, untimed, as the API would make them).
//! Each release must have been deployed exactly once across the runtimes.
//!
//! Needs `SLIPWAY_TEST_POSTGRES_URL` (`scripts/bench` starts a throwaway PostgreSQL). Run with
//! `cargo bench -p slipway-releaser --bench queue`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{AppName, ConfigChange, Username};
use slipway_releaser::fake::FakeRuntime;
use slipway_releaser::{Leftovers, Logs, ReleaseManager, Runtime, Worker, WorkerConfig};
use store::{App, BuildSource, BuildStatus, ConfigOutcome, NewUser, Store, User, WorkId, WorkKind};
use test_support::{Backend, TestDatabase};
use tokio_util::sync::CancellationToken;

const APPS: usize = 200;
const RUNS: usize = 3;
/// The longest a round may take before the benchmark gives up on it.
const ROUND_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    test_support::init();
    if std::env::var_os(test_support::POSTGRES_URL_VAR).is_none() {
        eprintln!(
            "error: {} is not set: run scripts/bench, which starts PostgreSQL, or point it at a server",
            test_support::POSTGRES_URL_VAR
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let mut two = Vec::new();
    let mut one = Vec::new();
    // Interleaved, so that a busy moment of the machine does not fall on one side only.
    for _ in 0..RUNS {
        two.push(measure(2).await);
        one.push(measure(1).await);
    }
    let (two_rate, two_split) = median_run(&mut two);
    let (one_rate, _) = median_run(&mut one);
    println!(
        "queue benchmark: {APPS} apps on PostgreSQL, {} deploys a run (a deploy per app, then a config change per app), fake runtimes, median of {RUNS} runs",
        2 * APPS
    );
    println!(
        "2 release managers      {two_rate:>8.1} deploys/s   (deploys done by each: {two_split})"
    );
    println!("1 release manager       {one_rate:>8.1} deploys/s");
    println!("ratio 2/1               {:>8.2}x", two_rate / one_rate);
    println!(
        "(the release managers, the benchmark and PostgreSQL share this machine's {} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
}

/// One run's deploys per second, and how many deploys each release manager did.
struct Run {
    rate: f64,
    split: String,
}

fn median_run(runs: &mut [Run]) -> (f64, String) {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let run = &runs[runs.len() / 2];
    (run.rate, run.split.clone())
}

/// A fresh database with `APPS` apps, `managers` release managers working its queue; the
/// 400 deploys timed.
async fn measure(managers: usize) -> Run {
    let db = TestDatabase::new(Backend::Postgres)
        .await
        .expect("PostgreSQL is there (checked at start)");
    // The API's handle on the store: it makes the releases and queues their deploys.
    let api = Store::open(&db.url).await.expect("open the store");
    let user = api
        .create_user(&Username::parse("bench").unwrap(), "x", NewUser::Any)
        .await
        .unwrap()
        .expect("the first user");
    let apps = make_apps(&api, &user).await;

    let stop = CancellationToken::new();
    let mut runtimes = Vec::new();
    let mut working = Vec::new();
    for n in 0..managers {
        // Each its own handle, as another process would have.
        let store = Store::open(&db.url).await.expect("open the store");
        let runtime = Arc::new(FakeRuntime::new());
        let manager = ReleaseManager::new(
            store.clone(),
            Arc::clone(&runtime) as Arc<dyn Runtime>,
            Logs::default(),
            "localhost".to_owned(),
            Leftovers::none(),
        );
        let worker = Worker::new(
            manager,
            store,
            WorkerConfig {
                holder: format!("bench-releaser-{n}"),
                lease: WorkerConfig::DEFAULT_LEASE,
                concurrency: WorkerConfig::DEFAULT_CONCURRENCY,
            },
        );
        runtimes.push(runtime);
        working.push(tokio::spawn(worker.run(stop.clone())));
    }

    // Round one: the first release of each app, built before the clock starts.
    let mut versions = Vec::new();
    for app in &apps {
        versions.push(release_build(&api, app, &user).await);
    }
    let mut took = deploy_round(&api, &apps, &versions).await;
    // Round two: a config change per app.
    let change = ConfigChange::set([("K", "v2")]).unwrap();
    let mut second = Vec::new();
    for app in &apps {
        match api.change_config(app, &change, &user).await.unwrap() {
            ConfigOutcome::Released(release) => second.push(release.version),
            ConfigOutcome::Unchanged(_) => panic!("the config did not change"),
        }
    }
    took += deploy_round(&api, &apps, &second).await;
    stop.cancel();
    for w in working {
        w.await.expect("a worker stopped cleanly");
    }

    // Each release deployed exactly once, across the runtimes.
    let mut seen = BTreeSet::new();
    let mut counts = Vec::new();
    for runtime in &runtimes {
        let deploys = runtime.deploys();
        counts.push(deploys.len().to_string());
        for deploy in deploys {
            assert!(seen.insert(deploy.clone()), "deployed twice: {deploy}");
        }
    }
    let mut expected = BTreeSet::new();
    for (app, (v1, v2)) in apps.iter().zip(versions.iter().zip(&second)) {
        expected.insert(format!("{} {v1} web=1", app.name));
        expected.insert(format!("{} {v2} web=1", app.name));
    }
    assert_eq!(seen, expected, "every release deployed, and nothing else");
    for app in &apps {
        for release in api.releases(app, 10).await.unwrap() {
            assert_eq!(
                release.status,
                domain::ReleaseStatus::Succeeded,
                "{} {}",
                app.name,
                release.version
            );
        }
    }
    api.close().await;
    Run {
        rate: (2 * APPS) as f64 / took.as_secs_f64(),
        split: counts.join(" + "),
    }
}

async fn make_apps(store: &Store, user: &User) -> Vec<App> {
    let mut apps = Vec::new();
    for n in 0..APPS {
        let name = AppName::parse(&format!("app{n}")).unwrap();
        apps.push(store.create_app(&name, user).await.unwrap());
    }
    apps
}

/// A succeeded build of `app` with a web process and an image, and its pending release.
async fn release_build(store: &Store, app: &App, user: &User) -> domain::ReleaseVersion {
    let commit = format!("{:040x}", 1);
    let build = store
        .create_build(app, &BuildSource::Commit(commit), user)
        .await
        .unwrap();
    let procfile: std::collections::BTreeMap<String, String> =
        [("web".to_owned(), "serve".to_owned())]
            .into_iter()
            .collect();
    let image = format!("sha256:{:064x}", 1);
    store
        .finish_build(
            app,
            build.id,
            BuildStatus::Succeeded,
            &procfile,
            Some(&image),
        )
        .await
        .unwrap();
    store
        .release_build(app, build.id, user)
        .await
        .unwrap()
        .version
}

/// Queues the deploy of `versions` (one per app, as many API requests would at once) and
/// waits until all of it has finished; how long that took.
async fn deploy_round(
    store: &Store,
    apps: &[App],
    versions: &[domain::ReleaseVersion],
) -> Duration {
    let started = Instant::now();
    let mut queueing = tokio::task::JoinSet::new();
    for (app, version) in apps.iter().zip(versions) {
        let (store, name, version) = (store.clone(), app.name.clone(), *version);
        queueing.spawn(async move {
            let kind = WorkKind::Deploy {
                version,
                awaits_ref: false,
            };
            store.enqueue(&name, &kind).await.expect("queue a deploy")
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = queueing.join_next().await {
        ids.push(id.expect("queueing did not panic"));
    }
    let first = ids.iter().min().expect("work was queued");
    let since = WorkId(first.0 - 1);
    loop {
        let finished = store.finished_work(since).await.unwrap();
        let ours = finished.iter().filter(|w| ids.contains(&w.id)).count();
        if ours == ids.len() {
            for work in &finished {
                assert!(
                    matches!(work.outcome, Some(store::WorkOutcome::Succeeded { .. })),
                    "{work:?}"
                );
            }
            return started.elapsed();
        }
        assert!(
            started.elapsed() < ROUND_LIMIT,
            "{} of {} deploys finished after {ROUND_LIMIT:?}",
            ours,
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
