//! The activity timeline — releases and the builds that failed before making one, with who,
//! when, what, and how long each phase took — with a rollback per eligible release, and
//! the build page with its log.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{
    ReleaseFacts, ReleaseStatus, ReleaseVersion, RollbackRefused, may_roll_back_to,
    rollback_crosses,
};
use store::{Build, BuildStatus, Need, ReleaseEntry};
use time::OffsetDateTime;
use uuid::Uuid;

use super::session::{Posted, Viewer};
use super::view::{self, Chrome, Done, Notice, Phase, Tab};
use super::{AppView, WebError};
use crate::{ApiState, actions};

/// Releases per page of the timeline.
const PAGE: u32 = 50;

/// A release as the timeline shows it.
#[derive(Debug, Clone)]
pub(super) struct ReleaseRow {
    pub(super) version: u32,
    pub(super) summary: String,
    pub(super) status: &'static str,
    pub(super) status_class: &'static str,
    pub(super) reason: String,
    pub(super) by: String,
    pub(super) ago: String,
    pub(super) at: String,
    pub(super) iso: String,
    pub(super) commit: String,
    pub(super) build: Option<Uuid>,
    pub(super) phases: String,
    pub(super) timings: String,
    /// The current release: the newest that succeeded.
    pub(super) current: bool,
    /// Whether the viewer may roll back to it, by the same rule `rollback` applies.
    pub(super) can_roll_back: bool,
    /// Why a rollback to it needs the app's name typed (it crosses releases whose release
    /// phase ran), or empty when it does not.
    pub(super) crosses: String,
}

/// A build that made no release (it failed, or is still running).
#[derive(Debug, Clone)]
pub(super) struct BuildRow {
    pub(super) id: Uuid,
    pub(super) status: &'static str,
    pub(super) status_class: &'static str,
    pub(super) by: String,
    pub(super) ago: String,
    pub(super) at: String,
    pub(super) iso: String,
    pub(super) commit: String,
}

/// One entry of the timeline, newest first.
pub(super) struct Entry {
    pub(super) release: Option<ReleaseRow>,
    pub(super) build: Option<BuildRow>,
}

/// A page of an app's history: its releases (and one more, to time the oldest shown), the
/// builds among them, and which release is current.
pub(super) struct History {
    releases: Vec<ReleaseEntry>,
    /// The release before the oldest shown, if any: a release's build is its own when the
    /// build started after the release before it was made.
    before_oldest: Option<ReleaseEntry>,
    builds: HashMap<Uuid, Build>,
    /// Builds of the same period that made no release.
    orphans: Vec<Build>,
    current: Option<ReleaseVersion>,
    /// The releases newer than the oldest shown whose release phase ran: what a rollback
    /// to a shown release would cross.
    phases: Vec<ReleaseFacts>,
}

impl History {
    pub(super) async fn load(
        state: &ApiState,
        app: &store::App,
        before: Option<ReleaseVersion>,
        limit: u32,
    ) -> Result<History, WebError> {
        let mut releases = state.store.releases_before(app, before, limit + 1).await?;
        let before_oldest = if releases.len() > limit as usize {
            releases.pop()
        } else {
            None
        };
        let current = state.store.current_version(app).await?;
        let phases = match releases.last() {
            Some(oldest) => {
                state
                    .store
                    .release_phases_after(app, oldest.version)
                    .await?
            }
            None => Vec::new(),
        };
        let since = before_oldest.as_ref().map(|r| r.created_at);
        let until = before.and(releases.first().map(|r| r.created_at));
        // The builds of this page's period only (a middle page's are not among the newest).
        let recent = state
            .store
            .builds_between(app, since, until, limit * 2 + 10)
            .await?;
        let released: std::collections::HashSet<Uuid> =
            releases.iter().filter_map(|r| r.build).collect();
        let mut builds = HashMap::new();
        let mut orphans = Vec::new();
        for build in recent {
            let in_period = since.is_none_or(|s| build.created_at > s)
                && until.is_none_or(|u| build.created_at <= u);
            if !released.contains(&build.id) && build.status != BuildStatus::Succeeded && in_period
            {
                orphans.push(build.clone());
            }
            builds.insert(build.id, build);
        }
        Ok(History {
            releases,
            before_oldest,
            builds,
            orphans,
            current,
            phases,
        })
    }

    /// The releases as rows, newest first.
    pub(super) fn rows(&self, now: OffsetDateTime, can_write: bool) -> Vec<ReleaseRow> {
        self.releases
            .iter()
            .enumerate()
            .map(|(i, release)| {
                let previous = self.releases.get(i + 1).or(self.before_oldest.as_ref());
                self.row(release, previous, now, can_write)
            })
            .collect()
    }

    fn row(
        &self,
        release: &ReleaseEntry,
        previous: Option<&ReleaseEntry>,
        now: OffsetDateTime,
        can_write: bool,
    ) -> ReleaseRow {
        let own_build = release
            .build
            .and_then(|id| self.builds.get(&id))
            .filter(|b| previous.is_none_or(|p| b.created_at >= p.created_at));
        let phases = phases(release, own_build);
        let facts = ReleaseFacts {
            version: release.version,
            status: release.status,
            has_build: release.build.is_some(),
            release_phase_ran: release.release_phase_started_at.is_some(),
        };
        let can_roll_back = can_write
            && self
                .current
                .is_some_and(|current| may_roll_back_to(&facts, current).is_ok());
        let crosses = match self.current {
            Some(current) if can_roll_back => {
                let crossed = rollback_crosses(&self.phases, current, release.version);
                if crossed.is_empty() {
                    String::new()
                } else {
                    RollbackRefused::NeedsConfirmation {
                        target: release.version,
                        crossed,
                    }
                    .to_string()
                }
            }
            _ => String::new(),
        };
        let (status, status_class) = release_status(release.status);
        ReleaseRow {
            version: release.version.get(),
            summary: release.summary.clone(),
            status,
            status_class,
            reason: release.reason.clone().unwrap_or_default(),
            by: release.created_by.clone(),
            ago: view::ago(release.created_at, now),
            at: view::when(release.created_at),
            iso: view::iso(release.created_at),
            commit: release
                .commit
                .as_deref()
                .map(|c| c.chars().take(7).collect())
                .unwrap_or_default(),
            build: release.build,
            timings: phases
                .iter()
                .map(|p| format!("{} {}", p.name, view::duration(p.took)))
                .collect::<Vec<_>>()
                .join(" · "),
            phases: view::phase_bar(&phases),
            current: self.current == Some(release.version),
            can_roll_back,
            crosses,
        }
    }

    /// The whole timeline: releases and the builds that made none, newest first.
    fn entries(&self, now: OffsetDateTime, can_write: bool) -> Vec<Entry> {
        let mut entries: Vec<(OffsetDateTime, Entry)> = self
            .releases
            .iter()
            .zip(self.rows(now, can_write))
            .map(|(release, row)| {
                (
                    release.created_at,
                    Entry {
                        release: Some(row),
                        build: None,
                    },
                )
            })
            .collect();
        entries.extend(self.orphans.iter().map(|b| {
            (
                b.created_at,
                Entry {
                    release: None,
                    build: Some(build_row(b, now)),
                },
            )
        }));
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        entries.into_iter().map(|(_, e)| e).collect()
    }
}

/// The phases of a release's way out: its own build (when it had one), waiting for a
/// release manager, the release phase (when it had one), and the rollout.
fn phases(release: &ReleaseEntry, build: Option<&Build>) -> Vec<Phase> {
    let mut phases = Vec::new();
    if let Some(build) = build
        && let Some(finished) = build.finished_at
    {
        phases.push(Phase {
            name: "build",
            took: finished - build.created_at,
        });
    }
    let Some(started) = release.deploy_started_at else {
        return phases;
    };
    phases.push(Phase {
        name: "queue",
        took: started - release.created_at,
    });
    let rollout_start = match release.release_phase_finished_at {
        Some(done) => {
            phases.push(Phase {
                name: "release phase",
                took: done - started,
            });
            done
        }
        None => started,
    };
    if let Some(finished) = release.deploy_finished_at {
        phases.push(Phase {
            name: "rollout",
            took: finished - rollout_start,
        });
    }
    phases
}

pub(super) fn release_status(status: ReleaseStatus) -> (&'static str, &'static str) {
    match status {
        ReleaseStatus::Pending => ("pending", "busy"),
        ReleaseStatus::Deploying => ("deploying", "busy"),
        ReleaseStatus::Succeeded => ("succeeded", "ok"),
        ReleaseStatus::Failed => ("failed", "bad"),
    }
}

fn build_status(status: BuildStatus) -> (&'static str, &'static str) {
    match status {
        BuildStatus::Running => ("building", "busy"),
        BuildStatus::Succeeded => ("built", "ok"),
        BuildStatus::Failed => ("build failed", "bad"),
    }
}

fn build_row(build: &Build, now: OffsetDateTime) -> BuildRow {
    let (status, status_class) = build_status(build.status);
    BuildRow {
        id: build.id,
        status,
        status_class,
        by: build.created_by.clone(),
        ago: view::ago(build.created_at, now),
        at: view::when(build.created_at),
        iso: view::iso(build.created_at),
        commit: build
            .commit
            .as_deref()
            .map(|c| c.chars().take(7).collect())
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    entries: Vec<Entry>,
    /// The version to page back from, when there are older releases.
    older: Option<u32>,
    /// Where the page reloads its timeline from while something on it is under way (a
    /// build running, a release pending or deploying); `None` once all is settled.
    poll: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Before {
    #[serde(default)]
    before: Option<u32>,
}

/// `GET /apps/{app}/activity[?before=N]`.
pub(super) async fn page(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(page): Query<Before>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let before = page.before.and_then(ReleaseVersion::new);
    activity_page(&state, &viewer, &app, before, done.notice(), StatusCode::OK).await
}

async fn activity_page(
    state: &ApiState,
    viewer: &Viewer,
    app: &AppView,
    before: Option<ReleaseVersion>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let now = OffsetDateTime::now_utc();
    let history = History::load(state, &app.app, before, PAGE).await?;
    let older = history
        .before_oldest
        .as_ref()
        .map(|_| history.releases.last().map_or(0, |r| r.version.get()));
    let entries = history.entries(now, app.can_write);
    let busy = entries.iter().any(|e| {
        e.release.as_ref().is_some_and(|r| r.status_class == "busy")
            || e.build.as_ref().is_some_and(|b| b.status_class == "busy")
    });
    let poll = busy.then(|| match before {
        Some(v) => format!("/apps/{}/activity?before={}", app.app.name, v.get()),
        None => format!("/apps/{}/activity", app.app.name),
    });
    let page = ActivityPage {
        chrome: Chrome::app(viewer, &app.app, Tab::Activity).with_notice(notice),
        entries,
        older,
        poll,
    };
    Ok((status, view::html(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct RollbackForm {
    version: u32,
    /// The app's name, typed where the rollback crosses releases whose release phase ran.
    #[serde(default)]
    confirm: Option<String>,
}

/// `POST /apps/{app}/rollback`: the same rollback as `/v1`, to the release the form names;
/// across a release whose release phase ran, only with the app's name typed.
pub(super) async fn rollback(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Posted { viewer, form }: Posted<RollbackForm>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Write).await?;
    let target = ReleaseVersion::new(form.version)
        .ok_or_else(|| WebError::Invalid("release versions start at v1".to_owned()))?;
    let typed = form.confirm.as_deref().map(str::trim).unwrap_or_default();
    if !typed.is_empty() && typed != app.app.name.as_str() {
        let message = format!(
            "type the app's name, {}, to confirm; nothing was rolled back",
            app.app.name
        );
        let notice = Notice::error(message);
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return activity_page(&state, &viewer, &app, None, Some(notice), status).await;
    }
    let confirmed = !typed.is_empty();
    match actions::rollback(&state, &app.app, &viewer.user, Some(target), confirmed).await {
        Ok(release) => Ok(view::done(
            &format!("/apps/{}/activity", app.app.name),
            "rolled-back",
            Some(release.version.get()),
        )),
        Err(crate::ApiError::ConfirmationRequired(why)) => {
            let message = format!("{why}; type the app's name, {}, to confirm", app.app.name);
            let notice = Notice::error(message);
            activity_page(
                &state,
                &viewer,
                &app,
                None,
                Some(notice),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(err) => {
            let (notice, status) = view::refusal(err)?;
            activity_page(&state, &viewer, &app, None, Some(notice), status).await
        }
    }
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    chrome: Chrome,
    id: Uuid,
    status: &'static str,
    status_class: &'static str,
    running: bool,
    by: String,
    at: String,
    iso: String,
    commit: String,
    took: String,
    /// What its image push sent the registry, when it was pushed.
    pushed: String,
    log: String,
    log_bytes: usize,
}

/// `GET /apps/{app}/builds/{build}`: the build's whole log; while it runs, the rest arrives
/// by server-sent events.
pub(super) async fn build(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let app = AppView::load(&state, &viewer, &name, Need::Read).await?;
    let no_build = || WebError::Page(StatusCode::NOT_FOUND, format!("{name} has no build {id}"));
    let id = Uuid::parse_str(&id).map_err(|_| no_build())?;
    let build = match state.store.build(&app.app, id).await {
        Ok(build) => build,
        Err(store::Error::NotFound(_)) => return Err(no_build()),
        Err(err) => return Err(err.into()),
    };
    let log = state.store.build_log(&app.app, id).await?;
    let (status, status_class) = build_status(build.status);
    let page = BuildPage {
        chrome: Chrome::app(&viewer, &app.app, Tab::Activity),
        id,
        status,
        status_class,
        running: build.status == BuildStatus::Running,
        by: build.created_by.clone(),
        at: view::when(build.created_at),
        iso: view::iso(build.created_at),
        commit: build.commit.clone().unwrap_or_default(),
        took: build
            .finished_at
            .map(|f| view::duration(f - build.created_at))
            .unwrap_or_default(),
        pushed: build
            .pushed_bytes
            .map(domain::human_size)
            .unwrap_or_default(),
        log_bytes: log.len(),
        log,
    };
    Ok(view::html(&page))
}

/// The badge of a build's status, for the live page to swap in when it changes.
pub(super) fn build_badge(status: BuildStatus) -> String {
    let (text, class) = build_status(status);
    format!(r#"<span id="build-status" class="badge {class}">{text}</span>"#)
}
