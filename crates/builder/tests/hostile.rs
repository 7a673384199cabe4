//! Hostile tenants against the builder: builds and sources that leave symbolic links where the
//! platform reads (launch.toml, layer declarations and env files, plans, the cache, the
//! Procfile, project.toml, app.json, launch layers), and `BUILDPACK_URL`s that name server directories.
//! The platform runs outside the sandbox, so a link it followed would read the server's files:
//! in every case a secret file's marker must appear nowhere — not in the log, the error, the
//! image's layers or config, nor the cache — and the secret must be unchanged.

use std::io::Read;
use std::path::{Path, PathBuf};

use slipway_builder::BuildError;

mod support;
use support::Fixture;

/// What the secret file holds: found anywhere, the platform read through a tenant's link.
const MARKER: &str = "MARKER-the-server-s-secret-4c1f";

/// A secret file and directory outside anything a build may touch.
fn secret(f: &Fixture) -> (PathBuf, PathBuf) {
    let dir = f.dir.path().join("secret");
    std::fs::create_dir_all(dir.join("test_hostile/deps")).unwrap();
    let file = dir.join("secret.txt");
    std::fs::write(&file, MARKER).unwrap();
    // Shaped like what the platform would look for, should it follow a link into here.
    for name in ["launch.toml", "LEAK", "plan.toml"] {
        std::fs::write(dir.join(name), MARKER).unwrap();
    }
    std::fs::write(
        dir.join("test_hostile/deps.toml"),
        "[types]\nlaunch = true\n",
    )
    .unwrap();
    std::fs::write(dir.join("test_hostile/deps/LEAK"), MARKER).unwrap();
    (file, dir)
}

/// A CNB buildpack whose build makes a normal launch layer and process, then runs `twist`;
/// its detect runs `detect` first. `$S` is the secret file, `$D` the secret directory.
fn hostile_buildpack(
    f: &Fixture,
    secret: &(PathBuf, PathBuf),
    detect: &str,
    twist: &str,
) -> PathBuf {
    let vars = format!("S='{}'; D='{}'", secret.0.display(), secret.1.display());
    f.cnb_buildpack(
        &f.buildpacks(),
        "hostile",
        "api = \"0.10\"\n[buildpack]\nid = \"test/hostile\"\nversion = \"1.0.0\"\n",
        &[
            ("detect", &format!("{vars}\n{detect}\ntrue")),
            (
                "build",
                &format!(
                    r#"{vars}; layers="$1"
mkdir -p "$layers/deps/bin" "$layers/deps/env" "$layers/deps/env.launch"
printf 'fine' > "$layers/deps/env.launch/FINE"
printf '[types]\nlaunch = true\nbuild = true\ncache = true\n' > "$layers/deps.toml"
printf '[[processes]]\ntype = "web"\ncommand = ["true"]\ndefault = true\n' > "$layers/launch.toml"
{twist}"#
                ),
            ),
        ],
    )
}

/// How a hostile build must end.
#[derive(Debug)]
enum Expect {
    /// Fails, and the error contains this.
    Refused(&'static str),
    /// Fails somehow (the platform saw nothing to read).
    Fails,
    /// Builds; these image paths are stored as symbolic links to these targets.
    Links(&'static [(&'static str, &'static str)]),
}

#[tokio::test]
async fn links_a_build_leaves_where_the_platform_reads_are_never_followed() {
    // (what, detect's twist, build's twist, expected)
    let cases: &[(&str, &str, &str, Expect)] = &[
        (
            "launch.toml",
            "",
            r#"rm "$layers/launch.toml"; ln -s "$S" "$layers/launch.toml""#,
            Expect::Refused("launch.toml is a symbolic link; the platform does not follow links"),
        ),
        (
            "a layer's declaration",
            "",
            r#"rm "$layers/deps.toml"; ln -s "$S" "$layers/deps.toml""#,
            Expect::Refused("deps.toml is a symbolic link"),
        ),
        (
            "a build env file",
            "",
            r#"ln -s "$S" "$layers/deps/env/LEAK""#,
            Expect::Refused("deps/env/LEAK is a symbolic link"),
        ),
        (
            "a launch env file",
            "",
            r#"ln -s "$S" "$layers/deps/env.launch/LEAK""#,
            Expect::Refused("deps/env.launch/LEAK is a symbolic link"),
        ),
        (
            "a delimiter file",
            "",
            r#"ln -s "$S" "$layers/deps/env.launch/FINE.delim""#,
            Expect::Refused("FINE.delim is a symbolic link"),
        ),
        (
            "a layer's env directory",
            "",
            r#"rm -r "$layers/deps/env.launch"; ln -s "$D" "$layers/deps/env.launch""#,
            Expect::Refused("deps/env.launch is a symbolic link"),
        ),
        (
            "a launch layer's directory",
            "",
            r#"rm -r "$layers/deps"; ln -s "$D/test_hostile/deps" "$layers/deps""#,
            Expect::Refused("deps is a symbolic link"),
        ),
        (
            "the buildpack's layers directory",
            "",
            r#"cd /; rm -rf "$layers"; ln -s "$D/test_hostile" "$layers""#,
            Expect::Fails,
        ),
        (
            "the build plan detect writes",
            r#"ln -s "$S" "$CNB_BUILD_PLAN_PATH""#,
            "",
            Expect::Refused("plan-0.toml is a symbolic link"),
        ),
        (
            // The platform writes this one: it must replace the link, not write through it.
            "the plan the platform writes for build",
            r#"ln -s "$S" "$(dirname "$CNB_BUILD_PLAN_PATH")/bp-plan-0.toml""#,
            "",
            Expect::Links(&[]),
        ),
        (
            "an oversized launch.toml",
            "",
            r#"head -c 2000000 /dev/zero | tr '\0' '#' > "$layers/launch.toml""#,
            Expect::Refused("launch.toml is larger than 1 MiB"),
        ),
        (
            "env files past the build's budget",
            "",
            r#"for i in 1 2 3 4 5; do head -c 1000000 /dev/zero | tr '\0' a > "$layers/deps/env/BIG$i"; done"#,
            Expect::Refused("the environment the layers set is larger than 4 MiB"),
        ),
        (
            "more launch layers than an image should have",
            "",
            r#"for i in $(seq 101); do mkdir "$layers/l$i"; printf '[types]\nlaunch = true\n' > "$layers/l$i.toml"; done"#,
            Expect::Refused("the buildpacks made more than 100 launch layers; merge some"),
        ),
        (
            "a launch layer nested deeper than the platform walks",
            "",
            r#"cd "$layers/deps"; for i in $(seq 300); do mkdir d; cd d; done"#,
            Expect::Refused("is nested more than 256 directories deep; flatten it"),
        ),
        (
            "links inside a launch layer",
            "",
            r#"ln -s "$S" "$layers/deps/leak"; ln -s "$D" "$layers/deps/leakdir""#,
            Expect::Links(&[
                ("layers/test_hostile/deps/leak", "secret.txt"),
                ("layers/test_hostile/deps/leakdir", "secret"),
            ]),
        ),
    ];
    for (what, detect, twist, expect) in cases {
        let f = Fixture::new().await;
        let secret = secret(&f);
        let bp = hostile_buildpack(&f, &secret, detect, twist);
        let app = f.source(&[("main.txt", "code")]);
        let (result, log) = f
            .build(&app, &[("BUILDPACK_URL", bp.to_str().unwrap())])
            .await;
        check(&f, what, &result, &log, expect);
    }
}

#[tokio::test]
async fn links_in_the_source_and_the_cache_are_never_followed() {
    // (what, prepare the source and the cache, built with BUILDPACK_URL, expected); without
    // it, project.toml's buildpacks build.
    type Prepare = fn(&Fixture, &Path, &Path);
    let cases: &[(&str, Prepare, bool, Expect)] = &[
        (
            "the Procfile",
            |_, app, secret| link(&secret.join("secret.txt"), &app.join("Procfile")),
            true,
            Expect::Refused("Procfile is a symbolic link; the platform does not follow links"),
        ),
        (
            "project.toml",
            |_, app, secret| link(&secret.join("secret.txt"), &app.join("project.toml")),
            true,
            Expect::Refused("project.toml is a symbolic link"),
        ),
        (
            "a buildpack project.toml names",
            |_, app, secret| {
                std::fs::write(
                    app.join("project.toml"),
                    "[[build.buildpacks]]\nuri = \"./bp\"\n",
                )
                .unwrap();
                link(secret, &app.join("bp"));
            },
            false,
            Expect::Refused("bp is a symbolic link"),
        ),
        (
            "a buildpack uri climbing out of the app",
            |_, app, _| {
                std::fs::write(
                    app.join("project.toml"),
                    "[[build.buildpacks]]\nuri = \"../secret\"\n",
                )
                .unwrap();
            },
            false,
            Expect::Refused("points outside the app"),
        ),
        (
            "a buildpack uri naming a server directory",
            |f, app, _| {
                std::fs::write(
                    app.join("project.toml"),
                    format!(
                        "[[build.buildpacks]]\nuri = \"file://{}\"\n",
                        f.dir.path().join("secret").display()
                    ),
                )
                .unwrap();
            },
            false,
            Expect::Refused("is not in the operator's buildpacks directory"),
        ),
        (
            // As an earlier build could leave it: the cache is writable by builds.
            "the CNB cache",
            |f, _, secret| {
                std::fs::create_dir_all(f.cache()).unwrap();
                link(secret, &f.cache().join("cnb"));
            },
            true,
            Expect::Refused("cache/cnb/test_hostile is a symbolic link"),
        ),
        (
            "app.json",
            |_, app, secret| link(&secret.join("secret.txt"), &app.join("app.json")),
            true,
            Expect::Refused("app.json is a symbolic link; the platform does not follow links"),
        ),
        (
            "an oversized app.json",
            |_, app, _| {
                std::fs::write(app.join("app.json"), " ".repeat(2 << 20)).unwrap();
            },
            true,
            Expect::Refused("app.json is larger than 1 MiB"),
        ),
        (
            "an oversized Procfile",
            |_, app, _| {
                std::fs::write(app.join("Procfile"), "#".repeat(2 << 20)).unwrap();
            },
            true,
            Expect::Refused("Procfile is larger than 1 MiB"),
        ),
        (
            "links in the app's files",
            |_, app, secret| {
                link(&secret.join("secret.txt"), &app.join("leak"));
                link(secret, &app.join("leakdir"));
            },
            true,
            Expect::Links(&[
                ("workspace/leak", "secret.txt"),
                ("workspace/leakdir", "secret"),
            ]),
        ),
    ];
    for (what, prepare, with_url, expect) in cases {
        let f = Fixture::new().await;
        let secret = secret(&f);
        let bp = hostile_buildpack(&f, &secret, "", "");
        let app = f.source(&[("main.txt", "code")]);
        prepare(&f, &app, &secret.1);
        let url = [("BUILDPACK_URL", bp.to_str().unwrap())];
        let config: &[(&str, &str)] = if *with_url { &url } else { &[] };
        let (result, log) = f.build(&app, config).await;
        check(&f, what, &result, &log, expect);
    }
}

#[tokio::test]
async fn a_buildpack_id_cannot_climb_out_of_the_layers_directory() {
    let f = Fixture::new().await;
    for id in ["../../escape", "a/../../b", "", "x\ny"] {
        let bp = f.cnb_buildpack(
            &f.buildpacks(),
            "climber",
            &format!("api = \"0.10\"\n[buildpack]\nid = {id:?}\nversion = \"1\"\n"),
            &[("detect", "true"), ("build", "true")],
        );
        let (result, _) = f
            .build(
                &f.source(&[("Procfile", "web: ./serve\n")]),
                &[("BUILDPACK_URL", bp.to_str().unwrap())],
            )
            .await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("invalid buildpack id"), "{id:?}: {err}");
    }
}

#[tokio::test]
async fn buildpack_url_is_a_git_url_or_a_buildpack_the_operator_installed() {
    let f = Fixture::new().await;
    // Another app's cache, holding what looks like a buildpack.
    let other = f.dir.path().join("data/cache/other");
    std::fs::create_dir_all(other.join("bin")).unwrap();
    std::fs::write(
        other.join("bin/compile"),
        format!("#!/bin/sh\necho {MARKER}\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        other.join("bin/compile"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    link(&other, &f.buildpacks().join("sneaky"));
    let other = other.display().to_string();
    let cases = [
        (
            other.clone(),
            format!(
                "BUILDPACK_URL {other} is not in the operator's buildpacks directory: name one of the buildpacks installed there"
            ),
        ),
        (
            format!("file://{other}#main"),
            format!("BUILDPACK_URL file://{other}#main is not in the operator's buildpacks directory: name one of the buildpacks installed there"),
        ),
        (
            "../data/cache/other".to_owned(),
            "BUILDPACK_URL ../data/cache/other is not in the operator's buildpacks directory: name one of the buildpacks installed there".to_owned(),
        ),
        (
            "sneaky".to_owned(),
            "BUILDPACK_URL sneaky is not in the operator's buildpacks directory: name one of the buildpacks installed there".to_owned(),
        ),
        (
            format!("ext::sh -c cat% {other}/bin/compile"),
            format!("BUILDPACK_URL ext::sh -c cat% {other}/bin/compile: ext URLs are not supported; use an https://, git:// or ssh:// URL"),
        ),
        (
            "ftp://example.com/bp".to_owned(),
            "BUILDPACK_URL ftp://example.com/bp: ftp URLs are not supported; use an https://, git:// or ssh:// URL".to_owned(),
        ),
    ];
    for (url, message) in cases {
        let (result, log) = f.build(&f.source(&[]), &[("BUILDPACK_URL", &url)]).await;
        let err = result.expect_err(&url).to_string();
        assert_eq!(err, message, "{url}");
        assert!(!log.join("\n").contains(MARKER), "{url}: {log:?}");
    }

    // A buildpack under the operator's directory works by name and by path.
    let greeter = f.heroku_buildpack("greeter", &[("compile", "echo greeted")]);
    let source = || f.source(&[("Procfile", "web: ./serve\n")]);
    for url in ["greeter", greeter.to_str().unwrap()] {
        let (result, log) = f.build(&source(), &[("BUILDPACK_URL", url)]).await;
        result.unwrap_or_else(|e| panic!("{url}: {e}: {log:?}"));
        assert!(log.iter().any(|l| l == "greeted"), "{url}: {log:?}");
    }

    // Without --buildpacks-dir, no directory at all.
    let strict = Fixture::without_buildpacks_dir().await;
    let greeter = strict.heroku_buildpack("greeter", &[("compile", "echo greeted")]);
    let (result, _) = strict
        .build(
            &strict.source(&[("Procfile", "web: ./serve\n")]),
            &[("BUILDPACK_URL", greeter.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        format!(
            "BUILDPACK_URL {} names a directory on the server, which this platform does not allow: use a git URL, or ask the operator to install the buildpack and start slipwayd with --buildpacks-dir",
            greeter.display()
        )
    );
}

fn link(target: &Path, at: &Path) {
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// Checks one hostile build: its end as expected, and the marker nowhere.
fn check(
    f: &Fixture,
    what: &str,
    result: &Result<slipway_builder::BuildOutput, BuildError>,
    log: &[String],
    expect: &Expect,
) {
    let log_text = log.join("\n");
    match (expect, result) {
        (Expect::Refused(message), Err(err)) => assert!(
            err.to_string().contains(message),
            "{what}: {err} should say {message:?}"
        ),
        (Expect::Fails, Err(_)) => {}
        (Expect::Links(links), Ok(output)) => {
            let entries = image_entries(f, output.image.as_deref().unwrap());
            for (path, target) in *links {
                let (kind, link) = entries
                    .iter()
                    .find(|(p, _, _)| p == path)
                    .map(|(_, k, l)| (*k, l.clone()))
                    .unwrap_or_else(|| panic!("{what}: {path} is in the image"));
                assert_eq!(kind, tar::EntryType::Symlink, "{what}: {path}");
                assert!(
                    link.as_deref().is_some_and(|l| l.ends_with(target)),
                    "{what}: {path} -> {link:?}"
                );
            }
        }
        (expect, result) => panic!("{what}: expected {expect:?}, got {result:?}\n{log_text}"),
    }
    if let Err(err) = result {
        assert!(!err.to_string().contains(MARKER), "{what}: {err}");
    }
    assert!(!log_text.contains(MARKER), "{what}: the log has the secret");
    let secret = f.dir.path().join("secret/secret.txt");
    assert_eq!(
        std::fs::read_to_string(secret).unwrap(),
        MARKER,
        "{what}: the secret was written through a link"
    );
    for blob in files(&f.dir.path().join("data/images/blobs")) {
        let bytes = std::fs::read(&blob).unwrap();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            bytes
        };
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{what}: the image blob {} has the secret",
            blob.display()
        );
    }
    for file in files(&f.dir.path().join("data/cache")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "{what}: the cache file {} has the secret",
            file.display()
        );
    }
}

/// Every entry of every layer of the image: (path, type, link target).
fn image_entries(f: &Fixture, digest: &str) -> Vec<(String, tar::EntryType, Option<String>)> {
    let (manifest, _) = f.image(digest);
    let mut entries = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = f.dir.path().join("data/images/blobs/sha256").join(
            layer["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        );
        let file = std::fs::File::open(blob).unwrap();
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            entries.push((path, entry.header().entry_type(), link));
        }
    }
    entries
}

/// Regular files under `dir`, links not entered.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files(&entry.path()));
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
