//! The API's one error type: the status `match`, the JSON body, and the one place that logs.

use api_types::ErrorBody;
use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Why a request failed. The message of every variant but `Internal` is shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many attempts (wrong passwords): try again after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// The platform is too busy for this now (password hashing is at capacity).
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    /// A failure of the platform itself. The client sees a generic message; the cause is
    /// logged by [`log_server_errors`].
    #[error("internal error: {0}")]
    Internal(String),
}

/// The cause of a 5xx, carried from the error to the logging middleware.
#[derive(Debug, Clone)]
struct InternalCause(String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid(_) => "invalid_input",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Busy { .. } => "busy",
            ApiError::Internal(_) => "internal",
        }
    }

    pub(crate) fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match &self {
            ApiError::Internal(_) => "internal error; the server log has the details".to_owned(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error,
            code: self.code().to_owned(),
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            ApiError::Internal(cause) => {
                response.extensions_mut().insert(InternalCause(cause));
            }
            ApiError::TooManyRequests { retry_after, .. } | ApiError::Busy { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            _ => {}
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> ApiError {
        match err {
            store::Error::NotFound(_) => ApiError::NotFound(err.to_string()),
            store::Error::Conflict(_) | store::Error::Rollback(_) => {
                ApiError::Conflict(err.to_string())
            }
            store::Error::Invalid(_) => ApiError::Invalid(err.to_string()),
            store::Error::Forbidden(_) => ApiError::Forbidden(err.to_string()),
            store::Error::Database(_)
            | store::Error::Migrate(_)
            | store::Error::UnsupportedUrl(_)
            | store::Error::Corrupt(_) => ApiError::Internal(error_chain(&err)),
        }
    }
}

impl From<domain::Error> for ApiError {
    fn from(err: domain::Error) -> ApiError {
        ApiError::Invalid(err.to_string())
    }
}

/// `err: cause: cause`, for logs.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Logs every 5xx with its cause; the client never sees the cause.
pub(crate) async fn log_server_errors(response: Response) -> Response {
    if response.status().is_server_error() {
        let cause = response.extensions().get::<InternalCause>();
        // Shedding load is not a failure, and a flood of it must not flood the log.
        if cause.is_none() && response.status() == StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        let cause = cause.map_or("", |c| c.0.as_str());
        tracing::error!(status = %response.status(), cause, "request failed");
    }
    response
}

pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

/// No route: JSON for the API's clients; the dashboard's error page for a browser asking
/// for a page outside `/v1`.
pub(crate) async fn not_found(
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let wants_page = !uri.path().starts_with("/v1")
        && headers
            .get(axum::http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_page {
        return crate::web::no_such_page();
    }
    ApiError::NotFound(format!("no such endpoint: {method} {}", uri.path())).into_response()
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = ErrorBody {
        error: format!("{method} is not allowed on {}", uri.path()),
        code: "method_not_allowed".to_owned(),
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
