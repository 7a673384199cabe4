//! `git push` through the SSH gateway, with the real git and OpenSSH client: a push builds
//! and releases; everything a push may not do is refused and changes nothing; concurrent
//! pushes and a pusher killed halfway leave the platform consistent.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, both_backends};

/// Registers `name` (the first user registers themselves; later ones are created by `admin`),
/// adds their SSH key, and returns them.
fn account(platform: &Platform, name: &str, admin: Option<&User>) -> User {
    match admin {
        None => User::registered(platform, name),
        Some(admin) => User::registered_by(platform, admin, name),
    }
}

/// Makes `dir` a git repository with a Procfile and one commit, and returns the commit.
fn app_repo(user: &mut User, dir: &str, procfile: &str) -> String {
    let path = user.home().join(dir);
    std::fs::create_dir_all(&path).unwrap();
    user.cwd = path.clone();
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(path.join("Procfile"), procfile).unwrap();
    commit(user, "first")
}

fn commit(user: &User, message: &str) -> String {
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", message])
        .success();
    user.git(&["rev-parse", "HEAD"]).success().trim().to_owned()
}

fn releases(user: &User, app: &str) -> Vec<Value> {
    let run = user.slip(&["releases", "-a", app, "--json"]);
    serde_json::from_str::<Value>(run.success())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn builds(user: &User, app: &str) -> Vec<Value> {
    let run = user.slip(&["builds", "-a", app, "--json"]);
    serde_json::from_str::<Value>(run.success())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `len` bytes that do not compress (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

/// The ref a fresh clone sees on the server, or `None` when the server has no code.
fn server_head(user: &User, platform: &Platform, app: &str) -> Option<String> {
    let run = user.git(&[
        "ls-remote",
        &format!("{}/{app}.git", platform.ssh_url),
        "refs/heads/main",
    ]);
    if !run.ok {
        return None;
    }
    run.stdout.split_whitespace().next().map(str::to_owned)
}

both_backends! {
    fn a_push_builds_and_releases(platform: Platform) {
        let mut ada = account(&platform, "ada", None);
        let sha = app_repo(&mut ada, "myapp", "web: ./serve\nworker: ./work\n");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();

        // A plain `git push` to the remote `slip create` added.
        let push = ada.git(&["push", "slipway", "main"]);
        let output = format!("{}{}", push.stdout, push.stderr);
        assert!(push.ok, "{output}");
        assert!(output.contains(&format!("remote: -----> Building demo from {}", &sha[..7])), "{output}");
        assert!(output.contains("remote: -----> Process types: web, worker"), "{output}");
        assert!(output.contains("remote: -----> v2 released"), "{output}");
        let latest = &releases(&ada, "demo")[0];
        assert_eq!((latest["version"].as_u64(), latest["commit"].as_str()), (Some(2), Some(sha.as_str())));
        assert_eq!(server_head(&ada, &platform, "demo").as_deref(), Some(sha.as_str()));
        let ps = ada.slip(&["ps"]);
        assert!(ps.success().contains("./work"), "the build's process types are known: {}", ps.stdout);

        // The app's build cache can be emptied.
        assert!(platform.data_dir.join("cache/demo").exists());
        ada.slip(&["builds:purge-cache"]).success();
        assert!(!platform.data_dir.join("cache/demo").exists());

        // Another branch is accepted and kept, but not built.
        let feature = ada.git(&["push", "slipway", "main:feature"]);
        assert!(feature.ok && feature.stderr.contains("refs/heads/feature accepted, not built"), "{}", feature.stderr);
        assert_eq!(releases(&ada, "demo").len(), 2);

        // A build that fails rejects the push: no release, and the server keeps the old code.
        std::fs::write(ada.cwd.join("Procfile"), "web: a\nweb: b\n").unwrap();
        let broken = commit(&ada, "broken");
        let rejected = ada.git(&["push", "slipway", "main"]);
        assert!(!rejected.ok);
        assert!(rejected.stderr.contains("remote:  !     build failed: invalid Procfile line 2: process type web is defined twice"), "{}", rejected.stderr);
        assert!(rejected.stderr.contains("pre-receive hook declined"), "{}", rejected.stderr);
        assert_eq!(releases(&ada, "demo").len(), 2);
        assert_eq!(server_head(&ada, &platform, "demo").as_deref(), Some(sha.as_str()));
        assert_ne!(broken, sha);
        let failed = &builds(&ada, "demo")[0];
        assert_eq!(failed["status"], "failed");
        // The build's log is kept: `slip builds:info` shows what the pusher saw.
        let info = ada.slip(&["builds:info", failed["id"].as_str().unwrap()]);
        let info = info.success();
        assert!(info.contains("=== Build log") && info.contains("process type web is defined twice"), "{info}");

        // Clone (git-upload-pack) works for those who may read the app.
        let clone = ada.home().join("clone");
        ada.git(&["clone", "-q", &format!("{}/demo.git", platform.ssh_url), clone.to_str().unwrap()]).success();
        assert_eq!(std::fs::read_to_string(clone.join("Procfile")).unwrap(), "web: ./serve\nworker: ./work\n");
    }

    fn refused_requests_change_nothing(platform: Platform) {
        let mut ada = account(&platform, "ada", None);
        let bob = account(&platform, "bob", Some(&ada));
        app_repo(&mut ada, "myapp", "web: ./serve\n");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
        let target = format!("{}/demo.git", platform.ssh_url);
        let (host, port) = platform.ssh_url.trim_start_matches("ssh://git@").rsplit_once(':').unwrap();
        let ssh = |user: &User, extra: &[&str]| {
            let mut args = vec!["-i", "KEY", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", port];
            let key = user.ssh_key();
            args[1] = key.to_str().unwrap();
            args.extend_from_slice(extra);
            let run = user.run("ssh", &args);
            assert_eq!(run.code, Some(128), "refused with git's fatal status: {run:?}");
            run.stderr
        };
        let at = format!("git@{host}");

        // A key nobody added.
        let stranger = User::new();
        stranger.ssh_key();
        let run = stranger.git(&["ls-remote", &target]);
        assert!(!run.ok && run.stderr.contains("is not registered with Slipway: add it with `slip keys:add`"), "{}", run.stderr);
        // Another user's app.
        let mut bob = bob;
        app_repo(&mut bob, "bobs", "web: x\n");
        let run = bob.git(&["push", &target, "main"]);
        // Told as if it did not exist: which apps exist is nobody else's business.
        assert!(!run.ok && run.stderr.contains("there is no app demo: create it with `slip create demo`"), "{}", run.stderr);
        let missing = bob.git(&["push", &format!("{}/nothing.git", platform.ssh_url), "main"]);
        assert_eq!(
            missing.stderr.lines().find(|l| l.contains("there is no app")).map(|l| l.replace("nothing", "demo")),
            run.stderr.lines().find(|l| l.contains("there is no app")).map(str::to_owned),
        );
        // A shell, a terminal, another command, a path outside the repositories.
        assert!(ssh(&bob, &[&at, "bash"]).contains("Slipway runs no commands but git's"));
        assert!(ssh(&ada, &[&at]).contains("Slipway gives no shell"));
        assert!(ssh(&ada, &["-tt", &at, "git-receive-pack 'demo.git'"]).contains("Slipway gives no terminal"));
        assert!(ssh(&ada, &[&at, "git-receive-pack '../x.git'"]).contains("invalid repository path \"../x.git\""));
        assert!(ssh(&ada, &[&at, "git-receive-pack '/etc/passwd'"]).contains("invalid repository path"));
        assert!(ssh(&ada, &[&at, "git-upload-pack 'demo.git'"]).contains("demo has no code yet"));

        // Nothing was created: no repository, build or release.
        let repos: Vec<_> = std::fs::read_dir(platform.data_dir.join("repos")).unwrap().collect();
        assert!(repos.is_empty(), "no repository was created: {repos:?}");
        assert!(builds(&ada, "demo").is_empty());
        assert_eq!(releases(&ada, "demo").len(), 1);

        // Once bob is a collaborator, he may push.
        ada.slip(&["perms:add", "bob"]).success();
        bob.git(&["push", &target, "main"]).success();
        assert_eq!(releases(&ada, "demo")[0]["created_by"], "bob");
    }

    fn concurrent_pushes_end_correctly(platform: Platform) {
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "base", "web: ./serve\n");
        // Ten apps, ten pushes at once.
        let apps: Vec<String> = (0..10).map(|i| format!("app{i}")).collect();
        for app in &apps {
            ada.slip(&["create", app, "--no-remote"]).success();
            // About builds: the app runs no processes.
            ada.slip(&["ps:scale", "web=0", "-a", app]).success();
        }
        std::thread::scope(|scope| {
            for app in &apps {
                let (ada, url) = (&ada, format!("{}/{app}.git", platform.ssh_url));
                scope.spawn(move || {
                    ada.git(&["push", &url, "main"]).success();
                });
            }
        });
        for app in &apps {
            let versions: Vec<u64> = releases(&ada, app).iter().map(|r| r["version"].as_u64().unwrap()).collect();
            assert_eq!(versions, [2, 1], "{app}");
        }

        // Five pushes of five different commits to one app at once: they take turns, each
        // makes one release, and the code on the server is the last release's.
        let url = format!("{}/app0.git", platform.ssh_url);
        let mut pushers = Vec::new();
        for i in 0..5 {
            let mut user = User::new();
            user.cwd = user.home().to_path_buf();
            std::fs::create_dir_all(user.home().join(".ssh")).unwrap();
            std::fs::copy(ada.ssh_key(), user.home().join(".ssh/id_ed25519")).unwrap();
            let dir = user.home().join("work");
            user.git(&["clone", "-q", &url, dir.to_str().unwrap()]).success();
            user.cwd = dir;
            std::fs::write(user.cwd.join(format!("file{i}")), format!("{i}")).unwrap();
            let sha = commit(&user, &format!("change {i}"));
            pushers.push((user, sha));
        }
        std::thread::scope(|scope| {
            for (user, _) in &pushers {
                scope.spawn(move || {
                    user.git(&["push", "--force", "origin", "main"]).success();
                });
            }
        });
        let released = releases(&ada, "app0");
        let versions: Vec<u64> = released.iter().map(|r| r["version"].as_u64().unwrap()).collect();
        assert_eq!(versions, [7, 6, 5, 4, 3, 2, 1], "one release per push, none lost or doubled");
        let mut commits: Vec<&str> = released[..5].iter().map(|r| r["commit"].as_str().unwrap()).collect();
        let head = commits[0].to_owned();
        commits.sort_unstable();
        let mut pushed: Vec<&str> = pushers.iter().map(|(_, sha)| sha.as_str()).collect();
        pushed.sort_unstable();
        assert_eq!(commits, pushed, "each pushed commit released once");
        assert_eq!(server_head(&ada, &platform, "app0"), Some(head), "the server runs what was released last");
    }

    fn a_killed_push_changes_nothing(platform: Platform) {
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "big", "web: ./serve\n");
        // Incompressible data, so the push takes long enough to be cut.
        std::fs::write(ada.cwd.join("noise.bin"), noise(64 * 1024 * 1024)).unwrap();
        commit(&ada, "big");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();

        let mut push = ada.git_command(&["push", "--progress", "slipway", "main"]);
        std::os::unix::process::CommandExt::process_group(&mut push, 0);
        let mut child = push.stderr(Stdio::piped()).spawn().unwrap();
        // Wait until the pack is on its way, then kill git and ssh together.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).split(b'\r');
        loop {
            let chunk = lines.next().expect("git reports progress").unwrap();
            if String::from_utf8_lossy(&chunk).contains("Writing objects") {
                break;
            }
        }
        let group = format!("-{}", child.id());
        std::process::Command::new("kill").args(["-9", "--", &group]).status().unwrap();
        child.wait().unwrap();

        // The app is as it was; and the next push is not locked out.
        assert_eq!(releases(&ada, "demo").len(), 1);
        assert!(builds(&ada, "demo").is_empty());
        assert_eq!(server_head(&ada, &platform, "demo"), None);
        std::fs::remove_file(ada.cwd.join("noise.bin")).unwrap();
        commit(&ada, "small again");
        ada.git(&["push", "--force", "slipway", "main"]).success();
        assert_eq!(releases(&ada, "demo").len(), 2);
    }
}

#[tokio::test]
async fn a_push_over_the_size_limit_is_refused() {
    let platform = Platform::start_with(Backend::Sqlite, &["--max-push-bytes", "1000000"])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "big", "web: ./serve\n");
        std::fs::write(ada.cwd.join("noise.bin"), noise(3_000_000)).unwrap();
        commit(&ada, "big");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(!push.ok);
        assert!(
            push.stderr.contains("exceeds maximum allowed size"),
            "{}",
            push.stderr
        );
        assert_eq!(releases(&ada, "demo").len(), 1);
        assert_eq!(server_head(&ada, &platform, "demo"), None);
    })
    .await
    .unwrap();
}

/// The pusher sees build output while the build runs: the buildpack prints a line, then waits
/// for the test to let it go on; the test sees that line before it lets it.
#[tokio::test]
async fn build_output_streams_while_the_build_runs() {
    // The operator installs the buildpack; the app names it in BUILDPACK_URL.
    let buildpacks = tempfile::tempdir().unwrap();
    let platform = Platform::start_with(
        Backend::Sqlite,
        &["--buildpacks-dir", buildpacks.path().to_str().unwrap()],
    )
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "myapp", "web: ./serve\n");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
        let buildpack = buildpacks.path().join("waiting-buildpack");
        // The gate lives in the buildpack's directory, which a sandboxed build can see.
        let gate = buildpack.join("gate");
        std::fs::create_dir_all(buildpack.join("bin")).unwrap();
        let compile = buildpack.join("bin/compile");
        std::fs::write(
            &compile,
            format!(
                "#!/bin/sh\necho '-----> step one'\ncat '{}' >/dev/null\necho '-----> step two'\n",
                gate.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &compile,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        ada.run("mkfifo", &[gate.to_str().unwrap()]).success();
        ada.slip(&["config:set", "BUILDPACK_URL=waiting-buildpack"])
            .success();

        let mut push = ada
            .git_command(&["push", "slipway", "main"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(push.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        loop {
            let line = lines
                .next()
                .expect("the push reports the first step")
                .unwrap();
            seen.push(line.clone());
            if line.contains("step one") {
                break;
            }
        }
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push is still running: {seen:?}"
        );
        assert!(!seen.iter().any(|l| l.contains("step two")));
        // Let the build go on.
        std::fs::write(&gate, "go\n").unwrap();
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        assert!(push.wait().unwrap().success(), "{rest:?}");
        assert!(
            rest.iter().any(|l| l.contains("remote: -----> step two")),
            "{rest:?}"
        );
        assert!(rest.iter().any(|l| l.contains("v3 released")), "{rest:?}");
    })
    .await
    .unwrap();
}

/// With `--registry`, every image is also pushed to the registry (Debian's docker-registry,
/// started by scripts/test); the build names it by digest, and a push of an unchanged tree
/// uploads no layer again.
#[tokio::test]
async fn images_go_to_the_registry_by_digest() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &registry])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "myapp", "web: ./serve\n");
        // The registry outlives this test: a fresh repository keeps runs apart.
        let app = format!(
            "reg{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000_000
        );
        ada.slip(&["create", &app]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", &app]).success();
        let first = ada.git(&["push", "slipway", "main"]);
        assert!(
            first.ok && first.stderr.contains("0 already there"),
            "{}",
            first.stderr
        );
        let image = builds(&ada, &app)[0]["image"].as_str().unwrap().to_owned();
        assert!(
            image.starts_with(&format!("{registry}/{app}@sha256:")),
            "{image}"
        );
        let inspect = ada.run(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{image}"),
            ],
        );
        let inspected: Value = serde_json::from_str(inspect.success()).unwrap();
        assert_eq!(
            inspected["Labels"]["io.slipway.processes"],
            r#"{"web":"./serve"}"#
        );

        // The same tree again: a new config (it names the new commit), the same layer.
        commit(&ada, "nothing changed");
        let second = ada.git(&["push", "slipway", "main"]);
        assert!(
            second.ok && second.stderr.contains(" in 1 blob sent, 1 already there"),
            "{}",
            second.stderr
        );
        // Only the config went over the wire: a few hundred bytes, said in the build's output.
        let total = second
            .stderr
            .lines()
            .find(|l| l.trim_end().ends_with("pushed in all"))
            .unwrap_or_else(|| panic!("no total in {}", second.stderr));
        let bytes: u64 = total
            .trim_start_matches("remote:")
            .trim()
            .strip_suffix(" B pushed in all")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a count of bytes: {total}"));
        // The build record keeps it: `slip builds --json` and `builds:info`.
        assert_eq!(builds(&ada, &app)[0]["pushed_bytes"], bytes, "{total}");
    })
    .await
    .unwrap();
}

/// With a run image, its layers go to the registry once, under `run-image`, and every app's
/// image mounts them from there instead of uploading them again.
#[tokio::test]
async fn run_image_layers_are_mounted_not_copied() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    // A prefix of its own keeps this test's run-image repository apart from other runs'.
    let prefix = format!("{registry}/mount{}", std::process::id());
    let platform = Platform::start_with(
        Backend::Sqlite,
        &["--registry", &prefix, "--run-image", "base"],
    )
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        platform.make_run_image("base");
        let mut ada = account(&platform, "ada", None);
        app_repo(&mut ada, "myapp", "web: ./serve\n");
        ada.slip(&["create", "demo"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        assert!(
            push.stderr
                .contains(&format!("pushed {prefix}/run-image:base: "))
                && push.stderr.contains(" in 2 blobs sent, 0 already there"),
            "{}",
            push.stderr
        );
        assert!(
            push.stderr.contains(&format!("pushed {prefix}/demo:"))
                && push.stderr.contains("1 mounted"),
            "{}",
            push.stderr
        );
    })
    .await
    .unwrap();
}

/// A sample app for every built-in buildpack builds through `git push`, and its image, pushed
/// to the registry, is what skopeo reads back: the right process types, by digest.
#[tokio::test]
async fn every_builtin_buildpack_builds_a_sample_app_into_the_registry() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    let prefix = format!("{registry}/samples{}", std::process::id());
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &prefix])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let ada = account(&platform, "ada", None);
        // (app, what the buildpack calls it, files, its web command)
        type Sample<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let samples: &[Sample<'_>] = &[
            ("py", "Python", &[("requirements.txt", "six==1.17.0\n"), ("app.py", "import six\nprint(six.__version__)\n"), ("Procfile", "web: python app.py\n")], "python app.py"),
            ("js", "Node.js", &[("package.json", r#"{"name": "hello", "version": "1.0.0", "scripts": {"start": "node server.js"}}"#), ("server.js", "console.log('hi')\n")], "npm start"),
            ("gosample", "Go", &[("go.mod", "module example.com/hello\n\ngo 1.21\n"), ("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n")], "bin/hello"),
            ("rs", "Rust", &[("Cargo.toml", "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"), ("src/main.rs", "fn main() { println!(\"hi\"); }\n")], "bin/hello"),
            ("site", "Static HTML", &[("index.html", "<h1>hi</h1>\n")], "python3 -m http.server $PORT --bind 0.0.0.0 --directory ."),
            ("plain", "Procfile", &[("Procfile", "web: ./serve\n"), ("serve", "#!/bin/sh\n")], "./serve"),
        ];
        for (app, detected, files, web) in samples {
            let mut user = User::new();
            user.cwd = user.home().to_path_buf();
            std::fs::create_dir_all(user.home().join(".ssh")).unwrap();
            std::fs::copy(ada.ssh_key(), user.home().join(".ssh/id_ed25519")).unwrap();
            let dir = user.home().join(app);
            for (name, text) in *files {
                std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
                std::fs::write(dir.join(name), text).unwrap();
            }
            user.cwd = dir;
            user.git(&["init", "-q", "-b", "main"]).success();
            commit(&user, "sample");
            ada.slip(&["create", app, "--no-remote"]).success();
            // About builds: the app runs no processes.
            ada.slip(&["ps:scale", "web=0", "-a", app]).success();
            let push = user.git(&["push", &format!("{}/{app}.git", platform.ssh_url), "main"]);
            assert!(push.ok, "{app}: {}", push.stderr);
            assert!(push.stderr.contains(&format!("-----> {detected} app detected")), "{app}: {}", push.stderr);
            let image = builds(&ada, app)[0]["image"].as_str().unwrap().to_owned();
            assert!(image.starts_with(&format!("{prefix}/{app}@sha256:")), "{image}");
            let inspect = ada.run("skopeo", &["inspect", "--tls-verify=false", &format!("docker://{image}")]);
            let inspected: Value = serde_json::from_str(inspect.success()).unwrap();
            let processes: Value = serde_json::from_str(inspected["Labels"]["io.slipway.processes"].as_str().unwrap()).unwrap();
            assert_eq!(processes["web"], *web, "{app}");
        }
    })
    .await
    .unwrap();
}
