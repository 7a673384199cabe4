//! Register, log in, log out, who am I.

use std::sync::Arc;

use api_types::{ApiToken, Credentials, ErrorBody, Session, User};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Password, Username};
use store::NewUser;

use crate::auth::{CurrentUser, LoginGuard, hash_password, new_token, sign_in, token_hash};
use crate::convert;
use crate::extract::{Json, Path, Peer};
use crate::{ApiError, ApiState};

/// Creates a user. The first user registers themselves and becomes admin; after that only
/// admins create users, unless registration is open. Self-registration returns a token.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = Session), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn register(
    State(state): State<ApiState>,
    Extension(guard): Extension<Arc<LoginGuard>>,
    Peer(peer): Peer,
    caller: Option<CurrentUser>,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let username = Username::parse(&body.username)?;
    let password = Password::parse(&body.password)?;
    let rule = match &caller {
        Some(caller) if caller.user.admin => NewUser::Any,
        _ if state.config.registration_open => NewUser::Any,
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only admins create users on this platform".to_owned(),
            ));
        }
        None => NewUser::FirstOnly,
    };
    let hash = hash_password(&guard, password.expose().to_owned()).await?;
    let user = state
        .store
        .create_user(&username, &hash, rule)
        .await?
        .ok_or_else(|| {
            ApiError::Forbidden(
                "registration is closed: ask an admin to create your account".to_owned(),
            )
        })?;
    let token = match caller {
        Some(_) => None,
        None => {
            // Registering with a password is logging in with it: this address is known.
            guard.succeeded(&user.username, peer);
            Some(issue_token(&state, &user).await?)
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Session {
            user: convert::user(&user),
            token,
        }),
    ))
}

/// Exchanges a username and password for a new API token. Attempts are throttled per
/// account and per address: past a few, each must wait longer (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn login(
    State(state): State<ApiState>,
    Extension(guard): Extension<Arc<LoginGuard>>,
    Peer(peer): Peer,
    Json(body): Json<Credentials>,
) -> Result<Json<Session>, ApiError> {
    let user = sign_in(&state, &guard, &body.username, body.password, peer).await?;
    let token = issue_token(&state, &user).await?;
    Ok(Json(Session {
        user: convert::user(&user),
        token: Some(token),
    }))
}

/// The caller's API tokens (never their secrets), newest first.
#[utoipa::path(get, path = "/v1/tokens", tag = "auth", security(("token" = [])),
    responses((status = 200, body = Vec<ApiToken>), (status = 401, body = ErrorBody)))]
pub(super) async fn tokens(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let tokens = state.store.tokens(&caller.user).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| ApiToken {
                current: t.id == caller.token_id,
                id: t.id,
                created_at: t.created_at,
                expires_at: t.expires_at,
            })
            .collect(),
    ))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "auth", security(("token" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "you have no token {id}: see yours with `slip tokens`"
        ))
    };
    let parsed = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !state.store.delete_token_by_id(&caller.user, parsed).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the token this request used.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("token" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub(super) async fn logout(
    State(state): State<ApiState>,
    caller: CurrentUser,
) -> Result<StatusCode, ApiError> {
    state.store.delete_token(&caller.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/auth/whoami", tag = "auth", security(("token" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub(super) async fn whoami(caller: CurrentUser) -> Json<User> {
    Json(convert::user(&caller.user))
}

async fn issue_token(state: &ApiState, user: &store::User) -> Result<String, ApiError> {
    let token = new_token();
    let ttl = time::Duration::try_from(state.config.token_ttl).map_err(ApiError::internal)?;
    let expires_at = time::OffsetDateTime::now_utc() + ttl;
    state
        .store
        .create_token(user, &token_hash(&token), expires_at)
        .await?;
    Ok(token)
}
