//! Certificates an app's collaborators upload for its custom domains (Deis' `certs:*`):
//! checked with `tls::Certificate::parse` before they are stored, attached to the domains
//! they cover, and never shown again with their key.

use api_types::{AddCertificate, Certificate, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};

fn wire(c: store::Certificate) -> Certificate {
    Certificate {
        name: c.name,
        subject: c.subject,
        issuer: c.issuer,
        names: c.names,
        domains: c.domains,
        not_before: c.not_before,
        not_after: c.not_after,
        fingerprint: c.fingerprint,
        created_at: c.created_at,
        created_by: c.created_by,
    }
}

/// A certificate's name: like a process type, 1–63 lowercase letters, digits and dashes.
fn check_name(name: &str) -> Result<(), ApiError> {
    let bytes = name.as_bytes();
    let valid = (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "{name:?} is not a certificate name: use 1-63 lowercase letters, digits and dashes, starting with a letter"
        )))
    }
}

#[utoipa::path(get, path = "/v1/apps/{app}/certs", tag = "certs", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Certificate>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Certificate>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    let certificates = state.store.certificates(&app).await?;
    Ok(Json(certificates.into_iter().map(wire).collect()))
}

/// Uploads a certificate and its key, checked first; it is attached at once to every custom
/// domain of the app it covers that has none.
#[utoipa::path(post, path = "/v1/apps/{app}/certs", tag = "certs", security(("token" = [])),
    params(("app" = String, Path)), request_body = AddCertificate,
    responses((status = 201, body = Certificate), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<AddCertificate>, ApiError>,
) -> Result<(StatusCode, Json<Certificate>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    check_name(&body.name)?;
    let (certificate, key) = (body.certificate, body.key);
    // Parsing a chain of RSA certificates is CPU work: off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        tls::Certificate::parse(&certificate, &key).map(|c| (c, certificate, key))
    })
    .await
    .map_err(ApiError::internal)?;
    let (checked, chain_pem, key_pem) =
        checked.map_err(|err| ApiError::Invalid(err.to_string()))?;
    let new = store::NewCertificate {
        name: body.name,
        chain_pem,
        key_pem,
        names: checked.names,
        not_before: checked.not_before,
        not_after: checked.not_after,
        fingerprint: checked.fingerprint,
        issuer: checked.issuer,
        subject: checked.subject,
    };
    let added = state
        .store
        .add_certificate(&app, &new, &caller.user)
        .await?;
    Ok((StatusCode::CREATED, Json(wire(added))))
}

#[utoipa::path(get, path = "/v1/apps/{app}/certs/{name}", tag = "certs", security(("token" = [])),
    params(("app" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Certificate), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, cert)): Path<(String, String)>,
) -> Result<Json<Certificate>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    Ok(Json(wire(state.store.certificate(&app, &cert).await?)))
}

/// Removes a certificate; the domains it was served for get the next one in line (an ACME
/// certificate, else the platform's).
#[utoipa::path(delete, path = "/v1/apps/{app}/certs/{name}", tag = "certs", security(("token" = [])),
    params(("app" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, cert)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    state
        .store
        .remove_certificate(&app, &cert, &caller.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Serves the certificate for one of the app's custom domains, which it must cover.
#[utoipa::path(put, path = "/v1/apps/{app}/certs/{name}/domains/{domain}", tag = "certs", security(("token" = [])),
    params(("app" = String, Path), ("name" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = Certificate), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn attach(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, cert, domain)): Path<(String, String, String)>,
) -> Result<Json<Certificate>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let attached = state
        .store
        .attach_certificate(&app, &cert, &domain, &caller.user)
        .await?;
    Ok(Json(wire(attached)))
}

/// Stops serving the certificate for a domain.
#[utoipa::path(delete, path = "/v1/apps/{app}/certs/{name}/domains/{domain}", tag = "certs", security(("token" = [])),
    params(("app" = String, Path), ("name" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = Certificate), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn detach(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, cert, domain)): Path<(String, String, String)>,
) -> Result<Json<Certificate>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let detached = state
        .store
        .detach_certificate(&app, &cert, &domain, &caller.user)
        .await?;
    Ok(Json(wire(detached)))
}
