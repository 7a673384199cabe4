//! The test control plane: a real API server, controllers and scheduler with kwok's fake
//! node roll out Deployments, run Jobs, apply Slipway's test Stages and serve pod logs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use slipway_test_support::ControlPlane;
use slipway_test_support::cluster::{self, FAIL_LABEL, NEVER_READY_LABEL};
use tokio::io::AsyncWriteExt;

/// Generous: a loaded 2-core machine runs several clusters and builds at once.
const WAIT: Duration = Duration::from_secs(60);

async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> Result<K>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
        .with_context(|| format!("watching for {what}"))?
        .with_context(|| format!("{name} is gone while waiting for {what}"))
}

async fn namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name },
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn deployment(name: &str, replicas: i32, labels: serde_json::Value) -> Result<Deployment> {
    let mut pod_labels = serde_json::json!({ "app": name });
    pod_labels
        .as_object_mut()
        .expect("an object")
        .extend(labels.as_object().cloned().unwrap_or_default());
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/demo@sha256:0000000000000000000000000000000000000000000000000000000000000000" }] },
            },
        },
    }))?)
}

fn job(name: &str, labels: serde_json::Value) -> Result<Job> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "release", "image": "registry.invalid/demo:latest" }],
                },
            },
        },
    }))?)
}

fn job_condition(name: &'static str) -> impl Condition<Job> {
    move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == name && c.status == "True"))
    }
}

async fn start() -> Result<Option<ControlPlane>> {
    if cluster::skip() {
        return Ok(None);
    }
    let started = Instant::now();
    let cluster = ControlPlane::start().await?;
    eprintln!(
        "control plane usable in {:.2}s, components' RSS {} MiB",
        started.elapsed().as_secs_f64(),
        cluster.rss_bytes().await / (1024 * 1024)
    );
    Ok(Some(cluster))
}

#[tokio::test]
async fn a_deployment_rolls_out_to_ready_replicas() -> Result<()> {
    let Some(cluster) = start().await? else {
        return Ok(());
    };
    let client = cluster.client();
    namespace(&client, "demo").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "demo");
    deployments
        .create(
            &PostParams::default(),
            &deployment("demo-web", 3, serde_json::json!({}))?,
        )
        .await?;
    let ready = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(3) && s.available_replicas == Some(3))
    };
    let pods: Api<Pod> = Api::namespaced(client, "demo");
    wait_for(&deployments, "demo-web", "3 ready replicas", ready).await?;
    let listed = pods
        .list(&ListParams::default().labels("app=demo-web"))
        .await?;
    assert_eq!(listed.items.len(), 3, "three pods, made by the controllers");
    for pod in &listed.items {
        let spec = pod.spec.as_ref().expect("a pod has a spec");
        assert_eq!(
            spec.node_name.as_deref(),
            Some(cluster::NODE_NAME),
            "scheduled"
        );
    }
    cluster.stop().await;
    Ok(())
}

/// Waits until the `count` pods labelled `app=<app>` run, and checks none of them is Ready.
async fn running_but_never_ready(pods: &Api<Pod>, app: &str, count: usize) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await?;
        let running = listed
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if listed.items.len() == count && running == count {
            for pod in &listed.items {
                let status = pod.status.as_ref().context("a running pod has a status")?;
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.as_str());
                assert_eq!(ready, Some("False"), "{app}'s pod is Running but not Ready");
                let container = &status.container_statuses.as_ref().context("statuses")?[0];
                let running = container
                    .state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some());
                assert!(!container.ready && running, "{container:?}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{app}'s pods never became Running: {listed:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn labelled_pods_run_but_never_become_ready() -> Result<()> {
    if cluster::skip() {
        return Ok(());
    }
    // The stock Stage by its test label, and a copy selecting pods by labels of their own.
    let picked = cluster::stage_selecting(
        cluster::NEVER_READY_STAGE,
        "picked-never-ready",
        &[("app", "picked"), ("tier", "web")],
    );
    let cluster = ControlPlane::builder().stages(picked).start().await?;
    let client = cluster.client();
    namespace(&client, "stuck").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "stuck");
    // Ready Deployments next to the stuck ones: the Stages pick only their pods.
    for (name, replicas, labels) in [
        ("fine", 1, serde_json::json!({})),
        ("fine-web", 1, serde_json::json!({ "tier": "web" })),
        ("stuck", 2, serde_json::json!({ NEVER_READY_LABEL: "true" })),
        ("picked", 2, serde_json::json!({ "tier": "web" })),
    ] {
        deployments
            .create(&PostParams::default(), &deployment(name, replicas, labels)?)
            .await?;
    }
    let one_ready = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(1))
    };
    for name in ["fine", "fine-web"] {
        wait_for(&deployments, name, "an unstaged pod to be ready", one_ready).await?;
    }
    let pods: Api<Pod> = Api::namespaced(client, "stuck");
    running_but_never_ready(&pods, "stuck", 2).await?;
    running_but_never_ready(&pods, "picked", 2).await?;
    // Nothing moves them on: after the other pods settled, still none ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["stuck", "picked"] {
        let status = deployments.get(name).await?.status.unwrap_or_default();
        assert_eq!(status.ready_replicas.unwrap_or(0), 0, "{status:?}");
        assert_eq!(status.unavailable_replicas, Some(2), "{status:?}");
    }
    cluster.stop().await;
    Ok(())
}

#[test]
fn stage_selecting_swaps_the_test_label_for_the_given_ones() {
    let stage = cluster::stage_selecting(
        cluster::FAIL_STAGE,
        "demo-v3-fails",
        &[
            ("app.kubernetes.io/name", "demo"),
            ("slipway.io/release", "v3"),
        ],
    );
    assert!(stage.contains("\n  name: demo-v3-fails\n"), "{stage}");
    assert!(!stage.contains(FAIL_LABEL), "{stage}");
    assert!(!stage.contains("'true'"), "{stage}");
    assert!(
        stage.contains(
            "    - key: '.metadata.labels[\"slipway.io/release\"]'\n      operator: 'In'\n      values:\n      - 'v3'\n"
        ),
        "{stage}"
    );
    assert!(
        stage.contains("exitCode: 1"),
        "the rest of the Stage is kept"
    );
    assert_eq!(stage.matches("operator:").count(), 4, "{stage}");
    // A Stage without a label expression gains the given ones.
    let one_off = cluster::stage_selecting(cluster::ONE_OFF_STAGE, "mine", &[("a", "b")]);
    assert!(one_off.contains("'.metadata.labels[\"a\"]'"), "{one_off}");
    assert!(one_off.contains("'.metadata.ownerReferences'"), "{one_off}");
}

#[tokio::test]
async fn a_labelled_job_fails_and_an_unlabelled_one_completes() -> Result<()> {
    let Some(cluster) = start().await? else {
        return Ok(());
    };
    let client = cluster.client();
    namespace(&client, "jobs").await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "jobs");
    jobs.create(
        &PostParams::default(),
        &job("release-ok", serde_json::json!({}))?,
    )
    .await?;
    jobs.create(
        &PostParams::default(),
        &job("release-bad", serde_json::json!({ FAIL_LABEL: "true" }))?,
    )
    .await?;
    wait_for(
        &jobs,
        "release-ok",
        "the Job to complete",
        job_condition("Complete"),
    )
    .await?;
    let failed = wait_for(
        &jobs,
        "release-bad",
        "the Job to fail",
        job_condition("Failed"),
    )
    .await?;
    let reason = failed
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.reason);
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));

    let pods: Api<Pod> = Api::namespaced(client, "jobs");
    let listed = pods
        .list(&ListParams::default().labels("job-name=release-bad"))
        .await?;
    let pod = listed
        .items
        .first()
        .context("the failed Job's pod is kept")?;
    let status = pod.status.as_ref().context("the pod has a status")?;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let terminated = status
        .container_statuses
        .as_ref()
        .context("container statuses")?[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .context("the container terminated")?;
    assert_eq!(terminated.exit_code, 1);
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn pod_logs_come_through_the_api_from_a_file() -> Result<()> {
    let Some(cluster) = start().await? else {
        return Ok(());
    };
    let client = cluster.client();
    namespace(&client, "logs").await?;
    let file = cluster
        .serve_log_lines("logs", &["first line", "second line"])
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "logs");
    deployments
        .create(
            &PostParams::default(),
            &deployment("talker", 1, serde_json::json!({}))?,
        )
        .await?;
    let ready = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(1))
    };
    wait_for(&deployments, "talker", "a ready pod", ready).await?;
    let pods: Api<Pod> = Api::namespaced(client, "logs");
    let listed = pods
        .list(&ListParams::default().labels("app=talker"))
        .await?;
    let name = listed.items[0]
        .metadata
        .name
        .clone()
        .context("a pod name")?;

    let log = pods.logs(&name, &LogParams::default()).await?;
    assert_eq!(log, "first line\nsecond line\n");

    // Following: what is appended to the file arrives on an open stream.
    let params = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream(&name, &params).await?.lines();
    assert_eq!(lines.try_next().await?.as_deref(), Some("first line"));
    assert_eq!(lines.try_next().await?.as_deref(), Some("second line"));
    let more = cluster::cri_log(&["third line"]);
    tokio::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .await?
        .write_all_buf(&mut more.as_bytes())
        .await?;
    let third = tokio::time::timeout(WAIT, lines.try_next()).await??;
    assert_eq!(third.as_deref(), Some("third line"));
    cluster.stop().await;
    Ok(())
}

fn run_pod(name: &str, labels: serde_json::Value) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "run", "image": "registry.invalid/demo:latest" }],
        },
    }))?)
}

fn pod_ended(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
}

fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    Some(statuses[0].state.as_ref()?.terminated.as_ref()?.exit_code)
}

#[tokio::test]
async fn run_pods_end_with_exit_codes_and_keep_their_logs() -> Result<()> {
    if cluster::skip() {
        return Ok(());
    }
    let cluster = ControlPlane::builder()
        .stages(cluster::ONE_OFF_STAGE)
        .start()
        .await?;
    let client = cluster.client();
    namespace(&client, "runs").await?;
    cluster
        .serve_log_lines("runs", &["migrated 3 tables"])
        .await?;
    let pods: Api<Pod> = Api::namespaced(client, "runs");
    pods.create(
        &PostParams::default(),
        &run_pod("ok", serde_json::json!({}))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &run_pod("bad", serde_json::json!({ FAIL_LABEL: "true" }))?,
    )
    .await?;
    let ok = wait_for(&pods, "ok", "the run pod to end", pod_ended).await?;
    let bad = wait_for(&pods, "bad", "the failing run pod to end", pod_ended).await?;
    assert_eq!(
        ok.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    assert_eq!(exit_code(&ok), Some(0));
    assert_eq!(
        bad.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed")
    );
    assert_eq!(exit_code(&bad), Some(1));
    assert_eq!(
        pods.logs("ok", &LogParams::default()).await?,
        "migrated 3 tables\n"
    );
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn two_clusters_run_side_by_side_and_drop_leaves_nothing() -> Result<()> {
    if cluster::skip() {
        return Ok(());
    }
    let (a, b) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (a, b) = (a?, b?);
    assert_ne!(a.server_url(), b.server_url());
    namespace(&a.client(), "only-in-a").await?;
    let in_b = Api::<Namespace>::all(b.client())
        .get_opt("only-in-a")
        .await?;
    assert!(in_b.is_none(), "the clusters share nothing");

    let pids = a.pids();
    let dir = a.dir().to_owned();
    assert_eq!(
        pids.len(),
        5,
        "etcd, apiserver, controller manager, scheduler, kwok"
    );
    drop(a);
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            status.is_empty() || status.contains("State:\tZ"),
            "process {pid} outlived its cluster: {status}"
        );
    }
    assert!(!dir.exists(), "{} is removed", dir.display());
    // The other cluster is untouched.
    Api::<Namespace>::all(b.client()).get("default").await?;
    b.stop().await;
    Ok(())
}

/// The components die with the thread that started them; that thread is the harness's own,
/// so a cluster started from a short-lived thread outlives it.
#[test]
fn a_cluster_outlives_the_thread_that_started_it() -> Result<()> {
    if cluster::skip() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(50))
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let cluster = std::thread::spawn(move || handle.block_on(ControlPlane::start()))
        .join()
        .expect("the starting thread does not panic")?;
    runtime.block_on(async {
        // The starting thread is gone; give a kernel's parent-death signal time to land.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pids = cluster.pids();
        assert_eq!(pids.len(), 5, "every component still runs");
        Api::<Namespace>::all(cluster.client())
            .get("default")
            .await?;
        cluster.stop().await;
        anyhow::Ok(())
    })
}

#[tokio::test]
async fn missing_binaries_fail_with_the_script_to_run() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    let error = ControlPlane::builder()
        .bin_dir(empty.path())
        .start()
        .await
        .expect_err("no binaries, no cluster");
    let message = error.to_string();
    assert!(message.contains("scripts/control-plane.sh"), "{message}");
    assert!(message.contains("etcd"), "{message}");
}

#[tokio::test]
async fn a_component_that_dies_is_named_with_its_log() -> Result<()> {
    if cluster::skip() {
        return Ok(());
    }
    let real = std::env::var(cluster::CONTROL_PLANE_BIN_VAR)
        .context("SLIPWAY_CONTROL_PLANE_BIN names the built control plane")?;
    let bin = tempfile::tempdir()?;
    for name in [
        "etcd",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kwok-stages.yaml",
    ] {
        std::os::unix::fs::symlink(
            std::path::Path::new(&real).join(name),
            bin.path().join(name),
        )?;
    }
    let fake = bin.path().join("kube-apiserver");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'E0000 bad flag: --nonsense' >&2\nexit 3\n",
    )?;
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let error = ControlPlane::builder()
        .bin_dir(bin.path())
        .start()
        .await
        .expect_err("no API server, no cluster");
    let message = error.to_string();
    assert!(message.starts_with("kube-apiserver exited"), "{message}");
    assert!(message.contains("bad flag: --nonsense"), "{message}");
    Ok(())
}

/// Cold start time, five times in a row (run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement, not a test"]
async fn measure_start() -> Result<()> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let cluster = ControlPlane::start().await?;
        times.push(started.elapsed());
        eprintln!(
            "usable in {:.2}s; RSS {} MiB",
            started.elapsed().as_secs_f64(),
            cluster.rss_bytes().await / (1024 * 1024)
        );
        let stopping = Instant::now();
        cluster.stop().await;
        eprintln!("stopped in {:.2}s", stopping.elapsed().as_secs_f64());
    }
    times.sort();
    eprintln!("median start {:.2}s", times[2].as_secs_f64());
    Ok(())
}
