//! Slipway's persistent state: one [`Store`] over SQLite (the embedded default) or
//! PostgreSQL, chosen by the database URL.
//!
//! Architecture invariant: this is the only crate that contains SQL. Every query is one SQL
//! text that both backends run (placeholders `$1…`, `RETURNING`, no `now()`: times are bound
//! from Rust); the rare statement that must differ says so where it stands. The store knows
//! nothing about HTTP or SSH: it takes domain types and returns its own plain records.
//!
//! Release versions are allocated from a per-app counter (`apps.last_version`) in the same
//! transaction that inserts the release. The counter's row lock (PostgreSQL) or the single
//! writer connection (SQLite) serialises concurrent writers to one app, so versions are
//! unique and consecutive, and each release's config is computed from the one before it.

mod apps;
mod builds;
mod certificates;
mod db;
mod documents;
mod error;
mod metrics;
mod model;
mod pipelines;
mod promotions;
mod releases;
mod routing;
mod sessions;
mod settings;
mod test_runs;
mod users;
mod work;

pub use certificates::{
    AcmeCertificate, AttachedCertificate, Certificate, KeyedCertificate, MAX_CERTIFICATES,
    NewCertificate, ServedCertificate,
};
pub use db::{Backend, Store};
pub use error::Error;
pub use metrics::{
    AppRequestTotals, PlatformGauges, REQUEST_MINUTES_KEPT, RequestMinute, RequestTotals,
};
pub use model::{
    Access, ApiToken, App, AppSummary, Build, BuildSource, BuildStatus, Collaborator,
    ConfigOutcome, Domain, DomainState, Event, KeyOwner, LatestRelease, Need, NewToken,
    ProcessCount, Release, ReleaseEntry, SshKey, TokenLimit, User,
};
pub use pipelines::{Pipeline, StageGates};
pub use promotions::{PinnedBuild, Promotion, PromotionStatus};
pub use routing::RoutingChanged;
pub use sessions::WebSession;
pub use settings::SettingsChanged;
pub use test_runs::{MAX_TEST_OUTPUT, NewTestRun, TestCause, TestRun, TestStatus};
pub use users::NewUser;
pub use work::{
    Claimable, Fault, MAX_OUTPUT_LINES, ProcessRecord, Work, WorkId, WorkKind, WorkOutcome,
    WorkStatus, holder_gone, holder_name,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;
