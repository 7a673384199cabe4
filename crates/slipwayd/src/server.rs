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

pub(crate) async fn up(config: UpConfig) -> anyhow::Result<()> {
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

    let builder = Arc::new(
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
    );
    // Which isolation is in force, for the operator to see (`--sandbox required` refused to
    // get this far without all of it).
    for line in builder.isolation().summary() {
        println!("{line}");
    }
    // The release manager runs apps through the local runtime, which tells the router where
    // their web processes listen; the router writes each request to the app's log.
    let logs = releaser::Logs::open(config.storage.data_dir.join("logs"))
        .context("cannot open the app logs")?;
    let router_listener = TcpListener::bind(config.router_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the router: is another slipwayd running? choose another with --router-listen", config.router_listen))?;
    let router_addr = router_listener.local_addr()?;
    let routes = router::Routes::default();
    let runtime = match config.runtime {
        RuntimeKind::Local => releaser::local::LocalRuntime::new(
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
        .context("cannot set up the local runtime")?,
    };
    let manager = releaser::ReleaseManager::new(
        store.clone(),
        Arc::new(runtime),
        logs.clone(),
        config.domain.clone(),
        // An app's repository and build cache: removed when it is destroyed.
        releaser::Leftovers::new(
            config.storage.data_dir.join("trash"),
            vec![
                (config.storage.data_dir.join("repos"), ".git".to_owned()),
                (config.storage.data_dir.join("cache"), String::new()),
            ],
        ),
    );
    // What a destroy cut short by a crash left is removed before anything is served.
    manager
        .sweep()
        .await
        .context("cannot read the apps to remove what destroyed ones left")?;
    let deployer: Arc<dyn releaser::Deployer> = Arc::new(manager.clone());
    let router_port = router_addr.port();
    let port_suffix = if router_port == 80 {
        String::new()
    } else {
        format!(":{router_port}")
    };
    let logs_on_disk = logs.clone();
    let request_log: router::RequestLog = {
        let logs = logs.clone();
        Arc::new(move |app: &str, line: &str| logs.push(app, "router", line))
    };

    let gateway = gateway::Gateway::bind(
        gateway::GatewayConfig {
            listen: config.ssh_listen,
            data_dir: config.storage.data_dir.clone(),
            hook_program: std::env::current_exe()
                .context("cannot find the slipwayd executable for git hooks")?,
            push_lock_timeout: config.push_lock_timeout,
            max_push_bytes: config.max_push_bytes,
            app_url_template: format!("http://{{app}}.{}{port_suffix}", config.domain),
            limits: config.ssh_limits,
        },
        store.clone(),
        Arc::clone(&builder),
        Arc::clone(&deployer),
    )
    .await?;
    let ssh_addr = gateway.local_addr()?;

    let api_state = api::ApiState {
        store: store.clone(),
        config: Arc::new(api::ApiConfig {
            git_url: format!("ssh://git@{ssh_addr}"),
            domain: config.domain.clone(),
            router_port,
            registration_open: config.registration_open,
            token_ttl: config.token_ttl,
            login: api::LoginLimits::default(),
            dns_resolver: config.dns_resolver,
        }),
        deployer,
        build_cache: Arc::new(BuilderCache(builder)),
        logs,
    };
    let listener = TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the API: is another slipwayd running? choose another with --api-listen", config.api_listen))?;
    let api_addr = listener.local_addr()?;

    // Tests and scripts read these lines to find the platform; keep their shape.
    println!("slipwayd {} up", env!("CARGO_PKG_VERSION"));
    println!("data: {}", config.storage.data_dir.display());
    println!("database: {}", redact(&config.storage.database_url));
    println!("api: http://{api_addr}");
    println!("ssh: ssh://git@{ssh_addr}");
    println!("router: http://{router_addr}");
    println!("open files: {open_files}");
    tracing::info!(api = %api_addr, "slipway is up; Ctrl-C stops it");

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));

    // Every piece runs as a task that returns when `shutdown` fires. If one stops on its own,
    // it failed: the others are stopped too, and slipwayd exits with its error.
    let mut pieces = tokio::task::JoinSet::new();
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
    // Small responses go out at once: no Nagle delay between a proxied response's parts.
    let serving = crate::http::serve(
        router_listener,
        router::router(routes, request_log),
        config.http_limits,
        true,
        shutdown.clone(),
    );
    pieces.spawn(async move {
        serving.await;
        Ok(())
    });
    // Every app comes back on its current release, in the background: the API answers
    // meanwhile, and `slip ps` shows them starting.
    let recovering = manager.clone();
    tokio::spawn(async move {
        if let Err(err) = recovering.recover().await {
            tracing::error!(error = %err, "cannot bring the apps back");
        }
    });
    let stopping = shutdown.clone();
    pieces.spawn(async move {
        gateway
            .run(stopping)
            .await
            .context("the SSH gateway failed")
    });

    let mut failure = None;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        Some(joined) = pieces.join_next() => {
            // A piece that ends before shutdown has failed, even if it says it is fine.
            let error = match joined {
                Ok(Err(err)) => err,
                Ok(Ok(())) => anyhow::anyhow!("a piece of slipwayd stopped unexpectedly"),
                Err(err) => anyhow::Error::new(err).context("a task of slipwayd panicked"),
            };
            failure = Some(error);
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
    // The apps' processes stop last, once nothing routes to them; their last lines are kept.
    manager.shutdown().await;
    logs_on_disk.flush().await;
    store.close().await;
    tracing::info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The API's view of the builder's cache.
struct BuilderCache(Arc<builder::Builder>);

impl api::BuildCache for BuilderCache {
    fn purge(&self, app: &domain::AppName) -> std::io::Result<()> {
        self.0.purge_cache(app.as_str())
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
