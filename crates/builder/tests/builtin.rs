//! The built-in buildpacks building small real apps with the build host's toolchains (python3,
//! node and npm, go, cargo) and the package registries, and the next build of the same app
//! reusing what the first one left in its cache.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use slipway_builder::BuildError;

mod support;
use support::Fixture;

/// The log has exactly this line.
fn logged(log: &[String], line: &str) -> bool {
    log.iter().any(|l| l == line)
}

/// Some line of the log contains `text`.
fn mentions(log: &[String], text: &str) -> bool {
    log.iter().any(|l| l.contains(text))
}

/// Runs `program` in `dir` and returns its stdout; it must succeed.
fn run(program: impl AsRef<Path>, args: &[&str], dir: &Path) -> String {
    let program = program.as_ref();
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn python_installs_requirements_into_a_virtualenv_layer_it_keeps_while_they_are_unchanged() {
    let f = Fixture::new().await;
    let app = |code: &str| {
        f.source(&[
            ("requirements.txt", "six==1.17.0\n"),
            ("app.py", code),
            ("Procfile", "web: python app.py\n"),
        ])
    };
    let (output, log) = f.built(&app("import six\nprint(six.__version__)\n")).await;
    assert_eq!(output.buildpack, "Python");
    assert_eq!(output.procfile.to_string(), "web: python app.py\n");
    assert!(logged(&log, "-----> Python app detected"), "{log:#?}");
    assert!(
        logged(&log, "-----> Installing dependencies with pip"),
        "{log:#?}"
    );
    // The image runs the app with its virtualenv: first on PATH, and at .venv as ever.
    let image = output.image.unwrap();
    let root = f.unpack(&image);
    assert_eq!(
        f.run_in_image(&image, &root, "python app.py && .venv/bin/python app.py"),
        "1.17.0\n1.17.0\n"
    );
    assert_eq!(
        f.run_in_image(
            &image,
            &root,
            "echo $VIRTUAL_ENV; pip --version | cut -d' ' -f4"
        ),
        "/layers/slipway_python/venv\n/layers/slipway_python/venv/lib/python3.11/site-packages/pip\n"
    );
    let first = f.layer_digests(&image);
    assert_eq!(first.len(), 2, "the virtualenv, then the app");

    // The same requirements, other code: the virtualenv is kept, pip does not run, and only
    // the app's layer is new.
    let (output, log) = f
        .built(&app("import six\nprint('v2', six.__version__)\n"))
        .await;
    assert!(
        logged(
            &log,
            "-----> Dependencies unchanged (requirements.txt); keeping the virtualenv"
        ),
        "{log:#?}"
    );
    assert!(!mentions(&log, "pip"), "{log:#?}");
    assert!(
        logged(
            &log,
            "       slipway/python:venv: untouched since the last build"
        ),
        "{log:#?}"
    );
    let image = output.image.unwrap();
    let second = f.layer_digests(&image);
    assert_eq!(first[0], second[0], "the dependencies' layer is the same");
    assert_ne!(first[1], second[1]);
    let root = f.unpack(&image);
    assert_eq!(
        f.run_in_image(&image, &root, "python app.py"),
        "v2 1.17.0\n"
    );

    // Changed requirements: pip again. Without a Procfile the pusher is told that Python
    // apps need one.
    let changed = f.source(&[
        ("requirements.txt", "# pinned\nsix==1.17.0\n"),
        ("app.py", "import six\n"),
    ]);
    let (result, log) = f.build(&changed, &[]).await;
    assert!(matches!(result, Err(BuildError::NoProcesses)), "{result:?}");
    assert!(
        logged(&log, "-----> Installing dependencies with pip"),
        "{log:#?}"
    );
    assert!(
        mentions(
            &log,
            "-----> No Procfile: Python apps say how they start in a Procfile"
        ),
        "{log:#?}"
    );
}

#[tokio::test]
async fn python_says_in_one_line_when_the_version_asked_for_is_not_there() {
    let f = Fixture::new().await;
    let app = |version_file: (&'static str, &'static str)| {
        f.source(&[
            ("requirements.txt", "\n"),
            version_file,
            (
                "Procfile",
                "web: python -c 'import sys; print(sys.version)'\n",
            ),
        ])
    };
    let (_, log) = f.built(&app((".python-version", "3.11\n"))).await;
    assert!(logged(&log, "-----> Using Python 3.11.2"), "{log:#?}");
    let (_, log) = f.built(&app((".python-version", "3.13\n"))).await;
    let warnings: Vec<&String> = log.iter().filter(|l| l.starts_with(" !")).collect();
    assert_eq!(
        warnings,
        [
            " !     .python-version asks for Python 3.13, which this platform does not have: using Python 3.11.2 (available: 3.11.2)"
        ],
        "{log:#?}"
    );
    let (_, log) = f.built(&app(("runtime.txt", "python-3.12.1\n"))).await;
    assert!(
        mentions(
            &log,
            "runtime.txt asks for Python 3.12.1, which this platform does not have: using Python 3.11.2"
        ),
        "{log:#?}"
    );
    let (_, log) = f
        .built(&app((
            "pyproject.toml",
            "[project]\nname = \"x\"\nrequires-python = \">=3.10,<3.12\"\n",
        )))
        .await;
    assert!(logged(&log, "-----> Using Python 3.11.2"), "{log:#?}");
    let (result, log) = f.build(&app((".python-version", "three\n")), &[]).await;
    assert!(result.is_err());
    assert!(
        logged(
            &log,
            "-----> .python-version says 'three', which is not a Python version: write one such as 3.11"
        ),
        "{log:#?}"
    );
}

/// A uv project depending on six, and the lockfile `uv lock` wrote for it.
const UV_PYPROJECT: &str = "[project]\nname = \"demo\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"six==1.17.0\"]\n";
const UV_LOCK: &str = r#"version = 1
revision = 5
requires-python = ">=3.11"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "six" },
]

[package.metadata]
requires-dist = [{ name = "six", specifier = "==1.17.0" }]

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/94/e7/b2c673351809dca68a0e064b6af791aa332cf192da575fd474ed7d6f16a2/six-1.17.0.tar.gz", hash = "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81", size = 34031, upload-time = "2024-12-04T17:35:28.174Z" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl", hash = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274", size = 11050, upload-time = "2024-12-04T17:35:26.475Z" },
]
"#;

/// A Poetry project's lockfile, as Poetry 2 writes it, pinning six with its hashes.
const POETRY_LOCK: &str = r#"# This file is automatically @generated by Poetry 2.1.3 and should not be changed by hand.

[[package]]
name = "six"
version = "1.17.0"
description = "Python 2 and 3 compatibility utilities"
optional = false
python-versions = "!=3.0.*,!=3.1.*,!=3.2.*,>=2.7"
groups = ["main"]
files = [
    {file = "six-1.17.0-py2.py3-none-any.whl", hash = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"},
    {file = "six-1.17.0.tar.gz", hash = "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"},
]

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
content-hash = "0d1a5c9c1e3b5a4f0e3f2c8b7a6d5e4f3c2b1a09f8e7d6c5b4a3928170f6e5d4"
"#;

#[tokio::test]
async fn python_installs_uv_and_poetry_lockfiles() {
    let f = Fixture::new().await;
    let run = "web: python -c 'import six; print(six.__version__)'\n";
    for (lockfile, lock, pyproject, line) in [
        (
            "uv.lock",
            UV_LOCK,
            UV_PYPROJECT,
            "-----> Installing dependencies with uv sync --locked",
        ),
        (
            "poetry.lock",
            POETRY_LOCK,
            "[tool.poetry]\nname = \"demo\"\nversion = \"0.1.0\"\n\n[tool.poetry.dependencies]\npython = \">=3.11\"\nsix = \"1.17.0\"\n",
            "-----> Installing dependencies from poetry.lock",
        ),
    ] {
        let source = f.source(&[
            (lockfile, lock),
            ("pyproject.toml", pyproject),
            ("Procfile", run),
        ]);
        let (output, log) = f.built(&source).await;
        assert!(logged(&log, line), "{lockfile}: {log:#?}");
        let image = output.image.unwrap();
        let root = f.unpack(&image);
        assert_eq!(
            f.run_in_image(
                &image,
                &root,
                "python -c 'import six; print(six.__version__)'"
            ),
            "1.17.0\n",
            "{lockfile}"
        );
    }
}

/// A package-lock.json for `package_json`, made by npm as a developer would.
fn package_lock(dir: &Path, package_json: &str) -> String {
    let work = dir.join("lock");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("package.json"), package_json).unwrap();
    let status = Command::new("npm")
        .args(["install", "--package-lock-only", "--no-audit", "--no-fund"])
        .env("npm_config_cache", dir.join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .current_dir(&work)
        .stdout(Stdio::null())
        .status()
        .expect("npm is installed");
    assert!(status.success());
    std::fs::read_to_string(work.join("package-lock.json")).unwrap()
}

#[tokio::test]
async fn nodejs_installs_with_npm_ci_runs_the_build_script_and_keeps_dependencies_in_their_own_layer()
 {
    let f = Fixture::new().await;
    let package_json = r#"{
  "name": "demo",
  "version": "1.0.0",
  "private": true,
  "scripts": { "start": "node server.js", "build": "node build.js" },
  "dependencies": { "is-number": "^7.0.0" },
  "devDependencies": { "is-odd": "^3.0.1" }
}
"#;
    let lock = package_lock(f.dir.path(), package_json);
    let build_js = r#"const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/built.txt", String(require("is-number")(5)) + " " + String(require("is-odd")(5)));
"#;
    let app = |server: &str| {
        f.source(&[
            ("package.json", package_json),
            ("package-lock.json", lock.as_str()),
            ("build.js", build_js),
            ("server.js", server),
        ])
    };
    let (output, log) = f.built(&app("console.log('serving')\n")).await;
    assert_eq!(output.buildpack, "Node.js");
    assert_eq!(output.procfile.to_string(), "web: npm start\n");
    assert!(
        logged(&log, "-----> Installing dependencies with npm ci"),
        "{log:#?}"
    );
    assert!(
        logged(&log, "-----> Building with npm run build"),
        "{log:#?}"
    );
    assert!(logged(&log, "-----> Pruning devDependencies"), "{log:#?}");
    let image = output.image.unwrap();
    let root = f.unpack(&image);
    assert_eq!(
        f.run_in_image(&image, &root, "cat dist/built.txt; echo; node -e \"process.stdout.write(String(require('is-number')('12')))\"; echo; echo $NODE_ENV; ls node_modules"),
        "true true\ntrue\nproduction\nis-number\n",
        "the build script ran with every dependency; the image has only the production ones"
    );
    let first = f.layer_digests(&image);
    assert_eq!(first.len(), 2, "the production dependencies, then the app");

    // The same package.json and lockfile: npm installs nothing, and only the app's layer is
    // new.
    let (output, log) = f.built(&app("console.log('serving v2')\n")).await;
    assert!(
        logged(
            &log,
            "-----> Dependencies unchanged (package-lock.json); keeping the installed node_modules"
        ),
        "{log:#?}"
    );
    assert!(!mentions(&log, "Installing dependencies"), "{log:#?}");
    let second = f.layer_digests(output.image.as_deref().unwrap());
    assert_eq!(first[0], second[0], "the dependencies' layer is the same");
    assert_ne!(first[1], second[1]);
}

#[tokio::test]
async fn nodejs_without_a_build_script_reuses_the_last_dependency_layer_without_copying_it() {
    let f = Fixture::new().await;
    let package_json = r#"{ "name": "demo", "version": "1.0.0", "private": true,
  "scripts": { "start": "node server.js" }, "dependencies": { "is-number": "^7.0.0" } }
"#;
    let lock = package_lock(f.dir.path(), package_json);
    let app = |server: &str| {
        f.source(&[
            ("package.json", package_json),
            ("package-lock.json", lock.as_str()),
            ("server.js", server),
        ])
    };
    let (first, _) = f.built(&app("console.log(1)\n")).await;
    let (second, log) = f.built(&app("console.log(2)\n")).await;
    assert!(
        logged(
            &log,
            "-----> Production dependencies unchanged; reusing their layer"
        ),
        "{log:#?}"
    );
    assert!(
        logged(
            &log,
            "       slipway/nodejs:launch-modules: reused from the last build"
        ),
        "{log:#?}"
    );
    let image = second.image.unwrap();
    assert_eq!(
        f.layer_digests(first.image.as_deref().unwrap())[0],
        f.layer_digests(&image)[0]
    );
    let root = f.unpack(&image);
    assert_eq!(f.run_in_image(&image, &root, "node server.js"), "2\n");
}

#[tokio::test]
async fn nodejs_without_a_lockfile_makes_the_same_image_cold_and_warm() {
    // `npm install` without a lockfile used to write one into the app on the cold build only.
    let app = [
        (
            "package.json",
            r#"{ "name": "demo", "version": "1.0.0", "private": true, "scripts": { "start": "node server.js" } }
"#,
        ),
        ("server.js", "console.log('serving')\n"),
    ];
    let f = Fixture::new().await;
    let (cold, log) = f.built(&f.source(&app)).await;
    assert!(mentions(&log, "npm install"), "{log:#?}");
    let (warm, log) = f.built(&f.source(&app)).await;
    assert!(
        logged(
            &log,
            "-----> Dependencies unchanged (package.json); keeping the installed node_modules"
        ),
        "{log:#?}"
    );
    assert_eq!(cold.image, warm.image, "warm and cold give one image");
    let elsewhere = Fixture::new().await;
    let (other, _) = elsewhere.built(&elsewhere.source(&app)).await;
    assert_eq!(
        cold.image, other.image,
        "another data directory gives the same image"
    );
}

#[tokio::test]
async fn nodejs_fetches_the_version_engines_asks_for_from_the_npm_registry() {
    let f = Fixture::new().await;
    let app = |engines: &str| {
        f.source(&[
            (
                "package.json",
                &format!(
                    r#"{{ "name": "demo", "version": "1.0.0", "private": true, "engines": {{ "node": "{engines}" }},
  "scripts": {{ "start": "node server.js" }} }}"#
                ),
            ),
            ("server.js", "console.log(process.version)\n"),
        ])
    };
    let (output, log) = f.built(&app("22.x")).await;
    assert!(mentions(&log, "-----> Fetching Node.js 22."), "{log:#?}");
    assert!(mentions(&log, "-----> Using node v22."), "{log:#?}");
    let image = output.image.unwrap();
    let root = f.unpack(&image);
    let version = f.run_in_image(&image, &root, "node server.js");
    assert!(
        version.starts_with("v22."),
        "the image runs the node asked for: {version}"
    );
    let (_, log) = f.built(&app("22.x")).await;
    assert!(mentions(&log, "is in the cache"), "{log:#?}");

    let (_, log) = f.built(&app(">=99")).await;
    let warnings: Vec<&String> = log.iter().filter(|l| l.starts_with(" !")).collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(
        warnings[0].starts_with(
            " !     package.json's engines.node asks for >=99, which could not be had from the npm registry"
        ) && warnings[0].contains(": using node v"),
        "{log:#?}"
    );
}

#[tokio::test]
async fn nodejs_installs_with_pnpm_through_corepack() {
    let f = Fixture::new().await;
    let source = f.source(&[
        (
            "package.json",
            r#"{ "name": "demo", "version": "1.0.0", "private": true, "packageManager": "pnpm@9.15.0",
  "scripts": { "start": "node server.js" }, "dependencies": { "is-number": "7.0.0" } }
"#,
        ),
        ("pnpm-lock.yaml", PNPM_LOCK),
        ("server.js", "console.log(require('is-number')(3))\n"),
    ]);
    let (output, log) = f.built(&source).await;
    assert!(
        logged(
            &log,
            "-----> Installing dependencies with pnpm install --frozen-lockfile"
        ),
        "{log:#?}"
    );
    let image = output.image.unwrap();
    let root = f.unpack(&image);
    assert_eq!(f.run_in_image(&image, &root, "node server.js"), "true\n");
}

/// The lockfile pnpm 9.15.0 wrote for the package above.
const PNPM_LOCK: &str = r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      is-number:
        specifier: 7.0.0
        version: 7.0.0

packages:

  is-number@7.0.0:
    resolution: {integrity: sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==}
    engines: {node: '>=0.12.0'}

snapshots:

  is-number@7.0.0: {}
"#;

#[tokio::test]
async fn go_builds_the_module_into_bin_and_reuses_its_build_cache() {
    let f = Fixture::new().await;
    let app = [
        ("go.mod", "module example.com/hello\n\ngo 1.21\n"),
        (
            "main.go",
            "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from go\") }\n",
        ),
    ];
    let source = f.source(&app);
    let (output, log) = f.built(&source).await;
    assert_eq!(output.buildpack, "Go");
    assert_eq!(output.procfile.to_string(), "web: bin/hello\n");
    // `go build -v` names each package it compiles.
    assert!(logged(&log, "       example.com/hello"), "{log:#?}");
    assert!(logged(&log, "       Built bin/hello"), "{log:#?}");
    assert_eq!(
        run(source.join("bin/hello"), &[], &source),
        "hello from go\n"
    );

    // From a new checkout of the same source, every package comes from the build cache.
    let again = f.source(&app);
    let (output, log) = f.built(&again).await;
    assert_eq!(output.procfile.to_string(), "web: bin/hello\n");
    assert!(
        logged(&log, "       Reusing the build cache of the previous build"),
        "{log:#?}"
    );
    assert!(!logged(&log, "       example.com/hello"), "{log:#?}");
    assert!(!logged(&log, "       fmt"), "{log:#?}");
    assert_eq!(run(again.join("bin/hello"), &[], &again), "hello from go\n");
}

#[tokio::test]
async fn go_says_in_one_line_when_the_toolchain_go_mod_asks_for_cannot_be_had() {
    let f = Fixture::new().await;
    let source = f.source(&[
        ("go.mod", "module example.com/hello\n\ngo 1.99.0\n"),
        ("main.go", "package main\n\nfunc main() {}\n"),
    ]);
    let (result, log) = f.build(&source, &[]).await;
    assert!(result.is_err(), "no Go 1.99 to build with: {log:#?}");
    let warnings: Vec<&String> = log.iter().filter(|l| l.starts_with(" !")).collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(
        warnings[0].starts_with(
            " !     go.mod asks for go1.99.0, which could not be fetched through the Go module proxy ("
        ) && warnings[0].contains("): using go1."),
        "{log:#?}"
    );
}

/// Sets every file's modification time under `dir` to one fixed moment.
fn backdate(dir: &Path) {
    let moment = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            backdate(&path);
        } else {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(moment).unwrap();
        }
    }
}

#[tokio::test]
async fn rust_builds_the_package_into_bin_and_keeps_its_target_dir_in_the_cache() {
    let f = Fixture::new().await;
    let app = [
        (
            "Cargo.toml",
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        ),
        (
            "src/main.rs",
            "fn main() {\n    println!(\"hello from rust\");\n}\n",
        ),
    ];
    // Cargo recompiles a crate whose sources are newer than its last build; a push gives the
    // app's files new times, but not its dependencies'. With the app's times fixed, as a
    // dependency's are, the second build shows what the cache saves: compiling it again.
    let source = f.source(&app);
    backdate(&source);
    let (output, log) = f.built(&source).await;
    assert_eq!(output.buildpack, "Rust");
    assert_eq!(output.procfile.to_string(), "web: bin/hello\n");
    assert!(mentions(&log, "Compiling hello v0.1.0"), "{log:#?}");
    assert!(logged(&log, "       bin/hello"), "{log:#?}");
    assert_eq!(
        run(source.join("bin/hello"), &[], &source),
        "hello from rust\n"
    );
    assert!(
        f.cache()
            .join("cnb/slipway_rust/target/release/hello")
            .exists(),
        "the target directory is in the app's cache"
    );

    let again = f.source(&app);
    backdate(&again);
    let (output, log) = f.built(&again).await;
    assert_eq!(output.procfile.to_string(), "web: bin/hello\n");
    assert!(!mentions(&log, "Compiling"), "{log:#?}");
    assert!(
        logged(
            &log,
            "       bin/hello (unchanged, reused from the build cache)"
        ),
        "{log:#?}"
    );
    assert_eq!(
        run(again.join("bin/hello"), &[], &again),
        "hello from rust\n"
    );
}

#[tokio::test]
async fn rust_says_in_one_line_when_the_toolchain_asked_for_is_not_there() {
    let f = Fixture::new().await;
    let source = f.source(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.31.0\"\n"),
        ("src/main.rs", "fn main() {}\n"),
    ]);
    let (_, log) = f.built(&source).await;
    let warnings: Vec<&String> = log.iter().filter(|l| l.starts_with(" !")).collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(
        warnings[0].starts_with(
            " !     rust-toolchain.toml asks for Rust 1.31.0, which this platform does not have: using "
        ),
        "{log:#?}"
    );
}

/// Kills the process when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the build's `web` command as the runtime would (`sh -c`, in the app's directory, with
/// $PORT) on port 0, and fetches `/` from it.
fn serve_and_fetch(app: &Path, web: &str) -> String {
    let mut server = Running(
        Command::new("sh")
            .args(["-c", web])
            .current_dir(app)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", app)
            .env("PORT", "0")
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // "Serving HTTP on 0.0.0.0 port 43117 (http://0.0.0.0:43117/) ..."
    let mut banner = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let port: u16 = banner
        .split_once(" port ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {banner:?}"));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test]
async fn static_serves_index_html_from_the_root_or_public() {
    let f = Fixture::new().await;
    let source = f.source(&[("index.html", "<h1>from the root</h1>\n")]);
    let (output, log) = f.built(&source).await;
    assert_eq!(output.buildpack, "Static HTML");
    assert!(logged(&log, "-----> Static HTML app detected"), "{log:#?}");
    let web = output.procfile.command("web").unwrap();
    assert_eq!(
        web,
        "python3 -m http.server $PORT --bind 0.0.0.0 --directory ."
    );
    let response = serve_and_fetch(&source, web);
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("<h1>from the root</h1>"), "{response}");

    let source = f.source(&[
        ("public/index.html", "<h1>from public</h1>\n"),
        ("README", "not served"),
    ]);
    let (output, _) = f.built(&source).await;
    let web = output.procfile.command("web").unwrap();
    assert_eq!(
        web,
        "python3 -m http.server $PORT --bind 0.0.0.0 --directory public"
    );
    assert!(serve_and_fetch(&source, web).contains("<h1>from public</h1>"));
}

#[tokio::test]
async fn detection_tries_the_most_specific_buildpack_first() {
    let f = Fixture::new().await;
    let everything = [
        ("requirements.txt", ""),
        (
            "package.json",
            r#"{"scripts": {"start": "node server.js"}}"#,
        ),
        ("go.mod", "module example.com/x\n\ngo 1.21\n"),
        (
            "Cargo.toml",
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
        ),
        ("index.html", "<h1>hi</h1>"),
        ("Procfile", "web: ./serve\n"),
    ];
    let (output, _) = f.built(&f.source(&everything)).await;
    assert_eq!(output.buildpack, "Python");

    let (output, _) = f.built(&f.source(&everything[1..])).await;
    assert_eq!(output.buildpack, "Node.js");
    assert_eq!(
        output.procfile.to_string(),
        "web: ./serve\n",
        "the Procfile wins over the buildpack's default"
    );

    let (output, _) = f.built(&f.source(&everything[4..])).await;
    assert_eq!(output.buildpack, "Static HTML");
    assert_eq!(output.procfile.to_string(), "web: ./serve\n");

    let (output, _) = f.built(&f.source(&everything[5..])).await;
    assert_eq!(output.buildpack, "Procfile");
}
