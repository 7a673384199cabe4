//! The command line: clap definitions of every command, and the argv normalisation that
//! lets `config:set` mean the same as `config set`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Slipway's CLI for app owners: deploy with `git push slipway main`, manage the rest here.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(name = "slip", version, max_term_width = 100)]
#[command(
    after_help = "Commands also work with a colon: `slip config:set A=1` is `slip config set A=1`."
)]
pub(crate) struct Cli {
    /// The app; by default, the app of the git remote `slipway` in this directory
    #[arg(short, long, global = true, value_name = "APP")]
    pub(crate) app: Option<String>,

    /// Print the API's JSON instead of text
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum Command {
    /// Create an account on a Slipway platform and log in to it
    Register(AccountArgs),
    /// Log in to a Slipway platform
    Login(AccountArgs),
    /// Log out, revoking the token on the server
    Logout,
    /// Show who you are logged in as, and where
    Whoami,
    /// Show what a platform says about itself; needs no login
    Platform {
        /// The platform's API [default: the one you are logged in to]
        url: Option<String>,
    },

    /// SSH keys for `git push` [default: keys list]
    Keys {
        #[command(subcommand)]
        command: Option<KeysCommand>,
    },

    /// Your API tokens (logins) and when they expire [default: tokens list]
    Tokens {
        #[command(subcommand)]
        command: Option<TokensCommand>,
    },

    /// Apps [default: apps list]
    Apps {
        #[command(subcommand)]
        command: Option<AppsCommand>,
    },
    /// Create an app (apps:create)
    Create(CreateArgs),
    /// Show an app (apps:info)
    Info,
    /// Destroy an app for good (apps:destroy)
    Destroy(DestroyArgs),

    /// Config vars [default: config list]
    #[command(args_conflicts_with_subcommands = true)]
    Config {
        #[command(subcommand)]
        command: Option<ConfigCommand>,
        #[command(flatten)]
        list: ConfigListArgs,
    },

    /// Releases [default: releases list]
    #[command(args_conflicts_with_subcommands = true)]
    Releases {
        #[command(subcommand)]
        command: Option<ReleasesCommand>,
        #[command(flatten)]
        list: LimitArgs,
    },
    /// Roll back to an earlier release (releases:rollback)
    Rollback(RollbackArgs),
    /// Move the app's image onto the platform's current run image, without a build: a new
    /// release whose app layers are unchanged (buildpack builds only)
    Rebase,
    /// The audit trail: who did what to the app, newest first
    Events(EventsArgs),

    /// Test runs: the app's builds tested with app.json's scripts.test or the Procfile's
    /// `test:` [default: ci list]
    #[command(args_conflicts_with_subcommands = true)]
    Ci {
        #[command(subcommand)]
        command: Option<CiCommand>,
        #[command(flatten)]
        list: LimitArgs,
    },
    /// Pipelines: apps in development, staging and production stages, and promoting a build
    /// down them without a rebuild [default: pipelines list]
    Pipelines {
        #[command(subcommand)]
        command: Option<PipelinesCommand>,
    },
    /// Promotions waiting for approval, and those decided [default: promotions list]
    #[command(args_conflicts_with_subcommands = true)]
    Promotions {
        #[command(subcommand)]
        command: Option<PromotionsCommand>,
        #[command(flatten)]
        list: PromotionsListArgs,
    },

    /// The app's processes, scaling and restarting them [default: ps list]
    Ps {
        #[command(subcommand)]
        command: Option<PsCommand>,
    },

    /// Health checks of the app's process types [default: healthchecks list]
    Healthchecks {
        #[command(subcommand)]
        command: Option<HealthchecksCommand>,
    },

    /// Memory and CPU limits of the app's process types [default: limits list]
    Limits {
        #[command(subcommand)]
        command: Option<LimitsCommand>,
    },

    /// Autoscaling of the app's process types on their CPU use [default: autoscale list]
    Autoscale {
        #[command(subcommand)]
        command: Option<AutoscaleCommand>,
    },

    /// The app's log: its processes' output, the router's requests, deploys
    Logs(LogsArgs),

    /// Run a command once with the app's current release and config
    Run(RunArgs),

    /// Collaborators of an app [default: perms list]
    Perms {
        #[command(subcommand)]
        command: Option<PermsCommand>,
    },

    /// Custom domains of an app [default: domains list]
    Domains {
        #[command(subcommand)]
        command: Option<DomainsCommand>,
    },

    /// How the app is built: with buildpacks, or from its Dockerfile (the container stack)
    /// [default: stack info]
    Stack {
        #[command(subcommand)]
        command: Option<StackCommand>,
    },

    /// Maintenance mode: a 503 page for every request while processes keep running
    /// [default: maintenance info]
    Maintenance {
        #[command(subcommand)]
        command: Option<MaintenanceCommand>,
    },

    /// Whether the router sends the app any traffic at all [default: routing info]
    Routing {
        #[command(subcommand)]
        command: Option<RoutingCommand>,
    },

    /// The IP allow list: when not empty, only these clients are served [default: whitelist list]
    Whitelist {
        #[command(subcommand)]
        command: Option<WhitelistCommand>,
    },

    /// HTTPS only (HTTP redirected) and HSTS, and each host's certificate [default: tls info]
    Tls {
        #[command(subcommand)]
        command: Option<TlsCommand>,
    },

    /// Certificates uploaded for the app's custom domains [default: certs list]
    Certs {
        #[command(subcommand)]
        command: Option<CertsCommand>,
    },

    /// Builds of an app [default: builds list]
    #[command(args_conflicts_with_subcommands = true)]
    Builds {
        #[command(subcommand)]
        command: Option<BuildsCommand>,
        #[command(flatten)]
        list: LimitArgs,
    },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct AccountArgs {
    /// The platform's API, such as http://127.0.0.1:7100
    pub(crate) url: String,
    #[arg(short, long)]
    pub(crate) username: String,
    /// The password; prompted for when absent and stdin is a terminal
    #[arg(short, long, env = "SLIPWAY_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum KeysCommand {
    /// List your SSH keys
    List,
    /// Add an SSH public key [default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub];
    /// with `--app APP --deploy-key FILE`, a key that may clone and push only that app
    Add {
        /// An OpenSSH public key file
        #[arg(conflicts_with = "deploy_key")]
        path: Option<PathBuf>,
        /// Add FILE as a deploy key of the app given with --app
        #[arg(long, value_name = "FILE")]
        deploy_key: Option<PathBuf>,
    },
    /// Remove an SSH key (with --app, one of that app's deploy keys)
    Remove {
        /// The key's fingerprint, comment or id
        key: String,
    },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum TokensCommand {
    /// List your API tokens
    List,
    /// Create a token for automation, shown once; with --app, limited to that app
    Create {
        /// What the token is for, such as "GitHub Actions deploys"
        #[arg(long)]
        description: String,
        /// How long it lives: 30d, 12h, 90m or 45s, at most 365d [default: the platform's login lifetime]
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// What it may do on the app given with --app [default: deploy]
        #[arg(long, value_parser = ["deploy", "read"])]
        scope: Option<String>,
    },
    /// Revoke an API token, ending that login
    Revoke {
        /// The token's id, as `slip tokens` shows it
        id: String,
    },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum AppsCommand {
    /// List the apps you can use
    List,
    /// Create an app and add the git remote `slipway`
    Create(CreateArgs),
    /// Show an app
    Info,
    /// Destroy an app for good
    Destroy(DestroyArgs),
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct CreateArgs {
    /// The app's name, such as `demo` [default: a readable unused one]
    pub(crate) name: Option<String>,
    /// Do not add the git remote `slipway`
    #[arg(long)]
    pub(crate) no_remote: bool,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct DestroyArgs {
    /// The app's name again, to confirm
    #[arg(long, value_name = "APP")]
    pub(crate) confirm: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum ConfigCommand {
    /// List the app's config vars
    List(ConfigListArgs),
    /// Print one config var's value
    Get { key: String },
    /// Set config vars, making a new release
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Unset config vars, making a new release
    Unset {
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Write the app's config vars to a .env file
    Pull {
        #[arg(long, default_value = ".env")]
        file: PathBuf,
        /// Replace values already in the file (otherwise only missing keys are added)
        #[arg(long)]
        overwrite: bool,
    },
    /// Set every config var of a .env file
    Push {
        #[arg(long, default_value = ".env")]
        file: PathBuf,
    },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct ConfigListArgs {
    /// Print KEY=value lines that a shell can evaluate
    #[arg(long)]
    pub(crate) shell: bool,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum ReleasesCommand {
    /// List releases, newest first
    List(LimitArgs),
    /// Show a release and its config
    Info {
        /// Such as v3
        version: String,
    },
    /// Roll back to an earlier release
    Rollback(RollbackArgs),
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct LimitArgs {
    /// How many to show, newest first
    #[arg(short = 'n', long = "num", value_name = "N")]
    pub(crate) limit: Option<u32>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum PipelinesCommand {
    /// List the pipelines you can see
    List,
    /// Make a pipeline; you manage it
    Create {
        /// Such as `demo`
        name: String,
    },
    /// Put the app (-a) in a pipeline at a stage
    Add {
        pipeline: String,
        /// development, staging or production
        #[arg(long, short = 's')]
        stage: String,
    },
    /// Show a pipeline's stages, what each app runs, and how far behind the stage before it
    /// each is [default: the app's pipeline]
    Info { pipeline: Option<String> },
    /// Take the app (-a) out of its pipeline
    Remove,
    /// Destroy a pipeline; its apps stay
    Destroy {
        pipeline: String,
        /// The pipeline's name again, to confirm
        #[arg(long, value_name = "PIPELINE")]
        confirm: Option<String>,
    },
    /// Make promotions to a stage wait for another collaborator's approval
    Protect(StageGateArgs),
    /// Make a successful deploy in a stage promote onward by itself
    AutoPromote(StageGateArgs),
    /// Promote the app's (-a) current build to the next stage's apps, or to those named,
    /// without a rebuild
    Promote {
        /// An app of a later stage to promote to (repeatable) [default: every app of the
        /// next stage with apps]
        #[arg(long, value_name = "APP")]
        to: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct StageGateArgs {
    /// development, staging or production
    pub(crate) stage: String,
    /// The pipeline [default: the app's]
    #[arg(long, short = 'p')]
    pub(crate) pipeline: Option<String>,
    /// Turn it off instead
    #[arg(long)]
    pub(crate) off: bool,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum PromotionsCommand {
    /// List a pipeline's promotions, newest first
    List(PromotionsListArgs),
    /// Approve a pending promotion and deploy it (not your own)
    Approve { number: u64 },
    /// Reject a pending promotion (yours too: that withdraws it)
    Reject { number: u64 },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct PromotionsListArgs {
    /// The pipeline [default: the app's]
    #[arg(long, short = 'p')]
    pub(crate) pipeline: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct EventsArgs {
    /// Every app's events (admins only), not the app's
    #[arg(long)]
    pub(crate) all: bool,
    /// A pipeline's events: its own and its apps' while they were in it
    #[arg(long, value_name = "PIPELINE", conflicts_with = "all")]
    pub(crate) pipeline: Option<String>,
    /// How many at most (default 100)
    #[arg(short = 'n', long)]
    pub(crate) limit: Option<u32>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum CiCommand {
    /// List the app's test runs, newest first
    List(LimitArgs),
    /// Show a test run and its output
    Info {
        /// The test run's number, such as 4
        number: String,
    },
    /// Test without deploying: this directory's HEAD (pushed to refs/slipway/ci), or a build
    Run {
        /// Test this build of the app again instead (`slip builds` lists them)
        #[arg(long, value_name = "ID")]
        build: Option<String>,
    },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct RollbackArgs {
    /// The release to go back to, such as v2 [default: the previous successful release]
    pub(crate) version: Option<String>,
    /// The app's name, to go back across releases whose release command ran (their data
    /// changes are not undone)
    #[arg(long, value_name = "APP")]
    pub(crate) confirm: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum PsCommand {
    /// List the app's processes and how many of each type run
    List,
    /// Set how many processes of each type run
    Scale {
        #[arg(required = true, value_name = "TYPE=N")]
        counts: Vec<String>,
    },
    /// Replace the app's processes with fresh ones, without dropping a request
    Restart {
        /// Only processes of this type, such as web [default: all]
        #[arg(value_name = "TYPE")]
        process_type: Option<String>,
    },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum HealthchecksCommand {
    /// List the health checks of each process type
    List,
    /// Set a health check: `web readiness httpGet /health`, or `worker liveness exec -- CMD`
    Set(HealthcheckSetArgs),
    /// Remove a process type's health check, or both of them
    Unset {
        /// Such as web
        #[arg(value_name = "TYPE")]
        process_type: String,
        /// Only this check [default: both]
        kind: Option<ProbeKind>,
    },
}

/// Which health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProbeKind {
    /// Restarts a process that fails it
    Liveness,
    /// Keeps traffic, and a rollout, from a process until it passes
    Readiness,
}

/// How a health check checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckKind {
    /// An HTTP GET of PATH, healthy on a 2xx or 3xx answer
    #[value(name = "httpGet", alias = "httpget")]
    HttpGet,
    /// A command run in the process's container, healthy when it exits 0
    Exec,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct HealthcheckSetArgs {
    /// Such as web
    #[arg(value_name = "TYPE")]
    pub(crate) process_type: String,
    pub(crate) kind: ProbeKind,
    pub(crate) check: CheckKind,
    /// httpGet: the PATH, such as /health; exec: the command (put `--` before one with options)
    #[arg(required = true, value_name = "PATH|COMMAND")]
    pub(crate) target: Vec<String>,
    /// httpGet: the port [default: $PORT, which only web processes have]
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Seconds between checks [default: 10]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) period: Option<u32>,
    /// Seconds a check may take [default: 1]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u32>,
    /// Failed checks in a row before the process counts as unhealthy [default: 3]
    #[arg(long, value_name = "N")]
    pub(crate) failure_threshold: Option<u32>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum LimitsCommand {
    /// List the limits of each process type
    List,
    /// Set what each process of a type may use; a limit not given stays as it is
    #[command(group(ArgGroup::new("limit").required(true).multiple(true).args(["memory", "cpu"])))]
    Set {
        /// Such as web
        #[arg(value_name = "TYPE")]
        process_type: String,
        /// Memory, such as 512M or 1G
        #[arg(long)]
        memory: Option<String>,
        /// CPU, in millicores such as 500m or in cores such as 2
        #[arg(long)]
        cpu: Option<String>,
    },
    /// Remove a process type's limits [default: both]
    Unset {
        /// Such as web
        #[arg(value_name = "TYPE")]
        process_type: String,
        /// Only the memory limit
        #[arg(long)]
        memory: bool,
        /// Only the CPU limit
        #[arg(long)]
        cpu: bool,
    },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum AutoscaleCommand {
    /// List each autoscaled process type's bounds and target
    List,
    /// Autoscale a process type between --min and --max processes on its CPU use (it needs
    /// a CPU limit); while set, it decides the type's count instead of ps:scale
    Set {
        /// Such as web
        #[arg(value_name = "TYPE")]
        process_type: String,
        #[arg(long, value_name = "N")]
        min: u32,
        #[arg(long, value_name = "N")]
        max: u32,
        /// The CPU use to aim at, in percent of the CPU limit
        #[arg(long, value_name = "PERCENT")]
        cpu_percent: u32,
    },
    /// Stop autoscaling a process type: ps:scale decides its count again
    Unset {
        /// Such as web
        #[arg(value_name = "TYPE")]
        process_type: String,
    },
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct LogsArgs {
    /// How many past lines to show (at most 1500)
    #[arg(short = 'n', long = "num", value_name = "N", default_value_t = 100)]
    pub(crate) lines: usize,
    /// Keep showing new lines as they are written
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Only this source: a process type (web), a process (web.1), router or release
    #[arg(short, long = "process", visible_alias = "ps", value_name = "SOURCE")]
    pub(crate) process: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub(crate) struct RunArgs {
    /// A command line for the app's shell ('rake db:migrate'), or a program and its
    /// arguments after -- (-- python3 -c 'print(1)')
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum PermsCommand {
    /// List the app's collaborators
    List,
    /// Let a user push to and manage the app
    Add { username: String },
    /// Remove a collaborator
    Remove { username: String },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum StackCommand {
    /// Build the next pushes from the app's Dockerfile (container: the one heroku.yml's
    /// build.docker names, else ./Dockerfile) or with buildpacks (buildpacks)
    Set { stack: String },
    /// Show how the app is built
    Info,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum MaintenanceCommand {
    /// Answer every request with a 503 maintenance page; processes keep running
    On,
    /// Serve the app again
    Off,
    /// Show whether maintenance mode is on
    Info,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum RoutingCommand {
    /// Route requests to the app again
    Enable,
    /// Stop routing requests to the app; its processes keep running
    Disable,
    /// Show whether the app is routed
    Info,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum WhitelistCommand {
    /// List the address ranges allowed in
    List,
    /// Allow only these ranges (and those already listed) in
    Add {
        /// Such as 10.0.0.0/8 or 203.0.113.7; several separated by commas
        #[arg(value_name = "CIDR[,CIDR...]")]
        ranges: String,
    },
    /// Take ranges off the list; an empty list lets everyone in
    Remove {
        #[arg(value_name = "CIDR[,CIDR...]")]
        ranges: String,
    },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum TlsCommand {
    /// Redirect plain HTTP requests to HTTPS
    Enable {
        /// Also send Strict-Transport-Security, so browsers use HTTPS only for a year
        #[arg(long)]
        hsts: bool,
    },
    /// Serve plain HTTP again (and stop sending HSTS)
    Disable,
    /// Show HTTPS only, HSTS and the certificate each host gets
    Info,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum CertsCommand {
    /// List the app's certificates
    List,
    /// Upload a certificate chain and its key; it is served for the domains it covers
    Add {
        /// 1-63 lowercase letters, digits and dashes
        name: String,
        /// PEM file: the certificate, then its intermediates
        #[arg(value_name = "CERT_FILE")]
        certificate: PathBuf,
        /// PEM file: the private key
        #[arg(value_name = "KEY_FILE")]
        key: PathBuf,
    },
    /// Show a certificate
    Info { name: String },
    /// Remove a certificate; its domains get the automatic one
    Remove { name: String },
    /// Serve a certificate for one of the app's domains
    Attach { name: String, domain: String },
    /// Stop serving a certificate for a domain
    Detach { name: String, domain: String },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum DomainsCommand {
    /// List the app's custom domains
    List,
    /// Add a domain to the app: it routes once `domains:verify` finds its TXT record
    Add { domain: String },
    /// Check a pending domain's TXT record and, when it holds the token, route the domain
    Verify { domain: String },
    /// Stop routing a domain to the app
    Remove { domain: String },
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum BuildsCommand {
    /// List the app's builds, newest first
    List(LimitArgs),
    /// Show a build
    Info { id: String },
    /// Empty the app's build cache, so the next push installs everything afresh
    PurgeCache,
    /// Deploy an image built elsewhere, with the Procfile naming its process types
    Create {
        /// The image: host/repository:tag from a registry, or sha256:… of an image this app built
        image: String,
        /// The Procfile to run the image with
        #[arg(long, default_value = "Procfile")]
        procfile: PathBuf,
    },
}

/// What to do, with the defaults (`apps` is `apps list`) and the aliases (`create` is
/// `apps create`) resolved, so that every spelling of a command is one action.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Register(AccountArgs),
    Login(AccountArgs),
    Logout,
    Whoami,
    Platform {
        url: Option<String>,
    },
    KeysList,
    KeysAdd {
        path: Option<PathBuf>,
        deploy_key: Option<PathBuf>,
    },
    KeysRemove {
        key: String,
    },
    TokensList,
    TokensCreate {
        description: String,
        expires_in: Option<String>,
        scope: Option<String>,
    },
    TokensRevoke {
        id: String,
    },
    AppsList,
    AppsCreate(CreateArgs),
    AppsInfo,
    AppsDestroy(DestroyArgs),
    ConfigList {
        shell: bool,
    },
    ConfigGet {
        key: String,
    },
    ConfigSet {
        pairs: Vec<String>,
    },
    ConfigUnset {
        keys: Vec<String>,
    },
    ConfigPull {
        file: PathBuf,
        overwrite: bool,
    },
    ConfigPush {
        file: PathBuf,
    },
    ReleasesList {
        limit: Option<u32>,
    },
    ReleasesInfo {
        version: String,
    },
    Rollback {
        version: Option<String>,
        confirm: Option<String>,
    },
    Rebase,
    Events {
        all: bool,
        pipeline: Option<String>,
        limit: Option<u32>,
    },
    CiList {
        limit: Option<u32>,
    },
    CiInfo {
        number: String,
    },
    CiRun {
        build: Option<String>,
    },
    Pipelines(PipelinesCommand),
    Promotions(PromotionsCommand),
    PsList,
    PsScale {
        counts: Vec<String>,
    },
    PsRestart {
        process_type: Option<String>,
    },
    HealthchecksList,
    HealthchecksSet(HealthcheckSetArgs),
    HealthchecksUnset {
        process_type: String,
        kind: Option<ProbeKind>,
    },
    LimitsList,
    LimitsSet {
        process_type: String,
        memory: Option<String>,
        cpu: Option<String>,
    },
    LimitsUnset {
        process_type: String,
        memory: bool,
        cpu: bool,
    },
    AutoscaleList,
    AutoscaleSet {
        process_type: String,
        min: u32,
        max: u32,
        cpu_percent: u32,
    },
    AutoscaleUnset {
        process_type: String,
    },
    Logs(LogsArgs),
    Run {
        command: String,
    },
    PermsList,
    PermsAdd {
        username: String,
    },
    PermsRemove {
        username: String,
    },
    DomainsList,
    DomainsAdd {
        domain: String,
    },
    DomainsVerify {
        domain: String,
    },
    DomainsRemove {
        domain: String,
    },
    StackSet {
        stack: String,
    },
    StackInfo,
    MaintenanceSet {
        on: bool,
    },
    MaintenanceInfo,
    RoutingSet {
        enabled: bool,
    },
    RoutingInfo,
    WhitelistList,
    WhitelistAdd {
        ranges: String,
    },
    WhitelistRemove {
        ranges: String,
    },
    TlsEnable {
        hsts: bool,
    },
    TlsDisable,
    TlsInfo,
    CertsList,
    CertsAdd {
        name: String,
        certificate: PathBuf,
        key: PathBuf,
    },
    CertsInfo {
        name: String,
    },
    CertsRemove {
        name: String,
    },
    CertsAttach {
        name: String,
        domain: String,
    },
    CertsDetach {
        name: String,
        domain: String,
    },
    BuildsList {
        limit: Option<u32>,
    },
    BuildsInfo {
        id: String,
    },
    BuildsPurgeCache,
    BuildsCreate {
        image: String,
        procfile: PathBuf,
    },
}

impl Command {
    pub(crate) fn action(self) -> Action {
        match self {
            Command::Register(args) => Action::Register(args),
            Command::Login(args) => Action::Login(args),
            Command::Logout => Action::Logout,
            Command::Whoami => Action::Whoami,
            Command::Platform { url } => Action::Platform { url },
            Command::Keys { command } => match command.unwrap_or(KeysCommand::List) {
                KeysCommand::List => Action::KeysList,
                KeysCommand::Add { path, deploy_key } => Action::KeysAdd { path, deploy_key },
                KeysCommand::Remove { key } => Action::KeysRemove { key },
            },
            Command::Tokens { command } => match command.unwrap_or(TokensCommand::List) {
                TokensCommand::List => Action::TokensList,
                TokensCommand::Create {
                    description,
                    expires_in,
                    scope,
                } => Action::TokensCreate {
                    description,
                    expires_in,
                    scope,
                },
                TokensCommand::Revoke { id } => Action::TokensRevoke { id },
            },
            Command::Apps { command } => match command.unwrap_or(AppsCommand::List) {
                AppsCommand::List => Action::AppsList,
                AppsCommand::Create(args) => Action::AppsCreate(args),
                AppsCommand::Info => Action::AppsInfo,
                AppsCommand::Destroy(args) => Action::AppsDestroy(args),
            },
            Command::Create(args) => Action::AppsCreate(args),
            Command::Info => Action::AppsInfo,
            Command::Destroy(args) => Action::AppsDestroy(args),
            Command::Config { command, list } => match command.unwrap_or(ConfigCommand::List(list))
            {
                ConfigCommand::List(args) => Action::ConfigList { shell: args.shell },
                ConfigCommand::Get { key } => Action::ConfigGet { key },
                ConfigCommand::Set { pairs } => Action::ConfigSet { pairs },
                ConfigCommand::Unset { keys } => Action::ConfigUnset { keys },
                ConfigCommand::Pull { file, overwrite } => Action::ConfigPull { file, overwrite },
                ConfigCommand::Push { file } => Action::ConfigPush { file },
            },
            Command::Releases { command, list } => {
                match command.unwrap_or(ReleasesCommand::List(list)) {
                    ReleasesCommand::List(args) => Action::ReleasesList { limit: args.limit },
                    ReleasesCommand::Info { version } => Action::ReleasesInfo { version },
                    ReleasesCommand::Rollback(args) => Action::Rollback {
                        version: args.version,
                        confirm: args.confirm,
                    },
                }
            }
            Command::Rollback(args) => Action::Rollback {
                version: args.version,
                confirm: args.confirm,
            },
            Command::Rebase => Action::Rebase,
            Command::Events(args) => Action::Events {
                all: args.all,
                pipeline: args.pipeline,
                limit: args.limit,
            },
            Command::Ci { command, list } => match command.unwrap_or(CiCommand::List(list)) {
                CiCommand::List(args) => Action::CiList { limit: args.limit },
                CiCommand::Info { number } => Action::CiInfo { number },
                CiCommand::Run { build } => Action::CiRun { build },
            },
            Command::Pipelines { command } => {
                Action::Pipelines(command.unwrap_or(PipelinesCommand::List))
            }
            Command::Promotions { command, list } => {
                Action::Promotions(command.unwrap_or(PromotionsCommand::List(list)))
            }
            Command::Ps { command } => match command.unwrap_or(PsCommand::List) {
                PsCommand::List => Action::PsList,
                PsCommand::Scale { counts } => Action::PsScale { counts },
                PsCommand::Restart { process_type } => Action::PsRestart { process_type },
            },
            Command::Healthchecks { command } => {
                match command.unwrap_or(HealthchecksCommand::List) {
                    HealthchecksCommand::List => Action::HealthchecksList,
                    HealthchecksCommand::Set(args) => Action::HealthchecksSet(args),
                    HealthchecksCommand::Unset { process_type, kind } => {
                        Action::HealthchecksUnset { process_type, kind }
                    }
                }
            }
            Command::Limits { command } => match command.unwrap_or(LimitsCommand::List) {
                LimitsCommand::List => Action::LimitsList,
                LimitsCommand::Set {
                    process_type,
                    memory,
                    cpu,
                } => Action::LimitsSet {
                    process_type,
                    memory,
                    cpu,
                },
                LimitsCommand::Unset {
                    process_type,
                    memory,
                    cpu,
                } => Action::LimitsUnset {
                    process_type,
                    memory,
                    cpu,
                },
            },
            Command::Autoscale { command } => match command.unwrap_or(AutoscaleCommand::List) {
                AutoscaleCommand::List => Action::AutoscaleList,
                AutoscaleCommand::Set {
                    process_type,
                    min,
                    max,
                    cpu_percent,
                } => Action::AutoscaleSet {
                    process_type,
                    min,
                    max,
                    cpu_percent,
                },
                AutoscaleCommand::Unset { process_type } => Action::AutoscaleUnset { process_type },
            },
            Command::Logs(args) => Action::Logs(args),
            // One argument is a command line for the app's shell; several are a program and
            // its arguments, each passed exactly as given.
            Command::Run(args) => Action::Run {
                command: match args.command.as_slice() {
                    [line] => line.clone(),
                    words => words
                        .iter()
                        .map(|w| crate::output::shell_quote(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                },
            },
            Command::Perms { command } => match command.unwrap_or(PermsCommand::List) {
                PermsCommand::List => Action::PermsList,
                PermsCommand::Add { username } => Action::PermsAdd { username },
                PermsCommand::Remove { username } => Action::PermsRemove { username },
            },
            Command::Domains { command } => match command.unwrap_or(DomainsCommand::List) {
                DomainsCommand::List => Action::DomainsList,
                DomainsCommand::Add { domain } => Action::DomainsAdd { domain },
                DomainsCommand::Verify { domain } => Action::DomainsVerify { domain },
                DomainsCommand::Remove { domain } => Action::DomainsRemove { domain },
            },
            Command::Stack { command } => match command.unwrap_or(StackCommand::Info) {
                StackCommand::Set { stack } => Action::StackSet { stack },
                StackCommand::Info => Action::StackInfo,
            },
            Command::Maintenance { command } => match command.unwrap_or(MaintenanceCommand::Info) {
                MaintenanceCommand::On => Action::MaintenanceSet { on: true },
                MaintenanceCommand::Off => Action::MaintenanceSet { on: false },
                MaintenanceCommand::Info => Action::MaintenanceInfo,
            },
            Command::Routing { command } => match command.unwrap_or(RoutingCommand::Info) {
                RoutingCommand::Enable => Action::RoutingSet { enabled: true },
                RoutingCommand::Disable => Action::RoutingSet { enabled: false },
                RoutingCommand::Info => Action::RoutingInfo,
            },
            Command::Whitelist { command } => match command.unwrap_or(WhitelistCommand::List) {
                WhitelistCommand::List => Action::WhitelistList,
                WhitelistCommand::Add { ranges } => Action::WhitelistAdd { ranges },
                WhitelistCommand::Remove { ranges } => Action::WhitelistRemove { ranges },
            },
            Command::Tls { command } => match command.unwrap_or(TlsCommand::Info) {
                TlsCommand::Enable { hsts } => Action::TlsEnable { hsts },
                TlsCommand::Disable => Action::TlsDisable,
                TlsCommand::Info => Action::TlsInfo,
            },
            Command::Certs { command } => match command.unwrap_or(CertsCommand::List) {
                CertsCommand::List => Action::CertsList,
                CertsCommand::Add {
                    name,
                    certificate,
                    key,
                } => Action::CertsAdd {
                    name,
                    certificate,
                    key,
                },
                CertsCommand::Info { name } => Action::CertsInfo { name },
                CertsCommand::Remove { name } => Action::CertsRemove { name },
                CertsCommand::Attach { name, domain } => Action::CertsAttach { name, domain },
                CertsCommand::Detach { name, domain } => Action::CertsDetach { name, domain },
            },
            Command::Builds { command, list } => match command.unwrap_or(BuildsCommand::List(list))
            {
                BuildsCommand::List(args) => Action::BuildsList { limit: args.limit },
                BuildsCommand::Info { id } => Action::BuildsInfo { id },
                BuildsCommand::PurgeCache => Action::BuildsPurgeCache,
                BuildsCommand::Create { image, procfile } => {
                    Action::BuildsCreate { image, procfile }
                }
            },
        }
    }
}

/// Parses the process's arguments, after [`normalise`].
pub(crate) fn parse() -> Cli {
    Cli::parse_from(normalise(std::env::args_os()))
}

/// Splits `group:verb` into `group verb` where the command goes (the first word that is not
/// an option), so both spellings reach the same nested subcommand. `help config:set` is
/// split too.
pub(crate) fn normalise(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut split_next = true;
    let mut takes_value = false;
    for arg in args.by_ref() {
        if takes_value {
            takes_value = false;
            out.push(arg);
            continue;
        }
        let text = arg.to_str();
        match text {
            Some("--") => {
                out.push(arg);
                break;
            }
            Some("-a" | "--app") => {
                takes_value = true;
                out.push(arg);
                continue;
            }
            Some(text) if text.starts_with('-') => {
                out.push(arg);
                continue;
            }
            _ => {}
        }
        match text.and_then(split_command) {
            Some((group, verb)) => {
                out.push(group.into());
                out.push(verb.into());
            }
            None => out.push(arg.clone()),
        }
        if !(split_next && text == Some("help")) {
            break;
        }
        split_next = false;
    }
    out.extend(args);
    out
}

/// `config:set` → `("config", "set")`; anything that is not two words of letters and
/// dashes around one colon is left alone.
fn split_command(text: &str) -> Option<(&str, &str)> {
    let (group, verb) = text.split_once(':')?;
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    (word(group) && word(verb)).then_some((group, verb))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use expect_test::{Expect, expect};

    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    fn parse(line: &str) -> Cli {
        match Cli::try_parse_from(normalise(argv(line))) {
            Ok(cli) => cli,
            Err(e) => panic!("`{line}` does not parse: {e}"),
        }
    }

    /// The globals and the action of a command line.
    fn action(line: &str) -> (Option<String>, bool, Action) {
        let cli = parse(line);
        (cli.app, cli.json, cli.command.action())
    }

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn normalise_splits_the_command_word_only() {
        fn check(line: &str, expect: Expect) {
            let out = normalise(argv(line));
            let out: Vec<_> = out.iter().map(|a| a.to_string_lossy()).collect();
            expect.assert_eq(&out.join(" "));
        }
        check("slip config:set A=1", expect!["slip config set A=1"]);
        check("slip config set A=1", expect!["slip config set A=1"]);
        check(
            "slip -a demo config:set A=b:c",
            expect!["slip -a demo config set A=b:c"],
        );
        check(
            "slip --app demo ps:scale web=2",
            expect!["slip --app demo ps scale web=2"],
        );
        check(
            "slip --app=demo --json releases:info v3",
            expect!["slip --app=demo --json releases info v3"],
        );
        check("slip --json apps", expect!["slip --json apps"]);
        check(
            "slip -a config:set apps:list",
            expect!["slip -a config:set apps list"],
        );
        check("slip help config:set", expect!["slip help config set"]);
        check(
            "slip register http://127.0.0.1:7100 --username ada",
            expect!["slip register http://127.0.0.1:7100 --username ada"],
        );
        check(
            "slip keys:remove ada:laptop",
            expect!["slip keys remove ada:laptop"],
        );
        check("slip https://x:1", expect!["slip https://x:1"]);
        check("slip -- config:set", expect!["slip -- config:set"]);
    }

    #[test]
    fn colon_space_and_alias_forms_parse_the_same() {
        let same = [
            ("slip config:set A=1 B=2", "slip config set A=1 B=2"),
            ("slip config", "slip config:list"),
            ("slip apps", "slip apps:list"),
            ("slip create demo", "slip apps:create demo"),
            ("slip info -a demo", "slip apps:info --app demo"),
            (
                "slip destroy --confirm demo",
                "slip apps destroy --confirm demo",
            ),
            ("slip rollback", "slip releases:rollback"),
            ("slip keys", "slip keys:list"),
            ("slip tokens", "slip tokens:list"),
            ("slip tokens:revoke 1a2b", "slip tokens revoke 1a2b"),
            ("slip perms", "slip perms:list"),
            ("slip domains", "slip domains:list"),
            ("slip ps", "slip ps:list"),
            ("slip config --shell", "slip config list --shell"),
            ("slip config:unset A", "slip config unset A"),
            (
                "slip config:pull --overwrite",
                "slip config pull --file .env --overwrite",
            ),
            ("slip apps:info -a demo", "slip -a demo apps info"),
            (
                "slip apps:create demo --no-remote",
                "slip apps create demo --no-remote",
            ),
            ("slip keys:add", "slip keys add"),
            (
                "slip releases:info v3 --json",
                "slip --json releases info v3",
            ),
            ("slip releases -n 5", "slip releases:list --num 5"),
            ("slip releases:rollback v2", "slip releases rollback v2"),
            (
                "slip ps:scale web=2 worker=1",
                "slip ps scale web=2 worker=1",
            ),
            ("slip perms:add bob", "slip perms add bob"),
            (
                "slip domains:remove example.com",
                "slip domains remove example.com",
            ),
            (
                "slip domains:verify example.com",
                "slip domains verify example.com",
            ),
            ("slip builds:info 1", "slip builds info 1"),
            ("slip builds", "slip builds:list"),
            (
                "slip builds:create registry/x:1",
                "slip builds create registry/x:1 --procfile Procfile",
            ),
            ("slip maintenance", "slip maintenance:info"),
            ("slip routing", "slip routing:info"),
            ("slip whitelist", "slip whitelist:list"),
            ("slip tls", "slip tls:info"),
            ("slip certs", "slip certs:list"),
            (
                "slip tls:enable --hsts -a demo",
                "slip -a demo tls enable --hsts",
            ),
            (
                "slip whitelist:add 10.0.0.0/8,192.0.2.1",
                "slip whitelist add 10.0.0.0/8,192.0.2.1",
            ),
            (
                "slip certs:add www cert.pem key.pem",
                "slip certs add www cert.pem key.pem",
            ),
            (
                "slip certs:attach www www.example.com",
                "slip certs attach www www.example.com",
            ),
            ("slip healthchecks", "slip healthchecks:list"),
            ("slip limits", "slip limits:list"),
            ("slip autoscale", "slip autoscale:list"),
            (
                "slip healthchecks:set web readiness httpGet /health --port 8080",
                "slip healthchecks set web readiness httpget /health --port 8080",
            ),
            (
                "slip healthchecks:unset web liveness -a demo",
                "slip -a demo healthchecks unset web liveness",
            ),
            (
                "slip limits:set web --memory 512M --cpu 500m",
                "slip limits set web --cpu 500m --memory 512M",
            ),
            (
                "slip autoscale:set web --min 2 --max 10 --cpu-percent 70",
                "slip autoscale set web --cpu-percent 70 --max 10 --min 2",
            ),
        ];
        for (a, b) in same {
            assert_eq!(action(a), action(b), "`{a}` and `{b}` differ");
        }
    }

    #[test]
    fn defaults_and_aliases_resolve_to_the_actions_they_stand_for() {
        fn check(line: &str, expect: Expect) {
            expect.assert_eq(&format!("{:?}", action(line).2));
        }
        check("slip apps", expect!["AppsList"]);
        check("slip keys", expect!["KeysList"]);
        check("slip perms", expect!["PermsList"]);
        check("slip domains", expect!["DomainsList"]);
        check("slip ps", expect!["PsList"]);
        check("slip builds -n 2", expect!["BuildsList { limit: Some(2) }"]);
        check("slip config", expect!["ConfigList { shell: false }"]);
        check("slip config --shell", expect!["ConfigList { shell: true }"]);
        check("slip releases", expect!["ReleasesList { limit: None }"]);
        check(
            "slip create demo",
            expect![[r#"AppsCreate(CreateArgs { name: Some("demo"), no_remote: false })"#]],
        );
        check(
            "slip create",
            expect!["AppsCreate(CreateArgs { name: None, no_remote: false })"],
        );
        check(
            "slip tokens:create --description CI --expires-in 30d -a demo --scope read",
            expect![[
                r#"TokensCreate { description: "CI", expires_in: Some("30d"), scope: Some("read") }"#
            ]],
        );
        check(
            "slip keys:add --app demo --deploy-key ci.pub",
            expect![[r#"KeysAdd { path: None, deploy_key: Some("ci.pub") }"#]],
        );
        check(
            "slip destroy --confirm demo",
            expect![[r#"AppsDestroy(DestroyArgs { confirm: Some("demo") })"#]],
        );
        check("slip info", expect!["AppsInfo"]);
        check(
            "slip rollback",
            expect!["Rollback { version: None, confirm: None }"],
        );
        check(
            "slip rollback v2 --confirm demo",
            expect![[r#"Rollback { version: Some("v2"), confirm: Some("demo") }"#]],
        );
        check("slip rebase -a demo", expect!["Rebase"]);
        check(
            "slip events -n 5",
            expect!["Events { all: false, pipeline: None, limit: Some(5) }"],
        );
        check(
            "slip events --all",
            expect!["Events { all: true, pipeline: None, limit: None }"],
        );
        check(
            "slip events --pipeline demo",
            expect![[r#"Events { all: false, pipeline: Some("demo"), limit: None }"#]],
        );
        check("slip pipelines", expect!["Pipelines(List)"]);
        check(
            "slip pipelines:add demo -a demo-staging --stage staging",
            expect![[r#"Pipelines(Add { pipeline: "demo", stage: "staging" })"#]],
        );
        check(
            "slip pipelines:auto-promote staging --off",
            expect![[
                r#"Pipelines(AutoPromote(StageGateArgs { stage: "staging", pipeline: None, off: true }))"#
            ]],
        );
        check(
            "slip pipelines:promote -a demo-staging --to demo --to demo-eu",
            expect![[r#"Pipelines(Promote { to: ["demo", "demo-eu"] })"#]],
        );
        check(
            "slip promotions",
            expect!["Promotions(List(PromotionsListArgs { pipeline: None }))"],
        );
        check(
            "slip promotions -p demo",
            expect![[r#"Promotions(List(PromotionsListArgs { pipeline: Some("demo") }))"#]],
        );
        check(
            "slip promotions:approve 3",
            expect!["Promotions(Approve { number: 3 })"],
        );
        check("slip ci", expect!["CiList { limit: None }"]);
        check("slip ci -n 3 -a demo", expect!["CiList { limit: Some(3) }"]);
        check("slip ci:info 4", expect![[r#"CiInfo { number: "4" }"#]]);
        check("slip ci:run", expect!["CiRun { build: None }"]);
        check(
            "slip ci:run --build 0190a0a0-0000-7000-8000-000000000000",
            expect![[r#"CiRun { build: Some("0190a0a0-0000-7000-8000-000000000000") }"#]],
        );
        check(
            "slip releases:rollback v2",
            expect![[r#"Rollback { version: Some("v2"), confirm: None }"#]],
        );
        check(
            "slip config:pull",
            expect![[r#"ConfigPull { file: ".env", overwrite: false }"#]],
        );
        check("slip platform", expect!["Platform { url: None }"]);
        check("slip healthchecks", expect!["HealthchecksList"]);
        check("slip limits", expect!["LimitsList"]);
        check(
            "slip maintenance:on",
            expect!["MaintenanceSet { on: true }"],
        );
        check("slip maintenance", expect!["MaintenanceInfo"]);
        check(
            "slip stack:set container",
            expect![[r#"StackSet { stack: "container" }"#]],
        );
        check("slip stack", expect!["StackInfo"]);
        check(
            "slip routing:disable",
            expect!["RoutingSet { enabled: false }"],
        );
        check("slip tls:enable", expect!["TlsEnable { hsts: false }"]);
        check("slip tls", expect!["TlsInfo"]);
        check("slip whitelist", expect!["WhitelistList"]);
        check(
            "slip whitelist:remove 10.0.0.0/8",
            expect![[r#"WhitelistRemove { ranges: "10.0.0.0/8" }"#]],
        );
        check("slip certs", expect!["CertsList"]);
        check(
            "slip certs:detach www www.example.com",
            expect![[r#"CertsDetach { name: "www", domain: "www.example.com" }"#]],
        );
        check("slip autoscale", expect!["AutoscaleList"]);
        check(
            "slip healthchecks:set worker liveness exec -- test -f /tmp/ok --period 5",
            expect![[
                r#"HealthchecksSet(HealthcheckSetArgs { process_type: "worker", kind: Liveness, check: Exec, target: ["test", "-f", "/tmp/ok", "--period", "5"], port: None, period: None, timeout: None, failure_threshold: None })"#
            ]],
        );
        check(
            "slip healthchecks:set web readiness httpGet /up --period 5 --timeout 2 --failure-threshold 4",
            expect![[
                r#"HealthchecksSet(HealthcheckSetArgs { process_type: "web", kind: Readiness, check: HttpGet, target: ["/up"], port: None, period: Some(5), timeout: Some(2), failure_threshold: Some(4) })"#
            ]],
        );
        check(
            "slip healthchecks:unset web",
            expect![[r#"HealthchecksUnset { process_type: "web", kind: None }"#]],
        );
        check(
            "slip limits:unset web --cpu",
            expect![[r#"LimitsUnset { process_type: "web", memory: false, cpu: true }"#]],
        );
        check(
            "slip autoscale:unset web",
            expect![[r#"AutoscaleUnset { process_type: "web" }"#]],
        );
    }

    #[test]
    fn settings_commands_refuse_what_they_cannot_mean() {
        for line in [
            "slip limits:set web",
            "slip autoscale:set web --min 2 --max 10",
            "slip healthchecks:set web startup exec true",
            "slip healthchecks:set web liveness tcp 80",
            "slip healthchecks:set web liveness httpGet",
            "slip healthchecks:set web liveness exec test -f /tmp/ok",
        ] {
            let result = Cli::try_parse_from(normalise(argv(line)));
            assert!(result.is_err(), "`{line}` parsed: {result:?}");
        }
    }

    #[test]
    fn global_flags_work_before_and_after_the_command() {
        let cli = parse("slip config:get A -a demo --json");
        assert_eq!((cli.app.as_deref(), cli.json), (Some("demo"), true));
        let cli = parse("slip -a demo ps");
        assert_eq!((cli.app.as_deref(), cli.json), (Some("demo"), false));
    }

    #[test]
    fn subcommands_and_list_flags_do_not_mix() {
        let result = Cli::try_parse_from(normalise(argv("slip config --shell set A=1")));
        assert!(result.is_err(), "{result:?}");
        let result = Cli::try_parse_from(normalise(argv("slip config:set")));
        assert!(
            result.is_err(),
            "config:set without pairs parsed: {result:?}"
        );
    }
}
