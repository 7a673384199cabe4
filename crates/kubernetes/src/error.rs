//! The one error type of the Kubernetes runtime, and what it means to the release manager.

use releaser::RuntimeError;

/// Why the runtime could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The release's image cannot be run from a cluster.
    #[error("{0}")]
    Image(String),
    /// No kubeconfig, or one that does not work.
    #[error("cannot connect to Kubernetes: {0}; set KUBECONFIG or run slipwayd in a pod")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("cannot {doing}: {source}")]
    Api {
        doing: String,
        #[source]
        source: kube::Error,
    },
    /// The app's pods did not become ready, or its release command failed.
    #[error("{0}")]
    App(String),
    /// Waiting for the cluster took longer than it may.
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    pub(crate) fn api(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Api { doing, source }
    }
}

/// The API server's status code, if it answered.
pub(crate) fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl From<Error> for RuntimeError {
    fn from(err: Error) -> RuntimeError {
        match &err {
            Error::App(_) => RuntimeError::App(err.to_string()),
            Error::Timeout(_) => RuntimeError::Transient(err.to_string()),
            Error::Api { source, .. } => match status_code(source) {
                // Unreachable, or overloaded: worth another try.
                None | Some(429 | 500..) => RuntimeError::Transient(err.to_string()),
                Some(_) => RuntimeError::Runtime(err.to_string()),
            },
            Error::Image(_) | Error::Config(_) => RuntimeError::Runtime(err.to_string()),
        }
    }
}
