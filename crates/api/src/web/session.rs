//! Signing in to the dashboard, and proving each form came from it.
//!
//! A session is a random secret in an HttpOnly, SameSite=Lax cookie (`Secure` and
//! `__Host-` prefixed when the page was served over HTTPS); the store keeps its SHA-256, the
//! user, a CSRF token and a hard end ([`SESSION_TTL`]). Signing out deletes the row, so a
//! copied cookie is worthless afterwards. Every form posts the session's CSRF token, and a
//! post whose `Origin` (or `Sec-Fetch-Site`) says it came from another site is refused
//! before its token is even read. The sign-in form, which has no session yet, carries a
//! token bound to a short-lived cookie of its own instead.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;
use store::User;
use subtle::ConstantTimeEq;

use super::WebError;
use crate::ApiState;
use crate::auth::{new_token, token_hash};

/// How long a sign-in lasts, however active the browser is.
pub(crate) const SESSION_TTL: time::Duration = time::Duration::hours(12);

/// The session cookie's name over plain HTTP, and over HTTPS (where the `__Host-` prefix
/// makes browsers refuse it from a sibling host, such as an app under the platform domain).
const SESSION: &str = "slipway_session";
const SECURE_SESSION: &str = "__Host-slipway_session";
/// The cookie that binds the sign-in form's token, before there is a session.
const SIGN_IN: &str = "slipway_sign_in";

/// The largest form the dashboard reads: config values are at most 256 KiB together.
const MAX_FORM: usize = 512 * 1024;

/// A signed-in viewer of the dashboard. Rejects with a redirect to the sign-in page.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) user: User,
    pub(crate) csrf_token: String,
    secret_hash: String,
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Viewer, WebError> {
        let sign_in = || WebError::SignIn {
            next: parts
                .uri
                .path_and_query()
                .map_or("/".to_owned(), |p| p.as_str().to_owned()),
        };
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(secret) = jar.get(SECURE_SESSION).or_else(|| jar.get(SESSION)) else {
            return Err(sign_in());
        };
        let secret_hash = token_hash(secret.value());
        match state.store.session(&secret_hash).await? {
            Some(session) => Ok(Viewer {
                user: session.user,
                csrf_token: session.csrf_token,
                secret_hash,
            }),
            None => Err(sign_in()),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<ApiState> for Viewer {
    type Rejection = WebError;

    /// Signed out is `None`; only the store failing is an error.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Option<Viewer>, WebError> {
        match <Viewer as FromRequestParts<ApiState>>::from_request_parts(parts, state).await {
            Ok(viewer) => Ok(Some(viewer)),
            Err(WebError::SignIn { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// A form posted by a signed-in viewer from the dashboard itself: same origin, with the
/// session's CSRF token in `_csrf`. The fields are `T`.
pub(crate) struct Posted<T> {
    pub(crate) viewer: Viewer,
    pub(crate) form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<ApiState> for Posted<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Posted<T>, WebError> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        same_origin(&parts.headers)?;
        let bytes = read_form(body).await?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        if !tokens_match(&csrf, &viewer.csrf_token) {
            return Err(WebError::Forbidden(
                "this form has expired or did not come from the dashboard: reload the page and try again"
                    .to_owned(),
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::Invalid(format!("the form could not be read: {e}")))?;
        Ok(Posted { viewer, form })
    }
}

/// The sign-in form: same origin, and its `_csrf` equal to the sign-in cookie.
pub(crate) struct SignInForm<T> {
    pub(crate) form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<ApiState> for SignInForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, _state: &ApiState) -> Result<SignInForm<T>, WebError> {
        let (parts, body) = request.into_parts();
        same_origin(&parts.headers)?;
        let jar = CookieJar::from_headers(&parts.headers);
        let bytes = read_form(body).await?;
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        let bound = jar.get(SIGN_IN).map(Cookie::value).unwrap_or_default();
        if bound.is_empty() || !tokens_match(&csrf, bound) {
            return Err(WebError::Forbidden(
                "the sign-in form has expired: reload the page and sign in again".to_owned(),
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::Invalid(format!("the form could not be read: {e}")))?;
        Ok(SignInForm { form })
    }
}

async fn read_form(body: axum::body::Body) -> Result<Bytes, WebError> {
    axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        WebError::Page(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the form is larger than {} KiB", MAX_FORM / 1024),
        )
    })
}

/// Refuses a post another site's page made. Browsers say where a post came from in
/// `Sec-Fetch-Site` and `Origin`; either one naming another site (an app on a sibling host
/// included) refuses it. A client that sends neither is not a browser a page can drive,
/// and still needs the token.
fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let refused = || {
        WebError::Forbidden(
            "the form was posted from another site: use the dashboard's own pages".to_owned(),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        match (origin_host, host) {
            (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => {}
            _ => return Err(refused()),
        }
    }
    Ok(())
}

fn tokens_match(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether the browser's page is HTTPS, as its `Origin` says (a post from it always has one).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"))
}

/// The sign-in page's token, and the cookie to bind it to when the browser has none yet.
pub(crate) fn sign_in_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let jar = CookieJar::from_headers(headers);
    if let Some(existing) = jar.get(SIGN_IN).filter(|c| c.value().len() >= 32) {
        return (existing.value().to_owned(), None);
    }
    let token = new_token();
    let cookie = Cookie::build((SIGN_IN, token.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::hours(1))
        .build();
    (token, HeaderValue::from_str(&cookie.to_string()).ok())
}

/// Starts a session for `user`: the `Set-Cookie` values to answer with (the session, and
/// the spent sign-in token's removal).
pub(crate) async fn start(
    state: &ApiState,
    headers: &HeaderMap,
    user: &User,
) -> Result<Vec<HeaderValue>, WebError> {
    let secret = new_token();
    let csrf = new_token();
    let expires_at = time::OffsetDateTime::now_utc() + SESSION_TTL;
    state
        .store
        .create_session(user, &token_hash(&secret), &csrf, expires_at)
        .await?;
    let secure = over_https(headers);
    let session = Cookie::build((if secure { SECURE_SESSION } else { SESSION }, secret))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .build();
    Ok([session, removal(SIGN_IN)]
        .iter()
        .filter_map(|c| HeaderValue::from_str(&c.to_string()).ok())
        .collect())
}

/// Ends the viewer's session: the row goes, so the cookie is worthless even if kept. The
/// `Set-Cookie` values that clear it in the browser.
pub(crate) async fn end(state: &ApiState, viewer: &Viewer) -> Result<Vec<HeaderValue>, WebError> {
    state.store.delete_session(&viewer.secret_hash).await?;
    let mut secure = removal(SECURE_SESSION);
    secure.set_secure(true);
    Ok([removal(SESSION), secure]
        .iter()
        .filter_map(|c| HeaderValue::from_str(&c.to_string()).ok())
        .collect())
}

fn removal(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build((name, "")).path("/").build();
    cookie.make_removal();
    cookie
}

/// Adds `Set-Cookie` headers to a response.
pub(crate) fn set_cookies(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn posts_from_the_dashboard_itself_pass() {
        for case in [
            vec![
                ("host", "127.0.0.1:7100"),
                ("origin", "http://127.0.0.1:7100"),
            ],
            vec![
                ("host", "slipway.example.com"),
                ("origin", "https://slipway.example.com"),
                ("sec-fetch-site", "same-origin"),
            ],
            // Not a browser: the token alone decides.
            vec![("host", "127.0.0.1:7100")],
        ] {
            assert!(same_origin(&headers(&case)).is_ok(), "{case:?}");
        }
    }

    #[test]
    fn posts_from_elsewhere_are_refused() {
        for case in [
            vec![
                ("host", "127.0.0.1:7100"),
                ("origin", "http://evil.example"),
            ],
            vec![("host", "127.0.0.1:7100"), ("origin", "null")],
            vec![
                ("host", "127.0.0.1:7100"),
                ("origin", "http://127.0.0.1:7101"),
            ],
            // An app on a sibling host is the same site but not the same origin.
            vec![
                ("host", "dash.apps.example"),
                ("sec-fetch-site", "same-site"),
            ],
            vec![("host", "127.0.0.1:7100"), ("sec-fetch-site", "cross-site")],
        ] {
            assert!(same_origin(&headers(&case)).is_err(), "{case:?}");
        }
    }

    #[test]
    fn tokens_compare_whole_and_never_empty() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""));
    }
}
