//! Floods a hostile client can send without an account: idle SSH connections by the
//! thousand, a slipwayd out of file descriptors, password guessing, and HTTP requests sent
//! a byte at a time. slipwayd stays up, and a legitimate user still pushes and logs in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Opens up to `count` TCP connections to `target`, spread over the source addresses
/// 127.0.0.`first`…, sending nothing. Returns those that connected.
async fn idle_connections(
    target: SocketAddr,
    first: u8,
    sources: u8,
    count: usize,
) -> Vec<TcpStream> {
    let attempts = (0..count).map(|i| {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            first + (i % usize::from(sources)) as u8,
        ));
        async move {
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::new(source, 0)).ok()?;
            tokio::time::timeout(Duration::from_secs(10), socket.connect(target))
                .await
                .ok()?
                .ok()
        }
    });
    let mut open = Vec::new();
    // In waves, so the flood does not wait on the listen backlog as one block.
    let attempts: Vec<_> = attempts.collect();
    let mut attempts = attempts.into_iter();
    loop {
        let wave: Vec<_> = attempts.by_ref().take(250).collect();
        if wave.is_empty() {
            break;
        }
        for stream in futures_join_all(wave).await.into_iter().flatten() {
            open.push(stream);
        }
    }
    open
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: Vec<F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("connect task"));
    }
    out
}

/// Waits until the server has closed `stream`: reads (and drops) what it sends until EOF
/// or a reset. Fails after `limit`.
async fn closed_by_server(mut stream: TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 512];
    let reading = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, reading).await.is_ok()
}

fn ssh_addr(platform: &Platform) -> SocketAddr {
    platform
        .ssh_url
        .trim_start_matches("ssh://git@")
        .parse()
        .expect("ssh address")
}

/// The open file descriptors of a process.
fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Sets the soft limit on open files of a running process (the hard limit stays, so the
/// soft one can be raised again without privileges). Returns the soft limit it replaced.
fn limit_open_files(pid: u32, soft: Option<u64>) -> Option<u64> {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let pid = Pid::from_raw(pid as i32).expect("a pid");
    let hard = rustix::process::getrlimit(Resource::Nofile).maximum;
    let old = prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: soft,
            maximum: hard,
        },
    )
    .expect("set the limit");
    old.current
}

/// A user with an app `demo` (no processes to run) and a repository to push.
fn pusher(platform: &Platform) -> User {
    let mut ada = User::registered(platform, "ada");
    let dir = ada.home().join("demo");
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir.clone();
    ada.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(dir.join("Procfile"), "web: ./serve\n").unwrap();
    ada.git(&["add", "-A"]).success();
    ada.git(&["commit", "-q", "-m", "first"]).success();
    ada.slip(&["create", "demo"]).success();
    ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
    ada
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_idle_ssh_connections_leave_slipwayd_up_and_a_push_goes_through() {
    let mut platform = Platform::start_with(
        Backend::Sqlite,
        &["--ssh-auth-timeout", "5", "--ssh-max-startups", "60"],
    )
    .await
    .expect("sqlite is always there");
    let target = ssh_addr(&platform);
    let ada = tokio::task::block_in_place(|| pusher(&platform));
    // A modest limit on open files, as on many hosts: the flood alone would exceed it.
    let pid = platform.pid();
    limit_open_files(pid, Some(open_files(pid) + 300));

    let started = Instant::now();
    let flood = idle_connections(target, 2, 40, 2000).await;
    assert!(platform.is_running(), "slipwayd survived the flood");
    assert!(
        flood.len() > 1000,
        "most of the flood connected: {}",
        flood.len()
    );

    // While the flood's connections are still open on the client's side, a real user pushes.
    let push = tokio::task::block_in_place(|| ada.git(&["push", "slipway", "main"]));
    assert!(push.ok, "push during the flood: {}", push.stderr);
    assert!(push.stderr.contains("v2 released"), "{}", push.stderr);

    // The server closes every connection of the flood: refused, evicted, or at the
    // authentication deadline; none is held longer.
    let closes: Vec<_> = flood
        .into_iter()
        .map(|s| tokio::spawn(closed_by_server(s, Duration::from_secs(30))))
        .collect();
    let mut held = 0;
    for close in closes {
        if !close.await.unwrap() {
            held += 1;
        }
    }
    assert_eq!(held, 0, "the server closed every idle connection");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(platform.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slipwayd_out_of_file_descriptors_keeps_accepting_once_some_are_free() {
    let mut platform = Platform::start(Backend::Sqlite)
        .await
        .expect("sqlite is always there");
    let target = ssh_addr(&platform);
    let ada = tokio::task::block_in_place(|| pusher(&platform));
    let pid = platform.pid();
    // Almost no descriptors left: accepting fails with EMFILE.
    let before = limit_open_files(pid, Some(open_files(pid) + 3));
    let flood = idle_connections(target, 50, 20, 200).await;
    assert!(
        platform.is_running(),
        "slipwayd survived running out of descriptors"
    );
    // Descriptors come back (the flood goes away, the operator raises the limit).
    drop(flood);
    limit_open_files(pid, before);
    let push = tokio::task::block_in_place(|| ada.git(&["push", "slipway", "main"]));
    assert!(push.ok, "push after the shortage: {}", push.stderr);
    assert!(platform.is_running());
}

/// Sends `bytes` on a new connection to `address` and then nothing more.
async fn stalled(address: &str, bytes: &[u8]) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_http_requests_are_closed_at_the_header_deadline() {
    let platform = Platform::start_with(
        Backend::Sqlite,
        &["--http-header-timeout", "2", "--http-max-per-source", "20"],
    )
    .await
    .expect("sqlite is always there");
    let api = platform.api_url.trim_start_matches("http://").to_owned();
    let router = platform.router.clone();
    let started = Instant::now();
    let mut held = Vec::new();
    for address in [&api, &router] {
        // Half a request line, half the headers, a whole request and then silence.
        held.push(stalled(address, b"GET /v1/inf").await);
        held.push(stalled(address, b"GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
        held.push(stalled(address, b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n").await);
    }
    let closes: Vec<_> = held
        .into_iter()
        .map(|s| tokio::spawn(closed_by_server(s, Duration::from_secs(20))))
        .collect();
    for close in closes {
        assert!(
            close.await.unwrap(),
            "the server closed a stalled connection"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the deadline"
    );

    // One address may hold only so many connections; others are not affected.
    let mut mine = Vec::new();
    for _ in 0..20 {
        mine.push(stalled(&api, b"GET /v1/info HTTP/1.1\r\nHost: x\r\n").await);
    }
    let refused = stalled(&api, b"").await;
    assert!(
        closed_by_server(refused, Duration::from_secs(1)).await,
        "the 21st connection is closed at once"
    );
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(other, 0)).unwrap();
    let mut stream = socket.connect(api.parse().unwrap()).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// `POST /v1/auth/login` over a connection of its own from `source`: the status code.
async fn login_from(
    source: Ipv4Addr,
    api: SocketAddr,
    username: &str,
    password: &str,
) -> Option<u16> {
    use tokio::io::AsyncWriteExt;
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
    let mut stream = socket.connect(api).await.ok()?;
    let body = format!(r#"{{"username": "{username}", "password": "{password}"}}"#);
    let request = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    reply.get(9..12)?.parse().ok()
}

/// A line of `/proc/PID/status`, such as `VmRSS` (in kB) or `Threads`.
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_is_throttled_and_the_owner_still_logs_in() {
    let mut platform = Platform::start(Backend::Sqlite)
        .await
        .expect("sqlite is always there");
    let ada = tokio::task::block_in_place(|| User::registered(&platform, "ada"));
    let api: SocketAddr = platform
        .api_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let pid = platform.pid();
    let rss_before = status_field(pid, "VmRSS");

    // Five hundred guesses at once, from an address Ada never used.
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut most_threads = 0;
    let guesses: Vec<_> = (0..500)
        .map(|i| {
            tokio::spawn(
                async move { login_from(attacker, api, "ada", &format!("guess-{i}")).await },
            )
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for guess in guesses {
        most_threads = most_threads.max(status_field(pid, "Threads"));
        *statuses.entry(guess.await.unwrap()).or_default() += 1;
    }
    assert!(platform.is_running(), "slipwayd survived the login flood");
    let hashed = statuses.get(&Some(401)).copied().unwrap_or(0);
    assert!(
        hashed <= 10,
        "only the first few guesses cost a hash: {statuses:?}"
    );
    // The rest are told to wait, or turned away at the door (too many connections from
    // one address at once).
    let refused =
        statuses.get(&Some(429)).copied().unwrap_or(0) + statuses.get(&None).copied().unwrap_or(0);
    assert!(refused >= 490 && statuses.len() <= 3, "{statuses:?}");
    let rss_after = status_field(pid, "VmRSS");
    assert!(
        rss_after < rss_before + 100 * 1024,
        "memory bounded: {rss_before} kB then {rss_after} kB"
    );
    assert!(most_threads < 200, "threads bounded: {most_threads}");

    // Ada logs in from her own address, with her password; the guesser cannot, even with it.
    let login = tokio::task::block_in_place(|| {
        ada.slip(&[
            "login",
            &platform.api_url,
            "--username",
            "ada",
            "--password",
            slipway_e2e::PASSWORD,
        ])
    });
    login.success();
    assert_eq!(
        login_from(attacker, api, "ada", slipway_e2e::PASSWORD).await,
        Some(429)
    );
    let tokens = tokio::task::block_in_place(|| ada.slip(&["tokens"]));
    assert_eq!(
        tokens.success().lines().count(),
        3,
        "a header and two logins: {}",
        tokens.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_nobody_added_is_held_no_longer_than_the_authentication_deadline() {
    let platform = Platform::start_with(Backend::Sqlite, &["--ssh-auth-timeout", "3"])
        .await
        .expect("sqlite is always there");
    let stranger = User::new();
    let key = stranger.ssh_key();
    let port = ssh_addr(&platform).port().to_string();
    // `ssh -N` asks for nothing and would stay connected for ever.
    let mut ssh = tokio::process::Command::new("ssh")
        .args([
            "-N",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-p",
            &port,
            "git@127.0.0.1",
        ])
        .env("HOME", stranger.home())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run ssh");
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), ssh.wait()).await;
    assert!(ended.is_ok(), "the gateway closed the connection");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the deadline: {:?}",
        started.elapsed()
    );
}
