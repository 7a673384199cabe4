//! Certificates for HTTPS: the platform's own CA (which signs a certificate for every app
//! host on one machine), certificates uploaded by app owners (checked before they are
//! stored), and certificates obtained from an ACME server (HTTP-01).
//!
//! Architecture invariant: this crate knows nothing of the store, the router or apps. It
//! turns names and PEM into certificates and keys; who serves them, and for which app, is
//! decided elsewhere.

pub mod acme;
mod ca;
mod error;
mod files;
mod pem;

pub use acme::{Acme, AcmeConfig, AcmeIssued, Challenges};
pub use ca::{Issued, PlatformCa};
pub use error::Error;
pub use pem::{Certificate, MAX_CHAIN, MAX_PEM_BYTES, certified_key};
