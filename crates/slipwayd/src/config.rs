//! The command line and the typed configuration it resolves to, read once at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "slipwayd",
    version,
    about = "The Slipway server: a Git-push PaaS on one machine or on Kubernetes"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SLIPWAY_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the whole platform in this process: the API, the SSH gateway and the release
    /// manager (with the apps and the router).
    Up(Box<UpArgs>),
    /// Run the REST API alone, against the store the others use (any number of replicas).
    Api(Box<UpArgs>),
    /// Run the SSH gateway and its builds alone (any number of replicas on one machine share
    /// the data directory's repositories).
    Gateway(Box<UpArgs>),
    /// Run a release manager alone. With the local runtime one of them runs the apps and
    /// serves the router; others stand by and take over when its lease lapses.
    Releaser(Box<UpArgs>),
    /// Apply database migrations, then exit.
    Migrate(DatabaseArgs),
    /// Print the platform CA's certificate (PEM), which signs the router's certificates for
    /// app hosts that have none of their own: trust it in a browser, or with
    /// `curl --cacert`. Made on first use.
    Ca(DatabaseArgs),
    /// Make the run image apps are built on, from Debian packages.
    #[command(name = "run-image")]
    RunImage(RunImageArgs),
    /// Rebase apps onto the current run image without a build (after `run-image` made a new
    /// one): each app's image gets the run image's new layers and keeps its own, in a new
    /// release. A release manager with the image store does it; this queues it and reports
    /// each app.
    Rebase(Box<RebaseArgs>),
    /// Run a git hook of a push (git runs this; people do not).
    #[command(hide = true)]
    Hook {
        /// The hook's name; `pre-receive` is the only one.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DatabaseArgs {
    /// Where Slipway keeps its state: the SQLite file, repositories, build cache, images, logs, host key.
    #[arg(long, env = "SLIPWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The database: sqlite://PATH (default: slipway.db in the data directory) or postgres://…
    #[arg(long, env = "SLIPWAY_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunImageArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// The run image's name; `slipwayd up --run-image NAME` builds apps on it.
    #[arg(long, default_value = "base")]
    pub(crate) name: String,
    /// A Debian package to put in it (repeatable). Dependencies are not followed: name them.
    #[arg(long = "package", default_value = "busybox-static")]
    pub(crate) packages: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RebaseArgs {
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// Every app: those on the current run image already, and those whose image cannot be
    /// rebased (built from a Dockerfile, or on no run image), are reported and left as they are.
    #[arg(long)]
    pub(crate) all: bool,
    /// The apps to rebase, instead of --all.
    pub(crate) apps: Vec<String>,
    /// The user the new releases are made as, as the audit trail records them.
    #[arg(long = "as", value_name = "USER")]
    pub(crate) as_user: String,
    /// How long to wait for a release manager to do each app's rebase, in seconds.
    #[arg(long, default_value_t = 600)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address of the REST API and dashboard.
    #[arg(long, env = "SLIPWAY_API_LISTEN", default_value = "127.0.0.1:7100")]
    api_listen: SocketAddr,
    /// Address of the SSH gateway that receives `git push`.
    #[arg(long, env = "SLIPWAY_SSH_LISTEN", default_value = "127.0.0.1:2222")]
    ssh_listen: SocketAddr,
    /// Address of the HTTP router that serves the apps.
    #[arg(long, env = "SLIPWAY_ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
    router_listen: SocketAddr,
    /// Address the router serves the apps over HTTPS (HTTP/2 and HTTP/1.1), with each host's
    /// certificate: uploaded, from ACME, or signed by the platform CA (`slipwayd ca`).
    #[arg(long, env = "SLIPWAY_HTTPS_LISTEN", default_value = "127.0.0.1:8443")]
    https_listen: SocketAddr,
    /// Get every app host's and custom domain's certificate from this ACME server
    /// (its directory URL, such as Let's Encrypt's), answering HTTP-01 challenges on the
    /// router's HTTP port; renewed 30 days before expiry.
    #[arg(long, env = "SLIPWAY_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// The contact email of the ACME account (expiry notices go there).
    #[arg(long, env = "SLIPWAY_ACME_EMAIL")]
    acme_email: Option<String>,
    /// A PEM file of a CA to trust for the ACME server's own HTTPS (a private or test ACME
    /// server); the system's roots otherwise.
    #[arg(long, env = "SLIPWAY_ACME_CA_FILE")]
    acme_ca_file: Option<PathBuf>,
    /// A proxy or load balancer in front of the router (an address or CIDR; repeatable):
    /// the client address, scheme and port it forwards in X-Forwarded-For, -Proto and -Port
    /// are believed. Everyone else's are replaced.
    #[arg(
        long = "trusted-proxy",
        env = "SLIPWAY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Requests under way to one app at most; past it the router answers 503 at once.
    #[arg(long, env = "SLIPWAY_MAX_REQUESTS_PER_APP", default_value_t = router::MAX_IN_FLIGHT_PER_APP)]
    max_requests_per_app: usize,
    /// Platform domain: app `demo` answers at `demo.<domain>`.
    #[arg(long, env = "SLIPWAY_DOMAIN", default_value = "localhost")]
    domain: String,
    /// How long a push waits for another push to the same app before giving up, in seconds.
    #[arg(long, env = "SLIPWAY_PUSH_LOCK_TIMEOUT", default_value_t = 600)]
    push_lock_timeout: u64,
    /// The largest push accepted, in bytes (git's pack, as sent).
    #[arg(long, env = "SLIPWAY_MAX_PUSH_BYTES", default_value_t = 1 << 30)]
    max_push_bytes: u64,
    /// The longest a build may take, in seconds.
    #[arg(long, env = "SLIPWAY_BUILD_TIMEOUT", default_value_t = 900)]
    build_timeout: u64,
    /// How builds and apps are isolated: `auto` (all the host offers — a uid per app, no
    /// capabilities, seccomp, cgroup limits, a network namespace — and the start-up output
    /// says what is missing), `required` (refuse to start unless all of it is in force),
    /// `off` (run them as slipwayd's user; development only).
    #[arg(long = "sandbox", alias = "build-sandbox", env = "SLIPWAY_SANDBOX", value_enum, default_value_t = BuildSandbox::Auto)]
    build_sandbox: BuildSandbox,
    /// Where apps run. `local`: supervised processes on this machine, behind the built-in
    /// router. `kubernetes`: a namespace per app on the cluster of the usual kubeconfig
    /// ($KUBECONFIG, ~/.kube/config, or the pod's service account), routed by its ingress
    /// controller; needs --registry.
    #[arg(long, env = "SLIPWAY_RUNTIME", value_enum, default_value_t = RuntimeKind::Local)]
    runtime: RuntimeKind,
    /// Kubernetes: the kubeconfig file to use; without it, $KUBECONFIG, ~/.kube/config, or
    /// the pod's service account.
    #[arg(long, env = "SLIPWAY_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes: a rollout that makes no progress for this long, in seconds, fails and the
    /// previous release is applied again (the Deployments' progressDeadlineSeconds).
    #[arg(long, env = "SLIPWAY_ROLLOUT_DEADLINE", default_value_t = 300)]
    rollout_deadline: u32,
    /// Kubernetes: the IngressClass of apps' Ingresses; without it, the cluster's default.
    #[arg(long, env = "SLIPWAY_INGRESS_CLASS")]
    ingress_class: Option<String>,
    /// Kubernetes: the namespace of the ingress controller, the only one besides an app's own
    /// whose pods may reach the app's.
    #[arg(
        long,
        env = "SLIPWAY_INGRESS_NAMESPACE",
        default_value = "ingress-nginx"
    )]
    ingress_namespace: String,
    /// Kubernetes: a Docker config.json with credentials for --registry, given to each app's
    /// namespace as its imagePullSecret.
    #[arg(long, env = "SLIPWAY_REGISTRY_AUTH")]
    registry_auth: Option<PathBuf>,
    /// Kubernetes: an annotation every app's Ingress carries, KEY=VALUE (repeat the flag for
    /// more), such as cert-manager.io/cluster-issuer=letsencrypt; a routing switch's own
    /// annotation wins over one given here.
    #[arg(long = "ingress-annotation", value_name = "KEY=VALUE")]
    ingress_annotations: Vec<String>,
    /// Kubernetes: give every host without a certificate of its own a tls entry too, naming a
    /// Secret `issued-<host>` for an issuer such as cert-manager to fill (see
    /// --ingress-annotation); without it, the ingress controller's default certificate
    /// serves those hosts.
    #[arg(long, env = "SLIPWAY_INGRESS_TLS_EVERY_HOST")]
    ingress_tls_every_host: bool,
    /// How long a new web process has to become healthy, in seconds, before its deploy fails.
    #[arg(long, env = "SLIPWAY_BOOT_TIMEOUT", default_value_t = 60)]
    boot_timeout: u64,
    /// How long a process has to exit after SIGTERM before it gets SIGKILL, in seconds.
    #[arg(long, env = "SLIPWAY_STOP_TIMEOUT", default_value_t = 30)]
    stop_timeout: u64,
    /// Build apps on this run image (made with `slipwayd run-image`); without one, an image
    /// holds only the app, which then runs on the host's /usr.
    #[arg(long, env = "SLIPWAY_RUN_IMAGE")]
    run_image: Option<String>,
    /// Push every image to this OCI registry too: host:port[/prefix] (plain HTTP on loopback).
    #[arg(long, env = "SLIPWAY_REGISTRY")]
    registry: Option<String>,
    /// Where the operator keeps buildpacks that apps may name in BUILDPACK_URL or project.toml
    /// (by name, such as `ruby`, or by path under it); without it, apps can use git URLs and
    /// their own buildpacks only, never a directory on the server.
    #[arg(long, env = "SLIPWAY_BUILDPACKS_DIR")]
    buildpacks_dir: Option<PathBuf>,
    /// Who may register: only the first user and then admins (`admin-only`), or anyone (`open`).
    #[arg(long, env = "SLIPWAY_REGISTRATION", value_enum, default_value_t = Registration::AdminOnly)]
    registration: Registration,
    /// How long an API token stays valid after login, in seconds (default 30 days).
    #[arg(long, env = "SLIPWAY_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    token_ttl: u64,
    /// The DNS server (IP:PORT) `domains:verify` asks for a custom domain's challenge TXT
    /// record; the system's resolvers (/etc/resolv.conf) when not given.
    #[arg(long, env = "SLIPWAY_DNS_RESOLVER")]
    dns_resolver: Option<SocketAddr>,
    /// How long a release manager's hold on the apps, and on each piece of work, lasts
    /// without being renewed, in seconds: how soon a standby takes over from one that died.
    #[arg(long, env = "SLIPWAY_LEASE", default_value_t = 10)]
    lease: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Connection limits and timeouts of the SSH gateway, the API and the router.
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Open SSH connections at most; past it new ones are refused.
    #[arg(long, env = "SLIPWAY_SSH_MAX_CONNECTIONS", default_value_t = 1000)]
    ssh_max_connections: usize,
    /// SSH connections not yet authenticated at most; past it the oldest of them is closed.
    #[arg(long, env = "SLIPWAY_SSH_MAX_STARTUPS", default_value_t = 100)]
    ssh_max_startups: usize,
    /// Open SSH connections from one address (an IPv6 /64) at most.
    #[arg(long, env = "SLIPWAY_SSH_MAX_PER_SOURCE", default_value_t = 50)]
    ssh_max_per_source: usize,
    /// SSH connections not yet authenticated from one address at most.
    #[arg(
        long,
        env = "SLIPWAY_SSH_MAX_STARTUPS_PER_SOURCE",
        default_value_t = 10
    )]
    ssh_max_startups_per_source: usize,
    /// Seconds an SSH connection has to authenticate.
    #[arg(long, env = "SLIPWAY_SSH_AUTH_TIMEOUT", default_value_t = 30)]
    ssh_auth_timeout: u64,
    /// Seconds an SSH connection may send nothing before it is closed.
    #[arg(long, env = "SLIPWAY_SSH_IDLE_TIMEOUT", default_value_t = 900)]
    ssh_idle_timeout: u64,
    /// Seconds an HTTP client (API and router) has to send a request's headers; an idle
    /// keep-alive connection is closed after as long.
    #[arg(long, env = "SLIPWAY_HTTP_HEADER_TIMEOUT", default_value_t = 30)]
    http_header_timeout: u64,
    /// Open HTTP connections from one address, to the API and to the router each, at most.
    #[arg(long, env = "SLIPWAY_HTTP_MAX_PER_SOURCE", default_value_t = 256)]
    http_max_per_source: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BuildSandbox {
    Auto,
    Required,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuntimeKind {
    Local,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Registration {
    AdminOnly,
    Open,
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: String,
}

/// Everything `slipwayd up` needs, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct UpConfig {
    pub(crate) storage: Storage,
    pub(crate) api_listen: SocketAddr,
    pub(crate) ssh_listen: SocketAddr,
    pub(crate) router_listen: SocketAddr,
    pub(crate) https_listen: SocketAddr,
    pub(crate) acme: Option<AcmeSettings>,
    pub(crate) router: router::RouterConfig,
    pub(crate) domain: String,
    pub(crate) registration_open: bool,
    pub(crate) dns_resolver: Option<SocketAddr>,
    pub(crate) push_lock_timeout: std::time::Duration,
    pub(crate) max_push_bytes: u64,
    pub(crate) build_timeout: std::time::Duration,
    pub(crate) build_sandbox: builder::SandboxMode,
    pub(crate) runtime: RuntimeKind,
    /// The Kubernetes runtime's settings for every app.
    pub(crate) kubernetes: kubernetes::Platform,
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) boot_timeout: std::time::Duration,
    pub(crate) stop_timeout: std::time::Duration,
    pub(crate) registry: Option<builder::registry::RegistryConfig>,
    pub(crate) run_image: Option<String>,
    pub(crate) buildpacks_dir: Option<PathBuf>,
    pub(crate) token_ttl: std::time::Duration,
    pub(crate) lease: std::time::Duration,
    pub(crate) ssh_limits: gateway::ConnectionLimits,
    pub(crate) http_limits: HttpLimits,
}

/// Where certificates come from when an ACME server issues them.
#[derive(Debug, Clone)]
pub(crate) struct AcmeSettings {
    pub(crate) directory: String,
    pub(crate) contact: Option<String>,
    /// PEM of a CA to trust for the ACME server's own HTTPS.
    pub(crate) extra_root_pem: Option<String>,
}

/// Limits on the HTTP servers (API and router).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    pub(crate) header_timeout: std::time::Duration,
    pub(crate) max_per_source: usize,
}

impl DatabaseArgs {
    pub(crate) fn resolve(self) -> anyhow::Result<Storage> {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => dirs::data_dir()
                .context("cannot find a data directory: set --data-dir or SLIPWAY_DATA_DIR")?
                .join("slipway"),
        };
        let database_url = match self.database_url {
            Some(url) => url,
            None => format!("sqlite://{}", data_dir.join("slipway.db").display()),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            bail!(
                "unsupported --database-url {database_url:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            );
        }
        Ok(Storage {
            data_dir,
            database_url,
        })
    }
}

impl UpArgs {
    pub(crate) fn resolve(self) -> anyhow::Result<UpConfig> {
        let domain = self.domain.trim_matches('.').to_ascii_lowercase();
        if domain.is_empty() || domain.contains(['/', ':', ' ']) {
            bail!(
                "invalid --domain {:?}: give a host name such as localhost or apps.example.com",
                self.domain
            );
        }
        let registry = self
            .registry
            .as_deref()
            .map(builder::registry::RegistryConfig::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--registry: {e}"))?;
        if self.runtime == RuntimeKind::Kubernetes && registry.is_none() {
            bail!(
                "--runtime kubernetes needs --registry HOST:PORT[/PREFIX]: builds are pushed there and the cluster pulls them by digest"
            );
        }
        if self.rollout_deadline == 0 {
            bail!("invalid --rollout-deadline 0: give a number of seconds greater than zero");
        }
        let pull_credentials = match &self.registry_auth {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read --registry-auth {}", path.display()))?;
                serde_json::from_slice::<serde_json::Value>(&bytes).with_context(|| {
                    format!(
                        "--registry-auth {} is not JSON: give a Docker config.json with an \"auths\" object",
                        path.display()
                    )
                })?;
                Some(bytes)
            }
            None => None,
        };
        let mut ingress_annotations = std::collections::BTreeMap::new();
        for given in &self.ingress_annotations {
            let (key, value) = given
                .split_once('=')
                .filter(|(key, _)| annotation_key_ok(key))
                .with_context(|| {
                    format!(
                        "invalid --ingress-annotation {given:?}: give KEY=VALUE with a Kubernetes annotation key, such as cert-manager.io/cluster-issuer=letsencrypt"
                    )
                })?;
            ingress_annotations.insert(key.to_owned(), value.to_owned());
        }
        let kubernetes = kubernetes::Platform {
            progress_deadline_seconds: i32::try_from(self.rollout_deadline).unwrap_or(i32::MAX),
            ingress_class: self.ingress_class.clone(),
            ingress_namespace: self.ingress_namespace.clone(),
            pull_credentials,
            ingress_annotations,
            tls_for_every_host: self.ingress_tls_every_host,
        };
        if self.boot_timeout == 0 {
            bail!(
                "invalid --boot-timeout 0: give the seconds a web process has to start, such as 60"
            );
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|c| domain::Cidr::parse(c).map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.max_requests_per_app == 0 {
            bail!("invalid --max-requests-per-app 0: give a number of requests greater than zero");
        }
        let acme = match self.acme_directory {
            Some(_) if self.runtime == RuntimeKind::Kubernetes => bail!(
                "--acme-directory serves the local router's hosts; on Kubernetes let the cluster's issuer do it (cert-manager with --ingress-tls-every-host and --ingress-annotation cert-manager.io/cluster-issuer=NAME, see docs/kubernetes.md)"
            ),
            Some(directory) => {
                if !directory.starts_with("https://") {
                    bail!(
                        "invalid --acme-directory {directory:?}: give the ACME server's https:// directory URL"
                    );
                }
                let extra_root_pem = match &self.acme_ca_file {
                    Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read --acme-ca-file {}", path.display())
                    })?),
                    None => None,
                };
                Some(AcmeSettings {
                    directory,
                    contact: self.acme_email.clone(),
                    extra_root_pem,
                })
            }
            None => None,
        };
        let limits = self.limits;
        let secs = std::time::Duration::from_secs;
        for (flag, value) in [
            ("--token-ttl", self.token_ttl),
            ("--lease", self.lease),
            ("--ssh-auth-timeout", limits.ssh_auth_timeout),
            ("--ssh-idle-timeout", limits.ssh_idle_timeout),
            ("--http-header-timeout", limits.http_header_timeout),
        ] {
            if value == 0 {
                bail!("invalid {flag} 0: give a number of seconds greater than zero");
            }
        }
        for (flag, value) in [
            ("--ssh-max-connections", limits.ssh_max_connections),
            ("--ssh-max-startups", limits.ssh_max_startups),
            ("--ssh-max-per-source", limits.ssh_max_per_source),
            (
                "--ssh-max-startups-per-source",
                limits.ssh_max_startups_per_source,
            ),
            ("--http-max-per-source", limits.http_max_per_source),
        ] {
            if value == 0 {
                bail!("invalid {flag} 0: give a number of connections greater than zero");
            }
        }
        Ok(UpConfig {
            token_ttl: secs(self.token_ttl),
            lease: secs(self.lease),
            ssh_limits: gateway::ConnectionLimits {
                max_connections: limits.ssh_max_connections,
                max_unauthenticated: limits.ssh_max_startups,
                max_per_source: limits.ssh_max_per_source,
                max_unauthenticated_per_source: limits.ssh_max_startups_per_source,
                auth_timeout: secs(limits.ssh_auth_timeout),
                idle_timeout: secs(limits.ssh_idle_timeout),
            },
            http_limits: HttpLimits {
                header_timeout: secs(limits.http_header_timeout),
                max_per_source: limits.http_max_per_source,
            },
            runtime: self.runtime,
            kubernetes,
            kubeconfig: self.kubeconfig,
            boot_timeout: std::time::Duration::from_secs(self.boot_timeout),
            stop_timeout: std::time::Duration::from_secs(self.stop_timeout),
            registry,
            run_image: self.run_image,
            buildpacks_dir: self.buildpacks_dir,
            storage: self.database.resolve()?,
            api_listen: self.api_listen,
            ssh_listen: self.ssh_listen,
            router_listen: self.router_listen,
            https_listen: self.https_listen,
            acme,
            router: router::RouterConfig {
                trusted_proxies,
                max_in_flight_per_app: self.max_requests_per_app,
                https_port: Some(self.https_listen.port()),
                ..router::RouterConfig::default()
            },
            domain,
            registration_open: self.registration == Registration::Open,
            dns_resolver: self.dns_resolver,
            push_lock_timeout: std::time::Duration::from_secs(self.push_lock_timeout),
            max_push_bytes: self.max_push_bytes,
            build_timeout: std::time::Duration::from_secs(self.build_timeout),
            build_sandbox: match self.build_sandbox {
                BuildSandbox::Auto => builder::SandboxMode::Auto,
                BuildSandbox::Required => builder::SandboxMode::Required,
                BuildSandbox::Off => builder::SandboxMode::Off,
            },
        })
    }
}

/// Whether `key` is a Kubernetes annotation key: `[PREFIX/]NAME`, PREFIX a DNS subdomain,
/// NAME at most 63 letters, digits, `-`, `_` and `.`, beginning and ending with a letter or
/// digit.
fn annotation_key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let alnum_ends = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    let name_ok = name.len() <= 63
        && alnum_ends(name)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|label| {
                alnum_ends(label)
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::annotation_key_ok;

    #[test]
    fn ingress_annotation_keys_are_kubernetes_ones() {
        for good in [
            "cert-manager.io/cluster-issuer",
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "team",
            "a_b.c-d",
        ] {
            assert!(annotation_key_ok(good), "{good}");
        }
        for bad in [
            "",
            "/name",
            "Example.com/name",
            "example.com/",
            "-name",
            "name-",
            "a/b/c",
            "with space",
            &"n".repeat(64),
        ] {
            assert!(!annotation_key_ok(bad), "{bad}");
        }
    }
}
