//! Snapshot tests of rendering: what Slipway asks of a cluster for a release, read whole.

use std::collections::BTreeMap;

use domain::{
    AppName, Autoscale, Check, ConfigVars, Cpu, Formation, ImageRef, Memory, Probe,
    ProcessSettings, ProcessType, Procfile, ReleaseVersion,
};
use expect_test::{expect, expect_file};
use releaser::ReleaseSpec;

use super::*;

const DIGEST: &str = "sha256:4f2a3b0c1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";

fn spec(version: u32, config: &[(&str, &str)]) -> ReleaseSpec {
    ReleaseSpec {
        app: AppName::parse("demo").unwrap(),
        uid_slot: 7,
        version: ReleaseVersion::new(version).unwrap(),
        image: ImageRef::parse(&format!("127.0.0.1:5000/demo:abc123@{DIGEST}")).unwrap(),
        processes: Procfile::parse(
            "web: gunicorn app:app --bind 0.0.0.0:$PORT\nworker: python worker.py\nrelease: python manage.py migrate\n",
        )
        .unwrap(),
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

fn json<T: serde::Serialize>(objects: &[T]) -> String {
    let values: Vec<serde_json::Value> = objects
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
    serde_json::to_string_pretty(&values).unwrap() + "\n"
}

fn all(objects: &Objects) -> String {
    let mut values = vec![
        serde_json::to_value(&objects.namespace).unwrap(),
        serde_json::to_value(&objects.network_policy).unwrap(),
    ];
    values.extend(
        objects
            .pull_secret
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    values.push(serde_json::to_value(&objects.env).unwrap());
    values.extend(
        objects
            .service
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    values.extend(
        objects
            .deployments
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    values.extend(
        objects
            .autoscalers
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    serde_json::to_string_pretty(&values).unwrap() + "\n"
}

#[test]
fn a_release_of_web_and_worker() {
    let objects = render(
        &spec(3, &[("DATABASE_URL", "postgres://db/demo"), ("DEBUG", "0")]),
        &formation(&[("web", 2), ("worker", 1)]),
        &Platform::default(),
    )
    .unwrap();
    expect_file!["snapshots/web_and_worker.json"].assert_eq(&all(&objects));
}

#[test]
fn settings_become_probes_resources_and_an_autoscaler() {
    let mut spec = spec(4, &[]);
    let web = ProcessType::parse("web").unwrap();
    let worker = ProcessType::parse("worker").unwrap();
    let mut settings = ProcessSettings::default();
    let w = settings.entry(web);
    w.readiness = Some(
        Probe::new(
            Check::http_get("/healthz", None).unwrap(),
            Some(5),
            Some(2),
            Some(6),
        )
        .unwrap(),
    );
    w.liveness =
        Some(Probe::new(Check::exec("test -f /tmp/alive").unwrap(), None, None, None).unwrap());
    w.limits.memory = Some(Memory::parse("512M").unwrap());
    w.limits.cpu = Some(Cpu::parse("500m").unwrap());
    let k = settings.entry(worker);
    k.limits.cpu = Some(Cpu::parse("1").unwrap());
    k.autoscale = Some(Autoscale::new(2, 10, 70).unwrap());
    spec.settings = settings;
    let platform = Platform {
        pull_credentials: Some(br#"{"auths":{"registry.example":{"auth":"dTpw"}}}"#.to_vec()),
        ingress_class: Some("nginx".to_owned()),
        ..Platform::default()
    };
    let objects = render(&spec, &formation(&[("web", 2), ("worker", 1)]), &platform).unwrap();
    expect_file!["snapshots/settings.json"].assert_eq(&all(&objects));
}

#[test]
fn the_ingress_routes_every_host_to_the_web_service() {
    let app = AppName::parse("demo").unwrap();
    let hosts = [
        "demo.slipway.example".to_owned(),
        "www.example.com".to_owned(),
    ];
    let ingress = ingress(&app, &hosts, &Platform::default());
    expect_file!["snapshots/ingress.json"].assert_eq(&json(&[ingress]));
}

#[test]
fn the_release_phase_is_a_job_and_a_one_off_a_pod() {
    let spec = spec(5, &[("DATABASE_URL", "postgres://db/demo")]);
    let job = release_job(&spec, "python manage.py migrate", &Platform::default()).unwrap();
    let pod = run_pod(
        &spec,
        "python manage.py shell",
        "run-1-x7k2p",
        &Platform::default(),
    )
    .unwrap();
    expect_file!["snapshots/release_job.json"].assert_eq(&json(&[job]));
    expect_file!["snapshots/run_pod.json"].assert_eq(&json(&[pod]));
}

#[test]
fn a_new_release_changes_the_template_but_never_the_selector() {
    let platform = Platform::default();
    let before = render(
        &spec(3, &[("A", "1")]),
        &formation(&[("web", 1)]),
        &platform,
    )
    .unwrap();
    let after = render(
        &spec(4, &[("A", "2")]),
        &formation(&[("web", 1)]),
        &platform,
    )
    .unwrap();
    let web = |o: &Objects| o.deployments[0].spec.clone();
    assert_eq!(web(&before).selector, web(&after).selector);
    assert_ne!(web(&before).template, web(&after).template);
    assert_eq!(
        (
            before.env.metadata.name.as_deref(),
            after.env.metadata.name.as_deref()
        ),
        (Some("demo-v3-env"), Some("demo-v4-env"))
    );
    // The same release renders the same objects: applying them again changes nothing.
    let again = render(
        &spec(3, &[("A", "1")]),
        &formation(&[("web", 1)]),
        &platform,
    )
    .unwrap();
    assert_eq!(before, again);
}

#[test]
fn an_image_the_cluster_cannot_pull_by_digest_is_refused() {
    let mut local = spec(3, &[]);
    local.image = ImageRef::parse(DIGEST).unwrap();
    let err = render(&local, &Formation::default(), &Platform::default()).unwrap_err();
    expect![[r#"sha256:4f2a3b0c1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a is in the platform's local image store only: run slipwayd with --registry so builds are pushed where the cluster can pull them, then push again"#]]
    .assert_eq(&err.to_string());
    let mut tagged = spec(3, &[]);
    tagged.image = ImageRef::parse("127.0.0.1:5000/demo:latest").unwrap();
    let err = render(&tagged, &Formation::default(), &Platform::default()).unwrap_err();
    expect![[r#"127.0.0.1:5000/demo:latest has no digest; the Kubernetes runtime runs images by digest only"#]]
    .assert_eq(&err.to_string());
}

#[test]
fn a_removed_process_type_is_not_rendered() {
    let mut spec = spec(6, &[]);
    spec.processes = Procfile::parse("web: gunicorn app:app\n").unwrap();
    let objects = render(
        &spec,
        &formation(&[("web", 1), ("worker", 3)]),
        &Platform::default(),
    )
    .unwrap();
    let names: Vec<_> = objects
        .deployments
        .iter()
        .filter_map(|d| d.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["demo-web"]);
}
