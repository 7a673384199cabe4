//! The one error type of the TLS crate.

/// Why a certificate could not be checked, made or obtained. Messages are one line and say
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input refused: a certificate or key that cannot be served.
    #[error("{0}")]
    Invalid(String),
    /// The platform's files (the CA, the ACME account) could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A certificate could not be made or signed (by the platform CA).
    #[error("{0}")]
    Certificate(String),
    /// The ACME server refused, failed, or did not answer in time.
    #[error("{0}")]
    Acme(String),
}
