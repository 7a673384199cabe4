//! Benchmark of `git push` through the gateway against the same push through OpenSSH's
//! `sshd` running `git-receive-pack`, both on loopback in this one run; and the gateway's
//! peak memory during a large push.
//!
//! Run with `scripts/bench` (it installs openssh-server and builds the release binaries), or
//! `cargo build --release --bins && cargo bench -p slipway-e2e --bench push`.
//!
//! Scenarios, each run `ROUNDS` times into a fresh repository, reported as medians:
//! - sshd: the baseline, plain `git receive-pack` behind OpenSSH;
//! - gateway, branch: the same push to a branch that is stored but not built, so the
//!   comparison is transport to transport (the gateway also runs its pre-receive hook);
//! - gateway, main: the whole push pipeline (export, Procfile build, release), for scale.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User};

const ROUNDS: usize = 3;
const PUSH_MB: usize = 100;
const BIG_PUSH_MB: usize = 400;

fn main() {
    test_support::init();
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() {
        eprintln!(
            "error: /usr/sbin/sshd is missing: install it with `apt-get install openssh-server` (scripts/bench does)"
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime.block_on(Platform::start(Backend::Sqlite)).unwrap();
    let mut ada = User::registered(&platform, "ada");
    let key = ada.ssh_key();

    let repo = make_repo(&mut ada, "repo", PUSH_MB);
    let baseline = OpenSsh::start(sshd, &key);

    println!("git push benchmark: {PUSH_MB} MB of incompressible data, {ROUNDS} rounds, medians");
    let mut sshd_times = Vec::new();
    let mut branch_times = Vec::new();
    let mut main_times = Vec::new();
    for round in 0..ROUNDS {
        let bare = baseline.dir.join(format!("round{round}.git"));
        ada.git(&["init", "-q", "--bare", bare.to_str().unwrap()])
            .success();
        let url = format!(
            "ssh://{}@127.0.0.1:{}{}",
            whoami(),
            baseline.port,
            bare.display()
        );
        sshd_times.push(timed_push(
            &ada,
            &repo,
            &url,
            "main",
            Some(&baseline.ssh_command(&key)),
        ));

        let app = format!("branch{round}");
        ada.slip(&["create", &app, "--no-remote"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", &app]).success();
        let url = format!("{}/{app}.git", platform.ssh_url);
        branch_times.push(timed_push(&ada, &repo, &url, "main:bench", None));

        let app = format!("main{round}");
        ada.slip(&["create", &app, "--no-remote"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", &app]).success();
        let url = format!("{}/{app}.git", platform.ssh_url);
        main_times.push(timed_push(&ada, &repo, &url, "main", None));
    }
    let sshd_median = median(&sshd_times);
    let report = |name: &str, times: &[Duration]| {
        let m = median(times);
        println!(
            "{name:<42} {:>8.2} s {:>8.2}x sshd   (rounds: {})",
            m.as_secs_f64(),
            m.as_secs_f64() / sshd_median.as_secs_f64(),
            list(times)
        );
    };
    report("sshd + git-receive-pack (baseline)", &sshd_times);
    report("gateway, branch (transport)", &branch_times);
    report("gateway, main (push, build, release)", &main_times);

    // Peak memory: the whole slipwayd process during a large push of main.
    let big = make_repo(&mut ada, "big", BIG_PUSH_MB);
    let pid = platform_pid(&platform);
    let before = vm_hwm_kib(pid);
    ada.slip(&["create", "big", "--no-remote"]).success();
    // About builds: the app runs no processes.
    ada.slip(&["ps:scale", "web=0", "-a", "big"]).success();
    let took = timed_push(
        &ada,
        &big,
        &format!("{}/big.git", platform.ssh_url),
        "main",
        None,
    );
    let after = vm_hwm_kib(pid);
    println!(
        "slipwayd peak RSS, whole run, ending with a {BIG_PUSH_MB} MB push of main: {:.1} MB (peak before that push: {:.1} MB; it took {:.1} s)",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        took.as_secs_f64()
    );
    drop(baseline);
    drop(platform);
}

/// A repository in the user's home with a Procfile and `mb` MB of incompressible data.
fn make_repo(user: &mut User, name: &str, mb: usize) -> PathBuf {
    let dir = user.home().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir.clone();
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(dir.join("Procfile"), "web: ./serve\n").unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ mb as u64;
    for part in 0..mb.div_ceil(16) {
        let mut bytes = vec![0u8; 16 * 1024 * 1024];
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.join(format!("data{part}.bin")), bytes).unwrap();
    }
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", "data"]).success();
    // Pack once up front, so every push sends the same pack and the timing is the transfer.
    user.git(&["gc", "-q"]).success();
    dir
}

fn timed_push(user: &User, repo: &Path, url: &str, refspec: &str, ssh: Option<&str>) -> Duration {
    let mut git = Command::new("git");
    git.current_dir(repo).args(["push", "-q", url, refspec]);
    git.env("HOME", user.home()).env("GIT_CONFIG_NOSYSTEM", "1");
    let default_ssh = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        user.home().join(".ssh/id_ed25519").display()
    );
    git.env("GIT_SSH_COMMAND", ssh.unwrap_or(&default_ssh));
    let started = Instant::now();
    let output = git.output().unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "push to {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn list(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

/// The pid of the platform's slipwayd, found by its data directory on the command line.
fn platform_pid(platform: &Platform) -> u32 {
    let needle = platform.data_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("slipwayd") && cmdline.contains(&needle) && cmdline.contains("up") {
            return pid;
        }
    }
    panic!("slipwayd not found in /proc");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// OpenSSH's sshd on a free loopback port, with its own host key and config, accepting the
/// bench user's key; stopped on drop.
struct OpenSsh {
    child: Child,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl OpenSsh {
    fn start(sshd: &Path, user_key: &Path) -> OpenSsh {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let host_key = dir.join("host_key");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .unwrap();
        assert!(keygen.success());
        std::fs::copy(user_key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("authorized_keys").display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            // Quiet: the readiness probe below makes sshd log a closed connection.
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        // Wait until it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OpenSsh {
            child,
            port,
            dir,
            _tmp: tmp,
        }
    }

    fn ssh_command(&self, key: &Path) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            key.display()
        )
    }
}

impl Drop for OpenSsh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
