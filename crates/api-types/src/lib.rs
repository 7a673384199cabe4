//! The `/v1` wire types: what the API server sends and accepts, shared with the `slip` CLI.
//!
//! Architecture invariant: plain serde structs with no behaviour and no dependency on the
//! server; the CLI builds against this crate alone. Validation happens in the server, with
//! the `domain` crate's parsers, so a client can never skip it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// One line saying what went wrong and, where it helps, what to do.
    pub error: String,
    /// A stable machine-readable code, such as `not_found` or `invalid_input`.
    pub code: String,
}

/// What the platform tells clients about itself (`GET /v1/info`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlatformInfo {
    pub version: String,
    /// Where `git push` goes, such as `ssh://git@127.0.0.1:2222`.
    pub git_url: String,
    /// The platform domain; app `demo` answers at `demo.<domain>`.
    pub domain: String,
    /// Whether anyone may register, or only admins may create users.
    pub registration_open: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub username: String,
    pub admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A user and a fresh API token (login, and self-registration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Session {
    pub user: User,
    /// Shown once; the server keeps only its hash.
    pub token: Option<String>,
}

/// One of the caller's API tokens; never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiToken {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// Whether this is the token the request was made with.
    pub current: bool,
    /// What it is for; none for a login's token.
    #[serde(default)]
    pub description: Option<String>,
    /// The one app a scoped token is limited to.
    #[serde(default)]
    pub app: Option<String>,
    /// What a scoped token may do on its app: `deploy` or `read`.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A token for automation (`slip tokens:create`). With `app`, the token is limited to that
/// app, with `scope` (`deploy` unless given; `read` only reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub description: String,
    /// How long it lives: `30d`, `12h`, `90m` or `45s`, at most `365d`. The server's login
    /// lifetime unless given.
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// A new token: its secret, shown this once, and what it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    pub secret: String,
    pub token: ApiToken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddKey {
    /// One line of an OpenSSH `.pub` file.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SshKey {
    pub id: Uuid,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
    pub public_key: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// A readable unused name is picked when none is given.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct App {
    pub name: String,
    pub owner: String,
    /// `http://<app>.<domain>:<port>`.
    pub url: String,
    /// The remote `git push` goes to.
    pub git_url: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// How its pushes are built: `buildpacks` (its Dockerfile only when no buildpack detects
    /// it) or `container` (its Dockerfile).
    #[serde(default = "buildpacks")]
    pub stack: String,
}

fn buildpacks() -> String {
    "buildpacks".to_owned()
}

/// `PATCH /v1/apps/{app}`: what to change about the app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppPatch {
    /// `container` or `buildpacks`, from the next push on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// `GET /v1/apps/{app}`: the app and what it runs now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppInfo {
    pub app: App,
    /// The newest release, whatever its status.
    pub latest_release: Option<Release>,
    pub formation: Vec<ProcessCount>,
    pub domains: Vec<Domain>,
    pub collaborators: Vec<Collaborator>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddCollaborator {
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Collaborator {
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub added_at: OffsetDateTime,
}

/// An app's config as of a release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Config {
    /// The release this config belongs to.
    pub version: u32,
    pub values: BTreeMap<String, String>,
}

/// `PATCH /v1/apps/{app}/config`: a string sets a key, `null` unsets it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigPatch {
    pub values: BTreeMap<String, Option<String>>,
}

/// The result of a config change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigChanged {
    /// The release the change made; `None` when it changed nothing.
    pub release: Option<Release>,
    pub config: Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Pending,
    Deploying,
    Succeeded,
    Failed,
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Deploying => "deploying",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Release {
    pub version: u32,
    pub summary: String,
    pub status: ReleaseStatus,
    /// Why the release failed, when it did.
    pub reason: Option<String>,
    pub build: Option<Uuid>,
    /// The commit the release's build was made from.
    pub commit: Option<String>,
    /// The image the release runs (a digest reference), when it has a build.
    #[serde(default)]
    pub image: Option<String>,
    /// Its release phase (its `release:` command), once that started.
    #[serde(default)]
    pub release_phase: Option<ReleasePhase>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// When its deploy began, once it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deploy_started_at: Option<OffsetDateTime>,
    /// When its deploy ended (succeeded or failed), once it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub deploy_finished_at: Option<OffsetDateTime>,
}

/// When a release's release phase ran. One that started and never finished failed, and
/// may have changed data all the same.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleasePhase {
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<OffsetDateTime>,
}

/// `GET /v1/apps/{app}/releases/{version}`: a release and the config it carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseInfo {
    pub release: Release,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Rollback {
    /// The release to roll back to; the previous successful release when absent.
    pub version: Option<u32>,
    /// The app's name, to confirm a rollback across releases whose release phase ran
    /// (their data changes are not undone); without it such a rollback is refused with
    /// 409 `confirmation_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProcessCount {
    #[serde(rename = "type")]
    pub process_type: String,
    pub count: u32,
    /// The command, when the current build declares this type.
    pub command: Option<String>,
}

/// `PATCH /v1/apps/{app}/formation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Scale {
    pub counts: BTreeMap<String, u32>,
}

/// How a health check checks a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum CheckType {
    /// An HTTP GET of `path`, healthy on a 2xx or 3xx answer.
    HttpGet,
    /// A shell command in the process's container, healthy when it exits 0.
    Exec,
}

/// One health check of a process type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HealthCheck {
    #[serde(rename = "type")]
    pub check_type: CheckType,
    /// httpGet: the path, such as `/healthz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// httpGet: the port; `$PORT` when absent (web processes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// exec: the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    /// Failed checks in a row before the process counts as unhealthy.
    pub failure_threshold: u32,
}

/// `GET /v1/apps/{app}/healthchecks`: one process type's checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HealthChecks {
    /// Restarts a process that fails it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<HealthCheck>,
    /// Keeps traffic, and a rollout, from a process until it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<HealthCheck>,
}

/// `PUT /v1/apps/{app}/healthchecks/{type}/{kind}`: an httpGet check takes `path` (and
/// `port`), an exec check `command`; timings left out take their defaults (10 s, 1 s, 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SetHealthCheck {
    #[serde(rename = "type")]
    pub check_type: CheckType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

/// What each process of a type may use (request and limit alike), as Kubernetes writes it:
/// memory such as `512Mi`, CPU such as `500m` or `2`. In `PUT /v1/apps/{app}/limits/{type}`
/// memory may also be written `512M` or `1G`, and a limit left out stays as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Limits {
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub cpu: Option<String>,
}

/// A process type's autoscaler (`GET`, `PUT /v1/apps/{app}/autoscale/{type}`): between `min`
/// and `max` processes, aiming at `cpu_percent` of the CPU limit. While it is set, it decides
/// the type's count instead of the formation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    pub cpu_percent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Started, not yet healthy.
    Starting,
    /// Running; for web, accepting connections.
    Up,
    /// Exited on its own, waiting to be started again.
    Crashed,
    /// Being stopped.
    Stopping,
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessState::Starting => "starting",
            ProcessState::Up => "up",
            ProcessState::Crashed => "crashed",
            ProcessState::Stopping => "stopping",
        })
    }
}

/// `GET /v1/apps/{app}/processes`: one running process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Process {
    /// `web.1`
    pub name: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub command: String,
    /// The release it runs.
    pub release: u32,
    pub state: ProcessState,
    /// When it entered its state.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: OffsetDateTime,
    /// How often it exited and was started again.
    pub restarts: u32,
}

/// `POST /v1/apps/{app}/processes/restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Restart {
    /// Only processes of this type; all when absent.
    #[serde(rename = "type", default)]
    pub process_type: Option<String>,
}

/// `POST /v1/apps/{app}/run`: a one-off process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunCommand {
    pub command: String,
}

/// One line of a one-off process's response stream (newline-delimited JSON): its output,
/// line by line, then its exit status, or an error that ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunEvent {
    Output(String),
    Exit(i32),
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Running,
    Succeeded,
    Failed,
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Build {
    pub id: Uuid,
    /// The commit, for builds from a push; `None` for a prebuilt image.
    pub commit: Option<String>,
    pub status: BuildStatus,
    /// Process type → command, from the Procfile or the buildpacks.
    pub procfile: BTreeMap<String, String>,
    /// The image the build made, by digest.
    pub image: Option<String>,
    /// The bytes its image push sent the registry; absent without a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_bytes: Option<u64>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<OffsetDateTime>,
    /// The build's output; only in `GET /v1/apps/{app}/builds/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// `POST /v1/apps/{app}/builds`: deploy an image built elsewhere (Deis's `builds:create`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateBuild {
    /// The image: `host[:port]/repository:tag` from a registry, or an image this app's own
    /// builds made, by its digest (`sha256:…` or `host[:port]/repository@sha256:…`).
    pub image: String,
    /// The Procfile text naming the image's process types.
    pub procfile: String,
}

/// Where a test run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TestRunStatus {
    Running,
    /// Its command exited 0.
    Succeeded,
    /// Its command exited non-zero.
    Failed,
    /// Its command could not run or was cut off.
    Errored,
}

impl TestRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestRunStatus::Running => "running",
            TestRunStatus::Succeeded => "succeeded",
            TestRunStatus::Failed => "failed",
            TestRunStatus::Errored => "errored",
        }
    }
}

/// A build tested with the command app.json or the Procfile's `test:` names
/// (`GET /v1/apps/{app}/test-runs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TestRun {
    /// Numbered per app: `slip ci:info 4`.
    pub number: u64,
    pub build: Uuid,
    pub commit: Option<String>,
    pub image: String,
    pub command: String,
    /// What made it: `push`, `ci-run` (a push to refs/slipway/ci) or `api`.
    pub cause: String,
    pub status: TestRunStatus,
    pub exit_status: Option<i32>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<OffsetDateTime>,
    /// Its output (at most 4 MiB); only in `GET /v1/apps/{app}/test-runs/{number}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// `POST /v1/apps/{app}/test-runs`: test a build again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateTestRun {
    /// The build to test; the current release's build when absent.
    #[serde(default)]
    pub build: Option<Uuid>,
}

/// One entry of the audit trail: who did what, to which app, when
/// (`GET /v1/apps/{app}/events`, `GET /v1/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    /// The app it concerns; none for platform-wide actions.
    pub app: Option<String>,
    /// The pipeline the app was in then, or the pipeline acted on.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Who did it.
    pub actor: String,
    /// What was done, such as `release.create` or `perms.add`.
    pub action: String,
    /// What it was done with, such as `v7 ada deployed 1a2b3c4`.
    pub detail: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/pipelines`: a new pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatePipeline {
    pub name: String,
}

/// `POST /v1/pipelines/{pipeline}/apps`: puts an app in the pipeline at a stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddPipelineApp {
    pub app: String,
    /// `development`, `staging` or `production`.
    pub stage: String,
}

/// `PATCH /v1/pipelines/{pipeline}/stages/{stage}`: a stage's gates; absent ones stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StageGatesPatch {
    pub protected: Option<bool>,
    pub auto_promote: Option<bool>,
}

/// A pipeline as a listing shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PipelineSummary {
    pub name: String,
    pub owner: String,
    /// How many apps are in it.
    pub apps: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `GET /v1/pipelines/{pipeline}`: its stages in order, each with its gates and apps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Pipeline {
    pub name: String,
    pub owner: String,
    pub stages: Vec<PipelineStage>,
    /// Apps in it that the caller may not see, not named.
    pub hidden_apps: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PipelineStage {
    /// `development`, `staging` or `production`.
    pub stage: String,
    /// A promotion to it waits for another person's approval.
    pub protected: bool,
    /// A successful deploy in it promotes onward by itself.
    pub auto_promote: bool,
    pub apps: Vec<PipelineApp>,
}

/// An app of a pipeline: what it runs, and how far behind the stage before it it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PipelineApp {
    pub name: String,
    /// Its current release (the newest that succeeded), if any.
    pub release: Option<u32>,
    pub commit: Option<String>,
    pub image: Option<String>,
    /// Against the previous stage's apps; none in the first stage with apps.
    pub behind: Vec<BehindUpstream>,
}

/// How far an app is behind one upstream app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BehindUpstream {
    pub upstream: String,
    /// Builds the upstream has released since the one this app runs; none when this app runs
    /// nothing of the upstream's.
    pub releases: Option<u32>,
    /// Commits the upstream's current commit is ahead of this app's; none when unknown.
    pub commits: Option<u32>,
}

/// `POST /v1/apps/{app}/promote`: promotes the app's current build down its pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Promote {
    /// Apps of later stages to promote to; empty means every app of the next stage with apps.
    #[serde(default)]
    pub to: Vec<String>,
}

/// A promotion: released at once, or pending another person's approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Promotion {
    /// What `slip promotions:approve N` takes.
    pub number: u64,
    pub pipeline: String,
    pub source_app: String,
    pub source_version: u32,
    /// The image promoted, by digest: the same in both apps.
    pub image: String,
    pub commit: Option<String>,
    pub target_app: String,
    /// `pending`, `done`, `rejected` or `superseded`.
    pub status: String,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub requested_at: OffsetDateTime,
    pub decided_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub decided_at: Option<OffsetDateTime>,
    /// The target's release it made.
    pub release: Option<u32>,
}

/// `POST /v1/apps/{app}/rebase`: what rebasing the app's image onto the current run image did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Rebased {
    /// One line for people: `Rebased demo onto run image base (sha256:…): v8, no build ran`,
    /// or that the app is on the current run image already.
    pub message: String,
    /// The release of the rebased image, deploying; absent when nothing was rebased.
    pub release: Option<Release>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddDomain {
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Domain {
    pub domain: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Only a verified domain routes to the app.
    pub status: DomainStatus,
    /// When it was verified, once it has been.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub verified_at: Option<OffsetDateTime>,
    /// While pending: the TXT record that proves control of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<DomainChallenge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    /// Added, but its challenge TXT record has not been found yet: it does not route.
    Pending,
    /// Its owner proved control of it (or it is the app's own platform name): it routes.
    Verified,
}

impl std::fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DomainStatus::Pending => "pending",
            DomainStatus::Verified => "verified",
        })
    }
}

/// A TXT record to publish: `POST /v1/apps/{app}/domains/{domain}/verify` looks it up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DomainChallenge {
    /// The record's name: `_slipway-challenge.<domain>`.
    pub record: String,
    /// The value the TXT record must hold.
    pub value: String,
}

/// An app's routing switches and what it serves over HTTPS (`GET /v1/apps/{app}/routing`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Routing {
    /// Off: the app runs, but the router sends it nothing.
    pub enabled: bool,
    /// On: every request gets a 503 maintenance page; the processes keep running.
    pub maintenance: bool,
    /// When not empty, only clients in these ranges are served; others get a 403.
    pub allow: Vec<String>,
    /// Plain HTTP requests are redirected to HTTPS.
    pub force_https: bool,
    /// HTTPS responses carry `Strict-Transport-Security`.
    pub hsts: bool,
    /// Each host the app answers to, `<app>.<domain>` first, and the certificate it gets.
    pub hosts: Vec<RoutedHost>,
}

/// One host an app answers to and the certificate served for it over HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoutedHost {
    pub host: String,
    pub certificate: HostCertificate,
    /// The uploaded certificate's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the uploaded or ACME certificate expires.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<OffsetDateTime>,
}

/// Where a host's certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HostCertificate {
    /// One uploaded with `slip certs:add` and attached to the domain.
    Uploaded,
    /// One obtained from the ACME server.
    Acme,
    /// The platform's own.
    Platform,
}

/// One change of an app's routing switches (`PATCH /v1/apps/{app}/routing`): exactly one of
/// `enabled`, `maintenance`, `force_https` (with `hsts`), `allow` or `disallow`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoutingPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_https: Option<bool>,
    /// Only with `force_https: true`; `force_https: false` turns it off too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<bool>,
    /// Ranges (`10.0.0.0/8`, or one address) to add to the allow list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Ranges to take off the allow list; each must be on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disallow: Option<Vec<String>>,
}

/// A certificate to upload (`POST /v1/apps/{app}/certs`).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddCertificate {
    /// 1–63 lowercase letters, digits and dashes; unique within the app.
    pub name: String,
    /// PEM: the leaf certificate first, then its intermediates.
    pub certificate: String,
    /// PEM: the leaf's private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: String,
}

impl std::fmt::Debug for AddCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: it never reaches a log.
        f.debug_struct("AddCertificate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An uploaded certificate; its key never comes back out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Certificate {
    pub name: String,
    /// The leaf's subject, such as `CN=www.example.com`.
    pub subject: String,
    pub issuer: String,
    /// The DNS names it covers.
    pub names: Vec<String>,
    /// The app's custom domains it is served for.
    pub domains: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the leaf, in hex.
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    pub created_by: String,
}
