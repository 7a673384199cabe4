//! Certificates from an ACME server end to end: the real slipwayd with `--acme-directory`
//! pointed at Let's Encrypt's Pebble (built from its Go module by scripts/pebble.sh), which
//! validates HTTP-01 challenges against slipwayd's router. Every app host and verified
//! custom domain gets its certificate, served without a restart; one near its expiry is
//! renewed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, Zone, dns_server, free_port};
use test_support::pebble::Pebble;

const APP: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from shop\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// The certificate the router shows for `host` when it verifies against `roots`.
async fn verified_certificate(
    https: &str,
    host: &str,
    roots: &rustls::RootCertStore,
) -> Option<CertificateDer<'static>> {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(https).await.ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host.to_owned()).unwrap(), stream)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].clone())
}

/// Waits up to `limit` for `host` to be served with a certificate that verifies against
/// `roots` (and differs from `not`); returns it and how long that took.
async fn served_within(
    https: &str,
    host: &str,
    roots: &rustls::RootCertStore,
    not: Option<&CertificateDer<'static>>,
    limit: Duration,
) -> (CertificateDer<'static>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(der) = verified_certificate(https, host, roots).await
            && Some(&der) != not
        {
            return (der, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{host} was not served with a certificate from the ACME server within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_host_gets_its_certificate_from_the_acme_server_and_one_near_expiry_is_renewed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let router = format!("127.0.0.1:{}", free_port());
    // Certificates that last 20 days: each is within 30 days of expiry, so the next
    // sweep (here, the one at slipwayd's start) renews it.
    let validity = Duration::from_secs(20 * 24 * 3600);
    let Some(pebble) = Pebble::start_with_validity(router_port(&router), validity).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api_root = dir.path().join("pebble-api.pem");
    std::fs::write(&api_root, pebble.api_root_pem()).unwrap();
    let zone = Zone::default();
    let resolver = dns_server(Arc::clone(&zone));
    let mut platform = Platform::start_routed(
        Backend::Sqlite,
        &[
            "--domain",
            "apps.test",
            "--acme-directory",
            pebble.directory_url(),
            "--acme-email",
            "ops@example.test",
            "--acme-ca-file",
            api_root.to_str().unwrap(),
            "--dns-resolver",
            &resolver,
        ],
        &router,
    )
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pebble.roots_pem().await.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }

    // The app's own host: its certificate comes once the app is routed.
    let (ada, platform_back) = tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let dir = ada.home().join("shop");
        std::fs::create_dir_all(&dir).unwrap();
        ada.cwd = dir;
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(ada.cwd.join("app.py"), APP).unwrap();
        std::fs::write(ada.cwd.join("Procfile"), "web: python3 app.py\n").unwrap();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "shop"]).success();
        ada.slip(&["create", "shop"]).success();
        let pushed = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(pushed.ok, "{}", pushed.stderr);
        (ada, platform)
    })
    .await
    .unwrap();
    platform = platform_back;
    let limit = Duration::from_secs(30);
    let (own, took) = served_within(&platform.https, "shop.apps.test", &roots, None, limit).await;
    eprintln!("shop.apps.test served with its ACME certificate after {took:?}");

    // A custom domain, once verified, gets its own within 30 s.
    let ada = tokio::task::spawn_blocking(move || {
        ada.slip(&["domains:add", "www.shop.test"]).success();
        let listed: Value =
            serde_json::from_str(ada.slip(&["domains", "--json"]).success()).unwrap();
        let token = listed[0]["challenge"]["value"].as_str().unwrap().to_owned();
        zone.lock()
            .unwrap()
            .insert("_slipway-challenge.www.shop.test".to_owned(), token);
        ada.slip(&["domains:verify", "www.shop.test"]).success();
        ada
    })
    .await
    .unwrap();
    let (custom, took) = served_within(&platform.https, "www.shop.test", &roots, None, limit).await;
    eprintln!("www.shop.test served with its ACME certificate {took:?} after domains:verify");
    assert_ne!(own, custom);
    let info = tokio::task::spawn_blocking(move || ada.slip(&["tls:info"]).success().to_owned())
        .await
        .unwrap();
    assert!(
        info.contains("www.shop.test") && info.contains("ACME"),
        "{info}"
    );

    // Restarted with both certificates 20 days from expiry: both are renewed, and served.
    platform.stop();
    platform.boot();
    let (renewed, took) = served_within(
        &platform.https,
        "www.shop.test",
        &roots,
        Some(&custom),
        limit,
    )
    .await;
    eprintln!("www.shop.test's certificate renewed {took:?} after the restart");
    assert_ne!(renewed, custom);
}

fn router_port(router: &str) -> u16 {
    router.rsplit_once(':').unwrap().1.parse().unwrap()
}
