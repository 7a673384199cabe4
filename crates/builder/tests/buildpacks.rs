//! The builder against real buildpack scripts written by the tests: detection, the Heroku
//! API's arguments and outputs, config vars, the cache, and the limits every build has.

use std::time::Duration;

use slipway_builder::{BuildError, BuildOutput};

mod support;
use support::Fixture;

fn types(output: &BuildOutput) -> String {
    output.procfile.to_string()
}

#[tokio::test]
async fn the_builtin_procfile_buildpack() {
    let f = Fixture::new().await;
    let (result, log) = f
        .build(&f.source(&[("Procfile", "web: ./serve\n")]), &[])
        .await;
    let output = result.unwrap();
    assert_eq!(types(&output), "web: ./serve\n");
    assert!(
        log.contains(&"-----> Procfile app detected".to_owned()),
        "{log:?}"
    );
    let (result, _) = f.build(&f.source(&[("README", "no Procfile")]), &[]).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "no buildpack fits this app: add a Procfile, or set BUILDPACK_URL to a buildpack"
    );
}

#[tokio::test]
async fn a_heroku_buildpack_from_buildpack_url() {
    let f = Fixture::new().await;
    let bp = f.heroku_buildpack(
        "greeter",
        &[
            ("detect", r#"[ -f "$1/greet.txt" ] && echo Greeter"#),
            (
                "compile",
                r#"echo "-----> Compiling in $1 with cache $2"
                   echo "GREETING is $(cat "$3/GREETING")"
                   test -z "${GREETING:-}"   # config reaches the buildpack through ENV_DIR, not the environment
                   echo "SOURCE_DATE_EPOCH is $SOURCE_DATE_EPOCH"
                   cp "$1/greet.txt" "$1/greeting.out"
                   date +%s%N > "$2/stamp""#,
            ),
            ("release", "cat <<'YAML'\n---\ndefault_process_types:\n  web: ./greet --port $PORT\n  worker: ./work\nYAML"),
        ],
    );
    let url = bp.to_str().unwrap();
    let source = f.source(&[
        ("greet.txt", "hello"),
        ("Procfile", "worker: ./my-worker\n"),
    ]);
    let (result, log) = f
        .build(&source, &[("BUILDPACK_URL", url), ("GREETING", "hi there")])
        .await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    // The Procfile wins; the buildpack's defaults fill in what it lacks.
    assert_eq!(
        types(&output),
        "worker: ./my-worker\nweb: ./greet --port $PORT\n"
    );
    assert_eq!(output.buildpack, "Greeter");
    assert!(log.iter().any(|l| l == "GREETING is hi there"), "{log:?}");
    assert!(
        log.iter().any(|l| l == "SOURCE_DATE_EPOCH is 315532800"),
        "tools that stamp their output get a fixed clock: {log:?}"
    );
    assert!(
        source.join("greeting.out").exists(),
        "compile ran in the source tree"
    );

    // The cache survives to the next build of the app; purge empties it.
    let cache = f.dir.path().join("data/cache/demo/stamp");
    let first = std::fs::read_to_string(&cache).unwrap();
    let (again, _) = f
        .build(
            &f.source(&[("greet.txt", "hello")]),
            &[("BUILDPACK_URL", url)],
        )
        .await;
    again.unwrap();
    assert_ne!(
        std::fs::read_to_string(&cache).unwrap(),
        first,
        "the same cache directory was used again"
    );
    f.builder.purge_cache("demo").unwrap();
    assert!(!cache.exists());
}

#[tokio::test]
async fn a_buildpack_from_a_git_url() {
    let f = Fixture::new().await;
    let bp = f.heroku_buildpack(
        "from-git",
        &[
            ("compile", "echo compiled from git"),
            (
                "release",
                "echo '--- {default_process_types: {web: ./run}}'",
            ),
        ],
    );
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(&bp)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "buildpack"]);
    let url = format!("file://{}#main", bp.display());
    let (result, log) = f
        .build(&f.source(&[("app.txt", "x")]), &[("BUILDPACK_URL", &url)])
        .await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    assert_eq!(types(&output), "web: ./run\n");
    assert!(log.iter().any(|l| l == "compiled from git"), "{log:?}");
}

#[tokio::test]
async fn failures_say_what_went_wrong() {
    let f = Fixture::new().await;
    let fails = f.heroku_buildpack(
        "fails",
        &[("compile", "echo 'missing dependency' >&2; exit 3")],
    );
    let (result, log) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", fails.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the buildpack's bin/compile failed (exit status 3); its output above says why"
    );
    assert!(
        log.contains(&"missing dependency".to_owned()),
        "stderr reaches the log: {log:?}"
    );

    let picky = f.heroku_buildpack("picky", &[("detect", "exit 1"), ("compile", "true")]);
    let (result, _) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", picky.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the buildpack picky does not fit this app (its bin/detect failed)"
    );

    let nothing = f.heroku_buildpack("nothing", &[("compile", "true")]);
    let (result, _) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", nothing.to_str().unwrap())],
        )
        .await;
    assert!(
        matches!(result, Err(BuildError::NoProcesses)),
        "no start command"
    );

    let (result, _) = f
        .build(&f.source(&[]), &[("BUILDPACK_URL", "no-such-buildpack")])
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "BUILDPACK_URL no-such-buildpack is not a buildpack: there is no such buildpack in the operator's buildpacks directory"
    );
    std::fs::create_dir_all(f.buildpacks().join("empty")).unwrap();
    let (result, _) = f.build(&f.source(&[]), &[("BUILDPACK_URL", "empty")]).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "BUILDPACK_URL empty is not a buildpack: it has neither bin/compile nor buildpack.toml"
    );
}

#[tokio::test]
async fn a_build_past_its_deadline_is_stopped_with_everything_it_started() {
    let f = Fixture::with_limits(Duration::from_secs(2), 1024 * 1024).await;
    // A duration no other test uses marks the background process.
    let slow = f.heroku_buildpack("slow", &[("compile", "sleep 313 &\nwait")]);
    let (result, _) = f
        .build(&f.source(&[]), &[("BUILDPACK_URL", slow.to_str().unwrap())])
        .await;
    assert!(matches!(result, Err(BuildError::TimedOut(_))), "{result:?}");
    let survivors = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.trim() == "sleep 313")
            .collect()
    };
    // SIGKILL is sent before the build returns; the kernel finishes the job asynchronously.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !survivors().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors = survivors();
    assert!(
        survivors.is_empty(),
        "the background sleep was killed too: {survivors:?}"
    );
}

#[tokio::test]
async fn a_build_that_floods_its_output_is_stopped() {
    let f = Fixture::with_limits(Duration::from_secs(60), 64 * 1024).await;
    let noisy = f.heroku_buildpack("noisy", &[("compile", "yes 'all work and no play'")]);
    let (result, log) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", noisy.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the build wrote more than 64 KiB of output and was stopped"
    );
    let logged: usize = log.iter().map(|l| l.len() + 1).sum();
    assert!(
        logged <= 64 * 1024 + 200,
        "the log stayed within its budget: {logged}"
    );
}

#[tokio::test]
async fn a_build_makes_a_reproducible_image_that_skopeo_reads() {
    let f = Fixture::new().await;
    let files = [
        ("Procfile", "web: ./serve\n"),
        ("serve", "#!/bin/sh\necho hi\n"),
    ];
    let (first, _) = f.build(&f.source(&files), &[]).await;
    let (second, log) = f.build(&f.source(&files), &[]).await;
    let (first, second) = (
        first.unwrap().image.unwrap(),
        second.unwrap().image.unwrap(),
    );
    assert_eq!(first, second, "the same source gives the same image");
    assert!(
        log.iter().any(|l| l.contains(&first)),
        "the pusher is told the digest: {log:?}"
    );

    let layout = f.dir.path().join("data/images");
    let inspect = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("oci:{}:demo:1a2b3c4d", layout.display()),
        ])
        .output()
        .expect("skopeo is installed (scripts/test installs it)");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    let config = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            &format!("oci:{}:demo:1a2b3c4d", layout.display()),
        ])
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/workspace");
    assert_eq!(
        config["config"]["Labels"]["io.slipway.processes"],
        r#"{"web":"./serve"}"#
    );
}

#[tokio::test]
async fn a_sandboxed_build_cannot_read_the_platform_or_other_apps() {
    assert!(
        std::path::Path::new("/usr/bin/bwrap").exists(),
        "bubblewrap is installed (scripts/test installs it)"
    );
    let f = Fixture::new().await;
    let data = f.dir.path().join("data");
    std::fs::write(data.join("slipway.db"), "the platform's database").unwrap();
    let other = f.source(&[("secret.txt", "another app's code")]);
    std::fs::create_dir_all(data.join("repos/other.git")).unwrap();
    let probes = [
        data.join("slipway.db"),
        data.join("repos"),
        data.join("images"),
        other.join("secret.txt"),
        other.clone(),
    ];
    let script: String = probes
        .iter()
        .map(|p| format!("if cat '{0}' >/dev/null 2>&1 || ls '{0}' >/dev/null 2>&1; then echo 'READ {0}'; else echo 'DENIED {0}'; fi\n", p.display()))
        .collect();
    let nosy = f.heroku_buildpack(
        "nosy",
        &[("compile", &format!("{script}echo built > \"$1/out.txt\""))],
    );
    let source = f.source(&[("Procfile", "web: ./serve\n")]);
    let (result, log) = f
        .build(&source, &[("BUILDPACK_URL", nosy.to_str().unwrap())])
        .await;
    result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    for probe in &probes {
        assert!(
            log.contains(&format!("DENIED {}", probe.display())),
            "{} is out of reach: {log:?}",
            probe.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(source.join("out.txt")).unwrap(),
        "built\n",
        "the build writes its own source"
    );
}

#[tokio::test]
async fn a_fork_bomb_a_memory_hog_and_a_disk_filler_are_stopped_by_their_limits() {
    let limits = slipway_builder::Limits {
        pids: 64,
        memory: 128 << 20,
        disk: 64 << 20,
        ..slipway_builder::Limits::BUILD
    };
    let f = Fixture::with_sandbox_limits(Duration::from_secs(120), 1024 * 1024, limits).await;
    let cases = [
        (
            "bomb",
            "bomb() { bomb | bomb & }; bomb; sleep 1; exit 1",
            "the build was stopped: it tried to run more than 64 processes at once",
        ),
        (
            "hog",
            "exec tail -n 1 /dev/zero",
            "the build was stopped: it ran out of memory (the limit is 128 MiB)",
        ),
        (
            // Throttled a little, so the test writes tens of MiB past the limit, not GiBs.
            "filler",
            "i=0; while :; do head -c 4000000 /dev/zero > \"$2/fill$i\"; i=$((i+1)); sleep 0.05; done",
            "the build was stopped: it wrote more than 64 MiB",
        ),
    ];
    for (name, compile, expected) in cases {
        let bp = f.heroku_buildpack(name, &[("compile", compile)]);
        let (result, log) = f
            .build(&f.source(&[]), &[("BUILDPACK_URL", bp.to_str().unwrap())])
            .await;
        let error = result.expect_err(name).to_string();
        assert!(error.starts_with(expected), "{name}: {error}\n{log:?}");
    }
    // The platform is fine: the next build goes through.
    let fine = f.heroku_buildpack("fine", &[("compile", "echo ok")]);
    let (result, _) = f
        .build(
            &f.source(&[("Procfile", "web: ./serve\n")]),
            &[("BUILDPACK_URL", fine.to_str().unwrap())],
        )
        .await;
    result.expect("a build after the hostile ones");
}

#[tokio::test]
async fn a_build_runs_unprivileged_and_cannot_remount_the_host() {
    let f = Fixture::new().await;
    let nosy = f.heroku_buildpack(
        "remount",
        &[(
            "compile",
            "echo uid=$(id -u)\n\
             grep -E '^CapEff' /proc/self/status\n\
             mount -o remount,bind,rw /usr 2>/dev/null && echo REMOUNTED\n\
             touch /usr/slipway-build-owned 2>/dev/null && echo WROTE-USR\n\
             true",
        )],
    );
    let source = f.source(&[("Procfile", "web: ./serve\n")]);
    let (result, log) = f
        .build(&source, &[("BUILDPACK_URL", nosy.to_str().unwrap())])
        .await;
    result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    let uid: u32 = log
        .iter()
        .find_map(|l| l.strip_prefix("uid="))
        .and_then(|u| u.parse().ok())
        .expect("the build printed its uid");
    assert!(uid >= 1_700_000, "the app's own uid, not {uid}: {log:?}");
    assert!(
        log.contains(&"CapEff:\t0000000000000000".to_owned()),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l == "REMOUNTED" || l == "WROTE-USR"),
        "{log:?}"
    );
    assert!(!std::path::Path::new("/usr/slipway-build-owned").exists());
}
