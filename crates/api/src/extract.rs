//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the same JSON
//! error body as every other failure.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// `axum::Json`, rejecting with a one-line 400 (or 413 for a body over the limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge("the request body is too large".to_owned());
        }
        match &rejection {
            // Well-formed JSON of the wrong shape (a missing field, a number for a string).
            JsonRejection::JsonDataError(err) => {
                ApiError::Invalid(format!("invalid request body: {}", innermost(err)))
            }
            JsonRejection::JsonSyntaxError(err) => {
                ApiError::BadRequest(format!("malformed JSON: {}", innermost(err)))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
                "expected a JSON body with Content-Type: application/json".to_owned(),
            ),
            other => ApiError::BadRequest(one_line(&other.body_text())),
        }
    }
}

/// `axum::extract::Path`, rejecting with a one-line 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(one_line(&rejection.body_text()))
    }
}

/// `axum::extract::Query`, rejecting with a one-line 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(one_line(&rejection.body_text()))
    }
}

/// The deepest cause of an error: serde's own message, without axum's wrapping.
fn innermost(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    one_line(&current.to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The client's address, when the server knows it (`ConnectInfo`; not in `oneshot` tests).
/// Behind a reverse proxy this is the proxy's address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Peer, Self::Rejection> {
        let info = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Peer(info.map(|info| info.0.ip())))
    }
}
