//! Rebase: a build on a run image records it, and [`Builder::rebase`] moves the image onto a
//! newer run image without a build — exactly the image a build on the newer one makes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use slipway_builder::image::{ImageSpec, layer_from_dir};
use slipway_builder::{BuildJob, Builder, BuilderConfig, SandboxMode};

const COMMIT: &str = "1a2b3c4d";

async fn builder(data: &Path, run_image: Option<&str>) -> Builder {
    Builder::new(BuilderConfig {
        data_dir: data.to_owned(),
        timeout: Duration::from_secs(300),
        max_output: 8 << 20,
        limits: slipway_builder::Limits::BUILD,
        sandbox: SandboxMode::Auto,
        registry: None,
        run_image: run_image.map(str::to_owned),
        buildpacks_dir: None,
    })
    .await
    .unwrap()
}

/// Stores the run image `name` with one file and `env`, as `slipwayd run-image` would.
fn run_image(builder: &Builder, name: &str, shell: &str, env: &[&str]) -> domain::Digest {
    let images = builder.images();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::write(root.path().join("bin/sh"), shell).unwrap();
    let layer = layer_from_dir(root.path(), "", &images.tmp()).unwrap();
    let spec = ImageSpec {
        env: env.iter().map(|e| (*e).to_owned()).collect(),
        working_dir: Some("/workspace".into()),
        labels: BTreeMap::from([("io.slipway.run-image".into(), name.into())]),
        ..ImageSpec::default()
    };
    images
        .write_image(&format!("run-image:{name}"), &[layer.into()], &spec)
        .unwrap()
        .digest
}

async fn build(builder: &Builder, source: &Path) -> String {
    let config = BTreeMap::new();
    let job = BuildJob {
        app: "demo",
        commit: COMMIT,
        source,
        config: &config,
        stack: domain::Stack::default(),
    };
    let lines = Mutex::new(Vec::new());
    let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
    let built = builder.build(&job, &log).await;
    let output = built.unwrap_or_else(|e| panic!("{e}\n{}", lines.lock().unwrap().join("\n")));
    output.image.unwrap()
}

fn source(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("Procfile"), "web: ./server\n").unwrap();
    std::fs::write(source.join("server"), "#!/bin/sh\necho hi\n").unwrap();
    source
}

#[tokio::test]
async fn a_rebase_makes_the_image_a_build_on_the_new_run_image_makes() {
    let dir = tempfile::tempdir().unwrap();
    let builder = builder(&dir.path().join("data"), Some("base")).await;
    let old = run_image(&builder, "base", "old", &["PATH=/bin", "LANG=C"]);
    let source = source(dir.path());
    let built = build(&builder, &source).await;
    let digest = domain::Digest::parse(&built).unwrap();
    let images = builder.images();
    let record = images.base_of(&digest).unwrap();
    assert_eq!(
        (record.run_image.as_str(), &record.manifest),
        ("base", &old)
    );
    assert!(
        record
            .app_env
            .contains(&"PATH=/workspace/bin:/usr/local/bin:/usr/bin:/bin".to_owned()),
        "{:?}",
        record.app_env
    );
    let before = images.image(&digest).unwrap();

    // Nothing to do while the run image is the one built on.
    let log = |_: &str| {};
    let same = builder.rebase("demo", &built, COMMIT, &log).await.unwrap();
    assert!(same.unchanged);
    assert_eq!(same.image, built);

    let new = run_image(&builder, "base", "new", &["PATH=/bin", "LANG=C.UTF-8"]);
    let rebased = builder.rebase("demo", &built, COMMIT, &log).await.unwrap();
    assert!(!rebased.unchanged);
    assert_eq!((rebased.run_image.as_str(), &rebased.base), ("base", &new));
    let after = images
        .image(&domain::Digest::parse(&rebased.image).unwrap())
        .unwrap();
    let new_layers = images.find("run-image:base").unwrap().unwrap().layers;
    assert_eq!(after.layers[..1], new_layers[..]);
    assert_eq!(
        after.layers[1..],
        before.layers[1..],
        "the app's layers are kept"
    );
    assert!(
        after.env.contains(&"LANG=C.UTF-8".to_owned()),
        "{:?}",
        after.env
    );

    // A build of the same source on the new run image makes the very same image.
    assert_eq!(build(&builder, &source).await, rebased.image);
}

#[tokio::test]
async fn a_rebase_is_refused_in_one_line_when_it_cannot_be_done() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let log = |_: &str| {};

    // Built without a run image: no record of one.
    let bare = builder(&dir.path().join("bare"), None).await;
    let image = build(&bare, &source).await;
    let err = bare.rebase("demo", &image, COMMIT, &log).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "this platform builds on no run image, so there is none to rebase onto: start slipwayd with --run-image NAME"
    );
    let data = dir.path().join("bare");
    let later = builder(&data, Some("base")).await;
    run_image(&later, "base", "sh", &["PATH=/bin"]);
    let err = later
        .rebase("demo", &image, COMMIT, &log)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("this image records no run image it was built on"),
        "{err}"
    );

    // Built on another run image than the one configured now.
    let other = builder(&dir.path().join("other"), Some("other")).await;
    run_image(&other, "other", "sh", &["PATH=/bin"]);
    let image = build(&other, &source).await;
    let configured = builder(&dir.path().join("other"), Some("base")).await;
    run_image(&configured, "base", "sh", &["PATH=/bin"]);
    let err = configured
        .rebase("demo", &image, COMMIT, &log)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "this image was built on the run image other, not base: push again to build it on base"
    );

    // An image this store does not have, or one from a registry by tag.
    for image in [
        format!("sha256:{}", "ab".repeat(32)),
        "registry.example.com/demo:v1".to_owned(),
    ] {
        let err = configured
            .rebase("demo", &image, COMMIT, &log)
            .await
            .unwrap_err();
        assert!(
            err.to_string().ends_with(": push again to rebuild it")
                || err.to_string().ends_with(": push again to build it"),
            "{err}"
        );
    }
}
