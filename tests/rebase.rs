//! `slip rebase` after `slipwayd run-image` made a new run image: a new release whose image
//! has the new run image's layers and the app's own unchanged, without a build, pushed to the
//! registry and serving; `slipwayd rebase --all` does the same for every app and reports each.

use std::process::Command;

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, binary, http_get};

fn json(run: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(run)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `slipwayd run-image --name base` of these packages, into the platform's image store.
fn run_image(platform: &Platform, packages: &[&str]) {
    let mut command = Command::new(binary("slipwayd"));
    command.args(["run-image", "--name", "base", "--data-dir"]);
    command.arg(&platform.data_dir);
    for package in packages {
        command.args(["--package", package]);
    }
    let made = command.output().unwrap();
    assert!(
        made.status.success(),
        "slipwayd run-image: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A document of the platform's image store, by digest.
fn blob(platform: &Platform, digest: &str) -> Value {
    let path = platform
        .data_dir
        .join("images/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The layer digests of the image a build recorded (`host/app@sha256:…`).
fn layers(platform: &Platform, image: &str) -> Vec<String> {
    let digest = image.rsplit('@').next().unwrap();
    blob(platform, digest)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The run image `base`'s manifest now.
fn run_image_manifest(platform: &Platform) -> Value {
    let index: Value = serde_json::from_slice(
        &std::fs::read(platform.data_dir.join("images/index.json")).unwrap(),
    )
    .unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "run-image:base")
        .expect("the run image is in the store")
        .clone();
    blob(platform, entry["digest"].as_str().unwrap())
}

/// The layer digests of the run image `base` now.
fn run_image_layers(platform: &Platform) -> Vec<String> {
    run_image_manifest(platform)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The sizes of the run image `base`'s layers now.
fn run_image_sizes(platform: &Platform) -> Vec<u64> {
    run_image_manifest(platform)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn rebase_moves_an_app_onto_a_new_run_image_without_a_build() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    let prefix = format!("{registry}/rebase{}", std::process::id());
    let platform = Platform::start_with(
        Backend::Sqlite,
        &["--registry", &prefix, "--run-image", "base"],
    )
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || {
        run_image(&platform, &["busybox-static"]);
        let first_base = run_image_layers(&platform);

        // An app served by busybox's httpd, from the run image.
        let mut ada = User::registered(&platform, "ada");
        let dir = ada.home().join("site");
        std::fs::create_dir_all(&dir).unwrap();
        ada.cwd = dir.clone();
        std::fs::write(dir.join("index.html"), "<h1>hello from slipway</h1>\n").unwrap();
        std::fs::write(
            dir.join("Procfile"),
            "web: httpd -f -p $PORT -h /workspace\n",
        )
        .unwrap();
        ada.git(&["init", "-q", "-b", "main"]).success();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "site"]).success();
        let commit = ada.git(&["rev-parse", "HEAD"]).success().trim().to_owned();
        ada.slip(&["create", "site"]).success();
        ada.push_deployed();
        let serves = || http_get(&platform.router, "site.localhost", "/index.html").unwrap();
        assert_eq!(serves(), (200, "<h1>hello from slipway</h1>\n".to_owned()));
        let built = json(ada.slip(&["builds", "-a", "site", "--json"]).success());
        assert_eq!(built.len(), 1);
        let image = built[0]["image"].as_str().unwrap().to_owned();
        let before = layers(&platform, &image);
        assert_eq!(before[..1], first_base[..], "built on the run image");

        // Nothing to do while the run image is the same.
        let same = ada.slip(&["rebase", "-a", "site"]);
        assert!(
            same.success().contains("is on run image base (sha256:"),
            "{}",
            same.stdout
        );
        assert!(
            same.stdout.contains("already: nothing to rebase"),
            "{}",
            same.stdout
        );

        // A new run image, with one more package.
        run_image(&platform, &["busybox-static", "hello"]);
        let new_base = run_image_layers(&platform);
        assert_ne!(new_base, first_base);

        let rebase = ada.slip(&["rebase", "-a", "site"]);
        let out = rebase.success();
        assert!(
            out.contains("Rebased site onto run image base (sha256:")
                && out.contains("): v3, no build ran")
                && out.contains("Deploying v3... done, v3"),
            "{out}"
        );

        // A new build of the same commit, with no log: no build ran.
        let builds = json(ada.slip(&["builds", "-a", "site", "--json"]).success());
        assert_eq!(builds.len(), 2);
        let rebased = &builds[0];
        assert_eq!(rebased["commit"], commit.as_str());
        let rebased_image = rebased["image"].as_str().unwrap().to_owned();
        assert!(
            rebased_image.starts_with(&format!("{prefix}/site@sha256:")),
            "{rebased_image}"
        );
        assert_ne!(rebased_image, image);
        let info = ada.slip(&[
            "builds:info",
            rebased["id"].as_str().unwrap(),
            "--json",
            "-a",
            "site",
        ]);
        let info: Value = serde_json::from_str(info.success()).unwrap();
        assert_eq!(info["log"], "", "no build ran");
        // The new run image went to the registry once; of the app's image, only the new
        // config was sent: its own layers were there already and the run image's mounted.
        let new_base_bytes: u64 = run_image_sizes(&platform).iter().sum();
        let pushed = rebased["pushed_bytes"].as_u64().unwrap();
        assert!(
            pushed > new_base_bytes && pushed < new_base_bytes + 4096,
            "{pushed} bytes pushed, {new_base_bytes} of them the run image's"
        );

        // The new run image's layers under the app's own, unchanged.
        let after = layers(&platform, &rebased_image);
        assert_eq!(after[..new_base.len()], new_base[..]);
        assert_eq!(after[new_base.len()..], before[first_base.len()..]);
        // The registry has it as the store does.
        let inspect = ada.run(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{rebased_image}"),
            ],
        );
        let inspected: Value = serde_json::from_str(inspect.success()).unwrap();
        let pushed: Vec<String> = inspected["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(pushed, after);

        // The release says what happened, and the app serves from the new image.
        let releases = json(ada.slip(&["releases", "-a", "site", "--json"]).success());
        assert_eq!(releases[0]["version"], 3);
        assert_eq!(releases[0]["status"], "succeeded");
        let summary = releases[0]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("ada rebased onto run image base (sha256:"),
            "{summary}"
        );
        assert_eq!(serves(), (200, "<h1>hello from slipway</h1>\n".to_owned()));

        // An app with nothing built has nothing to rebase: one line, and no release.
        ada.slip(&["create", "empty", "--no-remote"]).success();
        let refused = ada.slip(&["rebase", "-a", "empty"]);
        let err = refused.failure();
        assert!(
            err.contains("empty runs no image Slipway built, so there is nothing to rebase"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        // The operator's way: back onto a run image like the first (the same packages make
        // the same layer), every app reported.
        run_image(&platform, &["busybox-static"]);
        assert_eq!(run_image_layers(&platform), first_base);
        let all = Command::new(binary("slipwayd"))
            .args(["rebase", "--all", "--as", "ada", "--data-dir"])
            .arg(&platform.data_dir)
            .args(["--database-url", &platform.database_url])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&all.stdout);
        assert!(
            all.status.success(),
            "{report}{}",
            String::from_utf8_lossy(&all.stderr)
        );
        assert!(
            report.contains("Rebased site onto run image base (sha256:"),
            "{report}"
        );
        assert!(report.contains("): v4, no build ran"), "{report}");
        assert!(
            report.contains("empty: not rebased: empty runs no image Slipway built"),
            "{report}"
        );
        let builds = json(ada.slip(&["builds", "-a", "site", "--json"]).success());
        let back = builds[0]["image"].as_str().unwrap();
        // The same app on the same run image is the same image as the first build made.
        assert_eq!(
            back.rsplit('@').next(),
            image.rsplit('@').next(),
            "{back} {image}"
        );
        slipway_e2e::eventually(std::time::Duration::from_secs(60), "v4 serves", || {
            let releases = json(ada.slip(&["releases", "-a", "site", "--json"]).success());
            releases[0]["status"] == "succeeded"
        });
        assert_eq!(serves(), (200, "<h1>hello from slipway</h1>\n".to_owned()));
    })
    .await
    .unwrap();
}
