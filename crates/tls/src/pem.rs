//! Certificates as PEM text: a chain and its key turned into what rustls serves.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::Error;

/// The chain (leaf first) and key, ready to serve. Refuses PEM that holds no certificate, a
/// key rustls cannot sign with, or a key that is not the leaf's.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, Error> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("the certificate is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Invalid(
            "no certificate found: give the PEM file that starts with -----BEGIN CERTIFICATE-----"
                .to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Invalid(format!("the private key is not PEM: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        Error::Invalid(format!(
            "the private key cannot be used ({e}): give an RSA, ECDSA or Ed25519 key"
        ))
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        Error::Invalid("the private key does not belong to the certificate".to_owned())
    })?;
    Ok(Arc::new(certified))
}
