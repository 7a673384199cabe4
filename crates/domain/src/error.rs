//! The one error type of the domain crate: why a value or a change was refused.

/// Why input was refused. Messages are one line, lowercase, and say how to fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid app name {0:?}: use 1-30 lowercase letters, digits and dashes, starting with a letter and not ending with a dash"
    )]
    AppName(String),
    #[error("the app name {0:?} is reserved; choose another")]
    ReservedAppName(String),
    #[error("invalid config key {0:?}: keys match [A-Za-z_][A-Za-z0-9_]*")]
    ConfigKey(String),
    #[error("{0} is set by the platform and cannot be configured")]
    ReservedConfigKey(String),
    #[error("the value of {key} is {len} bytes; values are limited to {max} bytes")]
    ConfigValueTooLarge { key: String, len: usize, max: usize },
    #[error(
        "the value of {key} contains the control character {found}: only tabs and line breaks are allowed in config values"
    )]
    ConfigValueControl { key: String, found: String },
    #[error("the app's config would be {len} bytes; an app's config is limited to {max} bytes")]
    ConfigTooLarge { len: usize, max: usize },
    #[error("unknown stack {0:?}: use container (build from the app's Dockerfile) or buildpacks")]
    Stack(String),
    #[error(
        "invalid pipeline name {0:?}: use 1-30 lowercase letters, digits and dashes, starting with a letter and not ending with a dash"
    )]
    PipelineName(String),
    #[error("unknown stage {0:?}: use development, staging or production")]
    Stage(String),
    #[error("{0} is in no pipeline with the app: add it with `slip pipelines:add`")]
    NotInPipeline(String),
    #[error(
        "{app} is in {stage}, the pipeline's last stage with apps: there is nowhere to promote it"
    )]
    NoLaterStage { app: String, stage: crate::Stage },
    #[error(
        "{app} is in {stage}, which is not after {upstream}'s {upstream_stage}: promotions go down the pipeline"
    )]
    NotDownstream {
        app: String,
        stage: crate::Stage,
        upstream: String,
        upstream_stage: crate::Stage,
    },
    #[error("invalid app.json: {0}")]
    AppJson(String),
    #[error("invalid Procfile line {line}: {reason}")]
    Procfile { line: usize, reason: String },
    #[error(
        "invalid process type {0:?}: use 1-63 lowercase letters, digits and dashes, starting with a letter"
    )]
    ProcessType(String),
    #[error("invalid release version {0:?}: write it as v3 or 3")]
    ReleaseVersion(String),
    #[error("invalid scale {0:?}: write TYPE=COUNT, for example web=2")]
    ScaleSyntax(String),
    #[error("cannot scale {process} to {count}: at most {max} processes per type")]
    ScaleTooLarge {
        process: String,
        count: u32,
        max: u32,
    },
    #[error("the {process} process runs {when} and cannot be scaled")]
    ScaleOneOff { process: String, when: &'static str },
    #[error("the app has no process type {process:?}; its processes are: {known}")]
    UnknownProcessType { process: String, known: String },
    #[error("{0:?} is given more than once")]
    Duplicate(String),
    #[error(
        "invalid username {0:?}: use 1-32 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    Username(String),
    #[error(
        "the password needs at least {min} characters that are not spaces, and at most {max} characters"
    )]
    Password { min: usize, max: usize },
    #[error("invalid SSH public key: {0}")]
    SshKey(String),
    #[error("invalid domain {0:?}: use a lowercase host name such as www.example.com")]
    Hostname(String),
    #[error("invalid address range {0:?}: write an address or a CIDR such as 10.0.0.0/8")]
    Cidr(String),
    #[error("{0} is not on the app's allow list")]
    NotAllowed(String),
    #[error("the allow list holds at most {max} ranges; merge some into a wider one")]
    AllowListFull { max: usize },
    #[error("invalid digest {0:?}: write sha256: and 64 lowercase hex digits")]
    Digest(String),
    #[error("invalid image reference {reference:?}: {reason}")]
    ImageRef { reference: String, reason: String },
    #[error("invalid health check {0:?}: write liveness or readiness")]
    ProbeKind(String),
    #[error(
        "invalid health check path {0:?}: write an absolute path of printable characters without spaces, such as /healthz"
    )]
    ProbePath(String),
    #[error("invalid health check port 0: give a port from 1 to 65535, or none for $PORT")]
    ProbePort,
    #[error("invalid health check command: write one line of shell of at most {max} bytes")]
    ProbeCommand { max: usize },
    #[error("invalid health check {what} of {value} s: give 1 to {max} seconds")]
    ProbeSeconds {
        what: &'static str,
        value: u32,
        max: u32,
    },
    #[error("invalid failure threshold {value}: give 1 to {max}")]
    ProbeFailureThreshold { value: u32, max: u32 },
    #[error("invalid memory {0:?}: write an amount such as 512M or 1G")]
    Memory(String),
    #[error("memory {0:?} is out of range: give 4M to 256G")]
    MemoryRange(String),
    #[error("invalid CPU {0:?}: write millicores such as 500m, or cores such as 2")]
    Cpu(String),
    #[error("CPU {0:?} is out of range: give 1m to 64")]
    CpuRange(String),
    #[error("invalid autoscale bounds {min}..{max}: give 1 <= min <= max <= {limit}")]
    AutoscaleBounds { min: u32, max: u32, limit: u32 },
    #[error("invalid autoscale target of {value}% CPU: give 1 to {max}")]
    AutoscaleTarget { value: u32, max: u32 },
    #[error("the {process} process runs {when} and takes no health checks, limits or autoscaling")]
    SettingsOneOff { process: String, when: &'static str },
    #[error("{process} processes have no $PORT: give the health check a port, such as --port 8080")]
    ProbeNeedsPort { process: String },
    #[error("no limit given: give a memory limit, a CPU limit or both, such as --memory 512M")]
    LimitsEmpty,
    #[error(
        "autoscale needs a CPU limit on {process}: run `slip limits:set {process} --cpu 500m` first"
    )]
    AutoscaleNeedsCpu { process: String },
    #[error("{process} is autoscaled on its CPU limit: run `slip autoscale:unset {process}` first")]
    AutoscaleKeepsCpu { process: String },
    #[error("unknown token scope {0:?}: use deploy or read")]
    TokenScope(String),
    #[error("invalid lifetime {0:?}: write a number and a unit, such as 30d, 12h, 90m or 45s")]
    Lifetime(String),
    #[error("a token may live at most 365 days; {0:?} is longer")]
    LifetimeTooLong(String),
}
