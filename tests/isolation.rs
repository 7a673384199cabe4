//! Hostile tenants against the real `slipwayd up` (as root, as in production): an app's
//! process and `slip run` run as the app's own unprivileged uid with no capabilities, cannot
//! remount the host's directories writable, and reach no port on the host's loopback — not
//! another app's, not the API's, not the database's — except the router's, through which apps
//! may call each other.

use slipway_e2e::{Backend, Platform, User};

/// A web app that answers `I am <app>`.
const APP_PY: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("I am %s\n" % os.environ["APP_NAME"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn push_app(user: &mut User, app: &str) {
    let dir = user.home().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir;
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(user.cwd.join("app.py"), APP_PY).unwrap();
    std::fs::write(user.cwd.join("Procfile"), "web: python3 app.py\n").unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", "app"]).success();
    user.slip(&["create", app]).success();
    user.slip(&["config:set", &format!("APP_NAME={app}")])
        .success();
    let push = user.git(&["push", "-q", "slipway", "main"]);
    assert!(push.ok, "push failed: {}", push.stderr);
}

/// Every TCP port listening on the host's loopback (or on every address), from the host's
/// own view: the API, the gateway, the router, the database, each app's forwarded port.
fn host_loopback_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                continue;
            }
            let Some((addr, port)) = fields[1].split_once(':') else {
                continue;
            };
            let local = matches!(
                addr,
                "0100007F"
                    | "00000000"
                    | "00000000000000000000000001000000"
                    | "00000000000000000000000000000000"
            );
            if let (true, Ok(port)) = (local, u16::from_str_radix(port, 16)) {
                ports.push(port);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[tokio::test]
async fn an_apps_code_is_unprivileged_and_reaches_only_the_router_on_the_host() {
    let platform = Platform::start(Backend::Sqlite).await.expect("sqlite");
    let mut ada = User::registered(&platform, "ada");
    push_app(&mut ada, "alpha");
    push_app(&mut ada, "beta");
    let router_port: u16 = platform.router.rsplit(':').next().unwrap().parse().unwrap();
    let api_port: u16 = platform
        .api_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let ports = host_loopback_ports();
    assert!(
        ports.contains(&router_port) && ports.contains(&api_port),
        "{ports:?}"
    );
    assert!(
        ports.len() >= 5,
        "the API, gateway, router, and both apps' ports: {ports:?}"
    );
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let script = format!(
        "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
         mount -o remount,bind,rw /usr 2>/dev/null && echo REMOUNTED; \
         touch /usr/owned 2>/dev/null && echo WROTE-USR; \
         for p in {ports}; do \
           timeout 3 bash -c \"exec 3<>/dev/tcp/127.0.0.1/$p\" 2>/dev/null && echo OPEN $p; \
         done; \
         python3 -c \"import urllib.request as u; print(u.urlopen(u.Request('http://127.0.0.1:{router_port}/', headers={{'Host': 'beta.localhost'}})).read().decode().strip())\"",
        ports = list.join(" ")
    );
    ada.cwd = ada.home().join("alpha");
    let run = ada.slip(&["run", &script]);
    let out = run.success();
    let uid: u32 = out
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("uid first");
    assert!(uid >= 1_700_000, "the app's own uid, not {uid}:\n{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(
        !out.contains("REMOUNTED") && !out.contains("WROTE-USR"),
        "{out}"
    );
    assert!(!std::path::Path::new("/usr/owned").exists());
    let open: Vec<&str> = out.lines().filter(|l| l.starts_with("OPEN ")).collect();
    assert_eq!(
        open,
        [format!("OPEN {router_port}").as_str()],
        "only the router:\n{out}"
    );
    assert!(
        out.contains("I am beta"),
        "apps call each other through the router:\n{out}"
    );
}
