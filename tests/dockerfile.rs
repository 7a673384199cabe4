//! Dockerfile builds through `git push`: an app that no buildpack detects and that has a
//! Dockerfile at its root is built from it by the platform's own code, daemonlessly, on the
//! run image `slipwayd run-image` made, and served; a push that changes only the app's code
//! reuses every layer before the step that copies it; an unsupported instruction is refused
//! with its line; `slip stack:set container` builds from the Dockerfile `heroku.yml` names.
//!
//! The first test's build stage runs busybox's shell, so it is quick. The Go test builds a
//! real Go server in a build stage `FROM` a Go image of the platform's registry: there is no
//! Docker Hub here, so the test makes that image of the host's Go toolchain (`/usr/local/go`)
//! with umoci and pushes it with skopeo, as an operator would push one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slipway_e2e::{Backend, Platform, User, eventually, http_get};

const DOCKERFILE: &str = "\
FROM run-image:base AS build
WORKDIR /src
COPY greeting.txt ./
RUN mkdir -p /out && sed 's/.*/<h1>&<\\/h1>/' greeting.txt > /out/header.html && echo made the header
COPY . .
RUN cat /out/header.html page.html > /out/index.html && echo made the page

FROM run-image:base
COPY --from=build /out/index.html /site/index.html
EXPOSE 8080
CMD httpd -f -p $PORT -h /site
";

/// Whether the build printed `line` itself (not only as part of a step's text).
fn printed(output: &str, line: &str) -> bool {
    output
        .lines()
        .any(|l| l.trim_end() == format!("remote: {line}"))
}

fn commit(user: &User, message: &str) {
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", message]).success();
}

/// The page the app serves, once it serves `expected`.
#[track_caller]
fn serves(platform: &Platform, app: &str, expected: &str) {
    let host = format!("{app}.localhost");
    eventually(
        Duration::from_secs(30),
        &format!("{app} serves {expected:?}"),
        || {
            http_get(&platform.router, &host, "/")
                .is_ok_and(|(status, body)| status == 200 && body.contains(expected))
        },
    );
}

#[tokio::test]
async fn a_multi_stage_dockerfile_builds_serves_and_reuses_its_layers() {
    let platform = Platform::start(Backend::Sqlite).await.unwrap();
    tokio::task::spawn_blocking(move || {
        platform.make_run_image("base");
        let mut ada = User::registered(&platform, "ada");
        let app = ada.home().join("site");
        std::fs::create_dir_all(&app).unwrap();
        ada.cwd = app.clone();
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(app.join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(app.join("greeting.txt"), "hello from a Dockerfile\n").unwrap();
        std::fs::write(app.join("page.html"), "<p>first</p>\n").unwrap();
        commit(&ada, "site");
        ada.slip(&["create", "site"]).success();

        let first = ada.push_deployed();
        assert!(printed(&first, "made the header") && printed(&first, "made the page"), "{first}");
        assert!(!first.contains(": cached"), "{first}");
        serves(&platform, "site", "<h1>hello from a Dockerfile</h1>");
        serves(&platform, "site", "<p>first</p>");

        // Only the app's code changes: every step before COPY . . is reused.
        std::fs::write(app.join("page.html"), "<p>second</p>\n").unwrap();
        commit(&ada, "page");
        let second = ada.push_deployed();
        for step in [
            "Step 3/10 : COPY greeting.txt ./: cached",
            "Step 4/10 : RUN mkdir -p /out && sed 's/.*/<h1>&<\\/h1>/' greeting.txt > /out/header.html && echo made the header: cached",
        ] {
            assert!(second.contains(step), "{step:?} in {second}");
        }
        assert!(!printed(&second, "made the header"), "{second}");
        assert!(printed(&second, "made the page"), "{second}");
        serves(&platform, "site", "<p>second</p>");

        // An unsupported instruction: refused with its line, and the app keeps serving.
        std::fs::write(
            app.join("Dockerfile"),
            format!("{DOCKERFILE}HEALTHCHECK CMD wget -q localhost:$PORT\n"),
        )
        .unwrap();
        commit(&ada, "healthcheck");
        let refused = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(!refused.ok);
        assert!(
            refused
                .stderr
                .contains("Dockerfile line 12: HEALTHCHECK is not supported; "),
            "{}",
            refused.stderr
        );
        serves(&platform, "site", "<p>second</p>");

        // On the container stack, the Dockerfile heroku.yml names is the build.
        std::fs::remove_file(app.join("Dockerfile")).unwrap();
        std::fs::create_dir_all(app.join("docker")).unwrap();
        std::fs::write(app.join("docker/web.Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(app.join("heroku.yml"), "build:\n  docker:\n    web: docker/web.Dockerfile\n").unwrap();
        std::fs::write(app.join("page.html"), "<p>third</p>\n").unwrap();
        commit(&ada, "container stack");
        let set = ada.slip(&["stack:set", "container", "-a", "site"]);
        assert!(set.success().starts_with("site is on the container stack: "), "{}", set.stdout);
        assert!(ada.slip(&["stack", "-a", "site"]).success().starts_with("site is on the container stack"));
        let third = ada.push_deployed();
        assert!(third.contains("Building the image from docker/web.Dockerfile"), "{third}");
        serves(&platform, "site", "<p>third</p>");
    })
    .await
    .unwrap();
}

/// With a registry, a Dockerfile image goes there like a buildpack one: the run image it is
/// built on once, to the run-image repository, and the app's image mounting its layers; and
/// a FROM may name an image of that registry, which is pulled.
#[tokio::test]
async fn a_dockerfile_image_is_pushed_mounting_its_run_image() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    let prefix = format!("{registry}/dockerfile{}", std::process::id());
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &prefix])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        platform.make_run_image("base");
        let mut ada = User::registered(&platform, "ada");
        let app = ada.home().join("site");
        std::fs::create_dir_all(&app).unwrap();
        ada.cwd = app.clone();
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(app.join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(app.join("greeting.txt"), "pushed\n").unwrap();
        std::fs::write(app.join("page.html"), "<p>registry</p>\n").unwrap();
        commit(&ada, "site");
        ada.slip(&["create", "site"]).success();
        let pushed = ada.push_deployed();
        assert!(
            pushed.contains(&format!("pushed {prefix}/run-image:base: ")),
            "{pushed}"
        );
        assert!(
            pushed.contains(&format!("pushed {prefix}/site:")) && pushed.contains("1 mounted"),
            "{pushed}"
        );
        serves(&platform, "site", "<p>registry</p>");

        // An image of the platform's registry as a FROM: pulled, and its layers mounted.
        let tools = ada.home().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        ada.cwd = tools.clone();
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(
            tools.join("Dockerfile"),
            format!("FROM {prefix}/run-image:base\nCOPY page.html /site/index.html\nCMD httpd -f -p $PORT -h /site\n"),
        )
        .unwrap();
        std::fs::write(tools.join("page.html"), "<p>pulled</p>\n").unwrap();
        commit(&ada, "tools");
        ada.slip(&["create", "tools"]).success();
        let pushed = ada.push_deployed();
        assert!(pushed.contains(&format!("pulling {prefix}/run-image:base")), "{pushed}");
        assert!(pushed.contains(&format!("pushed {prefix}/tools:")) && pushed.contains("1 mounted"), "{pushed}");
        serves(&platform, "tools", "<p>pulled</p>");
    })
    .await
    .unwrap();
}

/// Runs `program args`, which must succeed.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes to `reference` an image of the host's Go toolchain at `/usr/local/go`, made with
/// umoci: what an operator would push to offer Go to Dockerfile builds.
fn push_go_image(reference: &str) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let image = format!("{}:go", layout.display());
    run(
        "umoci",
        &["init", "--layout", &layout.display().to_string()],
    );
    run("umoci", &["new", "--image", &image]);
    run(
        "umoci",
        &["unpack", "--image", &image, &bundle.display().to_string()],
    );
    let go = bundle.join("rootfs/usr/local/go");
    std::fs::create_dir_all(&go).unwrap();
    for part in ["bin", "pkg", "src", "go.env", "VERSION", "lib"] {
        let from = Path::new("/usr/local/go").join(part);
        if from.exists() {
            run(
                "cp",
                &["-a", &from.display().to_string(), &go.display().to_string()],
            );
        }
    }
    let tmp = bundle.join("rootfs/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    run(
        "umoci",
        &["repack", "--image", &image, &bundle.display().to_string()],
    );
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.env",
            "PATH=/usr/local/go/bin:/usr/bin:/bin",
        ],
    );
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{reference}"),
        ],
    );
}

const GO_DOCKERFILE: &str = "\
FROM golang:local AS build
ENV CGO_ENABLED=0 GOCACHE=/tmp/gocache GOTOOLCHAIN=local GOFLAGS=-trimpath
WORKDIR /src
COPY go.mod ./
RUN [\"go\", \"version\"]
COPY . .
RUN [\"go\", \"build\", \"-o\", \"/out/server\", \".\"]

FROM run-image:base
COPY --from=build /out/server /app/server
CMD [\"/app/server\"]
";

const GO_SERVER: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from a Go build stage")
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
"#;

/// The issue's acceptance: a multi-stage Dockerfile with a Go build stage and a runtime stage
/// on the run image builds, runs and serves.
#[tokio::test]
async fn a_go_build_stage_from_the_registry_builds_a_server_that_serves() {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    let prefix = format!("{registry}/go{}", std::process::id());
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &prefix])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        platform.make_run_image("base");
        push_go_image(&format!("{prefix}/golang:local"));
        let mut ada = User::registered(&platform, "ada");
        let app = ada.home().join("hello");
        std::fs::create_dir_all(&app).unwrap();
        ada.cwd = app.clone();
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(app.join("Dockerfile"), GO_DOCKERFILE).unwrap();
        std::fs::write(app.join("go.mod"), "module example.com/hello\n\ngo 1.22\n").unwrap();
        std::fs::write(app.join("main.go"), GO_SERVER).unwrap();
        commit(&ada, "hello");
        ada.slip(&["create", "hello"]).success();
        // The Go buildpack would detect the app (go.mod): the container stack says Dockerfile.
        ada.slip(&["stack:set", "container", "-a", "hello"])
            .success();
        let pushed = ada.push_deployed();
        assert!(
            pushed.contains(&format!("pulling {prefix}/golang:local")),
            "{pushed}"
        );
        assert!(pushed.contains("go version go1."), "{pushed}");
        serves(&platform, "hello", "hello from a Go build stage");
    })
    .await
    .unwrap();
}
