//! The release manager's seam: what the rest of the platform calls when a release needs
//! deploying.
//!
//! A release is made by the store (config change, build, rollback); deploying it — starting
//! its processes, judging their health, switching traffic, recording the outcome — is the
//! release manager's job, through a runtime (local processes or Kubernetes). Until a runtime
//! is wired in, [`NoDeployer`] leaves releases `pending`.

use domain::{AppName, ReleaseVersion};

/// Receives releases that have a build and so must be deployed.
pub trait Deployer: Send + Sync + 'static {
    /// Called after a release is committed. Returns at once: deploying happens in the background.
    fn deploy(&self, app: &AppName, version: ReleaseVersion);

    /// Whether releases handed to [`Deployer::deploy`] get deployed at all.
    fn deploys(&self) -> bool;
}

/// A [`Deployer`] that deploys nothing: the platform has no runtime yet.
#[derive(Debug, Default)]
pub struct NoDeployer;

impl Deployer for NoDeployer {
    fn deploy(&self, _app: &AppName, _version: ReleaseVersion) {}

    fn deploys(&self) -> bool {
        false
    }
}
