//! The builder: turns an app's exported source into a build — the process types it runs
//! and, once images land, the image that runs them.
//!
//! A build runs buildpacks. The buildpack is the app's `BUILDPACK_URL` config var when set
//! (a git URL, or a buildpack the operator installed under `--buildpacks-dir`), else the
//! first built-in buildpack whose `bin/detect` passes. Buildpacks speak the Heroku
//! buildpack API (`bin/detect`, `bin/compile BUILD CACHE ENV`, `bin/release`); the build's
//! process types are the app's Procfile, completed by the buildpack's
//! `default_process_types`.
//!
//! Every build has a deadline and an output budget; a buildpack that runs past either is
//! killed with everything it started, and the build fails saying which.
//!
//! Everything a tenant can write — the pushed source, a build's layers, plans and cache, a
//! fetched buildpack — is read and written only through [`tenant_fs`], never by its path:
//! the platform runs as root outside the sandbox and follows none of a tenant's links.
//!
//! Architecture invariant: the builder knows nothing about git, SSH or the database. It gets
//! a directory, the app's config and a log, and returns a [`BuildOutput`] or a [`BuildError`]
//! whose message tells the pusher what to fix.

mod builtin;
mod cnb;
mod dockerfile;
mod heroku;
pub mod image;
mod project;
mod rebase;
pub mod run_image;
mod script;
mod tenant_fs;

/// Where images are pushed: the `oci` crate's, named through the builder that pushes.
pub use oci::registry;
pub use rebase::Rebased;
pub use sandbox::{Limits, SandboxMode};

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
    /// Each build step's memory, processes, CPU share, file size and disk use
    /// ([`Limits::BUILD`] by default).
    pub limits: sandbox::Limits,
    /// Also push every image to this registry (`--registry`).
    pub registry: Option<registry::RegistryConfig>,
    /// The run image apps are built on (`--run-image`), by the name
    /// [`run_image::make`] gave it; without one, an image holds only the app.
    pub run_image: Option<String>,
    /// Where the operator keeps buildpacks that `BUILDPACK_URL` and project.toml may name by
    /// name or path (`--buildpacks-dir`); without one, only git URLs and the app's own.
    pub buildpacks_dir: Option<PathBuf>,
}

/// Toolchains outside `/usr` that builds may use, read-only, where they exist.
const TOOLCHAINS: &[&str] = &[
    "/opt",
    "/root/.cargo",
    "/root/.rustup",
    "/usr/local/cargo",
    "/usr/local/rustup",
];

/// The build's scratch directory holds its CNB layers (`/layers` in the sandbox), the
/// platform directory (`/platform`) and a home for tools that write there (`/builder/home`),
/// so nothing a tool keeps in `$HOME` lands in the image.
const SCRATCH_DIRS: &[&str] = &["layers", "platform", "home"];

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
    /// Buildpacks, or the app's Dockerfile (see [`dockerfile`]).
    pub stack: domain::Stack,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    pub procfile: Procfile,
    /// The buildpack that built it, as shown to the pusher.
    pub buildpack: String,
    /// The image the build made, by its manifest's digest, in the local image store.
    pub image: Option<String>,
    /// The bytes its push sent the registry (`None` without a registry): with the run image's
    /// layers and unchanged ones already there, what this build's changes cost.
    pub pushed_bytes: Option<u64>,
    pub timings: Timings,
    /// How to test the build (app.json's test script, or the Procfile's `test:`), if anything
    /// says.
    pub test: Option<domain::TestPlan>,
}

/// The `SOURCE_DATE_EPOCH` buildpacks see: 1980-01-01, the earliest time a zip file (a
/// Java jar, a Python wheel) can hold, so every tool accepts it.
pub const SOURCE_DATE_EPOCH: u64 = 315_532_800;

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
    #[error("the build was stopped: {0}; make it use less or ask the operator to raise the limit")]
    OverLimit(String),
    #[error(
        "{0} is a symbolic link; the platform does not follow links an app or a build leaves: put the real file or directory there"
    )]
    Link(String),
    #[error("{0} is outside the directory it must be in; name a path inside it")]
    Outside(String),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("{0} is not a file")]
    NotAFile(String),
    #[error("{name} is larger than {}; keep it smaller", size(usize::try_from(*.limit).unwrap_or(usize::MAX)))]
    TooLarge { name: String, limit: u64 },
    #[error("{0} is nested more than {1} directories deep; flatten it")]
    TooDeep(String, usize),
    #[error("{0} holds more than {1} entries; spread them over subdirectories")]
    TooManyEntries(String, usize),
    #[error("{0}")]
    Image(oci::Error),
    #[error("{0}")]
    RunImage(String),
    #[error("cannot prepare the build: {0}")]
    Io(#[from] std::io::Error),
}

/// An image error; an I/O error of the image store is the build's like any other.
impl From<oci::Error> for BuildError {
    fn from(error: oci::Error) -> BuildError {
        match error {
            oci::Error::Io(e) => BuildError::Io(e),
            other => BuildError::Image(other),
        }
    }
}

/// Runs builds. Share it: it holds paths, limits and the image store.
#[derive(Debug)]
pub struct Builder {
    config: BuilderConfig,
    images: std::sync::Arc<image::ImageStore>,
    isolation: std::sync::Arc<sandbox::Isolation>,
    toolchains: Vec<std::path::PathBuf>,
    registry: Option<registry::Registry>,
    /// `config.buildpacks_dir`, resolved at start.
    buildpacks_dir: Option<PathBuf>,
}

impl Builder {
    /// Writes the built-in buildpacks under the data directory.
    pub async fn new(config: BuilderConfig) -> std::io::Result<Builder> {
        let root = config.data_dir.join("buildpacks");
        for (name, files) in builtin::BUILTIN {
            // An older Slipway's files go: each version writes its buildpacks whole.
            match tokio::fs::remove_dir_all(root.join(name)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            for (path, text) in *files {
                let path = root.join(name).join(path);
                tokio::fs::create_dir_all(path.parent().expect("files are in a buildpack")).await?;
                tokio::fs::write(&path, text).await?;
                if path.parent().is_some_and(|p| p.ends_with("bin")) {
                    set_executable(&path).await?;
                }
            }
        }
        tokio::fs::create_dir_all(config.data_dir.join("cache")).await?;
        let images = std::sync::Arc::new(image::ImageStore::open(images_dir(&config.data_dir))?);
        let isolation =
            sandbox::Isolation::detect(config.sandbox, &config.data_dir.join("sandbox"))
                .map_err(std::io::Error::other)?;
        let isolation = std::sync::Arc::new(isolation);
        let data_dir = tokio::fs::canonicalize(&config.data_dir).await?;
        let toolchains: Vec<std::path::PathBuf> = TOOLCHAINS
            .iter()
            .map(std::path::PathBuf::from)
            .filter(|p| p.exists() && !data_dir.starts_with(p))
            .collect();
        let registry = config.registry.clone().map(registry::Registry::new);
        let buildpacks_dir = match &config.buildpacks_dir {
            Some(dir) => Some(tokio::fs::canonicalize(dir).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "--buildpacks-dir {}: {e}; give a directory that exists",
                        dir.display()
                    ),
                )
            })?),
            None => None,
        };
        Ok(Builder {
            config,
            images,
            isolation,
            toolchains,
            registry,
            buildpacks_dir,
        })
    }

    /// Builds `job`, writing progress to `log`, and reads how to test it from app.json.
    pub async fn build(&self, job: &BuildJob<'_>, log: Log<'_>) -> Result<BuildOutput, BuildError> {
        // app.json as pushed, before any build script runs; a broken one fails the push at once.
        let source_dir = job.source.to_path_buf();
        let app_json = run_image::blocking(move || {
            tenant_fs::Tree::open(&source_dir, "")?.read(Path::new("app.json"))
        })
        .await?;
        let app_json = app_json.as_deref().map(str::as_bytes);
        domain::TestPlan::resolve(app_json, &Procfile::default())?;
        let mut output = self.build_image(job, log).await?;
        output.test = domain::TestPlan::resolve(app_json, &output.procfile)?;
        if let Some(plan) = &output.test {
            log(&format!("-----> Test command: {}", plan.command));
        }
        Ok(output)
    }

    /// Builds `job`'s image and reads its process types.
    async fn build_image(
        &self,
        job: &BuildJob<'_>,
        log: Log<'_>,
    ) -> Result<BuildOutput, BuildError> {
        let budget = script::Budget {
            deadline: Instant::now() + self.config.timeout,
            limit: self.config.timeout,
            max_output: self.config.max_output,
            output: Default::default(),
            in_scripts: Default::default(),
            sandbox: script::Sandbox {
                isolation: std::sync::Arc::clone(&self.isolation),
                app: job.app.to_owned(),
                mounts: Vec::new(),
                readable: Vec::new(),
                limits: self.config.limits,
                root: None,
            },
        };
        let started = Instant::now();
        let cache = self.config.data_dir.join("cache").join(job.app);
        tokio::fs::create_dir_all(&cache).await?;
        let parent = job.source.parent().unwrap_or(job.source).to_path_buf();
        let (isolation, app, source_dir, cache_dir) = (
            std::sync::Arc::clone(&self.isolation),
            job.app.to_owned(),
            job.source.to_path_buf(),
            cache.clone(),
        );
        // File work, a tree walk among it: on a blocking thread.
        let (_scratch, fetched, mounts, source, scratch_tree, cache_tree, project) =
            run_image::blocking(move || {
                let scratch = tempfile::Builder::new()
                    .prefix("buildpack-")
                    .tempdir_in(&parent)?;
                // Buildpacks fetched or taken from the app live where builds cannot write, so
                // none can swap one for a link between two scripts (bubblewrap binds a
                // buildpack by its path).
                let fetched = tempfile::Builder::new()
                    .prefix("buildpacks-")
                    .tempdir_in(&parent)?;
                let (scratch, fetched) = (
                    RemovedOffThread::new(scratch),
                    RemovedOffThread::new(fetched),
                );
                for dir in SCRATCH_DIRS {
                    std::fs::create_dir(scratch.path().join(dir))?;
                }
                let mount = |host: PathBuf, at: &str| script::Mount {
                    host,
                    at: PathBuf::from(at),
                };
                let mounts = vec![
                    mount(source_dir.clone(), image::APP_DIR),
                    mount(cache_dir.clone(), "/cache"),
                    mount(scratch.path().to_path_buf(), "/builder"),
                    mount(scratch.path().join("layers"), "/layers"),
                    mount(scratch.path().join("platform"), "/platform"),
                ];
                // The build runs as the app's uid: what it may write becomes the app's.
                for dir in [&source_dir, &cache_dir, &scratch.path().to_path_buf()] {
                    isolation.hand_over(&app, dir)?;
                }
                let source = tenant_fs::Tree::open(&source_dir, "")?;
                let scratch_tree = tenant_fs::Tree::open(scratch.path(), "")?;
                let cache_tree = tenant_fs::Tree::open(&cache_dir, "cache")?;
                let project = project::Project::load(&source)?;
                project.apply_exclude(&source)?;
                Ok((
                    scratch,
                    fetched,
                    mounts,
                    source,
                    scratch_tree,
                    cache_tree,
                    project,
                ))
            })
            .await?;
        let mut budget = budget;
        budget.sandbox.mounts = mounts;
        budget.sandbox.readable = self.toolchains.clone();
        // project.toml's build env joins the config vars the buildpacks see.
        let mut config = job.config.clone();
        config.extend(project.env.clone());
        let job = &BuildJob {
            config: &config,
            ..*job
        };

        let work_in = job.source.parent().unwrap_or(job.source);
        if job.stack == domain::Stack::Container {
            let path = dockerfile::for_container_stack(&source)?;
            return dockerfile::build(self, job, &path, work_in, &budget, log).await;
        }
        // Which buildpacks: BUILDPACK_URL, else project.toml, else the built-in ones.
        let chosen = match job.config.get("BUILDPACK_URL") {
            Some(url) => {
                let dir = self.fetch(url, fetched.path(), &budget, log).await?;
                match cnb::Buildpack::load(&dir)? {
                    Some(bp) => Buildpacks::Cnb(vec![bp]),
                    None => Buildpacks::Heroku(dir),
                }
            }
            None if !project.buildpacks.is_empty() => {
                let mut top = Vec::new();
                for (index, uri) in project.buildpacks.iter().enumerate() {
                    let (dir, named) = match uri {
                        project::Uri::App(relative) => (
                            stage(&source, relative, fetched.path(), index)?,
                            relative.display().to_string(),
                        ),
                        project::Uri::Server(path) => (
                            self.installed(path, &format!("project.toml buildpack uri {path:?}"))?,
                            path.clone(),
                        ),
                    };
                    let bp = cnb::Buildpack::load(&dir)?.ok_or_else(|| {
                        BuildError::Buildpack(format!(
                            "project.toml names {named}, which has no buildpack.toml"
                        ))
                    })?;
                    top.push(bp);
                }
                Buildpacks::Cnb(top)
            }
            None => Buildpacks::Builtin(self.builtin()?),
        };

        let mut launch_layers = Vec::new();
        let mut env = BTreeMap::new();
        let mut keep = Vec::new();
        let records = self.launch_records(job.app).await;
        let (name, defaults) = if let Buildpacks::Heroku(buildpack) = chosen {
            let run = heroku::Run {
                buildpack: &buildpack,
                job,
                cache: &cache,
                scratch: &scratch_tree,
                budget: &budget,
                log,
            };
            let Some(name) = run.detect().await? else {
                return Err(BuildError::NotDetected(display_name(&buildpack)));
            };
            log(&format!("-----> {name} app detected"));
            run.compile().await?;
            (name, run.release().await?)
        } else {
            let lifecycle = cnb::Lifecycle {
                job,
                scratch: &scratch_tree,
                cache: &cache_tree,
                records: &records,
                budget: &budget,
                log,
                restored: Default::default(),
            };
            let builtin = matches!(chosen, Buildpacks::Builtin(_));
            let output = match chosen {
                Buildpacks::Builtin(candidates) => lifecycle.run_first(candidates).await,
                Buildpacks::Cnb(top) => {
                    let mut search: Vec<std::path::PathBuf> = Vec::new();
                    for bp in &top {
                        search.push(bp.dir().to_path_buf());
                        if let Some(parent) = bp.dir().parent() {
                            search.push(parent.to_path_buf());
                        }
                    }
                    match cnb::Catalog::scan(&search) {
                        Ok(catalog) => lifecycle.run(top, &catalog).await,
                        Err(e) => Err(e),
                    }
                }
                Buildpacks::Heroku(_) => unreachable!("handled above"),
            };
            let output = match output {
                Ok(output) => output,
                Err(e) => {
                    lifecycle.put_back()?;
                    // No buildpack detects the app: its root Dockerfile, if it has one.
                    if let (BuildError::NoBuildpack, true) = (&e, builtin)
                        && let Some(path) = dockerfile::at_root(&source)?
                    {
                        return dockerfile::build(self, job, &path, work_in, &budget, log).await;
                    }
                    return Err(e);
                }
            };
            launch_layers = output.launch_layers;
            env = output.env;
            keep = output.keep;
            (output.name, output.processes)
        };
        let procfile = process_types(&source, &defaults)?;
        let types: Vec<String> = procfile.process_types().map(ToString::to_string).collect();
        log(&format!("-----> Process types: {}", types.join(", ")));
        let exported = self
            .export(job, &scratch_tree, &procfile, &launch_layers, env, log)
            .await;
        // The cache keeps what the buildpacks made, whether the image could be made or not.
        cnb::keep_caches(&scratch_tree, &cache_tree, &keep)?;
        let (image, pushed_bytes, launch_refs) = exported?;
        self.keep_launch_records(job.app, cnb::records_of(&launch_layers, &launch_refs))
            .await?;
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
            pushed_bytes,
            timings,
            test: None,
        })
    }

    /// The local image store, for the runtime and the registry push.
    pub fn images(&self) -> &std::sync::Arc<image::ImageStore> {
        &self.images
    }

    /// The sandbox builds run in; the local runtime runs apps in the same one, so an app's
    /// builds and processes share its uid.
    pub fn isolation(&self) -> &std::sync::Arc<sandbox::Isolation> {
        &self.isolation
    }

    /// Toolchains outside `/usr` that builds could use, so what was built against them
    /// can run.
    pub fn toolchains(&self) -> &[std::path::PathBuf] {
        &self.toolchains
    }

    /// Makes the build's image: each launch layer, then the built tree at `/workspace`, and a
    /// config naming the process types. Returns the image's reference and, when it was pushed
    /// to a registry, the bytes the push sent.
    async fn export(
        &self,
        job: &BuildJob<'_>,
        scratch: &tenant_fs::Tree,
        procfile: &Procfile,
        launch_layers: &[cnb::LaunchLayer],
        launch_env: BTreeMap<String, String>,
        log: Log<'_>,
    ) -> Result<Exported, BuildError> {
        log("-----> Exporting the image");
        let base = match &self.config.run_image {
            Some(name) => {
                let images = std::sync::Arc::clone(&self.images);
                let reference = run_image::reference(name);
                let found = tokio::task::spawn_blocking(move || images.find(&reference))
                    .await
                    .map_err(std::io::Error::other)??;
                Some(found.ok_or_else(|| {
                    BuildError::Buildpack(format!("the run image {name} is not in the image store: make it with `slipwayd run-image --name {name}`"))
                })?)
            }
            None => None,
        };
        // Launch layers first, each its own image layer, so unchanged dependencies keep
        // their digest from build to build; the app on top. A layer the store already has
        // (the same tar) is not made again, and a reused one is not even read.
        let images = std::sync::Arc::clone(&self.images);
        let scratch = tenant_fs::Tree::open(scratch.path(), "")?;
        let source = tenant_fs::Tree::open(job.source, "")?;
        let wanted: Vec<(String, String, Want)> = launch_layers
            .iter()
            .map(|l| {
                let want = match &l.content {
                    cnb::Content::Dir(dir, last) => Want::Dir(
                        dir.clone(),
                        last.as_ref()
                            .and_then(|r| Some((r.fingerprint.clone()?, r.layer_ref()?))),
                    ),
                    cnb::Content::Reused(made) => Want::Reused(made.clone()),
                };
                (l.id.clone(), l.at.clone(), want)
            })
            .collect();
        let (layers, fingerprints, notes) = tokio::task::spawn_blocking(move || {
            let mut layers = Vec::new();
            let mut fingerprints = Vec::new();
            let mut notes = Vec::new();
            let stored = |made: &oci::LayerRef| -> Result<bool, BuildError> {
                Ok(images.stored_layer(&made.diff_id)?.as_ref() == Some(made))
            };
            for (id, at, want) in &wanted {
                let (layer, fingerprint, how) = match want {
                    Want::Reused(made) if stored(made)? => (
                        oci::LayerSource::Stored(made.clone()),
                        None,
                        Some("reused from the last build"),
                    ),
                    Want::Reused(_) => return Err(BuildError::Buildpack(format!(
                        "the layer {id} that the last build made is gone from the image store: run `slip builds:purge-cache`, then push again"
                    ))),
                    Want::Dir(dir, last) => {
                        let dir = scratch
                            .dir(dir)?
                            .ok_or_else(|| BuildError::NotADirectory(dir.display().to_string()))?;
                        // Untouched since the last build made its layer (a cached layer
                        // the buildpack kept): that layer, without reading a file.
                        let fingerprint = dir.fingerprint()?;
                        match last {
                            Some((before, made)) if *before == fingerprint && stored(made)? => (
                                oci::LayerSource::Stored(made.clone()),
                                Some(fingerprint),
                                Some("untouched since the last build"),
                            ),
                            _ => (images.layer_or_reuse(&dir, at)?, Some(fingerprint), None),
                        }
                    }
                };
                notes.push(layer_note(id, &layer, how));
                layers.push(layer);
                fingerprints.push(fingerprint);
            }
            let app = images.layer_or_reuse(&source, image::APP_DIR)?;
            notes.push(layer_note("the app", &app, None));
            layers.push(app);
            Ok::<_, BuildError>((layers, fingerprints, notes))
        })
        .await
        .map_err(std::io::Error::other)??;
        for note in &notes {
            log(note);
        }
        let launch_refs: Vec<(oci::LayerRef, Option<String>)> = layers[..layers.len() - 1]
            .iter()
            .map(oci::LayerSource::layer_ref)
            .zip(fingerprints)
            .collect();
        let processes: BTreeMap<String, String> = procfile
            .iter()
            .map(|(t, c)| (t.to_string(), c.to_owned()))
            .collect();
        // What the build sets over the run image's environment; recorded with the base, so a
        // rebase onto a newer run image makes the same environment again.
        let mut app_env = BTreeMap::from([
            (
                "PATH".to_owned(),
                format!("{}/bin:/usr/local/bin:/usr/bin:/bin", image::APP_DIR),
            ),
            ("HOME".to_owned(), image::APP_DIR.to_owned()),
        ]);
        app_env.extend(launch_env);
        let app_env: Vec<String> = app_env
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut spec = image::ImageSpec {
            env: oci::image_env(base.as_ref().map_or(&[][..], |b| &b.env), &app_env),
            working_dir: Some(image::APP_DIR.to_owned()),
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
            ..image::ImageSpec::default()
        };
        if let (Some(name), Some(base)) = (&self.config.run_image, &base) {
            let record = oci::BaseRecord::new(name, base, app_env);
            spec.labels
                .insert(oci::BASE_LABEL.to_owned(), record.label());
        }
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
        let base = match (&self.config.run_image, base_digest) {
            (Some(name), Some(digest)) => Mounted::RunImage(name.clone(), digest),
            _ => Mounted::Nothing,
        };
        let (reference, sent) = self.push(job, &stored.digest, base, log).await?;
        Ok((reference, sent, launch_refs))
    }

    /// With a registry, pushes the image `digest` as `<app>:<commit>`, mounting the layers of
    /// `base` instead of uploading them; returns its reference and the bytes sent. Without
    /// one, the digest is the reference.
    pub(crate) async fn push(
        &self,
        job: &BuildJob<'_>,
        digest: &domain::Digest,
        base: Mounted,
        log: Log<'_>,
    ) -> Result<(String, Option<u64>), BuildError> {
        let Some(registry) = &self.registry else {
            return Ok((digest.to_string(), None));
        };
        log("-----> Pushing the image");
        let mut sent = oci::PushReport::default();
        let mount_from = match base {
            // The run image goes to its own repository once (later pushes find its blobs
            // there); apps' images then mount its layers from there instead of uploading them
            // again.
            Mounted::RunImage(name, run_image) => {
                let pushed = registry
                    .push(
                        &self.images,
                        RUN_IMAGE_REPOSITORY,
                        &name,
                        &run_image,
                        None,
                        log,
                    )
                    .await?;
                sent.add(pushed.report);
                Some(format!(
                    "{}:{name}",
                    registry.repository(RUN_IMAGE_REPOSITORY)
                ))
            }
            Mounted::Pulled(reference) => Some(reference),
            Mounted::Nothing => None,
        };
        let pushed = registry
            .push(
                &self.images,
                job.app,
                job.commit,
                digest,
                mount_from.as_deref(),
                log,
            )
            .await?;
        sent.add(pushed.report);
        log(&format!(
            "       {} pushed in all",
            oci::human_size(sent.sent_bytes)
        ));
        Ok((pushed.reference, Some(sent.sent_bytes)))
    }

    fn launch_records_path(&self, app: &str) -> PathBuf {
        launch_records_path(&self.config.data_dir, app)
    }

    /// The app's last launch layers; none when there are no records or they cannot be read
    /// (the buildpacks then make every layer again).
    async fn launch_records(&self, app: &str) -> cnb::LaunchRecords {
        let path = self.launch_records_path(app);
        let Ok(bytes) = tokio::fs::read(&path).await else {
            return cnb::LaunchRecords::new();
        };
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    async fn keep_launch_records(
        &self,
        app: &str,
        records: cnb::LaunchRecords,
    ) -> Result<(), BuildError> {
        let path = self.launch_records_path(app);
        let bytes = serde_json::to_vec(&records).map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().expect("records live in launch/");
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }

    /// The built-in buildpacks, in the order they are tried.
    fn builtin(&self) -> Result<Vec<cnb::Buildpack>, BuildError> {
        let root = self.config.data_dir.join("buildpacks");
        builtin::BUILTIN
            .iter()
            .map(|(name, _)| {
                cnb::Buildpack::load(&root.join(name))?.ok_or_else(|| {
                    BuildError::Buildpack(format!("the built-in buildpack {name} is missing"))
                })
            })
            .collect()
    }

    /// Resolves `BUILDPACK_URL`: a git URL cloned into `into` (`URL#REF` picks a branch or
    /// tag), or a buildpack under the operator's `--buildpacks-dir`, by name or path.
    async fn fetch(
        &self,
        url: &str,
        into: &Path,
        budget: &script::Budget,
        log: Log<'_>,
    ) -> Result<PathBuf, BuildError> {
        let what = format!("BUILDPACK_URL {url}");
        let (repo, reference) = url
            .split_once('#')
            .map_or((url, None), |(r, f)| (r, Some(f)));
        let repo = match buildpack_location(repo) {
            Location::Installed(path) => return self.installed(path, &what),
            Location::Git(repo) => repo.to_owned(),
            // A local repository is a directory on the server: the same rule.
            Location::File(path) => format!("file://{}", self.installed(path, &what)?.display()),
            Location::Unsupported(scheme) => {
                return Err(BuildError::Buildpack(format!(
                    "{what}: {scheme} URLs are not supported; use an https://, git:// or ssh:// URL"
                )));
            }
        };
        log(&format!("-----> Fetching buildpack {url}"));
        let dest = into.join("buildpack");
        // Only the transports a buildpack URL may use: no `ext::` commands, and local
        // repositories only as resolved above.
        let mut args: Vec<String> = vec!["-c".into(), "protocol.allow=never".into()];
        for transport in ["https", "http", "git", "ssh", "file"] {
            args.extend(["-c".into(), format!("protocol.{transport}.allow=always")]);
        }
        args.extend([
            "clone".into(),
            "--quiet".into(),
            "--depth".into(),
            "1".into(),
        ]);
        if let Some(reference) = reference {
            args.extend(["--branch".into(), reference.into()]);
        }
        args.extend(["--".into(), repo, dest.to_string_lossy().into_owned()]);
        let args: Vec<&Path> = args.iter().map(Path::new).collect();
        let env = BTreeMap::from([
            ("PATH".to_owned(), system_path()),
            ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
        ]);
        let git = script::run_unsandboxed(Path::new("git"), &args, into, &env, budget, log).await?;
        if git.code != Some(0) {
            return Err(BuildError::Buildpack(format!(
                "cannot fetch {what}: git clone failed"
            )));
        }
        Ok(dest)
    }

    /// A buildpack directory under the operator's `--buildpacks-dir`, by name (`ruby`,
    /// `vendor/ruby`) or absolute path; resolved beneath it, through no link. `what` names the
    /// setting in messages.
    fn installed(&self, path: &str, what: &str) -> Result<PathBuf, BuildError> {
        let Some(root) = &self.buildpacks_dir else {
            return Err(BuildError::Buildpack(format!(
                "{what} names a directory on the server, which this platform does not allow: use a git URL, or ask the operator to install the buildpack and start slipwayd with --buildpacks-dir"
            )));
        };
        let outside = || {
            BuildError::Buildpack(format!(
                "{what} is not in the operator's buildpacks directory: name one of the buildpacks installed there"
            ))
        };
        // An absolute path by the directory as resolved at start or as the operator gave it.
        let relative = if path.starts_with('/') {
            let given = self.config.buildpacks_dir.as_deref();
            Path::new(path)
                .strip_prefix(root)
                .ok()
                .or_else(|| given.and_then(|g| Path::new(path).strip_prefix(g).ok()))
                .ok_or_else(outside)?
        } else {
            Path::new(path)
        };
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(outside());
        }
        let installed = tenant_fs::Tree::open(root, "buildpacks")?;
        let dir = match installed.dir(relative) {
            Ok(Some(dir)) => dir,
            Ok(None) | Err(BuildError::NotADirectory(_)) => {
                return Err(BuildError::Buildpack(format!(
                    "{what} is not a buildpack: there is no such buildpack in the operator's buildpacks directory"
                )));
            }
            Err(BuildError::Link(_) | BuildError::Outside(_)) => return Err(outside()),
            Err(e) => return Err(e),
        };
        let has = |p: &str| dir.kind(Path::new(p)).ok().flatten() == Some(tenant_fs::Kind::File);
        if !has("bin/compile") && !has("buildpack.toml") {
            return Err(BuildError::Buildpack(format!(
                "{what} is not a buildpack: it has neither bin/compile nor buildpack.toml"
            )));
        }
        Ok(root.join(relative))
    }

    /// Empties an app's build cache (`slip builds:purge-cache`), its launch layers' records
    /// among it, so the next build makes every layer. Blocking.
    pub fn purge_cache(&self, app: &str) -> std::io::Result<()> {
        purge_cache(&self.config.data_dir, app)
    }
}

/// Empties the build cache of `app` under the data directory `data_dir`, its launch
/// layers' records among it (`slip builds:purge-cache`, from whichever process serves it).
/// Blocking.
pub fn purge_cache(data_dir: &Path, app: &str) -> std::io::Result<()> {
    match std::fs::remove_file(launch_records_path(data_dir, app)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir_all(data_dir.join("cache").join(app)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Where the platform keeps an app's last launch layers (see [`cnb::LaunchRecords`]): under
/// its data directory, out of every build's reach. An app's leftovers include it.
pub fn launch_records_path(data_dir: &Path, app: &str) -> PathBuf {
    data_dir.join(LAUNCH_RECORDS).join(format!("{app}.json"))
}

/// The directory of [`launch_records_path`], in the data directory.
pub const LAUNCH_RECORDS: &str = "launch";

/// The repository run images are pushed to, under the registry's prefix.
pub(crate) const RUN_IMAGE_REPOSITORY: &str = "run-image";

/// Where the image store is in the data directory.
fn images_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

/// The app's Procfile (a link there is an error), with the buildpack's default process types
/// for any it lacks.
fn process_types(
    source: &tenant_fs::Tree,
    defaults: &BTreeMap<String, String>,
) -> Result<Procfile, BuildError> {
    let text = source.read(Path::new("Procfile"))?.unwrap_or_default();
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
    if procfile.process_types().all(|t| t.is_one_off()) {
        return Err(BuildError::NoProcesses);
    }
    Ok(procfile)
}

/// What a `BUILDPACK_URL` (without its `#REF`) names.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    /// A remote repository: `https://`, `http://`, `git://`, `ssh://` or scp-like `host:path`.
    Git(&'a str),
    /// `file://PATH`: a repository on the server.
    File(&'a str),
    /// A name or path: an installed buildpack.
    Installed(&'a str),
    /// Another scheme, such as `ext::` or `ftp://`.
    Unsupported(&'a str),
}

fn buildpack_location(url: &str) -> Location<'_> {
    if let Some((scheme, rest)) = url.split_once("://") {
        return match scheme {
            "https" | "http" | "git" | "ssh" => Location::Git(url),
            "file" => Location::File(rest),
            other => Location::Unsupported(other),
        };
    }
    // git's own rule: a colon before any slash makes `host:path` an ssh URL; `ext::...` and
    // other `transport::address` forms are commands, never allowed.
    match url.split_once(':') {
        Some((host, _)) if !host.contains('/') && !host.is_empty() => {
            if url.contains("::") {
                Location::Unsupported(host)
            } else {
                Location::Git(url)
            }
        }
        _ => Location::Installed(url),
    }
}

/// Copies the app's buildpack at `relative` out of the source, where builds cannot change it,
/// with its sibling buildpacks (those a composite may name); returns the copy.
fn stage(
    source: &tenant_fs::Tree,
    relative: &Path,
    into: &Path,
    index: usize,
) -> Result<PathBuf, BuildError> {
    let named = || relative.display().to_string();
    match source.kind(relative)? {
        Some(tenant_fs::Kind::Dir) => {}
        Some(tenant_fs::Kind::Symlink) => return Err(BuildError::Link(named())),
        _ => {
            return Err(BuildError::Buildpack(format!(
                "project.toml buildpack uri {:?} is not a directory of the app: name the buildpack's directory",
                named()
            )));
        }
    }
    let at = PathBuf::from(format!("app-{index}"));
    let staged = tenant_fs::Tree::open(into, "")?.create_dir_all(&at)?;
    let mut copies = vec![relative.to_path_buf()];
    if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty())
        && let Some(siblings) = source.dir(parent)?
    {
        for (name, kind) in siblings.entries()? {
            let sibling = parent.join(&name);
            let is_buildpack = siblings
                .dir(Path::new(&name))
                .ok()
                .flatten()
                .and_then(|d| d.kind(Path::new("buildpack.toml")).ok().flatten())
                == Some(tenant_fs::Kind::File);
            if kind == tenant_fs::Kind::Dir && sibling != relative && is_buildpack {
                copies.push(sibling);
            }
        }
    }
    // Under `src/`, as laid out in the app, so a composite finds its siblings where it would.
    for copy in &copies {
        let to = Path::new("src").join(copy);
        staged.create_dir_all(to.parent().expect("under src/"))?;
        source.copy_to(copy, &staged, &to)?;
    }
    Ok(into.join(at).join("src").join(relative))
}

/// `8.0 MiB`, `64 KiB`.
/// The buildpacks a build runs.
enum Buildpacks {
    /// The built-in ones: the first that detects the app.
    Builtin(Vec<cnb::Buildpack>),
    /// Cloud Native Buildpacks the app names, as one group.
    Cnb(Vec<cnb::Buildpack>),
    /// A Heroku buildpack the app names.
    Heroku(PathBuf),
}

/// What an export did with a layer, for the build log.
fn layer_note(id: &str, layer: &oci::LayerSource, how: Option<&str>) -> String {
    match (layer, how) {
        (oci::LayerSource::Stored(_), Some(how)) => format!("       {id}: {how}"),
        (oci::LayerSource::Stored(_), None) => format!("       {id}: unchanged"),
        (oci::LayerSource::New(made), _) => {
            format!("       {id}: {} new", oci::human_size(made.size))
        }
    }
}

/// An exported image: its reference, the bytes its push sent (with a registry), and its
/// launch layers as stored, with their directories' fingerprints.
type Exported = (String, Option<u64>, Vec<(oci::LayerRef, Option<String>)>);

/// Whose layers an image's push mounts from the registry instead of uploading them.
pub(crate) enum Mounted {
    /// The run image of this name and manifest digest, pushed to its repository first.
    RunImage(String, domain::Digest),
    /// The image of this reference, pulled from the registry (a Dockerfile's `FROM`).
    Pulled(String),
    Nothing,
}

/// What the export makes of a launch layer.
enum Want {
    /// A directory, and the last build's fingerprint and layer of that name.
    Dir(PathBuf, Option<(String, oci::LayerRef)>),
    /// The last build's layer, which the buildpack asked for.
    Reused(oci::LayerRef),
}

fn size(bytes: usize) -> String {
    oci::human_size(u64::try_from(bytes).unwrap_or(u64::MAX))
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

/// A temporary directory removed on a blocking thread when dropped, however the build ends:
/// a build's scratch tree can be large.
struct RemovedOffThread(Option<tempfile::TempDir>);

impl RemovedOffThread {
    fn new(dir: tempfile::TempDir) -> Self {
        RemovedOffThread(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for RemovedOffThread {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(dir))),
            Err(_) => drop(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Location, buildpack_location};

    #[test]
    fn what_a_buildpack_url_names() {
        let cases = [
            (
                "https://github.com/heroku/heroku-buildpack-ruby.git",
                Location::Git("https://github.com/heroku/heroku-buildpack-ruby.git"),
            ),
            (
                "git://example.com/bp",
                Location::Git("git://example.com/bp"),
            ),
            (
                "ssh://git@example.com/bp",
                Location::Git("ssh://git@example.com/bp"),
            ),
            (
                "git@example.com:team/bp.git",
                Location::Git("git@example.com:team/bp.git"),
            ),
            (
                "file:///srv/buildpacks/ruby",
                Location::File("/srv/buildpacks/ruby"),
            ),
            ("ruby", Location::Installed("ruby")),
            ("vendor/ruby", Location::Installed("vendor/ruby")),
            (
                "/srv/buildpacks/ruby",
                Location::Installed("/srv/buildpacks/ruby"),
            ),
            ("./x:y", Location::Installed("./x:y")),
            ("ext::sh -c id", Location::Unsupported("ext")),
            ("fd::17", Location::Unsupported("fd")),
            ("ftp://example.com/bp", Location::Unsupported("ftp")),
        ];
        for (url, expected) in cases {
            assert_eq!(buildpack_location(url), expected, "{url}");
        }
    }
}
