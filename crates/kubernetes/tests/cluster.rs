//! The Kubernetes runtime against a real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, with kwok as the node), without the rest of
//! the platform: deploys, reconciles, prunes, fails and puts back, runs, restarts, stops,
//! and routes through an Ingress.
//!
//! kwok plays the kubelet: pods become ready at once, Job and one-off pods end with status
//! 0, and a pod's log is a file the test writes. A Stage keeps the pods of one labelled
//! release unready; another fails the release phase of one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use domain::{
    AppName, Cidr, ConfigVars, Formation, ImageRef, ProcessSettings, ProcessType, Procfile,
    ReleaseVersion, RoutingChange, RoutingSettings,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::ListParams;
use logs::LogSource as _;
use releaser::{ProcessState, ReleaseSpec, Runtime, RuntimeError};
use slipway_kubernetes::render::{ALLOWLIST, FORCE_SSL_REDIRECT, SSL_REDIRECT, WHITELIST};
use slipway_kubernetes::{KubeRuntime, Platform, PodLogs};
use test_support::ControlPlane;
use test_support::cluster::{self, cri_log, stage_selecting};

fn spec(app: &str, version: u32, procfile: &str, config: &[(&str, &str)]) -> ReleaseSpec {
    // kwok pulls nothing: any digest will do.
    let digest = format!("sha256:{version:064x}");
    ReleaseSpec {
        app: AppName::parse(app).unwrap(),
        uid_slot: 3,
        version: ReleaseVersion::new(version).unwrap(),
        image: ImageRef::parse(&format!("registry.test:5000/{app}@{digest}")).unwrap(),
        processes: Procfile::parse(procfile).unwrap(),
        config: ConfigVars::from_map(
            config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap(),
        settings: ProcessSettings::default(),
    }
}

fn formation(counts: &[(&str, u32)]) -> Formation {
    Formation::from_counts(
        counts
            .iter()
            .map(|(t, n)| (ProcessType::parse(t).unwrap(), *n)),
    )
}

async fn control_plane() -> Option<ControlPlane> {
    if cluster::skip() {
        return None;
    }
    let stuck = stage_selecting(
        cluster::NEVER_READY_STAGE,
        "stuck-v2-never-ready",
        &[
            ("app.kubernetes.io/name", "stuck"),
            ("slipway.io/release", "v2"),
        ],
    );
    let failing = stage_selecting(
        cluster::FAIL_STAGE,
        "stuck-v3-release-fails",
        &[
            ("app.kubernetes.io/name", "stuck"),
            ("app.kubernetes.io/component", "release"),
            ("slipway.io/release", "v3"),
        ],
    );
    Some(
        ControlPlane::builder()
            .stages(format!(
                "{stuck}\n---\n{failing}\n---\n{}",
                cluster::ONE_OFF_STAGE
            ))
            .start()
            .await
            .expect("a test control plane starts"),
    )
}

fn runtime(cluster: &ControlPlane, deadline: i32) -> KubeRuntime {
    KubeRuntime::new(
        cluster.client(),
        Platform {
            progress_deadline_seconds: deadline,
            ..Platform::default()
        },
    )
}

/// What Slipway applied in the app's namespace, by kind and name, with resourceVersions.
async fn versions(client: &kube::Client, app: &str) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let ns: Api<Namespace> = Api::all(client.clone());
    let namespace = ns.get(app).await.unwrap();
    all.push((
        "Namespace".to_owned(),
        namespace.metadata.resource_version.unwrap(),
    ));
    let ours = ListParams::default().labels("app.kubernetes.io/managed-by=slipway");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), app);
    for d in deployments.list_metadata(&ours).await.unwrap() {
        all.push((
            format!("Deployment/{}", d.metadata.name.unwrap()),
            d.metadata.resource_version.unwrap(),
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), app);
    for s in secrets.list_metadata(&ours).await.unwrap() {
        all.push((
            format!("Secret/{}", s.metadata.name.unwrap()),
            s.metadata.resource_version.unwrap(),
        ));
    }
    all.sort();
    all
}

async fn deployment_names(client: &kube::Client, app: &str) -> Vec<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), app);
    let mut names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    names.sort();
    names
}

async fn env_of(client: &kube::Client, app: &str, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), app);
    let d = api.get(name).await.unwrap();
    d.spec.template.spec.unwrap().containers[0]
        .env_from
        .as_ref()
        .unwrap()[0]
        .secret_ref
        .as_ref()
        .unwrap()
        .name
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn releases_roll_out_reconcile_without_change_and_prune_what_they_drop() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let client = cluster.client();
    let runtime = runtime(&cluster, 60);
    let quiet = |_: &str| {};
    let app = AppName::parse("demo").unwrap();
    runtime
        .set_routing(
            &app,
            &releaser::Routing {
                hosts: vec![releaser::RoutedHost::new("demo.example.test")],
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let v1 = spec("demo", 1, "web: serve\nworker: work\n", &[("A", "1")]);
    let counts = formation(&[("web", 2), ("worker", 1)]);
    let said = Mutex::new(Vec::new());
    let progress = |line: &str| said.lock().unwrap().push(line.to_owned());
    runtime.deploy(&v1, &counts, None, &progress).await.unwrap();
    let said = said.into_inner().unwrap();
    assert!(
        said.iter().any(|l| l.contains("v1 is rolled out")),
        "{said:?}"
    );
    assert_eq!(runtime.current(&app).await.unwrap(), Some(v1.version));
    assert_eq!(
        deployment_names(&client, "demo").await,
        ["demo-web", "demo-worker"]
    );
    let processes = runtime.processes(&app).await.unwrap();
    assert_eq!(processes.len(), 3, "{processes:?}");
    assert!(
        processes.iter().all(|p| p.state == ProcessState::Up),
        "{processes:?}"
    );
    assert!(processes.iter().all(|p| p.release == v1.version));

    // Applying the same release again, twice, changes nothing on the server.
    let before = versions(&client, "demo").await;
    runtime.scale(&v1, &counts).await.unwrap();
    runtime.deploy(&v1, &counts, None, &quiet).await.unwrap();
    assert_eq!(versions(&client, "demo").await, before);

    // A release without the worker: its Deployment and v1's Secret go.
    let v2 = spec("demo", 2, "web: serve\n", &[("A", "2")]);
    runtime
        .deploy(&v2, &counts, Some(&v1), &quiet)
        .await
        .unwrap();
    assert_eq!(deployment_names(&client, "demo").await, ["demo-web"]);
    assert_eq!(env_of(&client, "demo", "demo-web").await, "demo-v2-env");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "demo");
    assert!(secrets.get_opt("demo-v1-env").await.unwrap().is_none());

    // A restart rolls new pods out with a template annotation.
    runtime.restart(&app, Some("web")).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "demo");
    let web = api.get("demo-web").await.unwrap();
    let annotations = web.spec.template.metadata.unwrap().annotations.unwrap();
    assert!(annotations.contains_key("slipway.io/restarted-at"));
    assert!(matches!(
        runtime.restart(&app, Some("clock")).await,
        Err(RuntimeError::App(_))
    ));

    // A one-off: its output from the pod log API, its status from the pod.
    let log = cluster.dir().join("demo.log");
    std::fs::write(&log, cri_log(&["hello from a one-off"])).unwrap();
    cluster.serve_logs("demo", &log).await.unwrap();
    let lines = Mutex::new(Vec::new());
    let output = |line: &str| lines.lock().unwrap().push(line.to_owned());
    let status = runtime
        .run_once(&v2, "echo hello", "run.1", &output)
        .await
        .unwrap();
    assert_eq!(status, 0);
    assert_eq!(lines.into_inner().unwrap(), ["hello from a one-off"]);

    // A test run: its own pod, its environment inline; no release's Secret read or made.
    let tested = spec("demo", 9, "web: serve\n", &[("CI", "true")]);
    let status = runtime
        .run_test(&tested, "pytest", "test.1", &|_: &str| {})
        .await
        .unwrap();
    assert_eq!(status, 0);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "demo");
    assert!(secrets.get_opt("demo-v9-env").await.unwrap().is_none());

    // Stopped: the namespace goes.
    runtime.stop(&app).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt("demo").await.unwrap().is_none());
    assert_eq!(runtime.current(&app).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_that_never_becomes_ready_fails_and_the_previous_one_is_applied_again() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let client = cluster.client();
    let runtime = runtime(&cluster, 3);
    let quiet = |_: &str| {};
    let app = AppName::parse("stuck").unwrap();
    let counts = formation(&[("web", 1)]);
    let v1 = spec("stuck", 1, "web: serve\n", &[("A", "1")]);
    runtime.deploy(&v1, &counts, None, &quiet).await.unwrap();

    let v2 = spec("stuck", 2, "web: serve\n", &[("A", "2")]);
    let said = Mutex::new(Vec::new());
    let progress = |line: &str| said.lock().unwrap().push(line.to_owned());
    let err = runtime
        .deploy(&v2, &counts, Some(&v1), &progress)
        .await
        .unwrap_err();
    let said = said.into_inner().unwrap();
    assert!(
        said.iter().any(|l| l.contains("Applying v1 again")),
        "{said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|l| l.contains("could not be applied again")),
        "v1 is back and rolled out: {said:?}"
    );
    let RuntimeError::App(reason) = err else {
        panic!("a rollout that fails is the app's: {err:?}");
    };
    assert!(reason.contains("progressing"), "{reason}");
    assert!(reason.contains("never ready"), "{reason}");
    assert_eq!(runtime.current(&app).await.unwrap(), Some(v1.version));
    assert_eq!(env_of(&client, "stuck", "stuck-web").await, "stuck-v1-env");

    // A release phase that fails says so with its status.
    let v3 = spec("stuck", 3, "web: serve\nrelease: migrate\n", &[]);
    let status = runtime
        .run_once(&v3, "migrate", "release", &quiet)
        .await
        .unwrap();
    assert_eq!(status, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_merge_the_platforms_lines_with_every_pods_and_follow_pods_that_start_later() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let runtime = runtime(&cluster, 60);
    let quiet = |_: &str| {};
    let app = AppName::parse("chatty").unwrap();
    let v1 = spec("chatty", 1, "web: serve\n", &[]);
    runtime
        .deploy(&v1, &formation(&[("web", 1)]), None, &quiet)
        .await
        .unwrap();
    let log = cluster.dir().join("chatty.log");
    std::fs::write(&log, cri_log(&["GET / 200"])).unwrap();
    cluster.serve_logs("chatty", &log).await.unwrap();

    let platform = logs::Logs::default();
    platform.push("chatty", "slipway", "Deploying v1");
    let pod_logs = PodLogs::new(cluster.client(), std::sync::Arc::new(platform.clone()));
    let all = logs::LogFilter::default();
    let tail = pod_logs.tail(&app, 10, &all).await.unwrap();
    let seen: Vec<(&str, &str)> = tail
        .iter()
        .map(|l| (l.source.split('.').next().unwrap(), l.text.as_str()))
        .collect();
    assert!(seen.contains(&("slipway", "Deploying v1")), "{seen:?}");
    assert!(seen.contains(&("web", "GET / 200")), "{seen:?}");

    // A follower sees the platform's new lines, and the lines of a pod that starts after it
    // began to follow (a scale, a deploy).
    let (_, mut follow) = pod_logs.follow(&app, 0, &all).await.unwrap();
    let before: Vec<String> = runtime
        .processes(&app)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    runtime.scale(&v1, &formation(&[("web", 2)])).await.unwrap();
    platform.push("chatty", "slipway", "Scaled to web=2");
    let mut saw_platform = false;
    let mut saw_new_pod = false;
    while !(saw_platform && saw_new_pod) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), follow.next())
            .await
            .unwrap_or_else(|_| panic!("a line within 30 s: platform {saw_platform}, new pod {saw_new_pod}, before {before:?}"))
            .expect("the follower goes on");
        if let logs::Followed::Line(line) = next {
            saw_platform |= line.text == "Scaled to web=2";
            saw_new_pod |= line.source.starts_with("web.")
                && !before
                    .iter()
                    .any(|b| b.ends_with(line.source.trim_start_matches("web.")));
        }
    }
}

fn certificate(tag: &str) -> std::sync::Arc<releaser::CertificatePem> {
    // The API server checks a TLS Secret has both keys, not what they hold.
    std::sync::Arc::new(releaser::CertificatePem {
        chain: format!("-----BEGIN CERTIFICATE-----\n{tag}\n-----END CERTIFICATE-----\n"),
        key: format!("-----BEGIN PRIVATE KEY-----\n{tag}\n-----END PRIVATE KEY-----\n"),
    })
}

fn backends(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .as_ref()
        .unwrap()
        .rules
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| {
            r.http.as_ref().unwrap().paths[0]
                .backend
                .service
                .as_ref()
                .unwrap()
                .name
                .clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_carries_certificates_switches_maintenance_and_off_through_the_ingress() {
    let Some(cluster) = control_plane().await else {
        return;
    };
    let client = cluster.client();
    let runtime = runtime(&cluster, 60);
    let app = AppName::parse("routed").unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "routed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "routed");
    let services: Api<Service> = Api::namespaced(client.clone(), "routed");
    let annotation = |i: &Ingress, key: &str| {
        i.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };

    // A release runs, so its own Secret and Service are there beside the routing's.
    let v1 = spec("routed", 1, "web: serve\n", &[("A", "1")]);
    runtime
        .deploy(&v1, &formation(&[("web", 1)]), None, &|_: &str| {})
        .await
        .unwrap();

    // A host with its own certificate: a TLS Secret, and a tls entry naming it.
    let mut routing = releaser::Routing {
        hosts: vec![
            releaser::RoutedHost::new("routed.example.test"),
            releaser::RoutedHost {
                name: "www.routed.test".to_owned(),
                certificate: Some(certificate("first")),
            },
        ],
        ..Default::default()
    };
    runtime.set_routing(&app, &routing).await.unwrap();
    let secret = secrets.get("tls-www.routed.test").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    assert_eq!(
        data["tls.crt"].0,
        routing.hosts[1]
            .certificate
            .as_ref()
            .unwrap()
            .chain
            .as_bytes()
    );
    assert_eq!(
        data["tls.key"].0,
        routing.hosts[1]
            .certificate
            .as_ref()
            .unwrap()
            .key
            .as_bytes()
    );
    let ingress = ingresses.get("routed").await.unwrap();
    let tls = ingress.spec.as_ref().unwrap().tls.clone().unwrap();
    assert_eq!(tls.len(), 1);
    assert_eq!(
        tls[0].hosts.as_deref(),
        Some(&["www.routed.test".to_owned()][..])
    );
    assert_eq!(tls[0].secret_name.as_deref(), Some("tls-www.routed.test"));
    assert_eq!(annotation(&ingress, SSL_REDIRECT).as_deref(), Some("false"));
    assert_eq!(backends(&ingress), ["routed", "routed"]);

    // The same routing again changes nothing; a new certificate changes its Secret.
    let before = (
        ingress.metadata.resource_version.clone(),
        secrets
            .get("tls-www.routed.test")
            .await
            .unwrap()
            .metadata
            .resource_version,
    );
    runtime.set_routing(&app, &routing).await.unwrap();
    let again = (
        ingresses
            .get("routed")
            .await
            .unwrap()
            .metadata
            .resource_version,
        secrets
            .get("tls-www.routed.test")
            .await
            .unwrap()
            .metadata
            .resource_version,
    );
    assert_eq!(before, again);
    routing.hosts[1].certificate = Some(certificate("renewed"));
    runtime.set_routing(&app, &routing).await.unwrap();
    let data = secrets
        .get("tls-www.routed.test")
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(String::from_utf8_lossy(&data["tls.crt"].0).contains("renewed"));

    // Switches become annotations, and leave again when turned off.
    routing
        .settings
        .apply(&RoutingChange::Https {
            force: true,
            hsts: true,
        })
        .unwrap();
    routing
        .settings
        .apply(&RoutingChange::Allow(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("192.0.2.7").unwrap(),
        ]))
        .unwrap();
    runtime.set_routing(&app, &routing).await.unwrap();
    let ingress = ingresses.get("routed").await.unwrap();
    assert_eq!(
        annotation(&ingress, FORCE_SSL_REDIRECT).as_deref(),
        Some("true")
    );
    assert_eq!(annotation(&ingress, SSL_REDIRECT).as_deref(), Some("true"));
    assert_eq!(
        annotation(&ingress, ALLOWLIST).as_deref(),
        Some("10.0.0.0/8,192.0.2.7/32")
    );
    routing.settings = RoutingSettings::default();
    runtime.set_routing(&app, &routing).await.unwrap();
    let ingress = ingresses.get("routed").await.unwrap();
    assert_eq!(
        annotation(&ingress, FORCE_SSL_REDIRECT).as_deref(),
        Some("false")
    );
    assert_eq!(annotation(&ingress, ALLOWLIST), None);
    assert_eq!(annotation(&ingress, WHITELIST), None);

    // Maintenance: every host to a Service without pods; the app's pods keep running.
    routing.settings.maintenance = true;
    runtime.set_routing(&app, &routing).await.unwrap();
    let ingress = ingresses.get("routed").await.unwrap();
    assert_eq!(
        backends(&ingress),
        ["routed-maintenance", "routed-maintenance"]
    );
    let maintenance = services.get("routed-maintenance").await.unwrap();
    let selector = maintenance.spec.unwrap().selector.unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "routed");
    let selected = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        pods.list(&ListParams::default().labels(&selected))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(runtime.processes(&app).await.unwrap().len(), 1);
    // A deploy's prunes leave the routing's objects alone.
    runtime.scale(&v1, &formation(&[("web", 1)])).await.unwrap();
    assert!(
        services
            .get_opt("routed-maintenance")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        secrets
            .get_opt("tls-www.routed.test")
            .await
            .unwrap()
            .is_some()
    );
    routing.settings.maintenance = false;
    runtime.set_routing(&app, &routing).await.unwrap();
    assert_eq!(
        backends(&ingresses.get("routed").await.unwrap()),
        ["routed", "routed"]
    );
    assert!(
        services
            .get_opt("routed-maintenance")
            .await
            .unwrap()
            .is_none()
    );
    assert!(services.get_opt("routed").await.unwrap().is_some());

    // A certificate removed: its Secret is pruned, and its host has no tls entry.
    routing.hosts[1].certificate = None;
    runtime.set_routing(&app, &routing).await.unwrap();
    assert!(
        secrets
            .get_opt("tls-www.routed.test")
            .await
            .unwrap()
            .is_none()
    );
    let ingress = ingresses.get("routed").await.unwrap();
    assert!(ingress.spec.unwrap().tls.is_none());
    assert!(secrets.get_opt("routed-v1-env").await.unwrap().is_some());

    // Routing off: no Ingress, the app still runs; on again: back.
    routing.hosts[1].certificate = Some(certificate("again"));
    routing.settings.enabled = false;
    runtime.set_routing(&app, &routing).await.unwrap();
    assert!(ingresses.get_opt("routed").await.unwrap().is_none());
    assert!(
        secrets
            .get_opt("tls-www.routed.test")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(runtime.processes(&app).await.unwrap().len(), 1);
    assert_eq!(runtime.current(&app).await.unwrap(), Some(v1.version));
    runtime.set_routing(&app, &routing).await.unwrap();
    routing.settings.enabled = true;
    runtime.set_routing(&app, &routing).await.unwrap();
    assert!(ingresses.get_opt("routed").await.unwrap().is_some());
    assert!(
        secrets
            .get_opt("tls-www.routed.test")
            .await
            .unwrap()
            .is_some()
    );
}
