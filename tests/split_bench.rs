//! Benchmark of the platform split into processes: the time from `slip config:set` to the
//! router serving the new release, with 1 `slipwayd api`, 1 `slipwayd gateway` and 2
//! `slipwayd releaser` (one active, one standing by; the local runtime) on one PostgreSQL,
//! against `slipwayd up` on PostgreSQL as the baseline measured in this same run, and `up` on
//! SQLite for scale.
//!
//! The app is a small Python HTTP server answering with a config var; each sample sets it to a
//! new value and polls the router every 10 ms until that value comes back. The three set-ups
//! run side by side and take turns, one sample each, so a busy moment of the machine falls on
//! all of them.
//!
//! Needs `SLIPWAY_TEST_POSTGRES_URL` (`scripts/bench` starts a throwaway PostgreSQL). Run with
//! `scripts/bench`, or `cargo build --release --bins && cargo bench -p slipway-e2e --bench
//! split_bench`.

use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Cluster, PASSWORD, Platform, User, http_get};

/// Samples per set-up, after one untimed warm-up each.
const SAMPLES: usize = 7;
/// How often the router is asked whether the new release serves.
const POLL: Duration = Duration::from_millis(10);
/// The longest one sample may take before the benchmark gives up.
const LIMIT: Duration = Duration::from_secs(120);
const APP: &str = "bench";

const APP_PY: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ.get("K", "none") + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn main() {
    test_support::init();
    if std::env::var_os(test_support::POSTGRES_URL_VAR).is_none() {
        eprintln!(
            "error: {} is not set: run scripts/bench, which starts PostgreSQL, or point it at a server",
            test_support::POSTGRES_URL_VAR
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let up_pg = runtime
        .block_on(Platform::start(Backend::Postgres))
        .expect("PostgreSQL is there (checked at start)");
    let up_sqlite = runtime
        .block_on(Platform::start(Backend::Sqlite))
        .expect("SQLite is always there");
    let cluster = runtime
        .block_on(Cluster::start(1, 1, 10))
        .expect("PostgreSQL is there (checked at start)");

    let mut setups = [
        Setup::deployed(
            "up, PostgreSQL",
            &up_pg.api_url,
            &up_pg.ssh_url,
            &up_pg.router,
        ),
        Setup::deployed(
            "split, PostgreSQL",
            &cluster.apis[0],
            &cluster.gateways[0],
            &cluster.routers[0],
        ),
        Setup::deployed(
            "up, SQLite",
            &up_sqlite.api_url,
            &up_sqlite.ssh_url,
            &up_sqlite.router,
        ),
    ];
    for setup in &mut setups {
        setup.sample(0);
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); setups.len()];
    for n in 1..=SAMPLES {
        for (setup, times) in setups.iter_mut().zip(&mut samples) {
            times.push(setup.sample(n));
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|t| ms(median(t))).collect();
    println!(
        "split benchmark: config:set until the router serves the new release, median of {SAMPLES}"
    );
    println!(
        "slipwayd up, PostgreSQL                              {:>8.1} ms",
        medians[0]
    );
    println!(
        "api + gateway + 2 releasers, PostgreSQL              {:>8.1} ms   ratio split/up {:.2}x",
        medians[1],
        medians[1] / medians[0]
    );
    println!(
        "slipwayd up, SQLite                                  {:>8.1} ms   ratio to up on PostgreSQL {:.2}x",
        medians[2],
        medians[2] / medians[0]
    );
    for (setup, times) in setups.iter().zip(&samples) {
        let all: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
        println!("  {:<20} samples (ms): {}", setup.label, all.join(" "));
    }
    drop(cluster);
}

/// An app deployed on one platform, and its owner.
struct Setup {
    label: &'static str,
    user: User,
    router: String,
}

impl Setup {
    /// Registers a user on the API at `api`, creates the app and pushes it through `ssh_url`.
    fn deployed(label: &'static str, api: &str, ssh_url: &str, router: &str) -> Setup {
        let mut user = User::new();
        user.slip(&["register", api, "--username", "ada", "--password", PASSWORD])
            .success();
        let key = user.ssh_key();
        user.slip(&["keys:add", &format!("{}.pub", key.display())])
            .success();
        let dir = user.home().join(APP);
        std::fs::create_dir_all(&dir).unwrap();
        user.cwd = dir.clone();
        std::fs::write(dir.join("app.py"), APP_PY).unwrap();
        std::fs::write(dir.join("Procfile"), "web: python3 app.py\n").unwrap();
        user.git(&["init", "-q", "-b", "main"]).success();
        user.git(&["add", "-A"]).success();
        user.git(&["commit", "-q", "-m", "app"]).success();
        user.slip(&["create", APP]).success();
        let push = user.git(&["push", "-q", &format!("{ssh_url}/{APP}.git"), "main"]);
        assert!(push.ok, "{label}: push: {}", push.stderr);
        assert!(
            push.stderr.contains("deployed to http://"),
            "{}",
            push.stderr
        );
        Setup {
            label,
            user,
            router: router.to_owned(),
        }
    }

    /// `slip config:set K=v<n>`, timed until the router serves `v<n>`.
    fn sample(&mut self, n: usize) -> Duration {
        let value = format!("v{n}");
        let expected = format!("{value}\n");
        let host = format!("{APP}.localhost");
        let (user, router, label) = (&self.user, &self.router, self.label);
        std::thread::scope(|scope| {
            let started = Instant::now();
            let setting =
                scope.spawn(|| user.slip(&["config:set", &format!("K={value}"), "-a", APP]));
            let took = loop {
                if http_get(router, &host, "/")
                    .is_ok_and(|(status, body)| status == 200 && body == expected)
                {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < LIMIT,
                    "{label}: {value} did not serve within {LIMIT:?}"
                );
                std::thread::sleep(POLL);
            };
            let set = setting.join().unwrap();
            assert!(set.ok, "{label}: config:set: {}", set.stderr);
            took
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
