//! Register, log in, log out, who am I.

use api_types::{Credentials, ErrorBody, Session, User};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{Password, Username};
use store::NewUser;

use crate::auth::{CurrentUser, hash_password, new_token, token_hash, verify_password};
use crate::convert;
use crate::extract::Json;
use crate::{ApiError, ApiState};

/// Creates a user. The first user registers themselves and becomes admin; after that only
/// admins create users, unless registration is open. Self-registration returns a token.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = Session), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn register(
    State(state): State<ApiState>,
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
    let hash = hash_password(password.expose().to_owned()).await?;
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
        None => Some(issue_token(&state, &user).await?),
    };
    Ok((
        StatusCode::CREATED,
        Json(Session {
            user: convert::user(&user),
            token,
        }),
    ))
}

/// Exchanges a username and password for a new API token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = Session), (status = 401, body = ErrorBody)))]
pub(super) async fn login(
    State(state): State<ApiState>,
    Json(body): Json<Credentials>,
) -> Result<Json<Session>, ApiError> {
    let found = state.store.user_with_password(&body.username).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let ok = verify_password(body.password, hash).await?;
    let user = user
        .filter(|_| ok)
        .ok_or_else(|| ApiError::Unauthorized("wrong username or password".to_owned()))?;
    let token = issue_token(&state, &user).await?;
    Ok(Json(Session {
        user: convert::user(&user),
        token: Some(token),
    }))
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
    state.store.create_token(user, &token_hash(&token)).await?;
    Ok(token)
}
