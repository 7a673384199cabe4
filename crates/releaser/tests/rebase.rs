//! The release manager's rebase work, over a real store and the fake runtime, with a rebaser
//! that answers as told: a rebase is a build of the same commit and Procfile with the new
//! image, a release that says so, and its deploy; done again it makes no second release; an
//! image on the run image already, a refusal, a missing rebaser and a vanished user each end
//! it in one line, with nothing made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_releaser as releaser;

use async_trait::async_trait;
use domain::{AppName, ReleaseStatus, ReleaseVersion, Username};
use releaser::fake::FakeRuntime;
use releaser::{RebaseError, RebasedImage, Rebaser, ReleaseManager, Worker, WorkerConfig};
use store::{BuildSource, BuildStatus, Fault, NewUser, Store, WorkKind, WorkOutcome};
use test_support::{Backend, TestDatabase};
use tokio_util::sync::CancellationToken;

const OLD: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000aa";
const NEW: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000bb";
const BASE: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const COMMIT: &str = "1a2b3c4d1a2b3c4d1a2b3c4d1a2b3c4d1a2b3c4d";

/// Answers every rebase with `answer`, and records what it was asked.
#[derive(Debug)]
struct Told {
    answer: Mutex<Result<RebasedImage, RebaseError>>,
    asked: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Rebaser for Told {
    async fn rebase(
        &self,
        _app: &AppName,
        image: &str,
        stem: &str,
        _progress: &releaser::Progress,
    ) -> Result<RebasedImage, RebaseError> {
        self.asked
            .lock()
            .unwrap()
            .push((image.to_owned(), stem.to_owned()));
        self.answer.lock().unwrap().clone()
    }
}

fn rebased(unchanged: bool) -> RebasedImage {
    RebasedImage {
        image: if unchanged { OLD } else { NEW }.to_owned(),
        run_image: "base".to_owned(),
        base: BASE.to_owned(),
        unchanged,
        pushed_bytes: (!unchanged).then_some(1234),
    }
}

/// Queues a rebase as `by` and waits for it: how it ended and its last line.
async fn rebase(store: &Store, by: &str) -> (WorkOutcome, String) {
    let app = AppName::parse("demo").unwrap();
    let work = store
        .enqueue(&app, &WorkKind::Rebase { by: by.to_owned() })
        .await
        .unwrap();
    let mut last = String::new();
    let outcome = store
        .await_work(
            work,
            Some(tokio::time::Instant::now() + Duration::from_secs(30)),
            |line| last = line.to_owned(),
        )
        .await
        .unwrap()
        .expect("done within 30 s");
    (outcome, last)
}

#[tokio::test]
async fn a_rebase_is_a_release_of_the_same_code_on_the_new_image() {
    let db = TestDatabase::new(Backend::Sqlite).await.unwrap();
    let store = Store::open(&db.url).await.unwrap();
    let alice = store
        .create_user(&Username::parse("alice").unwrap(), "x", NewUser::Any)
        .await
        .unwrap()
        .unwrap();
    let demo = store
        .create_app(&AppName::parse("demo").unwrap(), &alice)
        .await
        .unwrap();
    let build = store
        .create_build(&demo, &BuildSource::Commit(COMMIT.to_owned()), &alice)
        .await
        .unwrap();
    let procfile = BTreeMap::from([("web".to_owned(), "serve".to_owned())]);
    store
        .finish_build(
            &demo,
            build.id,
            BuildStatus::Succeeded,
            &procfile,
            Some(OLD),
        )
        .await
        .unwrap();
    let v2 = store.release_build(&demo, build.id, &alice).await.unwrap();
    store
        .set_release_status(&demo, v2.version, ReleaseStatus::Succeeded, None)
        .await
        .unwrap();

    let runtime = Arc::new(FakeRuntime::new());
    let manager = ReleaseManager::new(
        store.clone(),
        Arc::clone(&runtime) as Arc<dyn releaser::Runtime>,
        releaser::Logs::default(),
        "localhost".to_owned(),
        releaser::Leftovers::none(),
    );
    let config = WorkerConfig {
        holder: "test".to_owned(),
        lease: Duration::from_secs(10),
        concurrency: 4,
    };

    // Without a rebaser, it is not done, and says why.
    let stop = CancellationToken::new();
    let bare =
        tokio::spawn(Worker::new(manager.clone(), store.clone(), config.clone()).run(stop.clone()));
    let (outcome, _) = rebase(&store, "alice").await;
    assert!(
        matches!(&outcome, WorkOutcome::Failed { fault: Fault::Unavailable, reason } if reason.starts_with("this release manager holds no image store")),
        "{outcome:?}"
    );
    stop.cancel();
    bare.await.unwrap();

    let told = Arc::new(Told {
        answer: Mutex::new(Ok(rebased(false))),
        asked: Mutex::default(),
    });
    let stop = CancellationToken::new();
    let working = tokio::spawn(
        Worker::new(manager.clone(), store.clone(), config)
            .with_rebaser(Arc::clone(&told) as Arc<dyn Rebaser>)
            .run(stop.clone()),
    );

    let (outcome, last) = rebase(&store, "alice").await;
    assert_eq!(
        outcome,
        WorkOutcome::Succeeded {
            exit_status: Some(3)
        }
    );
    assert_eq!(
        last,
        format!("Rebased demo onto run image base ({BASE}): v3, no build ran")
    );
    assert_eq!(
        told.asked.lock().unwrap().clone(),
        [(OLD.to_owned(), COMMIT.to_owned())],
        "the current release's image, named by its commit"
    );
    let v3 = store
        .release(&demo, ReleaseVersion::new(3).unwrap())
        .await
        .unwrap();
    assert_eq!(
        v3.summary,
        "alice rebased onto run image base (sha256:cccccccccccc)"
    );
    let made = store.build(&demo, v3.build.unwrap()).await.unwrap();
    assert_eq!(
        (
            made.commit.as_deref(),
            made.image.as_deref(),
            &made.procfile,
            made.pushed_bytes
        ),
        (Some(COMMIT), Some(NEW), &procfile, Some(1234))
    );
    assert_eq!(
        store.build_log(&demo, made.id).await.unwrap(),
        "",
        "no build ran"
    );
    // Its deploy was queued, and done.
    let mut deployed = false;
    for _ in 0..300 {
        let status = store.release(&demo, v3.version).await.unwrap().status;
        if status == ReleaseStatus::Succeeded {
            deployed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(deployed, "v3 was deployed");

    // Done again (as after a cut-off), it finds its release and makes no other.
    let (outcome, _) = rebase(&store, "alice").await;
    assert_eq!(
        outcome,
        WorkOutcome::Succeeded {
            exit_status: Some(3)
        }
    );
    assert_eq!(store.releases(&demo, 10).await.unwrap().len(), 3);
    assert_eq!(store.builds(&demo, 10).await.unwrap().len(), 2);

    // A rebase whose deploy failed is made again, not found.
    store
        .set_release_status(&demo, v3.version, ReleaseStatus::Failed, Some("crashed"))
        .await
        .unwrap();
    let (outcome, last) = rebase(&store, "alice").await;
    assert_eq!(
        outcome,
        WorkOutcome::Succeeded {
            exit_status: Some(4)
        }
    );
    assert!(last.ends_with(": v4, no build ran"), "{last}");
    assert_eq!(store.builds(&demo, 10).await.unwrap().len(), 3);

    // On the run image already: nothing made.
    *told.answer.lock().unwrap() = Ok(rebased(true));
    let (outcome, last) = rebase(&store, "alice").await;
    assert_eq!(outcome, WorkOutcome::Succeeded { exit_status: None });
    assert_eq!(
        last,
        format!("demo is on run image base ({BASE}) already: nothing to rebase")
    );

    // Refused, or asked for by a user who is gone: one line, nothing made.
    *told.answer.lock().unwrap() = Err(RebaseError::Refused(
        "this image was built from a Dockerfile".to_owned(),
    ));
    let (outcome, _) = rebase(&store, "alice").await;
    assert_eq!(
        outcome,
        WorkOutcome::Failed {
            fault: Fault::Invalid,
            reason: "this image was built from a Dockerfile".to_owned()
        }
    );
    let (outcome, _) = rebase(&store, "bob").await;
    assert!(
        matches!(&outcome, WorkOutcome::Failed { fault: Fault::Invalid, reason } if reason.contains("\"bob\"")),
        "{outcome:?}"
    );
    assert_eq!(store.releases(&demo, 10).await.unwrap().len(), 4);
    assert_eq!(store.builds(&demo, 10).await.unwrap().len(), 3);
    stop.cancel();
    working.await.unwrap();
}
