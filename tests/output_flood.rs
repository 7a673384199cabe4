//! Hostile output: app processes and a `slip run` printing as fast as they can — `yes`, and
//! `/dev/urandom` with no newline at all — for [`FLOOD`], while slipwayd's memory stays under
//! [`MAX_RSS_KIB`] and it keeps answering.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User, binary, http_get};

/// How long the floods run: this test is about duration, so it waits by the clock.
const FLOOD: Duration = Duration::from_secs(20);
/// slipwayd's resident memory, at most, throughout.
const MAX_RSS_KIB: u64 = 100 * 1024;

const APP_PY: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"still here\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// slipwayd's resident set, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("slipwayd runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// `slip run COMMAND` in the background; its output is read (and counted) by a thread, at
/// full speed or, with `slow`, a little at a time.
fn run_in_background(
    user: &User,
    command: &str,
    slow: bool,
) -> (std::process::Child, std::thread::JoinHandle<u64>) {
    let mut child = std::process::Command::new(binary("slip"))
        .args(["run", "-a", "noisy", command])
        .current_dir(&user.cwd)
        .env("HOME", user.home())
        .env("XDG_CONFIG_HOME", user.home().join(".config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slip run");
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match out.read(&mut buf[..if slow { 512 } else { 64 * 1024 }]) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
            if slow {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    (child, reader)
}

#[tokio::test]
async fn twenty_seconds_of_floods_from_apps_and_runs_leave_slipwayd_small_and_answering() {
    let platform = Platform::start(Backend::Sqlite)
        .await
        .expect("sqlite is always there");
    tokio::task::spawn_blocking(move || floods(&platform))
        .await
        .unwrap();
}

fn floods(platform: &Platform) {
    let mut ada = User::registered(platform, "ada");
    let dir = ada.home().join("noisy");
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir;
    ada.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(ada.cwd.join("app.py"), APP_PY).unwrap();
    std::fs::write(
        ada.cwd.join("Procfile"),
        "web: python3 app.py\nyes: yes\nrandom: tr -d '\\n' < /dev/urandom\n",
    )
    .unwrap();
    ada.git(&["add", "-A"]).success();
    ada.git(&["commit", "-q", "-m", "noisy"]).success();
    ada.slip(&["create", "noisy"]).success();
    let pushed = ada.git(&["push", "-q", "slipway", "main"]);
    assert!(pushed.ok, "push failed: {}", pushed.stderr);
    ada.slip(&["ps:scale", "yes=1", "random=1", "-a", "noisy"])
        .success();

    let runs = [
        run_in_background(&ada, "yes", false),
        run_in_background(&ada, "tr -d '\\n' < /dev/urandom", false),
        // A caller who reads slowly: the platform drops its lines rather than holding them.
        run_in_background(&ada, "yes flooding-a-slow-reader", true),
    ];
    let pid = platform.pid();
    let start = Instant::now();
    let mut peak = 0;
    let mut checks = 0;
    while start.elapsed() < FLOOD {
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        assert!(
            rss < MAX_RSS_KIB,
            "slipwayd uses {rss} KiB after {:?} of floods",
            start.elapsed()
        );
        let (status, body) =
            http_get(&platform.router, "noisy.localhost", "/").expect("the router answers");
        assert_eq!((status, body.as_str()), (200, "still here\n"));
        let ps = ada.slip(&["ps", "-a", "noisy", "--json"]);
        assert!(ps.success().contains("\"yes.1\""), "{}", ps.stdout);
        checks += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        checks >= 10,
        "slipwayd answered only {checks} times in {FLOOD:?}"
    );

    // The floods were read all along: their lines are in the log, cut where they are long.
    let yes = ada.slip(&["logs", "-a", "noisy", "-n", "3", "-p", "yes"]);
    assert!(
        yes.success().lines().all(|l| l.ends_with(" yes.1: y")),
        "{}",
        yes.stdout
    );
    // A line with no end is cut at 8 KiB, and what follows its end comes through.
    let cut = ada.slip(&[
        "run",
        "-a",
        "noisy",
        "head -c 30000 /dev/urandom | tr -d '\\n'; echo; echo done",
    ]);
    let out = cut.success();
    assert!(
        out.contains(" … [cut: the line is longer than 8 KiB]\n"),
        "{out:?}"
    );
    assert!(out.ends_with("\ndone\n"), "{out:?}");
    let ps = ada.slip(&["ps", "-a", "noisy"]);
    assert!(ps.success().contains("random.1  up"), "{}", ps.stdout);
    for (mut child, reader) in runs {
        child.kill().unwrap();
        child.wait().unwrap();
        let read = reader.join().unwrap();
        assert!(read > 0, "a run's output never reached its caller");
    }
    let rss = rss_kib(pid);
    assert!(
        rss < MAX_RSS_KIB,
        "slipwayd uses {rss} KiB after the floods"
    );
    eprintln!("slipwayd's peak RSS during the floods: {peak} KiB");
}
