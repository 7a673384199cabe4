//! Wiring: open the store, start each piece of the platform, stop them all on a signal.
//!
//! `up` runs the API, the SSH gateway and the router as tasks that take the shutdown token
//! and return when it fires; the release manager brings every app back on start and stops
//! their processes last.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RuntimeKind, Storage, UpConfig};

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) async fn migrate(storage: Storage) -> anyhow::Result<()> {
    prepare_data_dir(&storage)?;
    let store = store::Store::open(&storage.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&storage.database_url)))?;
    store.close().await;
    println!("migrations applied to {}", redact(&storage.database_url));
    Ok(())
}

/// Which pieces of the platform a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// All of them, in one process.
    Up,
    Api,
    Gateway,
    Releaser,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Up => "up",
            Role::Api => "api",
            Role::Gateway => "gateway",
            Role::Releaser => "releaser",
        }
    }

    fn api(self) -> bool {
        matches!(self, Role::Up | Role::Api)
    }

    fn gateway(self) -> bool {
        matches!(self, Role::Up | Role::Gateway)
    }

    fn releaser(self) -> bool {
        matches!(self, Role::Up | Role::Releaser)
    }
}

/// Runs `role`'s pieces until a signal, or until one of them fails. The pieces meet only at
/// the store, whether they share this process or not.
pub(crate) async fn serve(role: Role, config: UpConfig) -> anyhow::Result<()> {
    prepare_data_dir(&config.storage)?;
    let open_files = raise_open_files_limit();
    let store = store::Store::open(&config.storage.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact(&config.storage.database_url)
            )
        })?;
    // Tests and scripts read these lines to find the platform; keep their shape.
    println!("slipwayd {} {}", env!("CARGO_PKG_VERSION"), role.name());
    println!("data: {}", config.storage.data_dir.display());
    println!("database: {}", redact(&config.storage.database_url));
    println!("open files: {open_files}");

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));
    // The builder's isolation is shared with the local runtime, so an app's builds and
    // processes have the same uid.
    let local = config.runtime == RuntimeKind::Local;
    let builder = if role.gateway() || (role.releaser() && local) {
        let builder = new_builder(&config).await?;
        // Which isolation is in force, for the operator to see (`--sandbox required`
        // refused to get this far without all of it).
        for line in builder.isolation().summary() {
            println!("{line}");
        }
        Some(builder)
    } else {
        None
    };
    // The local runtime's app logs: written by the release manager, read by the API.
    let logs = releaser::Logs::open(config.storage.data_dir.join("logs"))
        .context("cannot open the app logs")?;

    // In one process the router's port is known from the start (app URLs show it); a
    // release manager of its own binds it once it is the active one.
    // On Kubernetes the cluster's ingress controller routes, on port 80.
    let router_listener = match role {
        Role::Up if local => Some(bind_router(&config).await?),
        _ => None,
    };
    let router_port = match &router_listener {
        Some(listeners) => listeners.http.local_addr()?.port(),
        None if local => config.router_listen.port(),
        None => 80,
    };

    // Every piece runs as a task that returns when `shutdown` fires. If one stops on its own,
    // it failed: the others are stopped too, and slipwayd exits with its error.
    let mut pieces = tokio::task::JoinSet::new();
    let mut ssh_url = format!("ssh://git@{}", config.ssh_listen);
    if let (true, Some(builder)) = (role.gateway(), &builder) {
        let gateway = gateway::Gateway::bind(
            gateway::GatewayConfig {
                listen: config.ssh_listen,
                data_dir: config.storage.data_dir.clone(),
                hook_program: std::env::current_exe()
                    .context("cannot find the slipwayd executable for git hooks")?,
                push_lock_timeout: config.push_lock_timeout,
                max_push_bytes: config.max_push_bytes,
                app_url_template: format!(
                    "http://{{app}}.{}{}",
                    config.domain,
                    port_suffix(router_port)
                ),
                limits: config.ssh_limits,
            },
            store.clone(),
            Arc::clone(builder),
        )
        .await?;
        ssh_url = format!("ssh://git@{}", gateway.local_addr()?);
        println!("ssh: {ssh_url}");
        let stopping = shutdown.clone();
        pieces.spawn(async move {
            gateway
                .run(stopping)
                .await
                .context("the SSH gateway failed")
        });
    }
    let mut releasing = None;
    if role.releaser() {
        // A release manager of its own reads the logs once it is the active one: until
        // then another is writing them.
        let shared_logs = (role == Role::Up).then(|| logs.clone());
        let releaser = release_manager(
            config.clone(),
            router_listener,
            store.clone(),
            builder.clone(),
            shared_logs,
            shutdown.clone(),
        );
        releasing = Some(tokio::spawn(releaser));
    }
    if role.api() {
        let api_state = api::ApiState {
            store: store.clone(),
            config: Arc::new(api::ApiConfig {
                git_url: ssh_url,
                domain: config.domain.clone(),
                router_port,
                registration_open: config.registration_open,
                token_ttl: config.token_ttl,
                login: api::LoginLimits::default(),
                dns_resolver: config.dns_resolver,
                deploys: true,
            }),
            build_cache: Arc::new(CacheDir(config.storage.data_dir.clone())),
            repos: Arc::new(GitRepos(config.storage.data_dir.clone())),
            logs: api_logs(role, &config, &logs).await?,
        };
        let listener = TcpListener::bind(config.api_listen)
            .await
            .with_context(|| format!("cannot listen on {} for the API: is another slipwayd running? choose another with --api-listen", config.api_listen))?;
        let api_addr = listener.local_addr()?;
        println!("api: http://{api_addr}");
        tracing::info!(api = %api_addr, "the API is up; Ctrl-C stops it");
        let serving = crate::http::serve(
            listener,
            api::router(api_state),
            config.http_limits,
            false,
            shutdown.clone(),
        );
        pieces.spawn(async move {
            serving.await;
            Ok(())
        });
    }

    let mut failure = None;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        Some(joined) = pieces.join_next() => {
            failure = Some(piece_failed(joined));
            shutdown.cancel();
        }
        Some(joined) = async { Some(releasing.as_mut()?.await) } => {
            releasing = None;
            failure = Some(piece_failed(joined));
            shutdown.cancel();
        }
    }
    let drain = async {
        while let Some(joined) = pieces.join_next().await {
            if let Ok(Err(err)) = joined {
                tracing::error!(error = format!("{err:#}"), "stopping");
            }
        }
    };
    if tokio::time::timeout(DRAIN_DEADLINE, drain).await.is_err() {
        tracing::warn!("work still running after {DRAIN_DEADLINE:?}; stopping anyway");
    }
    // The release manager stops last: the apps' processes stop once nothing routes to them.
    if let Some(releasing) = releasing {
        match releasing.await {
            Ok(Err(err)) if failure.is_none() => failure = Some(err),
            Ok(Err(err)) => tracing::error!(error = format!("{err:#}"), "stopping"),
            _ => {}
        }
    }
    logs.flush().await;
    store.close().await;
    tracing::info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// A piece that ends before shutdown has failed, even if it says it is fine.
fn piece_failed(joined: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match joined {
        Ok(Err(err)) => err,
        Ok(Ok(())) => anyhow::anyhow!("a piece of slipwayd stopped unexpectedly"),
        Err(err) => anyhow::Error::new(err).context("a task of slipwayd panicked"),
    }
}

/// The router's ports: plain HTTP and HTTPS.
struct RouterListeners {
    http: TcpListener,
    https: TcpListener,
}

async fn bind_router(config: &UpConfig) -> anyhow::Result<RouterListeners> {
    let addr = config.router_listen;
    let http = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the router: is another slipwayd running? choose another with --router-listen"))?;
    let addr = config.https_listen;
    let https = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the router's HTTPS: is another slipwayd running? choose another with --https-listen"))?;
    Ok(RouterListeners { http, https })
}

fn port_suffix(port: u16) -> String {
    if port == 80 {
        String::new()
    } else {
        format!(":{port}")
    }
}

async fn new_builder(config: &UpConfig) -> anyhow::Result<Arc<builder::Builder>> {
    Ok(Arc::new(
        builder::Builder::new(builder::BuilderConfig {
            data_dir: config.storage.data_dir.clone(),
            timeout: config.build_timeout,
            max_output: builder::BuilderConfig::DEFAULT_MAX_OUTPUT,
            limits: builder::Limits::BUILD,
            sandbox: config.build_sandbox,
            registry: config.registry.clone(),
            run_image: config.run_image.clone(),
            buildpacks_dir: config.buildpacks_dir.clone(),
        })
        .await
        .context("cannot set up the builder")?,
    ))
}

/// Where the API reads apps' logs. The platform's own lines: in one process, as the release
/// manager keeps them; in another, from its files, followed as they grow. On Kubernetes, the
/// pods' output is merged in from the pod log API.
async fn api_logs(
    role: Role,
    config: &UpConfig,
    logs: &releaser::Logs,
) -> anyhow::Result<Arc<dyn logs::LogSource>> {
    let platform: Arc<dyn logs::LogSource> = match role {
        Role::Up => Arc::new(logs.clone()),
        _ => Arc::new(logs::FileLogs::new(config.storage.data_dir.join("logs"))),
    };
    Ok(match config.runtime {
        RuntimeKind::Local => platform,
        RuntimeKind::Kubernetes => Arc::new(
            kubernetes::PodLogs::connect(config.kubeconfig.as_deref(), platform)
                .await
                .context("--runtime kubernetes")?,
        ),
    })
}

/// The release manager of the configured runtime, until shutdown.
async fn release_manager(
    config: UpConfig,
    router_listener: Option<RouterListeners>,
    store: store::Store,
    builder: Option<Arc<builder::Builder>>,
    logs: Option<releaser::Logs>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match config.runtime {
        RuntimeKind::Local => {
            let builder =
                builder.context("the local runtime runs apps with the builder's isolation")?;
            local_release_manager(config, router_listener, store, builder, logs, shutdown).await
        }
        RuntimeKind::Kubernetes => kube_release_manager(config, store, logs, shutdown).await,
    }
}

/// The release manager on Kubernetes: any number of them do the queue's work side by side
/// (the queue keeps each app's work in order), while the apps run on the cluster whether or
/// not a release manager does.
async fn kube_release_manager(
    config: UpConfig,
    store: store::Store,
    logs: Option<releaser::Logs>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let holder = releaser::holder_name("releaser");
    let logs = match logs {
        Some(logs) => logs,
        None => releaser::Logs::open(config.storage.data_dir.join("logs"))
            .context("cannot open the app logs")?,
    };
    let runtime =
        kubernetes::KubeRuntime::connect(config.kubeconfig.as_deref(), config.kubernetes.clone())
            .await
            .context("--runtime kubernetes")?;
    let manager = take_over(&config, &store, Arc::new(runtime), &logs, &holder).await?;
    println!("releaser: deploying to Kubernetes");
    // Each app's objects are applied again: what drifted comes back, what is unchanged
    // stays as it is on the server.
    if let Err(err) = manager.recover().await {
        tracing::error!(error = %err, "cannot reconcile the apps");
    }
    let mut worker = worker(&manager, &store, &holder, &config);
    // Rebases need the images the gateways' builds store (the shared `images/` volume) and
    // the run image; a release manager without --run-image leaves them undone, saying why.
    if config.run_image.is_some() {
        match new_builder(&config).await {
            Ok(builder) => {
                worker = worker.with_rebaser(Arc::new(crate::rebase::BuilderRebaser(builder)));
            }
            // Deploys go on; rebases fail saying this release manager cannot do them.
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "cannot rebase images here")
            }
        }
    }
    worker.run(shutdown).await;
    logs.flush().await;
    Ok(())
}

/// A release manager of `runtime`, ready for the queue: what a destroy cut short by a crash
/// left is removed before anything is served, and the work of release managers that died is
/// taken over now, not when their leases lapse.
async fn take_over(
    config: &UpConfig,
    store: &store::Store,
    runtime: Arc<dyn releaser::Runtime>,
    logs: &releaser::Logs,
    holder: &str,
) -> anyhow::Result<releaser::ReleaseManager> {
    let manager = releaser::ReleaseManager::new(
        store.clone(),
        runtime,
        logs.clone(),
        config.domain.clone(),
        leftovers(config),
    );
    manager
        .sweep()
        .await
        .context("cannot read the apps to remove what destroyed ones left")?;
    store.reclaim_work(holder).await?;
    Ok(manager)
}

/// The release manager's side of the store's queue.
fn worker(
    manager: &releaser::ReleaseManager,
    store: &store::Store,
    holder: &str,
    config: &UpConfig,
) -> releaser::Worker {
    releaser::Worker::new(
        manager.clone(),
        store.clone(),
        releaser::WorkerConfig {
            holder: holder.to_owned(),
            lease: config.lease,
            concurrency: releaser::WorkerConfig::DEFAULT_CONCURRENCY,
        },
    )
}

/// What an app keeps on disk under its name, removed when it is destroyed: its repository,
/// its build cache and the record of its last launch layers.
fn leftovers(config: &UpConfig) -> releaser::Leftovers {
    let data = &config.storage.data_dir;
    releaser::Leftovers::new(
        data.join("trash"),
        vec![
            (data.join("repos"), ".git".to_owned()),
            (data.join("cache"), String::new()),
            (data.join(builder::LAUNCH_RECORDS), ".json".to_owned()),
        ],
    )
}

/// The release manager of the local runtime: stands by until it holds the local runtime's
/// lease, then runs the apps and the router and does the queue's work until shutdown, or
/// until it loses the lease (an error: another has taken over, and this process must not
/// run apps beside it).
async fn local_release_manager(
    config: UpConfig,
    router_listener: Option<RouterListeners>,
    store: store::Store,
    builder: Arc<builder::Builder>,
    logs: Option<releaser::Logs>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let holder = releaser::holder_name("releaser");
    let standing_by = |current: &str| {
        println!("releaser: standing by while {current} runs the apps");
    };
    let lease = releaser::ActiveLease::acquire(
        &store,
        releaser::LOCAL_RUNTIME,
        &holder,
        config.lease,
        &shutdown,
        standing_by,
    )
    .await
    .context("cannot take the local runtime's lease")?;
    let Some(lease) = lease else {
        return Ok(());
    };
    // Stop on shutdown, or at once when the lease is lost.
    let stop = CancellationToken::new();
    let stopping = {
        let (stop, lost, shutdown) = (stop.clone(), lease.lost.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = lost.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let logs = match logs {
        Some(logs) => logs,
        None => releaser::Logs::open(config.storage.data_dir.join("logs"))
            .context("cannot open the app logs")?,
    };
    // The router serves whatever the active release manager runs.
    let router_listener = match router_listener {
        Some(listeners) => listeners,
        None => bind_router(&config).await?,
    };
    let router_addr = router_listener.http.local_addr()?;
    let https_addr = router_listener.https.local_addr()?;
    let routes = router::Routes::default();
    let runtime = releaser::local::LocalRuntime::new(
        releaser::local::LocalConfig {
            data_dir: config.storage.data_dir.clone(),
            images: Arc::clone(builder.images()),
            isolation: Arc::clone(builder.isolation()),
            readable: builder.toolchains().to_vec(),
            // Apps reach each other through the router, the one host port they may.
            router_port: router_addr.ip().is_loopback().then_some(router_addr.port()),
            boot_timeout: config.boot_timeout,
            stop_timeout: config.stop_timeout,
            run_timeout: releaser::local::LocalConfig::DEFAULT_RUN_TIMEOUT,
        },
        routes.clone(),
        logs.clone(),
    )
    .context("cannot set up the local runtime")?;
    let runtime = Arc::new(runtime);
    let manager = take_over(&config, &store, Arc::clone(&runtime) as _, &logs, &holder).await?;
    // The processes the store lists were the last active release manager's, and are gone.
    store.clear_processes().await?;
    let request_log: router::RequestLog = {
        let logs = logs.clone();
        Arc::new(move |app: &str, line: &str| logs.push(app, "router", line))
    };
    let issuer: Arc<dyn router::Issuer> =
        Arc::new(PlatformIssuer(platform_ca(&config.storage.data_dir).await?));
    // With an ACME server, the router answers its HTTP-01 challenges and a keeper obtains
    // every routed host's certificate.
    let challenges = tls::Challenges::new();
    let keeper = config.acme.as_ref().map(|acme| {
        releaser::CertificateKeeper::new(
            store.clone(),
            tls::AcmeConfig {
                directory: acme.directory.clone(),
                contact: acme.contact.clone(),
                extra_root_pem: acme.extra_root_pem.clone(),
                account_file: config
                    .storage
                    .data_dir
                    .join("tls")
                    .join("acme-account.json"),
            },
            challenges.clone(),
            routes.clone(),
            config.domain.clone(),
            logs.clone(),
        )
    });
    let answers: router::Challenges = Arc::new(move |token: &str| challenges.get(token));
    let router = router::Router::new(
        routes.clone(),
        request_log,
        Some(answers),
        config.router.clone(),
    );
    let tls = router::server_config(&routes, Some(issuer));
    let limits = router::Limits {
        header_timeout: config.http_limits.header_timeout,
        max_per_source: config.http_limits.max_per_source,
    };
    println!("router: http://{router_addr}");
    println!("router: https://{https_addr}");
    let request_metrics = router.metrics().clone();
    let routing = {
        let http = Arc::clone(&router).serve(router_listener.http, None, limits, stop.clone());
        let https = router.serve(router_listener.https, Some(tls), limits, stop.clone());
        tokio::spawn(async move { tokio::join!(http, https) })
    };
    let keeping = keeper.map(|keeper| tokio::spawn(keeper.run(stop.clone())));
    // What the router counts reaches the store every 10 s, and once more after it stops.
    let metrics_stop = CancellationToken::new();
    let flushing = tokio::spawn(
        releaser::MetricsFlusher::new(request_metrics, store.clone()).run(metrics_stop.clone()),
    );
    // Every app comes back on its current release before the queue's work is done: `slip ps`
    // shows them starting meanwhile.
    if let Err(err) = manager.recover().await {
        tracing::error!(error = %err, "cannot bring the apps back");
    }
    // The builder it shares holds the images, the run image and the registry: rebases are
    // done here.
    let worker = worker(&manager, &store, &holder, &config)
        .with_rebaser(Arc::new(crate::rebase::BuilderRebaser(builder)));
    worker.run(stop.clone()).await;
    let _ = tokio::time::timeout(DRAIN_DEADLINE, routing).await;
    metrics_stop.cancel();
    let _ = tokio::time::timeout(DRAIN_DEADLINE, flushing).await;
    if let Some(keeping) = keeping {
        keeping.abort();
    }
    // The apps' processes stop last, once nothing routes to them; their last lines are kept.
    runtime.shutdown().await;
    logs.flush().await;
    stopping.abort();
    if lease.lost.is_cancelled() {
        anyhow::bail!(
            "lost the local runtime's lease (the store was unreachable for longer than --lease, or another release manager took over); the apps were stopped here"
        );
    }
    lease.release().await;
    Ok(())
}

/// The platform CA, made in `<data>/tls` on first start: it signs the router's certificate
/// for every app host that has none of its own.
async fn platform_ca(data_dir: &std::path::Path) -> anyhow::Result<tls::PlatformCa> {
    let dir = data_dir.join("tls");
    tokio::task::spawn_blocking(move || tls::PlatformCa::load_or_create(&dir))
        .await?
        .context("cannot set up the platform CA")
}

/// The platform's own certificates for app hosts that have none of their own.
#[derive(Debug)]
struct PlatformIssuer(tls::PlatformCa);

impl router::Issuer for PlatformIssuer {
    fn issue(&self, host: &str) -> Result<router::Issued, String> {
        let issued = self.0.issue(host).map_err(|e| e.to_string())?;
        Ok(router::Issued {
            key: issued.key,
            not_after: issued.not_after,
        })
    }
}

/// `slipwayd ca`: prints the platform CA's certificate (made first if there is none), for a
/// browser or curl to trust.
pub(crate) async fn print_ca(storage: Storage) -> anyhow::Result<()> {
    let ca = platform_ca(&storage.data_dir).await?;
    print!("{}", ca.certificate_pem());
    Ok(())
}

/// The builder's per-app caches, as far as the API needs them: `<data>/cache/<app>`.
/// The data directory whose build caches `slip builds:purge-cache` empties.
struct CacheDir(std::path::PathBuf);

impl api::BuildCache for CacheDir {
    fn purge(&self, app: &domain::AppName) -> std::io::Result<()> {
        builder::purge_cache(&self.0, app.as_str())
    }
}

/// The gateway's repositories, as far as the API needs them: `<data>/repos/<app>.git`,
/// shared with the gateway through the data directory (a split API reads them there too;
/// without them every answer is `None`).
struct GitRepos(std::path::PathBuf);

#[async_trait::async_trait]
impl api::Repos for GitRepos {
    async fn commits_behind(
        &self,
        upstream_app: &domain::AppName,
        upstream_commit: &str,
        downstream_commit: &str,
    ) -> std::io::Result<Option<u32>> {
        gateway::commits_behind(&self.0, upstream_app, upstream_commit, downstream_commit).await
    }
}

/// `slipwayd run-image`: makes a run image of Debian packages in the data directory.
pub(crate) async fn run_image(args: crate::config::RunImageArgs) -> anyhow::Result<()> {
    let storage = args.database.resolve()?;
    prepare_data_dir(&storage)?;
    let progress = |line: &str| println!("{line}");
    builder::run_image::make(&storage.data_dir, &args.name, &args.packages, &progress).await?;
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: every connection, app process
/// pipe and log file takes one, and the default soft limit (often 1024) is reached by a
/// modest flood. Returns the limit now in force.
fn raise_open_files_limit() -> String {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return show_limit(limit.current);
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => show_limit(limit.maximum),
        Err(err) => {
            tracing::warn!(error = %err, "cannot raise the limit on open files");
            show_limit(limit.current)
        }
    }
}

fn show_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// Cancels `token` on Ctrl-C or SIGTERM.
async fn signal_on(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            token.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}

/// Creates the data directory, readable by its owner only.
fn prepare_data_dir(storage: &Storage) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = &storage.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "the data directory is readable by others");
    }
    Ok(())
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://slip:secret@db:5432/slipway"),
            "postgres://slip:***@db:5432/slipway"
        );
        assert_eq!(
            redact("postgres://slip@db/slipway"),
            "postgres://slip@db/slipway"
        );
        assert_eq!(
            redact("sqlite:///var/lib/slipway/slipway.db"),
            "sqlite:///var/lib/slipway/slipway.db"
        );
    }
}
