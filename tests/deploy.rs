//! Deploy and run, end to end: pushed apps served by the router, config changes, rollbacks,
//! scaling, restarts, logs and one-off processes; failed releases that leave the previous
//! one serving; no request lost under load while releases change; and every app back on its
//! release after `kill -9`. The apps are small Python web servers run by the local runtime.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_e2e::{
    Backend, PASSWORD, Platform, User, binary, both_backends, eventually, http_get, python_app,
};

/// Registers the first user, adds their key, and puts them in a new git repository holding
/// the app (at `code`), created on the platform as `app`.
fn owner_with_app(platform: &Platform, app: &str, code: &str) -> User {
    let mut user = User::registered(platform, "ada");
    add_app(&mut user, app, code);
    user
}

fn add_app(user: &mut User, app: &str, code: &str) {
    let dir = user.home().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir;
    user.git(&["init", "-q", "-b", "main"]).success();
    write_app(user, code, "web: python3 app.py\n");
    user.slip(&["create", app]).success();
}

fn write_app(user: &User, code: &str, procfile: &str) {
    std::fs::write(user.cwd.join("app.py"), python_app(code)).unwrap();
    std::fs::create_dir_all(user.cwd.join(".profile.d")).unwrap();
    std::fs::write(
        user.cwd.join(".profile.d/set.sh"),
        "export FROM_PROFILE=sourced\n",
    )
    .unwrap();
    std::fs::write(user.cwd.join("Procfile"), procfile).unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", code])
        .success();
}

/// `GET path` through the router with `Host: host`: the status and body.
fn get(router: &str, host: &str, path: &str) -> (u16, String) {
    http_get(router, host, path).expect("a response from the router")
}

/// The body of a 200 from the app at `demo.localhost`, asserting the status.
#[track_caller]
fn body(platform: &Platform, app: &str) -> String {
    let (status, body) = get(&platform.router, &format!("{app}.localhost"), "/");
    assert_eq!(status, 200, "{body}");
    body
}

fn processes(user: &User, app: &str) -> Vec<Value> {
    user.slip(&["ps", "-a", app, "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn release_status(user: &User, app: &str, version: u32) -> (String, String) {
    let info = user
        .slip(&["releases:info", &format!("v{version}"), "-a", app, "--json"])
        .json();
    (
        info["release"]["status"].as_str().unwrap().to_owned(),
        info["release"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

both_backends! {
    fn an_apps_day_push_config_rollback_scale_logs_run(platform: Platform) {
        let ada = owner_with_app(&platform, "demo", "code1");
        // Nothing deployed yet: the router says so.
        let (status, page) = get(&platform.router, "demo.localhost", "/");
        assert_eq!(status, 503, "{page}");
        assert!(page.contains("demo has no running web process"), "{page}");
        let (status, _) = get(&platform.router, "nobody.localhost", "/");
        assert_eq!(status, 404);

        let output = ada.push_deployed();
        assert!(output.contains("v2 is up: web.1"), "{output}");
        assert_eq!(body(&platform, "demo"), "none code1 web.1\n");
        let v2 = ada.slip(&["releases:info", "v2", "--json"]).json();
        assert_eq!(v2["release"]["status"], "succeeded");
        assert!(v2["release"]["deploy_started_at"].is_string() && v2["release"]["deploy_finished_at"].is_string(), "{v2}");

        // A config change restarts the app with the new value.
        let set = ada.slip(&["config:set", "GREETING=hi"]);
        assert!(set.success().contains("done, v3"), "{}", set.stdout);
        assert_eq!(body(&platform, "demo"), "hi code1 web.1\n");

        // New code keeps the config.
        write_app(&ada, "code2", "web: python3 app.py\n");
        ada.push_deployed();
        assert_eq!(body(&platform, "demo"), "hi code2 web.1\n");

        // A rollback serves the old code and the old config.
        let back = ada.slip(&["rollback", "v2"]);
        assert!(back.success().contains("done, v5"), "{}", back.stdout);
        assert_eq!(body(&platform, "demo"), "none code1 web.1\n");

        // Three web processes, each answering in turn.
        ada.slip(&["ps:scale", "web=3"]).success();
        eventually(Duration::from_secs(30), "three web processes are up", || {
            processes(&ada, "demo").iter().filter(|p| p["state"] == "up").count() == 3
        });
        let mut answered: Vec<String> = (0..9).map(|_| body(&platform, "demo")).collect();
        answered.sort();
        answered.dedup();
        assert_eq!(answered, ["none code1 web.1\n", "none code1 web.2\n", "none code1 web.3\n"]);
        let table = ada.slip(&["ps"]);
        assert!(table.success().contains("web.3    up     v5"), "{}", table.stdout);

        // A restart replaces the processes and loses none of them.
        let before: Vec<Value> = processes(&ada, "demo");
        ada.slip(&["ps:restart", "web"]).success();
        eventually(Duration::from_secs(30), "the restarted processes are the only ones", || {
            let now = processes(&ada, "demo");
            now.len() == 3 && now.iter().all(|p| p["state"] == "up" && !before.contains(p))
        });
        assert_eq!(ada.slip(&["ps:restart", "clock"]).failure(), "error: no process of type clock in v5");

        // `logs -f` shows requests as they happen, from the router and from the app.
        let mut follow = std::process::Command::new(binary("slip"))
            .args(["logs", "-f", "-n", "0", "-a", "demo"])
            .env("HOME", ada.home())
            .env("XDG_CONFIG_HOME", ada.home().join(".config"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.by_ref().map_while(Result::ok) {
                if seen_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut from_router, mut from_app) = (false, false);
        while !(from_router && from_app) {
            assert!(Instant::now() < deadline, "logs -f did not show the request");
            let (status, _) = get(&platform.router, "demo.localhost", "/watched");
            assert_eq!(status, 200);
            while let Ok(line) = seen_rx.recv_timeout(Duration::from_millis(300)) {
                from_router |= line.contains(" router: GET /watched 200");
                from_app |= line.contains(" web.") && line.ends_with(": GET /watched");
            }
        }
        follow.kill().unwrap();
        follow.wait().unwrap();
        let router_only = ada.slip(&["logs", "-n", "5", "--process", "router"]);
        assert!(router_only.success().lines().all(|l| l.contains(" router: ")), "{}", router_only.stdout);
        assert_eq!(router_only.stdout.lines().count(), 5);

        // A one-off process: the release's environment, its output, its exit status.
        ada.slip(&["config:set", "WHO=ada"]).success();
        let run = ada.slip(&["run", "echo $WHO from $DYNO in $HOME; ls app.py; exit 3"]);
        assert_eq!(run.code, Some(3), "{run:?}");
        assert_eq!(run.stdout, "ada from run.1 in /workspace\napp.py\n");
        assert_eq!(ada.slip(&["run", "echo $FROM_PROFILE"]).success(), "sourced\n");
        // Sandboxed: the platform's data is out of sight, the image is read-only, /tmp is its own.
        let data = platform.data_dir.display().to_string();
        assert!(!ada.slip(&["run", &format!("ls {data}")]).ok, "a process can see {data}");
        assert!(!ada.slip(&["run", "touch app.py"]).ok, "the image is writable");
        ada.slip(&["run", "touch /tmp/scratch"]).success();
        let run = ada.slip(&["run", "--", "python3", "-c", "print(6 * 7)"]);
        assert_eq!(run.success(), "42\n");
        assert_eq!(ada.slip(&["run", " "]).failure(), "error: give a command to run");
    }

    fn kill_9_loses_nothing_and_every_app_comes_back(platform: Platform) {
        let mut platform = platform;
        let mut ada = owner_with_app(&platform, "one", "first");
        ada.push_deployed();
        ada.slip(&["config:set", "GREETING=kept"]).success();
        add_app(&mut ada, "two", "second");
        ada.push_deployed();
        ada.slip(&["ps:scale", "web=2", "-a", "two"]).success();
        eventually(Duration::from_secs(30), "two web processes are up", || {
            processes(&ada, "two").iter().filter(|p| p["state"] == "up").count() == 2
        });
        let releases_before = (ada.slip(&["releases", "-a", "one"]).stdout, ada.slip(&["releases", "-a", "two"]).stdout);

        platform.kill();
        platform.boot();
        ada.slip(&["login", &platform.api_url, "--username", "ada", "--password", PASSWORD]).success();
        eventually(Duration::from_secs(60), "both apps serve again", || {
            get(&platform.router, "one.localhost", "/").0 == 200
                && processes(&ada, "two").iter().filter(|p| p["state"] == "up").count() == 2
        });
        assert_eq!(body(&platform, "one"), "kept first web.1\n");
        assert!(body(&platform, "two").starts_with("none second web."));
        let releases_after = (ada.slip(&["releases", "-a", "one"]).stdout, ada.slip(&["releases", "-a", "two"]).stdout);
        assert_eq!(releases_before, releases_after);
        // The log outlives the server.
        let logs = ada.slip(&["logs", "-a", "one", "-p", "slipway"]);
        assert!(logs.success().contains("slipway: v3 deployed"), "{}", logs.stdout);
        assert!(logs.stdout.contains("slipway: v3 started again"), "{}", logs.stdout);
        // And it keeps working: a new release deploys.
        ada.slip(&["config:set", "GREETING=after", "-a", "one"]).success();
        assert_eq!(body(&platform, "one"), "after first web.1\n");
    }
}

#[tokio::test]
async fn failed_releases_leave_the_previous_one_serving() {
    let platform = Platform::start_with(Backend::Sqlite, &["--boot-timeout", "3"])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let ada = owner_with_app(&platform, "demo", "good");
        ada.push_deployed();
        assert_eq!(body(&platform, "demo"), "none good web.1\n");

        // A web process that crashes on boot: the push is refused, the release failed.
        write_app(&ada, "crash", "web: python3 -c 'import sys; print(\"boom\"); sys.exit(4)'\n");
        let refused = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(!refused.ok);
        assert!(refused.stderr.contains("v3 failed: web.1 exited with status 4 before it was healthy; the previous release keeps serving"), "{}", refused.stderr);
        assert_eq!(release_status(&ada, "demo", 3), ("failed".to_owned(), "web.1 exited with status 4 before it was healthy".to_owned()));
        assert_eq!(body(&platform, "demo"), "none good web.1\n");
        let logs = ada.slip(&["logs", "--process", "web"]);
        assert!(logs.success().contains("web.1: boom"), "{}", logs.stdout);

        // A release phase that fails: nothing is deployed.
        write_app(&ada, "migrate", "release: echo migrating; exit 7\nweb: python3 app.py\n");
        let refused = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(refused.stderr.contains("migrating"), "{}", refused.stderr);
        assert!(refused.stderr.contains("v4 failed: the release command exited with status 7; nothing was deployed"), "{}", refused.stderr);
        assert_eq!(release_status(&ada, "demo", 4).0, "failed");
        assert_eq!(body(&platform, "demo"), "none good web.1\n");
        assert!(ada.slip(&["logs", "-p", "release"]).success().contains("release: migrating"));

        // A release phase that passes runs before the new processes start.
        write_app(&ada, "migrated", "release: echo migrated in $DYNO\nweb: python3 app.py\n");
        let output = ada.push_deployed();
        assert!(output.contains("migrated in release"), "{output}");
        assert_eq!(body(&platform, "demo"), "none migrated web.1\n");

        // A health check path that does not answer 2xx/3xx fails the release.
        let unhealthy = ada.slip(&["config:set", "SLIPWAY_HEALTHCHECK_PATH=/health", "HEALTH_STATUS=500"]);
        assert!(unhealthy.failure().contains("release v6 of demo failed: web.1 did not answer /health with 2xx or 3xx within 3s; the previous release keeps serving"), "{}", unhealthy.stderr);
        assert_eq!(body(&platform, "demo"), "none migrated web.1\n");
        let healthy = ada.slip(&["config:set", "HEALTH_STATUS=204"]);
        assert!(healthy.success().contains("done, v7"));

        // Each release records its release phase: v4's started and never finished (it
        // failed), v5's ran; v2 had none.
        let phase = |v: &str| ada.slip(&["releases:info", v, "--json"]).json()["release"]["release_phase"].clone();
        assert!(phase("v4")["started_at"].is_string() && phase("v4")["finished_at"].is_null(), "{}", phase("v4"));
        assert!(phase("v5")["started_at"].is_string() && phase("v5")["finished_at"].is_string(), "{}", phase("v5"));
        assert!(phase("v2").is_null());
        let info = ada.slip(&["releases:info", "v4"]);
        assert!(info.success().contains("did not finish (its data changes may be partial)"), "{}", info.stdout);
        assert!(info.stdout.contains("Image:          "), "{}", info.stdout);

        // Rolling back to a failed release is refused. To the previous good one, v5, it
        // crosses v6 and v7, whose release command ran (a config change runs it too): with
        // no terminal to ask at, and under --json, it is refused until --confirm names the app.
        assert!(ada.slip(&["rollback", "v4"]).failure().contains("v4"));
        let unconfirmed = ada.slip(&["rollback"]);
        assert_eq!(
            unconfirmed.failure(),
            "error: rolling back to v5 crosses v6 and v7, whose release commands ran: their data changes (migrations) are not undone, and v5's own release command, if it has one, runs again; to go ahead, add `--confirm demo`"
        );
        assert!(ada.slip(&["rollback", "--json"]).failure().ends_with("add `--confirm demo`"));
        assert!(ada.slip(&["rollback", "--confirm", "dmeo"]).failure().contains("--confirm dmeo does not match the app demo; nothing was rolled back"));
        assert_eq!(ada.slip(&["releases", "--json"]).json().as_array().unwrap().len(), 7, "refusals make no release");
        let rolled = ada.slip(&["rollback", "--confirm", "demo"]);
        assert!(rolled.success().contains("Rolling back demo... done, v8"), "{}", rolled.stdout);
        assert_eq!(body(&platform, "demo"), "none migrated web.1\n");
        let releases = ada.slip(&["releases", "--json"]).json();
        let statuses: Vec<&str> = releases.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["succeeded", "succeeded", "failed", "succeeded", "failed", "failed", "succeeded", "succeeded"]);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_process_that_keeps_crashing_shows_as_crashed() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let ada = owner_with_app(&platform, "demo", "code");
        write_app(
            &ada,
            "worker",
            "web: python3 app.py\nworker: echo working; exit 2\n",
        );
        ada.push_deployed();
        ada.slip(&["ps:scale", "worker=1"]).success();
        eventually(
            Duration::from_secs(30),
            "the worker has crashed twice",
            || {
                processes(&ada, "demo").iter().any(|p| {
                    p["name"] == "worker.1"
                        && p["state"] == "crashed"
                        && p["restarts"].as_u64() >= Some(2)
                })
            },
        );
        let logs = ada.slip(&["logs", "-p", "worker"]);
        assert!(
            logs.success()
                .contains("worker.1: Process exited with status 2"),
            "{}",
            logs.stdout
        );
        // The web process is unaffected.
        assert_eq!(body(&platform, "demo"), "none worker web.1\n");
        ada.slip(&["ps:scale", "worker=0"]).success();
        eventually(Duration::from_secs(30), "the worker is gone", || {
            processes(&ada, "demo")
                .iter()
                .all(|p| p["type"] != "worker")
        });
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_steady_load_during_deploys_and_rollbacks_loses_no_request() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let ada = owner_with_app(&platform, "demo", "code0");
        ada.push_deployed();
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = (0..4)
            .map(|_| {
                let router = platform.router.clone();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        seen.push(get(&router, "demo.localhost", "/"));
                    }
                    seen
                })
            })
            .collect();
        for i in 1..=10 {
            if i % 2 == 0 {
                write_app(&ada, &format!("code{i}"), "web: python3 app.py\n");
                ada.push_deployed();
            } else {
                ada.slip(&["config:set", &format!("GREETING=g{i}")])
                    .success();
            }
        }
        for _ in 0..10 {
            ada.slip(&["rollback"]).success();
        }
        ada.slip(&["ps:scale", "web=2"]).success();
        ada.slip(&["ps:restart"]).success();
        stop.store(true, Ordering::Relaxed);
        let seen: Vec<(u16, String)> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let failed: Vec<&(u16, String)> =
            seen.iter().filter(|(status, _)| *status != 200).collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed, such as {:?}",
            failed.len(),
            seen.len(),
            failed.first()
        );
        let versions: std::collections::BTreeSet<&str> = seen
            .iter()
            .filter_map(|(_, b)| b.split_whitespace().nth(1))
            .collect();
        assert!(versions.len() >= 3, "the load saw only {versions:?}");
        let releases = ada.slip(&["releases", "-n", "25", "--json"]).json();
        assert!(
            releases
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "succeeded"),
            "{releases}"
        );
    })
    .await
    .unwrap();
}
