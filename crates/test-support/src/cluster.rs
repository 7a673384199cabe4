//! A real Kubernetes control plane per test: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok (one fake node) on free loopback ports, torn down on drop.
//!
//! The binaries come from `scripts/control-plane.sh`, which builds them from the Go module
//! proxy into a cache and exports `SLIPWAY_CONTROL_PLANE_BIN`; `scripts/test` does that before
//! running the suite. Without it [`ControlPlane::start`] fails, naming the script, rather than
//! letting a Kubernetes test pass without having run; tests call [`skip`] first so that
//! `SLIPWAY_TEST_KUBERNETES=skip` skips them on purpose.
//!
//! What is real: every object goes through the API server (validation, admission, RBAC,
//! server-side apply), and the controller manager and scheduler run as on any cluster
//! (Deployments make ReplicaSets make Pods, Jobs track their pods, namespaces are finalized).
//! What is staged: kwok plays the kubelet of one node. Pods become Running and Ready at once
//! (no image is pulled, no process runs, no probe is run), Job pods succeed, and the extra
//! Stages below make labelled pods never Ready ([`NEVER_READY_LABEL`]) or fail with exit code
//! 1 ([`FAIL_LABEL`]). Pod logs are served by kwok from a file the test writes
//! ([`ControlPlane::serve_logs`]), through the API server's real `pods/log` path.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The environment variable naming the directory with the control plane's binaries.
pub const CONTROL_PLANE_BIN_VAR: &str = "SLIPWAY_CONTROL_PLANE_BIN";

/// Set to `skip` to skip the Kubernetes tests on purpose.
pub const SKIP_VAR: &str = "SLIPWAY_TEST_KUBERNETES";

/// How long [`ControlPlane::start`] waits for the whole cluster to become usable.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// How many pods the node takes unless [`ControlPlaneBuilder::max_pods`] says otherwise.
pub const DEFAULT_MAX_PODS: usize = 1000;

/// The name of the one (fake) node, managed by kwok.
pub const NODE_NAME: &str = "slipway-node";

/// Pods with this label set to `"true"` become Running but never Ready.
pub const NEVER_READY_LABEL: &str = "slipway.io/test-never-ready";

/// Pods with this label set to `"true"` fail with exit code 1 once Running (a Job with such a
/// pod template and `backoffLimit: 0` fails at once).
pub const FAIL_LABEL: &str = "slipway.io/test-fail";

/// A kwok Stage: pending pods labelled [`NEVER_READY_LABEL`] become Running with every
/// container started but not ready, and stay so. Its weight makes kwok choose it over the
/// stock `pod-ready` Stage, which selects the same pods with weight 0.
pub const NEVER_READY_STAGE: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: slipway-pod-never-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  weight: 1
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.metadata.labels["slipway.io/test-never-ready"]'
      operator: 'In'
      values:
      - 'true'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        message: "containers with unready status (slipway test: never ready)"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"#;

/// A kwok Stage: running pods labelled [`FAIL_LABEL`] end Failed, every container terminated
/// with exit code 1. Its weight makes kwok choose it over the stock `pod-complete` Stage.
pub const FAIL_STAGE: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: slipway-pod-fail
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  weight: 1
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.labels["slipway.io/test-fail"]'
      operator: 'In'
      values:
      - 'true'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $root := . }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodFailed
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodFailed
        type: ContainersReady
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            message: "slipway test: failed on purpose"
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
"#;

/// A kwok Stage, not on by default ([`ControlPlaneBuilder::stages`] adds it): a running pod
/// that no controller owns and that is not restarted (`restartPolicy: Never`, as a one-off
/// `run` pod) ends Succeeded, every container terminated with exit code 0, as if its command
/// had finished. [`FAIL_STAGE`] still wins for pods labelled [`FAIL_LABEL`] (exit code 1).
pub const ONE_OFF_STAGE: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: slipway-run-pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences'
      operator: 'DoesNotExist'
    - key: '.spec.restartPolicy'
      operator: 'In'
      values:
      - 'Never'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodCompleted
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodCompleted
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
"#;

/// The Stage `stage` (one of the above, or any with the same layout) as a Stage named `name`
/// that selects, instead of a test label, the pods carrying every one of `labels`: to stage
/// pods that Slipway renders, which carry no test label (say, the pods of one app's release).
pub fn stage_selecting(stage: &str, name: &str, labels: &[(&str, &str)]) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    let selected: Vec<String> = labels
        .iter()
        .map(|(key, value)| {
            format!(
                "    - key: '.metadata.labels[\"{}\"]'\n      operator: 'In'\n      values:\n      - '{}'",
                quote(key),
                quote(value)
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut lines = stage.lines().peekable();
    let mut in_metadata = false;
    while let Some(line) = lines.next() {
        if line == "metadata:" {
            in_metadata = true;
        } else if !line.starts_with(' ') {
            in_metadata = false;
        }
        if in_metadata && line.starts_with("  name: ") {
            out.push(format!("  name: {name}"));
        } else if line.starts_with("    - key: '.metadata.labels[") {
            // Drop this expression: its operator and values lines follow, indented deeper.
            while lines.next_if(|l| l.starts_with("      ")).is_some() {}
        } else if line == "    matchExpressions:" {
            out.push(line.to_owned());
            out.extend(selected.iter().cloned());
        } else {
            out.push(line.to_owned());
        }
    }
    out.join("\n") + "\n"
}

/// What can go wrong starting or using a test fixture: a control plane, a browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{CONTROL_PLANE_BIN_VAR} is not set: run the tests with scripts/test, or run \
         `. scripts/control-plane.sh && build_control_plane` first (or set {SKIP_VAR}=skip to \
         skip the Kubernetes tests)"
    )]
    NotBuilt,
    #[error(
        "{} is missing: rebuild the control plane with scripts/control-plane.sh (or set \
         {SKIP_VAR}=skip to skip the Kubernetes tests)",
        path.display()
    )]
    MissingBinary { path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the test cluster's certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot set up an HTTP client for health checks: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{component} exited ({status}) while the test cluster started; its log ends:\n{tail}")]
    Exited {
        component: &'static str,
        status: String,
        tail: String,
    },
    #[error(
        "kwok did not serve logs for namespace {namespace} within {}s; its log ends:\n{tail}",
        START_DEADLINE.as_secs()
    )]
    LogsNotServed { namespace: String, tail: String },
    #[error(
        "the test cluster was not usable after {}s: {waiting_for}; the log of {component} ends:\n{tail}",
        START_DEADLINE.as_secs()
    )]
    NotReady {
        waiting_for: String,
        component: &'static str,
        tail: String,
    },
    #[error(
        "{} is missing: install chromium and chromium-driver (scripts/test does), or set \
         {}=skip to skip the browser tests",
        path.display(),
        crate::browser::SKIP_VAR
    )]
    BrowserMissing { path: PathBuf },
    #[error("chromedriver {problem}; its log ends:\n{tail}")]
    Chromedriver { problem: String, tail: String },
    #[error("chromedriver could not start a browser session: {0}")]
    NewSession(Box<fantoccini::error::NewSessionError>),
    #[error("{what}: {source}")]
    WebDriver {
        what: String,
        #[source]
        source: Box<fantoccini::error::CmdError>,
    },
    #[error("{what}")]
    Browser { what: String },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// True when the Kubernetes tests are skipped on purpose (`SLIPWAY_TEST_KUBERNETES=skip`);
/// says so on stderr. Call it first in a test that needs a control plane and return if true.
pub fn skip() -> bool {
    let skipped = std::env::var(SKIP_VAR).as_deref() == Ok("skip");
    if skipped {
        eprintln!("Kubernetes test skipped: {SKIP_VAR}=skip");
    }
    skipped
}

/// Options for a test control plane; [`ControlPlane::builder`] makes one.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneBuilder {
    stages: Vec<String>,
    bin_dir: Option<PathBuf>,
    max_pods: Option<usize>,
}

impl ControlPlaneBuilder {
    /// Adds kwok Stage documents (YAML, several may be separated by `---`) to the stock ones
    /// and [`NEVER_READY_STAGE`] and [`FAIL_STAGE`], which are always there.
    pub fn stages(mut self, yaml: impl Into<String>) -> Self {
        self.stages.push(yaml.into());
        self
    }

    /// How many pods the node takes (its `pods` capacity); [`DEFAULT_MAX_PODS`] by default.
    pub fn max_pods(mut self, pods: usize) -> Self {
        self.max_pods = Some(pods);
        self
    }

    /// Takes the binaries from `dir` instead of `$SLIPWAY_CONTROL_PLANE_BIN`.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Starts the cluster and waits until it is usable (see [`ControlPlane::start`]).
    pub async fn start(self) -> Result<ControlPlane> {
        crate::init();
        let bin = match self.bin_dir {
            Some(dir) => dir,
            None => PathBuf::from(std::env::var_os(CONTROL_PLANE_BIN_VAR).ok_or(Error::NotBuilt)?),
        };
        let ports = free_ports(6)?;
        let ports = Ports {
            etcd_client: ports[0],
            etcd_peer: ports[1],
            apiserver: ports[2],
            controller_manager: ports[3],
            scheduler: ports[4],
            kwok: ports[5],
        };
        let stages = self.stages;
        let checked = bin.clone();
        let (dir, files) = tokio::task::spawn_blocking(move || {
            check_binaries(&checked)?;
            let dir = tempfile::Builder::new()
                .prefix("slipway-k8s-")
                .tempdir()
                .map_err(io(
                    "cannot create a temporary directory for the test cluster",
                ))?;
            let files = write_files(
                dir.path(),
                &ports,
                &checked.join("kwok-stages.yaml"),
                &stages,
            )?;
            Ok::<_, Error>((dir, files))
        })
        .await
        .expect("writing the test cluster's files does not panic")?;

        // For health checks and kwok's kubelet server: trusts only the cluster's CA.
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(files.ca_pem.as_bytes())?])
            .identity(reqwest::Identity::from_pem(
                files.admin_identity_pem.as_bytes(),
            )?)
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut cluster = ControlPlane {
            components: Vec::new(),
            kubeconfig: dir.path().join("admin.kubeconfig"),
            server: format!("https://127.0.0.1:{}", ports.apiserver),
            kubelet: format!("https://127.0.0.1:{}", ports.kwok),
            http,
            client: None,
            dir: Some(dir),
        };
        let deadline = Instant::now() + START_DEADLINE;
        let max_pods = self.max_pods.unwrap_or(DEFAULT_MAX_PODS);
        cluster
            .boot(&bin, &ports, &files, max_pods, deadline)
            .await?;
        Ok(cluster)
    }
}

/// A running test cluster. Dropping it kills every component (the control plane first, etcd
/// last) and removes its directory; [`ControlPlane::stop`] does the same gracefully.
pub struct ControlPlane {
    /// In start order: etcd first.
    components: Vec<Component>,
    kubeconfig: PathBuf,
    server: String,
    /// kwok's kubelet-like server.
    kubelet: String,
    http: reqwest::Client,
    client: Option<kube::Client>,
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Component {
    name: &'static str,
    child: Child,
    /// Set once reaped: its pid may then belong to another process.
    exited: bool,
    log: PathBuf,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
    kwok: u16,
}

/// Paths and PEM texts made before the components start.
#[derive(Debug)]
struct Files {
    root: PathBuf,
    ca_pem: String,
    admin_identity_pem: String,
}

impl ControlPlane {
    /// Options: extra kwok Stages.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder::default()
    }

    /// Starts a fresh cluster on free loopback ports in a temporary directory and waits, with
    /// a deadline of [`START_DEADLINE`], until it is usable: etcd healthy, the API server
    /// ready, the controller manager and scheduler healthy, the node Ready, and the `default`
    /// ServiceAccount made. Fails when the binaries are missing (see [`skip`]).
    pub async fn start() -> Result<ControlPlane> {
        ControlPlane::builder().start().await
    }

    /// The admin kubeconfig (client certificate in `system:masters`, CA and server inline).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// A client with admin rights.
    pub fn client(&self) -> kube::Client {
        self.client
            .clone()
            .expect("a started control plane has a client")
    }

    /// The cluster's own directory (certificates, etcd data, components' logs); removed with
    /// the cluster.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("a running control plane has its directory")
            .path()
    }

    /// Serves `path` as the log of every container of every pod in `namespace` through the
    /// pod log API (`kubectl logs`, `Api::<Pod>::logs`). The file is read when a log is asked
    /// for, in the CRI log format (`<RFC 3339 time> stdout F <line>`; see [`cri_log`]): write
    /// it before or after; logs can be read as soon as this returns (it waits until kwok has
    /// the rule). Calling it again for a namespace replaces the file, though kwok may serve
    /// the old one for a moment.
    pub async fn serve_logs(&self, namespace: &str, path: &Path) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(self.client(), &cluster_logs_resource());
        let name = format!("slipway-logs-{namespace}");
        let object = serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": { "name": name },
            "spec": {
                "selector": { "matchNamespaces": [namespace] },
                "logs": [{ "logsFile": path, "follow": true }],
            },
        });
        api.patch(
            &name,
            &PatchParams::apply("slipway-test").force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(kube_err(format!(
            "cannot serve logs for namespace {namespace}"
        )))?;
        // kwok learns the rule from a watch. Ask its kubelet server for a log in the namespace
        // until it stops saying it has no rule for it (it does not check that the pod exists).
        let probe = format!(
            "{}/containerLogs/{namespace}/slipway-logs-probe/probe?limitBytes=1",
            self.kubelet
        );
        let deadline = Instant::now() + START_DEADLINE;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Ok(response) = self.http.get(&probe).send().await
                && let Ok(body) = response.text().await
                && !body.contains("no logs found")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::LogsNotServed {
                    namespace: namespace.to_owned(),
                    tail: self.log_tail("kwok", 30).await,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Writes `lines` (as stdout, in the CRI log format) to a file in the cluster's directory
    /// and serves it as the log of every pod in `namespace` (see [`ControlPlane::serve_logs`]).
    /// Returns the file, to which a test may append more (with [`cri_log`]).
    pub async fn serve_log_lines(&self, namespace: &str, lines: &[&str]) -> Result<PathBuf> {
        let path = self.dir().join(format!("logs-{namespace}.log"));
        tokio::fs::write(&path, cri_log(lines))
            .await
            .map_err(io(format!("cannot write {}", path.display())))?;
        self.serve_logs(namespace, &path).await?;
        Ok(path)
    }

    /// The last `lines` lines of a component's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`, `kube-scheduler`, `kwok`), for a failing test to print.
    pub async fn log_tail(&self, component: &str, lines: usize) -> String {
        match self.components.iter().find(|c| c.name == component) {
            Some(c) => tail(&c.log, lines).await,
            None => String::new(),
        }
    }

    /// The components' process ids, etcd first.
    pub fn pids(&self) -> Vec<u32> {
        self.components
            .iter()
            .filter(|c| !c.exited)
            .map(|c| c.child.id())
            .collect()
    }

    /// The combined resident memory of the components, in bytes (from `/proc`).
    pub async fn rss_bytes(&self) -> u64 {
        let mut total = 0;
        for pid in self.pids() {
            let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await else {
                continue;
            };
            let kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            total += kib.unwrap_or(0) * 1024;
        }
        total
    }

    /// Stops the cluster: the control plane gracefully (SIGTERM, then SIGKILL after 10 s),
    /// then etcd, then removes its directory.
    pub async fn stop(mut self) {
        while let Some(mut component) = self.components.pop() {
            component.signal(rustix::process::Signal::TERM);
            let kill_at = Instant::now() + Duration::from_secs(10);
            let mut pause = Duration::from_millis(5);
            while component.try_exited().is_none() {
                if Instant::now() >= kill_at {
                    component.signal(rustix::process::Signal::KILL);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = tokio::task::spawn_blocking(move || dir.close()).await;
        }
    }

    async fn boot(
        &mut self,
        bin: &Path,
        ports: &Ports,
        files: &Files,
        max_pods: usize,
        deadline: Instant,
    ) -> Result<()> {
        let root = &files.root;
        let p = |name: &str| root.join(name).display().to_string();
        let http = self.http.clone();

        self.spawn(
            "etcd",
            bin,
            vec![
                "--name=slipway".into(),
                format!("--data-dir={}", p("etcd")),
                format!(
                    "--listen-client-urls=http://127.0.0.1:{}",
                    ports.etcd_client
                ),
                format!(
                    "--advertise-client-urls=http://127.0.0.1:{}",
                    ports.etcd_client
                ),
                format!("--listen-peer-urls=http://127.0.0.1:{}", ports.etcd_peer),
                format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    ports.etcd_peer
                ),
                format!(
                    "--initial-cluster=slipway=http://127.0.0.1:{}",
                    ports.etcd_peer
                ),
                "--unsafe-no-fsync".into(),
                "--quota-backend-bytes=2147483648".into(),
                "--log-level=warn".into(),
            ],
        )
        .await?;
        let url = format!("http://127.0.0.1:{}/health", ports.etcd_client);
        self.wait_for_url("etcd /health", "etcd", deadline, &http, &url)
            .await?;

        self.spawn(
            "kube-apiserver",
            bin,
            vec![
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={}", ports.apiserver),
                format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!("--client-ca-file={}", p("ca.crt")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--authorization-mode=RBAC,Node".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                "--requestheader-allowed-names=front-proxy-client".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
                format!(
                    "--kubelet-client-certificate={}",
                    p("apiserver-kubelet-client.crt")
                ),
                format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
                format!("--kubelet-certificate-authority={}", p("ca.crt")),
                "--kubelet-preferred-address-types=InternalIP".into(),
                "--endpoint-reconciler-type=none".into(),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
            ],
        )
        .await?;
        let url = format!("{}/readyz", self.server);
        self.wait_for_url(
            "kube-apiserver /readyz",
            "kube-apiserver",
            deadline,
            &http,
            &url,
        )
        .await?;

        let client = admin_client(&self.kubeconfig).await?;
        self.client = Some(client.clone());

        // kwok watches ClusterLogs (its CRD) and the node must exist before kwok manages it.
        install_cluster_logs_crd(&client).await?;
        create_node(&client, max_pods).await?;

        let common = |port: u16, name: &str| -> Vec<String> {
            vec![
                format!("--kubeconfig={}", p(&format!("{name}.kubeconfig"))),
                format!(
                    "--authentication-kubeconfig={}",
                    p(&format!("{name}.kubeconfig"))
                ),
                format!(
                    "--authorization-kubeconfig={}",
                    p(&format!("{name}.kubeconfig"))
                ),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--tls-cert-file={}", p(&format!("{name}-serving.crt"))),
                format!(
                    "--tls-private-key-file={}",
                    p(&format!("{name}-serving.key"))
                ),
                "--leader-elect=false".into(),
                "--profiling=false".into(),
                // Client-side throttling at the defaults (50 requests a second) would make
                // the controllers, not what a test or benchmark measures, the bottleneck of
                // a burst of rollouts.
                "--kube-api-qps=1000".into(),
                "--kube-api-burst=2000".into(),
            ]
        };
        let mut kcm = common(ports.controller_manager, "controller-manager");
        kcm.extend([
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            format!("--cluster-signing-cert-file={}", p("ca.crt")),
            format!("--cluster-signing-key-file={}", p("ca.key")),
            "--use-service-account-credentials=false".into(),
            "--controllers=*".into(),
            // The node is kwok's, and its heartbeat a process on a busy test machine: a
            // heartbeat late under load must not mark every pod on it unready (kwok makes
            // pods ready only once, when they start).
            "--node-monitor-grace-period=1h".into(),
        ]);
        self.spawn("kube-controller-manager", bin, kcm).await?;
        self.spawn("kube-scheduler", bin, common(ports.scheduler, "scheduler"))
            .await?;
        self.spawn(
            "kwok",
            bin,
            vec![
                format!("--kubeconfig={}", p("kwok.kubeconfig")),
                format!("--config={}", p("kwok-stages.yaml")),
                "--manage-all-nodes=false".into(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
                "--node-ip=127.0.0.1".into(),
                format!("--node-name={NODE_NAME}"),
                format!("--node-port={}", ports.kwok),
                format!("--server-address=127.0.0.1:{}", ports.kwok),
                format!("--tls-cert-file={}", p("kwok-serving.crt")),
                format!("--tls-private-key-file={}", p("kwok-serving.key")),
                "--cidr=10.244.0.1/16".into(),
                "--enable-crds=ClusterLogs".into(),
            ],
        )
        .await?;

        for (what, component, port) in [
            (
                "kube-controller-manager /healthz",
                "kube-controller-manager",
                ports.controller_manager,
            ),
            ("kube-scheduler /healthz", "kube-scheduler", ports.scheduler),
            ("kwok /healthz", "kwok", ports.kwok),
        ] {
            let url = format!("https://127.0.0.1:{port}/healthz");
            self.wait_for_url(what, component, deadline, &http, &url)
                .await?;
        }

        let nodes: Api<Node> = Api::all(client.clone());
        self.wait_until("the node to be Ready", "kwok", deadline, || {
            let nodes = nodes.clone();
            async move {
                let Ok(node) = nodes.get(NODE_NAME).await else {
                    return false;
                };
                node.status
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            }
        })
        .await?;

        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        self.wait_until(
            "the default ServiceAccount",
            "kube-controller-manager",
            deadline,
            || {
                let accounts = accounts.clone();
                async move { matches!(accounts.get_opt("default").await, Ok(Some(_))) }
            },
        )
        .await?;
        Ok(())
    }

    async fn spawn(&mut self, name: &'static str, bin: &Path, args: Vec<String>) -> Result<()> {
        let root = self.dir().to_owned();
        let log = root.join(format!("{name}.log"));
        let out = tokio::fs::File::create(&log)
            .await
            .map_err(io(format!("cannot create {}", log.display())))?
            .into_std()
            .await;
        let err = out
            .try_clone()
            .map_err(io(format!("cannot reopen {}", log.display())))?;
        let program = bin.join(name);
        // Drop or stop decide the order the components stop in (etcd last).
        let mut command = dying_with_tests(&program).await;
        command
            .args(&args)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let (reply, spawned) = tokio::sync::oneshot::channel();
        spawner()
            .send((command, reply))
            .expect("the spawner thread runs as long as the process");
        let child = spawned
            .await
            .expect("the spawner thread answers every request")
            .map_err(io(format!("cannot start {}", program.display())))?;
        self.components.push(Component {
            name,
            child,
            log,
            exited: false,
        });
        Ok(())
    }

    /// Polls `ready` with a short backoff until it holds, a component exits, or the deadline.
    /// Waits, as [`Self::wait_until`] does, until `url` answers 2xx.
    async fn wait_for_url(
        &mut self,
        waiting_for: &str,
        blame: &'static str,
        deadline: Instant,
        http: &reqwest::Client,
        url: &str,
    ) -> Result<()> {
        self.wait_until(waiting_for, blame, deadline, || async {
            http_ok(http, url).await
        })
        .await
    }

    async fn wait_until<F, Fut>(
        &mut self,
        waiting_for: &str,
        blame: &'static str,
        deadline: Instant,
        mut ready: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut pause = Duration::from_millis(10);
        loop {
            for component in &mut self.components {
                if let Some(status) = component.try_exited() {
                    return Err(Error::Exited {
                        component: component.name,
                        status: status.to_string(),
                        tail: tail(&component.log, 30).await,
                    });
                }
            }
            if tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), ready()).await
                == Ok(true)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = match self.components.iter().find(|c| c.name == blame) {
                    Some(c) => tail(&c.log, 30).await,
                    None => String::new(),
                };
                return Err(Error::NotReady {
                    waiting_for: format!("still waiting for {waiting_for}"),
                    component: blame,
                    tail: log,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Components first, etcd last: SIGKILL is immediate, but keep the order anyway.
        for component in self.components.iter().rev() {
            component.signal(rustix::process::Signal::KILL);
        }
        // Reap them before removing their directory, so that no process still writes there.
        let until = Instant::now() + Duration::from_secs(2);
        for component in self.components.iter_mut().rev() {
            while component.try_exited().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.components.clear();
        // The TempDir removes the directory as it drops.
    }
}

impl Component {
    /// Signals the component's process group (it leads its own), unless it was reaped.
    fn signal(&self, signal: rustix::process::Signal) {
        if self.exited {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }

    /// Its exit status if it has exited (and reaps it), without waiting.
    fn try_exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.exited |= status.is_some();
        status
    }
}

type SpawnRequest = (
    Command,
    tokio::sync::oneshot::Sender<std::io::Result<Child>>,
);

/// The thread that starts every component. A component dies with the thread that started it
/// (`setpriv --pdeathsig`), so that thread must be one that lives as long as the process:
/// not a test's runtime thread, nor a blocking-pool thread that exits when idle.
pub(crate) fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-cluster-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the test cluster's spawner thread");
        requests
    })
}

/// A command for `program` that dies with the test process: setpriv makes the kernel kill
/// it when the thread that starts it dies (the spawner thread, which lives as long as the
/// test process), even by SIGKILL; its own process group keeps a terminal's Ctrl-C from
/// reaching it before the test's Drop does.
pub(crate) async fn dying_with_tests(program: &Path) -> Command {
    match which_setpriv().await {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.arg("--pdeathsig").arg("KILL").arg("--").arg(program);
            c
        }
        None => Command::new(program),
    }
}

async fn which_setpriv() -> Option<&'static Path> {
    for path in ["/usr/bin/setpriv", "/bin/setpriv"] {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Some(Path::new(path));
        }
    }
    None
}

async fn http_ok(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(url).send().await, Ok(r) if r.status().is_success())
}

pub(crate) async fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = tokio::fs::read(path).await else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Formats `lines` as a container log in the CRI format kwok serves (each line on stdout,
/// stamped now).
pub fn cri_log(lines: &[&str]) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339");
    lines
        .iter()
        .map(|line| format!("{now} stdout F {line}\n"))
        .collect()
}

fn check_binaries(dir: &Path) -> Result<()> {
    for name in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kwok-stages.yaml",
    ] {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(Error::MissingBinary { path });
        }
    }
    Ok(())
}

/// Ports handed out by this process, so that two clusters starting at once never share one.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// `count` distinct free loopback ports below the ephemeral range, where no outgoing
/// connection can take one between this check and the component's bind.
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16;
    let high = ephemeral_start.max(low + 1000);
    let mut taken = TAKEN.lock().expect("the port list is not poisoned");
    let mut out = Vec::with_capacity(count);
    let mut seed = u64::from(std::process::id()) ^ u64::from(uuid::Uuid::new_v4().as_u128() as u32);
    for _ in 0..10_000 {
        if out.len() == count {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = low + ((seed >> 33) % u64::from(high - low)) as u16;
        if taken.contains(&port) || out.contains(&port) {
            continue;
        }
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
            out.push(port);
        }
    }
    if out.len() < count {
        return Err(Error::Io {
            what: format!("cannot find {count} free loopback ports below {high}"),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        });
    }
    taken.extend(&out);
    Ok(out)
}

/// A CA and a key pair it signs with.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key)?.pem();
        Ok(Ca { params, key, pem })
    }

    /// A certificate and its key, both PEM: a client certificate when `sans` is empty.
    fn issue(&self, cn: &str, org: Option<&str>, sans: &[&str]) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = if sans.is_empty() {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        };
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Makes the PKI, the kubeconfigs and the kwok Stage file in `root`.
fn write_files(
    root: &Path,
    ports: &Ports,
    stock_stages: &Path,
    extra_stages: &[String],
) -> Result<Files> {
    let write = |name: &str, text: &str| -> Result<()> {
        let path = root.join(name);
        std::fs::write(&path, text).map_err(io(format!("cannot write {}", path.display())))
    };
    let ca = Ca::new("slipway-test-ca")?;
    write("ca.crt", &ca.pem)?;
    write("ca.key", &ca.key.serialize_pem())?;
    let front_proxy = Ca::new("slipway-test-front-proxy-ca")?;
    write("front-proxy-ca.crt", &front_proxy.pem)?;

    let pair = |name: &str, (cert, key): (String, String)| -> Result<(String, String)> {
        write(&format!("{name}.crt"), &cert)?;
        write(&format!("{name}.key"), &key)?;
        Ok((cert, key))
    };
    let local = ["127.0.0.1", "localhost"];
    let mut apiserver_sans = local.to_vec();
    apiserver_sans.extend([
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]);
    pair(
        "apiserver",
        ca.issue("kube-apiserver", None, &apiserver_sans)?,
    )?;
    pair(
        "apiserver-kubelet-client",
        ca.issue("kube-apiserver-kubelet-client", Some("system:masters"), &[])?,
    )?;
    pair(
        "front-proxy-client",
        front_proxy.issue("front-proxy-client", None, &[])?,
    )?;
    pair(
        "controller-manager-serving",
        ca.issue("kube-controller-manager", None, &local)?,
    )?;
    pair(
        "scheduler-serving",
        ca.issue("kube-scheduler", None, &local)?,
    )?;
    pair("kwok-serving", ca.issue(NODE_NAME, None, &local)?)?;
    // The service-account signing key: ECDSA P-256 (ES256), which the API server accepts.
    // Its public half goes in a file of its own: the API server reads public keys from SEC1
    // or PKCS#1 private key files only, and rcgen writes PKCS#8.
    let sa = KeyPair::generate()?;
    write("sa.key", &sa.serialize_pem())?;
    write("sa.pub", &sa.public_key_pem())?;

    let server = format!("https://127.0.0.1:{}", ports.apiserver);
    let mut admin_identity_pem = String::new();
    for (file, cn, org) in [
        ("admin", "slipway-test-admin", Some("system:masters")),
        // With --use-service-account-credentials=false every controller acts as the
        // controller manager itself, whose bootstrap role covers none of them: it gets admin.
        (
            "controller-manager",
            "system:kube-controller-manager",
            Some("system:masters"),
        ),
        ("scheduler", "system:kube-scheduler", None),
        ("kwok", "kwok-controller", Some("system:masters")),
    ] {
        let (cert, key) = ca.issue(cn, org, &[])?;
        if file == "admin" {
            admin_identity_pem = format!("{cert}{key}");
        }
        write(
            &format!("{file}.kubeconfig"),
            &kubeconfig(&server, &ca.pem, &cert, &key),
        )?;
    }

    let stock = std::fs::read_to_string(stock_stages)
        .map_err(io(format!("cannot read {}", stock_stages.display())))?;
    let mut stages = stock;
    for extra in [NEVER_READY_STAGE, FAIL_STAGE]
        .into_iter()
        .chain(extra_stages.iter().map(String::as_str))
    {
        stages.push_str("\n---\n");
        stages.push_str(extra);
        stages.push('\n');
    }
    write("kwok-stages.yaml", &stages)?;
    std::fs::create_dir(root.join("etcd")).map_err(io("cannot create the etcd data directory"))?;

    Ok(Files {
        root: root.to_owned(),
        ca_pem: ca.pem,
        admin_identity_pem,
    })
}

fn kubeconfig(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: slipway-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: slipway-test
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: slipway-test
  context:
    cluster: slipway-test
    user: slipway-test
current-context: slipway-test
",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

async fn admin_client(kubeconfig: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| kube_err("cannot read the admin kubeconfig")(e.into()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| kube_err("cannot load the admin kubeconfig")(e.into()))?;
    kube::Client::try_from(config).map_err(kube_err("cannot make a Kubernetes client"))
}

fn cluster_logs_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "ClusterLogs"),
        "clusterlogs",
    )
}

/// kwok's ClusterLogs CRD, without a schema (kwok validates what it reads).
async fn install_cluster_logs_crd(client: &kube::Client) -> Result<()> {
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "clusterlogs.kwok.x-k8s.io" },
        "spec": {
            "group": "kwok.x-k8s.io",
            "scope": "Cluster",
            "names": {
                "kind": "ClusterLogs",
                "listKind": "ClusterLogsList",
                "plural": "clusterlogs",
                "singular": "clusterlogs",
            },
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                }},
            }],
        },
    }))
    .expect("the ClusterLogs CRD is well-formed");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.create(&PostParams::default(), &crd)
        .await
        .map_err(kube_err("cannot create kwok's ClusterLogs CRD"))?;
    let mut pause = Duration::from_millis(10);
    loop {
        let crd = api
            .get("clusterlogs.kwok.x-k8s.io")
            .await
            .map_err(kube_err("cannot read kwok's ClusterLogs CRD"))?;
        let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The one fake node: kwok manages it (by annotation) and serves its kubelet API.
async fn create_node(client: &kube::Client, max_pods: usize) -> Result<()> {
    let pods = max_pods.to_string();
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": { "kwok.x-k8s.io/node": "fake" },
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "capacity": { "cpu": "32", "memory": "256Gi", "pods": pods },
            "allocatable": { "cpu": "32", "memory": "256Gi", "pods": pods },
        },
    }))
    .expect("the node is well-formed");
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .map_err(kube_err("cannot create the fake node"))?;
    Ok(())
}
