//! Benchmark of the API on SQLite: throughput and latency of `GET /v1/apps/{app}/releases`
//! and of config:set (`PATCH /v1/apps/{app}/config`), against `GET /healthz` on the same
//! server as the baseline (routing, HTTP and the client, with a trivial `SELECT 1` and no
//! authentication).
//!
//! Run with `cargo bench -p slipway-api --bench api`. The server and the load generator share
//! the machine, as they would on a one-machine install; each scenario runs several rounds and
//! the report gives medians across rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use slipway_api::{ApiConfig, ApiState, router};

/// Concurrent connections of the load generator.
const CONNECTIONS: usize = 16;
const ROUNDS: usize = 5;
const GET_REQUESTS: usize = 10_000;
const SET_REQUESTS: usize = 1_000;
/// Releases the app has while its list is read (the list returns them all).
const RELEASES: usize = 20;

struct Round {
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = store::Store::open(&url).await.expect("open store");
    let state = ApiState {
        store,
        config: Arc::new(ApiConfig {
            git_url: "ssh://git@127.0.0.1:2222".into(),
            domain: "localhost".into(),
            router_port: 8080,
            registration_open: false,
            token_ttl: std::time::Duration::from_secs(3600),
            login: slipway_api::LoginLimits::default(),
            dns_resolver: None,
            deploys: false,
        }),
        build_cache: Arc::new(slipway_api::NoBuildCache),
        repos: Arc::new(slipway_api::NoRepos),
        logs: Arc::new(logs::Logs::default()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let session: serde_json::Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"username": "bench", "password": "bench-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {token}");
    client
        .post(format!("{base}/v1/apps"))
        .header("authorization", &auth)
        .json(&json!({"name": "demo"}))
        .send()
        .await
        .unwrap();
    for i in 1..RELEASES {
        let body = json!({"values": {format!("SEED_{i}"): "value"}});
        client
            .patch(format!("{base}/v1/apps/demo/config"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await
            .unwrap();
    }

    println!(
        "API benchmark: SQLite, {CONNECTIONS} connections, {ROUNDS} rounds, medians across rounds"
    );
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9}",
        "scenario", "req/s", "p50 ms", "p99 ms", "vs base"
    );
    let health_url = format!("{base}/healthz");
    let baseline = scenario(
        "GET /healthz (baseline)",
        GET_REQUESTS,
        None,
        |c, _| c.get(&health_url),
        &client,
        &auth,
    )
    .await;
    let releases_url = format!("{base}/v1/apps/demo/releases");
    scenario(
        &format!("GET /v1/apps/demo/releases ({RELEASES})"),
        GET_REQUESTS,
        Some(baseline),
        |c, _| c.get(&releases_url),
        &client,
        &auth,
    )
    .await;
    let config_url = format!("{base}/v1/apps/demo/config");
    let counter = std::sync::atomic::AtomicU64::new(0);
    scenario(
        "PATCH /v1/apps/demo/config (set)",
        SET_REQUESTS,
        Some(baseline),
        |c, _| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            c.patch(&config_url)
                .json(&json!({"values": {"BENCH": n.to_string()}}))
        },
        &client,
        &auth,
    )
    .await;
}

/// Runs `requests` requests over `CONNECTIONS` workers, `ROUNDS` times; prints the medians.
async fn scenario<F>(
    name: &str,
    requests: usize,
    baseline: Option<f64>,
    make: F,
    client: &reqwest::Client,
    auth: &str,
) -> f64
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Sync,
{
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        rounds.push(round(requests, &make, client, auth).await);
    }
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let throughput = median(rounds.iter().map(|r| r.throughput).collect());
    let p50 = median(rounds.iter().map(|r| r.p50.as_secs_f64() * 1e3).collect());
    let p99 = median(rounds.iter().map(|r| r.p99.as_secs_f64() * 1e3).collect());
    let ratio = baseline.map_or("1.00x".to_owned(), |b| format!("{:.2}x", throughput / b));
    println!("{name:<34} {throughput:>10.0} {p50:>9.2} {p99:>9.2} {ratio:>9}");
    throughput
}

async fn round<F>(requests: usize, make: &F, client: &reqwest::Client, auth: &str) -> Round
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Sync,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let workers = (0..CONNECTIONS).map(|_| async {
        let mut latencies = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= requests {
                break latencies;
            }
            let sent = Instant::now();
            let response = make(client, i)
                .header("authorization", auth)
                .send()
                .await
                .expect("request");
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.expect("body");
            latencies.push(sent.elapsed());
        }
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Round {
        throughput: requests as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}
