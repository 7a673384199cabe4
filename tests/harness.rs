//! The end-to-end harness: starts the real `slipwayd` on random ports with its own data
//! directory, and runs the real `slip` (and `git`, `ssh-keygen`) as a user would, each user
//! with their own `HOME` and `XDG_CONFIG_HOME`.
//!
//! The binaries come from the same target directory as the test; `scripts/test` builds them
//! first (`cargo build --workspace --bins`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub use test_support::Backend;
use test_support::TestDatabase;

/// A binary of this workspace, next to the test executable's `deps/` directory.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A running `slipwayd up`, stopped (SIGINT, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Platform {
    child: Option<Child>,
    pub api_url: String,
    /// `ssh://git@127.0.0.1:PORT`, where `git push` goes.
    pub ssh_url: String,
    /// `127.0.0.1:PORT`, where the router serves the apps.
    pub router: String,
    /// `127.0.0.1:PORT`, where the router serves the apps over HTTPS.
    pub https: String,
    /// Extra arguments for `slipwayd up`.
    args: Vec<String>,
    pub data_dir: PathBuf,
    pub database_url: String,
    _db: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl Platform {
    /// Starts a platform on a fresh database of `backend`; `None` when PostgreSQL is skipped.
    pub async fn start(backend: Backend) -> Option<Platform> {
        Platform::start_with(backend, &[]).await
    }

    /// Like [`Platform::start`], with extra arguments for `slipwayd up`.
    pub async fn start_with(backend: Backend, args: &[&str]) -> Option<Platform> {
        Platform::start_routed(backend, args, "127.0.0.1:0").await
    }

    /// Like [`Platform::start_with`], the router's HTTP on `router` (`127.0.0.1:PORT`): for a
    /// test whose other servers must know the port first (an ACME server validating there).
    pub async fn start_routed(backend: Backend, args: &[&str], router: &str) -> Option<Platform> {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let (database_url, db) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", data_dir.join("slipway.db").display()),
                None,
            ),
            Backend::Postgres => {
                let db = TestDatabase::new(Backend::Postgres).await?;
                (db.url.clone(), Some(db))
            }
        };
        let mut platform = Platform {
            child: None,
            api_url: String::new(),
            ssh_url: String::new(),
            router: if router.ends_with(":0") {
                String::new()
            } else {
                router.to_owned()
            },
            https: String::new(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            data_dir,
            database_url,
            _db: db,
            _dir: dir,
        };
        platform.boot();
        Some(platform)
    }

    /// Starts `slipwayd up` on this platform's data and waits until it listens.
    pub fn boot(&mut self) {
        let mut child = Command::new(binary("slipwayd"))
            .args([
                "up",
                "--api-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
                "--router-listen",
                // The same port again after a restart, so the apps' URLs stay.
                if self.router.is_empty() {
                    "127.0.0.1:0"
                } else {
                    &self.router
                },
                "--https-listen",
                if self.https.is_empty() {
                    "127.0.0.1:0"
                } else {
                    &self.https
                },
            ])
            .args(&self.args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.database_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start slipwayd");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut api_url, mut ssh_url, mut router, mut https) = (None, None, None, None);
        while api_url.is_none() || ssh_url.is_none() || router.is_none() || https.is_none() {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("api: ") {
                        api_url = Some(url.to_owned());
                    } else if let Some(url) = line.strip_prefix("ssh: ") {
                        ssh_url = Some(url.to_owned());
                    } else if let Some(url) = line.strip_prefix("router: http://") {
                        router = Some(url.to_owned());
                    } else if let Some(url) = line.strip_prefix("router: https://") {
                        https = Some(url.to_owned());
                    } else if line == "releaser: deploying to Kubernetes" {
                        // The cluster's ingress controller routes, not slipwayd.
                        router = Some(String::new());
                        https = Some(String::new());
                    }
                }
                _ => panic!("slipwayd exited before listening: {:?}", child.wait()),
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.api_url = api_url.expect("read above");
        self.ssh_url = ssh_url.expect("read above");
        self.router = router.expect("read above");
        self.https = https.expect("read above");
        self.child = Some(child);
    }

    /// Sends SIGINT (Ctrl-C) and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the platform is running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
        wait_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("slipwayd did not stop within 20 s of SIGINT")
        })
    }

    /// Makes the run image `name` (busybox-static from Debian) in this platform's image store,
    /// with `slipwayd run-image`.
    pub fn make_run_image(&self, name: &str) {
        let made = Command::new(binary("slipwayd"))
            .args(["run-image", "--name", name, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("run slipwayd run-image");
        assert!(
            made.status.success(),
            "slipwayd run-image: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the platform is running").id()
    }

    /// Whether the server is still running (it has not exited, for whatever reason).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().expect("wait").is_none())
    }

    /// Kills the server without warning, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the platform is running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` from `address` with `Host: host`, on a connection of its own (HTTP/1.1,
/// `Connection: close`): the status and the body.
pub fn http_get(address: &str, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery";

/// One person at a terminal: their own home, config directory and working directory.
#[derive(Debug)]
pub struct User {
    home: tempfile::TempDir,
    pub cwd: PathBuf,
    /// More environment for every command (a CI job's `SLIPWAY_URL` and `SLIPWAY_TOKEN`).
    pub env: Vec<(String, String)>,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            ok: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(
            self.ok,
            "expected success, got {:?}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON (`--json` output).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.success()).expect("JSON on stdout")
    }

    /// Asserts failure with exactly one line on stderr, and returns that line.
    #[track_caller]
    pub fn failure(&self) -> &str {
        assert!(
            !self.ok,
            "expected failure\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        let line = self.stderr.trim_end();
        assert_eq!(
            line.lines().count(),
            1,
            "one line on stderr: {:?}",
            self.stderr
        );
        line
    }
}

impl User {
    pub fn new() -> User {
        let home = tempfile::tempdir().expect("temp home");
        let cwd = home.path().to_path_buf();
        User {
            home,
            cwd,
            env: Vec::new(),
        }
    }

    /// A CI job: no credentials file, only `SLIPWAY_URL` and `SLIPWAY_TOKEN` in its
    /// environment, and `GIT_SSH_COMMAND` with its own key (made by [`User::ssh_key`]).
    pub fn ci(api_url: &str, token: &str) -> User {
        let mut user = User::new();
        user.env = vec![
            ("SLIPWAY_URL".to_owned(), api_url.to_owned()),
            ("SLIPWAY_TOKEN".to_owned(), token.to_owned()),
        ];
        user
    }

    /// A user registered on `platform` as `username` (the first user registers themselves
    /// and becomes admin), with their SSH key added.
    pub fn registered(platform: &Platform, username: &str) -> User {
        User::registered_at(&platform.api_url, username)
    }

    /// A user registered at the API `api_url` as `username` (the first registers themselves
    /// and becomes admin), with their SSH key added.
    pub fn registered_at(api_url: &str, username: &str) -> User {
        let user = User::new();
        user.slip(&[
            "register",
            api_url,
            "--username",
            username,
            "--password",
            PASSWORD,
        ])
        .success();
        let key = user.ssh_key();
        user.slip(&["keys:add", &format!("{}.pub", key.display())])
            .success();
        user
    }

    /// A user the admin `admin` registers on `platform` as `username`, logged in, with their
    /// SSH key added.
    pub fn registered_by(platform: &Platform, admin: &User, username: &str) -> User {
        let user = User::new();
        let credentials = ["--username", username, "--password", PASSWORD];
        admin
            .slip(&[&["register", &platform.api_url][..], &credentials].concat())
            .success();
        user.slip(&[&["login", &platform.api_url][..], &credentials].concat())
            .success();
        let key = user.ssh_key();
        user.slip(&["keys:add", &format!("{}.pub", key.display())])
            .success();
        user
    }

    /// Pushes `main` to the `slipway` remote, asserts it deployed, and returns what the
    /// pusher saw.
    #[track_caller]
    pub fn push_deployed(&self) -> String {
        let run = self.git(&["push", "-q", "slipway", "main"]);
        assert!(run.ok, "push failed: {}", run.stderr);
        assert!(run.stderr.contains("deployed to http://"), "{}", run.stderr);
        run.stderr
    }

    /// The API token `slip` saved when the user registered or logged in.
    pub fn saved_token(&self) -> String {
        let path = self.home().join(".config/slipway/credentials.json");
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("saved credentials")).unwrap();
        saved["token"].as_str().expect("a saved token").to_owned()
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The user's SSH key, made with the real `ssh-keygen` on first use.
    pub fn ssh_key(&self) -> PathBuf {
        let key = self.home.path().join(".ssh").join("id_ed25519");
        if !key.exists() {
            std::fs::create_dir_all(key.parent().unwrap()).unwrap();
            let made = self.run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "test@slipway",
                    "-f",
                    key.to_str().unwrap(),
                ],
            );
            made.success();
        }
        key
    }

    /// A git command wired as `git push` would be on a laptop: the user's key, no host-key prompts.
    pub fn git_command(&self, args: &[&str]) -> Command {
        let mut command = self.command("git");
        command.args(args);
        command
    }

    /// Runs `git ARGS`.
    pub fn git(&self, args: &[&str]) -> Run {
        Run::from(self.git_command(args).output().expect("run git"))
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                    self.home.path().join(".ssh").join("id_ed25519").display()
                ),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs `slip ARGS`.
    pub fn slip(&self, args: &[&str]) -> Run {
        Run::from(
            self.command(binary("slip"))
                .args(args)
                .output()
                .expect("run slip"),
        )
    }

    /// Runs any other program (git, ssh-keygen) in the user's environment.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        Run::from(
            self.command(program)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("run {program}: {e}")),
        )
    }
}

impl Default for User {
    fn default() -> User {
        User::new()
    }
}

/// Declares `mod name { sqlite, postgres }` for each `fn name(platform: Platform) { … }`:
/// the body runs against a fresh platform on each backend, on a blocking thread (it drives
/// processes). The PostgreSQL half is skipped only when `SLIPWAY_TEST_POSTGRES=skip`.
#[macro_export]
macro_rules! both_backends {
    ($(fn $name:ident($platform:ident: Platform) $body:block)*) => {$(
        mod $name {
            use super::*;
            fn run($platform: $crate::Platform) $body

            #[tokio::test]
            async fn sqlite() {
                let platform = $crate::Platform::start($crate::Backend::Sqlite).await.expect("sqlite is always there");
                tokio::task::spawn_blocking(move || run(platform)).await.unwrap();
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(platform) = $crate::Platform::start($crate::Backend::Postgres).await {
                    tokio::task::spawn_blocking(move || run(platform)).await.unwrap();
                }
            }
        }
    )*};
}

/// Polls `done` until it holds, for at most `limit`.
#[track_caller]
pub fn eventually(limit: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One `slipwayd` process of the platform run apart (`api`, `gateway`, `releaser`) and the
/// lines it prints; stopped (SIGINT, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Piece {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Piece {
    /// Starts `slipwayd ROLE ARGS` on the data directory and database given.
    pub fn start(role: &str, data_dir: &Path, database_url: &str, args: &[&str]) -> Piece {
        let mut child = Command::new(binary("slipwayd"))
            .arg(role)
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--database-url")
            .arg(database_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start slipwayd");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Read on when nobody listens, so the process never blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        Piece { child, lines }
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    #[track_caller]
    pub fn wait_for(&self, prefix: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("no line starting with {prefix:?} within {limit:?}"),
            }
        }
    }

    /// Kills the process outright, as a crash would.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        if wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port free now, for a process to listen on later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// The platform run apart on one PostgreSQL and one data directory, as on one machine: two
/// `releaser`s (the first runs the apps, the second, started after, stands by), and `gateways`
/// gateways and `apis` APIs (API `n` names gateway `n % gateways` as its git URL). Dropped,
/// the APIs and gateways stop first, the release managers last.
#[derive(Debug)]
pub struct Cluster {
    /// `ssh://git@127.0.0.1:PORT` of each gateway.
    pub gateways: Vec<String>,
    /// `http://127.0.0.1:PORT` of each API.
    pub apis: Vec<String>,
    /// `127.0.0.1:PORT` of each releaser's router, by releaser.
    pub routers: Vec<String>,
    pub data_dir: PathBuf,
    pieces: Vec<Piece>,
    pub releasers: Vec<Piece>,
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

impl Cluster {
    /// Starts it with a lease of `lease_secs`; `None` when PostgreSQL is skipped.
    pub async fn start(gateways: usize, apis: usize, lease_secs: u32) -> Option<Cluster> {
        let db = TestDatabase::new(Backend::Postgres).await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let url = db.url.clone();
        let limit = Duration::from_secs(60);
        let lease = lease_secs.to_string();
        let routers: Vec<String> = (0..2)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let releaser = |router: &str| {
            let https = format!("127.0.0.1:{}", free_port());
            Piece::start(
                "releaser",
                &data_dir,
                &url,
                &[
                    "--router-listen",
                    router,
                    "--https-listen",
                    &https,
                    "--api-listen",
                    "127.0.0.1:0",
                    "--lease",
                    &lease,
                ],
            )
        };
        let first = releaser(&routers[0]);
        first.wait_for("router: http://", limit);
        let second = releaser(&routers[1]);
        second.wait_for("releaser: standing by", limit);
        let mut pieces = Vec::new();
        let mut gateway_urls = Vec::new();
        for _ in 0..gateways {
            let gateway = Piece::start(
                "gateway",
                &data_dir,
                &url,
                &[
                    "--ssh-listen",
                    "127.0.0.1:0",
                    "--router-listen",
                    &routers[0],
                ],
            );
            gateway_urls.push(gateway.wait_for("ssh: ", limit));
            pieces.push(gateway);
        }
        let mut api_urls = Vec::new();
        for n in 0..apis {
            let git = gateway_urls[n % gateway_urls.len()].trim_start_matches("ssh://git@");
            let api = Piece::start(
                "api",
                &data_dir,
                &url,
                &[
                    "--api-listen",
                    "127.0.0.1:0",
                    "--ssh-listen",
                    git,
                    "--router-listen",
                    &routers[0],
                ],
            );
            api_urls.push(api.wait_for("api: ", limit));
            pieces.push(api);
        }
        Some(Cluster {
            gateways: gateway_urls,
            apis: api_urls,
            routers,
            data_dir,
            pieces,
            releasers: vec![first, second],
            _dir: dir,
            _db: db,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The APIs and gateways first, then the release managers.
        self.pieces.clear();
        self.releasers.clear();
    }
}

/// TXT records by name, as [`dns_server`] answers them.
pub type Zone = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>;

/// Answers TXT queries from `zone` (one value a name), NXDOMAIN otherwise; returns its address.
pub fn dns_server(zone: Zone) -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(query) = hickory_proto::op::Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = hickory_proto::op::Message::new(
                query.metadata.id,
                hickory_proto::op::MessageType::Response,
                query.metadata.op_code,
            );
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
            for q in &query.queries {
                reply.add_query(q.clone());
                let name = q
                    .name()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                if let Some(value) = zone.lock().unwrap().get(&name).cloned() {
                    reply.metadata.response_code = hickory_proto::op::ResponseCode::NoError;
                    if q.query_type() == hickory_proto::rr::RecordType::TXT {
                        let txt = hickory_proto::rr::RData::TXT(
                            hickory_proto::rr::rdata::TXT::new(vec![value]),
                        );
                        reply.add_answer(hickory_proto::rr::Record::from_rdata(
                            q.name().clone(),
                            0,
                            txt,
                        ));
                    }
                }
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    });
    addr
}

/// `POST path` with a JSON `body` to the API at `api_url` with `token`, over a plain socket
/// (benchmarks time it without a client library's overhead); asserts a 201.
pub fn api_post(api_url: &str, token: &str, path: &str, body: &str) {
    use std::io::{Read, Write};
    let address = api_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

/// A web app that answers `<GREETING> <code>` and names the process that answered; `/health`
/// answers with the status in `HEALTH_STATUS` (200 by default).
pub fn python_app(code: &str) -> String {
    format!(
        r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        status = int(os.environ.get("HEALTH_STATUS", "200")) if self.path == "/health" else 200
        body = ("%s {code} %s\n" % (os.environ.get("GREETING", "none"), os.environ["DYNO"])).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("%s %s" % (self.command, self.path), flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}
