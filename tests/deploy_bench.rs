//! Benchmarks of the release manager, the local runtime and the router, each against a
//! baseline measured in this same run:
//!
//! - rollback latency: from the rollback API call until the router serves the release rolled
//!   back to, against the app's own cold start (the same server started directly, until it
//!   answers);
//! - router throughput and p99 latency (wrk, keep-alive) through the router, against wrk
//!   straight to the same app process, and, for scale, through nginx (Debian's
//!   `nginx-light`, upstream keep-alive, no access log) to the same process;
//! - idle memory of `slipwayd up` with 10 apps deployed, against the same server with none.
//!
//! The app is a small Node.js HTTP server (Node is on the machine; it boots fast). Run with
//! `scripts/bench` (it installs wrk), or `cargo build --release --bins && cargo bench -p
//! slipway-e2e --bench deploy`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User, api_post, http_get};

const ROLLBACKS: usize = 11;
const WRK_ROUNDS: usize = 3;
const APPS: usize = 10;

const SERVER_JS: &str = r#"const http = require("http");
const body = (process.env.MARK || "none") + "\n";
http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body)});
  res.end(body);
}).listen(Number(process.env.PORT), "127.0.0.1");
"#;

fn main() {
    test_support::init();
    for tool in ["/usr/bin/wrk", "/usr/bin/node"] {
        if !std::path::Path::new(tool).exists() {
            eprintln!(
                "error: {tool} is missing: scripts/bench installs wrk; Node.js comes with the machine"
            );
            std::process::exit(1);
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime.block_on(Platform::start(Backend::Sqlite)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let rss_empty = rss_kib(platform.pid());

    let mut ada = User::registered(&platform, "ada");
    let token = ada.saved_token();

    // The app, deployed, with two releases to go back and forth between.
    let dir = ada.home().join("fast");
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir.clone();
    std::fs::write(dir.join("server.js"), SERVER_JS).unwrap();
    std::fs::write(dir.join("Procfile"), "web: node server.js\n").unwrap();
    ada.git(&["init", "-q", "-b", "main"]).success();
    ada.git(&["add", "-A"]).success();
    ada.git(&["commit", "-q", "-m", "fast"]).success();
    ada.slip(&["create", "fast"]).success();
    let push = ada.git(&["push", "-q", "slipway", "main"]);
    assert!(push.ok, "{}", push.stderr);
    ada.slip(&["config:set", "MARK=a"]).success(); // v3
    ada.slip(&["config:set", "MARK=b"]).success(); // v4

    // Rollback latency: each rollback goes to the release before the current one, so the
    // served mark alternates a, b, a, …
    let mut rollbacks = Vec::new();
    let mut expect = "a";
    for _ in 0..ROLLBACKS {
        let started = Instant::now();
        api_post(&platform.api_url, &token, "/v1/apps/fast/rollback", "{}");
        while get_body(&platform.router, "fast.localhost") != format!("{expect}\n") {}
        rollbacks.push(started.elapsed());
        expect = if expect == "a" { "b" } else { "a" };
    }
    let mut cold = Vec::new();
    for _ in 0..ROLLBACKS {
        cold.push(cold_start(&dir));
    }
    let rollback = median(&mut rollbacks);
    let cold = median(&mut cold);

    // Router against direct: the same app process, found in the router's request log.
    let direct = backend_of(&ada);
    let nginx = Nginx::start(&direct);
    let mut via_router = Vec::new();
    let mut straight = Vec::new();
    let mut via_nginx = Vec::new();
    for _ in 0..WRK_ROUNDS {
        via_router.push(wrk(&platform.router, Some("fast.localhost")));
        straight.push(wrk(&direct, None));
        if let Some(nginx) = &nginx {
            via_nginx.push(wrk(&nginx.address, None));
        }
    }
    drop(nginx);

    // Idle memory with 10 apps, each serving.
    for i in 1..APPS {
        let name = format!("app{i}");
        ada.slip(&["create", &name, "--no-remote"]).success();
        let url = format!("{}/{name}.git", platform.ssh_url);
        let push = ada.git(&["push", "-q", &url, "main"]);
        assert!(push.ok, "{}", push.stderr);
    }
    for i in 1..APPS {
        assert_eq!(
            get_body(&platform.router, &format!("app{i}.localhost")),
            "none\n"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss_apps = rss_kib(platform.pid());

    println!(
        "deploy benchmark: {ROLLBACKS} rollbacks, {WRK_ROUNDS} wrk rounds of 5 s (2 threads, 32 connections), medians"
    );
    println!(
        "rollback latency        {:>8.1} ms   app cold start {:>6.1} ms   ratio {:.2}x",
        ms(rollback),
        ms(cold),
        ms(rollback) / ms(cold)
    );
    let (router_rps, router_p99) = medians(&mut via_router);
    let (direct_rps, direct_p99) = medians(&mut straight);
    println!(
        "router throughput       {router_rps:>8.0} req/s  direct {direct_rps:>8.0} req/s   ratio {:.2}x",
        router_rps / direct_rps
    );
    println!(
        "router p99 latency      {router_p99:>8.2} ms   direct {direct_p99:>8.2} ms   ratio {:.2}x",
        router_p99 / direct_p99
    );
    if !via_nginx.is_empty() {
        let (nginx_rps, nginx_p99) = medians(&mut via_nginx);
        println!(
            "nginx (reference)       {nginx_rps:>8.0} req/s  {nginx_p99:.2} ms p99   router/nginx throughput {:.2}x, p99 {:.2}x",
            router_rps / nginx_rps,
            router_p99 / nginx_p99
        );
    }
    println!(
        "slipwayd idle RSS       {:>8.1} MB with {APPS} apps   {:.1} MB with none   ratio {:.2}x",
        f64::from(rss_apps) / 1024.0,
        f64::from(rss_empty) / 1024.0,
        f64::from(rss_apps) / f64::from(rss_empty)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn medians(runs: &mut [(f64, f64)]) -> (f64, f64) {
    let mut rps: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let mut p99: Vec<f64> = runs.iter().map(|r| r.1).collect();
    rps.sort_by(f64::total_cmp);
    p99.sort_by(f64::total_cmp);
    (rps[rps.len() / 2], p99[p99.len() / 2])
}

/// The body of a 200 for `/`, or nothing.
fn get_body(address: &str, host: &str) -> String {
    match http_get(address, host, "/") {
        Ok((200, body)) => body,
        _ => String::new(),
    }
}

/// The app started by hand, until it answers: the baseline for a rollback.
fn cold_start(dir: &std::path::Path) -> Duration {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg("server.js")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("MARK", "cold")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while get_body(&address, "localhost") != "cold\n" {}
    let took = started.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    took
}

/// Where the app's web process listens, from the router's log of a request.
fn backend_of(user: &User) -> String {
    let logs = user.slip(&["logs", "-a", "fast", "-p", "router", "-n", "1"]);
    let line = logs.success().trim().to_owned();
    line.rsplit_once(" via ")
        .map(|(_, backend)| backend.to_owned())
        .unwrap_or_else(|| panic!("no backend in {line:?}"))
}

/// Requests per second and p99 latency (ms) of 5 s of wrk.
fn wrk(address: &str, host: Option<&str>) -> (f64, f64) {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c32", "-d5s", "--latency"]);
    if let Some(host) = host {
        command.args(["-H", &format!("Host: {host}")]);
    }
    let output = command.arg(format!("http://{address}/")).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw errors against {address}: {text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in {text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| latency_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% latency in {text}"));
    (rps, p99)
}

/// wrk's `1.23ms`, `456.78us` or `1.01s`, in ms.
fn latency_ms(text: &str) -> f64 {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// nginx proxying to `backend`, as a reference point for the router; `None` when nginx is
/// not installed.
struct Nginx {
    address: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(backend: &str) -> Option<Nginx> {
        if !std::path::Path::new("/usr/sbin/nginx").exists() {
            eprintln!(
                "nginx is not installed: skipping the reference (scripts/bench installs nginx-light)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let root = dir.path().display();
        let config = format!(
            "worker_processes 2;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {root}; proxy_temp_path {root};\n\
               upstream app {{ server {backend}; keepalive 64; }}\n\
               server {{ listen {address};\n\
                 location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let started = Command::new("/usr/sbin/nginx")
            .args(["-p", &root.to_string(), "-c"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(started.success(), "nginx did not start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while get_body(&address, "localhost").is_empty() {
            assert!(Instant::now() < deadline, "nginx did not answer");
        }
        Some(Nginx { address, dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/nginx")
            .args([
                "-p",
                &self.dir.path().display().to_string(),
                "-s",
                "stop",
                "-c",
            ])
            .arg(self.dir.path().join("nginx.conf"))
            .status();
    }
}
