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
async fn python_installs_requirements_into_a_virtualenv_it_reuses_while_they_are_unchanged() {
    let f = Fixture::new().await;
    let app = [
        ("requirements.txt", "six==1.17.0\n"),
        ("app.py", "import six\nprint(six.__version__)\n"),
        ("Procfile", "web: python app.py\n"),
    ];
    let source = f.source(&app);
    let (output, log) = f.built(&source).await;
    assert_eq!(output.buildpack, "Python");
    assert_eq!(output.procfile.to_string(), "web: python app.py\n");
    assert!(
        logged(&log, "-----> Installing dependencies with pip"),
        "{log:#?}"
    );
    assert_eq!(
        run(source.join(".venv/bin/python"), &["app.py"], &source),
        "1.17.0\n"
    );
    let profile = std::fs::read_to_string(source.join(".profile.d/python.sh")).unwrap();
    assert!(
        profile.contains(r#"export PATH="$HOME/.venv/bin:$PATH""#),
        "{profile}"
    );

    // The app runs at /workspace, not where it was built: the virtualenv's console scripts
    // run the python beside them, wherever the tree is.
    let moved = f.dir.path().join("elsewhere");
    let copied = Command::new("cp")
        .args([
            "-a".as_ref(),
            source.join(".venv").as_os_str(),
            moved.as_os_str(),
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    let pip = run(moved.join("bin/pip"), &["--version"], f.dir.path());
    assert!(
        pip.contains(&format!("from {}/lib/", moved.display())),
        "{pip}"
    );

    // The same requirements: the cached virtualenv, and pip does not run.
    let again = f.source(&app);
    let (_, log) = f.built(&again).await;
    assert!(
        logged(
            &log,
            "-----> Dependencies unchanged; reusing the cached virtualenv"
        ),
        "{log:#?}"
    );
    assert!(!mentions(&log, "pip"), "{log:#?}");
    assert_eq!(
        run(again.join(".venv/bin/python"), &["app.py"], &again),
        "1.17.0\n"
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
async fn nodejs_installs_with_npm_ci_runs_the_build_script_and_reuses_node_modules() {
    let f = Fixture::new().await;
    let package_json = r#"{
  "name": "demo",
  "version": "1.0.0",
  "private": true,
  "scripts": { "start": "node server.js", "build": "node build.js" },
  "dependencies": { "is-number": "^7.0.0" }
}
"#;
    let lock = package_lock(f.dir.path(), package_json);
    let build_js = r#"const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/built.txt", String(require("is-number")(5)));
"#;
    let app = [
        ("package.json", package_json),
        ("package-lock.json", lock.as_str()),
        ("build.js", build_js),
        ("server.js", "console.log('serving')\n"),
    ];
    let source = f.source(&app);
    let (output, log) = f.built(&source).await;
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
    assert!(source.join("node_modules/is-number/package.json").exists());
    assert_eq!(
        std::fs::read_to_string(source.join("dist/built.txt")).unwrap(),
        "true",
        "the build script ran with the dependencies installed"
    );

    // The same package.json and lockfile: the cached node_modules, and npm installs nothing.
    let again = f.source(&app);
    let (_, log) = f.built(&again).await;
    assert!(
        logged(
            &log,
            "-----> Dependencies unchanged; reusing the cached node_modules"
        ),
        "{log:#?}"
    );
    assert!(!mentions(&log, "Installing dependencies"), "{log:#?}");
    assert!(!mentions(&log, "added 1 package"), "{log:#?}");
    let is_number = run(
        "node",
        &[
            "-e",
            "process.stdout.write(String(require('is-number')('12')))",
        ],
        &again,
    );
    assert_eq!(is_number, "true");
    assert_eq!(
        std::fs::read_to_string(again.join("dist/built.txt")).unwrap(),
        "true"
    );
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
            "-----> Dependencies unchanged; reusing the cached node_modules"
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
        f.cache().join("rust/target/release/hello").exists(),
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
