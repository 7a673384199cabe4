//! Benchmarks of the Kubernetes runtime on the test control plane (`scripts/control-plane.sh`
//! builds it; `SLIPWAY_CONTROL_PLANE_BIN` names it), in one run:
//!
//! - a release → its objects applied, and → its rollout complete, for one app at a time and
//!   for 50 apps deployed at once (p50 and p99), each beside the baseline of the same
//!   cluster: one bare Deployment server-side applied and waited for, the least a rollout
//!   can cost;
//! - reconciling 1,000 apps whose release is unchanged (what a release manager does for
//!   every app when it starts), 32 at a time.
//!
//! kwok is the node: pods are ready as soon as they are scheduled, so the numbers are the
//! platform's and the control plane's own costs, not an image pull's.
//!
//! Run: `cargo bench -p slipway-kubernetes --bench rollout` (`-- --apps N` for the reconcile
//! count).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{
    AppName, ConfigVars, Formation, ImageRef, ProcessSettings, ProcessType, Procfile,
    ReleaseVersion,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use releaser::{ReleaseSpec, Runtime};
use slipway_kubernetes::{APPLIED, KubeRuntime, Platform};
use test_support::ControlPlane;

const ROUNDS: usize = 5;
const AT_ONCE: usize = 50;
const RECONCILE_AT_ONCE: usize = 32;

fn spec(app: &str, version: u32) -> ReleaseSpec {
    ReleaseSpec {
        app: AppName::parse(app).unwrap(),
        uid_slot: 1,
        version: ReleaseVersion::new(version).unwrap(),
        image: ImageRef::parse(&format!("registry.test:5000/{app}@sha256:{version:064x}")).unwrap(),
        processes: Procfile::parse("web: serve\n").unwrap(),
        config: ConfigVars::from_map(BTreeMap::from([(
            "VERSION".to_owned(),
            version.to_string(),
        )]))
        .unwrap(),
        settings: ProcessSettings::default(),
    }
}

fn one_web() -> Formation {
    Formation::from_counts([(ProcessType::parse("web").unwrap(), 1)])
}

/// Deploys `spec`; how long until its objects were applied, and until it rolled out.
async fn timed_deploy(
    runtime: &KubeRuntime,
    spec: &ReleaseSpec,
    previous: Option<&ReleaseSpec>,
) -> (Duration, Duration) {
    let started = Instant::now();
    let applied = Mutex::new(None);
    let progress = |line: &str| {
        if line == APPLIED {
            applied
                .lock()
                .unwrap()
                .get_or_insert_with(|| started.elapsed());
        }
    };
    runtime
        .deploy(spec, &one_web(), previous, &progress)
        .await
        .expect("the release rolls out");
    let done = started.elapsed();
    (applied.into_inner().unwrap().unwrap_or(done), done)
}

/// The baseline: one bare Deployment of a new template, server-side applied, waited for.
async fn bare_rollout(client: &kube::Client, namespace: &str, round: usize) -> Duration {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bare", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "bare"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "bare", "round": round.to_string()}},
                "spec": {"containers": [{"name": "app", "image": "registry.test:5000/bare@sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}
            }
        }
    }))
    .unwrap();
    let started = Instant::now();
    api.patch(
        "bare",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&deployment),
    )
    .await
    .unwrap();
    let cond = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            slipway_kubernetes::rollout::status(d) == slipway_kubernetes::rollout::Rollout::Done
        })
    };
    kube::runtime::wait::await_condition(api, "bare", cond)
        .await
        .unwrap();
    started.elapsed()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((p / 100.0) * (samples.len() as f64)).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    test_support::init();
    let apps: usize = std::env::args()
        .skip_while(|a| a != "--apps")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = ControlPlane::builder()
            .max_pods(apps + 2 * AT_ONCE + 20)
            .start()
            .await
            .expect("the test control plane starts: build it with scripts/control-plane.sh");
        // slipwayd's own client, for Slipway and the baseline alike.
        let runtime = Arc::new(
            KubeRuntime::connect(Some(cluster.kubeconfig_path()), Platform::default())
                .await
                .expect("the control plane answers"),
        );
        let client = runtime.client().clone();

        // Baseline: a bare Deployment, in a namespace of its own.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-bare"}}),
        )
        .unwrap();
        namespaces
            .patch("bench-bare", &PatchParams::apply("bench"), &Patch::Apply(&ns))
            .await
            .unwrap();
        let mut bare = Vec::new();
        for round in 0..=ROUNDS {
            let took = bare_rollout(&client, "bench-bare", round).await;
            if round > 0 {
                bare.push(took);
            }
        }

        // One app, a release at a time.
        let mut applied = Vec::new();
        let mut rolled = Vec::new();
        let mut previous = None;
        for version in 1..=(ROUNDS as u32 + 1) {
            let spec = spec("solo", version);
            let (a, r) = timed_deploy(&runtime, &spec, previous.as_ref()).await;
            if version > 1 {
                applied.push(a);
                rolled.push(r);
            }
            previous = Some(spec);
        }
        let bare_p50 = percentile(&mut bare, 50.0);
        println!("kubernetes runtime, one release at a time ({ROUNDS} releases):");
        println!("  baseline, a bare Deployment applied and rolled out: p50 {}", ms(bare_p50));
        let (a50, r50) = (percentile(&mut applied, 50.0), percentile(&mut rolled, 50.0));
        println!(
            "  release -> applied: p50 {}  p99 {}",
            ms(a50),
            ms(percentile(&mut applied, 99.0))
        );
        println!(
            "  release -> rolled out: p50 {}  p99 {}  ({:.2}x the bare Deployment)",
            ms(r50),
            ms(percentile(&mut rolled, 99.0)),
            r50.as_secs_f64() / bare_p50.as_secs_f64()
        );

        // Fifty apps, a release each, all at once.
        let mut applied = Vec::new();
        let mut rolled = Vec::new();
        let mut wall = Vec::new();
        for version in 1..=3u32 {
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..AT_ONCE {
                let runtime = Arc::clone(&runtime);
                tasks.spawn(async move {
                    let app = format!("fifty-{n}");
                    let previous = (version > 1).then(|| spec(&app, version - 1));
                    timed_deploy(&runtime, &spec(&app, version), previous.as_ref()).await
                });
            }
            let mut round = Vec::new();
            while let Some(timing) = tasks.join_next().await {
                match timing {
                    Ok(t) => round.push(t),
                    Err(err) => {
                        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::all(client.clone());
                        for p in pods.list(&Default::default()).await.unwrap().items {
                            let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).map(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                            if ready != Some(true) {
                                eprintln!("{:?} {:?} {:?}", p.metadata.namespace, p.metadata.name, p.status);
                            }
                        }
                        eprintln!("{}", cluster.log_tail("kwok", 60).await);
                        panic!("{err}");
                    }
                }
            }
            // The first round makes the namespaces: not what a release costs.
            if version > 1 {
                wall.push(started.elapsed());
                for (a, r) in round {
                    applied.push(a);
                    rolled.push(r);
                }
            }
        }
        // Baseline: fifty bare Deployments rolled out at once, each in a namespace of its own.
        let mut bare_fifty = Vec::new();
        for n in 0..AT_ONCE {
            let name = format!("bench-bare-{n}");
            let ns: Namespace = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
            }))
            .unwrap();
            namespaces
                .patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&ns))
                .await
                .unwrap();
        }
        for round in 0..=2 {
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..AT_ONCE {
                let client = client.clone();
                tasks.spawn(async move { bare_rollout(&client, &format!("bench-bare-{n}"), round).await });
            }
            while let Some(took) = tasks.join_next().await {
                if round > 0 {
                    bare_fifty.push(took.unwrap());
                }
            }
        }
        let bare_fifty_p50 = percentile(&mut bare_fifty, 50.0);
        println!("kubernetes runtime, {AT_ONCE} apps deployed at once (2 rounds):");
        println!(
            "  baseline, {AT_ONCE} bare Deployments applied and rolled out at once: p50 {}  p99 {}",
            ms(bare_fifty_p50),
            ms(percentile(&mut bare_fifty, 99.0))
        );
        println!(
            "  release -> applied: p50 {}  p99 {}",
            ms(percentile(&mut applied, 50.0)),
            ms(percentile(&mut applied, 99.0))
        );
        let rolled_p50 = percentile(&mut rolled, 50.0);
        println!(
            "  release -> rolled out: p50 {}  p99 {}  (all {AT_ONCE}: {}; p50 {:.2}x the bare Deployments')",
            ms(rolled_p50),
            ms(percentile(&mut rolled, 99.0)),
            ms(percentile(&mut wall, 50.0)),
            rolled_p50.as_secs_f64() / bare_fifty_p50.as_secs_f64()
        );

        // A thousand apps deployed, then reconciled unchanged.
        let specs: Vec<ReleaseSpec> = (0..apps).map(|n| spec(&format!("many-{n}"), 1)).collect();
        let specs = Arc::new(specs);
        let deploy_all = |reconcile: bool| {
            let runtime = Arc::clone(&runtime);
            let specs = Arc::clone(&specs);
            async move {
                let turns = Arc::new(tokio::sync::Semaphore::new(RECONCILE_AT_ONCE));
                let mut tasks = tokio::task::JoinSet::new();
                let started = Instant::now();
                for n in 0..specs.len() {
                    let (runtime, specs, turns) =
                        (Arc::clone(&runtime), Arc::clone(&specs), Arc::clone(&turns));
                    tasks.spawn(async move {
                        let _turn = turns.acquire().await.unwrap();
                        let spec = &specs[n];
                        let quiet = |_: &str| {};
                        if reconcile {
                            runtime.scale(spec, &one_web()).await
                        } else {
                            runtime.deploy(spec, &one_web(), None, &quiet).await
                        }
                        .expect("the app deploys");
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.unwrap();
                }
                started.elapsed()
            }
        };
        let deployed = deploy_all(false).await;
        println!("kubernetes runtime, {apps} apps:");
        println!("  first deploy of all: {:.1} s", deployed.as_secs_f64());
        let reconciled = deploy_all(true).await;
        println!(
            "  reconcile of all, unchanged: {:.1} s ({} per app, {RECONCILE_AT_ONCE} at a time)",
            reconciled.as_secs_f64(),
            ms(reconciled / u32::try_from(apps).unwrap_or(1))
        );
        cluster.stop().await;
    });
}
