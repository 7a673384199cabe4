//! What a destroyed app or a crash leaves behind: a destroyed app's repository, build cache
//! and log are gone, and whoever creates an app of its name starts clean — even when the
//! destroy was cut short by a crash; a `kill -9` in the middle of a push's deploy leaves no
//! release serving a commit the repository lacks, and no build `running`.

use std::time::Duration;

use serde_json::Value;
use slipway_e2e::{PASSWORD, User, both_backends, eventually};

const APP_PY: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s\n" % os.environ.get("CODE", "none")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// What the Python buildpack says when it builds on a cache an earlier build left.
const CACHE_USED: &str = "keeping the virtualenv";
const CACHE_MADE: &str = "Creating a virtualenv";

/// Puts `user` in a new git repository for `app` (a Python app with no dependencies, so the
/// buildpack caches its virtualenv) with one commit, `procfile` as its Procfile.
fn app_repo(user: &mut User, app: &str, procfile: &str) {
    let dir = user.home().join(format!("{app}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir;
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(user.cwd.join("app.py"), APP_PY).unwrap();
    std::fs::write(user.cwd.join("requirements.txt"), "").unwrap();
    std::fs::write(user.cwd.join("Procfile"), procfile).unwrap();
    commit(user, "first");
}

fn commit(user: &User, message: &str) {
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", message])
        .success();
}

fn release(user: &User, version: u32) -> Value {
    user.slip(&["releases:info", &format!("v{version}"), "--json"])
        .json()["release"]
        .clone()
}

both_backends! {
    fn a_destroyed_apps_name_starts_clean_for_its_next_owner(platform: Platform) {
        let mut platform = platform;
        let mut ada = User::registered(&platform, "ada");
        app_repo(&mut ada, "demo", "web: python3 app.py\n");
        ada.slip(&["create", "demo"]).success();
        assert!(ada.push_deployed().contains(CACHE_MADE));
        // The marker means what it says: a second build of the same app uses the cache.
        commit(&ada, "second");
        assert!(ada.push_deployed().contains(CACHE_USED));
        let repo = platform.data_dir.join("repos/demo.git");
        let cache = platform.data_dir.join("cache/demo");
        let records = platform.data_dir.join("launch/demo.json");
        assert!(repo.exists() && cache.exists() && records.exists());

        ada.slip(&["destroy", "--confirm", "demo"]).success();
        assert!(!repo.exists(), "the repository outlived its app");
        assert!(!cache.exists(), "the build cache outlived its app");
        assert!(!records.exists(), "the launch layers' record outlived its app");
        eventually(Duration::from_secs(30), "the trash is emptied and the log file gone", || {
            std::fs::read_dir(platform.data_dir.join("trash")).unwrap().count() == 0
                && !platform.data_dir.join("logs/demo.log").exists()
        });

        // Someone else takes the name: no history to clone, no cache to build on, no old log.
        let mut bob = User::registered_by(&platform, &ada, "bob");
        app_repo(&mut bob, "demo", "web: python3 app.py\n");
        bob.slip(&["create", "demo"]).success();
        let clone = bob.home().join("clone");
        let cloned = bob.git(&["clone", "-q", &format!("{}/demo.git", platform.ssh_url), clone.to_str().unwrap()]);
        assert!(!cloned.ok && cloned.stderr.contains("demo has no code yet"), "{}", cloned.stderr);
        let pushed = bob.push_deployed();
        assert!(pushed.contains(CACHE_MADE) && !pushed.contains(CACHE_USED), "{pushed}");
        let logs = bob.slip(&["logs", "-a", "demo"]);
        assert!(!logs.success().contains("v3"), "the old app's log: {}", logs.stdout);

        // A destroy cut short by a crash (the store forgot the app, its directories stayed) is
        // finished at the next start.
        platform.kill();
        for dir in ["repos/ghost.git/objects", "cache/ghost/python", "trash/half-removed/x"] {
            std::fs::create_dir_all(platform.data_dir.join(dir)).unwrap();
        }
        std::fs::write(platform.data_dir.join("logs/ghost.log"), "2026-01-01T00:00:00.000000Z\tweb.1\tsecret\n").unwrap();
        platform.boot();
        for gone in ["repos/ghost.git", "cache/ghost", "trash/half-removed", "logs/ghost.log"] {
            assert!(!platform.data_dir.join(gone).exists(), "{gone} outlived a restart");
        }
        assert!(platform.data_dir.join("repos/demo.git").exists(), "a live app's repository went");
        bob.slip(&["login", &platform.api_url, "--username", "bob", "--password", PASSWORD]).success();
        let apps = bob.slip(&["apps", "--json"]).json();
        assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    }

    fn kill_9_during_a_pushs_deploy_leaves_no_release_serving_a_commit_the_repository_lacks(platform: Platform) {
        let mut platform = platform;
        let mut ada = User::registered(&platform, "ada");
        app_repo(&mut ada, "demo", "web: CODE=one python3 app.py\n");
        ada.slip(&["create", "demo"]).success();
        ada.push_deployed();
        let (status, body) = slipway_e2e::http_get(&platform.router, "demo.localhost", "/").unwrap();
        assert_eq!((status, body.as_str()), (200, "one\n"));
        let kept = ada.git(&["rev-parse", "HEAD"]).success().trim().to_owned();

        // The next release's web process takes its time to listen: the window to crash in.
        std::fs::write(ada.cwd.join("Procfile"), "web: sleep 15; CODE=two python3 app.py\n").unwrap();
        commit(&ada, "slow");
        let mut pushing = ada.git_command(&["push", "-q", "slipway", "main"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(120), "v3 is deploying", || {
            let info = ada.slip(&["releases:info", "v3", "--json"]);
            info.ok && serde_json::from_str::<Value>(&info.stdout).unwrap()["release"]["status"] == "deploying"
        });
        platform.kill();
        assert!(!pushing.wait().unwrap().success(), "the push went through without its server");
        // What a cut-off receive-pack may leave in the repository.
        std::fs::create_dir_all(platform.data_dir.join("repos/demo.git/objects/tmp_objdir-incoming-stale/pack")).unwrap();

        platform.boot();
        ada.slip(&["login", &platform.api_url, "--username", "ada", "--password", PASSWORD]).success();
        let v3 = release(&ada, 3);
        assert_eq!(v3["status"], "failed", "{v3}");
        assert!(v3["reason"].as_str().unwrap().contains("cut off before its ref moved"), "{v3}");
        eventually(Duration::from_secs(60), "v2 serves again", || {
            slipway_e2e::http_get(&platform.router, "demo.localhost", "/").is_ok_and(|(s, b)| s == 200 && b == "one\n")
        });
        assert_eq!(release(&ada, 2)["status"], "succeeded");
        // Long enough for a redeploy of v3 to have shown: it is never tried.
        std::thread::sleep(Duration::from_secs(20));
        assert_eq!(release(&ada, 3)["status"], "failed");
        assert_eq!(slipway_e2e::http_get(&platform.router, "demo.localhost", "/").unwrap().1, "one\n");
        // The SSH port is new after the restart.
        ada.git(&["remote", "set-url", "slipway", &format!("{}/demo.git", platform.ssh_url)]).success();
        let remote = ada.git(&["ls-remote", "slipway", "refs/heads/main"]);
        assert!(remote.success().starts_with(&kept), "{}", remote.stdout);
        let builds = ada.slip(&["builds", "--json"]).json();
        assert!(builds.as_array().unwrap().iter().all(|b| b["status"] != "running"), "{builds}");
        let objects: Vec<String> = std::fs::read_dir(platform.data_dir.join("repos/demo.git/objects")).unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(objects.iter().all(|o| !o.starts_with("tmp_objdir-incoming-")), "{objects:?}");

        // The push goes through again, and its release succeeds once its ref moved.
        std::fs::write(ada.cwd.join("Procfile"), "web: CODE=three python3 app.py\n").unwrap();
        commit(&ada, "three");
        ada.push_deployed();
        let v4 = release(&ada, 4);
        assert_eq!(v4["status"], "succeeded", "{v4}");
        assert_eq!(slipway_e2e::http_get(&platform.router, "demo.localhost", "/").unwrap().1, "three\n");

        // Without a crash: the deploy went through but git could not move the ref (here, a
        // lock on it), so the release fails and the one before it serves again.
        let lock = platform.data_dir.join("repos/demo.git/refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        std::fs::write(ada.cwd.join("Procfile"), "web: CODE=four python3 app.py\n").unwrap();
        commit(&ada, "four");
        let refused = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(!refused.ok, "{}", refused.stderr);
        let v5 = release(&ada, 5);
        assert_eq!(v5["status"], "failed", "{v5}");
        assert!(v5["reason"].as_str().unwrap().contains("cut off before its ref moved"), "{v5}");
        assert_eq!(slipway_e2e::http_get(&platform.router, "demo.localhost", "/").unwrap().1, "three\n");
        std::fs::remove_file(&lock).unwrap();
    }
}
