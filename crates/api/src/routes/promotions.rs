//! Promotions: an app's current build carried down its pipeline without a rebuild — released
//! in each target with the target's own config, or, when the target's stage is protected,
//! waiting for another person's approval.

use api_types::{ErrorBody, Promote, Promotion as WirePromotion};
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AppName, ReleaseVersion, promotion_targets};
use store::{Promotion, User};

use super::Page;
use super::pipelines::visible;
use crate::auth::{CurrentUser, Need, authorize};
use crate::extract::{Json, Path, Query};
use crate::{ApiError, ApiState, control};

/// Promotes the app's current build to the next stage's apps (or to the later apps named):
/// each gets a release of the same image with its own config, deployed with its release
/// phase; a protected target gets a pending promotion instead.
#[utoipa::path(post, path = "/v1/apps/{app}/promote", tag = "pipelines", security(("token" = [])),
    params(("app" = String, Path)), request_body = Promote,
    responses((status = 201, body = Vec<WirePromotion>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a target has a deploy under way, or the app has nothing deployed"),
        (status = 422, body = ErrorBody)))]
pub(super) async fn promote(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    body: Result<Json<Promote>, ApiError>,
) -> Result<(StatusCode, Json<Vec<WirePromotion>>), ApiError> {
    let source = authorize(&state, &caller.user, &name, Need::Read).await?;
    let Json(body) = body?;
    let to = body
        .to
        .iter()
        .map(|name| AppName::parse(name))
        .collect::<Result<Vec<_>, _>>()?;
    let pipeline = state.store.pipeline_of(&source).await?.ok_or_else(|| {
        ApiError::Invalid(format!(
            "{} is in no pipeline: add it with `slip pipelines:add PIPELINE -a {} --stage STAGE`",
            source.name, source.name
        ))
    })?;
    let pipeline = state.store.pipeline(&pipeline).await?;
    let targets = promotion_targets(&pipeline.apps, &source.name, &to)?;
    // Every target is checked before anything is promoted.
    let mut checked = Vec::with_capacity(targets.len());
    for target in &targets {
        checked.push(authorize(&state, &caller.user, target.as_str(), Need::Write).await?);
    }
    let pinned = state.store.promotable_build(&source).await?;
    let mut promotions = Vec::with_capacity(checked.len());
    for target in &checked {
        let protected = pipeline
            .apps
            .iter()
            .find(|(app, _)| *app == target.name)
            .and_then(|(_, stage)| pipeline.stages.iter().find(|g| g.stage == *stage))
            .is_some_and(|gates| gates.protected);
        let promotion = state
            .store
            .promote(&pipeline, target, &pinned, &caller.user, protected)
            .await?;
        if let Some(release) = promotion.release {
            control::deploy(&state, &target.name, release).await?;
        }
        tracing::info!(from = %source.name, to = %target.name, number = promotion.number,
            status = promotion.status.as_str(), by = %caller.user.username, "promotion");
        promotions.push(wire(promotion));
    }
    Ok((StatusCode::CREATED, Json(promotions)))
}

/// The pipeline's promotions, newest first, those to apps the caller may see.
#[utoipa::path(get, path = "/v1/pipelines/{pipeline}/promotions", tag = "pipelines", security(("token" = [])),
    params(("pipeline" = String, Path), Page),
    responses((status = 200, body = Vec<WirePromotion>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(name): Path<String>,
    page: Result<Query<Page>, ApiError>,
) -> Result<Json<Vec<WirePromotion>>, ApiError> {
    let pipeline = visible(&state, &caller.user, &name).await?;
    let Query(page) = page?;
    let mut shown = Vec::new();
    for promotion in state.store.promotions(&pipeline, page.limit()).await? {
        if may_see(&state, &caller.user, &promotion).await? {
            shown.push(wire(promotion));
        }
    }
    Ok(Json(shown))
}

/// One promotion.
#[utoipa::path(get, path = "/v1/promotions/{number}", tag = "pipelines", security(("token" = [])),
    params(("number" = u64, Path)),
    responses((status = 200, body = WirePromotion), (status = 404, body = ErrorBody)))]
pub(super) async fn info(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(number): Path<u64>,
) -> Result<Json<WirePromotion>, ApiError> {
    let promotion = find(&state, &caller.user, number).await?;
    Ok(Json(wire(promotion)))
}

/// Approves a pending promotion and deploys it: for a collaborator of the target other than
/// the person who asked for it.
#[utoipa::path(post, path = "/v1/promotions/{number}/approve", tag = "pipelines", security(("token" = [])),
    params(("number" = u64, Path)),
    responses((status = 200, body = WirePromotion), (status = 403, body = ErrorBody, description = "the requester may not approve their own promotion"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "decided already, or the target has a deploy under way")))]
pub(super) async fn approve(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(number): Path<u64>,
) -> Result<Json<WirePromotion>, ApiError> {
    let promotion = find(&state, &caller.user, number).await?;
    let target = authorize(&state, &caller.user, &promotion.target_app, Need::Write).await?;
    let promotion = state.store.approve_promotion(number, &caller.user).await?;
    if let Some(release) = promotion.release {
        control::deploy(&state, &target.name, release).await?;
    }
    tracing::info!(number, to = %target.name, by = %caller.user.username, "promotion approved");
    Ok(Json(wire(promotion)))
}

/// Rejects a pending promotion (its requester may: that withdraws it).
#[utoipa::path(post, path = "/v1/promotions/{number}/reject", tag = "pipelines", security(("token" = [])),
    params(("number" = u64, Path)),
    responses((status = 200, body = WirePromotion), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn reject(
    State(state): State<ApiState>,
    caller: CurrentUser,
    Path(number): Path<u64>,
) -> Result<Json<WirePromotion>, ApiError> {
    let promotion = find(&state, &caller.user, number).await?;
    authorize(&state, &caller.user, &promotion.target_app, Need::Write).await?;
    let promotion = state.store.reject_promotion(number, &caller.user).await?;
    Ok(Json(wire(promotion)))
}

/// Promotion `number`, if the caller may see its target; otherwise the answer a missing one
/// gets.
async fn find(state: &ApiState, user: &User, number: u64) -> Result<Promotion, ApiError> {
    let missing = || {
        ApiError::NotFound(format!(
            "no promotion #{number}: see them with `slip promotions`"
        ))
    };
    let promotion = match state.store.promotion(number).await {
        Ok(promotion) => promotion,
        Err(store::Error::NotFound(_)) => return Err(missing()),
        Err(err) => return Err(err.into()),
    };
    if may_see(state, user, &promotion).await? {
        Ok(promotion)
    } else {
        Err(missing())
    }
}

async fn may_see(state: &ApiState, user: &User, promotion: &Promotion) -> Result<bool, ApiError> {
    match state.store.app_access(&promotion.target_app, user).await {
        Ok((_, access)) => Ok(access.permits(user.admin, Need::Read)),
        Err(store::Error::NotFound(_)) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

pub(crate) fn wire(promotion: Promotion) -> WirePromotion {
    WirePromotion {
        number: promotion.number,
        pipeline: promotion.pipeline,
        source_app: promotion.source_app,
        source_version: promotion.source_version.get(),
        image: promotion.image,
        commit: promotion.commit,
        target_app: promotion.target_app,
        status: promotion.status.as_str().to_owned(),
        requested_by: promotion.requested_by,
        requested_at: promotion.requested_at,
        decided_by: promotion.decided_by,
        decided_at: promotion.decided_at,
        release: promotion.release.map(ReleaseVersion::get),
    }
}
