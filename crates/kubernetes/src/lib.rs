//! The Kubernetes runtime: each release a versioned set of Kubernetes objects, server-side
//! applied with field manager `slipway`, rolled out as `kubectl rollout status` judges it,
//! and put back to the previous release's when its rollout fails.
//!
//! - [`render`] turns a release, its formation, its host names and its process settings
//!   into objects: a pure function, snapshot-tested.
//! - [`rollout`] judges a Deployment's rollout from its status: pure too.
//! - [`KubeRuntime`] is the [`releaser::Runtime`] that applies them, waits, prunes, runs the
//!   release phase as a Job and one-off processes as Pods, and lists an app's pods.
//! - [`PodLogs`] is the [`logs::LogSource`] of apps on Kubernetes: the platform's own lines
//!   merged with the pods' logs from the API.
//!
//! Architecture invariant: the cluster holds no state Slipway cannot rebuild from its store.
//! What serves is the Namespace's `slipway.io/current-release` annotation, written only once
//! a rollout completed; every other object is rendered again from the store on each deploy.

mod error;
mod logs_source;
pub mod render;
pub mod rollout;
mod runtime;

pub use error::Error;
pub use logs_source::PodLogs;
pub use render::Platform;
pub use runtime::{APPLIED, FIELD_MANAGER, KubeRuntime};
