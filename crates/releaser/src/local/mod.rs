//! The local runtime: each app's processes as supervised local processes, sandboxed with
//! bubblewrap where it is installed, and the router's table of where their web processes
//! listen.
//!
//! A deploy starts the new release's processes beside the old ones; once every new web
//! process is healthy, one route-table swap moves traffic to them, and the old ones drain
//! (the requests the router already sent them finish) and stop. If the new ones do not
//! become healthy, they stop and the old ones never noticed.

mod process;
mod rootfs;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use domain::{AppName, Formation, ImageRef, ProcessType, ReleaseVersion};
use oci::ImageStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::process::{Context, Launch, Proc, ProcIdentity, Sandbox};
use crate::{Lines, Logs, ProcessInfo, ProcessState, ReleaseSpec, Runtime, RuntimeError};

/// How the local runtime runs processes.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Holds `runtime/images`, where images are unpacked.
    pub data_dir: PathBuf,
    pub images: Arc<ImageStore>,
    /// The sandbox each process runs in (the builder's, so an app's builds and processes
    /// share its uid).
    pub isolation: Arc<sandbox::Isolation>,
    /// Host directories processes may read (toolchains outside `/usr`).
    pub readable: Vec<PathBuf>,
    /// The router's port on the host's loopback, which apps in their own network namespace
    /// may still reach (at `127.0.0.1:PORT` in theirs), to call other apps.
    pub router_port: Option<u16>,
    /// How long a web process has to become healthy.
    pub boot_timeout: Duration,
    /// How long a process has to exit after SIGTERM before it gets SIGKILL.
    pub stop_timeout: Duration,
    /// How long a release command or a one-off process may run.
    pub run_timeout: Duration,
}

impl LocalConfig {
    pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60 * 60);
}

/// The processes of one release of an app.
#[derive(Clone)]
struct Generation {
    spec: Arc<ReleaseSpec>,
    launch: Arc<Launch>,
    procs: Vec<Arc<Proc>>,
}

#[derive(Default)]
struct AppRun {
    /// The app's host names, each with the certificate it is served with (`None`: the
    /// platform's), ready for the router.
    hosts: Vec<(String, Option<Arc<rustls::sign::CertifiedKey>>)>,
    /// Maintenance, the allow list, HTTPS only.
    routing: Arc<domain::RoutingSettings>,
    current: Option<Generation>,
    /// The image the app ran before its current one, kept unpacked for a fast rollback.
    previous_image: Option<ImageRef>,
    /// Processes taken out of service, draining and stopping.
    retiring: Vec<Arc<Proc>>,
}

/// The local runtime. Cheap to clone.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: LocalConfig,
    unpacked: rootfs::Unpacked,
    routes: router::Routes,
    ctx: Context,
    apps: Mutex<HashMap<AppName, AppRun>>,
    /// Images being deployed (not yet any app's current one), once per deploy.
    preparing: Mutex<Vec<ImageRef>>,
    /// Ports our web processes listen on.
    ports: Mutex<std::collections::HashSet<u16>>,
    /// Work in the background (retiring processes, pruning images), waited for at
    /// [`LocalRuntime::shutdown`].
    tasks: TaskTracker,
    /// Fires at shutdown: background work stops waiting (for requests to drain) and finishes.
    stopping: CancellationToken,
}

impl LocalRuntime {
    pub fn new(config: LocalConfig, routes: router::Routes, logs: Logs) -> std::io::Result<Self> {
        let unpacked = rootfs::Unpacked::open(&config.data_dir.join("runtime"))?;
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| {
            let me = me.clone();
            Inner {
                ctx: Context {
                    sandbox: Sandbox {
                        isolation: Arc::clone(&config.isolation),
                        readable: config.readable.clone(),
                        router_port: config.router_port,
                    },
                    logs: logs.clone(),
                    boot_timeout: config.boot_timeout,
                    stop_timeout: config.stop_timeout,
                    on_change: Arc::new(move || {
                        if let Some(inner) = me.upgrade() {
                            inner.refresh_routes();
                        }
                    }),
                },
                config,
                unpacked,
                routes,
                apps: Mutex::default(),
                preparing: Mutex::default(),
                ports: Mutex::default(),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }
        });
        Ok(LocalRuntime { inner })
    }
}

impl Inner {
    /// Points the router at every app's healthy web processes of its current release.
    fn refresh_routes(&self) {
        let apps = self.apps.lock().expect("never poisoned");
        let mut table = Vec::new();
        for (name, run) in apps.iter() {
            let backends: Vec<SocketAddr> = run
                .current
                .iter()
                .flat_map(|g| g.procs.iter())
                .filter(|p| p.is_up())
                .filter_map(|p| p.port)
                .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                .collect();
            let route = router::AppRoute {
                app: name.to_string(),
                backends,
                settings: Arc::clone(&run.routing),
            };
            table.extend(
                run.hosts
                    .iter()
                    .map(|(host, certificate)| router::HostRoute {
                        host: host.clone(),
                        route: route.clone(),
                        certificate: certificate.clone(),
                    }),
            );
        }
        self.routes.set(table);
    }

    /// Unpacks the release's image (once per image) and works out its environment.
    async fn prepare(self: &Arc<Self>, spec: &ReleaseSpec) -> Result<Arc<Launch>, RuntimeError> {
        // The app's code runs as the uid its number gives, as its builds did.
        self.ctx
            .sandbox
            .isolation
            .assign(spec.app.as_str(), spec.uid_slot);
        let me = Arc::clone(self);
        // A build pushed to a registry names its image `host/repo@sha256:…`; the local store
        // has it by that digest. Only a parsed digest names a blob of the store.
        let digest = rootfs::local_digest(&spec.image).map_err(|e| {
            RuntimeError::Runtime(format!("cannot unpack the image {}: {e}", spec.image))
        })?;
        let (rootfs, image_env) = tokio::task::spawn_blocking(move || {
            let image = me.config.images.image(&digest).map_err(|e| {
                std::io::Error::other(
                    format!("it is not in the local image store ({e}); the local runtime runs only images Slipway built"),
                )
            })?;
            let rootfs = me.unpacked.get(&me.config.images, &digest)?;
            Ok::<_, std::io::Error>((rootfs, image.env))
        })
        .await
        .map_err(|e| RuntimeError::Runtime(format!("cannot unpack the image: {e}")))?
        .map_err(|e| {
            RuntimeError::Runtime(format!("cannot unpack the image {}: {e}", spec.image))
        })?;
        let mut env: BTreeMap<String, String> = image_env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.extend(
            spec.config
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        Ok(Arc::new(Launch { rootfs, env }))
    }

    fn start(
        &self,
        spec: &Arc<ReleaseSpec>,
        launch: &Arc<Launch>,
        process_type: &str,
        index: u32,
    ) -> Result<Arc<Proc>, RuntimeError> {
        let command = spec.processes.command(process_type).ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "no process of type {process_type} in {}",
                spec.version
            ))
        })?;
        let web = process_type == ProcessType::WEB;
        let port = if web {
            Some(self.reserve_port().map_err(|e| {
                RuntimeError::Runtime(format!("no free port for {process_type}: {e}"))
            })?)
        } else {
            None
        };
        Ok(Proc::start(
            self.ctx.clone(),
            Arc::clone(launch),
            ProcIdentity {
                app: spec.app.to_string(),
                process_type: process_type.to_owned(),
                index,
                command: command.to_owned(),
                release: spec.version,
                port,
                healthcheck: spec.healthcheck_path().map(str::to_owned),
                memory: spec.memory_limit(process_type),
            },
        ))
    }

    /// Waits until every web process in `procs` is healthy, or returns why one is not.
    async fn all_healthy(&self, procs: &[Arc<Proc>]) -> Result<(), RuntimeError> {
        let limit = self.config.boot_timeout + Duration::from_secs(1);
        let mut waits = tokio::task::JoinSet::new();
        for proc in procs.iter().filter(|p| p.port.is_some()) {
            let proc = Arc::clone(proc);
            waits.spawn(async move { proc.healthy(limit).await });
        }
        while let Some(judged) = waits.join_next().await {
            match judged {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(RuntimeError::App(reason)),
                Err(err) => {
                    return Err(RuntimeError::Runtime(format!("health check failed: {err}")));
                }
            }
        }
        Ok(())
    }

    /// Takes `procs` out of service: they stop once the router has no request left on
    /// them. Runs in the background; `shutdown` and `stop` still find them meanwhile.
    fn retire(self: &Arc<Self>, app: &AppName, procs: Vec<Arc<Proc>>) {
        if procs.is_empty() {
            return;
        }
        if let Some(run) = self.apps.lock().expect("never poisoned").get_mut(app) {
            run.retiring.extend(procs.iter().cloned());
        }
        self.refresh_routes();
        let me = Arc::clone(self);
        let app = app.clone();
        self.tasks.spawn(async move {
            let backends: Vec<SocketAddr> = procs
                .iter()
                .filter_map(|p| p.port)
                .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                .collect();
            // At shutdown the wait ends; stopping them does not.
            tokio::select! {
                () = me.routes.drained(&backends, me.config.stop_timeout) => {}
                () = me.stopping.cancelled() => {}
            }
            me.stop_all(&procs).await;
            if let Some(run) = me.apps.lock().expect("never poisoned").get_mut(&app) {
                run.retiring
                    .retain(|r| !procs.iter().any(|p| Arc::ptr_eq(p, r)));
            }
        });
    }

    /// Stops every process in `procs` at once, waits for all of them, and frees their ports.
    async fn stop_all(&self, procs: &[Arc<Proc>]) {
        let mut stops = tokio::task::JoinSet::new();
        for proc in procs {
            let proc = Arc::clone(proc);
            stops.spawn(async move { proc.stop().await });
        }
        while stops.join_next().await.is_some() {}
        let mut ports = self.ports.lock().expect("never poisoned");
        for port in procs.iter().filter_map(|p| p.port) {
            ports.remove(&port);
        }
    }

    /// A free loopback port that no process of ours has: the kernel may hand out a port
    /// again as soon as the probe that found it closes.
    fn reserve_port(&self) -> std::io::Result<u16> {
        let mut ports = self.ports.lock().expect("never poisoned");
        for _ in 0..100 {
            let port = process::free_port()?;
            if ports.insert(port) {
                return Ok(port);
            }
        }
        Err(std::io::Error::other(
            "every port the kernel offered is taken",
        ))
    }

    /// Deletes unpacked images no app runs, ran just before, or is about to run.
    fn prune(self: &Arc<Self>) {
        let mut keep: Vec<ImageRef> = self.preparing.lock().expect("never poisoned").clone();
        for run in self.apps.lock().expect("never poisoned").values() {
            keep.extend(run.current.iter().map(|g| g.spec.image.clone()));
            keep.extend(run.previous_image.iter().cloned());
        }
        let me = Arc::clone(self);
        self.tasks.spawn_blocking(move || {
            if let Err(err) = me.unpacked.prune(&me.config.images, &keep) {
                tracing::warn!(error = %err, "cannot delete unused unpacked images");
            }
        });
    }
}

/// Counts like `web=2 worker=1`.
fn describe(formation: &Formation) -> String {
    let parts: Vec<String> = formation
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    if parts.is_empty() {
        "none (scale with `slip ps:scale web=1`)".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Releases an image's claim in `preparing` when a deploy ends, however it ends.
struct Preparing<'a> {
    inner: &'a Inner,
    image: ImageRef,
}

impl Drop for Preparing<'_> {
    fn drop(&mut self) {
        let mut preparing = self.inner.preparing.lock().expect("never poisoned");
        if let Some(at) = preparing.iter().position(|i| *i == self.image) {
            preparing.swap_remove(at);
        }
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn run_once(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        let inner = &self.inner;
        let launch = inner.prepare(spec).await?;
        let port = process::free_port()
            .map_err(|e| RuntimeError::Runtime(format!("no free port: {e}")))?;
        let mut sandboxed = inner
            .ctx
            .sandbox
            .command(
                spec.app.as_str(),
                source,
                &launch,
                command,
                &[("DYNO", source.to_owned()), ("PORT", port.to_string())],
                None,
                spec.memory_limit(source.split('.').next().unwrap_or(source)),
            )
            .map_err(|e| RuntimeError::Runtime(format!("cannot start {source}: {e}")))?;
        // Whatever the one-off leaves in its cell goes when it is done (at the latest when
        // the cell is dropped, should the caller go away).
        let cell = sandboxed.cell;
        let mut child = sandboxed
            .command
            .spawn()
            .map_err(|e| RuntimeError::Runtime(format!("cannot start {source}: {e}")))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok());
        // A caller that goes away (the request is dropped) takes the process with it.
        let _guard = process::GroupGuard(group);
        let out = child.stdout.take();
        let err = child.stderr.take();
        // A one-off process has its own output budget: it does not slow the app's.
        let pace = crate::Pace::default();
        let pipes = async {
            tokio::join!(
                logs::read_lines(out, output, &pace),
                logs::read_lines(err, output, &pace)
            );
        };
        let limit = inner.config.run_timeout;
        let waited = tokio::time::timeout(limit, async {
            let ((), status) = tokio::join!(pipes, child.wait());
            status
        })
        .await;
        let ended = match waited {
            Ok(Ok(status)) => {
                use std::os::unix::process::ExitStatusExt;
                Ok(status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
            }
            Ok(Err(err)) => Err(RuntimeError::Runtime(format!(
                "cannot wait for {source}: {err}"
            ))),
            Err(_) => {
                process::terminate(&mut child, group, inner.config.stop_timeout).await;
                output(&format!(
                    "{source} ran longer than {}s and was stopped",
                    limit.as_secs()
                ));
                Ok(124)
            }
        };
        cell.finish().await;
        ended
    }

    /// As any one-off: the spec's config is all the process sees, and nothing of a
    /// release's is kept by version here.
    async fn run_test(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        self.run_once(spec, command, source, output).await
    }

    async fn deploy(
        &self,
        spec: &ReleaseSpec,
        formation: &Formation,
        // The previous release's processes run until the new ones are healthy: nothing to
        // put back.
        _previous: Option<&ReleaseSpec>,
        progress: Lines<'_>,
    ) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        inner
            .preparing
            .lock()
            .expect("never poisoned")
            .push(spec.image.clone());
        let _claim = Preparing {
            inner,
            image: spec.image.clone(),
        };
        let launch = inner.prepare(spec).await?;
        let spec = Arc::new(spec.clone());
        progress(&format!(
            "-----> Starting {}: {}",
            spec.version,
            describe(formation)
        ));
        let mut procs = Vec::new();
        for (process_type, count) in formation.iter() {
            for index in 1..=count {
                match inner.start(&spec, &launch, process_type.as_str(), index) {
                    Ok(proc) => procs.push(proc),
                    Err(reason) => {
                        inner.stop_all(&procs).await;
                        return Err(reason);
                    }
                }
            }
        }
        if let Err(reason) = inner.all_healthy(&procs).await {
            inner.stop_all(&procs).await;
            return Err(reason);
        }
        let old = {
            let mut apps = inner.apps.lock().expect("never poisoned");
            let run = apps.entry(spec.app.clone()).or_default();
            let old = run.current.replace(Generation {
                spec: Arc::clone(&spec),
                launch,
                procs: procs.clone(),
            });
            if let Some(old) = &old
                && old.spec.image != spec.image
            {
                run.previous_image = Some(old.spec.image.clone());
            }
            old
        };
        // The switch: one route-table swap.
        inner.refresh_routes();
        let up: Vec<&str> = procs.iter().map(|p| p.name.as_str()).collect();
        progress(&format!(
            "-----> {} is up{}",
            spec.version,
            if up.is_empty() {
                String::new()
            } else {
                format!(": {}", up.join(", "))
            }
        ));
        if let Some(old) = old {
            inner.retire(&spec.app, old.procs);
        }
        inner.prune();
        Ok(())
    }

    async fn current(&self, app: &AppName) -> Result<Option<ReleaseVersion>, RuntimeError> {
        let apps = self.inner.apps.lock().expect("never poisoned");
        Ok(apps
            .get(app)
            .and_then(|run| run.current.as_ref())
            .map(|g| g.spec.version))
    }

    async fn scale(&self, spec: &ReleaseSpec, formation: &Formation) -> Result<(), RuntimeError> {
        let app = &spec.app;
        let inner = &self.inner;
        let settings_changed = {
            let apps = inner.apps.lock().expect("never poisoned");
            apps.get(app)
                .and_then(|r| r.current.as_ref())
                .is_some_and(|g| g.spec.settings != spec.settings)
        };
        if settings_changed {
            // A process's limits and health check are fixed when it starts: fresh ones take
            // over, as on a deploy.
            let quiet = |_: &str| {};
            return self.deploy(spec, formation, None, &quiet).await;
        }
        let mut started = Vec::new();
        let mut surplus = Vec::new();
        {
            let mut apps = inner.apps.lock().expect("never poisoned");
            let Some(generation) = apps.get_mut(app).and_then(|r| r.current.as_mut()) else {
                return Ok(());
            };
            let types: Vec<String> = generation
                .spec
                .processes
                .process_types()
                .filter(|t| !t.is_one_off())
                .map(|t| t.as_str().to_owned())
                .collect();
            for process_type in types {
                let want = formation.count(&process_type);
                let mut have: Vec<(u32, Arc<Proc>)> = generation
                    .procs
                    .iter()
                    .filter(|p| p.process_type == process_type)
                    .map(|p| (index_of(p), Arc::clone(p)))
                    .collect();
                have.sort_by_key(|(i, _)| *i);
                let count = u32::try_from(have.len()).unwrap_or(u32::MAX);
                if want < count {
                    surplus.extend(have.split_off(want as usize).into_iter().map(|(_, p)| p));
                } else {
                    let taken: Vec<u32> = have.iter().map(|(i, _)| *i).collect();
                    let free = (1..).filter(|i| !taken.contains(i));
                    for index in free.take((want - count) as usize) {
                        let proc = inner.start(
                            &generation.spec,
                            &generation.launch,
                            &process_type,
                            index,
                        )?;
                        started.push(proc);
                    }
                }
            }
            generation
                .procs
                .retain(|p| !surplus.iter().any(|s| Arc::ptr_eq(s, p)));
            generation.procs.extend(started.iter().cloned());
        }
        inner.retire(app, surplus);
        // New web processes join the routes as each becomes healthy; one that does not
        // shows as crashed in `slip ps`, and its log says why.
        Ok(())
    }

    async fn restart(&self, app: &AppName, process_type: Option<&str>) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        let (spec, launch, old) = {
            let apps = inner.apps.lock().expect("never poisoned");
            let Some(generation) = apps.get(app).and_then(|r| r.current.as_ref()) else {
                return Ok(());
            };
            let old: Vec<Arc<Proc>> = generation
                .procs
                .iter()
                .filter(|p| process_type.is_none_or(|t| p.process_type == t))
                .cloned()
                .collect();
            (
                Arc::clone(&generation.spec),
                Arc::clone(&generation.launch),
                old,
            )
        };
        if let Some(t) = process_type
            && spec.processes.command(t).is_none()
        {
            return Err(RuntimeError::Invalid(format!(
                "no process of type {t} in {}",
                spec.version
            )));
        }
        let mut fresh = Vec::new();
        for proc in &old {
            match inner.start(&spec, &launch, &proc.process_type, index_of(proc)) {
                Ok(p) => fresh.push(p),
                Err(err) => {
                    inner.stop_all(&fresh).await;
                    return Err(err);
                }
            }
        }
        if let Err(err) = inner.all_healthy(&fresh).await {
            inner.stop_all(&fresh).await;
            return Err(err);
        }
        {
            let mut apps = inner.apps.lock().expect("never poisoned");
            if let Some(generation) = apps.get_mut(app).and_then(|r| r.current.as_mut()) {
                generation
                    .procs
                    .retain(|p| !old.iter().any(|o| Arc::ptr_eq(o, p)));
                generation.procs.extend(fresh.iter().cloned());
            }
        }
        inner.refresh_routes();
        inner.retire(app, old);
        Ok(())
    }

    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, RuntimeError> {
        let apps = self.inner.apps.lock().expect("never poisoned");
        let Some(run) = apps.get(app) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<ProcessInfo> = run
            .current
            .iter()
            .flat_map(|g| g.procs.iter())
            .map(|p| p.info())
            .chain(run.retiring.iter().map(|p| {
                let mut info = p.info();
                info.state = ProcessState::Stopping;
                info
            }))
            .collect();
        out.sort_by(|a, b| {
            (&a.process_type, index_from_name(&a.name), a.release).cmp(&(
                &b.process_type,
                index_from_name(&b.name),
                b.release,
            ))
        });
        Ok(out)
    }

    async fn set_routing(
        &self,
        app: &AppName,
        routing: &crate::Routing,
    ) -> Result<(), RuntimeError> {
        let hosts = routing
            .hosts
            .iter()
            .map(|host| {
                let certificate = host.certificate.as_ref().and_then(|pem| {
                    tls::certified_key(&pem.chain, &pem.key)
                        .inspect_err(|err| {
                            // Checked when it was stored; the platform's own serves instead.
                            tracing::error!(%app, host = %host.name, error = %err, "cannot serve the host's certificate");
                        })
                        .ok()
                });
                (host.name.clone(), certificate)
            })
            .collect();
        let settings = Arc::new(routing.settings.clone());
        let mut apps = self.inner.apps.lock().expect("never poisoned");
        let run = apps.entry(app.clone()).or_default();
        run.hosts = hosts;
        run.routing = settings;
        drop(apps);
        self.inner.refresh_routes();
        Ok(())
    }

    async fn stop(&self, app: &AppName) -> Result<(), RuntimeError> {
        let run = self.inner.apps.lock().expect("never poisoned").remove(app);
        self.inner.refresh_routes();
        if let Some(run) = run {
            let mut procs = run.retiring;
            procs.extend(run.current.map(|g| g.procs).unwrap_or_default());
            self.inner.stop_all(&procs).await;
        }
        self.inner.prune();
        Ok(())
    }
}

impl LocalRuntime {
    /// Stops every app's processes: the platform is going down. Not the [`Runtime`]'s: on
    /// Kubernetes, apps outlive the platform's processes. Background work (processes being
    /// retired, images being pruned) is waited for, up to the stop timeout and a little more.
    pub async fn shutdown(&self) {
        self.inner.stopping.cancel();
        let runs: Vec<AppRun> = self
            .inner
            .apps
            .lock()
            .expect("never poisoned")
            .drain()
            .map(|(_, r)| r)
            .collect();
        self.inner.refresh_routes();
        let procs: Vec<Arc<Proc>> = runs
            .into_iter()
            .flat_map(|r| {
                r.retiring
                    .into_iter()
                    .chain(r.current.map(|g| g.procs).unwrap_or_default())
            })
            .collect();
        self.inner.stop_all(&procs).await;
        let tasks = &self.inner.tasks;
        tasks.close();
        let deadline = self.inner.config.stop_timeout + Duration::from_secs(5);
        if tokio::time::timeout(deadline, tasks.wait()).await.is_err() {
            tracing::warn!(
                tasks = tasks.len(),
                "the local runtime's background work still running after {deadline:?}; stopping anyway"
            );
        }
    }
}

fn index_of(proc: &Proc) -> u32 {
    index_from_name(&proc.name)
}

fn index_from_name(name: &str) -> u32 {
    name.rsplit_once('.')
        .and_then(|(_, i)| i.parse().ok())
        .unwrap_or(0)
}
