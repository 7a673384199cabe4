//! Pebble, Let's Encrypt's ACME test server, per test: `pebble` with its API and management
//! interface on free loopback ports, and `pebble-challtestsrv` as its DNS server, which
//! resolves every name to 127.0.0.1, so that HTTP-01 validation of any test host reaches
//! the test's own listener on `http_port`. Both die with the test, even when it is killed.
//!
//! The binaries come from `scripts/pebble.sh`, which builds them from the Go module proxy
//! into a cache and exports `SLIPWAY_PEBBLE_BIN`; `scripts/test` does that before running the
//! suite. Without it [`Pebble::start`] returns `None` (the test skips, saying so), except in
//! CI (`CI` set), where it panics: there a missing build is a broken run, not a skip.
//!
//! Pebble issues certificates valid for [`DEFAULT_VALIDITY`] (90 days) unless
//! [`Pebble::start_with_validity`] says otherwise, chained to a root it makes at start
//! ([`Pebble::roots_pem`]). It validates at once (`PEBBLE_VA_NOSLEEP=1`), sends no
//! `Retry-After`, and still rejects 5% of nonces as Let's Encrypt may (clients retry).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{dying_with_tests, free_ports, spawner, tail};

/// The environment variable naming the directory with Pebble's binaries and certificates.
pub const PEBBLE_BIN_VAR: &str = "SLIPWAY_PEBBLE_BIN";

/// How long certificates last unless [`Pebble::start_with_validity`] says otherwise
/// (Pebble's own default).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How long [`Pebble::start`] waits for Pebble to answer.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running Pebble and its DNS server. Dropping it kills both and removes its directory.
pub struct Pebble {
    processes: Vec<Process>,
    directory_url: String,
    management_url: String,
    api_root_pem: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Pebble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pebble")
            .field("directory_url", &self.directory_url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
    exited: bool,
    log: PathBuf,
}

impl Pebble {
    /// Starts Pebble, validating HTTP-01 challenges on 127.0.0.1:`http_port`, and waits until
    /// it answers; `None` when `SLIPWAY_PEBBLE_BIN` is unset outside CI (see the module).
    pub async fn start(http_port: u16) -> Option<Pebble> {
        Pebble::start_with_validity(http_port, DEFAULT_VALIDITY).await
    }

    /// As [`Pebble::start`], issuing certificates that last `validity` (whole seconds, at
    /// least one): short ones for renewal tests.
    pub async fn start_with_validity(http_port: u16, validity: Duration) -> Option<Pebble> {
        crate::init();
        let Some(bin) = std::env::var_os(PEBBLE_BIN_VAR).map(PathBuf::from) else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{PEBBLE_BIN_VAR} is not set in CI: run the tests with scripts/test, which \
                     builds Pebble with scripts/pebble.sh"
                );
            }
            eprintln!(
                "ACME test skipped: {PEBBLE_BIN_VAR} is not set (run the tests with scripts/test, \
                 or `. scripts/pebble.sh && build_pebble` first)"
            );
            return None;
        };
        Some(start(bin, http_port, validity.as_secs().max(1)).await)
    }

    /// The ACME directory URL, `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// The CA (PEM) of the certificate Pebble's own HTTPS API serves: what an ACME client
    /// must trust to talk to it.
    pub fn api_root_pem(&self) -> &str {
        &self.api_root_pem
    }

    /// The root (PEM) Pebble made at start and chains issued certificates to: what a test
    /// trusts to verify them.
    pub async fn roots_pem(&self) -> String {
        let url = format!("{}/roots/0", self.management_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// The last `lines` lines of `pebble`'s or `pebble-challtestsrv`'s log.
    pub async fn log_tail(&self, name: &str, lines: usize) -> String {
        match self.processes.iter().find(|p| p.name == name) {
            Some(p) => tail(&p.log, lines).await,
            None => String::new(),
        }
    }
}

async fn start(bin: PathBuf, http_port: u16, validity_secs: u64) -> Pebble {
    for name in [
        "pebble",
        "pebble-challtestsrv",
        "cert.pem",
        "key.pem",
        "pebble.minica.pem",
    ] {
        let path = bin.join(name);
        assert!(
            tokio::fs::try_exists(&path).await.unwrap_or(false),
            "{} is missing: rebuild Pebble with scripts/pebble.sh",
            path.display()
        );
    }
    let api_root_pem = tokio::fs::read_to_string(bin.join("pebble.minica.pem"))
        .await
        .expect("read pebble.minica.pem");
    let ports = free_ports(4).expect("free loopback ports for Pebble");
    let (listen, management, tls, challtestsrv_management) =
        (ports[0], ports[1], ports[2], ports[3]);
    let dns = tokio::task::spawn_blocking(free_dns_port)
        .await
        .expect("finding a port does not panic");
    let dir = tempfile::Builder::new()
        .prefix("slipway-pebble-")
        .tempdir()
        .expect("create a temporary directory for Pebble");
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": bin.join("cert.pem"),
            "privateKey": bin.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "retryAfter": { "authz": 0, "order": 0 },
            "keyAlgorithm": "ecdsa",
            "profiles": {
                "default": {
                    "description": "Slipway's tests",
                    "validityPeriod": validity_secs,
                },
            },
        },
    });
    let config_path = dir.path().join("pebble-config.json");
    tokio::fs::write(&config_path, config.to_string())
        .await
        .expect("write Pebble's configuration");

    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(api_root_pem.as_bytes())
            .expect("pebble.minica.pem is a certificate")])
        // Pebble refuses requests without a User-Agent, as RFC 8555 allows.
        .user_agent("slipway-test-support")
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client for Pebble");
    let mut pebble = Pebble {
        processes: Vec::new(),
        directory_url: format!("https://127.0.0.1:{listen}/dir"),
        management_url: format!("https://127.0.0.1:{management}"),
        api_root_pem,
        http,
        dir,
    };
    let deadline = Instant::now() + START_DEADLINE;

    pebble
        .spawn(
            "pebble-challtestsrv",
            &bin,
            &[
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
                "-defaultIPv4",
                "127.0.0.1",
                // No AAAA answers: the test's listener is on IPv4.
                "-defaultIPv6",
                "",
                "-management",
                &format!("127.0.0.1:{challtestsrv_management}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-doh",
                "",
            ],
            &[],
        )
        .await;
    // Its DNS server answers over TCP as well as UDP; a TCP connection shows it listens.
    pebble
        .wait_until("pebble-challtestsrv", deadline, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", dns))
                .await
                .map(drop)
                .map_err(|e| format!("connect to its DNS port {dns}: {e}"))
        })
        .await;

    pebble
        .spawn(
            "pebble",
            &bin,
            &[
                "-config",
                &config_path.display().to_string(),
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ],
            &[("PEBBLE_VA_NOSLEEP", "1")],
        )
        .await;
    let http = pebble.http.clone();
    let url = pebble.directory_url.clone();
    pebble
        .wait_until("pebble", deadline, || async {
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("GET {url}: {}", r.status())),
                Err(e) => Err(format!("GET {url}: {e:?}")),
            }
        })
        .await;
    pebble
}

/// A loopback port free for both TCP and UDP (the DNS server listens on both).
fn free_dns_port() -> u16 {
    for _ in 0..100 {
        let port = free_ports(1).expect("a free loopback port")[0];
        if UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port is free for both TCP and UDP");
}

impl Pebble {
    async fn spawn(&mut self, name: &'static str, bin: &Path, args: &[&str], env: &[(&str, &str)]) {
        let log = self.dir.path().join(format!("{name}.log"));
        let out = tokio::fs::File::create(&log)
            .await
            .expect("create a log file for Pebble")
            .into_std()
            .await;
        let err = out.try_clone().expect("reopen Pebble's log file");
        let program = bin.join(name);
        let mut command = dying_with_tests(&program).await;
        command
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let (reply, spawned) = tokio::sync::oneshot::channel();
        spawner()
            .send((command, reply))
            .expect("the spawner thread runs as long as the process");
        let child = spawned
            .await
            .expect("the spawner thread answers every request")
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        self.processes.push(Process {
            name,
            child,
            exited: false,
            log,
        });
    }

    /// Polls `ready` with a short backoff; panics with the last failure and the log of
    /// `name` when a process exits or the deadline passes.
    async fn wait_until<F, Fut>(&mut self, name: &str, deadline: Instant, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut pause = Duration::from_millis(10);
        loop {
            for process in &mut self.processes {
                if let Ok(Some(status)) = process.child.try_wait() {
                    process.exited = true;
                    panic!(
                        "{} exited ({status}) while starting; its log ends:\n{}",
                        process.name,
                        tail(&process.log, 30).await
                    );
                }
            }
            let last = match ready().await {
                Ok(()) => return,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "{name} did not answer within {} s ({last}); its log ends:\n{}",
                    START_DEADLINE.as_secs(),
                    self.log_tail(name, 30).await
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for process in &mut self.processes {
            if process.exited {
                continue;
            }
            if let Some(pid) = rustix::process::Pid::from_raw(process.child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            // Reap it (SIGKILL is immediate) before its directory goes.
            let until = Instant::now() + Duration::from_secs(2);
            while matches!(process.child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
