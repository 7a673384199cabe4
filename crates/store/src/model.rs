//! The records the store returns.

use std::collections::BTreeMap;

use domain::{AppName, ReleaseStatus, ReleaseVersion, RoutingSettings};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub admin: bool,
    pub created_at: OffsetDateTime,
}

/// An API token, without its secret (only a hash of that is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl ApiToken {
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub fingerprint: String,
    pub public_key: String,
    pub comment: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: Uuid,
    pub name: AppName,
    pub owner: String,
    pub created_at: OffsetDateTime,
    /// The app's number among all apps ever made: the sandbox's uid for it derives from it,
    /// the same in every process.
    pub uid_slot: u32,
    /// How it is built: buildpacks, or its Dockerfile.
    pub stack: domain::Stack,
}

/// An app as the dashboard's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSummary {
    pub name: AppName,
    pub owner: String,
    pub routing: RoutingSettings,
    /// Its newest release (every app has one; `None` only if the store is mid-change).
    pub latest: Option<LatestRelease>,
}

/// The newest release of an app, without its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRelease {
    pub version: ReleaseVersion,
    pub status: ReleaseStatus,
    pub summary: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub deploy_finished_at: Option<OffsetDateTime>,
}

/// How a user relates to an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Neither owner nor collaborator.
    None,
    /// May deploy, configure, scale and read the app, but not destroy it or share it.
    Collaborator,
    Owner,
}

/// What an action on an app needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read anything about the app, or fetch its code.
    Read,
    /// Deploy, configure, scale, roll back, manage domains.
    Write,
    /// Destroy the app or change who may use it.
    Own,
}

impl Access {
    /// The access rule, in one place: admins may do anything; the owner too; collaborators
    /// may read and write but not own; anyone else nothing.
    pub fn permits(self, admin: bool, need: Need) -> bool {
        admin
            || match need {
                Need::Read | Need::Write => self >= Access::Collaborator,
                Need::Own => self == Access::Owner,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collaborator {
    pub username: String,
    pub added_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    Running,
    Succeeded,
    Failed,
}

impl BuildStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<BuildStatus> {
        [
            BuildStatus::Running,
            BuildStatus::Succeeded,
            BuildStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Where a build's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildSource {
    /// A pushed commit, built by the builder.
    Commit(String),
    /// An image built elsewhere, deployed as it is.
    Image(String),
    /// Another app's build (`from`: `demo-staging v7`), its image and commit, deployed here
    /// without a rebuild. Its commit is the upstream's, which this app's repository lacks.
    Promoted {
        image: String,
        commit: Option<String>,
        from: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: Uuid,
    /// The commit, for builds from a push.
    pub commit: Option<String>,
    pub status: BuildStatus,
    /// Process type → command.
    pub procfile: BTreeMap<String, String>,
    pub image: Option<String>,
    /// The bytes its image push sent the registry (`None` without one, or before it finished).
    pub pushed_bytes: Option<u64>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// Where a promoted build came from (`demo-staging v7`).
    pub promoted_from: Option<String>,
}

impl Build {
    /// Whether a push made it: built from a commit that this app's repository has, or will
    /// have once the push's ref moves. A promoted build carries its upstream's commit, which
    /// this app's repository never sees, so it is not a push's and never waits for one.
    pub fn is_push(&self) -> bool {
        self.commit.is_some() && self.promoted_from.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: ReleaseVersion,
    pub build: Option<Uuid>,
    pub commit: Option<String>,
    pub config: BTreeMap<String, String>,
    pub summary: String,
    pub status: ReleaseStatus,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    /// When its deploy began and ended, and when its release phase ended (if it had one).
    pub deploy_started_at: Option<OffsetDateTime>,
    pub release_phase_finished_at: Option<OffsetDateTime>,
    pub deploy_finished_at: Option<OffsetDateTime>,
}

/// A release as a history lists it: a [`Release`] without its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseEntry {
    pub version: ReleaseVersion,
    pub build: Option<Uuid>,
    pub commit: Option<String>,
    pub summary: String,
    pub status: ReleaseStatus,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub deploy_started_at: Option<OffsetDateTime>,
    pub release_phase_finished_at: Option<OffsetDateTime>,
    pub deploy_finished_at: Option<OffsetDateTime>,
}

/// What a config change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The change made this release.
    Released(Release),
    /// The change would leave the config as it is: no release was made.
    Unchanged(Release),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCount {
    pub process_type: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub domain: String,
    pub created_at: OffsetDateTime,
    pub state: DomainState,
}

/// Whether a custom domain routes: only once its owner has proved control of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainState {
    /// Added but not proved: it does not route until `token` is found in the domain's
    /// challenge TXT record.
    Pending { token: String },
    /// Proved (or added before verification existed, or the app's own platform name): it routes.
    Verified { at: OffsetDateTime },
}

impl Domain {
    pub fn is_verified(&self) -> bool {
        matches!(self.state, DomainState::Verified { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub app: Option<String>,
    /// The pipeline the app was in when it happened, or the pipeline acted on.
    pub pipeline: Option<String>,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub created_at: OffsetDateTime,
}
