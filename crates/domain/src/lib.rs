//! Slipway's vocabulary and release rules: pure types and functions, no I/O.
//!
//! Every type with an invariant has a private field and a `parse` constructor, so a value
//! that exists is valid. The release rules of the product contract (what makes a release,
//! which release a rollback targets, which rollbacks are refused) live here as pure
//! functions over plain data, so the store, the API and the release manager share one
//! definition of them.
//!
//! Architecture invariant: this crate knows nothing of SQL, HTTP, processes or the file
//! system. It must stay cheap to compile and test.

mod app_json;
mod app_name;
mod config;
mod error;
mod formation;
mod hostname;
mod image;
mod metrics;
mod pipeline;
mod procfile;
mod release;
mod routing;
mod settings;
mod size;
mod ssh_key;
mod stack;
mod token;
mod user;

pub use app_json::{TestPlan, TestRunFacts};
pub use app_name::AppName;
pub use config::{
    ConfigChange, ConfigDiff, ConfigKey, ConfigVars, MAX_CONFIG_BYTES, MAX_VALUE_BYTES,
};
pub use error::Error;
pub use formation::{Formation, MAX_PROCESSES_PER_TYPE};
pub use hostname::{Hostname, PlatformPlace, certificate_covers, challenge_record};
pub use image::{APP_DIR, Digest, ImageRef, RegistryImage};
pub use metrics::{
    AppMinute, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, LatencyHistogram, RequestBatch, RequestStats,
    StatusClass, StatusCounts,
};
pub use pipeline::{Behind, PipelineName, Stage, behind, promotion_targets};
pub use procfile::{MAX_COMMAND, MAX_PROCESS_TYPES, ProcessType, Procfile};
pub use release::{
    PUSH_CUT_OFF, ReleaseCause, ReleaseFacts, ReleaseStatus, ReleaseVersion, RollbackRefused,
    confirmed_rollback_target, may_roll_back_to, rollback_crosses, rollback_target,
};
pub use routing::{Cidr, HSTS_MAX_AGE, MAX_ALLOW_LIST, RoutingChange, RoutingSettings};
pub use settings::{
    Autoscale, Check, Cpu, Limits, MAX_CPU_MILLIS, MAX_CPU_PERCENT, MAX_FAILURE_THRESHOLD,
    MAX_MEMORY, MAX_PROBE_PATH, MAX_PROBE_SECONDS, Memory, Probe, ProbeKind, ProcessSettings,
    SettingsChange, TypeSettings,
};
pub use size::human_size;
pub use ssh_key::SshPublicKey;
pub use stack::Stack;
pub use token::{Lifetime, TokenScope};
pub use user::{Password, Username};

#[cfg(test)]
mod test_util;
