//! HTTPS and the router's connections end to end: the real slipwayd and its router, apps
//! pushed with git, curl trusting `slipwayd ca`, WebSockets through the router over HTTP and
//! HTTPS, a 1 GB upload against slipwayd's memory, and slow clients that hold connections.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use slipway_e2e::{Backend, Platform, User, Zone, binary, dns_server, http_get};
use tokio::io::AsyncWriteExt;

/// An app that, as Django's `SECURE_SSL_REDIRECT` or Rails' `force_ssl` do, redirects every
/// request that did not come over HTTPS, judging by `X-Forwarded-Proto`, and otherwise says
/// what the router told it.
const SECURE_APP: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("X-Forwarded-Proto") != "https":
            self.send_response(301)
            self.send_header("Location", "https://" + self.headers["Host"].split(":")[0] + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("secure for=%s port=%s id=%s\n" % (
            self.headers.get("X-Forwarded-For"),
            self.headers.get("X-Forwarded-Port"),
            self.headers.get("X-Request-Id"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// An app that echoes WebSocket messages (written out with the standard library: the
/// handshake and frames of RFC 6455) and counts the bytes of an upload.
const SOCKET_APP: &str = r#"import base64, hashlib, http.server, os, struct
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.echo()
        self.reply(b"ok\n")
    def do_POST(self):
        left, total = int(self.headers["Content-Length"]), 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            total += len(chunk)
        self.reply(str(total).encode())
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def echo(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        r, w = self.rfile, self.wfile
        while True:
            head = r.read(2)
            if len(head) < 2:
                return
            opcode, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", r.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(r.read(n))
            for i in range(n):
                data[i] ^= mask[i % 4]
            if opcode == 8:
                w.write(bytes([0x88, 0]))
                return
            if opcode == 9:
                opcode = 10
            if n < 126:
                size = bytes([n])
            elif n < 65536:
                size = bytes([126]) + struct.pack(">H", n)
            else:
                size = bytes([127]) + struct.pack(">Q", n)
            w.write(bytes([0x80 | opcode]) + size + bytes(data))
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Pushes `source` as `app.py` of app `name`, deployed.
fn push_app(user: &mut User, name: &str, source: &str) {
    let dir = user.home().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir;
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(user.cwd.join("app.py"), source).unwrap();
    std::fs::write(user.cwd.join("Procfile"), "web: python3 app.py\n").unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", name]).success();
    user.slip(&["create", name]).success();
    let pushed = user.git(&["push", "-q", "slipway", "main"]);
    assert!(pushed.ok, "{}", pushed.stderr);
}

/// The platform CA's certificate, as `slipwayd ca` prints it, saved to a file.
fn platform_ca(platform: &Platform) -> (tempfile::NamedTempFile, String) {
    let out = Command::new(binary("slipwayd"))
        .arg("ca")
        .arg("--data-dir")
        .arg(&platform.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem.as_bytes()).unwrap();
    (file, pem)
}

/// `curl` with `args`, every `*.localhost` name resolving to the router: status line fields
/// asked for with `-w`, and the body.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn port(addr: &str) -> &str {
    addr.rsplit_once(':').unwrap().1
}

#[tokio::test]
async fn an_app_that_insists_on_https_is_served_over_it_with_the_platform_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        push_app(&mut ada, "secure", SECURE_APP);
        let (ca, _) = platform_ca(&platform);
        let ca = ca.path().to_str().unwrap().to_owned();
        let https = format!("https://secure.localhost:{}/", port(&platform.https));
        let resolve = format!("secure.localhost:{}:127.0.0.1", port(&platform.https));

        // Plain HTTP gets the app's redirect, whatever the client claims to be.
        let (status, _) = http_get(&platform.router, "secure.localhost", "/").unwrap();
        assert_eq!(status, 301);
        let spoofed = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            "Host: secure.localhost",
            "-H",
            "X-Forwarded-Proto: https",
            &format!("http://{}/", platform.router),
        ]);
        assert_eq!(
            spoofed, "301 https://secure.localhost/",
            "X-Forwarded-Proto is the router's"
        );

        // HTTPS, verified against `slipwayd ca`, over HTTP/2 and HTTP/1.1.
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let out = curl(&[
                flag,
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
                "-H",
                "X-Forwarded-For: 6.6.6.6",
                "-w",
                "%{http_code} %{http_version}",
                &https,
            ]);
            let (body, status) = out.rsplit_once('\n').unwrap();
            assert_eq!(status, format!("200 {version}"), "{out}");
            assert!(
                body.starts_with(&format!(
                    "secure for=127.0.0.1 port={} id=",
                    port(&platform.https)
                )),
                "{body}"
            );
        }
    })
    .await
    .unwrap();
}

/// A client for the router's HTTPS that trusts the platform CA, speaking HTTP/1.1 (what a
/// WebSocket upgrades).
fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn echo_ten_thousand<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ws, response) = tokio_tungstenite::client_async("ws://sockets.localhost/", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..10_000 {
        let text = format!("message {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
}

/// The resident set `pid` had before `work`, and the largest while it ran, sampled every
/// 50 ms.
async fn peak_rss_during<F: std::future::Future>(pid: u32, work: F) -> (F::Output, u64, u64) {
    let rss = move || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let before = rss();
    let mut peak = before;
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            out = &mut work => return (out, before, peak.max(rss())),
            _ = tick.tick() => peak = peak.max(rss()),
        }
    }
}

#[tokio::test]
async fn websockets_uploads_and_slow_clients_through_slipwayd() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    let platform = tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        push_app(&mut ada, "sockets", SOCKET_APP);
        platform
    })
    .await
    .unwrap();
    let (_, ca_pem) = platform_ca(&platform);

    // 10,000 messages each way over HTTP, then over HTTPS.
    let plain = tokio::net::TcpStream::connect(&platform.router)
        .await
        .unwrap();
    echo_ten_thousand(plain).await;
    let stream = tokio::net::TcpStream::connect(&platform.https)
        .await
        .unwrap();
    let tls = tls_connector(&ca_pem)
        .connect(ServerName::try_from("sockets.localhost").unwrap(), stream)
        .await
        .unwrap();
    echo_ten_thousand(tls).await;

    // 1 GB uploaded through the router, streamed: slipwayd's memory stays bounded.
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024;
    let chunk = bytes::Bytes::from(vec![b'x'; CHUNK]);
    let body = futures_util::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let client = reqwest::Client::new();
    let upload = client
        .post(format!("http://{}/upload", platform.router))
        .header("host", "sockets.localhost")
        .header("content-length", (CHUNK * CHUNKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let started = Instant::now();
    let (response, before, peak) = peak_rss_during(platform.pid(), upload).await;
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), (CHUNK * CHUNKS).to_string());
    eprintln!(
        "1 GiB uploaded in {:.1?}; slipwayd's RSS {} MiB before, {} MiB at most during it",
        started.elapsed(),
        before >> 20,
        peak >> 20
    );
    assert!(peak < 100 << 20, "slipwayd reached {} MiB", peak >> 20);

    // 500 connections from another address that never finish their headers: the app
    // still answers everyone else.
    let router: SocketAddr = platform.router.parse().unwrap();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(IpAddr::from([127, 0, 0, 3]), 0))
            .unwrap();
        let mut stream = socket.connect(router).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: sock")
            .await
            .unwrap();
        slow.push(stream);
    }
    let router = platform.router.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..20 {
            assert_eq!(
                http_get(&router, "sockets.localhost", "/").unwrap(),
                (200, "ok\n".to_owned())
            );
        }
    })
    .await
    .unwrap();
    drop(slow);
}

/// The SHA-256 fingerprint `openssl` gives a certificate: of a PEM file, or of the one the
/// router shows for `servername` (`openssl s_client -servername`).
fn fingerprint(user: &User, pem: &str) -> String {
    let out = user.run(
        "openssl",
        &["x509", "-noout", "-fingerprint", "-sha256", "-in", pem],
    );
    out.success().trim().to_owned()
}

fn served_fingerprint(user: &User, https: &str, servername: &str) -> String {
    let shown = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {https} -servername {servername} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .current_dir(user.home())
        .output()
        .unwrap();
    String::from_utf8(shown.stdout).unwrap().trim().to_owned()
}

/// Runs `slip` with `args` and then `check` at once, returning how long the command and the
/// check took together (the switch is in force when `slip` returns).
fn switched(user: &User, args: &[&str], check: impl FnOnce()) -> Duration {
    let started = Instant::now();
    user.slip(args).success();
    check();
    started.elapsed()
}

#[tokio::test]
async fn an_uploaded_certificate_is_served_for_its_domain_and_switches_take_effect_at_once() {
    let zone = Zone::default();
    let resolver = dns_server(Arc::clone(&zone));
    let platform = Platform::start_with(Backend::Sqlite, &["--dns-resolver", &resolver])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        push_app(&mut ada, "sockets", SOCKET_APP);

        // A custom domain, verified, with the owner's own certificate for it.
        ada.slip(&["domains:add", "www.example.test"]).success();
        let listed = ada.slip(&["domains", "--json"]).json();
        let token = listed[0]["challenge"]["value"].as_str().unwrap().to_owned();
        zone.lock()
            .unwrap()
            .insert("_slipway-challenge.www.example.test".to_owned(), token);
        ada.slip(&["domains:verify", "www.example.test"]).success();
        let cert = ada.home().join("www.crt").display().to_string();
        let key = ada.home().join("www.key").display().to_string();
        ada.run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "90",
                "-subj",
                "/CN=www.example.test",
                "-addext",
                "subjectAltName=DNS:www.example.test",
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
        )
        .success();
        let added = ada.slip(&["certs:add", "www", &cert, &key]);
        assert!(
            added.success().contains("www.example.test"),
            "{}",
            added.stdout
        );
        let uploaded = fingerprint(&ada, &cert);
        assert!(uploaded.contains("Fingerprint="), "{uploaded}");
        assert_eq!(
            served_fingerprint(&ada, &platform.https, "www.example.test"),
            uploaded
        );
        // The app's own host keeps the platform's certificate.
        let own = served_fingerprint(&ada, &platform.https, "sockets.localhost");
        assert!(own.contains("Fingerprint=") && own != uploaded, "{own}");

        // Each switch is in force as soon as `slip` returns.
        let router = platform.router.clone();
        let get = |host: &str| http_get(&router, host, "/").unwrap();
        let mut took = Vec::new();
        took.push(switched(&ada, &["maintenance:on"], || {
            let (status, page) = get("www.example.test");
            assert_eq!(status, 503);
            assert!(
                page.contains("sockets is offline for maintenance"),
                "{page}"
            );
        }));
        let ran = ada.slip(&["run", "echo", "still-running"]);
        assert!(
            ran.success().contains("still-running"),
            "slip run works in maintenance"
        );
        took.push(switched(&ada, &["maintenance:off"], || {
            assert_eq!(get("sockets.localhost"), (200, "ok\n".to_owned()));
        }));
        took.push(switched(&ada, &["whitelist:add", "10.0.0.0/8"], || {
            assert_eq!(get("sockets.localhost").0, 403);
        }));
        took.push(switched(&ada, &["whitelist:add", "127.0.0.1"], || {
            assert_eq!(get("sockets.localhost").0, 200);
        }));
        took.push(switched(&ada, &["routing:disable"], || {
            assert_eq!(get("sockets.localhost").0, 404);
            assert_eq!(get("www.example.test").0, 404);
        }));
        took.push(switched(&ada, &["routing:enable"], || {
            assert_eq!(get("sockets.localhost").0, 200);
        }));
        took.push(switched(&ada, &["tls:enable"], || {
            assert_eq!(get("sockets.localhost").0, 301);
        }));
        took.push(switched(&ada, &["tls:disable"], || {
            assert_eq!(get("sockets.localhost").0, 200);
        }));
        took.sort();
        eprintln!(
            "switches in force after the command: median {:?}, slowest {:?}",
            took[took.len() / 2],
            took[took.len() - 1]
        );
    })
    .await
    .unwrap();
}
