//! HTTPS: the certificate for each handshake, chosen by SNI from the route table — an app's
//! own certificate (uploaded, or from ACME) where it has one, else the platform's, made on
//! first use by an [`Issuer`] and kept until near its expiry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::Routes;

/// A platform certificate is made again when it has less than this left.
const REISSUE_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Makes the platform's own certificate for a host that has none of its own: on one machine,
/// the platform CA signs it.
pub trait Issuer: Send + Sync + fmt::Debug {
    /// A certificate for `host`, or why there is none (logged, and the handshake fails).
    fn issue(&self, host: &str) -> Result<Issued, String>;
}

/// A certificate made by an [`Issuer`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
}

/// rustls' certificate choice for the router's HTTPS listener.
#[derive(Debug)]
struct Resolver {
    routes: Routes,
    issuer: Option<Arc<dyn Issuer>>,
    /// Platform certificates made so far, by host.
    issued: Mutex<HashMap<String, Issued>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        let table = self.routes.current();
        if let Some(certificate) = table.certificate(&host) {
            return Some(Arc::clone(certificate));
        }
        // Only a host the router serves gets a certificate: a client naming others makes
        // the router sign nothing and keep nothing.
        if !table.routes(&host) {
            return None;
        }
        let issuer = self.issuer.as_ref()?;
        let fresh = |issued: &Issued| {
            issued
                .not_after
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > REISSUE_BEFORE)
        };
        let mut cache = self.issued.lock().expect("never poisoned");
        if let Some(issued) = cache.get(&host).filter(|i| fresh(i)) {
            return Some(Arc::clone(&issued.key));
        }
        // Signing a P-256 certificate takes well under a millisecond; it happens once per
        // host and about every three months.
        match issuer.issue(&host) {
            Ok(issued) => {
                let key = Arc::clone(&issued.key);
                if cache.len() > 2 * table.len() + 16 {
                    cache.retain(|h, _| table.routes(h));
                }
                cache.insert(host, issued);
                Some(key)
            }
            Err(err) => {
                tracing::error!(%host, error = %err, "cannot make a certificate");
                None
            }
        }
    }
}

/// The router's TLS settings: HTTP/2 and HTTP/1.1 by ALPN, certificates by SNI from
/// `routes` (or made by `issuer`), session resumption by tickets and by a session cache.
pub fn server_config(
    routes: &Routes,
    issuer: Option<Arc<dyn Issuer>>,
) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            routes: routes.clone(),
            issuer,
            issued: Mutex::default(),
        }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(10_240);
    match rustls::crypto::ring::Ticketer::new() {
        Ok(ticketer) => config.ticketer = ticketer,
        Err(err) => tracing::warn!(error = %err, "no TLS session tickets"),
    }
    // The server's order of cipher suites, not the client's (see `provider`).
    config.ignore_client_order = true;
    Arc::new(config)
}

/// ring's cipher suites with AES-128-GCM and SHA-256 first: ring hashes SHA-256 with the
/// CPU's SHA extensions, but SHA-384 — which AES-256-GCM suites, most clients' first choice,
/// use for every handshake's key schedule — in plain code on CPUs other than Intel's (a
/// tenth of a resumed handshake's time). AES-128-GCM is as safe for TLS, and takes fewer
/// rounds per record.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}
