//! Dockerfile builds with the platform's own code: a multi-stage Dockerfile on a run image
//! made of Debian's busybox-static (`run_image::make`), its RUN steps in the build sandbox as
//! root inside it, its layers cached; what is not supported refused with its line; and the
//! rule that picks the Dockerfile (the container stack, or no buildpack detecting the app).

use std::io::Read;

use domain::Stack;
use slipway_builder::BuildError;

mod support;
use support::Fixture;

/// Makes the run image `base` of busybox-static in the fixture's image store.
async fn with_run_image(fixture: &Fixture) {
    slipway_builder::run_image::make(
        &fixture.dir.path().join("data"),
        "base",
        &["busybox-static".to_owned()],
        &|_: &str| {},
    )
    .await
    .expect("make the run image (apt-get download busybox-static)");
}

const DOCKERFILE: &str = "\
ARG BASE=run-image:base
# The build stage.
FROM ${BASE} AS build
WORKDIR /src
COPY deps.txt ./
RUN mkdir -p /out && cp deps.txt /out/deps && echo resolved deps
COPY . .
RUN cp app.txt /out/app.txt && chmod 4755 /out/app.txt && rm /src/deps.txt && echo built app
FROM run-image:base
COPY --from=build /out /site/
ENV GREETING=\"hello there\"
EXPOSE 8080
LABEL org.example.team=web
WORKDIR /site
CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]
";

/// The lines of the tar of layer `digest` in the fixture's store: `path mode`.
fn layer_entries(fixture: &Fixture, digest: &str) -> Vec<String> {
    let blob = fixture
        .dir
        .path()
        .join("data/images/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(blob).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!(
                "{} {:o}",
                e.path().unwrap().display(),
                e.header().mode().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_multi_stage_dockerfile_builds_and_a_code_change_reuses_every_earlier_layer() {
    let fixture = Fixture::new().await;
    with_run_image(&fixture).await;
    let files = [
        ("Dockerfile", DOCKERFILE),
        ("deps.txt", "dep-a\n"),
        ("app.txt", "v1\n"),
        (".dockerignore", "secret.txt\n"),
        ("secret.txt", "do not copy\n"),
    ];
    let source = fixture.source(&files);
    let (output, log) = fixture.built(&source).await;
    assert_eq!(output.buildpack, "Dockerfile");
    assert!(log.iter().any(|l| l == "resolved deps"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l == "-----> Step 1/13 : FROM ${BASE} AS build"),
        "{log:#?}"
    );
    assert_eq!(
        output.procfile.command("web"),
        Some("cd /site && exec httpd -f -p 8080 -h /site")
    );
    let (manifest, config) = fixture.image(output.image.as_deref().unwrap());
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["io.slipway.build"], "dockerfile");
    assert_eq!(labels["org.example.team"], "web");
    assert_eq!(config["config"]["WorkingDir"], "/site");
    assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello there")
    );
    // The run image's layer, then the one COPY --from made.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    let copied = layer_entries(&fixture, layers[1]["digest"].as_str().unwrap());
    assert_eq!(
        copied,
        ["site 755", "site/app.txt 4755", "site/deps 644"],
        "the setuid bit a RUN set is kept"
    );

    // The build stage's own layers: the RUN that removed deps.txt left a whiteout, and
    // .dockerignore kept secret.txt out of COPY . .
    let cache = std::fs::read_dir(fixture.cache().join("dockerfile"))
        .unwrap()
        .count();
    assert_eq!(cache, 2, "one cache entry per RUN");

    // Only the app's code changes: every step before COPY . . is cached.
    let changed = fixture.source(&[
        ("Dockerfile", DOCKERFILE),
        ("deps.txt", "dep-a\n"),
        ("app.txt", "v2\n"),
        (".dockerignore", "secret.txt\n"),
        ("secret.txt", "still not copied\n"),
    ]);
    let (second, log) = fixture.built(&changed).await;
    let cached: Vec<&String> = log.iter().filter(|l| l.ends_with(": cached")).collect();
    assert_eq!(
        cached,
        [
            "-----> Step 3/13 : COPY deps.txt ./: cached",
            "-----> Step 4/13 : RUN mkdir -p /out && cp deps.txt /out/deps && echo resolved deps: cached",
        ],
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l == "resolved deps"), "{log:#?}");
    assert!(log.iter().any(|l| l == "built app"), "{log:#?}");
    assert_ne!(second.image, output.image);

    // The same source again: every layer is the same, and so is the image.
    let (third, log) = fixture.built(&changed).await;
    let entries = |image: &Option<String>| {
        let (manifest, config) = fixture.image(image.as_deref().unwrap());
        let layers: Vec<Vec<String>> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .map(|l| layer_entries(&fixture, l["digest"].as_str().unwrap()))
            .collect();
        (layers, config)
    };
    assert_eq!(
        third.image,
        second.image,
        "{log:#?}\n{:#?}\n{:#?}",
        entries(&second.image),
        entries(&third.image)
    );
}

#[tokio::test]
async fn a_dockerfile_step_sees_a_whiteout_for_what_it_removed() {
    let fixture = Fixture::new().await;
    with_run_image(&fixture).await;
    let source = fixture.source(&[(
        "Dockerfile",
        "FROM run-image:base\nRUN mkdir -p /data/keep && echo x > /data/gone && cat /etc/resolv.conf > /data/resolver\nRUN rm /data/gone && touch /data/keep/new\nCMD [\"true\"]\n",
    )]);
    let (output, log) = fixture.built(&source).await;
    let (manifest, _) = fixture.image(output.image.as_deref().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{log:#?}");
    // The RUN saw the host's resolver, which is in no layer.
    assert_eq!(
        layer_entries(&fixture, layers[1]["digest"].as_str().unwrap()),
        [
            "data 755",
            "data/gone 644",
            "data/keep 755",
            "data/resolver 644"
        ]
    );
    assert_eq!(
        layer_entries(&fixture, layers[2]["digest"].as_str().unwrap()),
        [
            "data 755",
            "data/.wh.gone 644",
            "data/keep 755",
            "data/keep/new 644"
        ]
    );
}

#[tokio::test]
async fn unsupported_instructions_and_failing_steps_are_refused_with_their_line() {
    let fixture = Fixture::new().await;
    with_run_image(&fixture).await;
    let cases = [
        (
            "FROM run-image:base\nCMD [\"true\"]\n\nHEALTHCHECK CMD true\n",
            "Dockerfile line 4: HEALTHCHECK is not supported; ",
        ),
        (
            "FROM run-image:base\nRUN exit 3\n",
            "Dockerfile line 2: RUN exit 3 failed with exit code 3; ",
        ),
        (
            "FROM debian:bookworm\n",
            "Dockerfile line 1: FROM debian:bookworm is not supported; ",
        ),
        (
            "FROM run-image:base\nCOPY ../outside /x\n",
            "Dockerfile line 2: COPY ../outside is outside the app",
        ),
        (
            "FROM run-image:base\nCOPY missing.txt /x\n",
            "Dockerfile line 2: COPY missing.txt: no such file in the app",
        ),
        (
            "FROM run-image:base\nCOPY --from=nothere /a /b\n",
            "Dockerfile line 2: COPY --from=nothere names no earlier stage",
        ),
    ];
    for (dockerfile, expected) in cases {
        let source = fixture.source(&[("Dockerfile", dockerfile)]);
        let (result, log) = fixture.build(&source, &[]).await;
        let error = result.expect_err(dockerfile).to_string();
        assert!(error.starts_with(expected), "{error}\n{log:#?}");
        assert!(!error.contains('\n'), "{error}");
    }
}

#[tokio::test]
async fn the_dockerfile_is_the_build_on_the_container_stack_or_when_no_buildpack_detects() {
    let fixture = Fixture::new().await;
    with_run_image(&fixture).await;
    let dockerfile = "FROM run-image:base\nCOPY page.txt /site/\nCMD httpd -f -p $PORT -h /site\n";
    // No buildpack detects it: its Dockerfile. Its app.json says how to test it, as for any
    // stack, with app.json's env and never the build's config.
    let bare = fixture.source(&[
        ("Dockerfile", dockerfile),
        ("page.txt", "hi\n"),
        (
            "app.json",
            r#"{"scripts": {"test": "make test"}, "environments": {"test": {"env": {"A": "1"}}}}"#,
        ),
    ]);
    let (output, log) = fixture.built(&bare).await;
    assert_eq!(output.buildpack, "Dockerfile");
    let plan = output.test.expect("app.json names a test command");
    assert_eq!(plan.command, "make test");
    assert_eq!(plan.env.get("A").map(String::as_str), Some("1"));
    assert!(
        log.iter().any(|l| l == "-----> Test command: make test"),
        "{log:#?}"
    );
    // A stage on a run image starts in its working directory, /workspace, where processes run.
    assert_eq!(
        output.procfile.command("web"),
        Some("exec /bin/sh -c 'httpd -f -p $PORT -h /site'")
    );
    // A buildpack detects it (a Procfile): the buildpack, as on Heroku.
    let both = fixture.source(&[
        ("Dockerfile", dockerfile),
        ("page.txt", "hi\n"),
        ("Procfile", "web: httpd -f -p $PORT\n"),
    ]);
    let (output, _) = fixture.built(&both).await;
    assert_ne!(output.buildpack, "Dockerfile");
    assert_eq!(output.test, None, "nothing says how to test it");
    // On the container stack: the Dockerfile heroku.yml names, with the Procfile's types.
    let container = fixture.source(&[
        ("docker/web.Dockerfile", dockerfile),
        ("page.txt", "hi\n"),
        (
            "heroku.yml",
            "build:\n  docker:\n    web: docker/web.Dockerfile\n",
        ),
        ("Procfile", "worker: sleep 1000\n"),
    ]);
    let (result, log) = fixture.build_on(Stack::Container, &container, &[]).await;
    let output = result.unwrap_or_else(|e| panic!("{e}\n{log:#?}"));
    assert_eq!(output.buildpack, "Dockerfile");
    let types: Vec<String> = output
        .procfile
        .process_types()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(types, ["worker", "web"]);
    // On the container stack without a Dockerfile: said so.
    let none = fixture.source(&[("Procfile", "web: true\n")]);
    let (result, _) = fixture.build_on(Stack::Container, &none, &[]).await;
    assert!(
        matches!(result, Err(BuildError::Buildpack(e)) if e.starts_with("the app is on the container stack but has no Dockerfile"))
    );
}
