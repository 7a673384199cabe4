//! Snapshot tests of rendering: what Slipway asks of a cluster for a release, read whole.

use std::collections::BTreeMap;

use domain::{
    AppName, Autoscale, Check, ConfigVars, Cpu, Formation, ImageRef, Memory, Probe,
    ProcessSettings, ProcessType, Procfile, ReleaseVersion,
};
use expect_test::{expect, expect_file};
use std::sync::Arc;

use domain::{Cidr, RoutingSettings};
use releaser::{CertificatePem, ReleaseSpec, RoutedHost, Routing};

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

fn routed(hosts: &[(&str, Option<&str>)], settings: RoutingSettings) -> Routing {
    Routing {
        hosts: hosts
            .iter()
            .map(|(name, certificate)| RoutedHost {
                name: (*name).to_owned(),
                certificate: certificate.map(|c| {
                    Arc::new(CertificatePem {
                        chain: format!(
                            "-----BEGIN CERTIFICATE-----\n{c}\n-----END CERTIFICATE-----\n"
                        ),
                        key: "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"
                            .to_owned(),
                    })
                }),
            })
            .collect(),
        settings,
    }
}

fn all_routed(routed: &Routed) -> String {
    let mut values = Vec::new();
    values.extend(routed.tls.iter().map(|o| serde_json::to_value(o).unwrap()));
    values.extend(
        routed
            .maintenance
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    values.extend(
        routed
            .ingress
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    serde_json::to_string_pretty(&values).unwrap() + "\n"
}

#[test]
fn the_ingress_routes_every_host_to_the_web_service() {
    let app = AppName::parse("demo").unwrap();
    let routing = routed(
        &[("demo.slipway.example", None), ("www.example.com", None)],
        RoutingSettings::default(),
    );
    let routed = super::routing(&app, &routing, &Platform::default());
    assert!(routed.tls.is_empty() && routed.maintenance.is_none());
    expect_file!["snapshots/ingress.json"].assert_eq(&json(&[routed.ingress.unwrap()]));
}

#[test]
fn certificates_become_tls_secrets_and_switches_annotations() {
    let app = AppName::parse("demo").unwrap();
    let settings = RoutingSettings {
        force_https: true,
        hsts: true,
        allow: [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ]
        .into(),
        ..RoutingSettings::default()
    };
    let routing = routed(
        &[
            ("demo.slipway.example", None),
            ("www.example.com", Some("WWW")),
        ],
        settings,
    );
    let platform = Platform {
        ingress_class: Some("nginx".to_owned()),
        ingress_annotations: BTreeMap::from([
            (
                "cert-manager.io/cluster-issuer".to_owned(),
                "letsencrypt".to_owned(),
            ),
            // A switch's own key wins over the platform's.
            (SSL_REDIRECT.to_owned(), "false".to_owned()),
        ]),
        ..Platform::default()
    };
    let routed = super::routing(&app, &routing, &platform);
    expect_file!["snapshots/ingress_tls_and_switches.json"].assert_eq(&all_routed(&routed));
}

#[test]
fn maintenance_points_every_host_at_a_service_without_pods() {
    let app = AppName::parse("demo").unwrap();
    let routing = routed(
        &[("demo.slipway.example", None), ("www.example.com", None)],
        RoutingSettings {
            maintenance: true,
            ..RoutingSettings::default()
        },
    );
    let platform = Platform {
        tls_for_every_host: true,
        ..Platform::default()
    };
    let routed = super::routing(&app, &routing, &platform);
    expect_file!["snapshots/ingress_maintenance.json"].assert_eq(&all_routed(&routed));
}

#[test]
fn routing_off_or_no_host_is_no_ingress_and_no_secret() {
    let app = AppName::parse("demo").unwrap();
    let off = routed(
        &[("www.example.com", Some("WWW"))],
        RoutingSettings {
            enabled: false,
            maintenance: true,
            ..RoutingSettings::default()
        },
    );
    let none = routed(&[], RoutingSettings::default());
    for routing in [off, none] {
        let routed = super::routing(&app, &routing, &Platform::default());
        assert_eq!(
            (routed.ingress, routed.maintenance, routed.tls.len()),
            (None, None, 0)
        );
    }
}

#[test]
fn a_routed_apps_debug_shows_no_key() {
    let app = AppName::parse("demo").unwrap();
    let routing = routed(
        &[("www.example.com", Some("WWW"))],
        RoutingSettings::default(),
    );
    let routed = super::routing(&app, &routing, &Platform::default());
    let shown = format!("{routed:?} {routing:?}");
    assert!(shown.contains("tls-www.example.com"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
    // Not even as the bytes a ByteString's Debug would print.
    assert!(!shown.contains("83, 69, 67, 82, 69, 84"), "{shown}");
}

/// Whether `name` is a DNS-1123 subdomain, as the API server checks a Secret's name.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|p| {
            let b = p.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[test]
fn tls_secret_names_are_valid_and_distinct_for_every_host() {
    let label = "a".repeat(63);
    let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(longest.len(), 253);
    let cut = longest[..longest.len() - 2].to_owned() + "cc";
    let hosts = [
        "www.example.com".to_owned(),
        "demo.localhost".to_owned(),
        longest.clone(),
        cut.clone(),
        // What a long host's name becomes, written as a host: still its own name.
        tls_secret_name(&longest)["tls-".len()..].to_owned(),
        "Not_A.Host".to_owned(),
        "-.".to_owned(),
    ];
    let names: Vec<String> = hosts.iter().map(|h| tls_secret_name(h)).collect();
    for (host, name) in hosts.iter().zip(&names) {
        assert!(is_dns_subdomain(name), "{host} → {name}");
        assert!(is_dns_subdomain(&issued_secret_name(host)), "{host}");
    }
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:#?}");
    expect![[r#"
        [
            "tls-www.example.com",
            "tls-demo.localhost",
            "tls--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bf613a038168895d",
        ]
    "#]]
    .assert_debug_eq(&&names[..3]);
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
fn a_test_pod_carries_its_own_environment_and_no_release_secret() {
    let spec = spec(5, &[("CI", "true"), ("SUITE", "unit")]);
    let pod = test_pod(&spec, "pytest", "test-3-x7k2p", &Platform::default()).unwrap();
    let container = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.env_from, None, "no release Secret");
    let env: Vec<(&str, Option<&str>)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("DYNO", Some("run")),
            ("CI", Some("true")),
            ("SUITE", Some("unit"))
        ]
    );
    assert_eq!(pod.metadata.name.as_deref(), Some("demo-test-test-3-x7k2p"));
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/component"], "test");
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
