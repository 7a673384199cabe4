//! Benchmark of the dashboard on SQLite: the server's time to first byte of the activity
//! page of an app with 500 releases (its newest page, and one from the middle) and of the
//! apps list with 200 apps, against `GET /healthz` on the same server as the baseline
//! (accepting, HTTP and the client, with a trivial `SELECT 1`, no session and no page).
//!
//! The data is made through the store's own functions, as the platform makes it: an owner
//! (not an admin) with 200 apps of their own or shared with them (and 30 of another user's
//! they may not see); one app has 500 releases — config changes, builds, rollbacks, failed
//! builds and failed deploys, each deploy with its timings. The client signs in with the
//! dashboard's own form and keeps the session cookie. Each request is a fixed HTTP/1.1
//! request written on a keep-alive connection; its time to first byte runs from the write to
//! the first byte of the response head, and the rest of the response is read before the next
//! request. One connection (latency), then 8 at once; every answer is checked (status 200,
//! and the pages' content where it matters). The aim of issue 13 is p99 under 20 ms.
//!
//! Run with `cargo bench -p slipway-api --bench dashboard`. The server and the client share
//! the machine; each measurement runs several rounds and the report gives medians across
//! rounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use domain::{AppName, ConfigChange, ReleaseStatus, ReleaseVersion, Username};
use slipway_api::{ApiConfig, ApiState, router};
use store::{App, BuildSource, BuildStatus, ConfigOutcome, NewUser, Store, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUNDS: usize = 5;
/// Requests per page per round, after `WARM_UP` unmeasured ones.
const REQUESTS: usize = 2_000;
const WARM_UP: usize = 200;
/// Connections of the concurrent measurement.
const CONNECTIONS: usize = 8;
/// Releases of the big app, and apps in the owner's list.
const RELEASES: u32 = 500;
const APPS: usize = 200;
/// Of the apps in the list, those another user owns and shares with the owner.
const SHARED: usize = 50;
/// Apps of another user the owner may not see.
const HIDDEN: usize = 30;
/// The issue's aim for p99.
const AIM: Duration = Duration::from_millis(20);
const HOST: &str = "dashboard.test";
const USERNAME: &str = "owner";
const PASSWORD: &str = "bench-password-1";

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// A page to measure, and what its body must show.
struct Target {
    name: String,
    path: String,
    check: fn(&str),
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("open store");
    let seeding = Instant::now();
    seed(&store).await;
    let seeded = seeding.elapsed();
    let state = ApiState {
        store: store.clone(),
        config: Arc::new(ApiConfig {
            git_url: "ssh://git@127.0.0.1:2222".into(),
            domain: "localhost".into(),
            router_port: 8080,
            registration_open: false,
            token_ttl: Duration::from_secs(3600),
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
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let cookie = sign_in(addr).await;

    let targets = [
        Target {
            name: "GET /healthz (baseline)".into(),
            path: "/healthz".into(),
            check: |_| {},
        },
        Target {
            name: format!("GET /apps/big/activity ({RELEASES})"),
            path: "/apps/big/activity".into(),
            check: check_newest_activity,
        },
        Target {
            name: "GET /apps/big/activity?before=250".into(),
            path: "/apps/big/activity?before=250".into(),
            check: check_middle_activity,
        },
        Target {
            name: format!("GET / ({APPS} apps)"),
            path: "/".into(),
            check: check_apps_list,
        },
    ];
    // Each page's body, checked once before anything is timed.
    for target in &targets {
        let mut stream = connect(addr).await;
        let request = request(&target.path, &cookie);
        let (_, response) = exchange(&mut stream, &request).await;
        assert_eq!(response.status, 200, "{}: {}", target.path, response.body);
        (target.check)(&response.body);
    }

    println!(
        "dashboard benchmark: SQLite, server time to first byte over keep-alive HTTP/1.1, \
         {REQUESTS} requests a page a round, {ROUNDS} rounds, medians across rounds \
         (seeded in {:.1} s, not measured)",
        seeded.as_secs_f64()
    );
    println!(
        "{:<36} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "page", "conns", "p50 ms", "p99 ms", "p50 x", "p99 x", "KiB"
    );
    for connections in [1, CONNECTIONS] {
        // Rounds interleave the pages, so a busy moment of the machine does not fall on one.
        let mut rounds: Vec<Vec<Round>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..ROUNDS {
            for (target, results) in targets.iter().zip(rounds.iter_mut()) {
                results.push(round(addr, target, &cookie, connections).await);
            }
        }
        let medians: Vec<(f64, f64, usize)> = rounds
            .iter()
            .map(|r| {
                (
                    median(r.iter().map(|r| ms(r.p50)).collect()),
                    median(r.iter().map(|r| ms(r.p99)).collect()),
                    r[0].bytes,
                )
            })
            .collect();
        let (base50, base99, _) = medians[0];
        for (target, (p50, p99, bytes)) in targets.iter().zip(&medians) {
            let verdict = if target.path == "/healthz" {
                String::new()
            } else if *p99 < ms(AIM) {
                format!("  pass (< {} ms)", AIM.as_millis())
            } else {
                format!("  FAIL (aim < {} ms)", AIM.as_millis())
            };
            println!(
                "{:<36} {connections:>6} {p50:>9.2} {p99:>9.2} {:>7.1}x {:>7.1}x {:>8.1}{verdict}",
                target.name,
                p50 / base50,
                p99 / base99,
                *bytes as f64 / 1024.0,
            );
        }
    }
    store_share(&store, &cookie).await;
    println!(
        "(the server and the client share this machine's {} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
}

/// The store's part of each page: the queries its handler makes, timed alone on one task
/// (p50 and p99 over `REQUESTS` runs); the rest of a page's time is HTTP and rendering.
async fn store_share(store: &Store, cookie: &str) {
    let secret = cookie.split_once('=').unwrap().1;
    let secret_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret));
    let user = store
        .session(&secret_hash)
        .await
        .unwrap()
        .expect("the session")
        .user;
    let (big, _) = store.app_access("big", &user).await.unwrap();
    let middle = ReleaseVersion::new(250);
    println!("the store's part alone (the handler's queries, one after another, one task):");
    for (name, before) in [("activity (500)", None), ("activity?before=250", middle)] {
        let took = timed(|| async {
            store.session(&secret_hash).await.unwrap();
            store.app_access("big", &user).await.unwrap();
            let releases = store.releases_before(&big, before, 51).await.unwrap();
            store.current_version(&big).await.unwrap();
            let since = releases.get(50).map(|r| r.created_at);
            let until = before.and(releases.first().map(|r| r.created_at));
            store.builds_between(&big, since, until, 110).await.unwrap();
        })
        .await;
        println!(
            "  {name:<34} p50 {:>6.2} ms  p99 {:>6.2} ms",
            ms(took.0),
            ms(took.1)
        );
    }
    let took = timed(|| async {
        store.session(&secret_hash).await.unwrap();
        store.app_summaries(&user).await.unwrap();
    })
    .await;
    println!(
        "  {:<34} p50 {:>6.2} ms  p99 {:>6.2} ms",
        "apps list (200)",
        ms(took.0),
        ms(took.1)
    );
}

async fn timed<F, Fut>(run: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARM_UP {
        run().await;
    }
    let mut took = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        run().await;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    (took[took.len() / 2], took[took.len() * 99 / 100])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The data: an admin (the platform's first user), the owner, the owner's apps and the ones
/// shared with them, and the big app's history.
async fn seed(store: &Store) {
    let admin = create_user(store, "admin").await;
    assert!(admin.admin, "the first user is the admin");
    let owner = create_user(store, USERNAME).await;
    assert!(!owner.admin, "the owner is not an admin");

    let big = store
        .create_app(&AppName::parse("big").unwrap(), &owner)
        .await
        .unwrap();
    big_history(store, &big, &owner).await;
    for n in 1..APPS - SHARED {
        let app = store
            .create_app(&AppName::parse(&format!("app-{n:03}")).unwrap(), &owner)
            .await
            .unwrap();
        small_history(store, &app, &owner, n).await;
    }
    for n in 0..SHARED + HIDDEN {
        let name = if n < SHARED {
            format!("shared-{n:03}")
        } else {
            format!("hidden-{n:03}")
        };
        let app = store
            .create_app(&AppName::parse(&name).unwrap(), &admin)
            .await
            .unwrap();
        small_history(store, &app, &admin, n).await;
        if n < SHARED {
            store
                .add_collaborator(&app, USERNAME, &admin)
                .await
                .unwrap();
        }
    }
}

async fn create_user(store: &Store, name: &str) -> User {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    store
        .create_user(&Username::parse(name).unwrap(), &hash, NewUser::Any)
        .await
        .unwrap()
        .expect("a new user")
}

/// What `big_history` makes release `n`.
#[derive(PartialEq)]
enum Kind {
    Rollback,
    Push,
    Config,
}

fn kind(n: u32) -> Kind {
    match (n % 20, n % 5) {
        (0, _) if n >= 20 => Kind::Rollback,
        (_, 0 | 2) => Kind::Push,
        _ => Kind::Config,
    }
}

/// How many of the releases `versions` are pushes of new code.
fn pushes(versions: std::ops::RangeInclusive<u32>) -> usize {
    versions.filter(|n| kind(*n) == Kind::Push).count()
}

/// The big app's 500 releases (v1 is its creation): two of five are pushes of new code,
/// one in twenty a rollback, the rest config changes; one push in eight fails to build
/// first (a build without a release), and one deploy in 40 fails.
async fn big_history(store: &Store, app: &App, user: &User) {
    for n in 2..=RELEASES {
        let release = match kind(n) {
            Kind::Rollback => store.rollback(app, None, user, true).await.unwrap(),
            Kind::Push => {
                if n % 8 == 2 {
                    build(store, app, user, n, BuildStatus::Failed).await;
                }
                let id = build(store, app, user, n, BuildStatus::Succeeded).await;
                store.release_build(app, id, user).await.unwrap()
            }
            Kind::Config => config_change(store, app, user, n).await,
        };
        assert_eq!(release.version.get(), n, "releases are numbered in order");
        let failed = n % 40 == 13;
        deploy(store, app, release.version, n % 5 == 0, failed).await;
    }
}

/// A small app's few releases: a push, a config change, another push.
async fn small_history(store: &Store, app: &App, user: &User, n: usize) {
    for step in 0..3u32 {
        let release = if step == 1 {
            config_change(store, app, user, step).await
        } else {
            let id = build(store, app, user, step, BuildStatus::Succeeded).await;
            store.release_build(app, id, user).await.unwrap()
        };
        // One app in 25 has its last deploy failed.
        let failed = step == 2 && n % 25 == 7;
        deploy(store, app, release.version, false, failed).await;
    }
}

async fn build(store: &Store, app: &App, user: &User, n: u32, status: BuildStatus) -> uuid::Uuid {
    let commit = format!("{:040x}", 0x5eed_0000_u64 + u64::from(n));
    let build = store
        .create_build(app, &BuildSource::Commit(commit), user)
        .await
        .unwrap();
    let procfile = [
        ("web".to_owned(), "bin/server --port $PORT".to_owned()),
        ("worker".to_owned(), "bin/worker".to_owned()),
    ]
    .into_iter()
    .collect();
    let image = (status == BuildStatus::Succeeded).then(|| format!("sha256:{n:064x}"));
    store
        .finish_build(app, build.id, status, &procfile, image.as_deref())
        .await
        .unwrap();
    build.id
}

async fn config_change(store: &Store, app: &App, user: &User, n: u32) -> store::Release {
    let key = format!("SETTING_{}", n % 12);
    let value = format!("value-{n}");
    let change = ConfigChange::set([(key.as_str(), value.as_str())]).unwrap();
    match store.change_config(app, &change, user).await.unwrap() {
        ConfigOutcome::Released(release) => release,
        ConfigOutcome::Unchanged(_) => panic!("the config did not change"),
    }
}

/// Deploys a release as the release manager records it: deploying, the release phase when
/// it has one, and its end.
async fn deploy(
    store: &Store,
    app: &App,
    version: ReleaseVersion,
    release_phase: bool,
    failed: bool,
) {
    store
        .set_release_status(app, version, ReleaseStatus::Deploying, None)
        .await
        .unwrap();
    if release_phase {
        store.release_phase_done(app, version).await.unwrap();
    }
    let (status, reason) = if failed {
        (
            ReleaseStatus::Failed,
            Some("web.1 exited with status 1 before it answered on $PORT"),
        )
    } else {
        (ReleaseStatus::Succeeded, None)
    };
    store
        .set_release_status(app, version, status, reason)
        .await
        .unwrap();
}

fn check_newest_activity(body: &str) {
    let shown = count(body, r#"<li class="entry"#);
    for needle in [
        r#"id="v500""#,
        r#"id="v451""#,
        "Older releases",
        "/apps/big/activity?before=451",
        "build failed",
        "rolled back to",
        "rollout",
    ] {
        assert!(body.contains(needle), "the activity page lacks {needle:?}");
    }
    assert!(
        !body.contains(r#"id="v450""#),
        "the newest page shows 50 releases"
    );
    assert!(shown >= 50, "{shown} entries on the newest page");
    let timed = count(body, r#"<span class="hint">build "#);
    assert_eq!(
        timed,
        pushes(451..=500),
        "releases on the newest page that show their build's time"
    );
}

fn check_middle_activity(body: &str) {
    for needle in [
        r#"id="v249""#,
        r#"id="v200""#,
        "/apps/big/activity?before=200",
        "build failed",
        "rolled back to",
        "rollout",
    ] {
        assert!(body.contains(needle), "the middle page lacks {needle:?}");
    }
    // Each push shows how long its build took.
    let timed = count(body, r#"<span class="hint">build "#);
    assert_eq!(
        timed,
        pushes(200..=249),
        "releases on the middle page that show their build's time"
    );
    for absent in [r#"id="v250""#, r#"id="v199""#] {
        assert!(!body.contains(absent), "the middle page shows {absent}");
    }
}

fn check_apps_list(body: &str) {
    let rows = count(body, r#"<th scope="row">"#);
    assert_eq!(rows, APPS, "rows in the apps list");
    for needle in [
        r#"<a href="/apps/big">big</a>"#,
        r#"<a href="/apps/app-149">app-149</a>"#,
        r#"<a href="/apps/shared-049">shared-049</a>"#,
        "last deploy failed",
    ] {
        assert!(body.contains(needle), "the apps list lacks {needle:?}");
    }
    assert!(
        !body.contains("hidden-"),
        "the apps list shows another user's app"
    );
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Signs in with the dashboard's form, as a browser does; the `Cookie` header to send.
async fn sign_in(addr: SocketAddr) -> String {
    let mut stream = connect(addr).await;
    let get = format!("GET /sign-in HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let (_, page) = exchange(&mut stream, get.as_bytes()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let bound = page.cookie("slipway_sign_in").expect("a sign-in cookie");
    let marker = r#"name="_csrf" value=""#;
    let at = page.body.find(marker).expect("a token in the form") + marker.len();
    let csrf = &page.body[at..at + page.body[at..].find('"').unwrap()];
    let form = format!("_csrf={csrf}&username={USERNAME}&password={PASSWORD}&next=%2F",);
    let post = format!(
        "POST /sign-in HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://{HOST}\r\n\
         Cookie: slipway_sign_in={bound}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let (_, signed_in) = exchange(&mut stream, post.as_bytes()).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session = signed_in
        .cookie("slipway_session")
        .expect("a session cookie");
    format!("slipway_session={session}")
}

fn request(path: &str, cookie: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nCookie: {cookie}\r\nAccept: text/html\r\n\r\n")
        .into_bytes()
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// One round of a page: its p50 and p99 over `REQUESTS` requests on `connections`
/// connections at once.
struct Round {
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

async fn round(addr: SocketAddr, target: &Target, cookie: &str, connections: usize) -> Round {
    let request = request(&target.path, cookie);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = (0..connections).map(|_| async {
        let mut stream = connect(addr).await;
        let mut latencies = Vec::new();
        let mut bytes = 0;
        for _ in 0..WARM_UP / connections {
            exchange(&mut stream, &request).await;
        }
        loop {
            if next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= REQUESTS {
                break (latencies, bytes);
            }
            let (ttfb, response) = exchange(&mut stream, &request).await;
            assert_eq!(response.status, 200, "{}: {}", target.path, response.body);
            bytes = response.body.len();
            latencies.push(ttfb);
        }
    });
    let results = futures::future::join_all(workers).await;
    let bytes = results.iter().map(|r| r.1).max().unwrap_or(0);
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Round {
        p50: at(0.50),
        p99: at(0.99),
        bytes,
    }
}

/// A response as read off the connection.
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    /// The value a `Set-Cookie` of the response gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (header, value) = line.split_once(':')?;
            if !header.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let pair = value.trim().split(';').next()?;
            let (key, value) = pair.split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
    }
}

/// Writes `request` and reads its whole response; the time from the write until the first
/// byte of the response arrived.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> (Duration, Response) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let sent = Instant::now();
    stream.write_all(request).await.expect("write the request");
    let n = stream.read(&mut chunk).await.expect("read the response");
    let ttfb = sent.elapsed();
    assert!(n > 0, "the server closed the connection");
    buf.extend_from_slice(&chunk[..n]);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read_more(stream, &mut chunk, &mut buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let body = if let Some(length) = header("content-length") {
        let length: usize = length.parse().expect("a content length");
        while buf.len() < head_end + length {
            read_more(stream, &mut chunk, &mut buf).await;
        }
        buf[head_end..head_end + length].to_vec()
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(stream, &mut chunk, &mut buf, head_end).await
    } else {
        panic!("a response with neither a length nor chunks: {head}");
    };
    let response = Response {
        status,
        head,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    };
    (ttfb, response)
}

async fn read_more(stream: &mut TcpStream, chunk: &mut [u8], buf: &mut Vec<u8>) {
    let n = stream.read(chunk).await.expect("read the response");
    assert!(n > 0, "the server closed the connection mid-response");
    buf.extend_from_slice(&chunk[..n]);
}

/// The body of a chunked response that starts at `at` in `buf`.
async fn dechunk(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    buf: &mut Vec<u8>,
    mut at: usize,
) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                break at + end;
            }
            read_more(stream, chunk, buf).await;
        };
        let size_text = String::from_utf8_lossy(&buf[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("a chunk size");
        let data = line_end + 2;
        while buf.len() < data + size + 2 {
            read_more(stream, chunk, buf).await;
        }
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&buf[data..data + size]);
        at = data + size + 2;
    }
}
