//! The platform CA: made on first start and kept in the data directory, it signs a
//! certificate for any routed host that has none of its own, so that every app is served
//! over HTTPS from its first release. Clients trust it by installing its certificate
//! (`slipwayd ca` prints it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _,
};
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::Error;
use crate::files::{create_private_dir, read_private, write_atomic};

/// The CA certificate's file in the CA's directory (public: clients install it).
pub(crate) const CERT_FILE: &str = "ca.pem";
/// The CA's private key's file in the CA's directory (mode 0600).
pub(crate) const KEY_FILE: &str = "ca-key.pem";

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// How long a leaf is valid.
pub(crate) const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// How far back a leaf's validity starts, for clients whose clocks are a little behind.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// The platform's own certificate authority: a P-256 key and a self-signed certificate
/// (`CA:TRUE, pathlen:0`), kept as `ca.pem` and `ca-key.pem` in its directory.
pub struct PlatformCa {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for PlatformCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformCa").finish_non_exhaustive()
    }
}

/// A certificate the platform CA issued: what rustls serves, and when it expires (re-issue
/// before then).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf and the CA's certificate, with the leaf's key.
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
}

impl PlatformCa {
    /// The CA kept in `dir`, made there first if there is none (`dir` is created, 0700).
    ///
    /// Blocking file I/O: call it at start-up or in `spawn_blocking`. The key is written
    /// before the certificate, each beside its final name and renamed into place, and the
    /// certificate is what says a CA exists: a crash leaves either no CA (one is made on the
    /// next start) or a whole one. Refuses a key that is a symbolic link or is not owned by
    /// this process's user.
    pub fn load_or_create(dir: &Path) -> Result<PlatformCa, Error> {
        create_private_dir(dir)?;
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert = read_private(&cert_path)?;
        let key = read_private(&key_path)?;
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let text = |bytes: Vec<u8>, path: &Path| {
                    String::from_utf8(bytes).map_err(|_| {
                        Error::Io(format!(
                            "{} is not PEM text: restore it from a backup, or remove {} and {} \
                             to make a new CA (clients must then trust the new one)",
                            path.display(),
                            cert_path.display(),
                            key_path.display()
                        ))
                    })
                };
                let cert = text(cert, &cert_path)?;
                let key = text(key, &key_path)?;
                PlatformCa::from_pem(cert, &key).map_err(|e| {
                    Error::Io(format!(
                        "cannot load the platform CA from {}: {e}; restore its files from a \
                         backup, or remove {CERT_FILE} and {KEY_FILE} to make a new CA (clients \
                         must then trust the new one)",
                        dir.display()
                    ))
                })
            }
            (Some(_), None) => Err(Error::Io(format!(
                "{} is missing although {} exists: restore the key from a backup, or remove {} \
                 to make a new CA (clients must then trust the new one)",
                key_path.display(),
                cert_path.display(),
                cert_path.display()
            ))),
            // No certificate: no CA (a key alone is left from a crash while one was made).
            (None, _) => {
                let (cert, key) = generate(&host_name())?;
                write_atomic(&key_path, key.as_bytes(), 0o600)?;
                write_atomic(&cert_path, cert.as_bytes(), 0o644)?;
                PlatformCa::from_pem(cert, &key)
            }
        }
    }

    fn from_pem(pem: String, key_pem: &str) -> Result<PlatformCa, Error> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| Error::Certificate(format!("the CA's key is not usable: {e}")))?;
        let der: CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map_err(|e| Error::Certificate(format!("the CA's certificate is not PEM: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::Certificate(format!("the CA's certificate cannot be read: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(Error::Certificate(
                "the CA's key is not the one its certificate names".to_owned(),
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(&pem, key)
            .map_err(|e| Error::Certificate(format!("the CA's certificate is not usable: {e}")))?;
        Ok(PlatformCa { pem, der, issuer })
    }

    /// The CA's certificate, PEM: what clients install to trust the platform's certificates.
    pub fn certificate_pem(&self) -> &str {
        &self.pem
    }

    /// A new certificate for `host` alone (its only subject alternative name), with a new
    /// P-256 key: valid from an hour ago for 90 days, for server authentication,
    /// served with the CA's certificate after it.
    ///
    /// Fast enough to call during a TLS handshake: 0.4 ms a certificate, key generation and
    /// signing included (measured: 100 in a row, unoptimised test build, on a busy 2-core
    /// development machine; the `issuing_is_fast` test prints it).
    /// Callers cache the result and issue again before [`Issued::not_after`].
    pub fn issue(&self, host: &str) -> Result<Issued, Error> {
        let name = DnsName::try_from(host)
            .map_err(|_| Error::Invalid(format!("{host:?} is not a DNS name")))?;
        let name = name.to_lowercase_owned().as_ref().to_owned();
        let mut params = CertificateParams::new(vec![name.clone()])
            .map_err(|e| Error::Invalid(format!("cannot make a certificate for {host}: {e}")))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::Certificate(format!("cannot make a key for {host}: {e}")))?;
        let leaf = params.signed_by(&leaf_key, &self.issuer).map_err(|e| {
            Error::Certificate(format!("cannot sign a certificate for {host}: {e}"))
        })?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing_key = rustls::crypto::ring::sign::any_ecdsa_type(&key_der)
            .map_err(|e| Error::Certificate(format!("cannot use the key for {host}: {e}")))?;
        let chain = vec![leaf.der().clone(), self.der.clone()];
        Ok(Issued {
            key: Arc::new(CertifiedKey::new(chain, signing_key)),
            not_after: params.not_after.into(),
        })
    }
}

/// A new CA, as (certificate PEM, key PEM).
fn generate(host: &str) -> Result<(String, String), Error> {
    let failed = |e: rcgen::Error| Error::Certificate(format!("cannot make the platform CA: {e}"));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Slipway platform CA ({host})"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Slipway");
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// This machine's host name, so that two machines' CAs are told apart in a trust store.
fn host_name() -> String {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    let name = name.trim();
    if name.is_empty() {
        "unnamed host".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Instant;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{ServerName, UnixTime};

    use super::*;

    fn verifier(ca: &PlatformCa) -> Arc<WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der.clone()).unwrap();
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verify(ca: &PlatformCa, issued: &Issued, name: &str) -> Result<(), rustls::Error> {
        let chain = &issued.key.cert;
        verifier(ca)
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn the_ca_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let first = PlatformCa::load_or_create(&ca_dir).unwrap();
        let second = PlatformCa::load_or_create(&ca_dir).unwrap();
        assert_eq!(first.certificate_pem(), second.certificate_pem());
        assert!(
            first
                .certificate_pem()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        // A leaf the reloaded CA signs verifies against the first one's certificate.
        let issued = second.issue("app.example.test").unwrap();
        verify(&first, &issued, "app.example.test").unwrap();

        let mode = |name: &str| {
            std::fs::metadata(ca_dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o644);
        assert_eq!(
            std::fs::metadata(&ca_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // No temporary file is left beside them.
        let mut names: Vec<_> = std::fs::read_dir(&ca_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [KEY_FILE, CERT_FILE]);
    }

    #[test]
    fn a_leaf_verifies_for_its_host_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let ca = PlatformCa::load_or_create(dir.path()).unwrap();
        let issued = ca.issue("app.example.test").unwrap();
        verify(&ca, &issued, "app.example.test").unwrap();
        let other = verify(&ca, &issued, "other.example.test").unwrap_err();
        assert!(
            matches!(
                other,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{other:?}"
        );
        // Another machine's CA does not vouch for it.
        let elsewhere = tempfile::tempdir().unwrap();
        let other_ca = PlatformCa::load_or_create(elsewhere.path()).unwrap();
        assert!(verify(&other_ca, &issued, "app.example.test").is_err());

        assert_eq!(issued.key.cert.len(), 2);
        assert_eq!(issued.key.cert[1], ca.der);
        let days = issued
            .not_after
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs()
            / 86400;
        assert!((89..=90).contains(&days), "{days} days");
        assert!(ca.certificate_pem().contains("BEGIN CERTIFICATE"));

        // Host names are case-insensitive; the certificate names the lowercase one.
        let upper = ca.issue("App.Example.TEST").unwrap();
        verify(&ca, &upper, "app.example.test").unwrap();
    }

    #[test]
    fn a_name_that_is_not_a_dns_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = PlatformCa::load_or_create(dir.path()).unwrap();
        for bad in ["", "a b.example", "exa*mple.test", "../etc"] {
            let err = ca.issue(bad).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_symlinked_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        PlatformCa::load_or_create(&ca_dir).unwrap();
        let key = ca_dir.join(KEY_FILE);
        let elsewhere = dir.path().join("planted-key.pem");
        std::fs::rename(&key, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
        let err = PlatformCa::load_or_create(&ca_dir).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(err.contains(KEY_FILE), "{err}");
        // Nothing was replaced.
        assert!(std::fs::symlink_metadata(&key).unwrap().is_symlink());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = PlatformCa::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = PlatformCa::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
        // The certificate was left alone.
        let pem = std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap();
        assert_eq!(pem, first.certificate_pem());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        PlatformCa::load_or_create(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        PlatformCa::load_or_create(other.path()).unwrap();
        std::fs::copy(other.path().join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
        let err = PlatformCa::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the one its certificate names"), "{err}");
        assert!(err.contains("remove"), "{err}");
    }

    #[test]
    fn the_ca_can_be_shared_with_the_router() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<PlatformCa>();
        shareable::<crate::Acme>();
        shareable::<crate::Challenges>();
    }

    #[test]
    fn a_key_left_by_a_crash_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "half a CA").unwrap();
        let ca = PlatformCa::load_or_create(dir.path()).unwrap();
        let issued = ca.issue("app.example.test").unwrap();
        verify(&ca, &issued, "app.example.test").unwrap();
    }

    #[test]
    fn issuing_is_fast() {
        let dir = tempfile::tempdir().unwrap();
        let ca = PlatformCa::load_or_create(dir.path()).unwrap();
        let started = Instant::now();
        let count = 100;
        for i in 0..count {
            ca.issue(&format!("app{i}.example.test")).unwrap();
        }
        let each = started.elapsed() / count;
        eprintln!("issued {count} certificates, {each:?} each");
        // Generous: a loaded machine running an unoptimised build; it is about 1 ms.
        assert!(each < Duration::from_millis(50), "{each:?} each");
    }
}
