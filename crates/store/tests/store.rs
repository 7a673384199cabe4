//! The store's test suite. Every test runs twice, against SQLite and against PostgreSQL,
//! each time on a fresh database.

mod common;

use std::collections::BTreeMap;

use common::{app, both_backends, user};
use domain::{
    AppName, ConfigChange, Hostname, ProcessType, ReleaseStatus, ReleaseVersion, SshPublicKey,
    Username,
};
use slipway_store::{
    self as store, Access, BuildSource, BuildStatus, ConfigOutcome, Domain, DomainState, Error,
    NewUser, Store, User,
};
use test_support::{Backend, TestDatabase};

fn set(pairs: &[(&str, &str)]) -> ConfigChange {
    ConfigChange::set(pairs.iter().copied()).unwrap()
}

fn v(n: u32) -> ReleaseVersion {
    ReleaseVersion::new(n).unwrap()
}

/// Versions and summaries, newest first, as one string for comparing.
async fn history(store: &Store, app: &store::App) -> String {
    let releases = store.releases(app, 100).await.unwrap();
    releases
        .iter()
        .map(|r| format!("{} {} [{}]", r.version, r.summary, r.status))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes a succeeded build with the given Procfile, and its release, deployed successfully.
async fn deploy(
    store: &Store,
    app: &store::App,
    actor: &User,
    commit: &str,
    procfile: &[(&str, &str)],
) -> ReleaseVersion {
    let build = store
        .create_build(app, &BuildSource::Commit(commit.to_owned()), actor)
        .await
        .unwrap();
    let procfile: BTreeMap<String, String> = procfile
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    store
        .finish_build(
            app,
            build.id,
            BuildStatus::Succeeded,
            &procfile,
            Some("sha256:abc"),
        )
        .await
        .unwrap();
    let release = store.release_build(app, build.id, actor).await.unwrap();
    assert_eq!(release.status, ReleaseStatus::Pending);
    store
        .set_release_status(app, release.version, ReleaseStatus::Succeeded, None)
        .await
        .unwrap();
    release.version
}

both_backends! {
    async fn an_apps_stack_is_buildpacks_until_set(store: Store) {
        let ada = user(&store, "ada").await;
        let app = store.create_app(&AppName::parse("demo").unwrap(), &ada).await.unwrap();
        assert_eq!(app.stack, domain::Stack::Buildpacks);
        assert_eq!(store.app("demo").await.unwrap().stack, domain::Stack::Buildpacks);
        let set = store.set_stack(&app, domain::Stack::Container, &ada).await.unwrap();
        assert_eq!(set.stack, domain::Stack::Container);
        assert_eq!(store.app("demo").await.unwrap().stack, domain::Stack::Container);
        let (found, _) = store.app_access("demo", &ada).await.unwrap();
        assert_eq!(found.stack, domain::Stack::Container);
        let events = store.events(Some("demo"), 10).await.unwrap();
        assert!(events.iter().any(|e| e.action == "app.stack" && e.detail == "container"));
    }

    async fn auto_promote_sends_each_new_build_onward_once_and_stops_at_a_protected_stage(store: Store) {
        use domain::{PipelineName, Stage};
        let ada = user(&store, "ada").await;
        let dev = store.create_app(&app_name("demo-dev"), &ada).await.unwrap();
        let staging = store.create_app(&app_name("demo-staging"), &ada).await.unwrap();
        let production = store.create_app(&app_name("demo"), &ada).await.unwrap();
        let pipeline = store.create_pipeline(&PipelineName::parse("demo").unwrap(), &ada).await.unwrap();
        store.add_to_pipeline(&pipeline, &dev, Stage::Development, &ada).await.unwrap();
        store.add_to_pipeline(&pipeline, &staging, Stage::Staging, &ada).await.unwrap();
        store.add_to_pipeline(&pipeline, &production, Stage::Production, &ada).await.unwrap();
        let pipeline = store.pipeline("demo").await.unwrap();
        store.set_stage_gates(&pipeline, Stage::Development, None, Some(true), &ada).await.unwrap();
        store.set_stage_gates(&pipeline, Stage::Staging, Some(false), Some(true), &ada).await.unwrap();
        store.set_stage_gates(&pipeline, Stage::Production, Some(true), None, &ada).await.unwrap();
        store.change_config(&staging, &set(&[("GREETING", "staging")]), &ada).await.unwrap();

        // A push to development succeeds: its build goes to staging, once, with staging's config.
        let build = store.create_build(&dev, &BuildSource::Commit("d".repeat(40)), &ada).await.unwrap();
        let procfile = [("web".to_owned(), "./serve".to_owned())].into();
        store.finish_build(&dev, build.id, BuildStatus::Succeeded, &procfile, Some("registry/demo-dev@sha256:1")).await.unwrap();
        let pushed = store.release_build(&dev, build.id, &ada).await.unwrap();
        store.set_release_status(&dev, pushed.version, ReleaseStatus::Deploying, None).await.unwrap();
        store.set_release_status(&dev, pushed.version, ReleaseStatus::Succeeded, None).await.unwrap();
        store.set_release_status(&dev, pushed.version, ReleaseStatus::Succeeded, None).await.unwrap();
        let arrived = store.latest_release(&staging).await.unwrap();
        assert_eq!((arrived.version, arrived.status), (v(3), ReleaseStatus::Pending), "{}", history(&store, &staging).await);
        assert_eq!(arrived.summary, "ada promoted demo-dev v2 (ddddddd)");
        assert_eq!(arrived.config["GREETING"], "staging");
        let queued = store.unfinished_work(&staging.name).await.unwrap();
        assert_eq!(queued.iter().map(|w| &w.kind).collect::<Vec<_>>(), [&deploy_of(3)]);
        // A config change in development is not a new build: nothing goes onward.
        store.change_config(&dev, &set(&[("A", "1")]), &ada).await.unwrap();
        store.set_release_status(&dev, v(3), ReleaseStatus::Succeeded, None).await.unwrap();
        assert_eq!(store.latest_release(&staging).await.unwrap().version, v(3));

        // Staging's deploy of it succeeds: production is protected, so nothing is promoted,
        // and the audit trail says why.
        store.set_release_status(&staging, v(3), ReleaseStatus::Succeeded, None).await.unwrap();
        assert_eq!(store.latest_release(&production).await.unwrap().version, v(1));
        let events = store.events(Some("demo-staging"), 20).await.unwrap();
        assert!(
            events.iter().any(|e| e.action == "pipeline.auto-promote-skipped"
                && e.detail == "v3: production is protected; promote it with `slip pipelines:promote -a demo-staging`"),
            "{events:?}"
        );
        // Every step is in the pipeline's trail.
        let trail = store.pipeline_events("demo", 50).await.unwrap();
        assert!(trail.iter().any(|e| e.action == "promotion.auto" && e.app.as_deref() == Some("demo-staging")), "{trail:?}");

        // Two approvals of one pending promotion race: exactly one deploys it.
        let bob = user(&store, "bob").await;
        let carol = user(&store, "carol").await;
        let pinned = store.promotable_build(&staging).await.unwrap();
        assert_eq!((pinned.version, pinned.image.as_str()), (v(3), "registry/demo-dev@sha256:1"));
        let pending = store.promote(&pipeline, &production, &pinned, &ada, true).await.unwrap();
        assert_eq!(pending.status, store::PromotionStatus::Pending);
        let (first, second) = tokio::join!(
            store.approve_promotion(pending.number, &bob),
            store.approve_promotion(pending.number, &carol)
        );
        let outcomes = [first.is_ok(), second.is_ok()];
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{first:?} {second:?}");
        let promoted = store.latest_release(&production).await.unwrap();
        assert_eq!(promoted.version, v(2), "{}", history(&store, &production).await);
        let build = store.build(&production, promoted.build.unwrap()).await.unwrap();
        assert_eq!(build.promoted_from.as_deref(), Some("demo-staging v3"));
        assert!(!build.is_push());
        // A newer request supersedes a pending one.
        store.set_release_status(&production, v(2), ReleaseStatus::Succeeded, None).await.unwrap();
        let older = store.promote(&pipeline, &production, &pinned, &ada, true).await.unwrap();
        let newer = store.promote(&pipeline, &production, &pinned, &bob, true).await.unwrap();
        assert_eq!(store.promotion(older.number).await.unwrap().status, store::PromotionStatus::Superseded);
        assert_eq!(store.promotion(newer.number).await.unwrap().status, store::PromotionStatus::Pending);
        let late = store.approve_promotion(older.number, &bob).await.unwrap_err();
        assert_eq!(late.to_string(), format!("promotion #{} is superseded already: nothing to decide", older.number));
    }

    async fn pipelines_hold_each_app_once_in_a_stage_with_gates(store: Store) {
        use domain::{PipelineName, Stage};
        let ada = user(&store, "ada").await;
        let staging = store.create_app(&AppName::parse("demo-staging").unwrap(), &ada).await.unwrap();
        let production = store.create_app(&AppName::parse("demo").unwrap(), &ada).await.unwrap();
        let name = PipelineName::parse("demo").unwrap();
        let pipeline = store.create_pipeline(&name, &ada).await.unwrap();
        assert_eq!((pipeline.owner.as_str(), pipeline.apps.len(), pipeline.stages.len()), ("ada", 0, 3));
        assert!(pipeline.stages.iter().all(|g| !g.protected && !g.auto_promote));
        let again = store.create_pipeline(&name, &ada).await.unwrap_err();
        assert_eq!(again.to_string(), "a pipeline named demo exists already: choose another name");

        store.add_to_pipeline(&pipeline, &production, Stage::Production, &ada).await.unwrap();
        store.add_to_pipeline(&pipeline, &staging, Stage::Staging, &ada).await.unwrap();
        let twice = store.add_to_pipeline(&pipeline, &staging, Stage::Development, &ada).await.unwrap_err();
        assert!(twice.to_string().starts_with("demo-staging is in a pipeline already"), "{twice}");
        let pipeline = store.pipeline("demo").await.unwrap();
        let apps: Vec<(&str, Stage)> = pipeline.apps.iter().map(|(a, s)| (a.as_str(), *s)).collect();
        assert_eq!(apps, [("demo-staging", Stage::Staging), ("demo", Stage::Production)]);
        assert_eq!(store.pipeline_of(&staging).await.unwrap().as_deref(), Some("demo"));

        let gates = store.set_stage_gates(&pipeline, Stage::Production, Some(true), None, &ada).await.unwrap();
        assert!(gates.protected && !gates.auto_promote);
        let pipeline = store.pipeline("demo").await.unwrap();
        let production_gates = pipeline.stages.iter().find(|g| g.stage == Stage::Production).unwrap();
        assert!(production_gates.protected);

        // Each change is in the audit trail; an app leaves when it is removed or destroyed.
        let events = store.events(Some("demo-staging"), 10).await.unwrap();
        assert!(events.iter().any(|e| e.action == "pipeline.add" && e.detail == "demo staging"), "{events:?}");
        store.remove_from_pipeline(&staging, &ada).await.unwrap();
        assert_eq!(store.pipeline_of(&staging).await.unwrap(), None);
        let gone = store.remove_from_pipeline(&staging, &ada).await.unwrap_err();
        assert!(matches!(gone, Error::NotFound(_)), "{gone}");
        store.destroy_app(&production, &ada).await.unwrap();
        assert!(store.pipeline("demo").await.unwrap().apps.is_empty());
        store.destroy_pipeline(&pipeline, &ada).await.unwrap();
        assert!(matches!(store.pipeline("demo").await.unwrap_err(), Error::NotFound(_)));
        let all = store.events(None, 20).await.unwrap();
        for action in ["pipeline.create", "pipeline.stage", "pipeline.destroy"] {
            assert!(all.iter().any(|e| e.action == action), "{action}: {all:?}");
        }
    }

    async fn first_user_is_admin(store: Store) {
        let ada = Username::parse("ada").unwrap();
        let bob = Username::parse("bob").unwrap();
        let first = store.create_user(&ada, "h", NewUser::FirstOnly).await.unwrap().unwrap();
        assert!(first.admin);
        assert_eq!(store.create_user(&bob, "h", NewUser::FirstOnly).await.unwrap(), None);
        let second = store.create_user(&bob, "h", NewUser::Any).await.unwrap().unwrap();
        assert!(!second.admin);
        let err = store.create_user(&bob, "h", NewUser::Any).await.unwrap_err();
        assert_eq!(err.to_string(), "the username bob is taken");
        assert_eq!(store.user_count().await.unwrap(), 2);
        let (found, hash) = store.user_with_password("bob").await.unwrap().unwrap();
        assert_eq!((found.username.as_str(), hash.as_str()), ("bob", "h"));
    }

    async fn concurrent_first_registrations_make_one_admin(store: Store) {
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let name = Username::parse(&format!("user{i}")).unwrap();
                    store.create_user(&name, "h", NewUser::FirstOnly).await.unwrap()
                })
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            created.extend(task.await.unwrap());
        }
        assert_eq!(created.len(), 1, "exactly one first user: {created:?}");
        assert!(created[0].admin);
        assert_eq!(store.user_count().await.unwrap(), 1);
    }

    async fn tokens(store: Store) {
        let ada = user(&store, "ada").await;
        let bob = user(&store, "bob").await;
        let now = time::OffsetDateTime::now_utc();
        let later = now + time::Duration::days(30);
        let made = store.create_token(&ada, "hash-1", later).await.unwrap();
        let (owner, token) = store.user_by_token("hash-1").await.unwrap().unwrap();
        assert_eq!((owner.id, &token), (ada.id, &made));
        assert!(!token.expired(now));
        assert!(token.expired(later));
        assert_eq!(store.user_by_token("hash-2").await.unwrap(), None);
        assert!(store.delete_token("hash-1").await.unwrap());
        assert!(!store.delete_token("hash-1").await.unwrap());
        assert_eq!(store.user_by_token("hash-1").await.unwrap(), None);

        // Listing shows a user's own live tokens; expired ones go; revoking is by id and
        // only of one's own.
        let first = store.create_token(&ada, "hash-a", later).await.unwrap();
        let second = store.create_token(&ada, "hash-b", later).await.unwrap();
        store.create_token(&ada, "hash-old", now - time::Duration::seconds(1)).await.unwrap();
        let bobs = store.create_token(&bob, "hash-c", later).await.unwrap();
        let ids: Vec<_> = store.tokens(&ada).await.unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, [second.id, first.id]);
        assert_eq!(store.user_by_token("hash-old").await.unwrap(), None, "deleted when listed");
        assert!(!store.delete_token_by_id(&ada, bobs.id).await.unwrap(), "not ada's");
        assert!(store.user_by_token("hash-c").await.unwrap().is_some());
        assert!(store.delete_token_by_id(&ada, first.id).await.unwrap());
        assert_eq!(store.user_by_token("hash-a").await.unwrap(), None);
        assert_eq!(store.tokens(&ada).await.unwrap().len(), 1);
    }

    async fn ssh_keys(store: Store) {
        let ada = user(&store, "ada").await;
        let bob = user(&store, "bob").await;
        let key = SshPublicKey::parse(KEY).unwrap();
        let added = store.add_key(&ada, &key).await.unwrap();
        assert_eq!(added.fingerprint, key.fingerprint());
        // A fingerprint belongs to one user only, so the gateway knows who is pushing.
        let err = store.add_key(&bob, &key).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert_eq!(store.user_by_key(key.fingerprint()).await.unwrap().unwrap().username, "ada");
        assert!(matches!(store.remove_key(&bob, key.fingerprint()).await, Err(Error::NotFound(_))));
        store.remove_key(&ada, "ada@laptop").await.unwrap();
        assert!(store.keys(&ada).await.unwrap().is_empty());
        assert_eq!(store.user_by_key(key.fingerprint()).await.unwrap(), None);
    }

    async fn builds_cut_off_by_a_restart_are_marked_failed(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let commit = BuildSource::Commit("a".repeat(40));
        let cut = store.create_build(&demo, &commit, &ada).await.unwrap();
        store.set_build_log(&demo, cut.id, "-----> Building\n").await.unwrap();
        let done = store.create_build(&demo, &commit, &ada).await.unwrap();
        store.finish_build(&demo, done.id, BuildStatus::Succeeded, &BTreeMap::new(), None).await.unwrap();

        assert_eq!(store.fail_running_builds("cut off by a restart of slipwayd").await.unwrap(), 1);
        let cut = store.build(&demo, cut.id).await.unwrap();
        assert_eq!(cut.status, BuildStatus::Failed);
        assert!(cut.finished_at.is_some());
        assert_eq!(store.build_log(&demo, cut.id).await.unwrap(), "-----> Building\ncut off by a restart of slipwayd\n");
        assert_eq!(store.build(&demo, done.id).await.unwrap().status, BuildStatus::Succeeded);
        assert_eq!(store.fail_running_builds("again").await.unwrap(), 0);
    }

    async fn a_build_keeps_the_bytes_its_push_sent(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let other = app(&store, "other", &ada).await;
        let built = store.create_build(&demo, &BuildSource::Commit("b".repeat(40)), &ada).await.unwrap();
        assert_eq!(built.pushed_bytes, None, "nothing pushed yet");
        store.set_build_pushed_bytes(&demo, built.id, 402).await.unwrap();
        assert_eq!(store.build(&demo, built.id).await.unwrap().pushed_bytes, Some(402));
        assert_eq!(store.builds(&demo, 10).await.unwrap()[0].pushed_bytes, Some(402));
        // Another app's build is not this one's to change.
        let err = store.set_build_pushed_bytes(&other, built.id, 1).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert_eq!(store.build(&demo, built.id).await.unwrap().pushed_bytes, Some(402));
    }

    async fn apps_and_access(store: Store) {
        let admin = user(&store, "admin").await;
        let ada = user(&store, "ada").await;
        let bob = user(&store, "bob").await;
        let demo = app(&store, "demo", &ada).await;
        let err = store.create_app(&AppName::parse("demo").unwrap(), &bob).await.unwrap_err();
        assert_eq!(err.to_string(), "the app name demo is taken");
        assert_eq!(history(&store, &demo).await, "v1 ada created initial release [succeeded]");

        assert_eq!(store.app_access("demo", &ada).await.unwrap().1, Access::Owner);
        assert_eq!(store.app_access("demo", &bob).await.unwrap().1, Access::None);
        assert!(store.apps_for(&bob).await.unwrap().is_empty());
        assert_eq!(store.apps_for(&admin).await.unwrap().len(), 1, "admins see every app");

        store.add_collaborator(&demo, "bob", &ada).await.unwrap();
        assert_eq!(store.app_access("demo", &bob).await.unwrap().1, Access::Collaborator);
        assert_eq!(store.apps_for(&bob).await.unwrap()[0].name.as_str(), "demo");
        assert!(matches!(store.add_collaborator(&demo, "bob", &ada).await, Err(Error::Conflict(_))));
        assert!(matches!(store.add_collaborator(&demo, "ada", &ada).await, Err(Error::Conflict(_))));
        assert!(matches!(store.add_collaborator(&demo, "nobody", &ada).await, Err(Error::NotFound(_))));
        store.remove_collaborator(&demo, "bob", &ada).await.unwrap();
        assert_eq!(store.app_access("demo", &bob).await.unwrap().1, Access::None);
        assert!(matches!(store.remove_collaborator(&demo, "bob", &ada).await, Err(Error::NotFound(_))));
        assert!(matches!(store.app_access("nope", &ada).await, Err(Error::NotFound(_))));
    }

    async fn destroy_removes_everything_but_the_events(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        deploy(&store, &demo, &ada, "1a2b3c4d", &[("web", "serve")]).await;
        store.add_domain(&demo, &Hostname::parse("demo.example.com").unwrap(), None, &ada).await.unwrap();
        store.destroy_app(&demo, &ada).await.unwrap();
        assert!(matches!(store.app("demo").await, Err(Error::NotFound(_))));
        // The name and the domain are free again.
        let again = app(&store, "demo", &ada).await;
        store.add_domain(&again, &Hostname::parse("demo.example.com").unwrap(), None, &ada).await.unwrap();
        assert_eq!(history(&store, &again).await, "v1 ada created initial release [succeeded]");
        let actions: Vec<String> = store.events(Some("demo"), 100).await.unwrap().into_iter().map(|e| e.action).collect();
        assert!(actions.contains(&"app.destroy".to_owned()), "{actions:?}");
    }

    async fn config_changes_make_releases(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let out = store.change_config(&demo, &set(&[("GREETING", "hi")]), &ada).await.unwrap();
        assert!(matches!(&out, ConfigOutcome::Released(r) if r.version == v(2)));
        store.change_config(&demo, &set(&[("GREETING", "hello"), ("COLOR", "red")]), &ada).await.unwrap();
        // Setting what is already set changes nothing and makes no release.
        let out = store.change_config(&demo, &set(&[("COLOR", "red")]), &ada).await.unwrap();
        assert!(matches!(&out, ConfigOutcome::Unchanged(r) if r.version == v(3)));
        // Too large: refused, and the version is not used up.
        let big = "x".repeat(domain::MAX_VALUE_BYTES);
        let keys: Vec<String> = (0..8).map(|i| format!("BIG{i}")).collect();
        let huge = ConfigChange::set(keys.iter().map(|k| (k.as_str(), big.as_str()))).unwrap();
        let err = store.change_config(&demo, &huge, &ada).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(domain::Error::ConfigTooLarge { .. })), "{err}");
        store.change_config(&demo, &ConfigChange::unset(["GREETING"]).unwrap(), &ada).await.unwrap();
        assert_eq!(
            history(&store, &demo).await,
            "v4 ada removed GREETING [succeeded]\n\
             v3 ada added COLOR; changed GREETING [succeeded]\n\
             v2 ada added GREETING [succeeded]\n\
             v1 ada created initial release [succeeded]"
        );
        let latest = store.latest_release(&demo).await.unwrap();
        assert_eq!(latest.config, BTreeMap::from([("COLOR".to_owned(), "red".to_owned())]));
        let v2 = store.release(&demo, v(2)).await.unwrap();
        assert_eq!(v2.config, BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]), "snapshots are kept per release");
    }

    async fn concurrent_config_sets_get_consecutive_versions(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (store, demo, ada) = (store.clone(), demo.clone(), ada.clone());
                tokio::spawn(async move {
                    let key = format!("KEY_{i}");
                    match store.change_config(&demo, &set(&[(key.as_str(), "x")]), &ada).await.unwrap() {
                        ConfigOutcome::Released(r) => r.version.get(),
                        ConfigOutcome::Unchanged(_) => panic!("every change sets a new key"),
                    }
                })
            })
            .collect();
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.unwrap());
        }
        versions.sort_unstable();
        assert_eq!(versions, (2..=51).collect::<Vec<u32>>());
        let latest = store.latest_release(&demo).await.unwrap();
        assert_eq!(latest.version, v(51));
        assert_eq!(latest.config.len(), 50, "no change was lost: {:?}", latest.config.keys());
    }

    async fn rollback_rules(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        store.change_config(&demo, &set(&[("A", "1")]), &ada).await.unwrap();
        let err = store.rollback(&demo, None, &ada).await.unwrap_err();
        assert_eq!(err.to_string(), "v1 has no build to roll back to; push code first with `git push slipway main`");

        let v3 = deploy(&store, &demo, &ada, "1111111aaaa", &[("web", "serve")]).await;
        assert_eq!(v3, v(3));
        store.change_config(&demo, &set(&[("A", "2")]), &ada).await.unwrap();
        let v4 = store.latest_release(&demo).await.unwrap();
        assert_eq!((v4.status, v4.commit.as_deref()), (ReleaseStatus::Pending, Some("1111111aaaa")), "a config release keeps the build");
        store.set_release_status(&demo, v(4), ReleaseStatus::Failed, Some("web crashed on boot")).await.unwrap();
        assert_eq!(store.rollback(&demo, Some(v(4)), &ada).await.unwrap_err().to_string(), "v4 failed; only releases that succeeded can be rolled back to");
        assert_eq!(store.rollback(&demo, Some(v(3)), &ada).await.unwrap_err().to_string(), "v3 is the current release already");

        deploy(&store, &demo, &ada, "2222222bbbb", &[("web", "serve2")]).await; // v5
        let rolled = store.rollback(&demo, None, &ada).await.unwrap();
        assert_eq!(rolled.version, v(6), "refused rollbacks used up no version");
        assert_eq!(rolled.summary, "ada rolled back to v3");
        assert_eq!(rolled.commit.as_deref(), Some("1111111aaaa"));
        assert_eq!(rolled.config, BTreeMap::from([("A".to_owned(), "1".to_owned())]), "the config of v3, not the latest");
        let failed = store.release(&demo, v(4)).await.unwrap();
        assert_eq!(failed.reason.as_deref(), Some("web crashed on boot"));
    }

    async fn formation(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let scale = |args: &[&str]| domain::Formation::parse_scale(args.iter().copied()).unwrap();
        // Before any build, any well-formed type can be scaled ahead of the first push.
        store.scale(&demo, &scale(&["web=2", "worker=1"]), None, &ada).await.unwrap();
        let known = [ProcessType::parse("web").unwrap()];
        let err = store.scale(&demo, &scale(&["web=3", "clock=1"]), Some(&known), &ada).await.unwrap_err();
        assert_eq!(err.to_string(), "the app has no process type \"clock\"; its processes are: web");
        let counts = store.scale(&demo, &scale(&["web=3"]), Some(&known), &ada).await.unwrap();
        let counts: Vec<String> = counts.iter().map(|p| format!("{}={}", p.process_type, p.count)).collect();
        assert_eq!(counts, ["web=3", "worker=1"], "a refused request changed nothing");
        assert_eq!(history(&store, &demo).await, "v1 ada created initial release [succeeded]", "scaling makes no release");
    }

    async fn domains(store: Store) {
        let ada = user(&store, "ada").await;
        let mallory = user(&store, "mallory").await;
        let demo = app(&store, "demo", &ada).await;
        let squat = app(&store, "squat", &mallory).await;
        let host = Hostname::parse("www.example.com").unwrap();
        let states = |domains: Vec<Domain>| -> Vec<String> {
            domains.iter().map(|d| match &d.state {
                DomainState::Pending { token } => format!("{} pending {token}", d.domain),
                DomainState::Verified { .. } => format!("{} verified", d.domain),
            }).collect()
        };

        // A stranger claiming the name first holds it pending only: the owner can still add it.
        store.add_domain(&squat, &host, Some("t-squat"), &mallory).await.unwrap();
        store.add_domain(&demo, &host, Some("t-demo"), &ada).await.unwrap();
        let err = store.add_domain(&demo, &host, Some("t-again"), &ada).await.unwrap_err();
        assert_eq!(err.to_string(), "the domain www.example.com is already added to demo");
        assert_eq!(states(store.domains(&demo).await.unwrap()), ["www.example.com pending t-demo"]);

        // Verified by one app, the name is refused to others, added or verified.
        let verified = store.verify_domain(&demo, "www.example.com", &ada).await.unwrap();
        assert!(verified.is_verified());
        let err = store.verify_domain(&squat, "www.example.com", &mallory).await.unwrap_err();
        assert_eq!(err.to_string(), "the domain www.example.com is already in use by another app: its owner must remove it first");
        assert_eq!(states(store.domains(&squat).await.unwrap()), ["www.example.com pending t-squat"], "a refused verification changed nothing");
        let other = app(&store, "other", &ada).await;
        let err = store.add_domain(&other, &host, Some("t-other"), &ada).await.unwrap_err();
        assert_eq!(err.to_string(), "the domain www.example.com is already in use");
        // Verifying again is a no-op, and the trail has one verification.
        store.verify_domain(&demo, "www.example.com", &ada).await.unwrap();
        let actions: Vec<String> = store.events(Some("demo"), 100).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions.iter().filter(|a| *a == "domains.verify").count(), 1, "{actions:?}");
        assert!(matches!(store.verify_domain(&other, "www.example.com", &ada).await, Err(Error::NotFound(_))));

        // A name the platform vouches for is verified at once.
        let own = Hostname::parse("demo.example.net").unwrap();
        assert!(store.add_domain(&demo, &own, None, &ada).await.unwrap().is_verified());

        assert!(matches!(store.remove_domain(&other, "www.example.com", &ada).await, Err(Error::NotFound(_))));
        assert_eq!(store.domains(&demo).await.unwrap().len(), 2);
        store.remove_domain(&demo, "www.example.com", &ada).await.unwrap();
        assert_eq!(states(store.domains(&demo).await.unwrap()), ["demo.example.net verified"]);
        // Once the holder lets it go, the next one may verify it.
        store.verify_domain(&squat, "www.example.com", &mallory).await.unwrap();

        // Claims cost the claimant: an app holds at most 100 domains, pending or not.
        for i in 1..100 {
            let host = Hostname::parse(&format!("d{i}.example.org")).unwrap();
            store.add_domain(&squat, &host, Some("t"), &mallory).await.unwrap();
        }
        let err = store.add_domain(&squat, &Hostname::parse("one-more.example.org").unwrap(), Some("t"), &mallory).await.unwrap_err();
        assert_eq!(err.to_string(), "squat has 100 domains, the most an app may have: remove one first");
        assert_eq!(store.domains(&squat).await.unwrap().len(), 100);
    }

    async fn builds(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let build = store.create_build(&demo, &BuildSource::Commit("abc".to_owned()), &ada).await.unwrap();
        assert_eq!(build.status, BuildStatus::Running);
        // A build that has not succeeded cannot be released.
        assert!(matches!(store.release_build(&demo, build.id, &ada).await, Err(Error::NotFound(_))));
        let done = store.finish_build(&demo, build.id, BuildStatus::Failed, &BTreeMap::new(), None).await.unwrap();
        assert_eq!(done.status, BuildStatus::Failed);
        assert!(done.finished_at.is_some());
        assert!(matches!(store.finish_build(&demo, build.id, BuildStatus::Succeeded, &BTreeMap::new(), None).await, Err(Error::NotFound(_))), "a build ends once");
        assert_eq!(store.builds(&demo, 10).await.unwrap().len(), 1);
    }

    async fn a_rebase_is_a_release_of_the_same_commit_in_the_audit_trail(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        deploy(&store, &demo, &ada, "1a2b3c4d", &[("web", "./web")]).await;
        let build = store.create_build(&demo, &BuildSource::Commit("1a2b3c4d".to_owned()), &ada).await.unwrap();
        let procfile = BTreeMap::from([("web".to_owned(), "./web".to_owned())]);
        store.finish_build(&demo, build.id, BuildStatus::Succeeded, &procfile, Some("sha256:def")).await.unwrap();
        let base = format!("sha256:{}", "ab".repeat(32));
        let release = store.release_rebased_build(&demo, build.id, &ada, "base", &base).await.unwrap();
        assert_eq!(release.summary, "ada rebased onto run image base (sha256:abababababab)");
        assert_eq!(release.commit.as_deref(), Some("1a2b3c4d"), "the same code");
        assert_eq!(release.status, ReleaseStatus::Pending);
        let built = store.build(&demo, build.id).await.unwrap();
        assert_eq!(built.image.as_deref(), Some("sha256:def"));
        let events: Vec<String> = store.events(Some("demo"), 1).await.unwrap().iter().map(|e| format!("{} {}", e.action, e.detail)).collect();
        assert_eq!(events, [format!("release.create {} ada rebased onto run image base (sha256:abababababab)", release.version)]);

        // The work that asks for it names who asked.
        let work = store.enqueue(&demo.name, &store::WorkKind::Rebase { by: "ada".into() }).await.unwrap();
        assert_eq!(store.work(work).await.unwrap().kind, store::WorkKind::Rebase { by: "ada".into() });
    }

    async fn builds_of_a_period_are_found_however_many_came_after(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let mut ids = Vec::new();
        for n in 0..6 {
            let build = store.create_build(&demo, &BuildSource::Commit(format!("c{n}")), &ada).await.unwrap();
            ids.push(build.id);
            let done = store.finish_build(&demo, build.id, BuildStatus::Succeeded, &BTreeMap::new(), Some("sha256:x")).await.unwrap();
            assert!(done.created_at <= done.finished_at.unwrap());
        }
        let third = store.build(&demo, ids[2]).await.unwrap();
        let fifth = store.build(&demo, ids[4]).await.unwrap();
        let ids_of = |builds: Vec<store::Build>| builds.into_iter().map(|b| b.id).collect::<Vec<_>>();
        let found = ids_of(store.builds_between(&demo, None, Some(third.created_at), 2).await.unwrap());
        assert_eq!(found, [ids[2], ids[1]], "newest first, from the given time back");
        let found = ids_of(store.builds_between(&demo, Some(third.created_at), Some(fifth.created_at), 10).await.unwrap());
        assert_eq!(found, [ids[4], ids[3], ids[2]], "both ends included");
        let newest = ids_of(store.builds_between(&demo, None, None, 3).await.unwrap());
        assert_eq!(newest, [ids[5], ids[4], ids[3]]);
        let since = ids_of(store.builds_between(&demo, Some(fifth.created_at), None, 10).await.unwrap());
        assert_eq!(since, [ids[5], ids[4]]);
        let other = app(&store, "other", &ada).await;
        assert!(store.builds_between(&other, None, None, 10).await.unwrap().is_empty(), "only the app's own");
    }
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnl4hM1pOmO5uGWO3i+0m0Y8ymXXJQ1s1eoF7XmKXYf ada@laptop";

/// Domains added before verification existed keep routing after the upgrade (0005 marks
/// them verified), and the upgraded table takes pending claims of the same name.
mod domains_from_before_verification {
    use super::*;

    async fn run(backend: Backend) {
        let Some(db) = TestDatabase::new(backend).await else {
            return;
        };
        let store = Store::connect(&db.url).await.unwrap();
        let dir = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let dir = format!("{}/../../migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
        let before = sqlx::migrate::Migrator::new(std::path::Path::new(&dir))
            .await
            .unwrap();
        let insert = "INSERT INTO domains (domain, app_id, created_at) VALUES ($1, $2, $3)";
        let old_app = "INSERT INTO apps (id, name, owner_id, last_version, created_at) VALUES ($1, 'demo', $2, 0, $3)";
        // A user, an app and a domain as the code of then made them, on the schema of then
        // (the user table is the same since).
        let demo = uuid::Uuid::now_v7();
        macro_rules! as_of_v4 {
            ($pool:ty) => {{
                let pool = <$pool>::connect(&db.url).await.unwrap();
                before.run_to(4, &pool).await.unwrap();
                let ada = user(&store, "ada").await;
                sqlx::query(old_app)
                    .bind(demo)
                    .bind(ada.id)
                    .bind(time::OffsetDateTime::now_utc())
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query(insert)
                    .bind("www.example.com")
                    .bind(demo)
                    .bind(time::OffsetDateTime::now_utc())
                    .execute(&pool)
                    .await
                    .unwrap();
                ada
            }};
        }
        let ada = match backend {
            Backend::Sqlite => as_of_v4!(sqlx::SqlitePool),
            Backend::Postgres => as_of_v4!(sqlx::PgPool),
        };
        store.migrate().await.unwrap();
        let demo = store.app("demo").await.unwrap();
        assert_eq!(demo.uid_slot, 0, "an app from before is numbered");
        let domains = store.domains(&demo).await.unwrap();
        assert_eq!(domains.len(), 1);
        assert!(domains[0].is_verified(), "{domains:?}");
        // Another app may claim the name pending, not take it.
        let other = app(&store, "other", &ada).await;
        assert_eq!(other.uid_slot, 1, "numbered after the apps from before");
        let host = Hostname::parse("www.example.com").unwrap();
        store
            .add_domain(
                &other,
                &Hostname::parse("api.example.com").unwrap(),
                Some("t"),
                &ada,
            )
            .await
            .unwrap();
        let err = store
            .add_domain(&other, &host, Some("t"), &ada)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the domain www.example.com is already in use"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}

// The work queue: how release managers in several processes share the work.

fn cpu_limit(cpu: &str) -> domain::SettingsChange {
    domain::SettingsChange::SetLimits(domain::Limits {
        memory: None,
        cpu: Some(domain::Cpu::parse(cpu).unwrap()),
    })
}

both_backends! {
    async fn process_settings_change_with_the_work_that_applies_them(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        assert!(store.process_settings(&demo).await.unwrap().is_empty());
        let web = ProcessType::parse("web").unwrap();
        let known = [web.clone()];
        let autoscale = domain::SettingsChange::SetAutoscale(domain::Autoscale::new(2, 5, 70).unwrap());

        // Refused: autoscale without a CPU limit, and a type the build does not declare.
        let err = store.change_process_settings(&demo, &web, &autoscale, Some(&known), true, &ada).await.unwrap_err();
        assert_eq!(err.to_string(), "autoscale needs a CPU limit on web: run `slip limits:set web --cpu 500m` first");
        let clock = ProcessType::parse("clock").unwrap();
        store.change_process_settings(&demo, &clock, &cpu_limit("1"), Some(&known), true, &ada).await.unwrap_err();
        assert!(store.process_settings(&demo).await.unwrap().is_empty());
        assert!(store.unfinished_work(&demo.name).await.unwrap().is_empty(), "a refused change queues nothing");

        let changed = store.change_process_settings(&demo, &web, &cpu_limit("500m"), Some(&known), true, &ada).await.unwrap();
        let queued = store.unfinished_work(&demo.name).await.unwrap();
        assert_eq!(queued.iter().map(|w| (Some(w.id), w.kind.clone())).collect::<Vec<_>>(), [(changed.work, store::WorkKind::Scale)]);
        let changed = store.change_process_settings(&demo, &web, &autoscale, Some(&known), true, &ada).await.unwrap();
        assert!(changed.work.is_some());
        assert_eq!(store.process_settings(&demo).await.unwrap(), changed.settings);
        assert_eq!(
            serde_json::to_value(&changed.settings).unwrap(),
            serde_json::json!({"web": {"limits": {"memory": null, "cpu": 500}, "autoscale": {"min": 2, "max": 5, "cpuPercent": 70}}})
        );

        // The same again changes nothing and queues nothing; without a runtime nothing is queued.
        let again = store.change_process_settings(&demo, &web, &autoscale, Some(&known), true, &ada).await.unwrap();
        assert_eq!((again.work, again.settings), (None, changed.settings));
        let unqueued = store.change_process_settings(&demo, &web, &domain::SettingsChange::UnsetAutoscale, None, false, &ada).await.unwrap();
        assert_eq!(unqueued.work, None);
        assert_eq!(store.unfinished_work(&demo.name).await.unwrap().len(), 2);

        let events: Vec<String> = store.events(Some("demo"), 10).await.unwrap().iter().map(|e| format!("{} {}", e.action, e.detail)).collect();
        assert_eq!(events[..3], ["autoscale.unset web", "autoscale.set web min=2 max=5 cpu=70%", "limits.set web cpu=500m"]);
        assert_eq!(history(&store, &demo).await, "v1 ada created initial release [succeeded]", "settings make no release");
    }

    async fn concurrent_settings_changes_are_none_of_them_lost(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let changes = (0..20).map(|i| {
            let (store, demo, ada) = (store.clone(), demo.clone(), ada.clone());
            tokio::spawn(async move {
                let t = ProcessType::parse(&format!("t{i}")).unwrap();
                store.change_process_settings(&demo, &t, &cpu_limit("100m"), None, true, &ada).await.unwrap();
            })
        });
        for change in changes.collect::<Vec<_>>() {
            change.await.unwrap();
        }
        assert_eq!(store.process_settings(&demo).await.unwrap().iter().count(), 20);
        assert_eq!(store.unfinished_work(&demo.name).await.unwrap().len(), 20);
    }
}

fn cidrs(list: &[&str]) -> Vec<domain::Cidr> {
    list.iter()
        .map(|c| domain::Cidr::parse(c).unwrap())
        .collect()
}

fn hosts_queued(work: &[store::Work]) -> usize {
    work.iter()
        .filter(|w| w.kind == store::WorkKind::Hosts)
        .count()
}

fn new_certificate(name: &str, names: &[&str]) -> store::NewCertificate {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    store::NewCertificate {
        name: name.to_owned(),
        chain_pem: format!("CHAIN {name}"),
        key_pem: format!("KEY {name}"),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        not_before: now,
        not_after: now + time::Duration::days(90),
        fingerprint: "ab".repeat(32),
        issuer: "CN=Test CA".to_owned(),
        subject: format!("CN={}", names[0]),
    }
}

both_backends! {
    async fn routing_switches_change_with_the_work_that_applies_them(store: Store) {
        use domain::RoutingChange;
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        assert_eq!(store.routing_settings(&demo).await.unwrap(), domain::RoutingSettings::default());

        let changed = store.change_routing(&demo, &RoutingChange::Maintenance(true), &ada).await.unwrap();
        assert!(changed.settings.maintenance);
        let queued = store.unfinished_work(&demo.name).await.unwrap();
        assert_eq!(queued.iter().map(|w| (Some(w.id), w.kind.clone())).collect::<Vec<_>>(), [(changed.work, store::WorkKind::Hosts)]);
        store.change_routing(&demo, &RoutingChange::Allow(cidrs(&["10.0.0.0/8", "192.0.2.1"])), &ada).await.unwrap();
        store.change_routing(&demo, &RoutingChange::Https { force: true, hsts: true }, &ada).await.unwrap();
        store.change_routing(&demo, &RoutingChange::Enabled(false), &ada).await.unwrap();
        let settings = store.routing_settings(&demo).await.unwrap();
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            serde_json::json!({"enabled": false, "maintenance": true, "allow": ["10.0.0.0/8", "192.0.2.1/32"], "force_https": true, "hsts": true})
        );

        // Refused: a range not on the list; nothing changes and nothing is queued.
        let before = store.unfinished_work(&demo.name).await.unwrap().len();
        let err = store.change_routing(&demo, &RoutingChange::Disallow(cidrs(&["10.0.0.0/8", "172.16.0.0/12"])), &ada).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert_eq!(store.routing_settings(&demo).await.unwrap(), settings);
        assert_eq!(store.unfinished_work(&demo.name).await.unwrap().len(), before);
        // The same again changes nothing and queues nothing.
        let again = store.change_routing(&demo, &RoutingChange::Maintenance(true), &ada).await.unwrap();
        assert_eq!((again.work, again.settings), (None, settings));
        assert_eq!(store.unfinished_work(&demo.name).await.unwrap().len(), before);

        let events: Vec<String> = store.events(Some("demo"), 4).await.unwrap().iter().map(|e| format!("{} {}", e.action, e.detail).trim().to_owned()).collect();
        assert_eq!(events, ["routing.disable", "tls.enable hsts", "whitelist.add 10.0.0.0/8,192.0.2.1/32", "maintenance.on"]);
    }

    async fn uploaded_certificates_attach_to_the_domains_they_cover(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        let other = app(&store, "other", &ada).await;
        for name in ["www.example.com", "api.example.com", "example.org"] {
            store.add_domain(&demo, &Hostname::parse(name).unwrap(), None, &ada).await.unwrap();
        }
        store.add_domain(&other, &Hostname::parse("shop.example.com").unwrap(), None, &ada).await.unwrap();

        // Added, it attaches itself to the app's domains it covers (not another app's).
        let wild = store.add_certificate(&demo, &new_certificate("wild", &["*.example.com"]), &ada).await.unwrap();
        assert_eq!(wild.domains, ["api.example.com", "www.example.com"]);
        assert_eq!(wild.names, ["*.example.com"]);
        assert_eq!(hosts_queued(&store.unfinished_work(&demo.name).await.unwrap()), 1);
        // A second covering one attaches to no domain that has one already.
        let www = store.add_certificate(&demo, &new_certificate("www", &["www.example.com"]), &ada).await.unwrap();
        assert!(www.domains.is_empty());
        let err = store.add_certificate(&demo, &new_certificate("www", &["www.example.com"]), &ada).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        let same_name = store.add_certificate(&other, &new_certificate("www", &["shop.example.com"]), &ada).await.unwrap();
        assert_eq!(same_name.domains, ["shop.example.com"], "names are per app");

        // Attach: the domain must be the app's and covered.
        let www = store.attach_certificate(&demo, "www", "www.example.com", &ada).await.unwrap();
        assert_eq!(www.domains, ["www.example.com"]);
        let err = store.attach_certificate(&demo, "www", "example.org", &ada).await.unwrap_err();
        assert!(err.to_string().contains("does not cover example.org"), "{err}");
        let err = store.attach_certificate(&demo, "wild", "shop.example.com", &ada).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        let err = store.attach_certificate(&demo, "nope", "www.example.com", &ada).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        let served: Vec<(String, String, String)> = store.attached_certificates(&demo).await.unwrap().into_iter().map(|a| (a.domain, a.name, a.pem.key_pem)).collect();
        assert_eq!(served, [
            ("api.example.com".to_owned(), "wild".to_owned(), "KEY wild".to_owned()),
            ("www.example.com".to_owned(), "www".to_owned(), "KEY www".to_owned()),
        ]);

        // Detach: only where it is attached.
        let err = store.detach_certificate(&demo, "www", "api.example.com", &ada).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        store.detach_certificate(&demo, "wild", "api.example.com", &ada).await.unwrap();
        assert_eq!(store.certificate(&demo, "wild").await.unwrap().domains, Vec::<String>::new());

        // Removed, it is detached; the domain stays.
        store.remove_certificate(&demo, "www", &ada).await.unwrap();
        assert!(store.attached_certificates(&demo).await.unwrap().is_empty());
        assert_eq!(store.domains(&demo).await.unwrap().len(), 3);
        let names: Vec<String> = store.certificates(&demo).await.unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["wild"]);
        assert!(matches!(store.remove_certificate(&demo, "www", &ada).await.unwrap_err(), Error::NotFound(_)));
        assert_eq!(hosts_queued(&store.unfinished_work(&demo.name).await.unwrap()), 5);

        // Destroying the app takes its certificates.
        store.destroy_app(&other, &ada).await.unwrap();
        let events: Vec<String> = store.events(Some("demo"), 1).await.unwrap().iter().map(|e| e.action.clone()).collect();
        assert_eq!(events, ["certs.remove"]);
    }

    async fn acme_certificates_are_kept_per_host_and_go_with_their_domain(store: Store) {
        let ada = user(&store, "ada").await;
        let demo = app(&store, "demo", &ada).await;
        store.add_domain(&demo, &Hostname::parse("www.example.com").unwrap(), None, &ada).await.unwrap();
        assert!(store.acme_certificate("www.example.com").await.unwrap().is_none());
        let later = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::days(90);
        store.save_acme_certificate(&demo, "www.example.com", "CHAIN 1", "KEY 1", later).await.unwrap();
        store.save_acme_certificate(&demo, "demo.localhost", "CHAIN d", "KEY d", later + time::Duration::days(1)).await.unwrap();
        // Renewed in place.
        let renewed = store.save_acme_certificate(&demo, "www.example.com", "CHAIN 2", "KEY 2", later).await.unwrap();
        let stored = store.acme_certificate("www.example.com").await.unwrap().unwrap();
        assert_eq!(stored, renewed);
        assert_eq!((stored.chain_pem.as_str(), stored.key_pem.as_str(), stored.app_id), ("CHAIN 2", "KEY 2", demo.id));
        let all: Vec<String> = store.acme_certificates().await.unwrap().into_iter().map(|c| c.host).collect();
        assert_eq!(all, ["www.example.com", "demo.localhost"], "soonest to expire first");
        assert_eq!(hosts_queued(&store.unfinished_work(&demo.name).await.unwrap()), 3);
        assert!(!format!("{stored:?}").contains("KEY"), "the key stays out of logs");

        store.remove_domain(&demo, "www.example.com", &ada).await.unwrap();
        assert!(store.acme_certificate("www.example.com").await.unwrap().is_none());
        assert!(store.acme_certificate("demo.localhost").await.unwrap().is_some());
    }
}

fn app_name(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

fn deploy_of(n: u32) -> store::WorkKind {
    store::WorkKind::Deploy {
        version: ReleaseVersion::new(n).unwrap(),
        awaits_ref: false,
    }
}

const LEASE: std::time::Duration = std::time::Duration::from_secs(30);
use store::Claimable;

const DONE: store::WorkOutcome = store::WorkOutcome::Succeeded { exit_status: None };

both_backends! {
    async fn an_apps_work_is_done_in_order_one_piece_at_a_time(store: Store) {
        let (x, y) = (app_name("x"), app_name("y"));
        let x1 = store.enqueue(&x, &deploy_of(2)).await.unwrap();
        let x2 = store.enqueue(&x, &store::WorkKind::Scale).await.unwrap();
        let y1 = store.enqueue(&y, &store::WorkKind::Hosts).await.unwrap();
        let first = store.claim("a", LEASE, Claimable::Any).await.unwrap().unwrap();
        assert_eq!((first.id, first.kind.clone(), first.attempts), (x1, deploy_of(2), 1));
        // x's second piece waits for its first; y's does not.
        let second = store.claim("b", LEASE, Claimable::Any).await.unwrap().unwrap();
        assert_eq!(second.id, y1);
        assert!(store.claim("b", LEASE, Claimable::Any).await.unwrap().is_none());
        assert!(store.finish_work(x1, "a", &DONE).await.unwrap());
        let third = store.claim("b", LEASE, Claimable::Any).await.unwrap().unwrap();
        assert_eq!(third.id, x2);
        assert_eq!(store.work(x1).await.unwrap().outcome, Some(DONE));
    }

    async fn work_whose_lease_lapsed_is_taken_over_and_its_old_holder_cannot_finish_it(store: Store) {
        let x = app_name("x");
        let deploying = store.enqueue(&x, &deploy_of(2)).await.unwrap();
        let short = std::time::Duration::from_millis(1);
        assert_eq!(store.claim("dead", short, Claimable::Any).await.unwrap().unwrap().id, deploying);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let again = store.claim("alive", LEASE, Claimable::Any).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (deploying, 2));
        assert!(!store.finish_work(deploying, "dead", &DONE).await.unwrap());
        assert!(!store.renew_work(deploying, "dead", LEASE).await.unwrap());
        assert!(store.renew_work(deploying, "alive", LEASE).await.unwrap());
        assert!(store.finish_work(deploying, "alive", &DONE).await.unwrap());

        // A one-off command is never run twice: cut off, it fails.
        let run = store
            .enqueue(&x, &store::WorkKind::Run { command: "rake db:migrate".into() })
            .await
            .unwrap();
        assert_eq!(store.claim("dead", short, Claimable::Any).await.unwrap().unwrap().id, run);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(store.claim("alive", LEASE, Claimable::Any).await.unwrap().is_none());
        let outcome = store.work(run).await.unwrap().outcome.unwrap();
        assert_eq!(
            outcome,
            store::WorkOutcome::Failed {
                fault: store::Fault::Failed,
                reason: "interrupted: the release manager running it stopped".into()
            }
        );
    }

    async fn unsettled_apps_are_those_with_a_running_build_or_a_waiting_release(store: Store) {
        let ada = user(&store, "ada").await;
        let (quiet, building) = (app(&store, "quiet", &ada).await, app(&store, "building", &ada).await);
        store
            .create_build(&building, &BuildSource::Commit("a".repeat(40)), &ada)
            .await
            .unwrap();
        let names: Vec<String> = store.unsettled_apps().await.unwrap().into_iter().map(|a| a.name.to_string()).collect();
        assert_eq!(names, ["building"], "{} has only its first release", quiet.name);
    }

    async fn one_off_commands_neither_wait_in_an_apps_order_nor_hold_it_up(store: Store) {
        let x = app_name("x");
        let console = store.enqueue(&x, &store::WorkKind::Run { command: "bash".into() }).await.unwrap();
        let deploying = store.enqueue(&x, &deploy_of(2)).await.unwrap();
        let other_run = store.enqueue(&x, &store::WorkKind::Run { command: "ls".into() }).await.unwrap();
        let scale = store.enqueue(&x, &store::WorkKind::Scale).await.unwrap();
        assert_eq!(store.claim("a", LEASE, Claimable::NotRuns).await.unwrap().unwrap().id, deploying);
        assert_eq!(store.claim("a", LEASE, Claimable::Any).await.unwrap().unwrap().id, console);
        assert_eq!(store.claim("a", LEASE, Claimable::Runs).await.unwrap().unwrap().id, other_run);
        // The scale waits for the deploy, not for the runs.
        assert!(store.claim("a", LEASE, Claimable::Any).await.unwrap().is_none());
        assert!(store.finish_work(deploying, "a", &DONE).await.unwrap());
        assert_eq!(store.claim("a", LEASE, Claimable::Any).await.unwrap().unwrap().id, scale);
    }

    async fn concurrent_claimers_take_each_piece_once_and_never_two_of_an_app_at_once(store: Store) {
        use std::collections::{HashMap, HashSet};
        use std::sync::{Arc, Mutex};
        let mut expected = HashSet::new();
        for n in 0..60 {
            let app = app_name(&format!("app{}", n % 6));
            expected.insert(store.enqueue(&app, &deploy_of(n + 1)).await.unwrap());
        }
        let done = Arc::new(Mutex::new(Vec::new()));
        let busy: Arc<Mutex<HashMap<AppName, store::WorkId>>> = Arc::default();
        let mut claimers = tokio::task::JoinSet::new();
        for c in 0..4 {
            let (store, done, busy) = (store.clone(), done.clone(), busy.clone());
            claimers.spawn(async move {
                let holder = format!("claimer{c}");
                let mut idle = 0;
                while idle < 20 {
                    let Some(work) = store.claim(&holder, LEASE, Claimable::Any).await.unwrap() else {
                        idle += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    };
                    idle = 0;
                    let before = busy.lock().unwrap().insert(work.app.clone(), work.id);
                    assert_eq!(before, None, "two pieces of {} at once", work.app);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    busy.lock().unwrap().remove(&work.app);
                    assert!(store.finish_work(work.id, &holder, &DONE).await.unwrap());
                    done.lock().unwrap().push(work.id);
                }
            });
        }
        while let Some(joined) = claimers.join_next().await {
            joined.unwrap();
        }
        let done = done.lock().unwrap().clone();
        assert_eq!(done.len(), expected.len(), "each piece done exactly once");
        assert_eq!(done.into_iter().collect::<HashSet<_>>(), expected);
    }

    async fn output_is_kept_in_order_up_to_its_bound(store: Store) {
        let x = app_name("x");
        let id = store.enqueue(&x, &deploy_of(2)).await.unwrap();
        let mut changes = store.changes();
        changes.borrow_and_update();
        store.append_output(id, 0, &["one".into(), "two".into()]).await.unwrap();
        assert!(changes.has_changed().unwrap(), "a waiter is woken");
        store.append_output(id, 2, &["three".into()]).await.unwrap();
        let lines = store.output(id, 1, 10).await.unwrap();
        assert_eq!(lines, vec![(1, "two".to_owned()), (2, "three".to_owned())]);
        let many: Vec<String> = (0..5).map(|n| n.to_string()).collect();
        store.append_output(id, store::MAX_OUTPUT_LINES - 2, &many).await.unwrap();
        let tail = store.output(id, store::MAX_OUTPUT_LINES - 5, 100).await.unwrap();
        assert_eq!(tail.len(), 2, "nothing is kept past the bound: {tail:?}");
    }

    async fn a_lease_is_held_by_one_until_it_lapses_or_is_given_up(store: Store) {
        assert!(store.acquire_lease("runtime", "a", LEASE).await.unwrap());
        assert!(store.acquire_lease("runtime", "a", LEASE).await.unwrap(), "renewed");
        assert!(!store.acquire_lease("runtime", "b", LEASE).await.unwrap());
        assert_eq!(store.lease_holder("runtime").await.unwrap().as_deref(), Some("a"));
        store.release_lease("runtime", "a").await.unwrap();
        assert!(store.acquire_lease("runtime", "b", std::time::Duration::from_millis(1)).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(store.lease_holder("runtime").await.unwrap(), None);
        assert!(store.acquire_lease("runtime", "a", LEASE).await.unwrap(), "lapsed, taken over");
    }
}

/// A change made through one store wakes the waiters of another on the same PostgreSQL, as a
/// release manager in another process is woken by `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_by_another_process_wakes_waiters_on_postgres() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let one = Store::open(&db.url).await.unwrap();
    let other = Store::open(&db.url).await.unwrap();
    let mut changes = other.changes();
    changes.borrow_and_update();
    // The listener connects in the background; a change before it listens is not announced.
    let woken = async {
        loop {
            one.enqueue(&app_name("x"), &store::WorkKind::Hosts)
                .await
                .unwrap();
            if tokio::time::timeout(std::time::Duration::from_millis(200), changes.changed())
                .await
                .is_ok()
            {
                return;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), woken)
        .await
        .expect("woken by the other store's NOTIFY within 10 s");
}
