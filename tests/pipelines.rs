//! Pipelines end to end, on a real `slipwayd up`: a push to staging, a promotion to a
//! protected production that waits for another collaborator's approval, the same image
//! running in both with each app's own config, and every step in the audit trail.

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, http_get, python_app};

/// Makes the app directory `dir` a git repository with the web app and `procfile`.
fn write_app(user: &mut User, dir: &str, code: &str, procfile: &str) {
    let path = user.home().join(dir);
    if !path.join(".git").exists() {
        std::fs::create_dir_all(&path).unwrap();
        user.cwd = path.clone();
        user.git(&["init", "-q", "-b", "main"]).success();
    }
    std::fs::write(path.join("app.py"), python_app(code)).unwrap();
    std::fs::write(path.join("Procfile"), procfile).unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", code])
        .success();
}

#[track_caller]
fn body(platform: &Platform, app: &str) -> String {
    let (status, body) = http_get(&platform.router, &format!("{app}.localhost"), "/")
        .expect("a response from the router");
    assert_eq!(status, 200, "{body}");
    body
}

/// The image the app's newest build runs.
fn newest_image(user: &User, app: &str) -> String {
    let builds = user.slip(&["builds", "-a", app, "--json"]).json();
    builds[0]["image"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_build_goes_from_staging_to_a_protected_production_with_another_persons_approval() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let bob = User::registered_by(&platform, &ada, "bob");
        write_app(
            &mut ada,
            "demo-staging",
            "code1",
            "release: echo migrating for $GREETING\nweb: python3 app.py\n",
        );
        ada.slip(&["create", "demo-staging"]).success();
        ada.slip(&["create", "demo", "--no-remote"]).success();
        for (app, greeting) in [("demo-staging", "staging"), ("demo", "production")] {
            ada.slip(&["perms:add", "bob", "-a", app]).success();
            ada.slip(&["config:set", &format!("GREETING={greeting}"), "-a", app])
                .success();
        }
        ada.slip(&["pipelines:create", "demo"]).success();
        ada.slip(&["pipelines:add", "demo", "-a", "demo-staging", "--stage", "staging"])
            .success();
        ada.slip(&["pipelines:add", "demo", "-a", "demo", "--stage", "production"])
            .success();
        let protect = ada.slip(&["pipelines:protect", "production", "--pipeline", "demo"]);
        assert!(
            protect.success().contains("wait for another collaborator's approval"),
            "{}",
            protect.stdout
        );

        // The platform runs staging's tests on each push: a failure rejects it.
        std::fs::write(
            ada.cwd.join("app.json"),
            r#"{"scripts": {"test": "echo checking; test -f tests-pass"}}"#,
        )
        .unwrap();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "tests"]).success();
        let failed = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(!failed.ok, "{}", failed.stderr);
        assert!(
            failed
                .stderr
                .contains("tests failed (exit 1): see `slip ci:info 1`; nothing was released"),
            "{}",
            failed.stderr
        );
        std::fs::write(ada.cwd.join("tests-pass"), "").unwrap();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "tests pass"]).success();
        let passed = ada.push_deployed();
        assert!(passed.contains("Tests passed (test run #2)"), "{passed}");
        assert_eq!(body(&platform, "demo-staging"), "staging code1 web.1\n");

        // The promotion waits for approval; its requester cannot give it.
        let asked = ada.slip(&["pipelines:promote", "-a", "demo-staging"]);
        assert!(
            asked.success().contains(
                "demo is protected: promotion #1 (demo-staging v3 to demo) waits for another collaborator's approval (`slip promotions:approve 1`)"
            ),
            "{}",
            asked.stdout
        );
        let own = ada.slip(&["promotions:approve", "1"]);
        assert!(
            own.failure()
                .contains("you asked for promotion #1: another collaborator of demo must approve it"),
            "{}",
            own.stderr
        );
        let (status, _) = http_get(&platform.router, "demo.localhost", "/").unwrap();
        assert_eq!(status, 503, "nothing runs in production yet");

        // Another collaborator approves: production runs the same image with its own config,
        // its release phase run there.
        let approved = bob.slip(&["promotions:approve", "1"]);
        assert!(
            approved
                .success()
                .contains("Approving promotion #1 (demo-staging v3 to demo)... done, v3"),
            "{}",
            approved.stdout
        );
        assert_eq!(body(&platform, "demo"), "production code1 web.1\n");
        assert_eq!(newest_image(&ada, "demo"), newest_image(&ada, "demo-staging"));
        let release = ada
            .slip(&["releases:info", "v3", "-a", "demo", "--json"])
            .json();
        let staged = ada
            .slip(&["releases:info", "v3", "-a", "demo-staging", "--json"])
            .json();
        let digest = release["release"]["image"].as_str().unwrap();
        assert!(digest.contains("@sha256:") || digest.starts_with("sha256:"), "{digest}");
        assert_eq!(release["release"]["image"], staged["release"]["image"], "the same image in both");
        assert!(release["release"]["release_phase"]["started_at"].is_string(), "{release}");
        let summary = release["release"]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("ada promoted demo-staging v3 (") && summary.ends_with("), approved by bob"),
            "{summary}"
        );
        assert_eq!(release["config"]["GREETING"], "production");
        let logs = ada.slip(&["logs", "-a", "demo", "-p", "release"]);
        assert!(
            logs.success().contains("migrating for production"),
            "{}",
            logs.stdout
        );
        let info = ada.slip(&["pipelines:info", "demo"]);
        assert!(
            info.success().contains("demo-staging: up to date"),
            "{}",
            info.stdout
        );

        // The pipeline's audit trail has each step, with who and when.
        let events = bob
            .slip(&["events", "--pipeline", "demo", "--json"])
            .json();
        let steps: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| {
                let action = e["action"].as_str().unwrap();
                action.starts_with("promotion.") || action.starts_with("pipeline.")
                    || (action == "release.create" && e["detail"].as_str().unwrap().contains("promoted"))
            })
            .map(|e| {
                assert!(e["created_at"].as_str().is_some_and(|t| t.starts_with("20")), "{e}");
                format!(
                    "{} {} {}",
                    e["actor"].as_str().unwrap(),
                    e["action"].as_str().unwrap(),
                    e["app"].as_str().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                "ada pipeline.create -",
                "ada pipeline.add demo-staging",
                "ada pipeline.add demo",
                "ada pipeline.stage -",
                "ada promotion.request demo",
                "ada promotion.approve-refused demo",
                "ada release.create demo",
                "bob promotion.approve demo",
            ],
            "{events}"
        );
        let releases: Value = ada.slip(&["releases", "-a", "demo", "--json"]).json();
        assert_eq!(releases[0]["status"], "succeeded", "{releases}");

        // Staging moves on by a commit: production is one release and one commit behind.
        write_app(
            &mut ada,
            "demo-staging",
            "code2",
            "release: echo migrating for $GREETING\nweb: python3 app.py\n",
        );
        ada.push_deployed();
        let info = ada.slip(&["pipelines:info", "-a", "demo"]);
        assert!(
            info.success().contains("demo-staging: 1 release, 1 commit"),
            "{}",
            info.stdout
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_good_deploy_in_an_auto_promoting_stage_goes_on_by_itself() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        write_app(&mut ada, "shop-dev", "first", "web: python3 app.py\n");
        ada.slip(&["create", "shop-dev"]).success();
        ada.slip(&["create", "shop-qa", "--no-remote"]).success();
        ada.slip(&["config:set", "GREETING=qa", "-a", "shop-qa"])
            .success();
        ada.slip(&["pipelines:create", "shop"]).success();
        ada.slip(&[
            "pipelines:add",
            "shop",
            "-a",
            "shop-dev",
            "--stage",
            "development",
        ])
        .success();
        ada.slip(&[
            "pipelines:add",
            "shop",
            "-a",
            "shop-qa",
            "--stage",
            "staging",
        ])
        .success();
        ada.slip(&["pipelines:auto-promote", "development", "-a", "shop-dev"])
            .success();

        ada.push_deployed();
        slipway_e2e::eventually(
            std::time::Duration::from_secs(30),
            "shop-qa serves the promoted build",
            || {
                http_get(&platform.router, "shop-qa.localhost", "/")
                    .is_ok_and(|(status, body)| status == 200 && body == "qa first web.1\n")
            },
        );
        let promotions = ada.slip(&["promotions", "-p", "shop", "--json"]).json();
        assert_eq!(promotions[0]["status"], "done", "{promotions}");
        assert_eq!(promotions[0]["source_app"], "shop-dev");
        assert_eq!(promotions[0]["requested_by"], "ada");
        // A config change is no new build: it stays where it is.
        ada.slip(&["config:set", "GREETING=dev", "-a", "shop-dev"])
            .success();
        let releases = ada.slip(&["releases", "-a", "shop-qa", "--json"]).json();
        assert_eq!(releases.as_array().unwrap().len(), 3, "{releases}");
        let events = ada.slip(&["events", "-a", "shop-qa", "--json"]).json();
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "promotion.auto"),
            "{events}"
        );
    })
    .await
    .unwrap();
}
