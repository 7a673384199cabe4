//! Who is calling and what they may do: bearer tokens, password hashes, and the access
//! rule for apps.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};
pub(crate) use store::Need;
use store::{Access, App, User};

use crate::{ApiError, ApiState};

/// Tokens start with this, so they are recognisable in a leaked log or a secret scanner.
const TOKEN_PREFIX: &str = "slp_";

/// A new API token: the prefix and 32 random bytes in hex. Only its hash is stored.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// How tokens are stored: SHA-256, hex. A token has 256 bits of entropy, so a fast hash
/// is enough and lets every request look its token up by index.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Argon2id with the crate's default parameters, as a PHC string. CPU-heavy: runs on the
/// blocking pool.
pub(crate) async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Checks a password against a stored hash. With no stored hash (no such user) it checks
/// against a fixed one, so that a missing user costs as much time as a wrong password.
pub(crate) async fn verify_password(
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(b"no such user", &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy.clone());
        let parsed = PasswordHash::new(&hash).map_err(ApiError::internal)?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(exists && ok)
    })
    .await
    .map_err(ApiError::internal)?
}

/// The authenticated caller. Rejects with 401 when the token is missing or unknown.
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser {
    pub(crate) user: User,
    /// The hash of the token this request used (logout revokes it).
    pub(crate) token_hash: String,
}

impl FromRequestParts<ApiState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?.ok_or_else(|| {
            ApiError::Unauthorized("missing API token: log in with `slip login URL`".to_owned())
        })?;
        let token_hash = token_hash(token);
        let user = state
            .store
            .user_by_token(&token_hash)
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "invalid or revoked API token: log in again with `slip login URL`".to_owned(),
                )
            })?;
        Ok(CurrentUser { user, token_hash })
    }
}

impl OptionalFromRequestParts<ApiState> for CurrentUser {
    type Rejection = ApiError;

    /// No `Authorization` header is anonymous; a bad token is still refused.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if bearer_token(parts)?.is_none() {
            return Ok(None);
        }
        <CurrentUser as FromRequestParts<ApiState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthorized("the Authorization header is not valid text".to_owned())
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("expected `Authorization: Bearer <token>`".to_owned())
        })?;
    Ok(Some(token))
}

/// Loads the app and checks that `user` may do what `need` says. Admins may do anything.
pub(crate) async fn authorize(
    state: &ApiState,
    user: &User,
    app: &str,
    need: Need,
) -> Result<App, ApiError> {
    let (app, access) = state.store.app_access(app, user).await?;
    if access.permits(user.admin, need) {
        return Ok(app);
    }
    let message = if access == Access::None {
        format!(
            "you do not have access to the app {}; its owner can add you with `slip perms:add`",
            app.name
        )
    } else {
        format!("only the owner of {} or an admin may do that", app.name)
    };
    Err(ApiError::Forbidden(message))
}
