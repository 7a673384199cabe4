//! A hostile tenant's program against the real sandbox (bubblewrap, pasta, cgroups, seccomp
//! on this machine): it runs as an unprivileged uid with no capabilities, cannot remount the
//! host's directories writable, cannot reach the host's loopback, and its fork bomb and
//! memory hog stop at their limits. Needs root, as `slipwayd up` runs in production and CI.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use sandbox::{Isolation, Limits, Network, SandboxMode, Spec};
use slipway_sandbox as sandbox;

fn isolation() -> (Isolation, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("temp dir");
    let isolation = Isolation::detect(SandboxMode::Required, state.path())
        .expect("scripts/test installs bubblewrap and passt and runs as root");
    (isolation, state)
}

/// How a sandboxed script ended.
struct Outcome {
    code: i32,
    out: String,
    err: String,
    /// The cell's account of a limit it hit.
    limit: Option<String>,
}

/// Runs `script` with `sh` in the sandbox as app `app`.
async fn run(isolation: &Isolation, app: &str, limits: Limits, script: &str) -> Outcome {
    run_with(isolation, app, limits, Vec::new(), Vec::new(), script).await
}

async fn run_with(
    isolation: &Isolation,
    app: &str,
    limits: Limits,
    binds: Vec<sandbox::Bind>,
    host_ports: Vec<u16>,
    script: &str,
) -> Outcome {
    let mut mounts = sandbox::host_system_mounts(&[]);
    for arg in ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"] {
        mounts.push(arg.into());
    }
    let name = format!("test-{app}");
    let mut sandboxed = isolation
        .command(Spec {
            app,
            name,
            mounts,
            binds,
            chdir: Path::new("/"),
            network: Network::Outbound,
            host_ports,
            limits,
            program: OsStr::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
        })
        .expect("sandbox command");
    let out = sandboxed
        .command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .await
        .expect("runs");
    sandboxed.cell.kill();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
        limit: sandboxed.cell.limit_hit(),
    }
}

#[tokio::test]
async fn a_tenant_runs_unprivileged_and_cannot_remount_the_host() {
    let (isolation, _state) = isolation();
    let Outcome { code, out, err, .. } = run(
        &isolation,
        "remount",
        Limits::PROCESS,
        "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         mount -o remount,bind,rw /usr && echo REMOUNTED; touch /usr/slipway-owned && echo WROTE; \
         unshare -U true && echo NEW-USERNS; exit 0",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let uid: u32 = out
        .lines()
        .next()
        .unwrap_or("")
        .parse()
        .expect("uid printed");
    assert!(
        uid >= sandbox::FIRST_APP_UID,
        "runs as the app's uid, not {uid}\n{out}"
    );
    for line in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    for escape in ["REMOUNTED", "WROTE", "NEW-USERNS"] {
        assert!(!out.contains(escape), "{escape}:\n{out}\n{err}");
    }
    assert!(!Path::new("/usr/slipway-owned").exists());
}

#[tokio::test]
async fn a_tenant_reaches_the_router_but_nothing_else_on_the_hosts_loopback() {
    let (isolation, _state) = isolation();
    // A service of the host's on loopback (the API, the database, another app's port), and
    // the router, the one port forwarded in.
    let service = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let router = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = service.local_addr().expect("addr").port();
    let router_port = router.local_addr().expect("addr").port();
    let script = format!(
        "for host in 127.0.0.1 localhost $(ip -4 route show default | cut -d' ' -f3); do \
           if timeout 3 bash -c \"exec 3<>/dev/tcp/$host/{port}\" 2>/dev/null; then echo REACHED $host; fi; \
         done; \
         timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{router_port}' && echo ROUTER; echo done"
    );
    let accepted = std::thread::spawn(move || router.accept().is_ok());
    let Outcome { code, out, err, .. } = run_with(
        &isolation,
        "netcheck",
        Limits::PROCESS,
        Vec::new(),
        vec![router_port],
        &script,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("done"), "{out}{err}");
    assert!(!out.contains("REACHED"), "{out}");
    assert!(
        out.contains("ROUTER"),
        "the router is reachable: {out}{err}"
    );
    assert!(accepted.join().expect("joined"));
}

#[tokio::test]
async fn a_fork_bomb_and_a_memory_hog_stop_at_their_limits() {
    let (isolation, _state) = isolation();
    let limits = Limits {
        pids: 64,
        memory: 64 << 20,
        ..Limits::PROCESS
    };
    // The bomb: forks until refused (the shell dies of it), counting; every child sleeps so
    // nothing exits.
    let bomb = run(
        &isolation,
        "bomb",
        limits,
        "n=0; while [ $n -lt 1000 ]; do sleep 30 >/dev/null 2>&1 & n=$((n+1)); echo $n; done",
    )
    .await;
    let started: u32 = bomb
        .out
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX);
    assert!(
        started < 64,
        "the process limit held: {started} started\n{}",
        bomb.err
    );
    assert_eq!(
        bomb.limit.as_deref(),
        Some("it tried to run more than 64 processes at once")
    );
    // The hog: `tail` keeps a 200 MB line without a newline in memory.
    let hog = run(
        &isolation,
        "hog",
        limits,
        "head -c 200000000 /dev/zero | tail -n 1 | wc -c",
    )
    .await;
    assert!(
        !hog.out.contains("200000000"),
        "200 MB held in 64 MiB: {}",
        hog.out
    );
    assert_eq!(
        hog.limit.as_deref(),
        Some("it ran out of memory (the limit is 64 MiB)")
    );
}

#[tokio::test]
async fn the_platforms_directories_are_bound_in_however_private_their_parents() {
    let (isolation, _state) = isolation();
    // The data directory: only root may enter it. The app's cache inside it is the app's.
    let data = tempfile::tempdir().expect("temp dir");
    let cache = data.path().join("cache/demo");
    std::fs::create_dir_all(&cache).expect("cache");
    std::fs::write(data.path().join("secret"), "host key").expect("secret");
    isolation.hand_over("binds", &cache).expect("chown");
    let binds = vec![sandbox::Bind {
        src: cache.clone(),
        dest: "/cache".into(),
        writable: true,
    }];
    let outcome = run_with(
        &isolation,
        "binds",
        Limits::PROCESS,
        binds,
        Vec::new(),
        "echo kept > /cache/file && cat /cache/file; ls /run/slipway-sandbox 2>&1; \
         find / -name secret -path '*tmp*' 2>/dev/null; true",
    )
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.err);
    assert!(outcome.out.starts_with("kept\n"), "{}", outcome.out);
    assert!(!outcome.out.contains("secret"), "{}", outcome.out);
    let uid = isolation.uid_for("binds").expect("own uids");
    let meta = std::fs::metadata(cache.join("file")).expect("written");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid);
    // The staging stayed in the sandbox's own mount namespace.
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains("slipway-stage"), "{mounts}");
}
