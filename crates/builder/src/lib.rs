//! The builder: turns an app's exported source into a build — the process types it runs
//! and, once images land, the image that runs them.
//!
//! A build runs buildpacks. The buildpack is the app's `BUILDPACK_URL` config var when set
//! (a directory on the server or a git URL), else the first built-in buildpack whose
//! `bin/detect` passes. Buildpacks speak the Heroku buildpack API (`bin/detect`,
//! `bin/compile BUILD CACHE ENV`, `bin/release`); the build's process types are the app's
//! Procfile, completed by the buildpack's `default_process_types`.
//!
//! Every build has a deadline and an output budget; a buildpack that runs past either is
//! killed with everything it started, and the build fails saying which.
//!
//! Architecture invariant: the builder knows nothing about git, SSH or the database. It gets
//! a directory, the app's config and a log, and returns a [`BuildOutput`] or a [`BuildError`]
//! whose message tells the pusher what to fix.

mod builtin;
mod cnb;
mod heroku;
pub mod image;
mod project;
pub mod registry;
mod script;

pub use script::bind_host_system;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::Procfile;

/// Where build output goes, line by line; the gateway streams it to the pusher.
pub type Log<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// How builds run.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// Holds `buildpacks/` (the built-in ones, written at start) and `cache/<app>/`.
    pub data_dir: PathBuf,
    /// The longest a build may take.
    pub timeout: Duration,
    /// The most output a build may write, in bytes.
    pub max_output: usize,
    pub sandbox: SandboxMode,
    /// Also push every image to this registry (`--registry`).
    pub registry: Option<registry::RegistryConfig>,
    /// The run image apps are built on (`--run-image`), by the name
    /// [`Builder::make_run_image`] gave it; without one, an image holds only the app.
    pub run_image: Option<String>,
}

/// Whether builds run in a bubblewrap sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// With bubblewrap when `bwrap` is installed, else without (and the start says so).
    Auto,
    /// Always; the builder refuses to start without bubblewrap.
    Required,
    /// Never: builds run as the server's user and can read what it can.
    Off,
}

/// Toolchains outside `/usr` that builds may use, read-only, where they exist.
const TOOLCHAINS: &[&str] = &[
    "/opt",
    "/root/.cargo",
    "/root/.rustup",
    "/usr/local/cargo",
    "/usr/local/rustup",
];

impl BuilderConfig {
    /// Heroku's and Deis's limit: 15 minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    pub const DEFAULT_MAX_OUTPUT: usize = 8 * 1024 * 1024;
}

/// What to build.
#[derive(Debug)]
pub struct BuildJob<'a> {
    pub app: &'a str,
    pub commit: &'a str,
    /// The exported source; the build happens in place.
    pub source: &'a Path,
    /// The app's config vars, which the buildpacks see (Heroku's ENV_DIR).
    pub config: &'a BTreeMap<String, String>,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    pub procfile: Procfile,
    /// The buildpack that built it, as shown to the pusher.
    pub buildpack: String,
    /// The image the build made, by its manifest's digest, in the local image store.
    pub image: Option<String>,
    pub timings: Timings,
}

/// Where a build's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub total: Duration,
    /// Inside buildpack scripts (detect, compile, release); the rest is the platform's.
    pub in_buildpacks: Duration,
}

/// Why a build failed. Messages are one line and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no buildpack fits this app: add a Procfile, or set BUILDPACK_URL to a buildpack")]
    NoBuildpack,
    #[error("the buildpack {0} does not fit this app (its bin/detect failed)")]
    NotDetected(String),
    #[error("{0}")]
    Buildpack(String),
    #[error(
        "no start command: add a Procfile that declares your processes, such as `web: ./server`"
    )]
    NoProcesses,
    #[error("{0}")]
    Procfile(#[from] domain::Error),
    #[error("the build took longer than {}s and was stopped; make it faster or ask the operator to raise the limit", .0.as_secs())]
    TimedOut(Duration),
    #[error("the build wrote more than {} of output and was stopped", size(*.0))]
    TooMuchOutput(usize),
    #[error("cannot prepare the build: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs builds. Share it: it holds paths, limits and the image store.
#[derive(Debug)]
pub struct Builder {
    config: BuilderConfig,
    images: std::sync::Arc<image::ImageStore>,
    bwrap: Option<std::path::PathBuf>,
    toolchains: Vec<std::path::PathBuf>,
    registry: Option<registry::Registry>,
}

impl Builder {
    /// Writes the built-in buildpacks under the data directory.
    pub async fn new(config: BuilderConfig) -> std::io::Result<Builder> {
        let root = config.data_dir.join("buildpacks");
        for (name, files) in builtin::BUILTIN {
            for (path, text) in *files {
                let path = root.join(name).join(path);
                tokio::fs::create_dir_all(path.parent().expect("files are in bin/")).await?;
                tokio::fs::write(&path, text).await?;
                set_executable(&path).await?;
            }
        }
        tokio::fs::create_dir_all(config.data_dir.join("cache")).await?;
        let images = std::sync::Arc::new(image::ImageStore::open(config.data_dir.join("images"))?);
        let bwrap = match config.sandbox {
            SandboxMode::Off => None,
            mode => {
                let found = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
                    .iter()
                    .map(std::path::PathBuf::from)
                    .find(|p| p.exists());
                if found.is_none() && mode == SandboxMode::Required {
                    return Err(std::io::Error::other(
                        "builds must be sandboxed but bubblewrap is not installed: apt-get install bubblewrap",
                    ));
                }
                found
            }
        };
        let data_dir = config.data_dir.canonicalize()?;
        let toolchains: Vec<std::path::PathBuf> = TOOLCHAINS
            .iter()
            .map(std::path::PathBuf::from)
            .filter(|p| p.exists() && !data_dir.starts_with(p))
            .collect();
        let registry = config.registry.clone().map(registry::Registry::new);
        Ok(Builder {
            config,
            images,
            bwrap,
            toolchains,
            registry,
        })
    }

    /// Builds `job`, writing progress to `log`.
    pub async fn build(&self, job: &BuildJob<'_>, log: Log<'_>) -> Result<BuildOutput, BuildError> {
        let budget = script::Budget {
            deadline: Instant::now() + self.config.timeout,
            limit: self.config.timeout,
            max_output: self.config.max_output,
            output: Default::default(),
            in_scripts: Default::default(),
            sandbox: script::Sandbox {
                bwrap: None,
                writable: Vec::new(),
                readable: Vec::new(),
            },
        };
        let started = Instant::now();
        let cache = self.config.data_dir.join("cache").join(job.app);
        tokio::fs::create_dir_all(&cache).await?;
        let scratch = tempfile::Builder::new()
            .prefix("buildpack-")
            .tempdir_in(job.source.parent().unwrap_or(job.source))?;
        let mut budget = budget;
        budget.sandbox = script::Sandbox {
            bwrap: self.bwrap.clone(),
            writable: vec![
                job.source.to_path_buf(),
                cache.clone(),
                scratch.path().to_path_buf(),
            ],
            readable: self.toolchains.clone(),
        };

        let project = project::Project::load(job.source)?;
        project.apply_exclude(job.source)?;
        // project.toml's build env joins the config vars the buildpacks see.
        let mut config = job.config.clone();
        config.extend(project.env.clone());
        let job = &BuildJob {
            config: &config,
            ..*job
        };

        // Which buildpacks: BUILDPACK_URL, else project.toml, else the built-in ones.
        let (cnb, heroku) = match job.config.get("BUILDPACK_URL") {
            Some(url) => {
                let dir = self.fetch(url, scratch.path(), &budget, log).await?;
                match cnb::Buildpack::load(&dir)? {
                    Some(bp) => (Some(vec![bp]), None),
                    None => (None, Some((dir, true))),
                }
            }
            None if !project.buildpacks.is_empty() => {
                let mut top = Vec::new();
                for dir in &project.buildpacks {
                    let bp = cnb::Buildpack::load(dir)?.ok_or_else(|| {
                        BuildError::Buildpack(format!(
                            "project.toml names {}, which has no buildpack.toml",
                            dir.display()
                        ))
                    })?;
                    top.push(bp);
                }
                (Some(top), None)
            }
            None => (
                None,
                Some((self.detect_builtin(job, &budget, log).await?, false)),
            ),
        };

        let mut launch_layers = Vec::new();
        let mut env = BTreeMap::new();
        let (name, defaults) = if let Some(top) = cnb {
            let mut search: Vec<std::path::PathBuf> = Vec::new();
            for bp in &top {
                search.push(bp.dir().to_path_buf());
                if let Some(parent) = bp.dir().parent() {
                    search.push(parent.to_path_buf());
                }
            }
            let catalog = cnb::Catalog::scan(&search)?;
            let lifecycle = cnb::Lifecycle {
                job,
                scratch: scratch.path(),
                cache: &cache.join("cnb"),
                budget: &budget,
                log,
            };
            let output = lifecycle.run(top, &catalog).await?;
            launch_layers = output.launch_layers;
            env = output.env;
            (output.name, output.processes)
        } else {
            let (buildpack, explicit) = heroku.expect("one of the two is chosen");
            let run = heroku::Run {
                buildpack: &buildpack,
                job,
                cache: &cache,
                scratch: scratch.path(),
                budget: &budget,
                log,
            };
            let name = match run.detect().await? {
                Some(name) => name,
                None if explicit => return Err(BuildError::NotDetected(display_name(&buildpack))),
                None => return Err(BuildError::NoBuildpack),
            };
            log(&format!("-----> {name} app detected"));
            run.compile().await?;
            (name, run.release().await?)
        };
        let procfile = process_types(job.source, &defaults).await?;
        let types: Vec<String> = procfile.process_types().map(ToString::to_string).collect();
        log(&format!("-----> Process types: {}", types.join(", ")));
        let image = self.export(job, &procfile, launch_layers, env, log).await?;
        let timings = Timings {
            total: started.elapsed(),
            in_buildpacks: Duration::from_micros(
                budget.in_scripts.load(std::sync::atomic::Ordering::Relaxed),
            ),
        };
        Ok(BuildOutput {
            procfile,
            buildpack: name,
            image: Some(image),
            timings,
        })
    }

    /// Makes the run image `name` from a root filesystem (such as Debian packages unpacked
    /// with `dpkg-deb -x`): one layer at `/`, stored as `run-image:<name>`. Returns its digest.
    pub fn make_run_image(&self, name: &str, rootfs: &Path) -> std::io::Result<String> {
        let layer = self.images.layer_from_dir(rootfs, "")?;
        let spec = image::ImageSpec {
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_owned()],
            labels: BTreeMap::from([("io.slipway.run-image".to_owned(), name.to_owned())]),
        };
        Ok(self
            .images
            .write_image(&run_image_ref(name), &[layer], &spec)?
            .digest
            .to_string())
    }

    /// The local image store, for the runtime and the registry push.
    pub fn images(&self) -> &std::sync::Arc<image::ImageStore> {
        &self.images
    }

    /// The bubblewrap the builder sandboxes with, if it does; the local runtime runs apps
    /// the same way.
    pub fn bwrap(&self) -> Option<&Path> {
        self.bwrap.as_deref()
    }

    /// Toolchains outside `/usr` that builds could use, so what was built against them
    /// can run.
    pub fn toolchains(&self) -> &[std::path::PathBuf] {
        &self.toolchains
    }

    /// Makes the build's image: each launch layer, then the built tree at `/workspace`, and a
    /// config naming the process types. Returns the image's digest.
    async fn export(
        &self,
        job: &BuildJob<'_>,
        procfile: &Procfile,
        launch_layers: Vec<(String, std::path::PathBuf)>,
        launch_env: BTreeMap<String, String>,
        log: Log<'_>,
    ) -> Result<String, BuildError> {
        log("-----> Exporting the image");
        let base = match &self.config.run_image {
            Some(name) => Some(self.images.find(&run_image_ref(name))?.ok_or_else(|| {
                BuildError::Buildpack(format!("the run image {name} is not in the image store: make it with `slipwayd run-image --name {name}`"))
            })?),
            None => None,
        };
        let source = job.source.to_path_buf();
        // Launch layers first, each its own image layer, so unchanged dependencies keep
        // their digest from build to build; the app on top.
        let images = std::sync::Arc::clone(&self.images);
        let layers = tokio::task::spawn_blocking(move || {
            let mut layers = Vec::new();
            for (at, dir) in &launch_layers {
                layers.push(images.layer_from_dir(dir, at)?);
            }
            layers.push(images.layer_from_dir(&source, image::APP_DIR)?);
            Ok::<_, std::io::Error>(layers)
        })
        .await
        .map_err(std::io::Error::other)??;
        let processes: BTreeMap<String, String> = procfile
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_owned()))
            .collect();
        let spec = image::ImageSpec {
            env: {
                let mut all: BTreeMap<String, String> = base
                    .as_ref()
                    .map(|b| {
                        b.env
                            .iter()
                            .filter_map(|e| e.split_once('='))
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                all.extend([
                    (
                        "PATH".to_owned(),
                        format!("{}/bin:/usr/local/bin:/usr/bin:/bin", image::APP_DIR),
                    ),
                    ("HOME".to_owned(), image::APP_DIR.to_owned()),
                ]);
                all.extend(launch_env);
                all.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
            },
            labels: BTreeMap::from([
                (
                    image::PROCESSES_LABEL.to_owned(),
                    serde_json::to_string(&processes).expect("strings serialise"),
                ),
                (
                    "org.opencontainers.image.revision".to_owned(),
                    job.commit.to_owned(),
                ),
            ]),
        };
        let images = std::sync::Arc::clone(&self.images);
        let name = format!("{}:{}", job.app, job.commit);
        let base_digest = base.as_ref().map(|b| b.digest.clone());
        let base_layers = base.map(|b| b.layers).unwrap_or_default();
        let stored = tokio::task::spawn_blocking(move || {
            images.write_image_on(&name, &base_layers, &layers, &spec)
        })
        .await
        .map_err(std::io::Error::other)??;
        log(&format!(
            "       {} ({} layer, {})",
            stored.digest,
            stored.layers.len(),
            size(usize::try_from(stored.size).unwrap_or(usize::MAX))
        ));
        let Some(registry) = &self.registry else {
            return Ok(stored.digest.to_string());
        };
        log("-----> Pushing the image");
        // The run image goes to its own repository once (later pushes find its blobs there);
        // apps' images then mount its layers from there instead of uploading them again.
        let mount_from = match (&self.config.run_image, &base_digest) {
            (Some(name), Some(digest)) => {
                let name = name.as_str();
                registry
                    .push(&self.images, RUN_IMAGE_REPOSITORY, name, digest, None, log)
                    .await?;
                Some(format!(
                    "{}:{name}",
                    registry.repository(RUN_IMAGE_REPOSITORY)
                ))
            }
            _ => None,
        };
        registry
            .push(
                &self.images,
                job.app,
                job.commit,
                &stored.digest,
                mount_from.as_deref(),
                log,
            )
            .await
    }

    /// The first built-in buildpack whose detect passes, or the last one to report failure.
    async fn detect_builtin(
        &self,
        job: &BuildJob<'_>,
        budget: &script::Budget,
        log: Log<'_>,
    ) -> Result<PathBuf, BuildError> {
        let root = self.config.data_dir.join("buildpacks");
        for (name, _) in builtin::BUILTIN {
            let buildpack = root.join(name);
            let cache = self.config.data_dir.join("cache").join(job.app);
            let scratch = job.source;
            let run = heroku::Run {
                buildpack: &buildpack,
                job,
                cache: &cache,
                scratch,
                budget,
                log,
            };
            if run.detect().await?.is_some() {
                return Ok(buildpack);
            }
        }
        Err(BuildError::NoBuildpack)
    }

    /// Resolves `BUILDPACK_URL`: a directory on the server as it is, a git URL cloned
    /// (`URL#REF` picks a branch or tag).
    async fn fetch(
        &self,
        url: &str,
        scratch: &Path,
        budget: &script::Budget,
        log: Log<'_>,
    ) -> Result<PathBuf, BuildError> {
        if url.starts_with('/') {
            let dir = PathBuf::from(url);
            if !dir.join("bin").join("compile").exists() && !dir.join("buildpack.toml").exists() {
                return Err(BuildError::Buildpack(format!(
                    "BUILDPACK_URL {url} is not a buildpack: it has neither bin/compile nor buildpack.toml"
                )));
            }
            return Ok(dir);
        }
        let (repo, reference) = url
            .split_once('#')
            .map_or((url, None), |(r, f)| (r, Some(f)));
        log(&format!("-----> Fetching buildpack {url}"));
        let dest = scratch.join("buildpack");
        let mut args: Vec<String> = vec![
            "clone".into(),
            "--quiet".into(),
            "--depth".into(),
            "1".into(),
        ];
        if let Some(reference) = reference {
            args.extend(["--branch".into(), reference.into()]);
        }
        args.extend([
            "--".into(),
            repo.into(),
            dest.to_string_lossy().into_owned(),
        ]);
        let args: Vec<&Path> = args.iter().map(Path::new).collect();
        let env = BTreeMap::from([("PATH".to_owned(), system_path())]);
        let git =
            script::run_unsandboxed(Path::new("git"), &args, scratch, &env, budget, log).await?;
        if git.code != Some(0) {
            return Err(BuildError::Buildpack(format!(
                "cannot fetch BUILDPACK_URL {url}: git clone failed"
            )));
        }
        Ok(dest)
    }

    /// Empties an app's build cache (`slip builds:purge-cache`). Blocking.
    pub fn purge_cache(&self, app: &str) -> std::io::Result<()> {
        let cache = self.config.data_dir.join("cache").join(app);
        match std::fs::remove_dir_all(&cache) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// The repository run images are pushed to, under the registry's prefix.
const RUN_IMAGE_REPOSITORY: &str = "run-image";

/// The name a run image has in the image store.
fn run_image_ref(name: &str) -> String {
    format!("run-image:{name}")
}

/// The app's Procfile, with the buildpack's default process types for any it lacks.
async fn process_types(
    source: &Path,
    defaults: &BTreeMap<String, String>,
) -> Result<Procfile, BuildError> {
    let text = match tokio::fs::read_to_string(source.join("Procfile")).await {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err.into()),
    };
    let declared = Procfile::parse(&text)?;
    let mut entries: Vec<(String, String)> = declared
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_owned()))
        .collect();
    for (process, command) in defaults {
        if declared.command(process).is_none() {
            entries.push((process.clone(), command.clone()));
        }
    }
    let procfile = Procfile::from_entries(entries.iter().map(|(t, c)| (t.as_str(), c.as_str())))?;
    if procfile.process_types().all(|t| t.is_release()) {
        return Err(BuildError::NoProcesses);
    }
    Ok(procfile)
}

/// `8 MiB`, `64 KiB`.
fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

fn display_name(buildpack: &Path) -> String {
    buildpack.file_name().map_or_else(
        || buildpack.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The PATH builds get: the system's, not the server's environment.
pub(crate) fn system_path() -> String {
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
}

async fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).await
}
