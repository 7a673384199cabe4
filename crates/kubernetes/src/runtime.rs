//! [`KubeRuntime`]: the release manager's [`Runtime`] on a Kubernetes cluster. Every change
//! is a server-side apply of what [`render`](crate::render) made, with field manager
//! [`FIELD_MANAGER`]; applying what is already there changes nothing on the server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{AppName, Formation, ReleaseVersion};
use futures_util::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Client, Resource};
use releaser::{Lines, ProcessInfo, ProcessState, ReleaseSpec, Routing, Runtime, RuntimeError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::Error;
use crate::render::{self, Objects, Platform};
use crate::rollout::{self, Rollout};

/// The progress line said once a release's objects are applied, before its rollout is
/// waited for.
pub const APPLIED: &str = "       applied; waiting for the rollout";
/// How a rollout is judged from its Deployment.
type Judge = fn(&Deployment) -> Rollout;

/// The field manager of everything Slipway applies.
pub const FIELD_MANAGER: &str = "slipway";
/// The field manager of the Namespace's current-release annotation, written apart so an
/// apply of the namespace by [`FIELD_MANAGER`] never removes it.
const RELEASE_MANAGER: &str = "slipway-release";
/// The field manager of `slip ps:restart`'s template annotation, as `kubectl rollout
/// restart` writes its own.
const RESTART_MANAGER: &str = "slipway-restart";
/// How long after a Deployment's own progress deadline Slipway gives up waiting for the
/// Deployment controller to say so.
const GRACE: Duration = Duration::from_secs(30);
/// How long a destroyed app's namespace may take to go.
const NAMESPACE_GONE: Duration = Duration::from_secs(180);
/// How long a one-off process may wait to be scheduled and started.
const POD_START: Duration = Duration::from_secs(300);
/// How long a one-off process may run: its pod's `activeDeadlineSeconds`, and a minute.
const RUN_DEADLINE: Duration = Duration::from_secs(86_400 + 60);
/// How long the watch on the apps' pods may take to list them first.
const WATCH_READY: Duration = Duration::from_secs(30);
/// How long output still on its way from an ended process may take to arrive.
const DRAIN_OUTPUT: Duration = Duration::from_secs(2);

/// Runs releases on a Kubernetes cluster. Holds no state of its own: what serves is read
/// from the cluster, what should serve from the store. Cheap to clone.
#[derive(Clone)]
pub struct KubeRuntime {
    client: Client,
    platform: Platform,
    /// Every pod Slipway made, in every namespace, kept current by one watch: `slip ps` of
    /// a thousand apps every second is a read of memory, not a thousand requests.
    pods: reflector::Store<Pod>,
    _watching: Arc<AbortOnDrop>,
}

/// Stops the pods' watch when the last clone of the runtime goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for KubeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeRuntime")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl KubeRuntime {
    /// A runtime on `client`'s cluster; starts watching the pods Slipway made (call it
    /// within a Tokio runtime).
    pub fn new(client: Client, platform: Platform) -> KubeRuntime {
        let (pods, writer) = reflector::store();
        let ours = watcher::Config::default().labels(&format!(
            "{}={}",
            render::MANAGED_BY,
            render::SLIPWAY
        ));
        let watch = reflector::reflector(
            writer,
            watcher::watcher(Api::<Pod>::all(client.clone()), ours),
        )
        .default_backoff()
        .for_each(|event| {
            if let Err(err) = event {
                tracing::warn!(error = %err, "the watch on the apps' pods failed; retrying");
            }
            futures_util::future::ready(())
        });
        let watching = Arc::new(AbortOnDrop(tokio::spawn(watch)));
        KubeRuntime {
            client,
            platform,
            pods,
            _watching: watching,
        }
    }

    /// Connects with `kubeconfig`, or the usual configuration (`$KUBECONFIG` or
    /// `~/.kube/config`, else the pod's service account when running in a cluster); then
    /// checks the API server answers.
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        platform: Platform,
    ) -> Result<KubeRuntime, Error> {
        let client = client(kubeconfig).await?;
        let version = client
            .apiserver_version()
            .await
            .map_err(|e| Error::Config(format!("the API server does not answer: {e}")))?;
        tracing::info!(version = %version.git_version, "connected to Kubernetes");
        Ok(KubeRuntime::new(client, platform))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn api<K>(&self, app: &AppName) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &render::namespace_name(app))
    }

    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// Server-side applies `object` as [`FIELD_MANAGER`], taking over fields another manager
    /// changed: the store says what an app runs, not whoever edited it last.
    async fn apply<K>(&self, app: &AppName, object: &K) -> Result<K, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.api::<K>(app)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(Error::api(format!(
                "apply {} {name}",
                K::kind(&K::DynamicType::default())
            )))
    }

    async fn apply_cluster<K>(&self, object: &K, manager: &str) -> Result<K, Error>
    where
        K: Resource<Scope = ClusterResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        Api::<K>::all(self.client.clone())
            .patch(
                &name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(Error::api(format!(
                "apply {} {name}",
                K::kind(&K::DynamicType::default())
            )))
    }

    /// What every process of a release needs before it starts: the namespace, its
    /// isolation, the registry credentials, and the release's config.
    async fn apply_base(&self, spec: &ReleaseSpec, objects: &Objects) -> Result<(), Error> {
        self.apply_cluster(&objects.namespace, FIELD_MANAGER)
            .await?;
        tokio::try_join!(
            self.apply_isolation(spec, objects),
            self.apply_env(spec, &objects.env),
        )?;
        Ok(())
    }

    /// What every pod of the app needs in its namespace besides its config: the network
    /// policy that keeps it apart, and the registry's pull secret.
    async fn apply_isolation(&self, spec: &ReleaseSpec, objects: &Objects) -> Result<(), Error> {
        let pull_secret = async {
            match &objects.pull_secret {
                Some(secret) => self.apply(&spec.app, secret).await.map(drop),
                None => Ok(()),
            }
        };
        tokio::try_join!(self.apply(&spec.app, &objects.network_policy), pull_secret)?;
        Ok(())
    }

    /// The release's Secret: immutable, so only ever created; one that exists is the
    /// release's already.
    async fn apply_env(&self, spec: &ReleaseSpec, env: &Secret) -> Result<(), Error> {
        let api = self.api::<Secret>(&spec.app);
        let name = env.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), env).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(Error::api(format!("create Secret {name}"))(e)),
        }
    }

    /// Applies every object of the release and waits for its rollout; `Err` says why it
    /// did not complete.
    async fn apply_and_roll_out(
        &self,
        spec: &ReleaseSpec,
        objects: &Objects,
        judge: Judge,
        progress: Lines<'_>,
    ) -> Result<(), Error> {
        self.apply_base(spec, objects).await?;
        // The rest at once: none of them needs another (the pods need the Secret, there
        // already).
        let service = async {
            match &objects.service {
                Some(service) => self.apply(&spec.app, service).await.map(drop),
                None => Ok(()),
            }
        };
        let deployments = futures_util::future::try_join_all(
            objects.deployments.iter().map(|d| self.apply(&spec.app, d)),
        );
        let autoscalers = futures_util::future::try_join_all(
            objects.autoscalers.iter().map(|a| self.apply(&spec.app, a)),
        );
        tokio::try_join!(
            service,
            deployments,
            autoscalers,
            self.prune_autoscalers(&spec.app, objects)
        )?;
        progress(APPLIED);
        self.wait_for_rollouts(&spec.app, objects, judge, progress)
            .await
    }

    /// Waits for each Deployment's rollout, saying what it waits for as that changes.
    async fn wait_for_rollouts(
        &self,
        app: &AppName,
        objects: &Objects,
        judge: Judge,
        progress: Lines<'_>,
    ) -> Result<(), Error> {
        let deadline = Duration::from_secs(
            u64::try_from(self.platform.progress_deadline_seconds).unwrap_or(600),
        ) + GRACE;
        let names: Vec<String> = objects
            .deployments
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        let waits = names
            .iter()
            .map(|name| self.wait_for_rollout(app, name, deadline, judge, progress));
        let outcomes = futures_util::future::join_all(waits).await;
        outcomes.into_iter().collect()
    }

    async fn wait_for_rollout(
        &self,
        app: &AppName,
        name: &str,
        deadline: Duration,
        judge: Judge,
        progress: Lines<'_>,
    ) -> Result<(), Error> {
        let api = self.api::<Deployment>(app);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut said = String::new();
        let watch =
            async {
                let mut stream = watcher::watcher(api, config).boxed();
                while let Some(event) = stream.try_next().await.map_err(|e| {
                    Error::Timeout(format!("lost the watch on Deployment {name}: {e}"))
                })? {
                    let deployment = match event {
                        watcher::Event::Apply(d) | watcher::Event::InitApply(d) => d,
                        watcher::Event::Delete(_) => {
                            return Err(Error::App(format!("Deployment {name} was deleted")));
                        }
                        watcher::Event::Init | watcher::Event::InitDone => continue,
                    };
                    match judge(&deployment) {
                        Rollout::Done => return Ok(()),
                        Rollout::Failed(reason) => return Err(Error::App(reason)),
                        Rollout::Waiting(what) => {
                            if what != said {
                                progress(&format!("       {name}: {what}"));
                                said = what;
                            }
                        }
                    }
                }
                Err(Error::Timeout(format!(
                    "the watch on Deployment {name} ended"
                )))
            };
        match tokio::time::timeout(deadline, watch).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::App(format!(
                "Deployment {name} did not finish rolling out in {} s",
                deadline.as_secs()
            ))),
        }
    }

    /// Why `spec`'s pods are not ready, from their conditions and their containers' states.
    async fn trouble(&self, spec: &ReleaseSpec) -> Option<String> {
        let selector = format!(
            "{}={},{}={}",
            render::NAME,
            spec.app,
            render::RELEASE,
            spec.version
        );
        let listed = ListParams::default().labels(&selector);
        let (replica_sets, pods) = (
            self.api::<ReplicaSet>(&spec.app),
            self.api::<Pod>(&spec.app),
        );
        let (replica_sets, pods) = tokio::join!(replica_sets.list(&listed), pods.list(&listed));
        // A ReplicaSet that cannot make its pods (refused by admission, over quota) has
        // no pods to say why.
        let replica_sets = replica_sets.map(|l| l.items).unwrap_or_default();
        let pods = pods.map(|l| l.items).unwrap_or_default();
        match (
            rollout::replica_set_trouble(&replica_sets),
            rollout::pod_trouble(&pods),
        ) {
            (Some(r), Some(p)) => Some(format!("{r}; {p}")),
            (r, p) => r.or(p),
        }
    }

    /// Deletes what the app's releases have of `K` that Slipway made and `keep` does not
    /// name; the objects of its routing stay.
    async fn prune<K>(&self, app: &AppName, keep: &BTreeSet<String>) -> Result<(), Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
        K::DynamicType: Default,
    {
        self.prune_selected::<K>(app, &format!("!{}", render::ROUTING), keep)
            .await
    }

    /// Deletes what the app has of `K` that Slipway made, `selector` selects and `keep`
    /// does not name.
    async fn prune_selected<K>(
        &self,
        app: &AppName,
        selector: &str,
        keep: &BTreeSet<String>,
    ) -> Result<(), Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
        K::DynamicType: Default,
    {
        let api = self.api::<K>(app);
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        // From the API server's cache, as fresh as it is: a consistent read waits for the
        // cache to catch up with etcd (about 100 ms), and a list a moment stale prunes
        // nothing it should not (what this release applied is in `keep`).
        let ours = ListParams::default()
            .labels(&format!(
                "{}={},{}={},{selector}",
                render::NAME,
                app,
                render::MANAGED_BY,
                render::SLIPWAY
            ))
            .match_any();
        let listed = api
            .list_metadata(&ours)
            .await
            .map_err(Error::api(format!("list the app's {kind}s")))?;
        for object in listed.items {
            let Some(name) = object.metadata.name else {
                continue;
            };
            if keep.contains(&name) {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(Error::api(format!("delete {kind} {name}"))(e)),
            }
        }
        Ok(())
    }

    async fn prune_autoscalers(&self, app: &AppName, objects: &Objects) -> Result<(), Error> {
        self.prune::<HorizontalPodAutoscaler>(app, &names(&objects.autoscalers))
            .await
    }

    /// After a rollout completed: what the release no longer has goes (a removed process
    /// type's Deployment, the Service of an app that stopped serving web, earlier releases'
    /// Secrets).
    async fn prune_after(&self, app: &AppName, objects: &Objects) -> Result<(), Error> {
        let mut secrets = names(std::slice::from_ref(&objects.env));
        secrets.extend(names(objects.pull_secret.as_slice()));
        let deployments = names(&objects.deployments);
        let services = names(objects.service.as_slice());
        tokio::try_join!(
            self.prune::<Deployment>(app, &deployments),
            self.prune_autoscalers(app, objects),
            self.prune::<Service>(app, &services),
            self.prune::<Secret>(app, &secrets),
        )?;
        Ok(())
    }

    /// Applies the app's routing: its TLS Secrets and maintenance Service first, so the
    /// Ingress never names one not there yet; then the Ingress (or its deletion, routing
    /// off); then what it no longer names goes.
    async fn route(&self, app: &AppName, routing: &Routing) -> Result<(), Error> {
        let routed = render::routing(app, routing, &self.platform);
        self.apply_cluster(&render::namespace(app), FIELD_MANAGER)
            .await?;
        let maintenance = async {
            match &routed.maintenance {
                Some(service) => self.apply(app, service).await.map(drop),
                None => Ok(()),
            }
        };
        tokio::try_join!(
            futures_util::future::try_join_all(routed.tls.iter().map(|s| self.apply(app, s))),
            maintenance,
        )?;
        match &routed.ingress {
            Some(ingress) => drop(self.apply(app, ingress).await?),
            None => {
                let name = app.to_string();
                match self
                    .api::<Ingress>(app)
                    .delete(&name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(e) => return Err(Error::api(format!("delete Ingress {name}"))(e)),
                }
            }
        }
        let selector = |part: &str| format!("{}={part}", render::ROUTING);
        let (tls, maintenance) = (
            selector(render::ROUTING_TLS),
            selector(render::ROUTING_MAINTENANCE),
        );
        let (tls_kept, maintenance_kept) =
            (names(&routed.tls), names(routed.maintenance.as_slice()));
        tokio::try_join!(
            self.prune_selected::<Secret>(app, &tls, &tls_kept),
            self.prune_selected::<Service>(app, &maintenance, &maintenance_kept),
        )?;
        Ok(())
    }

    /// Records on the Namespace that `version` serves.
    async fn mark_current(&self, app: &AppName, version: ReleaseVersion) -> Result<(), Error> {
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(render::namespace_name(app)),
                annotations: Some(BTreeMap::from([(
                    render::CURRENT.to_owned(),
                    version.to_string(),
                )])),
                ..Default::default()
            },
            ..Namespace::default()
        };
        self.apply_cluster(&namespace, RELEASE_MANAGER).await?;
        Ok(())
    }

    /// Puts back what served before `spec`'s rollout failed: `previous`'s objects are
    /// applied again, and what `spec` added goes. When `nothing_served`, `spec`'s processes
    /// go.
    async fn put_back(
        &self,
        spec: &ReleaseSpec,
        previous: Option<&ReleaseSpec>,
        nothing_served: bool,
        formation: &Formation,
        progress: Lines<'_>,
    ) -> Result<(), Error> {
        let Some(previous) = previous else {
            if nothing_served {
                self.prune::<Deployment>(&spec.app, &BTreeSet::new())
                    .await?;
                self.prune::<HorizontalPodAutoscaler>(&spec.app, &BTreeSet::new())
                    .await?;
            }
            return Ok(());
        };
        progress(&format!("-----> Applying {} again", previous.version));
        let objects = render::render(previous, formation, &self.platform)?;
        let quiet = |_: &str| {};
        self.apply_and_roll_out(previous, &objects, rollout::replica_status, &quiet)
            .await?;
        self.prune_after(&previous.app, &objects).await
    }

    /// The release the Namespace says serves.
    async fn serving(&self, app: &AppName) -> Result<Option<ReleaseVersion>, Error> {
        let namespace = self
            .namespaces()
            .get_opt(&render::namespace_name(app))
            .await
            .map_err(Error::api("read the app's namespace"))?;
        Ok(namespace
            .and_then(|n| n.metadata.annotations)
            .and_then(|a| a.get(render::CURRENT).cloned())
            .and_then(|v| ReleaseVersion::parse(&v).ok()))
    }

    async fn deploy_release(
        &self,
        spec: &ReleaseSpec,
        formation: &Formation,
        previous: Option<&ReleaseSpec>,
        progress: Lines<'_>,
    ) -> Result<(), Error> {
        let objects = render::render(spec, formation, &self.platform)?;
        let serving = self.serving(&spec.app).await?;
        progress(&format!(
            "-----> Rolling out {} to namespace {}: {}",
            spec.version,
            render::namespace_name(&spec.app),
            describe(&objects)
        ));
        match self
            .apply_and_roll_out(spec, &objects, rollout::status, progress)
            .await
        {
            Ok(()) => {
                self.mark_current(&spec.app, spec.version).await?;
                self.prune_after(&spec.app, &objects).await?;
                progress(&format!("-----> {} is rolled out", spec.version));
                Ok(())
            }
            Err(err) => {
                let err = match err {
                    Error::App(reason) => Error::App(match self.trouble(spec).await {
                        Some(trouble) => format!("{}: {trouble}", reason.trim_end_matches('.')),
                        None => reason,
                    }),
                    other => other,
                };
                progress(&format!(
                    "-----> {} failed to roll out: {err}",
                    spec.version
                ));
                // Whatever of it was applied goes back to what served: an object the API
                // server refused leaves the others of the release in place otherwise. The
                // release that serves, applied again (a release manager starting), stays:
                // nothing else is there to go back to.
                if serving == Some(spec.version) {
                    return Err(err);
                }
                let previous = previous.filter(|p| Some(p.version) == serving);
                if let Err(again) = self
                    .put_back(spec, previous, serving.is_none(), formation, progress)
                    .await
                {
                    tracing::error!(app = %spec.app, error = %again, "cannot apply the previous release again");
                    progress(&format!(
                        "       and the previous release could not be applied again: {again}"
                    ));
                }
                Err(err)
            }
        }
    }

    /// Waits, up to `deadline`, until `name` satisfies `done`, and returns it then.
    async fn wait_for<K>(
        &self,
        api: Api<K>,
        name: &str,
        deadline: Duration,
        done: impl Fn(&K) -> bool,
    ) -> Result<K, Error>
    where
        K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let watch = async {
            let mut stream = watcher::watcher(api, config).boxed();
            while let Some(event) = stream
                .try_next()
                .await
                .map_err(|e| Error::Timeout(format!("lost the watch on {kind} {name}: {e}")))?
            {
                match event {
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        if done(&object) {
                            return Ok(object);
                        }
                    }
                    watcher::Event::Delete(_) => {
                        return Err(Error::App(format!("{kind} {name} was deleted")));
                    }
                    watcher::Event::Init | watcher::Event::InitDone => {}
                }
            }
            Err(Error::Timeout(format!("the watch on {kind} {name} ended")))
        };
        tokio::time::timeout(deadline, watch).await.map_err(|_| {
            Error::Timeout(format!("waited {} s for {kind} {name}", deadline.as_secs()))
        })?
    }

    /// Streams a pod's output to `output` until it ends, bounded per line and in pace.
    async fn stream_output(
        &self,
        app: &AppName,
        pod: &str,
        output: Lines<'_>,
    ) -> Result<(), Error> {
        let api = self.api::<Pod>(app);
        let params = LogParams {
            container: Some(render::CONTAINER.to_owned()),
            follow: true,
            ..LogParams::default()
        };
        let stream = api
            .log_stream(pod, &params)
            .await
            .map_err(Error::api(format!("read the output of pod {pod}")))?;
        let reader = tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream);
        logs::read_lines(Some(reader), output, &logs::Pace::default()).await;
        Ok(())
    }

    /// Runs a pod's process to its end: waits for it to start, streams its output, and
    /// returns its exit status once the pod has ended. Output still on its way when it ends
    /// gets a moment to arrive.
    async fn run_pod(&self, app: &AppName, pod: &str, output: Lines<'_>) -> Result<i32, Error> {
        let api = self.api::<Pod>(app);
        let started = self
            .wait_for(api.clone(), pod, POD_START, |p: &Pod| {
                !matches!(phase(p), None | Some("Pending"))
            })
            .await?;
        if !matches!(phase(&started), Some("Running" | "Succeeded" | "Failed")) {
            return Err(Error::App(format!("pod {pod} did not start")));
        }
        let streaming = self.stream_output(app, pod, output);
        let ended = self.wait_for(api, pod, RUN_DEADLINE, |p: &Pod| {
            matches!(phase(p), Some("Succeeded" | "Failed"))
        });
        tokio::pin!(streaming, ended);
        let ended = tokio::select! {
            streamed = &mut streaming => {
                // Output that cannot be read (a container that never started has none) does
                // not change how the process ended.
                if let Err(err) = streamed {
                    output(&format!("(its output cannot be read: {err})"));
                }
                ended.await?
            }
            ended = &mut ended => {
                let ended = ended?;
                let _ = tokio::time::timeout(DRAIN_OUTPUT, streaming).await;
                ended
            }
        };
        Ok(exit_status(&ended))
    }

    async fn run_release_phase(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        output: Lines<'_>,
    ) -> Result<i32, Error> {
        let job = render::release_job(spec, command, &self.platform)?;
        let name = render::release_job_name(&spec.app, spec.version);
        let jobs = self.api::<Job>(&spec.app);
        // A Job of this release that exists already is the same release phase, begun by a
        // release manager that stopped: its outcome is this one's.
        match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(Error::api(format!("create Job {name}"))(e)),
        }
        let pods = self.api::<Pod>(&spec.app);
        let selector = format!("job-name={name}");
        let pod = self.wait_for_pod(&pods, &selector, POD_START).await?;
        let status = self.run_pod(&spec.app, &pod, output).await?;
        let job = self
            .wait_for(jobs, &name, POD_START, |j: &Job| job_finished(j).is_some())
            .await?;
        Ok(match job_finished(&job) {
            Some(true) => 0,
            _ if status == 0 => 1,
            _ => status,
        })
    }

    /// The name of the first pod matching `selector`, once there is one.
    async fn wait_for_pod(
        &self,
        pods: &Api<Pod>,
        selector: &str,
        deadline: Duration,
    ) -> Result<String, Error> {
        let config = watcher::Config::default().labels(selector);
        let watch =
            async {
                let mut stream = watcher::watcher(pods.clone(), config).boxed();
                while let Some(event) = stream.try_next().await.map_err(|e| {
                    Error::Timeout(format!("lost the watch on pods {selector}: {e}"))
                })? {
                    if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = event
                        && let Some(name) = pod.metadata.name
                    {
                        return Ok(name);
                    }
                }
                Err(Error::Timeout(format!(
                    "the watch on pods {selector} ended"
                )))
            };
        tokio::time::timeout(deadline, watch)
            .await
            .map_err(|_| Error::Timeout(format!("no pod {selector} in {} s", deadline.as_secs())))?
    }

    async fn run_one_off(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, Error> {
        let suffix = format!("{}-{}", source.replace('.', "-"), random_suffix());
        let pod = render::run_pod(spec, command, &suffix, &self.platform)?;
        self.run_to_end(&spec.app, &pod, output).await
    }

    /// A test run: a pod of its own with the test run's environment inline, in the app's
    /// namespace (made if the app has never run here), its isolation applied first. No
    /// release Secret is read or made.
    async fn run_test_pod(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, Error> {
        let objects = render::render(spec, &Formation::default(), &self.platform)?;
        self.apply_cluster(&objects.namespace, FIELD_MANAGER)
            .await?;
        self.apply_isolation(spec, &objects).await?;
        let suffix = format!("{}-{}", source.replace('.', "-"), random_suffix());
        let pod = render::test_pod(spec, command, &suffix, &self.platform)?;
        self.run_to_end(&spec.app, &pod, output).await
    }

    /// Creates a pod that runs once, follows it to its end and deletes it, as `kubectl run
    /// --rm` does: the pod's exit status.
    async fn run_to_end(&self, app: &AppName, pod: &Pod, output: Lines<'_>) -> Result<i32, Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pods = self.api::<Pod>(app);
        pods.create(&PostParams::default(), pod)
            .await
            .map_err(Error::api(format!("create pod {name}")))?;
        let status = self.run_pod(app, &name, output).await;
        if let Err(err) = pods.delete(&name, &DeleteParams::background()).await {
            tracing::warn!(pod = %name, error = %err, "cannot delete a finished one-off pod");
        }
        status
    }

    async fn processes_of(&self, app: &AppName) -> Result<Vec<ProcessInfo>, Error> {
        tokio::time::timeout(WATCH_READY, self.pods.wait_until_ready())
            .await
            .map_err(|_| {
                Error::Timeout("the watch on the apps' pods has not listed them yet".to_owned())
            })?
            .map_err(|_| Error::Timeout("the watch on the apps' pods stopped".to_owned()))?;
        let namespace = render::namespace_name(app);
        let mut processes: Vec<ProcessInfo> = self
            .pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter_map(|p| process_info(p))
            .collect();
        processes.sort_by(|a, b| {
            (a.process_type.as_str(), a.name.as_str())
                .cmp(&(b.process_type.as_str(), b.name.as_str()))
        });
        Ok(processes)
    }

    async fn restart_deployments(
        &self,
        app: &AppName,
        process_type: Option<&str>,
    ) -> Result<(), Error> {
        let mut selector = format!(
            "{}={},{}={}",
            render::NAME,
            app,
            render::MANAGED_BY,
            render::SLIPWAY
        );
        if let Some(t) = process_type {
            selector.push_str(&format!(",{}={t}", render::COMPONENT));
        }
        let api = self.api::<Deployment>(app);
        let deployments = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::api("list the app's Deployments"))?;
        if deployments.items.is_empty()
            && let Some(t) = process_type
        {
            return Err(Error::App(format!("{app} runs no {t} processes")));
        }
        let now = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let patch = serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {render::RESTARTED_AT: now}}}}
        });
        let mut names = Vec::new();
        for deployment in deployments.items {
            let Some(name) = deployment.metadata.name else {
                continue;
            };
            api.patch(
                &name,
                &PatchParams {
                    field_manager: Some(RESTART_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::api(format!("restart Deployment {name}")))?;
            names.push(name);
        }
        let deadline = Duration::from_secs(
            u64::try_from(self.platform.progress_deadline_seconds).unwrap_or(600),
        ) + GRACE;
        let quiet = |_: &str| {};
        for name in names {
            self.wait_for_rollout(app, &name, deadline, rollout::status, &quiet)
                .await?;
        }
        Ok(())
    }

    async fn delete_namespace(&self, app: &AppName) -> Result<(), Error> {
        let name = render::namespace_name(app);
        let namespaces = self.namespaces();
        match namespaces.delete(&name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(e) => return Err(Error::api(format!("delete namespace {name}"))(e)),
        }
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let gone = async {
            let mut stream = watcher::watcher(namespaces.clone(), config).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Delete(_)) => return,
                    // Listed, and not there: gone already.
                    Ok(watcher::Event::InitDone) => {
                        if matches!(namespaces.get_opt(&name).await, Ok(None)) {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(NAMESPACE_GONE, gone).await.map_err(|_| {
            Error::Timeout(format!(
                "namespace {name} is still being deleted after {} s; it goes once its finalizers finish",
                NAMESPACE_GONE.as_secs()
            ))
        })
    }
}

/// A client of the cluster `kubeconfig` names, or of the usual configuration.
pub(crate) async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, Error> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
    };
    connect(config)
}

/// A client with Nagle's algorithm off. kube's own leaves it on, and a request whose body
/// leaves in a second TLS record then waits for the server's delayed ACK: 40 ms on every
/// apply, measured.
fn connect(config: kube::Config) -> Result<Client, Error> {
    use kube::client::ConfigExt as _;
    let failed = |e: kube::Error| Error::Config(e.to_string());
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(failed)?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(failed)?)
        .layer(config.extra_headers_layer().map_err(failed)?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

fn names<K: Resource>(objects: &[K]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect()
}

fn describe(objects: &Objects) -> String {
    let deployments: Vec<String> = objects
        .deployments
        .iter()
        .map(|d| {
            let name = d.metadata.name.as_deref().unwrap_or("?");
            match d.spec.replicas {
                Some(n) => format!("{name}={n}"),
                None => format!("{name}=autoscaled"),
            }
        })
        .collect();
    if deployments.is_empty() {
        "no processes".to_owned()
    } else {
        deployments.join(", ")
    }
}

fn random_suffix() -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[rng.random_range(0..27)]))
        .collect()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// A finished pod's exit status: its container's, else 0 for Succeeded and 1 for Failed.
fn exit_status(pod: &Pod) -> i32 {
    let terminated = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == render::CONTAINER))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    match (terminated, phase(pod)) {
        (Some(t), _) => t.exit_code,
        (None, Some("Succeeded")) => 0,
        _ => 1,
    }
}

/// `Some(true)` once the Job completed, `Some(false)` once it failed.
fn job_finished(job: &Job) -> Option<bool> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find_map(|c| {
        (c.status == "True").then_some(())?;
        match c.type_.as_str() {
            "Complete" => Some(true),
            "Failed" => Some(false),
            _ => None,
        }
    })
}

fn process_info(pod: &Pod) -> Option<ProcessInfo> {
    let labels = pod.metadata.labels.as_ref()?;
    let process_type = labels.get(render::COMPONENT)?.clone();
    let release = ReleaseVersion::parse(labels.get(render::RELEASE)?).ok()?;
    let status = pod.status.as_ref();
    let terminal = matches!(phase(pod), Some("Succeeded" | "Failed"));
    if terminal && process_type == domain::ProcessType::RELEASE {
        // A release phase that ran: history, not a process.
        return None;
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let state = if pod.metadata.deletion_timestamp.is_some() {
        ProcessState::Stopping
    } else if terminal
        || status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff")
            })
    {
        ProcessState::Crashed
    } else if ready.is_some_and(|c| c.status == "True") {
        ProcessState::Up
    } else {
        ProcessState::Starting
    };
    let since = ready
        .and_then(|c| c.last_transition_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
        .sum();
    let command = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.as_ref())
        .and_then(|a| a.get(3))
        .cloned()
        .unwrap_or_default();
    Some(ProcessInfo {
        name: pod.metadata.name.clone()?,
        process_type,
        command,
        release,
        state,
        since,
        restarts,
    })
}

#[async_trait]
impl Runtime for KubeRuntime {
    async fn run_once(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        let objects = render::render(spec, &Formation::default(), &self.platform)?;
        self.apply_base(spec, &objects).await?;
        let status = if source == domain::ProcessType::RELEASE {
            self.run_release_phase(spec, command, output).await?
        } else {
            self.run_one_off(spec, command, source, output).await?
        };
        Ok(status)
    }

    /// A test run's pod carries its environment inline: a one-off's would take the release
    /// Secret `<app>-v<N>-env` of its spec's version (creating it if absent), so a test would
    /// borrow a release's config or plant one.
    async fn run_test(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        Ok(self.run_test_pod(spec, command, source, output).await?)
    }

    async fn deploy(
        &self,
        spec: &ReleaseSpec,
        formation: &Formation,
        previous: Option<&ReleaseSpec>,
        progress: Lines<'_>,
    ) -> Result<(), RuntimeError> {
        Ok(self
            .deploy_release(spec, formation, previous, progress)
            .await?)
    }

    async fn current(&self, app: &AppName) -> Result<Option<ReleaseVersion>, RuntimeError> {
        Ok(self.serving(app).await?)
    }

    async fn scale(&self, spec: &ReleaseSpec, formation: &Formation) -> Result<(), RuntimeError> {
        let objects = render::render(spec, formation, &self.platform)?;
        let quiet = |_: &str| {};
        self.apply_and_roll_out(spec, &objects, rollout::status, &quiet)
            .await?;
        self.prune_after(&spec.app, &objects).await?;
        Ok(())
    }

    async fn restart(&self, app: &AppName, process_type: Option<&str>) -> Result<(), RuntimeError> {
        Ok(self.restart_deployments(app, process_type).await?)
    }

    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, RuntimeError> {
        Ok(self.processes_of(app).await?)
    }

    async fn set_routing(&self, app: &AppName, routing: &Routing) -> Result<(), RuntimeError> {
        Ok(self.route(app, routing).await?)
    }

    async fn stop(&self, app: &AppName) -> Result<(), RuntimeError> {
        Ok(self.delete_namespace(app).await?)
    }
}
