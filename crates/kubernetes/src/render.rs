//! Rendering: a release, its formation, its app's host names and process settings, and the
//! platform's settings in; the Kubernetes objects that run it out. A pure function, so
//! what Slipway asks of a cluster is read and snapshot-tested here, without one.
//!
//! The layout is the product contract's (§5): a Namespace per app, an immutable Secret per
//! release consumed with `envFrom`, a Deployment per process type `<app>-<type>` with the
//! image by digest, a Service and an Ingress for web, a HorizontalPodAutoscaler per
//! autoscaled type, a NetworkPolicy that isolates the namespace, a Job for the release
//! phase and a Pod per one-off run. Routing adds a TLS Secret per host with a certificate
//! of its own and, in maintenance, a Service without pods (docs/kubernetes.md).

use std::collections::BTreeMap;

use domain::{
    AppName, Check, ImageRef, Limits, Probe as DomainProbe, ProcessType, ReleaseVersion,
    TypeSettings,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, ExecAction, HTTPGetAction,
    LocalObjectReference, Namespace, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecurityContext, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use releaser::{CertificatePem, LAUNCHER, ReleaseSpec, Routing};

use crate::Error;

/// The app's name: every object of an app carries it.
pub const NAME: &str = "app.kubernetes.io/name";
/// The process type (`web`, `worker`), `release` for the release phase, `run` for a
/// one-off.
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const SLIPWAY: &str = "slipway";
/// `v<N>`, on whatever a release made.
pub const RELEASE: &str = "slipway.io/release";
/// On the Namespace: the release that serves, written once its rollout completed.
pub const CURRENT: &str = "slipway.io/current-release";
/// On a pod template: when `slip ps:restart` last asked for fresh processes.
pub const RESTARTED_AT: &str = "slipway.io/restarted-at";
/// The port a web process listens on, given to it as `$PORT`.
pub const WEB_PORT: u16 = 5000;
/// The app container's name in every pod.
pub const CONTAINER: &str = "app";

/// What the platform decides for every app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Rollouts that make no progress for this long fail (`progressDeadlineSeconds`).
    pub progress_deadline_seconds: i32,
    /// The IngressClass of the cluster's ingress controller; `None`: the cluster's default.
    pub ingress_class: Option<String>,
    /// The namespace the ingress controller runs in: the only one, besides the app's own,
    /// allowed to reach an app's pods.
    pub ingress_namespace: String,
    /// `~/.docker/config.json`-style credentials for the registry the builder pushes to,
    /// when it needs them: each app's namespace gets them as an imagePullSecret.
    pub pull_credentials: Option<Vec<u8>>,
    /// Annotations every app's Ingress carries (`--ingress-annotation`), such as
    /// `cert-manager.io/cluster-issuer`; a routing switch's own key wins over one here.
    pub ingress_annotations: BTreeMap<String, String>,
    /// Every host without a certificate of its own gets a tls entry too, naming a Secret
    /// ([`issued_secret_name`]) for an issuer such as cert-manager to fill; Slipway never
    /// writes or prunes it. Off: the ingress controller's default certificate serves them.
    pub tls_for_every_host: bool,
}

impl Default for Platform {
    fn default() -> Platform {
        Platform {
            progress_deadline_seconds: 300,
            ingress_class: None,
            ingress_namespace: "ingress-nginx".to_owned(),
            pull_credentials: None,
            ingress_annotations: BTreeMap::new(),
            tls_for_every_host: false,
        }
    }
}

/// Every object of an app's release, in the order they are applied. The app's Ingress is
/// not among them: its host names and switches change without a release ([`routing`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    pub namespace: Namespace,
    pub network_policy: NetworkPolicy,
    pub pull_secret: Option<Secret>,
    pub env: Secret,
    pub service: Option<Service>,
    pub deployments: Vec<Deployment>,
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
}

/// The objects that run `spec` as `formation` says.
pub fn render(
    spec: &ReleaseSpec,
    formation: &domain::Formation,
    platform: &Platform,
) -> Result<Objects, Error> {
    let image = pinned_image(&spec.image)?;
    let web = ProcessType::parse(ProcessType::WEB).expect("web is a process type");
    let mut deployments = Vec::new();
    let mut autoscalers = Vec::new();
    for (process_type, command) in spec.processes.iter() {
        if process_type.is_one_off() {
            continue;
        }
        let settings = spec.settings.get(process_type).cloned().unwrap_or_default();
        let count = formation.count(process_type.as_str());
        deployments.push(deployment(
            spec,
            &image,
            process_type,
            command,
            count,
            &settings,
            platform,
        ));
        if let Some(autoscale) = settings.autoscale {
            autoscalers.push(autoscaler(&spec.app, process_type, autoscale));
        }
    }
    let service = spec
        .processes
        .command(ProcessType::WEB)
        .map(|_| service(&spec.app, &web));
    Ok(Objects {
        namespace: namespace(&spec.app),
        network_policy: network_policy(&spec.app, platform),
        pull_secret: pull_secret(&spec.app, platform),
        env: env_secret(spec),
        service,
        deployments,
        autoscalers,
    })
}

/// The image by digest; a runtime that pulls from a registry has nothing else to go on.
fn pinned_image(image: &ImageRef) -> Result<String, Error> {
    match image {
        ImageRef::Registry(_) if image.digest().is_some() => {
            // `host/repo@sha256:…`: the tag, if any, is for people.
            let repository = image
                .repository()
                .expect("a registry image has a repository");
            let registry = image.registry().expect("a registry image has a registry");
            let digest = image.digest().expect("checked");
            Ok(format!("{registry}/{repository}@{digest}"))
        }
        ImageRef::Registry(_) => Err(Error::Image(format!(
            "{image} has no digest; the Kubernetes runtime runs images by digest only"
        ))),
        ImageRef::Local(_) => Err(Error::Image(format!(
            "{image} is in the platform's local image store only: run slipwayd with --registry so builds are pushed where the cluster can pull them, then push again"
        ))),
    }
}

/// The labels every object of the app carries.
pub fn app_labels(app: &AppName) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_owned(), app.to_string()),
        (MANAGED_BY.to_owned(), SLIPWAY.to_owned()),
    ])
}

/// The labels that select a process type's pods (a Deployment's selector, which never
/// changes).
pub fn selector_labels(app: &AppName, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_owned(), app.to_string()),
        (COMPONENT.to_owned(), component.to_owned()),
    ])
}

fn labels(app: &AppName, component: &str, version: ReleaseVersion) -> BTreeMap<String, String> {
    let mut labels = app_labels(app);
    labels.insert(COMPONENT.to_owned(), component.to_owned());
    labels.insert(RELEASE.to_owned(), version.to_string());
    labels
}

fn meta(name: impl Into<String>, app: &AppName, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace_name(app)),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The app's namespace: its name.
pub fn namespace_name(app: &AppName) -> String {
    app.to_string()
}

pub fn deployment_name(app: &AppName, process_type: &str) -> String {
    format!("{app}-{process_type}")
}

pub fn env_secret_name(app: &AppName, version: ReleaseVersion) -> String {
    format!("{app}-v{}-env", version.get())
}

pub fn release_job_name(app: &AppName, version: ReleaseVersion) -> String {
    format!("{app}-release-v{}", version.get())
}

fn pull_secret_name(app: &AppName) -> String {
    format!("{app}-registry")
}

/// The app's namespace, held to the `restricted` Pod Security Standard: the API server
/// itself refuses a pod of the app that could run as root, escalate privileges or keep a
/// capability.
pub fn namespace(app: &AppName) -> Namespace {
    let mut labels = app_labels(app);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".to_owned(),
        );
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(namespace_name(app)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Only the app's own pods and the ingress controller reach the app's pods.
fn network_policy(app: &AppName, platform: &Platform) -> NetworkPolicy {
    let namespace_peer = |name: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                name.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: meta("isolate", app, app_labels(app)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    namespace_peer(&namespace_name(app)),
                    namespace_peer(&platform.ingress_namespace),
                ]),
                ..NetworkPolicyIngressRule::default()
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

fn pull_secret(app: &AppName, platform: &Platform) -> Option<Secret> {
    let credentials = platform.pull_credentials.as_ref()?;
    Some(Secret {
        metadata: meta(pull_secret_name(app), app, app_labels(app)),
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(credentials.clone()),
        )])),
        ..Secret::default()
    })
}

/// The release's config, immutable: a release's config never changes, and a config change
/// is a new release with a new Secret.
pub fn env_secret(spec: &ReleaseSpec) -> Secret {
    let data = spec
        .config
        .iter()
        .map(|(key, value)| (key.to_owned(), ByteString(value.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: meta(
            env_secret_name(&spec.app, spec.version),
            &spec.app,
            labels(&spec.app, "env", spec.version),
        ),
        immutable: Some(true),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The pod of a process: the image by digest, the release's config, the launcher, and no
/// privilege of any kind.
fn pod_spec(
    spec: &ReleaseSpec,
    image: &str,
    process_type: &str,
    command: &str,
    settings: &TypeSettings,
    restart_policy: &str,
    platform: &Platform,
) -> PodSpec {
    let is_web = process_type == ProcessType::WEB;
    // Heroku's `DYNO` names the process (`web.1`); a pod has no number, so its type.
    let mut env = vec![EnvVar {
        name: "DYNO".to_owned(),
        value: Some(process_type.to_owned()),
        ..EnvVar::default()
    }];
    if is_web {
        env.push(EnvVar {
            name: "PORT".to_owned(),
            value: Some(WEB_PORT.to_string()),
            ..EnvVar::default()
        });
    }
    let probe = |p: &DomainProbe| probe(p, is_web);
    PodSpec {
        containers: vec![Container {
            name: CONTAINER.to_owned(),
            image: Some(image.to_owned()),
            command: Some(vec!["/bin/sh".to_owned()]),
            args: Some(vec![
                "-c".to_owned(),
                LAUNCHER.to_owned(),
                process_type.to_owned(),
                command.to_owned(),
            ]),
            env: Some(env),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: env_secret_name(&spec.app, spec.version),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]),
            ports: is_web.then(|| {
                vec![ContainerPort {
                    name: Some("http".to_owned()),
                    container_port: i32::from(WEB_PORT),
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                }]
            }),
            liveness_probe: settings.liveness.as_ref().map(probe),
            readiness_probe: settings.readiness.as_ref().map(probe),
            resources: resources(&settings.limits),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        restart_policy: Some(restart_policy.to_owned()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        image_pull_secrets: platform.pull_credentials.as_ref().map(|_| {
            vec![LocalObjectReference {
                name: pull_secret_name(&spec.app),
            }]
        }),
        security_context: Some(PodSecurityContext {
            // The app's own uid, as its sandbox has on one machine: never root, never
            // another app's.
            run_as_non_root: Some(true),
            run_as_user: Some(sandbox_uid(spec.uid_slot)),
            run_as_group: Some(sandbox_uid(spec.uid_slot)),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

/// The uid an app's processes run as: the same as on one machine.
fn sandbox_uid(slot: u32) -> i64 {
    1_700_000 + i64::from(slot)
}

fn probe(probe: &DomainProbe, is_web: bool) -> Probe {
    let (http_get, exec) = match &probe.check {
        Check::HttpGet { path, port } => {
            let port = match port {
                Some(port) => IntOrString::Int(i32::from(*port)),
                None if is_web => IntOrString::String("http".to_owned()),
                None => IntOrString::Int(i32::from(WEB_PORT)),
            };
            (
                Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port,
                    ..HTTPGetAction::default()
                }),
                None,
            )
        }
        Check::Exec { command } => (
            None,
            Some(ExecAction {
                command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), command.clone()]),
            }),
        ),
    };
    Probe {
        http_get,
        exec,
        period_seconds: Some(to_i32(probe.period_seconds)),
        timeout_seconds: Some(to_i32(probe.timeout_seconds)),
        failure_threshold: Some(to_i32(probe.failure_threshold)),
        ..Probe::default()
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A process gets what it is promised and no more: requests equal limits.
fn resources(limits: &Limits) -> Option<ResourceRequirements> {
    if limits.is_empty() {
        return None;
    }
    let mut amounts = BTreeMap::new();
    if let Some(memory) = limits.memory {
        amounts.insert("memory".to_owned(), Quantity(memory.quantity()));
    }
    if let Some(cpu) = limits.cpu {
        amounts.insert("cpu".to_owned(), Quantity(cpu.quantity()));
    }
    Some(ResourceRequirements {
        limits: Some(amounts.clone()),
        requests: Some(amounts),
        ..ResourceRequirements::default()
    })
}

fn deployment(
    spec: &ReleaseSpec,
    image: &str,
    process_type: &ProcessType,
    command: &str,
    count: u32,
    settings: &TypeSettings,
    platform: &Platform,
) -> Deployment {
    let app = &spec.app;
    let pod_labels = labels(app, process_type.as_str(), spec.version);
    Deployment {
        metadata: meta(
            deployment_name(app, process_type.as_str()),
            app,
            pod_labels.clone(),
        ),
        spec: DeploymentSpec {
            // An autoscaled type's count is its autoscaler's to set.
            replicas: settings
                .autoscale
                .is_none()
                .then(|| i32::try_from(count).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(app, process_type.as_str())),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                }),
            }),
            progress_deadline_seconds: Some(platform.progress_deadline_seconds),
            revision_history_limit: Some(10),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(
                    spec,
                    image,
                    process_type.as_str(),
                    command,
                    settings,
                    "Always",
                    platform,
                )),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn autoscaler(
    app: &AppName,
    process_type: &ProcessType,
    autoscale: domain::Autoscale,
) -> HorizontalPodAutoscaler {
    let name = deployment_name(app, process_type.as_str());
    let mut labels = app_labels(app);
    labels.insert(COMPONENT.to_owned(), process_type.to_string());
    HorizontalPodAutoscaler {
        metadata: meta(name.clone(), app, labels),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name,
            },
            min_replicas: Some(to_i32(autoscale.min)),
            max_replicas: to_i32(autoscale.max),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(to_i32(autoscale.cpu_percent)),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    }
}

fn service(app: &AppName, web: &ProcessType) -> Service {
    let mut labels = app_labels(app);
    labels.insert(COMPONENT.to_owned(), web.to_string());
    Service {
        metadata: meta(app.to_string(), app, labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(app, web.as_str())),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Marks the objects that carry an app's routing rather than a release's: a release's
/// prunes leave them alone, and `set_routing` prunes them by their value.
pub const ROUTING: &str = "slipway.io/routing";
/// [`ROUTING`] of a host's TLS Secret.
pub const ROUTING_TLS: &str = "tls";
/// [`ROUTING`] of the Service that serves an app in maintenance.
pub const ROUTING_MAINTENANCE: &str = "maintenance";
/// ingress-nginx, the controller Slipway targets by default: redirect plain HTTP to HTTPS
/// when the Ingress has a tls section (its default is on: Slipway always says).
pub const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// ingress-nginx: redirect plain HTTP to HTTPS, tls section or not.
pub const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
/// ingress-nginx since v1.9: only these client ranges are served; others get a 403.
pub const ALLOWLIST: &str = "nginx.ingress.kubernetes.io/allowlist-source-range";
/// The same, as ingress-nginx before v1.9 reads it (later ones still do).
pub const WHITELIST: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";
/// The app's HSTS switch, for people and other tools: ingress-nginx sets HSTS for every
/// HTTPS host from its ConfigMap (`hsts`), not per Ingress (docs/kubernetes.md).
pub const HSTS: &str = "slipway.io/hsts";

/// The objects that route an app: its Ingress (none when routing is off or the app has no
/// host), the Service its hosts point at in maintenance, and a TLS Secret per host with a
/// certificate of its own. Their `Debug` names the Secrets and shows none of their keys.
#[derive(Clone, PartialEq)]
pub struct Routed {
    pub ingress: Option<Ingress>,
    pub maintenance: Option<Service>,
    pub tls: Vec<Secret>,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A TLS Secret holds a private key: it never reaches a log.
        let tls: Vec<&str> = self
            .tls
            .iter()
            .filter_map(|s| s.metadata.name.as_deref())
            .collect();
        f.debug_struct("Routed")
            .field("ingress", &self.ingress)
            .field("maintenance", &self.maintenance)
            .field("tls", &tls)
            .finish()
    }
}

/// How `app` is reached, as `routing` says: what [`Routed`] holds.
pub fn routing(app: &AppName, routing: &Routing, platform: &Platform) -> Routed {
    if !routing.settings.enabled || routing.hosts.is_empty() {
        // Off: no Ingress at all; the app's pods keep running, unreached.
        return Routed {
            ingress: None,
            maintenance: None,
            tls: Vec::new(),
        };
    }
    let tls = routing
        .hosts
        .iter()
        .filter_map(|host| Some(tls_secret(app, &host.name, host.certificate.as_deref()?)))
        .collect();
    Routed {
        ingress: Some(ingress(app, routing, platform)),
        maintenance: routing
            .settings
            .maintenance
            .then(|| maintenance_service(app)),
        tls,
    }
}

/// The name of the Secret that holds `host`'s own certificate: `tls-<host>`, a valid
/// DNS-1123 subdomain, one per host. A name too long for one (or a host that is not a
/// lowercase DNS name) is cut and given a hash of the whole host instead; such names begin
/// `tls--`, which no `tls-<host>` does, so the two kinds never collide.
pub fn tls_secret_name(host: &str) -> String {
    host_secret_name("tls", host)
}

/// The name of the Secret an issuer (cert-manager) fills for `host` when
/// [`Platform::tls_for_every_host`] is on: `issued-<host>`, cut and hashed as
/// [`tls_secret_name`]'s are.
pub fn issued_secret_name(host: &str) -> String {
    host_secret_name("issued", host)
}

fn host_secret_name(prefix: &str, host: &str) -> String {
    const MAX: usize = 253;
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        (1..=63).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if prefix.len() + 1 + host.len() <= MAX && host.split('.').all(label_ok) {
        return format!("{prefix}-{host}");
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(host.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // `<prefix>--<as much of the host as fits, made safe>-<hash>`.
    let room = MAX - (prefix.len() + 2) - (1 + hash.len());
    let safe: String = host
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(room)
        .collect();
    // Every dot-separated part must begin and end with a letter or digit.
    let mut parts: Vec<&str> = safe
        .split('.')
        .map(|p| p.trim_matches('-'))
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        parts.push("host");
    }
    format!("{prefix}--{}-{hash}", parts.join("."))
}

/// A host's own certificate as a `kubernetes.io/tls` Secret in the app's namespace.
fn tls_secret(app: &AppName, host: &str, certificate: &CertificatePem) -> Secret {
    let mut labels = app_labels(app);
    labels.insert(ROUTING.to_owned(), ROUTING_TLS.to_owned());
    Secret {
        metadata: meta(tls_secret_name(host), app, labels),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(certificate.chain.as_bytes().to_vec()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(certificate.key.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The Service an app's hosts point at in maintenance: it selects no pod, so the ingress
/// controller answers 503 (ingress-nginx: a Service without endpoints), while the app's
/// pods keep running and `slip run` still works.
fn maintenance_service(app: &AppName) -> Service {
    let mut labels = app_labels(app);
    labels.insert(ROUTING.to_owned(), ROUTING_MAINTENANCE.to_owned());
    Service {
        metadata: meta(maintenance_service_name(app), app, labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            // No pod carries this label: Slipway alone labels pods, and never with it.
            selector: Some(BTreeMap::from([(
                ROUTING.to_owned(),
                ROUTING_MAINTENANCE.to_owned(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn maintenance_service_name(app: &AppName) -> String {
    format!("{app}-maintenance")
}

/// The app's host names, each routed to its web Service (to the maintenance Service in
/// maintenance), a tls entry for each host with a certificate, and the routing switches as
/// annotations of ingress-nginx. The platform's own annotations come first; where a key is
/// also a switch's, the switch wins.
pub fn ingress(app: &AppName, routing: &Routing, platform: &Platform) -> Ingress {
    let settings = &routing.settings;
    let service = if settings.maintenance {
        maintenance_service_name(app)
    } else {
        app.to_string()
    };
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: service,
            port: Some(ServiceBackendPort {
                name: Some("http".to_owned()),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    let rules = routing
        .hosts
        .iter()
        .map(|host| IngressRule {
            host: Some(host.name.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".to_owned()),
                    path_type: "Prefix".to_owned(),
                    backend: backend.clone(),
                }],
            }),
        })
        .collect();
    let tls: Vec<IngressTLS> = routing
        .hosts
        .iter()
        .filter_map(|host| {
            let secret = match host.certificate {
                Some(_) => tls_secret_name(&host.name),
                None if platform.tls_for_every_host => issued_secret_name(&host.name),
                // The controller's default certificate serves it.
                None => return None,
            };
            Some(IngressTLS {
                hosts: Some(vec![host.name.clone()]),
                secret_name: Some(secret),
            })
        })
        .collect();
    let mut annotations = platform.ingress_annotations.clone();
    let on = |b: bool| if b { "true" } else { "false" }.to_owned();
    // ingress-nginx redirects whenever a tls section exists unless told not to.
    annotations.insert(SSL_REDIRECT.to_owned(), on(settings.force_https));
    annotations.insert(FORCE_SSL_REDIRECT.to_owned(), on(settings.force_https));
    annotations.insert(HSTS.to_owned(), on(settings.hsts));
    if settings.allow.is_empty() {
        annotations.remove(ALLOWLIST);
        annotations.remove(WHITELIST);
    } else {
        let ranges = settings
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        annotations.insert(ALLOWLIST.to_owned(), ranges.clone());
        annotations.insert(WHITELIST.to_owned(), ranges);
    }
    Ingress {
        metadata: ObjectMeta {
            annotations: Some(annotations),
            ..meta(app.to_string(), app, app_labels(app))
        },
        spec: Some(IngressSpec {
            ingress_class_name: platform.ingress_class.clone(),
            rules: Some(rules),
            tls: (!tls.is_empty()).then_some(tls),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

/// The release phase: the release command once, never retried; a failure stops the deploy.
pub fn release_job(spec: &ReleaseSpec, command: &str, platform: &Platform) -> Result<Job, Error> {
    let image = pinned_image(&spec.image)?;
    let settings = TypeSettings {
        limits: spec
            .settings
            .get(&ProcessType::parse(ProcessType::RELEASE).expect("release is a process type"))
            .map(|s| s.limits)
            .unwrap_or_default(),
        ..TypeSettings::default()
    };
    let labels = labels(&spec.app, ProcessType::RELEASE, spec.version);
    Ok(Job {
        metadata: meta(
            release_job_name(&spec.app, spec.version),
            &spec.app,
            labels.clone(),
        ),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(3_600),
            // Kept a day for `kubectl logs`, then collected.
            ttl_seconds_after_finished: Some(86_400),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(
                    spec,
                    &image,
                    ProcessType::RELEASE,
                    command,
                    &settings,
                    "Never",
                    platform,
                )),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// A one-off process (`slip run`): a Pod that runs once, named `<app>-run-<suffix>`.
pub fn run_pod(
    spec: &ReleaseSpec,
    command: &str,
    suffix: &str,
    platform: &Platform,
) -> Result<Pod, Error> {
    let image = pinned_image(&spec.image)?;
    let mut labels = labels(&spec.app, "run", spec.version);
    labels.insert("slipway.io/run".to_owned(), suffix.to_owned());
    Ok(Pod {
        metadata: meta(format!("{}-run-{suffix}", spec.app), &spec.app, labels),
        spec: Some(PodSpec {
            active_deadline_seconds: Some(86_400),
            ..pod_spec(
                spec,
                &image,
                "run",
                command,
                &TypeSettings::default(),
                "Never",
                platform,
            )
        }),
        ..Pod::default()
    })
}

/// The pod of a test run: a one-off's, but with the test run's environment inline and no
/// `envFrom`. A test must neither read a release's Secret (it would see the app's config) nor
/// make one (the release of that version would take it for its own).
pub fn test_pod(
    spec: &ReleaseSpec,
    command: &str,
    suffix: &str,
    platform: &Platform,
) -> Result<Pod, Error> {
    let mut pod = run_pod(spec, command, suffix, platform)?;
    let mut labels = labels(&spec.app, "test", spec.version);
    labels.insert("slipway.io/run".to_owned(), suffix.to_owned());
    pod.metadata = meta(format!("{}-test-{suffix}", spec.app), &spec.app, labels);
    if let Some(container) = pod.spec.as_mut().and_then(|pod| pod.containers.first_mut()) {
        container.env_from = None;
        container
            .env
            .get_or_insert_with(Vec::new)
            .extend(spec.config.iter().map(|(key, value)| EnvVar {
                name: key.to_string(),
                value: Some(value.to_owned()),
                ..EnvVar::default()
            }));
    }
    Ok(pod)
}

#[cfg(test)]
mod tests;
