//! The built-in Java buildpack (`buildpacks/java`, a Cloud Native Buildpack): a Spring Boot app with the Maven wrapper
//! (tests/apps/java; its dependencies come from Maven Central) builds into a runtime layer, a
//! dependencies layer and a small code layer, the same image cold, warm and on another data
//! directory; a code change leaves the other layers as they were; a Java version the platform
//! lacks is said in one line; a Gradle wrapper whose distribution cannot be fetched fails
//! in one line.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};

use support::Fixture;

const WEB: &str = "web: java -Dserver.port=$PORT $JAVA_OPTS -cp 'target/application/BOOT-INF/classes:/layers/slipway_java/deps/BOOT-INF/lib/*' io.slipway.demo.DemoApplication\n";

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

/// A fresh copy of the Spring Boot sample, with `extra` files over it.
fn spring_app(f: &Fixture, extra: &[(&str, &str)]) -> PathBuf {
    let source = f.source(extra);
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/java"),
        &source,
    );
    for (name, text) in extra {
        std::fs::write(source.join(name), text).unwrap();
    }
    source
}

fn logged(log: &[String], line: &str) -> bool {
    log.iter().any(|l| l == line)
}

/// The image's layers: (digest, size).
fn layers(f: &Fixture, image: &str) -> Vec<(String, u64)> {
    let (manifest, _) = f.image(image);
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_owned(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The paths in a layer blob.
fn paths(f: &Fixture, digest: &str) -> Vec<String> {
    let blob = f
        .dir
        .path()
        .join("data/images/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(blob).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_spring_boot_app_with_the_maven_wrapper_builds_into_layers_the_same_warm_or_cold() {
    let f = Fixture::new().await;
    let config: [(&str, &str); 0] = [];

    let (cold, log) = f.build(&spring_app(&f, &[]), &config).await;
    let cold = cold.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(cold.buildpack, "Java");
    assert_eq!(cold.procfile.to_string(), WEB);
    assert!(
        log.iter().any(|l| l.starts_with("-----> Using Java 17.")
            && l.ends_with("(pom.xml's java.version asks for 17)")),
        "{log:#?}"
    );
    assert!(
        logged(&log, "-----> Building with the Maven wrapper (./mvnw)"),
        "{log:#?}"
    );
    // The cold build fetches the app's dependencies from Maven Central.
    assert!(
        log.iter().any(|l| l.contains("Downloaded from")),
        "{log:#?}"
    );
    assert!(
        logged(
            &log,
            "-----> Spring Boot 3.5.16: extracting target/demo-0.0.1.jar into layers"
        ),
        "{log:#?}"
    );
    let image = cold.image.clone().unwrap();
    let cold_layers = layers(&f, &image);
    // The libraries, the runtime (launch layers, by name), the app.
    assert_eq!(cold_layers.len(), 3, "{cold_layers:?}");
    let (_, config_json) = f.image(&image);
    let env: Vec<&str> = config_json["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"JAVA_HOME=/layers/slipway_java/jre"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e.starts_with("PATH=/layers/slipway_java/jre/bin:")),
        "{env:?}"
    );
    let jre = paths(&f, &cold_layers[1].0);
    assert!(
        jre.iter().any(|p| p == "layers/slipway_java/jre/bin/java"),
        "{jre:?}"
    );
    // Debian's links into /etc are files in the runtime: it runs without the host's Java.
    assert!(
        jre.iter()
            .any(|p| p == "layers/slipway_java/jre/conf/security/java.security")
    );
    let deps = paths(&f, &cold_layers[0].0);
    assert!(
        deps.iter()
            .any(|p| p.starts_with("layers/slipway_java/deps/BOOT-INF/lib/spring-boot-3.5.16.jar")),
        "{deps:?}"
    );
    // The app's layer holds its classes, not its libraries: no fat jar, no Maven repository,
    // no dotfiles of the tools (Java's user.home) and no build bookkeeping.
    let (_, code_size) = cold_layers[2];
    assert!(
        code_size < 64 * 1024,
        "the app's layer is {code_size} bytes"
    );
    let code = paths(&f, &cold_layers[2].0);
    assert!(
        code.iter().any(|p| p
            == "workspace/target/application/BOOT-INF/classes/io/slipway/demo/DemoApplication.class"),
        "{code:?}"
    );
    for unwanted in [
        "workspace/target/demo-0.0.1.jar",
        "workspace/target/maven-status",
    ] {
        assert!(!code.iter().any(|p| p.starts_with(unwanted)), "{code:?}");
    }
    assert!(
        !code
            .iter()
            .any(|p| p.starts_with("workspace/?") || p.starts_with("workspace/.m2")),
        "{code:?}"
    );

    // Warm: nothing downloaded, the same image.
    let (warm, log) = f.build(&spring_app(&f, &[]), &config).await;
    let warm = warm.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert!(
        logged(
            &log,
            "       Reusing the Maven repository of the previous build"
        ),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("Downloading from")),
        "{log:#?}"
    );
    assert_eq!(warm.image, cold.image, "warm and cold give one image");

    // A code change: only the app's layer changes.
    let changed = spring_app(&f, &[]);
    let code_file = changed.join("src/main/java/io/slipway/demo/DemoApplication.java");
    let text = std::fs::read_to_string(&code_file)
        .unwrap()
        .replace("hello from", "hello again from");
    std::fs::write(&code_file, text).unwrap();
    let (after, log) = f.build(&changed, &config).await;
    let after = after.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    let after_layers = layers(&f, after.image.as_ref().unwrap());
    assert_eq!(after_layers[..2], cold_layers[..2], "libraries and runtime");
    assert_ne!(after_layers[2], cold_layers[2], "the app's layer");

    // Another data directory: the same image.
    let elsewhere = Fixture::new().await;
    let (other, log) = elsewhere.build(&spring_app(&elsewhere, &[]), &[]).await;
    let other = other.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(
        other.image, cold.image,
        "another data directory gives the same image"
    );
}

#[tokio::test]
async fn a_java_version_the_platform_lacks_is_said_in_one_line() {
    let f = Fixture::new().await;
    // Java 7: on no current host; the app still compiles for 17 (its pom's java.version).
    let app = spring_app(&f, &[("system.properties", "java.runtime.version=1.7\n")]);
    let (output, log) = f.build(&app, &[]).await;
    output.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    let said: Vec<&String> = log.iter().filter(|l| l.contains("Java 1.7")).collect();
    assert_eq!(said.len(), 1, "{log:#?}");
    assert!(
        said[0].starts_with(
            "-----> system.properties asks for Java 1.7, which this platform does not have; using Java "
        ) && said[0].contains("(available: "),
        "{said:?}"
    );
}

#[tokio::test]
async fn a_gradle_distribution_that_cannot_be_fetched_fails_in_one_line() {
    let f = Fixture::new().await;
    let config: [(&str, &str); 0] = [];
    // Nothing listens on port 9 of the build's own loopback.
    let dist = "http://127.0.0.1:9/gradle-8.10-bin.zip";
    let app = f.source(&[
        ("build.gradle", "plugins { id 'java' }\n"),
        ("gradlew", "#!/bin/sh\necho 'the wrapper ran'\nexit 1\n"),
        (
            "gradle/wrapper/gradle-wrapper.properties",
            "distributionUrl=http\\://127.0.0.1\\:9/gradle-8.10-bin.zip\n",
        ),
    ]);
    let (result, log) = f.build(&app, &config).await;
    assert!(result.is_err(), "{log:#?}");
    assert!(
        logged(
            &log,
            &format!(
                "-----> cannot download Gradle from {dist}: builds cannot reach it; an operator can let builds reach that host, or the app can point distributionUrl in gradle/wrapper/gradle-wrapper.properties at a mirror"
            )
        ),
        "{log:#?}"
    );
    assert!(!logged(&log, "the wrapper ran"), "{log:#?}");

    // Without the wrapper, the build says what to add.
    let app = f.source(&[("build.gradle", "plugins { id 'java' }\n")]);
    let (result, log) = f.build(&app, &config).await;
    assert!(result.is_err(), "{log:#?}");
    assert!(
        logged(
            &log,
            "-----> build.gradle without the Gradle wrapper: add it (gradle wrapper) and commit gradlew and gradle/wrapper/"
        ),
        "{log:#?}"
    );
}
