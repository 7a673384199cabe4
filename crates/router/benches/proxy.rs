//! The router against nginx, in one run, proxying to the same app:
//!
//! - the app: an nginx server (one worker, its own process) answering `hello` to every
//!   request, on a loopback port;
//! - nginx (Debian's `nginx-light`, `worker_processes auto`, upstream keep-alive, access log
//!   on, buffered) in front of it over HTTP and HTTPS;
//! - the Slipway router in this process, on a multi-thread Tokio runtime, wired as
//!   `slipwayd up` wires it: its request log pushes every line into a real `logs::Logs` kept
//!   on disk, and the host's certificate is in its route.
//!
//! Both serve the same certificate (a P-256 leaf for `localhost`: wrk sends the URL's host as
//! SNI, so the host has to be one that resolves to 127.0.0.1). wrk (`-t2 -c32 -d5s`) runs
//! against each in turn, nginx then the router, [`ROUNDS`] times, over HTTP and over HTTPS
//! with keep-alive, and over HTTPS with `Connection: close` — a TLS handshake per request
//! (a resumed one: wrk offers its last session, and both proxies issue tickets). Printed:
//! medians of requests per second, of p99 latency and of each proxy's CPU time per request
//! (user and system, from `/proc`: nginx's workers, this process for the router), and
//! router/nginx. With two cores shared by wrk, the app and the proxy, the CPU time per
//! request decides the throughput; it is also the steadiest of the three on a busy machine.
//!
//! Run: `cargo bench -p slipway-router --bench proxy` (needs wrk and nginx-light:
//! `scripts/bench` installs them). `-- --rounds N --seconds S` change the runs; `-- --hold S`
//! only starts everything and prints the addresses for S seconds (for `perf record`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::sign::CertifiedKey;
use slipway_router::{AppRoute, HostRoute, Limits, Router, RouterConfig, Routes};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 5;
const SECONDS: u64 = 5;
const HOST: &str = "localhost";
const APP: &str = "bench";
const WRK: &str = "/usr/bin/wrk";
const NGINX: &str = "/usr/sbin/nginx";

fn main() {
    for tool in [WRK, NGINX] {
        if !Path::new(tool).exists() {
            eprintln!(
                "error: {tool} is missing: run scripts/bench, or apt-get install wrk nginx-light"
            );
            std::process::exit(1);
        }
    }
    let mut rounds = ROUNDS;
    let mut seconds = SECONDS;
    let mut hold = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--rounds" => rounds = usize::try_from(value()).unwrap(),
            "--seconds" => seconds = value(),
            "--hold" => hold = Some(value()),
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("slipway-router-bench")
        .tempdir()
        .unwrap();
    let certificate = Certificate::new(dir.path());

    let app = Nginx::start(&dir.path().join("app"), |root, port| {
        format!(
            "worker_processes 1;\n{}\
             http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;\n\
               server {{ listen 127.0.0.1:{port}; default_type text/plain;\n\
                 location / {{ return 200 \"hello\\n\"; }} }} }}\n",
            preamble(root)
        )
    });
    let app_addr = format!("127.0.0.1:{}", app.ports[0]);
    let nginx = Nginx::start(&dir.path().join("nginx"), |root, port| {
        format!(
            "worker_processes auto;\n{}\
             http {{ access_log {root}/access.log combined buffer=64k flush=1s;\n\
               keepalive_requests 1000000; keepalive_timeout 300s;\n\
               upstream app {{ server {app_addr}; keepalive 64; keepalive_requests 1000000; }}\n\
               server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{tls_port} ssl;\n\
                 server_name {HOST};\n\
                 ssl_certificate {cert}; ssl_certificate_key {key};\n\
                 location / {{ proxy_pass http://app; proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\"; proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $remote_addr;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n\
                   proxy_set_header X-Request-Id $request_id; }} }} }}\n",
            preamble(root),
            tls_port = port + 1,
            cert = certificate.cert_path.display(),
            key = certificate.key_path.display(),
        )
    });

    // The router, as slipwayd wires it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let logs_dir = dir.path().join("logs");
    let (router_http, router_https, logs, stop) = runtime.block_on(async {
        let logs = logs::Logs::open(logs_dir).unwrap();
        let routes = Routes::default();
        routes.set([HostRoute {
            host: HOST.to_owned(),
            route: AppRoute {
                app: APP.to_owned(),
                backends: vec![app_addr.parse().unwrap()],
                settings: Arc::default(),
            },
            certificate: Some(Arc::clone(&certificate.key)),
        }]);
        let request_log: slipway_router::RequestLog = {
            let logs = logs.clone();
            Arc::new(move |app: &str, line: &str| logs.push(app, "router", line))
        };
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = RouterConfig {
            https_port: Some(https.local_addr().unwrap().port()),
            ..RouterConfig::default()
        };
        let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
        let router = Router::new(routes.clone(), request_log, None, config);
        let tls = slipway_router::server_config(&routes, None);
        // slipwayd's defaults: --http-header-timeout 30, --http-max-per-source 256.
        let limits = Limits {
            header_timeout: Duration::from_secs(30),
            max_per_source: 256,
        };
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&router).serve(http, None, limits, stop.clone()));
        tokio::spawn(router.serve(https, Some(tls), limits, stop.clone()));
        (http_addr, https_addr, logs, stop)
    });

    let targets = [
        (
            "nginx",
            format!("http://{HOST}:{}/", nginx.ports[0]),
            format!("https://{HOST}:{}/", nginx.ports[0] + 1),
        ),
        (
            "router",
            format!("http://{HOST}:{}/", router_http.port()),
            format!("https://{HOST}:{}/", router_https.port()),
        ),
    ];
    for (name, http, https) in &targets {
        for url in [http, https] {
            wait_for(url, name);
        }
    }
    if let Some(hold) = hold {
        println!("app     http://{app_addr}/");
        for (name, http, https) in &targets {
            println!("{name:<7} {http}  {https}");
        }
        std::thread::sleep(Duration::from_secs(hold));
        return;
    }

    let load = uptime();
    // The CPU time each proxy spends: nginx's workers; the router, this process.
    let processes = [nginx.workers(), vec!["self".to_owned()]];
    // [HTTP, HTTPS, HTTPS handshakes][nginx, router]
    let mut results: [[Vec<Run>; 2]; 3] = Default::default();
    for _ in 0..rounds {
        for (which, (name, http, https)) in targets.iter().enumerate() {
            let processes = &processes[which];
            results[0][which].push(wrk(http, seconds, false, name, processes));
            results[1][which].push(wrk(https, seconds, false, name, processes));
            results[2][which].push(wrk(https, seconds, true, name, processes));
        }
    }
    let load_after = uptime();

    // Access logging was on: the router's lines are in the app's log.
    let logged = logs.tail(APP, 1, &logs::LogFilter::default());
    assert!(
        logged.first().is_some_and(|l| l.source == "router"),
        "the router logged no request: {logged:?}"
    );
    runtime.block_on(logs.flush());
    stop.cancel();

    println!(
        "router benchmark: wrk -t2 -c32 -d{seconds}s, {rounds} rounds each alternating nginx/router, medians; \
         app: nginx `return 200` (1 worker); nginx: worker_processes auto, upstream keepalive 64, access log on; \
         router: Tokio multi-thread runtime, request log into logs::Logs on disk"
    );
    println!("load average before: {load}; after: {load_after}");
    println!(
        "(CPU: the proxy's user and system time per request, which decides throughput when the cores are busy)"
    );
    println!(
        "{:<26} {:>8} {:>8} {:>6}   {:>8} {:>8} {:>6}   {:>8} {:>8} {:>6}",
        "", "nginx", "router", "ratio", "nginx", "router", "ratio", "nginx", "router", "ratio"
    );
    println!(
        "{:<26} {:>24}   {:>24}   {:>24}",
        "", "requests/s", "p99 latency (ms)", "CPU per request (us)"
    );
    let labels = [
        "HTTP keep-alive",
        "HTTPS keep-alive",
        "HTTPS handshakes (close)",
    ];
    for (label, runs) in labels.iter().zip(&mut results) {
        let nginx = Run::medians(&runs[0]);
        let router = Run::medians(&runs[1]);
        println!(
            "{label:<26} {:>8.0} {:>8.0} {:>5.2}x   {:>8.2} {:>8.2} {:>5.2}x   {:>8.1} {:>8.1} {:>5.2}x",
            nginx.rps,
            router.rps,
            router.rps / nginx.rps,
            nginx.p99,
            router.p99,
            router.p99 / nginx.p99,
            nginx.cpu_us,
            router.cpu_us,
            router.cpu_us / nginx.cpu_us,
        );
    }
    drop(nginx);
    drop(app);
}

/// The start of an nginx configuration that keeps its files in `root` (the temp paths go
/// into its `http` block: see [`Nginx::start`]).
fn preamble(root: &str) -> String {
    format!(
        "pid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{ worker_connections 4096; }}\n"
    )
}

/// A P-256 leaf for [`HOST`], as files for nginx and as a key for the router.
struct Certificate {
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
    key: Arc<CertifiedKey>,
}

impl Certificate {
    fn new(dir: &Path) -> Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![HOST.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let signing = rustls::crypto::ring::sign::any_supported_type(
            &rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        Certificate {
            cert_path,
            key_path,
            key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)),
        }
    }
}

/// An nginx master process with its own configuration in `dir`, stopped when dropped.
struct Nginx {
    dir: std::path::PathBuf,
    child: std::process::Child,
    /// The port given to the configuration; it may listen on the next one too.
    ports: [u16; 1],
}

impl Nginx {
    fn start(dir: &Path, config: impl Fn(&str, u16) -> String) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port_pair();
        let root = dir.display().to_string();
        let mut text = config(&root, port);
        // nginx takes one `http` block: the temp paths go into the caller's.
        text = text.replacen(
            "http {",
            &format!(
                "http {{ client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
                 fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n"
            ),
            1,
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        let child = Command::new(NGINX)
            .args(["-g", "daemon off;", "-p", &root, "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Nginx {
            dir: dir.to_owned(),
            child,
            ports: [port],
        }
    }
}

impl Nginx {
    /// The worker processes' pids, once the master has started them.
    fn workers(&self) -> Vec<String> {
        let master = self.child.id().to_string();
        let mut workers = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The parent's pid is the second field after the command's `(name)`.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent == Some(master.as_str()) {
                workers.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        assert!(!workers.is_empty(), "nginx started no workers");
        workers
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(NGINX)
            .args(["-p", &self.dir.display().to_string(), "-s", "quit", "-c"])
            .arg(self.dir.join("nginx.conf"))
            .status();
        let _ = self.child.wait();
    }
}

/// A free port whose next port is free too (nginx's HTTPS listener takes that one).
fn free_port_pair() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Waits until `url` answers 200s (a one-second wrk run that sees some and nothing else).
fn wait_for(url: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = Command::new(WRK)
            .args(["-t1", "-c1", "-d1s", url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let answered = text
            .lines()
            .any(|l| l.contains("requests in") && !l.trim().starts_with("0 requests"));
        if output.status.success() && answered && !text.contains("Non-2xx") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} does not answer at {url}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One wrk run against one proxy.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    /// Milliseconds.
    p99: f64,
    /// The proxy's CPU time per request, in microseconds.
    cpu_us: f64,
}

impl Run {
    /// The median of each measure.
    fn medians(runs: &[Run]) -> Run {
        let median = |measure: fn(&Run) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(measure).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Run {
            rps: median(|r| r.rps),
            p99: median(|r| r.p99),
            cpu_us: median(|r| r.cpu_us),
        }
    }
}

/// `seconds` of wrk against `url`, and the CPU time `processes` spent meanwhile.
fn wrk(url: &str, seconds: u64, close: bool, name: &str, processes: &[String]) -> Run {
    let mut command = Command::new(WRK);
    command.args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency"]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let cpu_before = cpu_seconds(processes);
    let output = command.arg(url).output().unwrap();
    let cpu = cpu_seconds(processes) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw errors from {name} at {url}: {text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec from {name}: {text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| latency_ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% latency from {name}: {text}"));
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count from {name}: {text}"));
    Run {
        rps,
        p99,
        cpu_us: cpu * 1e6 / requests,
    }
}

/// User and system time of `processes` (`/proc` names: a pid, or `self`), in seconds.
fn cpu_seconds(processes: &[String]) -> f64 {
    // Clock ticks are 1/100 s on Linux.
    const TICKS: f64 = 100.0;
    processes
        .iter()
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // After the command's `(name)`: state is field 3, utime 14, stime 15.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .collect();
            let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
            tick(11).unwrap_or(0.0) + tick(12).unwrap_or(0.0)
        })
        .sum::<f64>()
        / TICKS
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

/// The machine's load averages, as `uptime` shows them.
fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
