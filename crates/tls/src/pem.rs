//! Certificates uploaded by app owners, checked before they are stored: the PEM parses, the
//! key is one rustls can sign with and belongs to the leaf, the leaf has not expired; and
//! the names it covers, its validity and fingerprint, read for `slip certs:info`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The most certificates a chain may hold (the leaf and its intermediates).
pub const MAX_CHAIN: usize = 10;

/// The largest certificate chain or key file accepted, in bytes.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// An uploaded certificate, as read from its chain's leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The DNS names it covers, lowercase: its subject alternative names, else its common
    /// name. `*.example.com` for a wildcard.
    pub names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the leaf's DER, in lowercase hex.
    pub fingerprint: String,
    pub issuer: String,
    pub subject: String,
    /// Issued by itself: browsers will not trust it unless told to.
    pub self_signed: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

impl Certificate {
    /// Checks a chain and its key as `slip certs:add` sends them; refused with one line when
    /// they cannot be served.
    pub fn parse(chain_pem: &str, key_pem: &str) -> Result<Certificate, Error> {
        Certificate::parse_at(chain_pem, key_pem, OffsetDateTime::now_utc())
    }

    /// [`Certificate::parse`] as of `now`.
    pub fn parse_at(
        chain_pem: &str,
        key_pem: &str,
        now: OffsetDateTime,
    ) -> Result<Certificate, Error> {
        let (chain, key) = read(chain_pem, key_pem)?;
        let leaf = &chain[0];
        let (_, x509) = X509Certificate::from_der(leaf.as_ref()).map_err(|_| {
            invalid("the first certificate in the file does not parse as X.509: upload the leaf certificate first")
        })?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
            invalid("the key does not parse as an RSA, ECDSA P-256/P-384 or Ed25519 private key")
        })?;
        match signing_key.public_key() {
            Some(spki) if spki.as_ref() == x509.public_key().raw => {}
            Some(_) => {
                return Err(invalid(
                    "the key does not match the certificate: upload the key the certificate was issued for",
                ));
            }
            None => {
                return Err(invalid(
                    "the key's public half cannot be compared with the certificate: use an RSA or ECDSA key",
                ));
            }
        }
        let not_before = x509.validity().not_before.to_datetime();
        let not_after = x509.validity().not_after.to_datetime();
        if not_after <= now {
            return Err(invalid(format!(
                "the certificate expired on {}: upload a current one",
                not_after.date()
            )));
        }
        let mut names: Vec<String> = Vec::new();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    push_name(&mut names, dns);
                }
            }
        }
        if names.is_empty() {
            for cn in x509.subject().iter_common_name() {
                if let Ok(cn) = cn.as_str() {
                    push_name(&mut names, cn);
                }
            }
        }
        if names.is_empty() {
            return Err(invalid(
                "the certificate names no host (no DNS subject alternative name or common name)",
            ));
        }
        Ok(Certificate {
            names,
            not_before,
            not_after,
            fingerprint: hex::encode(Sha256::digest(leaf.as_ref())),
            issuer: x509.issuer().to_string(),
            subject: x509.subject().to_string(),
            self_signed: x509.issuer().as_raw() == x509.subject().as_raw(),
        })
    }

    /// Whether the certificate is valid for `host`: one of its names exactly (case aside), or
    /// one label below a wildcard's parent (`*.example.com` covers `www.example.com`, not
    /// `example.com` nor `a.b.example.com`).
    pub fn covers(&self, host: &str) -> bool {
        domain::certificate_covers(&self.names, host)
    }
}

fn push_name(names: &mut Vec<String>, name: &str) {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if !name.is_empty() && !names.contains(&name) {
        names.push(name);
    }
}

/// The chain's certificates and the key, read from PEM within the limits.
fn read(
    chain_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    if chain_pem.len() > MAX_PEM_BYTES {
        return Err(invalid(format!(
            "the certificate file is over {} KiB: upload only the leaf and its intermediates",
            MAX_PEM_BYTES / 1024
        )));
    }
    if key_pem.len() > MAX_PEM_BYTES {
        return Err(invalid(format!(
            "the key file is over {} KiB: upload only the private key",
            MAX_PEM_BYTES / 1024
        )));
    }
    if !chain_pem.contains("-----BEGIN ") {
        return Err(invalid(
            "the certificate file is not PEM: expected -----BEGIN CERTIFICATE-----",
        ));
    }
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(chain_pem.as_bytes()) {
        let cert = cert.map_err(|_| {
            invalid("the certificate file is not valid PEM: a block does not decode")
        })?;
        chain.push(cert);
        if chain.len() > MAX_CHAIN {
            return Err(invalid(format!(
                "the certificate file holds more than {MAX_CHAIN} certificates: upload only the leaf and its intermediates"
            )));
        }
    }
    if chain.is_empty() {
        return Err(invalid(
            "the certificate file holds no certificate: expected -----BEGIN CERTIFICATE-----",
        ));
    }
    if !key_pem.contains("-----BEGIN ") {
        return Err(invalid(
            "the key file is not PEM: expected -----BEGIN PRIVATE KEY-----",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        invalid("the key file holds no private key that parses (PKCS#8, PKCS#1 RSA or SEC1 EC)")
    })?;
    Ok((chain, key))
}

/// The chain and key as rustls serves them, for the router. Checks that the key signs and
/// belongs to the leaf, not the dates: what the store holds was checked when it came in.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, Error> {
    let (chain, key) = read(chain_pem, key_pem)?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| invalid("the key is of a kind that cannot sign for HTTPS"))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|_| invalid("the key does not match the certificate"))?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Made {
        chain: String,
        key: String,
    }

    fn make(names: &[&str], not_after: OffsetDateTime) -> Made {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Made {
            chain: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn good() -> Made {
        make(
            &["shop.example.com", "*.shop.example.com"],
            OffsetDateTime::now_utc() + time::Duration::days(90),
        )
    }

    fn refusal(chain: &str, key: &str) -> String {
        Certificate::parse(chain, key).unwrap_err().to_string()
    }

    #[test]
    fn a_good_certificate_is_read_and_covers_its_names() {
        let made = good();
        let cert = Certificate::parse(&made.chain, &made.key).unwrap();
        assert_eq!(cert.names, ["shop.example.com", "*.shop.example.com"]);
        assert!(cert.self_signed);
        assert_eq!(cert.fingerprint.len(), 64);
        assert!(cert.covers("shop.example.com"));
        assert!(cert.covers("WWW.shop.example.com."));
        assert!(!cert.covers("a.b.shop.example.com"));
        assert!(!cert.covers("example.com"));
        certified_key(&made.chain, &made.key).unwrap();
    }

    #[test]
    fn not_pem_and_no_certificate_are_refused() {
        let made = good();
        assert!(refusal("hello", &made.key).contains("not PEM"));
        let only_key = made.key.clone();
        assert!(refusal(&only_key, &made.key).contains("no certificate"));
        let broken = made.chain.replace("MII", "!!!");
        assert!(refusal(&broken, &made.key).contains("not valid PEM"));
    }

    #[test]
    fn too_many_certificates_or_bytes_are_refused() {
        let made = good();
        let eleven = made.chain.repeat(MAX_CHAIN + 1);
        assert!(refusal(&eleven, &made.key).contains("more than 10"));
        let huge = format!("{}{}", made.chain, " ".repeat(MAX_PEM_BYTES));
        assert!(refusal(&huge, &made.key).contains("over 64 KiB"));
    }

    #[test]
    fn a_key_that_does_not_parse_or_does_not_match_is_refused() {
        let made = good();
        let garbled = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(refusal(&made.chain, garbled).contains("does not parse"));
        assert!(refusal(&made.chain, "key").contains("not PEM"));
        let other = good();
        let err = refusal(&made.chain, &other.key);
        assert!(err.contains("does not match"), "{err}");
        assert!(certified_key(&made.chain, &other.key).is_err());
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let made = make(
            &["old.example.com"],
            OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        assert!(refusal(&made.chain, &made.key).contains("expired on"));
    }

    #[test]
    fn every_refusal_is_one_line() {
        let made = good();
        for err in [refusal("x", &made.key), refusal(&made.chain, &good().key)] {
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
