//! A Spring Boot app built with the Maven wrapper serves its page: the sample app of the
//! builder's tests (crates/builder/tests/apps/java), pushed with git to `slipwayd up`, built by
//! the built-in Java buildpack and fetched through the router. Its dependencies come from Maven Central.

use std::path::Path;

use slipway_e2e::{Backend, Platform, User, eventually, http_get};

/// Copies `from` into `to`, keeping the files' modes (mvnw is executable).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[tokio::test]
async fn a_spring_boot_app_built_with_the_maven_wrapper_serves_its_page() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let dir = ada.home().join("demo");
        copy_tree(&repo.join("crates/builder/tests/apps/java"), &dir);
        ada.cwd = dir;
        ada.git(&["init", "-q", "-b", "main"]).success();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "a Spring Boot app"])
            .success();
        ada.slip(&["create", "demo"]).success();
        let output = ada.push_deployed();
        assert!(
            output.contains("remote: -----> Java app detected"),
            "{output}"
        );
        assert!(
            output.contains(
                "remote: -----> Spring Boot 3.5.16: extracting target/demo-0.0.1.jar into layers"
            ),
            "{output}"
        );
        // The web process is the buildpack's default: no Procfile.
        let ps = ada.slip(&["ps"]);
        assert!(
            ps.success().contains("io.slipway.demo.DemoApplication"),
            "{}",
            ps.stdout
        );
        let mut page = (0, String::new());
        eventually(
            std::time::Duration::from_secs(60),
            "the app serves its page",
            || {
                page = http_get(&platform.router, "demo.localhost", "/")
                    .expect("a response from the router");
                page.0 == 200
            },
        );
        assert_eq!(page.1, "hello from spring boot on slipway\n");
    })
    .await
    .unwrap();
}
