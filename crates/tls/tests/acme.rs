//! ACME against a real ACME server (Pebble, from test-support) and a tiny HTTP listener that
//! answers HTTP-01 challenges from `Challenges`, as the router does on port 80.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use slipway_tls::acme::ISSUE_DEADLINE;
use slipway_tls::{Acme, AcmeConfig, Challenges, Error};
use test_support::pebble::Pebble;

/// Serves `challenges` at `/.well-known/acme-challenge/<token>` on a free loopback port.
async fn responder(challenges: Challenges) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(
                |State(challenges): State<Challenges>, Path(token): Path<String>| async move {
                    match challenges.get(&token) {
                        Some(answer) => answer.into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .with_state(challenges);
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn config(pebble: &Pebble, dir: &tempfile::TempDir) -> AcmeConfig {
    AcmeConfig {
        directory: pebble.directory_url().to_owned(),
        contact: Some("ops@slipway.test".to_owned()),
        extra_root_pem: Some(pebble.api_root_pem().to_owned()),
        account_file: dir.path().join("acme-account.json"),
    }
}

/// Checks `chain_pem` for `host` against Pebble's root, as a client would.
fn verify(roots_pem: &str, chain_pem: &str, host: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(host.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[tokio::test]
async fn a_certificate_is_issued_by_http_01_and_verifies_for_its_host() {
    test_support::init();
    let challenges = Challenges::new();
    let port = responder(challenges.clone()).await;
    let Some(pebble) = Pebble::start(port).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let acme = Acme::new(config(&pebble, &dir), challenges.clone())
        .await
        .unwrap();

    let issued = acme.issue("app.example.test").await.unwrap();
    let roots = pebble.roots_pem().await;
    verify(&roots, &issued.chain_pem, "app.example.test").unwrap();
    assert!(verify(&roots, &issued.chain_pem, "other.example.test").is_err());
    // Not trusted by anything else: the check above can fail.
    assert!(verify(pebble.api_root_pem(), &issued.chain_pem, "app.example.test").is_err());

    // The key is the leaf's.
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .expect("the key matches the certificate");

    // Pebble's default: 90 days.
    let days = issued
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs()
        / 86400;
    assert!((89..=90).contains(&days), "{days} days");
    // The answer was withdrawn.
    assert!(challenges.is_empty());

    // Each certificate gets a key of its own.
    let again = acme.issue("app.example.test").await.unwrap();
    assert_ne!(again.key_pem, issued.key_pem);
}

#[tokio::test]
async fn the_account_is_kept_and_reused() {
    test_support::init();
    let challenges = Challenges::new();
    let port = responder(challenges.clone()).await;
    let Some(pebble) = Pebble::start_with_validity(port, Duration::from_secs(600)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = Acme::new(config(&pebble, &dir), challenges.clone())
        .await
        .unwrap();
    let file = dir.path().join("acme-account.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored = std::fs::read(&file).unwrap();

    let second = Acme::new(config(&pebble, &dir), challenges.clone())
        .await
        .unwrap();
    assert_eq!(first.account_id(), second.account_id());
    assert_eq!(
        std::fs::read(&file).unwrap(),
        stored,
        "the file is unchanged"
    );

    // The reloaded account orders; the fixture's short validity is honoured.
    let issued = second.issue("reused.example.test").await.unwrap();
    let left = issued.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(600), "{left:?}");

    // Another ACME server's account file is refused rather than used.
    let mut elsewhere = config(&pebble, &dir);
    elsewhere.directory = elsewhere.directory.replace("/dir", "/other-dir");
    let err = Acme::new(elsewhere, challenges).await.unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert!(err.to_string().contains("remove it"), "{err}");
}

#[tokio::test]
async fn a_challenge_nobody_serves_fails_clearly_and_in_time() {
    test_support::init();
    let served = Challenges::new();
    let port = responder(served).await;
    let Some(pebble) = Pebble::start(port).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // This account publishes its answers where the listener does not look.
    let unserved = Challenges::new();
    let acme = Acme::new(config(&pebble, &dir), unserved.clone())
        .await
        .unwrap();

    let started = Instant::now();
    let err = acme.issue("unserved.example.test").await.unwrap_err();
    let took = started.elapsed();
    let message = err.to_string();
    eprintln!("{message} (after {took:?})");
    assert!(matches!(err, Error::Acme(_)), "{message}");
    assert!(message.contains("unserved.example.test"), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("port 80"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(took < ISSUE_DEADLINE, "{took:?}");
    assert!(unserved.is_empty(), "the answer was withdrawn");

    // A name that is not a DNS name is refused before anything is ordered.
    let err = acme.issue("not a host").await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}
