//! Cloud Native Buildpacks through the builder, with buildpacks written by the tests to the
//! Buildpack API versions at both ends of what Slipway supports, a composite with an optional
//! member, project.toml, and the layer cache.

use std::path::{Path, PathBuf};

use slipway_builder::BuildError;

mod support;
use support::Fixture;

/// API 0.10: reads its positional arguments (`detect PLATFORM PLAN`, `build LAYERS PLATFORM
/// PLAN`) and declares `[[stacks]]`.
const OLD_TOML: &str = r#"api = "0.10"
[buildpack]
id = "test/old"
version = "1.0.0"
name = "Old Style"
[[stacks]]
id = "*"
"#;

fn old_buildpack(f: &Fixture, root: &Path) -> PathBuf {
    f.cnb_buildpack(
        root,
        "old",
        OLD_TOML,
        &[
            ("detect", r#"[ -f hello.txt ] || exit 100
printf '[[provides]]\nname = "hello"\n[[requires]]\nname = "hello"\n[requires.metadata]\nloud = true\n' > "$2""#),
            (
                "build",
                r#"layers="$1"; plan="$3"
grep -q 'loud = true' "$plan"
echo "-----> old-style build, greeting from $(cat "$2/env/GREETING")"
mkdir -p "$layers/deps/bin" "$layers/deps/env.launch"
if [ -f "$layers/deps.toml" ] && [ -f "$layers/deps/bin/hello" ]; then echo "       reusing the cached deps layer"; else
  printf '#!/bin/sh\necho hello from the deps layer\n' > "$layers/deps/bin/hello"; chmod +x "$layers/deps/bin/hello"
  echo "       installed deps"; fi
printf 'loud' > "$layers/deps/env.launch/VOLUME.default"
printf '[types]\nlaunch = true\ncache = true\n' > "$layers/deps.toml"
printf '[[processes]]\ntype = "web"\ncommand = ["hello", "--port", "$PORT"]\ndefault = true\n' > "$layers/launch.toml""#,
            ),
        ],
    )
}

#[tokio::test]
async fn an_api_0_10_buildpack_with_positional_arguments() {
    let f = Fixture::new().await;
    let bp = old_buildpack(&f, &f.buildpacks());
    let app = f.source(&[("hello.txt", "hi")]);
    let (result, log) = f
        .build(
            &app,
            &[
                ("BUILDPACK_URL", bp.to_str().unwrap()),
                ("GREETING", "ahoy"),
            ],
        )
        .await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    assert_eq!(output.procfile.to_string(), "web: hello --port $PORT\n");
    assert!(
        log.iter()
            .any(|l| l == "-----> old-style build, greeting from ahoy"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "-----> Cloud Native Buildpacks: Old Style"),
        "{log:?}"
    );
    let (manifest, config) = f.image(output.image.as_deref().unwrap());
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "the launch layer, then the app"
    );
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"VOLUME=loud"), "{env:?}");
    assert!(
        env.iter()
            .any(|e| e.starts_with("PATH=/layers/test_old/deps/bin:")),
        "{env:?}"
    );

    // A second build of unchanged dependencies reuses the cached layer, and its image layer
    // has the same digest: nothing new to upload.
    let again = f.source(&[("hello.txt", "hi"), ("more.txt", "a change to the app")]);
    let (second, log) = f
        .build(
            &again,
            &[
                ("BUILDPACK_URL", bp.to_str().unwrap()),
                ("GREETING", "ahoy"),
            ],
        )
        .await;
    let second = second.unwrap();
    assert!(
        log.iter()
            .any(|l| l.contains("reusing the cached deps layer")),
        "{log:?}"
    );
    let (second_manifest, _) = f.image(second.image.as_deref().unwrap());
    assert_eq!(
        manifest["layers"][0]["digest"],
        second_manifest["layers"][0]["digest"]
    );
    assert_ne!(
        manifest["layers"][1]["digest"], second_manifest["layers"][1]["digest"],
        "the app changed"
    );
}

#[tokio::test]
async fn an_api_0_12_buildpack_with_cnb_variables_and_targets() {
    let f = Fixture::new().await;
    let bp = f.cnb_buildpack(
        &f.buildpacks(),
        "new",
        "api = \"0.12\"\n[buildpack]\nid = \"test/new\"\nversion = \"2.0.0\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n",
        &[
            ("detect", r#"[ "$CNB_TARGET_OS" = linux ] && test -d "$CNB_PLATFORM_DIR/env""#),
            (
                "build",
                r#"mkdir -p "$CNB_LAYERS_DIR/tools/bin"
printf '[types]\nbuild = true\n' > "$CNB_LAYERS_DIR/tools.toml"
printf '[[processes]]\ntype = "worker"\ncommand = ["sh", "-c", "echo working; sleep 1"]\n[[processes]]\ntype = "web"\ncommand = ["./serve"]\nargs = ["--quiet"]\n' > "$CNB_LAYERS_DIR/launch.toml""#,
            ),
        ],
    );
    let app = f.source(&[("serve", "#!/bin/sh\n")]);
    let (result, log) = f
        .build(&app, &[("BUILDPACK_URL", bp.to_str().unwrap())])
        .await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    assert_eq!(
        output.procfile.to_string(),
        "web: ./serve --quiet\nworker: sh -c 'echo working; sleep 1'\n"
    );
    let (manifest, _) = f.image(output.image.as_deref().unwrap());
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "a build-only layer stays out of the image"
    );
}

#[tokio::test]
async fn a_composite_with_an_optional_member_and_a_build_plan() {
    let f = Fixture::new().await;
    let root = f.buildpacks().join("bps");
    std::fs::create_dir_all(&root).unwrap();
    let toml =
        |id: &str| format!("api = \"0.11\"\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n");
    f.cnb_buildpack(&root, "provider", &toml("test/provider"), &[
        ("detect", r#"printf '[[provides]]\nname = "runtime"\n[[or]]\n[[or.provides]]\nname = "other"\n' > "$CNB_BUILD_PLAN_PATH""#),
        ("build", r#"grep -q 'name = "runtime"' "$CNB_BP_PLAN_PATH"; mkdir -p "$CNB_LAYERS_DIR/rt/bin"; printf '#!/bin/sh\necho runtime\n' > "$CNB_LAYERS_DIR/rt/bin/rt"; chmod +x "$CNB_LAYERS_DIR/rt/bin/rt"; printf '[types]\nbuild = true\nlaunch = true\n' > "$CNB_LAYERS_DIR/rt.toml""#),
    ]);
    f.cnb_buildpack(
        &root,
        "absent",
        &toml("test/absent"),
        &[("detect", "exit 100"), ("build", "exit 1")],
    );
    f.cnb_buildpack(&root, "user", &toml("test/user"), &[
        ("detect", r#"printf '[[requires]]\nname = "runtime"\n' > "$CNB_BUILD_PLAN_PATH""#),
        // The provider's build layer is on this buildpack's PATH.
        ("build", r#"echo "the user sees: $(rt)"; printf '[[processes]]\ntype = "web"\ncommand = ["rt"]\ndefault = true\n' > "$CNB_LAYERS_DIR/launch.toml""#),
    ]);
    let composite = root.join("composite");
    std::fs::create_dir_all(&composite).unwrap();
    std::fs::write(
        composite.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/composite\"\nversion = \"1.0.0\"\n\
         [[order]]\n[[order.group]]\nid = \"test/provider\"\nversion = \"1.0.0\"\n\
         [[order.group]]\nid = \"test/absent\"\noptional = true\n[[order.group]]\nid = \"test/user\"\n",
    )
    .unwrap();
    let app = f.source(&[("x", "y")]);
    let (result, log) = f
        .build(&app, &[("BUILDPACK_URL", composite.to_str().unwrap())])
        .await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    assert_eq!(
        output.buildpack, "test/provider + test/user",
        "the optional member that failed is dropped"
    );
    assert!(log.iter().any(|l| l == "the user sees: runtime"), "{log:?}");
    assert_eq!(output.procfile.to_string(), "web: rt\n");
}

#[tokio::test]
async fn project_toml_names_the_buildpacks_excludes_files_and_sets_build_env() {
    let f = Fixture::new().await;
    let app = f.source(&[
        ("project.toml", "[_]\nschema-version = \"0.1\"\n\n[build]\nexclude = [\"secrets/\", \"*.log\"]\n\n[[build.buildpacks]]\nuri = \"./buildpacks/mine\"\n\n[[build.env]]\nname = \"MODE\"\nvalue = \"fast\"\n"),
        ("secrets/key", "do not ship"),
        ("debug.log", "noise"),
        ("main.txt", "code"),
    ]);
    f.cnb_buildpack(&app.join("buildpacks"), "mine", "api = \"0.8\"\n[buildpack]\nid = \"app/mine\"\nversion = \"0.1.0\"\n", &[
        ("detect", "true"),
        ("build", r#"echo "mode $(cat "$2/env/MODE")"; test ! -e secrets/key; test ! -e debug.log; printf '[[processes]]\ntype = "web"\ncommand = ["cat", "main.txt"]\n' > "$1/launch.toml""#),
    ]);
    let (result, log) = f.build(&app, &[]).await;
    let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
    assert!(log.iter().any(|l| l == "mode fast"), "{log:?}");
    assert_eq!(output.procfile.to_string(), "web: cat main.txt\n");
}

#[tokio::test]
async fn unsupported_and_failing_buildpacks_are_refused_clearly() {
    let f = Fixture::new().await;
    let future = f.cnb_buildpack(
        &f.buildpacks(),
        "future",
        "api = \"0.99\"\n[buildpack]\nid = \"test/future\"\nversion = \"1\"\n",
        &[("detect", "true"), ("build", "true")],
    );
    let (result, _) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", future.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "buildpack test/future uses Buildpack API 0.99; Slipway supports 0.7 to 0.12"
    );

    let broken = f.cnb_buildpack(
        &f.buildpacks(),
        "broken",
        "api = \"0.12\"\n[buildpack]\nid = \"test/broken\"\nversion = \"1\"\n",
        &[
            ("detect", "true"),
            ("build", "echo 'no compiler' >&2; exit 2"),
        ],
    );
    let (result, log) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", broken.to_str().unwrap())],
        )
        .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "test/broken's bin/build failed (exit status 2); its output above says why"
    );
    assert!(log.contains(&"no compiler".to_owned()));

    let nothing = f.cnb_buildpack(
        &f.buildpacks(),
        "nothing",
        "api = \"0.12\"\n[buildpack]\nid = \"test/nothing\"\nversion = \"1\"\n",
        &[("detect", "exit 100"), ("build", "true")],
    );
    let (result, _) = f
        .build(
            &f.source(&[]),
            &[("BUILDPACK_URL", nothing.to_str().unwrap())],
        )
        .await;
    assert!(matches!(result, Err(BuildError::NoBuildpack)), "{result:?}");
}

/// A buildpack that says where it is: its arguments, its working directory and its home.
const WHERE_TOML: &str = r#"api = "0.10"
[buildpack]
id = "test/where"
version = "1.0.0"
[[stacks]]
id = "*"
"#;

#[tokio::test]
async fn every_build_sees_the_same_paths_whatever_the_data_directory() {
    assert!(
        Path::new("/usr/bin/bwrap").exists(),
        "bubblewrap is installed (scripts/test installs it)"
    );
    let script = r#"echo "WHERE pwd=$(pwd) layers=$1 platform=$2 CNB_LAYERS_DIR=$CNB_LAYERS_DIR CNB_PLATFORM_DIR=$CNB_PLATFORM_DIR home=$HOME"
touch "$HOME/.dotfile""#;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let f = Fixture::new().await;
        let bp = f.cnb_buildpack(
            &f.buildpacks(),
            "where",
            WHERE_TOML,
            &[("detect", "true"), ("build", script)],
        );
        let app = f.source(&[("Procfile", "web: true\n")]);
        let (result, log) = f
            .build(&app, &[("BUILDPACK_URL", bp.to_str().unwrap())])
            .await;
        result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
        let line = log
            .iter()
            .find(|l| l.starts_with("WHERE "))
            .unwrap_or_else(|| panic!("the buildpack ran: {log:?}"))
            .clone();
        assert!(
            !app.join(".dotfile").exists(),
            "a tool's home is not the app"
        );
        seen.push(line);
    }
    assert_eq!(
        seen[0],
        "WHERE pwd=/workspace layers=/layers/test_where platform=/platform \
         CNB_LAYERS_DIR=/layers/test_where CNB_PLATFORM_DIR=/platform home=/builder/home"
    );
    assert_eq!(seen[0], seen[1], "two data directories, the same paths");
}

/// Keeps a launch-only layer whose metadata names the version it installed: when the
/// version asked for (a config var) is the one recorded, it makes no directory and keeps the
/// metadata, asking for the last build's layer.
const REUSE_TOML: &str = r#"api = "0.10"
[buildpack]
id = "test/reuse"
version = "1.0.0"
[[stacks]]
id = "*"
"#;

const REUSE_BUILD: &str = r#"layers="$1"; want=$(cat "$2/env/DEPS_VERSION")
if grep -qx "version = \"$want\"" "$layers/deps.toml" 2>/dev/null; then
  echo "       deps $want are current"
else
  mkdir -p "$layers/deps/bin"
  printf '#!/bin/sh\necho deps %s\n' "$want" > "$layers/deps/bin/deps"; chmod +x "$layers/deps/bin/deps"
  printf '[types]\nlaunch = true\n[metadata]\nversion = "%s"\n' "$want" > "$layers/deps.toml"
  echo "       installed deps $want"
fi"#;

#[tokio::test]
async fn a_launch_layer_the_buildpack_finds_current_is_reused_without_being_made_again() {
    let f = Fixture::new().await;
    let bp = f.cnb_buildpack(
        &f.buildpacks(),
        "reuse",
        REUSE_TOML,
        &[("detect", "true"), ("build", REUSE_BUILD)],
    );
    let url = bp.to_str().unwrap();
    let build = |version: &'static str, code: &'static str| {
        let app = f.source(&[("Procfile", "web: deps\n"), ("app.txt", code)]);
        let f = &f;
        async move {
            let (result, log) = f
                .build(&app, &[("BUILDPACK_URL", url), ("DEPS_VERSION", version)])
                .await;
            let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
            let (manifest, config) = f.image(output.image.as_deref().unwrap());
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_owned())
                .collect();
            (layers, config, log)
        }
    };
    let (first, _, log) = build("1", "one").await;
    assert!(
        log.iter().any(|l| l == "       installed deps 1"),
        "{log:?}"
    );
    let (second, config, log) = build("1", "two").await;
    assert!(
        log.iter().any(|l| l == "       deps 1 are current"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "       test/reuse:deps: reused from the last build"),
        "{log:?}"
    );
    assert_eq!(first[0], second[0], "the deps layer is the last build's");
    assert_ne!(first[1], second[1], "the app changed");
    let env = config["config"]["Env"].to_string();
    assert!(
        env.contains("/layers/test_reuse/deps/bin"),
        "a reused layer's env is the image's: {env}"
    );
    let (third, _, log) = build("2", "two").await;
    assert!(
        log.iter().any(|l| l == "       installed deps 2"),
        "{log:?}"
    );
    assert_ne!(first[0], third[0], "other metadata, another layer");

    // A purged cache forgets the layers: the next build makes them again.
    f.builder.purge_cache("demo").unwrap();
    let (_, _, log) = build("2", "two").await;
    assert!(
        log.iter().any(|l| l == "       installed deps 2"),
        "{log:?}"
    );
}

/// Keeps a launch and cache layer; `EDIT` rewrites its file with the same or other bytes and
/// sets the file's modification time back, as a tool hiding a change would.
const KEPT_BUILD: &str = r#"layers="$1"; edit=$(cat "$2/env/EDIT")
mkdir -p "$layers/kept"
if [ ! -f "$layers/kept/data" ]; then echo one > "$layers/kept/data"; fi
case $edit in
same) echo one > "$layers/kept/data"; touch -d @0 "$layers/kept/data" ;;
other) echo two > "$layers/kept/data"; touch -d @0 "$layers/kept/data" ;;
esac
printf '[types]\nlaunch = true\ncache = true\n' > "$layers/kept.toml""#;

#[tokio::test]
async fn a_cached_launch_layer_is_read_again_only_when_something_in_it_changed() {
    let f = Fixture::new().await;
    let toml = REUSE_TOML.replace("test/reuse", "test/kept");
    let bp = f.cnb_buildpack(
        &f.buildpacks(),
        "kept",
        &toml,
        &[("detect", "true"), ("build", KEPT_BUILD)],
    );
    let app = f.source(&[("Procfile", "web: true\n")]);
    let build = |edit: &'static str| {
        let (f, app, url) = (&f, &app, bp.to_str().unwrap());
        async move {
            let (result, log) = f
                .build(app, &[("BUILDPACK_URL", url), ("EDIT", edit)])
                .await;
            let output = result.unwrap_or_else(|e| panic!("{e}: {log:?}"));
            (
                f.layer_digests(output.image.as_deref().unwrap())[0].clone(),
                log,
            )
        }
    };
    let (first, _) = build("none").await;
    let (second, log) = build("none").await;
    assert!(
        log.iter()
            .any(|l| l == "       test/kept:kept: untouched since the last build"),
        "{log:?}"
    );
    assert_eq!(first, second);
    // Written again with the same bytes: read again, and found to be the same layer.
    let (third, log) = build("same").await;
    assert!(
        log.iter().any(|l| l == "       test/kept:kept: unchanged"),
        "{log:?}"
    );
    assert_eq!(first, third);
    // Other bytes under the old modification time: the change shows, and a new layer is made.
    let (fourth, log) = build("other").await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("       test/kept:kept: ") && l.ends_with(" new")),
        "{log:?}"
    );
    assert_ne!(first, fourth);
}
