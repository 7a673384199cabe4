//! What the builder's test suites share: a builder on a temporary data directory, source trees
//! and buildpacks written by the tests, and builds whose log lines are collected.

#![allow(dead_code, unreachable_pub)] // Each suite uses part of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use slipway_builder::{BuildError, BuildJob, BuildOutput, Builder, BuilderConfig, SandboxMode};

/// The commit every test build is of; images are tagged `demo:<commit>`.
pub const COMMIT: &str = "1a2b3c4d";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub builder: Builder,
}

impl Fixture {
    /// A builder with roomy limits: 5 minutes, 8 MiB of output.
    pub async fn new() -> Fixture {
        Fixture::with_limits(Duration::from_secs(300), 8 * 1024 * 1024).await
    }

    pub async fn with_limits(timeout: Duration, max_output: usize) -> Fixture {
        Fixture::with_config(timeout, max_output, true, slipway_builder::Limits::BUILD).await
    }

    /// A builder whose build steps get these memory, process and disk limits.
    pub async fn with_sandbox_limits(
        timeout: Duration,
        max_output: usize,
        limits: slipway_builder::Limits,
    ) -> Fixture {
        Fixture::with_config(timeout, max_output, true, limits).await
    }

    /// A builder started without `--buildpacks-dir`.
    pub async fn without_buildpacks_dir() -> Fixture {
        Fixture::with_config(
            Duration::from_secs(300),
            8 * 1024 * 1024,
            false,
            slipway_builder::Limits::BUILD,
        )
        .await
    }

    async fn with_config(
        timeout: Duration,
        max_output: usize,
        buildpacks_dir: bool,
        limits: slipway_builder::Limits,
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = BuilderConfig {
            data_dir: dir.path().join("data"),
            timeout,
            max_output,
            limits,
            sandbox: SandboxMode::Auto,
            registry: None,
            run_image: None,
            buildpacks_dir: buildpacks_dir.then(|| dir.path().join("buildpacks")),
        };
        std::fs::create_dir_all(dir.path().join("buildpacks")).unwrap();
        Fixture {
            builder: Builder::new(config).await.unwrap(),
            dir,
        }
    }

    /// A fresh source tree with these files (paths may have directories).
    pub fn source(&self, files: &[(&str, &str)]) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix("src")
            .tempdir_in(self.dir.path())
            .unwrap()
            .keep();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// The operator's buildpacks directory (`--buildpacks-dir`): `<fixture>/buildpacks`.
    pub fn buildpacks(&self) -> PathBuf {
        self.dir.path().join("buildpacks")
    }

    /// A Heroku buildpack under `<fixture>/buildpacks/NAME` whose scripts are these shell bodies.
    pub fn heroku_buildpack(&self, name: &str, scripts: &[(&str, &str)]) -> PathBuf {
        let dir = self.dir.path().join("buildpacks").join(name);
        write_scripts(&dir, scripts, "set -e");
        dir
    }

    /// A Cloud Native Buildpack at `root/NAME`: `buildpack.toml` and these scripts.
    pub fn cnb_buildpack(
        &self,
        root: &Path,
        name: &str,
        toml: &str,
        scripts: &[(&str, &str)],
    ) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("buildpack.toml"), toml).unwrap();
        write_scripts(&dir, scripts, "set -eu");
        dir
    }

    /// Builds `source` as the app `demo` (so a fixture's builds share one cache), with
    /// these config vars; returns the result and the log.
    pub async fn build(
        &self,
        source: &Path,
        config: &[(&str, &str)],
    ) -> (Result<BuildOutput, BuildError>, Vec<String>) {
        self.build_on(domain::Stack::Buildpacks, source, config)
            .await
    }

    /// Builds `source` as [`Fixture::build`] does, on `stack`.
    pub async fn build_on(
        &self,
        stack: domain::Stack,
        source: &Path,
        config: &[(&str, &str)],
    ) -> (Result<BuildOutput, BuildError>, Vec<String>) {
        let config: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let job = BuildJob {
            app: "demo",
            commit: COMMIT,
            source,
            config: &config,
            stack,
        };
        let lines = Mutex::new(Vec::new());
        let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
        let result = self.builder.build(&job, &log).await;
        (result, lines.into_inner().unwrap())
    }

    /// Builds `source` without config vars; the build must succeed.
    pub async fn built(&self, source: &Path) -> (BuildOutput, Vec<String>) {
        let (result, log) = self.build(source, &[]).await;
        let output = result.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
        (output, log)
    }

    /// The app's build cache.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("data/cache/demo")
    }

    /// An image's manifest and config, read from the local image layout.
    pub fn image(&self, digest: &str) -> (serde_json::Value, serde_json::Value) {
        let blob = |d: &str| {
            let path = self
                .dir
                .path()
                .join("data/images/blobs/sha256")
                .join(d.trim_start_matches("sha256:"));
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
        };
        let manifest = blob(digest);
        let config = blob(manifest["config"]["digest"].as_str().unwrap());
        (manifest, config)
    }

    /// The digests of an image's layers, in order.
    pub fn layer_digests(&self, digest: &str) -> Vec<String> {
        let (manifest, _) = self.image(digest);
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    }

    /// An image's layers unpacked, in order, into a new directory: its root filesystem.
    pub fn unpack(&self, digest: &str) -> PathBuf {
        let root = tempfile::Builder::new()
            .prefix("rootfs")
            .tempdir_in(self.dir.path())
            .unwrap()
            .keep();
        for layer in self.layer_digests(digest) {
            let blob = self
                .dir
                .path()
                .join("data/images/blobs/sha256")
                .join(layer.trim_start_matches("sha256:"));
            let status = std::process::Command::new("tar")
                .arg("-xzf")
                .arg(&blob)
                .arg("-C")
                .arg(&root)
                .status()
                .unwrap();
            assert!(status.success(), "layer {layer} unpacks");
        }
        root
    }

    /// Runs `command` with `/bin/sh -c` in the image unpacked at `root`, as the platform runs
    /// an app: its `/workspace` and `/layers` where the image has them, the host's system
    /// read-only, the image's environment. Returns stdout; it must succeed.
    pub fn run_in_image(&self, digest: &str, root: &Path, command: &str) -> String {
        let (_, config) = self.image(digest);
        let mut bwrap = std::process::Command::new("bwrap");
        bwrap.args([
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--ro-bind",
            "/etc",
            "/etc",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--clearenv",
        ]);
        for dir in ["workspace", "layers"] {
            if root.join(dir).exists() {
                bwrap
                    .arg("--bind")
                    .arg(root.join(dir))
                    .arg(format!("/{dir}"));
            }
        }
        for entry in config["config"]["Env"].as_array().unwrap() {
            let (key, value) = entry.as_str().unwrap().split_once('=').unwrap();
            bwrap.args(["--setenv", key, value]);
        }
        let out = bwrap
            .args(["--chdir", "/workspace", "/bin/sh", "-c", command])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command} in the image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write_scripts(dir: &Path, scripts: &[(&str, &str)], options: &str) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for (script, body) in scripts {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, format!("#!/bin/sh\n{options}\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
}
