//! Certificates from an ACME server (Let's Encrypt, or Pebble in tests) by the HTTP-01
//! challenge: [`Acme::issue`] orders one for a host, publishes the challenge's answer in
//! [`Challenges`] (which the router serves at `/.well-known/acme-challenge/<token>` on plain
//! HTTP), and returns the chain and its new key.
//!
//! The account's credentials are kept in one file (0600), made on first use; the ACME
//! server's own HTTPS API is reached with the platform's roots plus, optionally, one extra
//! CA (a private or test ACME server's).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, DnsName};
use tokio::time::Instant;

use crate::Error;
use crate::files::{read_private, write_atomic};

/// How long one [`Acme::issue`] may take, from ordering to the downloaded chain.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

/// The problem types (as [`problem_text`] shows them) of a challenge the ACME server could
/// not validate: the host's DNS or port 80 does not lead here.
const VALIDATION_PROBLEMS: &[&str] = &[
    "(connection)",
    "(dns)",
    "(unauthorized)",
    "(incorrectResponse)",
];

/// How long one request to the ACME server may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The answers to pending HTTP-01 challenges: token → key authorization. Cheap to clone;
/// every clone sees the same map. [`Acme`] fills it, the router's plain-HTTP listener reads
/// it.
#[derive(Debug, Clone, Default)]
pub struct Challenges {
    inner: Arc<Mutex<HashMap<String, String>>>,
}

impl Challenges {
    pub fn new() -> Challenges {
        Challenges::default()
    }

    /// The body to answer `GET /.well-known/acme-challenge/<token>` with, if that challenge
    /// is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    /// How many challenges are pending.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes an answer until the returned guard is dropped.
    fn publish(&self, token: String, key_authorization: String) -> Published {
        self.lock().insert(token.clone(), key_authorization);
        Published {
            challenges: self.clone(),
            token,
        }
    }
}

/// Removes its challenge's answer when dropped: when the order ends, fails, or is cancelled.
struct Published {
    challenges: Challenges,
    token: String,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.challenges.lock().remove(&self.token);
    }
}

/// Where and as whom to ask for certificates.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME server's directory URL (e.g. Let's Encrypt's
    /// `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// An address the ACME server may write to about the account (`mailto:` is added when
    /// missing).
    pub contact: Option<String>,
    /// A CA certificate (PEM) to trust, besides the platform's roots, for the ACME server's
    /// own HTTPS API: a private ACME server's, or Pebble's in tests.
    pub extra_root_pem: Option<String>,
    /// Where the account's credentials are kept (created 0600 on first use).
    pub account_file: PathBuf,
}

/// A certificate from the ACME server.
#[derive(Debug, Clone)]
pub struct AcmeIssued {
    /// The leaf first, then the intermediates, PEM.
    pub chain_pem: String,
    /// The leaf's new P-256 key, PKCS#8 PEM.
    pub key_pem: String,
    /// When the leaf expires: obtain the next one well before.
    pub not_after: SystemTime,
}

/// An ACME account on one server, ready to order certificates.
#[derive(Clone)]
pub struct Acme {
    account: Account,
    challenges: Challenges,
    directory: String,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.directory)
            .field("account", &self.account.id())
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// The account kept in `config.account_file`, or a new one on `config.directory` (its
    /// terms of service agreed) whose credentials are then written there.
    pub async fn new(config: AcmeConfig, challenges: Challenges) -> Result<Acme, Error> {
        let directory = config.directory.clone();
        let http = http_client(config.extra_root_pem.as_deref())?;
        let path = config.account_file.clone();
        let stored = tokio::task::spawn_blocking(move || read_private(&path))
            .await
            .map_err(|e| Error::Io(format!("reading the ACME account failed: {e}")))??;
        let file = config.account_file.display().to_string();
        let account = match stored {
            Some(bytes) => {
                let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Io(format!(
                        "{file} is not an ACME account ({e}): remove it to create a new account"
                    ))
                })?;
                let stored_directory = value.get("directory").and_then(|d| d.as_str());
                if stored_directory != Some(directory.as_str()) {
                    return Err(Error::Io(format!(
                        "{file} holds an account on {}, not on {directory}: remove it to create \
                         a new account, or use the other server",
                        stored_directory.unwrap_or("an unknown ACME server")
                    )));
                }
                let credentials: AccountCredentials =
                    serde_json::from_value(value).map_err(|e| {
                        Error::Io(format!(
                            "{file} is not an ACME account ({e}): remove it to create a new account"
                        ))
                    })?;
                Account::builder_with_http(http)
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| {
                        Error::Acme(format!(
                            "cannot reach the ACME server at {directory}: {}; check the URL and \
                             the network",
                            describe(&e)
                        ))
                    })?
            }
            None => {
                let contact = config.contact.as_deref().map(|c| {
                    if c.starts_with("mailto:") {
                        c.to_owned()
                    } else {
                        format!("mailto:{c}")
                    }
                });
                let contacts: Vec<&str> = contact.as_deref().into_iter().collect();
                let (account, credentials) = Account::builder_with_http(http)
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| {
                        Error::Acme(format!(
                            "cannot create an account on the ACME server at {directory}: {}",
                            describe(&e)
                        ))
                    })?;
                let json = serde_json::to_vec_pretty(&credentials)
                    .map_err(|e| Error::Io(format!("cannot encode the ACME account: {e}")))?;
                let path = config.account_file.clone();
                tokio::task::spawn_blocking(move || write_atomic(&path, &json, 0o600))
                    .await
                    .map_err(|e| Error::Io(format!("writing the ACME account failed: {e}")))??;
                account
            }
        };
        Ok(Acme {
            account,
            challenges,
            directory,
        })
    }

    /// The account's URL on the ACME server.
    pub fn account_id(&self) -> &str {
        self.account.id()
    }

    /// The challenges this account publishes while it orders.
    pub fn challenges(&self) -> &Challenges {
        &self.challenges
    }

    /// A certificate for `host` (its only name) by HTTP-01: the ACME server fetches
    /// `http://<host>/.well-known/acme-challenge/<token>`, answered from [`Challenges`]
    /// while the order is pending. Fails within [`ISSUE_DEADLINE`] with one line naming
    /// the host and the ACME server's problem; the answer is withdrawn in every case.
    pub async fn issue(&self, host: &str) -> Result<AcmeIssued, Error> {
        let name = DnsName::try_from(host)
            .map_err(|_| Error::Invalid(format!("{host:?} is not a DNS name")))?;
        let host = name.to_lowercase_owned().as_ref().to_owned();
        let deadline = Instant::now() + ISSUE_DEADLINE;
        match tokio::time::timeout_at(deadline, self.order(&host, deadline)).await {
            Ok(Ok(issued)) => Ok(issued),
            Ok(Err(problem)) => {
                // The server could not fetch the answer, or got a wrong one: say where to look.
                let hint = if VALIDATION_PROBLEMS
                    .iter()
                    .any(|kind| problem.contains(kind))
                {
                    format!(
                        "; check that {host} resolves to this machine and that port 80 reaches it"
                    )
                } else {
                    String::new()
                };
                Err(Error::Acme(format!(
                    "cannot obtain a certificate for {host} from {}: {problem}{hint}",
                    self.directory
                )))
            }
            Err(_) => Err(Error::Acme(format!(
                "cannot obtain a certificate for {host} from {}: no answer within {} s; check \
                 that {host} resolves to this machine and that port 80 reaches it",
                self.directory,
                ISSUE_DEADLINE.as_secs()
            ))),
        }
    }

    /// One order, start to end; errors are the problem alone (the caller names the host).
    async fn order(&self, host: &str, deadline: Instant) -> Result<AcmeIssued, String> {
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| describe(&e))?;

        let mut published = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| describe(&e))?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                status => return Err(format!("the authorization is {status:?}")),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or("the ACME server offers no HTTP-01 challenge")?;
            published.push(self.challenges.publish(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            ));
            challenge.set_ready().await.map_err(|e| describe(&e))?;
        }

        let status = order
            .poll_ready(&retries(deadline))
            .await
            .map_err(|e| describe(&e))?;
        if status != OrderStatus::Ready {
            return Err(self.why_invalid(&mut order).await);
        }
        drop(published);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("cannot make a key: {e}"))?;
        let mut params = CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| format!("cannot make a certificate request: {e}"))?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("cannot make a certificate request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| describe(&e))?;
        let chain_pem = order
            .poll_certificate(&retries(deadline))
            .await
            .map_err(|e| describe(&e))?;
        let not_after = leaf_not_after(&chain_pem)?;
        Ok(AcmeIssued {
            chain_pem,
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    /// The problem the ACME server recorded for an invalid order: a challenge's, else the
    /// order's.
    async fn why_invalid(&self, order: &mut instant_acme::Order) -> String {
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authorization)) = authorizations.next().await {
            let Ok(state) = authorization.refresh().await else {
                continue;
            };
            for challenge in &state.challenges {
                if let Some(problem) = &challenge.error {
                    return problem_text(problem);
                }
            }
        }
        match &order.state().error {
            Some(problem) => problem_text(problem),
            None => "the ACME server marked the order invalid without saying why".to_owned(),
        }
    }
}

/// Polling with backoff, never past `deadline`.
fn retries(deadline: Instant) -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(100))
        .backoff(1.5)
        .timeout(deadline.saturating_duration_since(Instant::now()))
}

/// An instant-acme error as one line: the ACME problem's detail, or the error and its causes.
fn describe(e: &instant_acme::Error) -> String {
    if let instant_acme::Error::Api(problem) = e {
        return problem_text(problem);
    }
    if let instant_acme::Error::Timeout(_) = e {
        return "the ACME server did not finish the order in time".to_owned();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    one_line(&text)
}

fn cause_of<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(std::error::Error::source)
}

fn problem_text(problem: &instant_acme::Problem) -> String {
    let mut text = problem.detail.clone().unwrap_or_default();
    if let Some(kind) = &problem.r#type {
        let kind = kind
            .strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(kind);
        if text.is_empty() {
            text = kind.to_owned();
        } else {
            text = format!("{text} ({kind})");
        }
    }
    for sub in &problem.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str("; ");
            text.push_str(detail);
        }
    }
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The expiry of the chain's first certificate.
fn leaf_not_after(chain_pem: &str) -> Result<SystemTime, String> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("the ACME server sent no certificate")?
        .map_err(|e| format!("the ACME server sent a chain that is not PEM: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| format!("the ACME server sent a certificate that cannot be read: {e}"))?;
    Ok(parsed.validity().not_after.to_datetime().into())
}

/// The HTTP client for the ACME server's API: the platform's roots plus `extra_root_pem`,
/// on ring.
fn http_client(extra_root_pem: Option<&str>) -> Result<Box<dyn HttpClient>, Error> {
    let mut extra = Vec::new();
    if let Some(pem) = extra_root_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            extra.push(cert.map_err(|e| {
                Error::Invalid(format!(
                    "the ACME server's extra root is not a PEM certificate: {e}"
                ))
            })?);
        }
        if extra.is_empty() {
            return Err(Error::Invalid(
                "the ACME server's extra root holds no PEM certificate: give its CA certificate"
                    .to_owned(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()).map_err(
            |e| Error::Invalid(format!("cannot load the platform's root certificates: {e}")),
        )?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("cannot set up TLS for the ACME server: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_answer_is_withdrawn_when_dropped() {
        let challenges = Challenges::new();
        let reader = challenges.clone();
        let guard = challenges.publish("token".into(), "token.thumbprint".into());
        assert_eq!(reader.get("token").as_deref(), Some("token.thumbprint"));
        assert_eq!(reader.get("other"), None);
        drop(guard);
        assert_eq!(reader.get("token"), None);
        assert!(reader.is_empty());
    }

    #[test]
    fn an_extra_root_that_is_not_pem_is_refused() {
        let err = http_client(Some("not a certificate")).err().unwrap();
        assert!(err.to_string().contains("extra root"), "{err}");
    }
}
