//! Register, log in, log out, who am I.

use std::sync::Arc;

use api_types::{ApiToken, CreateToken, CreatedToken, Credentials, ErrorBody, Session, User};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Lifetime, Password, TokenScope, Username};
use store::{NewToken, NewUser};

use crate::auth::{
    AppCaller, CurrentUser, LoginGuard, Need, authorize_access, hash_password, new_token, sign_in,
    token_hash,
};
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
            .map(|t| wire_token(t, caller.token_id))
            .collect(),
    ))
}

fn wire_token(token: store::ApiToken, current: uuid::Uuid) -> ApiToken {
    ApiToken {
        current: token.id == current,
        id: token.id,
        created_at: token.created_at,
        expires_at: token.expires_at,
        description: token.description,
        app: token.limit.as_ref().map(|l| l.app.clone()),
        scope: token.limit.map(|l| l.scope.as_str().to_owned()),
    }
}

/// The longest description a token may have.
const MAX_DESCRIPTION: usize = 200;

/// Makes a token for automation, shown this once. Only a token that is its user may make
/// tokens: a scoped one could otherwise mint itself an unscoped one. With `app`, the token
/// is limited to that app (`deploy` unless `scope` says `read`), and its maker must be
/// allowed to do there what it may.
#[utoipa::path(post, path = "/v1/tokens", tag = "auth", security(("token" = [])), request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_token(
    State(state): State<ApiState>,
    caller: CurrentUser,
    body: Result<Json<CreateToken>, ApiError>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let Json(body) = body?;
    let description = body.description.trim();
    if description.is_empty()
        || description.len() > MAX_DESCRIPTION
        || description.chars().any(char::is_control)
    {
        return Err(ApiError::Invalid(format!(
            "give the token a description of 1-{MAX_DESCRIPTION} characters on one line, such as --description \"CI deploys\""
        )));
    }
    let lifetime = match body.expires_in.as_deref() {
        Some(text) => Lifetime::parse(text.trim())?,
        None => Lifetime::capped(state.config.token_ttl),
    };
    let scope = body.scope.as_deref().map(TokenScope::parse).transpose()?;
    let app = match (body.app.as_deref(), scope) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ApiError::Invalid(
                "a scope limits a token to one app: give the app with --app APP".to_owned(),
            ));
        }
        (Some(name), scope) => {
            let scope = scope.unwrap_or(TokenScope::Deploy);
            let need = match scope {
                TokenScope::Deploy => Need::Deploy,
                TokenScope::Read => Need::Read,
            };
            let (app, _) = authorize_access(&state, &caller.user, name, need).await?;
            Some((app, scope))
        }
    };
    let ttl = time::Duration::try_from(lifetime.duration()).map_err(ApiError::internal)?;
    let secret = new_token();
    let token = state
        .store
        .create_api_token(
            &caller.user,
            &token_hash(&secret),
            &NewToken {
                description,
                expires_at: time::OffsetDateTime::now_utc() + ttl,
                limit: app.as_ref().map(|(app, scope)| (app, *scope)),
            },
        )
        .await?;
    tracing::info!(user = %caller.user.username, token = %token.id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            secret,
            token: wire_token(token, caller.token_id),
        }),
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
/// Who the token belongs to; a token limited to one app may ask too.
pub(super) async fn whoami(caller: AppCaller) -> Json<User> {
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
