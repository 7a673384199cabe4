//! Benchmark of a code-only change to an app with about 200 MB of dependencies: the time from
//! `git push` to the app serving the change, with today's built-in Python buildpack (the
//! virtualenv in a launch layer of its own, kept while requirements.txt is unchanged) against
//! the buildpack as it was before (`tests/assets/buildpacks/python-before-layers`: the
//! virtualenv inside the app's directory, so dependencies and code were one layer, restored
//! from the cache by copying). Both run on the same `slipwayd up` with a registry, in this one
//! run.
//!
//! Run with `scripts/bench`, or, with `SLIPWAY_TEST_REGISTRY` naming a docker-registry:
//! `cargo build --release --bins && cargo bench -p slipway-e2e --bench code_change`.
//!
//! Each app is pushed once cold (not measured: PyPI's download time is no one's build), then
//! changed and pushed `ROUNDS` times. `git push` returns once the new release serves; the
//! benchmark then checks that the router serves the change. Medians are reported, with the
//! bytes each push sent to the registry.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, http_get};

const ROUNDS: usize = 3;

/// numpy, pandas and scipy with their dependencies: about 200 MB installed.
const REQUIREMENTS: &str = "numpy==2.1.3\npandas==2.2.3\nscipy==1.14.1\n";

fn main() {
    test_support::init();
    let Ok(registry) = std::env::var("SLIPWAY_TEST_REGISTRY") else {
        eprintln!(
            "error: SLIPWAY_TEST_REGISTRY is not set: run scripts/bench, which starts docker-registry"
        );
        std::process::exit(1);
    };
    let prefix = format!("{registry}/codechange{}", std::process::id());
    let buildpacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/buildpacks");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime
        .block_on(Platform::start_with(
            Backend::Sqlite,
            &[
                "--registry",
                &prefix,
                "--buildpacks-dir",
                buildpacks.to_str().unwrap(),
            ],
        ))
        .unwrap();
    let mut ada = User::registered(&platform, "ada");
    println!(
        "code-change benchmark: push-to-serving of a one-line change to a Python app with numpy, pandas and scipy, {ROUNDS} rounds, medians"
    );
    let mut results = Vec::new();
    for (app, buildpack) in [("before", Some("python-before-layers")), ("layered", None)] {
        let (times, bytes, size) = measure(&platform, &mut ada, app, buildpack);
        println!(
            "  {:<44} {:>7.2} s   {:>10} pushed   (image layers: {})",
            match buildpack {
                Some(_) => "before (one layer, copied from the cache)",
                None => "today (a layer for the dependencies)",
            },
            median(&times),
            human(median_u64(&bytes)),
            size
        );
        results.push(median(&times));
    }
    println!(
        "  today is {:.1}x faster from push to serving",
        results[0] / results[1]
    );
}

/// Creates `app`, pushes it cold, then times `ROUNDS` code-only pushes; returns the times,
/// the bytes each pushed, and the image's layer sizes.
fn measure(
    platform: &Platform,
    ada: &mut User,
    app: &str,
    buildpack: Option<&str>,
) -> (Vec<f64>, Vec<u64>, String) {
    let dir = ada.home().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir.clone();
    ada.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(dir.join("requirements.txt"), REQUIREMENTS).unwrap();
    std::fs::write(dir.join("Procfile"), "web: python app.py\n").unwrap();
    let write_app = |version: usize| {
        std::fs::write(
            dir.join("app.py"),
            format!(
                "import os, http.server, numpy, pandas, scipy\n\
                 class Handler(http.server.BaseHTTPRequestHandler):\n    \
                 def do_GET(self):\n        \
                 body = b'version {version}'\n        \
                 self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)\n\
                 http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), Handler).serve_forever()\n"
            ),
        )
        .unwrap();
    };
    write_app(0);
    commit(ada, "cold");
    ada.slip(&["create", app]).success();
    if let Some(buildpack) = buildpack {
        ada.slip(&[
            "config:set",
            &format!("BUILDPACK_URL={buildpack}"),
            "-a",
            app,
        ])
        .success();
    }
    let started = Instant::now();
    let push = ada.git(&["push", "-q", "slipway", "main"]);
    assert!(push.ok, "{app}: {}", push.stderr);
    eprintln!(
        "  ({app}: cold push in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let host = format!("{app}.localhost");
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    for round in 1..=ROUNDS {
        write_app(round);
        commit(ada, &format!("round {round}"));
        let started = Instant::now();
        let push = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(push.ok, "{app}: {}", push.stderr);
        let want = format!("version {round}");
        loop {
            if let Ok((200, body)) = http_get(&platform.router, &host, "/")
                && body == want
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{app} never served {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(started.elapsed().as_secs_f64());
        let builds: Value =
            serde_json::from_str(ada.slip(&["builds", "-a", app, "--json"]).success()).unwrap();
        bytes.push(builds[0]["pushed_bytes"].as_u64().unwrap_or(0));
    }
    let builds: Value =
        serde_json::from_str(ada.slip(&["builds", "-a", app, "--json"]).success()).unwrap();
    let image = builds[0]["image"].as_str().unwrap();
    let raw = ada.run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
    );
    let manifest: Value = serde_json::from_str(raw.success()).unwrap();
    let sizes: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| human(l["size"].as_u64().unwrap()))
        .collect();
    (times, bytes, sizes.join(" + "))
}

fn commit(user: &User, message: &str) {
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", message]).success();
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn median_u64(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn human(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}
