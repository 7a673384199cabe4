//! Tests run by the platform, end to end: a push to an app in a pipeline runs its tests
//! (app.json's scripts.test, with app.json's env and never the app's config) before the build
//! counts; a failing test rejects the push with nothing released and its output kept for
//! `slip ci:info`; a passing one deploys; `slip ci:run` tests HEAD, or a build, without
//! deploying.

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, http_get, python_app};

fn json(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The app's tests: they print what they see and exit with the status in `exit_code`.
const TEST_PY: &str = r#"import os, sys
print("testing run", os.environ["SLIPWAY_TEST_RUN"], "suite", os.environ.get("SUITE"), "CI", os.environ.get("CI"), "greeting", os.environ.get("GREETING", "unset"), flush=True)
sys.exit(int(open("exit_code").read()))
"#;

fn commit(user: &User, exit_code: &str, message: &str) {
    std::fs::write(user.cwd.join("exit_code"), exit_code).unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", message])
        .success();
}

#[tokio::test]
async fn tests_gate_a_pipelines_pushes_and_run_without_deploying() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let dir = ada.home().join("demo");
        std::fs::create_dir_all(&dir).unwrap();
        ada.cwd = dir.clone();
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(dir.join("app.py"), python_app("v1")).unwrap();
        std::fs::write(dir.join("test.py"), TEST_PY).unwrap();
        // app.json's test script wins over the Procfile's test: type.
        std::fs::write(dir.join("Procfile"), "web: python3 app.py\ntest: false\n").unwrap();
        std::fs::write(
            dir.join("app.json"),
            r#"{"scripts": {"test": "python3 test.py"}, "environments": {"test": {"env": {"SUITE": "unit"}}}}"#,
        )
        .unwrap();
        ada.slip(&["create", "demo"]).success();
        ada.slip(&["config:set", "GREETING=secret"]).success();
        ada.slip(&["pipelines:create", "shop"]).success();
        ada.slip(&["pipelines:add", "shop", "-a", "demo", "--stage", "staging"]).success();
        let releases = || json(ada.slip(&["releases", "--json"]).success());
        let before = releases();

        // A failing test rejects the push: the build failed, nothing released.
        commit(&ada, "1", "failing");
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(!push.ok, "{}", push.stderr);
        for line in [
            "remote: -----> Running tests (test run #1): python3 test.py",
            "remote: testing run 1 suite unit CI true greeting unset",
            "remote:  !     tests failed (exit 1): see `slip ci:info 1`; nothing was released",
        ] {
            assert!(push.stderr.contains(line), "{line:?} in {}", push.stderr);
        }
        assert_eq!(releases().len(), before.len(), "no release");
        let builds = json(ada.slip(&["builds", "--json"]).success());
        assert_eq!(builds[0]["status"], "failed");
        let info = ada.slip(&["ci:info", "1"]);
        let info = info.success();
        assert!(info.contains("failed (exit 1)"), "{info}");
        assert!(info.contains("testing run 1 suite unit CI true greeting unset"), "{info}");

        // A passing test deploys.
        commit(&ada, "0", "passing");
        let deployed = ada.push_deployed();
        assert!(deployed.contains("remote: -----> Tests passed (test run #2)"), "{deployed}");
        assert_eq!(releases().len(), before.len() + 1);
        let (status, body) = http_get(&platform.router, "demo.localhost", "/").unwrap();
        assert_eq!(status, 200);
        assert!(body.starts_with("secret v1 web."), "{body}");

        // ci:run tests HEAD without deploying; the exit status is the test's.
        commit(&ada, "0", "tested only");
        let run = ada.slip(&["ci:run"]);
        let shown = format!("{}{}", run.stdout, run.stderr);
        assert!(run.ok, "{shown}");
        assert!(shown.contains("Running tests (test run #3): python3 test.py"), "{shown}");
        assert!(shown.contains("refs/slipway/ci built and tested; nothing was released"), "{shown}");
        commit(&ada, "3", "fails only");
        let failed = ada.slip(&["ci:run"]);
        assert!(!failed.ok, "{}", failed.stderr);
        assert!(failed.stderr.contains("tests failed (exit 3): see `slip ci:info 4`"), "{}", failed.stderr);
        assert_eq!(releases().len(), before.len() + 1, "ci:run released nothing");

        // A build tested again through the API: the deployed one, which passes.
        let deployed_build = json(ada.slip(&["builds", "--json"]).success())
            .into_iter()
            .find(|b| b["status"] == "succeeded")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let again = ada.slip(&["ci:run", "--build", &deployed_build]);
        assert!(again.success().contains("-----> Running tests (test run #5): python3 test.py"), "{}", again.stdout);
        let runs = json(ada.slip(&["ci", "--json"]).success());
        let summary: Vec<(u64, &str, &str)> = runs
            .iter()
            .map(|r| (r["number"].as_u64().unwrap(), r["status"].as_str().unwrap(), r["cause"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [(5, "succeeded", "api"), (4, "failed", "ci-run"), (3, "succeeded", "ci-run"), (2, "succeeded", "push"), (1, "failed", "push")]
        );
        let events = ada.slip(&["events"]);
        assert!(events.success().contains("#1 failed exit 1"), "{}", events.stdout);
    })
    .await
    .unwrap();
}
