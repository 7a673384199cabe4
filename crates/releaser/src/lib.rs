//! The release manager: turns a release (a build plus a config) into running processes
//! through a [`Runtime`], records how the deploy went, and answers for an app's processes,
//! logs and one-off runs.
//!
//! The rest of the platform meets it at the store: the API and the gateway queue work there,
//! and a [`Worker`] claims it and has the [`ReleaseManager`] do it through the [`Deployer`]
//! interface, writing back what it printed and how it ended.
//!
//! Architecture invariant: the release manager decides *what* runs (which release, which
//! formation, whether a deploy succeeded); a runtime decides *how* (local processes here,
//! Kubernetes objects later). Only the local runtime knows about ports and the router.

use async_trait::async_trait;
use std::sync::Arc;

use domain::{
    AppName, ConfigVars, Formation, ImageRef, ProcessSettings, Procfile, ReleaseVersion,
    RoutingSettings,
};
use time::OffsetDateTime;

mod certificates;
pub mod fake;
mod lease;
mod leftovers;
pub mod local;
mod manager;
mod metrics;
mod rebase;
mod worker;

pub use certificates::{CertificateKeeper, RENEW_BEFORE};
pub use lease::{ActiveLease, LOCAL_RUNTIME, holder_name};
pub use leftovers::Leftovers;
pub use logs::{LineReceiver, LineSender, LogFilter, LogLine, Logs, Pace};
pub use manager::{CUT_OFF, ReleaseManager};
pub use metrics::{FLUSH_EVERY, MAX_PENDING_MINUTES, MetricsFlusher};
pub use rebase::{RebaseError, RebasedImage, Rebaser};
pub use worker::{Worker, WorkerConfig};

/// Why an action on an app's processes did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// Nothing can run: the platform has no runtime, or the app has nothing deployed yet.
    #[error("{0}")]
    Unavailable(String),
    /// The request names something the app does not have.
    #[error("{0}")]
    Invalid(String),
    /// It was tried and failed.
    #[error("{0}")]
    Failed(String),
}

/// Why a runtime did not do what it was asked, by whose fault it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The caller's: it asks for something the app does not have (a process type its
    /// release does not declare).
    #[error("{0}")]
    Invalid(String),
    /// The app's: a process crashed, never became healthy, or its command could not start.
    #[error("{0}")]
    App(String),
    /// The runtime's own: it cannot unpack an image, spawn a process or find a port.
    #[error("{0}")]
    Runtime(String),
    /// Worth trying again: the runtime could not be reached in time (a Kubernetes API
    /// timeout).
    #[error("{0}")]
    Transient(String),
}

impl From<RuntimeError> for DeployError {
    fn from(err: RuntimeError) -> DeployError {
        match err {
            RuntimeError::Invalid(m) => DeployError::Invalid(m),
            RuntimeError::App(m) | RuntimeError::Runtime(m) | RuntimeError::Transient(m) => {
                DeployError::Failed(m)
            }
        }
    }
}

/// Where a process's output lines go, one call per line.
pub type Lines<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Where progress lines go while a deploy runs (the gateway sends them to the pusher).
pub type Progress = LineSender;

/// Lines held for a pusher or a `slip run` caller, at most; a reader further behind misses
/// lines and is told how many.
pub const READER_LAG: usize = 1_024;

/// What the API and the gateway ask of the release manager.
#[async_trait]
pub trait Deployer: Send + Sync + 'static {
    /// Deploys a committed release in the background and returns at once.
    fn deploy(&self, app: &AppName, version: ReleaseVersion);

    /// Deploys a committed release and returns how it went, sending progress lines to
    /// `progress` as it goes.
    async fn deploy_and_wait(
        &self,
        app: &AppName,
        version: ReleaseVersion,
        progress: Progress,
    ) -> Result<(), DeployError>;

    /// Deploys the release a push made, before the push's ref moves. On success the release
    /// serves but stays `deploying` until [`Deployer::push_settled`] says whether the ref
    /// moved: a release is never recorded as succeeded with a commit the repository lacks.
    async fn deploy_push(
        &self,
        app: &AppName,
        version: ReleaseVersion,
        progress: Progress,
    ) -> Result<(), DeployError>;

    /// The push that made `version` ended. With its ref moved, the release has succeeded;
    /// without (the push was cut off after its deploy), it has failed, and the release that
    /// served before it serves again.
    async fn push_settled(&self, app: &AppName, version: ReleaseVersion, ref_moved: bool);

    /// Brings the app's running processes in line with its formation in the store.
    async fn scale(&self, app: &AppName) -> Result<(), DeployError>;

    /// Replaces the app's processes (of one type, or all) with fresh ones, without dropping
    /// a request.
    async fn restart(&self, app: &AppName, process_type: Option<&str>) -> Result<(), DeployError>;

    /// The app's processes as they are now.
    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, DeployError>;

    /// Runs `command` once with the app's current release and config; each output line goes
    /// to `output`. Returns the command's exit status.
    async fn run(
        &self,
        app: &AppName,
        command: &str,
        output: LineSender,
    ) -> Result<i32, DeployError>;

    /// Runs the app's test run number `run` (its image, command and test environment, never
    /// the app's config) and records how it ended; each output line goes to `output`.
    /// Returns the command's exit status.
    async fn test(&self, app: &AppName, run: u64, output: LineSender) -> Result<i32, DeployError>;

    /// How the app is routed changed: it was created, a custom domain or a certificate was
    /// added or removed, or a routing switch (maintenance, allow list, HTTPS only) moved.
    async fn hosts_changed(&self, app: &AppName);
}

/// How one app is reached: the host names it answers to, each with the certificate to serve,
/// and its routing switches. The release manager makes it from the store; a runtime applies
/// it (the local router's table, or an Ingress).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// `<app>.<domain>` first, then the app's verified custom domains.
    pub hosts: Vec<RoutedHost>,
    pub settings: RoutingSettings,
}

/// One host name an app answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedHost {
    pub name: String,
    /// The certificate served for it over HTTPS: one uploaded and attached to the domain,
    /// else one obtained from the ACME server. `None`: the platform's own (signed by the
    /// platform CA on one machine; the ingress controller's default on Kubernetes).
    pub certificate: Option<Arc<CertificatePem>>,
}

impl RoutedHost {
    /// A host served with the platform's own certificate.
    pub fn new(name: impl Into<String>) -> RoutedHost {
        RoutedHost {
            name: name.into(),
            certificate: None,
        }
    }
}

/// A certificate chain and its private key, PEM-encoded, as validated when they were stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificatePem {
    /// The leaf certificate first, then its intermediates.
    pub chain: String,
    pub key: String,
}

impl std::fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: it never reaches a log.
        f.debug_struct("CertificatePem")
            .field("chain", &format_args!("{} bytes", self.chain.len()))
            .finish_non_exhaustive()
    }
}

/// Everything a runtime needs to run a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub app: AppName,
    /// The app's number among all apps (the store's): its sandbox uid derives from it.
    pub uid_slot: u32,
    pub version: ReleaseVersion,
    /// The build's image: a digest of the local image store, or a registry reference.
    pub image: ImageRef,
    /// The process types and commands the build declares.
    pub processes: Procfile,
    /// The release's config vars.
    pub config: ConfigVars,
    /// The app's health checks, limits and autoscaling per process type, as they are now
    /// (the app's, not the release's: a rollback keeps them).
    pub settings: ProcessSettings,
}

impl ReleaseSpec {
    /// The path a web process must answer before it takes traffic: its readiness check's
    /// (`slip healthchecks:set web readiness httpGet PATH`), else `SLIPWAY_HEALTHCHECK_PATH`
    /// from the config.
    pub fn healthcheck_path(&self) -> Option<&str> {
        let web = self
            .settings
            .iter()
            .find(|(t, _)| t.as_str() == domain::ProcessType::WEB)
            .and_then(|(_, s)| s.readiness.as_ref());
        if let Some(domain::Probe {
            check: domain::Check::HttpGet { path, .. },
            ..
        }) = web
        {
            return Some(path);
        }
        self.config
            .get("SLIPWAY_HEALTHCHECK_PATH")
            .filter(|p| p.starts_with('/'))
    }

    /// The memory a process of `process_type` may use, when its settings limit it.
    pub fn memory_limit(&self, process_type: &str) -> Option<u64> {
        self.settings
            .iter()
            .find(|(t, _)| t.as_str() == process_type)
            .and_then(|(_, s)| s.limits.memory)
            .map(domain::Memory::bytes)
    }
}

/// How a process of a buildpack image starts: a shell sources the image's
/// `.profile.d/*.sh` from the app's directory, then runs the Procfile command (`$1`) with
/// another, as Heroku does. Run it as `/bin/sh -c LAUNCHER <type> <command>`.
pub const LAUNCHER: &str =
    r#"for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; exec /bin/sh -c "$1""#;

/// How a process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Started, not yet healthy.
    Starting,
    /// Running (and, for web, accepting connections).
    Up,
    /// Exited on its own; waiting to be started again.
    Crashed,
    /// Being stopped.
    Stopping,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Up => "up",
            ProcessState::Crashed => "crashed",
            ProcessState::Stopping => "stopping",
        }
    }
}

/// One of an app's processes, as `slip ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// `web.1`
    pub name: String,
    pub process_type: String,
    pub command: String,
    pub release: ReleaseVersion,
    pub state: ProcessState,
    /// When it entered its state.
    pub since: OffsetDateTime,
    /// How often it has exited and been started again.
    pub restarts: u32,
}

/// Runs releases: the seam between the release manager and where processes live. Every
/// method that talks to where processes live can fail, and says by whose fault.
///
/// Stopping every app when the platform stops is not the trait's: on Kubernetes, apps keep
/// running while the platform restarts (the local runtime has its own `shutdown`).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Runs `command` once with `spec`'s image and config, as process `source` (`release`,
    /// `run.1`); each output line goes to `output`. Returns its exit status.
    async fn run_once(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError>;

    /// Runs a test run's `command` once, as process `source` (`test.4`). `spec` is the test
    /// run's, never a release's: its image and process types are the tested build's, its
    /// config is the test environment, and its version is the test run's number. A runtime
    /// that cannot keep a test apart from the app's releases refuses.
    async fn run_test(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError>;

    /// Starts `spec`'s processes as `formation` says and, once they are healthy, makes them
    /// the app's: traffic moves to them, and the previous release's processes stop. On `Err`
    /// the previous release's processes keep running and serving: `previous` is the release
    /// that serves now, for a runtime that must put it back (Kubernetes applies its objects
    /// again).
    async fn deploy(
        &self,
        spec: &ReleaseSpec,
        formation: &Formation,
        previous: Option<&ReleaseSpec>,
        progress: Lines<'_>,
    ) -> Result<(), RuntimeError>;

    /// The release the app runs now, if any.
    async fn current(&self, app: &AppName) -> Result<Option<ReleaseVersion>, RuntimeError>;

    /// Brings the processes of the current release, `spec`, in line with `formation` and
    /// with `spec`'s process settings: starts or stops processes, and (where the runtime
    /// applies settings to running processes) replaces those whose settings changed.
    async fn scale(&self, spec: &ReleaseSpec, formation: &Formation) -> Result<(), RuntimeError>;

    /// Replaces the current release's processes (of one type, or all) with new ones.
    async fn restart(&self, app: &AppName, process_type: Option<&str>) -> Result<(), RuntimeError>;

    /// The app's processes as they are now.
    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, RuntimeError>;

    /// How the app is reached: its host names and their certificates, and its routing
    /// switches. Applied at once, whether or not the app runs.
    async fn set_routing(&self, app: &AppName, routing: &Routing) -> Result<(), RuntimeError>;

    /// Stops everything the app runs.
    async fn stop(&self, app: &AppName) -> Result<(), RuntimeError>;
}
