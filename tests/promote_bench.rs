//! Benchmark of promotion, against a push of the same app measured in this same run:
//!
//! - push: from `git push` of a one-line code change to staging until the router serves the
//!   new text there (build, release, deploy);
//! - promotion: from the promote API call until production serves the same text (a release
//!   of the same image with production's config, and its deploy: nothing is rebuilt);
//! - for scale, the app's own cold start: the same `app.py` started directly by the host's
//!   Python until it answers. A promotion cannot be faster than that; the rest is the
//!   platform's.
//!
//! The app is a Python web app with a dependency from PyPI, as apps are: the push builds it
//! (its dependency layer reused, its code layer new), the promotion does not. Run with
//! `scripts/bench`, or `cargo build --release --bins && cargo bench -p slipway-e2e --bench
//! promote`.

use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User, api_post, http_get};

const ROUNDS: usize = 7;

/// The web app; its dependency (in requirements.txt) makes a layer of its own that a code
/// change reuses, as a real app's do.
fn app(mark: usize) -> String {
    format!(
        r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s {mark}\n" % os.environ.get("STAGE", "none")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

fn main() {
    test_support::init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime.block_on(Platform::start(Backend::Sqlite)).unwrap();
    let mut ada = User::registered(&platform, "ada");
    let token = ada.saved_token();

    let dir = ada.home().join("shop-staging");
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir.clone();
    std::fs::write(dir.join("requirements.txt"), "six==1.17.0\n").unwrap();
    std::fs::write(dir.join("Procfile"), "web: python3 app.py\n").unwrap();
    std::fs::write(dir.join("app.py"), app(0)).unwrap();
    ada.git(&["init", "-q", "-b", "main"]).success();
    ada.git(&["add", "-A"]).success();
    ada.git(&["commit", "-q", "-m", "v0"]).success();
    ada.slip(&["create", "shop-staging"]).success();
    ada.slip(&["create", "shop", "--no-remote"]).success();
    ada.slip(&["config:set", "STAGE=staging", "-a", "shop-staging"])
        .success();
    ada.slip(&["config:set", "STAGE=production", "-a", "shop"])
        .success();
    ada.slip(&["pipelines:create", "shop"]).success();
    for (app, stage) in [("shop-staging", "staging"), ("shop", "production")] {
        ada.slip(&["pipelines:add", "shop", "-a", app, "--stage", stage])
            .success();
    }
    // The first push installs the dependency; it is not measured.
    let push = ada.git(&["push", "-q", "slipway", "main"]);
    assert!(push.ok, "{}", push.stderr);

    let mut pushes = Vec::new();
    let mut promotions = Vec::new();
    for round in 1..=ROUNDS {
        std::fs::write(dir.join("app.py"), app(round)).unwrap();
        ada.git(&["commit", "-q", "-am", &format!("v{round}")])
            .success();
        let started = Instant::now();
        let push = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        await_body(&platform, "shop-staging", &format!("staging {round}\n"));
        pushes.push(started.elapsed());

        let started = Instant::now();
        api_post(
            &platform.api_url,
            &token,
            "/v1/apps/shop-staging/promote",
            "{}",
        );
        await_body(&platform, "shop", &format!("production {round}\n"));
        promotions.push(started.elapsed());
    }
    let mut cold = Vec::new();
    for _ in 0..ROUNDS {
        cold.push(cold_start(&dir));
    }
    let push = median(&mut pushes);
    let promotion = median(&mut promotions);
    let cold = median(&mut cold);
    println!("promotion benchmark: {ROUNDS} rounds of a one-line code change, medians");
    println!(
        "promotion latency       {:>8.0} ms   push of the same change {:>8.0} ms   ratio {:.2} (aim < 0.20)",
        ms(promotion),
        ms(push),
        ms(promotion) / ms(push)
    );
    println!(
        "app cold start          {:>8.0} ms   the platform's part of a promotion {:>5.0} ms   ratio to the push {:.2}",
        ms(cold),
        ms(promotion) - ms(cold),
        (ms(promotion) - ms(cold)) / ms(push)
    );
}

/// The app started directly by the host's Python, until it answers.
fn cold_start(dir: &std::path::Path) -> Duration {
    let port = slipway_e2e::free_port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = std::process::Command::new("python3")
        .arg("app.py")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("STAGE", "cold")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Ok((200, body)) = http_get(&address, "localhost", "/")
            && body.starts_with("cold ")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    took
}

/// Waits until the app serves `expect`, for at most a minute.
fn await_body(platform: &Platform, app: &str, expect: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = http_get(&platform.router, &format!("{app}.localhost"), "/")
            && body == expect
        {
            return;
        }
        assert!(Instant::now() < deadline, "{app} never served {expect:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
