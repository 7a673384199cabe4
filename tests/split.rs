//! The platform as separate processes on one PostgreSQL: two `slipwayd api`, two `slipwayd
//! gateway` and two `slipwayd releaser` (one active, one standing by) sharing a data
//! directory, as on one machine. Pushes and config changes through both APIs and both
//! gateways are each deployed once, their output streamed to the pusher from the release
//! manager's process; `kill -9` of the active release manager in the middle of a deploy hands
//! the apps to the standby, which finishes the deploy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use slipway_e2e::{Cluster, PASSWORD, User, eventually, http_get};

/// A web app that answers `<GREETING> <code>`; it takes `BOOT` seconds to listen.
fn app_py(code: &str) -> String {
    format!(
        r#"import os, time, http.server
time.sleep(float(os.environ.get("BOOT", "0")))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s {code}\n" % os.environ.get("GREETING", "none")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

fn commit(user: &User, code: &str) {
    std::fs::write(user.cwd.join("app.py"), app_py(code)).unwrap();
    std::fs::write(user.cwd.join("Procfile"), "web: python3 app.py\n").unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", code]).success();
}

/// How often the release manager recorded each release of `app` as deployed, from its log.
fn deployed(data_dir: &Path, app: &str) -> BTreeMap<u32, usize> {
    let log = std::fs::read_to_string(data_dir.join("logs").join(format!("{app}.log")))
        .unwrap_or_default();
    let mut counts = BTreeMap::new();
    // Each line is `<time>\t<source>\t<text>`.
    for line in log.lines() {
        let mut fields = line.splitn(3, '\t');
        let (_, source, text) = (fields.next(), fields.next(), fields.next());
        if source != Some("slipway") {
            continue;
        }
        if let Some(version) = text
            .and_then(|t| t.strip_prefix('v'))
            .and_then(|t| t.strip_suffix(" deployed"))
        {
            *counts.entry(version.parse().unwrap()).or_default() += 1;
        }
    }
    counts
}

fn release_statuses(user: &User, app: &str) -> Vec<(u32, String)> {
    let releases = user.slip(&["releases", "-a", app, "--json"]).json();
    releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["version"].as_u64().unwrap() as u32,
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A second login of `username` on another API, sharing nothing with the first.
fn logged_in(api: &str, username: &str) -> User {
    let user = User::new();
    user.slip(&["login", api, "--username", username, "--password", PASSWORD])
        .success();
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_deploy_each_release_once_and_a_standby_takes_over() {
    let Some(cluster) = Cluster::start(2, 2, 3).await else {
        return;
    };
    tokio::task::spawn_blocking(move || run(cluster))
        .await
        .unwrap();
}

fn run(mut cluster: Cluster) {
    let owner = {
        let user = User::new();
        user.slip(&[
            "register",
            &cluster.apis[0],
            "--username",
            "ada",
            "--password",
            PASSWORD,
        ])
        .success();
        let key = user.ssh_key();
        user.slip(&["keys:add", &format!("{}.pub", key.display())])
            .success();
        user
    };
    let other_api = logged_in(&cluster.apis[1], "ada");
    let apps: Vec<String> = (0..5).map(|n| format!("app{n}")).collect();
    // Each app in its own repository; created through either API, pushed through either
    // gateway.
    let mut repos = Vec::new();
    for (n, app) in apps.iter().enumerate() {
        let mut user = User::new();
        std::fs::create_dir_all(user.home().join(".ssh")).unwrap();
        for file in ["id_ed25519", "id_ed25519.pub"] {
            std::fs::copy(
                owner.home().join(".ssh").join(file),
                user.home().join(".ssh").join(file),
            )
            .unwrap();
        }
        let dir = user.home().join(app);
        std::fs::create_dir_all(&dir).unwrap();
        user.cwd = dir;
        user.git(&["init", "-q", "-b", "main"]).success();
        commit(&user, "c0");
        let creator = if n % 2 == 0 { &owner } else { &other_api };
        creator.slip(&["create", app]).success();
        repos.push(user);
    }
    let push = |user: &User, app: &str, gateway: &str| -> String {
        let run = user.git(&["push", "-q", &format!("{gateway}/{app}.git"), "main"]);
        assert!(
            run.ok,
            "push of {app} through {gateway} failed: {}",
            run.stderr
        );
        run.stderr
    };
    // Four changes per app — a push through each gateway, a config change through each API —
    // the apps side by side.
    std::thread::scope(|scope| {
        for (n, (app, repo)) in apps.iter().zip(&repos).enumerate() {
            let (gateways, users) = (&cluster.gateways, [&owner, &other_api]);
            scope.spawn(move || {
                for round in 0..2 {
                    commit(repo, &format!("c{}", round + 1));
                    let output = push(repo, app, &gateways[(n + round) % 2]);
                    // The deploy's progress came from the release manager's process.
                    assert!(output.contains("-----> Starting v"), "{output}");
                    assert!(output.contains("deployed to http://"), "{output}");
                    users[(n + round) % 2]
                        .slip(&["config:set", &format!("GREETING=g{round}"), "-a", app])
                        .success();
                }
            });
        }
    });
    for app in &apps {
        // v1 is the app's creation; v2…v5 the four changes, each deployed exactly once.
        let statuses = release_statuses(&owner, app);
        let versions: Vec<u32> = statuses.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, [5, 4, 3, 2, 1], "{app}: {statuses:?}");
        for (version, status) in &statuses[..4] {
            assert_eq!(status, "succeeded", "{app} v{version}");
        }
        eventually(
            Duration::from_secs(10),
            "the log records every deploy",
            || deployed(&cluster.data_dir, app).len() >= 4,
        );
        let counts = deployed(&cluster.data_dir, app);
        assert_eq!(
            counts,
            BTreeMap::from([(2, 1), (3, 1), (4, 1), (5, 1)]),
            "{app}: each release deployed once"
        );
        let (status, body) = http_get(&cluster.routers[0], &format!("{app}.localhost"), "/")
            .expect("the active router answers");
        assert_eq!((status, body.as_str()), (200, "g1 c2\n"), "{app}");
    }

    // A deploy that takes a few seconds (the app boots slowly), cut off by `kill -9` of the
    // active release manager: the standby takes over, brings every app back and finishes it.
    std::thread::scope(|scope| {
        // `config:set` waits for the deploy, whichever release manager finishes it.
        let setting = scope.spawn(|| owner.slip(&["config:set", "BOOT=4", "-a", "app0"]));
        eventually(Duration::from_secs(30), "v6 of app0 is deploying", || {
            release_statuses(&owner, "app0")[0] == (6, "deploying".to_owned())
        });
        cluster.releasers[0].kill_9();
        cluster.releasers[1].wait_for("router: http://", Duration::from_secs(30));
        let set = setting.join().unwrap();
        assert!(set.ok, "config:set: {}", set.stderr);
    });
    assert_eq!(
        release_statuses(&owner, "app0")[0],
        (6, "succeeded".to_owned())
    );
    for app in &apps {
        eventually(
            Duration::from_secs(60),
            "every app is served by the standby",
            || {
                http_get(&cluster.routers[1], &format!("{app}.localhost"), "/")
                    .is_ok_and(|(status, body)| status == 200 && body == "g1 c2\n")
            },
        );
        // The log file is written in batches: the last line shows a moment after the release.
        let expected = if app == "app0" { 5 } else { 4 };
        eventually(
            Duration::from_secs(10),
            "the log records every deploy",
            || deployed(&cluster.data_dir, app).len() >= expected,
        );
        let counts = deployed(&cluster.data_dir, app);
        assert_eq!(counts.len(), expected, "{app}: {counts:?}");
        assert!(
            counts.values().all(|n| *n == 1),
            "{app}: deployed twice: {counts:?}"
        );
    }
}
