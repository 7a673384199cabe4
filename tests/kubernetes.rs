//! The Kubernetes runtime end to end: the real `slipwayd` and `slip`, a real registry, and a
//! real control plane — etcd, kube-apiserver, kube-controller-manager, kube-scheduler —
//! built from source by `scripts/control-plane.sh`, with kwok as the node.
//!
//! What is real: every object is created by the API server with its validation and
//! admission (the `restricted` Pod Security Standard included); the Deployment, ReplicaSet,
//! Job, HorizontalPodAutoscaler and namespace controllers do their work; the scheduler
//! places the pods. What is staged: kwok plays the kubelet, so no image is pulled and no
//! process runs. Pods become Ready at once, Job pods (the release phase) and one-off pods
//! end with status 0, and a pod's log is a file the test writes (kwok serves it through the
//! pod log API). The failures are staged too: a kwok Stage keeps the pods of one labelled
//! release unready, another fails the release phase Job of one.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;
use slipway_e2e::{Backend, Piece, Platform, User, eventually};
use test_support::ControlPlane;
use test_support::cluster::{self, cri_log, stage_selecting};

/// Rollouts that make no progress fail after this many seconds: short, so the never-ready
/// release fails quickly; kwok makes every other pod ready at once.
const ROLLOUT_DEADLINE: &str = "6";

/// The staging this file's tests need: `stuck`'s v3 never becomes ready, `broken`'s v3
/// release phase fails, and one-off pods (which kwok would leave running) end with status 0.
fn stages() -> String {
    let never_ready = stage_selecting(
        cluster::NEVER_READY_STAGE,
        "stuck-v3-never-ready",
        &[
            ("app.kubernetes.io/name", "stuck"),
            ("slipway.io/release", "v3"),
        ],
    );
    let failing_release = stage_selecting(
        cluster::FAIL_STAGE,
        "broken-v3-release-fails",
        &[
            ("app.kubernetes.io/name", "broken"),
            ("app.kubernetes.io/component", "release"),
            ("slipway.io/release", "v3"),
        ],
    );
    format!(
        "{never_ready}\n---\n{failing_release}\n---\n{}",
        cluster::ONE_OFF_STAGE
    )
}

/// A web app; kwok never runs it, but the builder builds it and the registry keeps it.
fn write_app(user: &User, version: &str, procfile: &str) {
    std::fs::write(
        user.cwd.join("app.py"),
        format!("print('hello from {version}')\n"),
    )
    .unwrap();
    std::fs::write(user.cwd.join("Procfile"), procfile).unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "--allow-empty", "-m", version])
        .success();
}

fn add_app(user: &mut User, app: &str, procfile: &str) {
    let dir = user.home().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    user.cwd = dir;
    user.git(&["init", "-q", "-b", "main"]).success();
    write_app(user, "one", procfile);
    user.slip(&["create", app]).success();
}

fn registry() -> String {
    std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY names a docker-registry: run the tests with scripts/test")
}

/// Reads the cluster from a test thread (the slip and git commands block).
fn kube<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(work)
}

fn deployment(client: &kube::Client, app: &str, name: &str) -> Option<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), app);
    kube(api.get_opt(name)).expect("the API server answers")
}

/// The image and the env Secret the Deployment's pods run with.
fn image_and_env(d: &Deployment) -> (String, String) {
    let pod = d.spec.template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    let env = container.env_from.as_ref().unwrap()[0]
        .secret_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    (container.image.clone().unwrap(), env)
}

fn release(user: &User, version: u32) -> Value {
    user.slip(&["releases:info", &format!("v{version}"), "--json"])
        .json()["release"]
        .clone()
}

fn ready_pods(client: &kube::Client, app: &str, component: &str) -> usize {
    let api: Api<Pod> = Api::namespaced(client.clone(), app);
    let pods = kube(api.list(&ListParams::default().labels(&format!(
        "app.kubernetes.io/name={app},app.kubernetes.io/component={component}"
    ))))
    .unwrap();
    pods.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

/// Every object of the app's namespace that Slipway applied, by kind and name, with its
/// resourceVersion.
fn resource_versions(client: &kube::Client, app: &str) -> Vec<(String, String)> {
    fn of<K>(client: &kube::Client, app: &str) -> Vec<(String, String)>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(client.clone(), app);
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        kube(
            api.list_metadata(
                &ListParams::default().labels("app.kubernetes.io/managed-by=slipway"),
            ),
        )
        .unwrap()
        .items
        .into_iter()
        .map(|o| {
            (
                format!("{kind}/{}", o.metadata.name.unwrap()),
                o.metadata.resource_version.unwrap(),
            )
        })
        .collect()
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = kube(namespaces.get(app)).unwrap();
    let mut all = vec![(
        format!("Namespace/{app}"),
        namespace.metadata.resource_version.unwrap(),
    )];
    all.extend(of::<Deployment>(client, app));
    all.extend(of::<Secret>(client, app));
    all.extend(of::<k8s_openapi::api::core::v1::Service>(client, app));
    all.extend(of::<k8s_openapi::api::networking::v1::Ingress>(client, app));
    all.extend(of::<k8s_openapi::api::networking::v1::NetworkPolicy>(
        client, app,
    ));
    all.extend(of::<HorizontalPodAutoscaler>(client, app));
    all.sort();
    all
}

/// The acceptance scenario, against a platform deploying to `cluster`.
fn an_apps_day_on_kubernetes(ada: &mut User, cluster: &ControlPlane) {
    let client = cluster.client();
    let limit = Duration::from_secs(60);
    add_app(
        ada,
        "demo",
        "web: python3 app.py\nworker: python3 worker.py\n",
    );

    // A push: Deployment demo-web in namespace demo, by digest, with the release's Secret.
    let pushed = ada.push_deployed();
    assert!(pushed.contains("v2 is rolled out"), "{pushed}");
    assert_eq!(release(ada, 2)["status"], "succeeded");
    let web = deployment(&client, "demo", "demo-web").expect("demo-web exists");
    let (v2_image, v2_env) = image_and_env(&web);
    assert!(v2_image.contains("/demo@sha256:"), "{v2_image}");
    assert_eq!(v2_env, "demo-v2-env");
    assert_eq!(ready_pods(&client, "demo", "web"), 1);
    let status = web.status.as_ref().unwrap();
    assert_eq!(status.ready_replicas, Some(1), "{status:?}");

    // A config change: a new immutable Secret and a rolled-out Deployment.
    ada.slip(&["config:set", "GREETING=hi"]).success();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "demo");
    let v3_secret = kube(secrets.get("demo-v3-env")).expect("the v3 Secret");
    assert_eq!(v3_secret.immutable, Some(true));
    assert_eq!(
        v3_secret.data.as_ref().unwrap()["GREETING"].0,
        b"hi".to_vec()
    );
    let web = deployment(&client, "demo", "demo-web").unwrap();
    assert_eq!(
        image_and_env(&web),
        (v2_image.clone(), "demo-v3-env".to_owned())
    );
    assert_eq!(release(ada, 3)["status"], "succeeded");

    // New code, then a rollback to v2: its digest and its Secret again.
    write_app(
        ada,
        "two",
        "web: python3 app.py\nworker: python3 worker.py\n",
    );
    ada.push_deployed();
    let v4_image = image_and_env(&deployment(&client, "demo", "demo-web").unwrap()).0;
    assert_ne!(v4_image, v2_image);
    ada.slip(&["rollback", "v2"]).success();
    let web = deployment(&client, "demo", "demo-web").unwrap();
    assert_eq!(
        image_and_env(&web),
        (v2_image.clone(), "demo-v5-env".to_owned())
    );
    let v5_secret = kube(secrets.get("demo-v5-env")).unwrap();
    assert!(!v5_secret.data.unwrap_or_default().contains_key("GREETING"));

    // Scale: three replicas, three ready pods.
    ada.slip(&["ps:scale", "web=3"]).success();
    let web = deployment(&client, "demo", "demo-web").unwrap();
    assert_eq!(web.spec.replicas, Some(3));
    eventually(limit, "three web pods are ready", || {
        ready_pods(&client, "demo", "web") == 3
    });
    // Reconciling what is unchanged changes nothing on the server, once the controllers are
    // done with the last change (their status updates change resourceVersions too).
    eventually(limit, "every Deployment's rollout is complete", || {
        let api: Api<Deployment> = Api::namespaced(client.clone(), "demo");
        let all = kube(api.list(&ListParams::default())).unwrap();
        all.items.iter().all(|d| {
            let s = d.status.clone().unwrap_or_default();
            let want = d.spec.replicas.unwrap_or(1);
            s.observed_generation == d.metadata.generation
                && s.replicas.unwrap_or(0) == want
                && s.updated_replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) == want
        })
    });
    let before = resource_versions(&client, "demo");
    ada.slip(&["ps:scale", "web=3"]).success();
    ada.slip(&["ps:scale", "web=3"]).success();
    assert_eq!(resource_versions(&client, "demo"), before);
    eventually(limit, "slip ps shows three web processes up", || {
        let ps = ada.slip(&["ps", "--json"]).json();
        ps.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "web" && p["state"] == "up")
            .count()
            == 3
    });

    // Limits, health checks and autoscaling: in the Deployment and the HPA, as set.
    ada.slip(&["limits:set", "web", "--memory", "256M", "--cpu", "250m"])
        .success();
    ada.slip(&[
        "healthchecks:set",
        "web",
        "readiness",
        "httpGet",
        "/healthz",
        "--period",
        "5",
        "--failure-threshold",
        "4",
    ])
    .success();
    ada.slip(&["limits:set", "worker", "--cpu", "500m"])
        .success();
    ada.slip(&[
        "autoscale:set",
        "worker",
        "--min",
        "2",
        "--max",
        "7",
        "--cpu-percent",
        "65",
    ])
    .success();
    let web = deployment(&client, "demo", "demo-web").unwrap();
    let container = &web.spec.template.spec.as_ref().unwrap().containers[0];
    let resources = container.resources.as_ref().unwrap();
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "256Mi");
    assert_eq!(resources.limits.as_ref().unwrap()["cpu"].0, "250m");
    assert_eq!(resources.requests, resources.limits);
    let readiness = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.http_get.as_ref().unwrap().path.as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        (readiness.period_seconds, readiness.failure_threshold),
        (Some(5), Some(4))
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "demo");
    let hpa = kube(hpas.get("demo-worker")).expect("worker's autoscaler");
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(2), 7));
    let target = &hpa.spec.metrics.as_ref().unwrap()[0]
        .resource
        .as_ref()
        .unwrap()
        .target;
    assert_eq!(target.average_utilization, Some(65));
    assert_eq!(hpa.spec.scale_target_ref.name, "demo-worker");
    ada.slip(&["autoscale:unset", "worker"]).success();
    assert!(kube(hpas.get_opt("demo-worker")).unwrap().is_none());

    // Logs and one-off processes: the pod log API (kwok serves the lines the test wrote).
    let log = cluster.dir().join("demo.log");
    std::fs::write(&log, cri_log(&["GET / 200", "worker tick"])).unwrap();
    kube(cluster.serve_logs("demo", &log)).unwrap();
    eventually(limit, "the pods' lines are in slip logs", || {
        let logs = ada.slip(&["logs", "-n", "200"]);
        logs.ok && logs.stdout.contains("GET / 200") && logs.stdout.contains("web.")
    });
    let run = ada.slip(&["run", "echo", "hello"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("GET / 200"), "{}", run.stdout);

    // A removed process type: its Deployment is pruned.
    write_app(ada, "three", "web: python3 app.py\n");
    ada.push_deployed();
    assert!(deployment(&client, "demo", "demo-worker").is_none());
    assert!(deployment(&client, "demo", "demo-web").is_some());

    // Destroy: the namespace goes, with everything in it (the namespace controller
    // deletes its contents first, in a few seconds).
    ada.slip(&["apps:destroy", "--confirm", "demo"]).success();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(Duration::from_secs(120), "namespace demo is gone", || {
        kube(namespaces.get_opt("demo")).unwrap().is_none()
    });
}

/// A release whose pods never become ready fails at its deadline, and the previous release
/// keeps serving; a release phase that fails deploys nothing.
fn failed_releases_leave_the_previous_one(ada: &mut User, cluster: &ControlPlane) {
    let client = cluster.client();
    add_app(ada, "stuck", "web: python3 app.py\n");
    ada.push_deployed();
    let v2 = image_and_env(&deployment(&client, "stuck", "stuck-web").unwrap());
    let set = ada.slip(&["config:set", "MODE=stuck"]);
    assert!(!set.ok, "v3 never becomes ready: {}", set.stdout);
    let v3 = release(ada, 3);
    assert_eq!(v3["status"], "failed", "{v3}");
    let reason = v3["reason"].as_str().unwrap();
    assert!(reason.contains("never ready"), "{reason}");
    let web = deployment(&client, "stuck", "stuck-web").unwrap();
    assert_eq!(image_and_env(&web), v2);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "stuck");
    let serving =
        kube(replica_sets.list(&ListParams::default().labels("slipway.io/release=v2"))).unwrap();
    assert_eq!(
        serving.items[0].status.as_ref().unwrap().ready_replicas,
        Some(1),
        "v2's ReplicaSet keeps serving"
    );

    ada.cwd = ada.home().to_path_buf();
    add_app(ada, "broken", "web: python3 app.py\n");
    ada.push_deployed();
    let v2 = image_and_env(&deployment(&client, "broken", "broken-web").unwrap());
    write_app(
        ada,
        "two",
        "web: python3 app.py\nrelease: python3 migrate.py\n",
    );
    let pushed = ada.git(&["push", "-q", "slipway", "main"]);
    assert!(!pushed.ok, "the release phase fails: {}", pushed.stderr);
    assert!(
        pushed
            .stderr
            .contains("the release command exited with status 1"),
        "{}",
        pushed.stderr
    );
    assert_eq!(release(ada, 3)["status"], "failed");
    let web = deployment(&client, "broken", "broken-web").unwrap();
    assert_eq!(image_and_env(&web), v2, "nothing of v3 was deployed");
}

async fn control_plane() -> Option<ControlPlane> {
    if cluster::skip() {
        return None;
    }
    Some(
        ControlPlane::builder()
            .stages(stages())
            .start()
            .await
            .expect("a test control plane starts"),
    )
}

fn kube_args<'a>(cluster: &'a ControlPlane, registry: &'a str) -> Vec<&'a str> {
    vec![
        "--runtime",
        "kubernetes",
        "--kubeconfig",
        cluster.kubeconfig_path().to_str().unwrap(),
        "--registry",
        registry,
        "--rollout-deadline",
        ROLLOUT_DEADLINE,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn one_process_on_sqlite() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let registry = registry();
    let platform = Platform::start_with(Backend::Sqlite, &kube_args(&cluster, &registry))
        .await
        .expect("sqlite is always there");
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        an_apps_day_on_kubernetes(&mut ada, &cluster);
        ada.cwd = ada.home().to_path_buf();
        failed_releases_leave_the_previous_one(&mut ada, &cluster);
        drop(platform);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn separate_pieces_on_postgres() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let Some(db) = test_support::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let registry = registry();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let limit = Duration::from_secs(60);
        let kube_args = kube_args(&cluster, &registry);
        fn with<'a>(extra: &[&'a str], kube_args: &[&'a str]) -> Vec<&'a str> {
            [extra, kube_args].concat()
        }
        let releasers: Vec<Piece> = (0..2)
            .map(|_| {
                let releaser = Piece::start("releaser", &data, &db.url, &with(&[], &kube_args));
                releaser.wait_for("releaser: deploying to Kubernetes", limit);
                releaser
            })
            .collect();
        let gateway = Piece::start(
            "gateway",
            &data,
            &db.url,
            &with(&["--ssh-listen", "127.0.0.1:0"], &kube_args),
        );
        let ssh = gateway.wait_for("ssh: ", limit);
        let api = Piece::start(
            "api",
            &data,
            &db.url,
            &with(
                &[
                    "--api-listen",
                    "127.0.0.1:0",
                    "--ssh-listen",
                    ssh.trim_start_matches("ssh://git@"),
                ],
                &kube_args,
            ),
        );
        let api_url = api.wait_for("api: ", limit);
        let mut ada = User::registered_at(&api_url, "ada");
        an_apps_day_on_kubernetes(&mut ada, &cluster);
        ada.cwd = ada.home().to_path_buf();
        failed_releases_leave_the_previous_one(&mut ada, &cluster);
        drop((api, gateway, releasers));
    })
    .await
    .unwrap();
}

/// `slipwayd` with arguments that cannot work: its exit status and what it said.
fn refused(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(slipway_e2e::binary("slipwayd"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-listen", "127.0.0.1:0", "--ssh-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_kubernetes_runtime_says_what_it_is_missing() {
    let (ok, said) = refused(&["up", "--runtime", "kubernetes"]);
    assert!(!ok);
    assert!(
        said.contains("--runtime kubernetes needs --registry HOST:PORT[/PREFIX]"),
        "{said}"
    );
    // A cluster that does not answer is named, with what to do.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let (ok, said) = refused(&[
        "releaser",
        "--runtime",
        "kubernetes",
        "--registry",
        "127.0.0.1:5000",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(said.contains("cannot connect to Kubernetes"), "{said}");
    assert!(said.contains("the API server does not answer"), "{said}");
}
