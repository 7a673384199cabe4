//! Running a Dockerfile, stage by stage. A stage's root file system is unpacked from its
//! layers into a directory of the build's own (lazily: only when a `RUN` or a `COPY` needs
//! it), handed over to the app's uid, and each `RUN` runs on it in the build sandbox as uid 0
//! inside the user namespace ([`sandbox::Isolation::command_in_root`]); what it changed
//! ([`snapshot`]) is its layer. `COPY` and `ADD` stage the files they copy in a directory laid
//! out as in the image, which is their layer. Every file a tenant wrote — the app, a stage's
//! root file system — is read through [`Tree`], so no link of theirs is followed.
//!
//! Each step has a key: the previous step's key and what the step does, expanded (a `COPY`'s
//! files by their tar's digest). A `RUN` whose key has a layer in the app's cache
//! (`cache/<app>/dockerfile/<key>.json`) is not run again: "cached".

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::Digest;
use oci::{ImageStore, LayerRef};

use super::expand;
use super::ignore::Ignore;
use super::parse::{Assignments, Command, Dockerfile, Kind, Stage, Step};
use super::snapshot;
use crate::run_image::blocking;
use crate::script::{self, Budget};
use crate::tenant_fs::{Kind as FsKind, Tree};
use crate::{BuildError, Log};

/// The PATH a `RUN` gets when the image sets none: Docker's.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The resolver file the sandbox binds from the host for a RUN.
const RESOLV_CONF: &str = "etc/resolv.conf";

/// The most links followed resolving one path in a stage's root file system.
const MAX_LINKS: usize = 40;

/// What a Dockerfile sets in its image's config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) workdir: String,
    pub(crate) user: Option<String>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) exposed: BTreeSet<String>,
    pub(crate) labels: BTreeMap<String, String>,
}

/// A stage as built so far.
#[derive(Debug)]
struct State {
    name: Option<String>,
    layers: Vec<LayerRef>,
    /// Its root file system, with the first `applied` of `layers` laid on it.
    rootfs: PathBuf,
    applied: AtomicUsize,
    config: Config,
    args: BTreeMap<String, Option<String>>,
    key: Digest,
    /// The image it is built on, if any.
    base: Option<Base>,
    /// Whether its CMD came from its base (an ENTRYPOINT then clears it, as in Docker).
    cmd_inherited: bool,
}

impl State {
    /// A variable's value where the step is: ENV first, then the stage's ARGs.
    fn lookup(&self, name: &str) -> Option<String> {
        self.config
            .env
            .get(name)
            .cloned()
            .or_else(|| self.args.get(name).cloned().flatten())
    }
}

/// The image a stage is built on, where the registry may already have its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// A run image, by name: pushed to the registry's run-image repository.
    RunImage(String),
    /// An image pulled from the registry: `host/prefix/name:tag`.
    Pulled(String),
}

/// The last stage: the image.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) layers: Vec<LayerRef>,
    pub(crate) config: Config,
    pub(crate) base: Option<Base>,
}

/// Runs a Dockerfile for one build.
pub(crate) struct Executor<'a> {
    /// The platform's registry, whose images a FROM may name.
    pub(crate) registry: Option<&'a oci::Registry>,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) isolation: Arc<sandbox::Isolation>,
    pub(crate) app: String,
    pub(crate) budget: &'a Budget,
    /// The pushed source: what COPY and ADD copy from.
    pub(crate) source: PathBuf,
    pub(crate) ignore: Ignore,
    /// The platform's directory for stages' root file systems and COPY's staging.
    pub(crate) work: PathBuf,
    /// The app's build cache.
    pub(crate) cache: PathBuf,
    pub(crate) log: Log<'a>,
}

impl Executor<'_> {
    pub(crate) async fn run(&self, file: &Dockerfile) -> Result<Built, BuildError> {
        let total: usize = file.stages.iter().map(|s| 1 + s.steps.len()).sum();
        let mut n = 0;
        let mut global: BTreeMap<String, Option<String>> = BTreeMap::new();
        for step in &file.global_args {
            if let Kind::Arg(text) = &step.kind {
                let declared = declare(text, &|name| global.get(name).cloned().flatten(), &global)
                    .map_err(|e| at(step.line, &e))?;
                global.extend(declared);
            }
        }
        let mut states: Vec<State> = Vec::new();
        for (index, stage) in file.stages.iter().enumerate() {
            n += 1;
            (self.log)(&format!("-----> Step {n}/{total} : {}", stage.text));
            let mut state = self.from(stage, index, &states, &global).await?;
            for step in &stage.steps {
                n += 1;
                let label = format!("-----> Step {n}/{total} : {}", step.text);
                self.step(&mut state, step, &states, &global, &label)
                    .await?;
            }
            states.push(state);
        }
        let last = states.pop().expect("a Dockerfile has a stage");
        Ok(Built {
            layers: last.layers,
            config: last.config,
            base: last.base,
        })
    }

    /// A stage's start: its base's layers and config.
    async fn from(
        &self,
        stage: &Stage,
        index: usize,
        states: &[State],
        global: &BTreeMap<String, Option<String>>,
    ) -> Result<State, BuildError> {
        let base = expand::word(&stage.base, &|name| global.get(name).cloned().flatten())
            .map_err(|e| at(stage.line, &e))?;
        let rootfs = self.work.join(format!("stage-{index}"));
        let made = rootfs.clone();
        blocking(move || Ok(std::fs::create_dir(made)?)).await?;
        let lower = base.to_lowercase();
        let mut state = State {
            name: stage.name.clone(),
            layers: Vec::new(),
            rootfs,
            applied: AtomicUsize::new(0),
            config: Config {
                workdir: "/".to_owned(),
                ..Config::default()
            },
            args: BTreeMap::new(),
            key: oci::sha256(b"FROM scratch"),
            base: None,
            cmd_inherited: true,
        };
        if let Some(earlier) = states.iter().find(|s| s.name.as_deref() == Some(&lower)) {
            state.layers = earlier.layers.clone();
            state.config = earlier.config.clone();
            state.key = oci::sha256(format!("FROM stage {}", earlier.key).as_bytes());
            state.base = earlier.base.clone();
        } else if lower == "scratch" {
        } else if let Some(name) = base
            .strip_prefix("run-image:")
            .or_else(|| base.strip_prefix("slipway/run-image:"))
        {
            let images = Arc::clone(&self.images);
            let reference = crate::run_image::reference(name);
            let found = blocking(move || Ok(images.find(&reference)?)).await?;
            let Some(found) = found else {
                return Err(at(
                    stage.line,
                    &format!(
                        "FROM {base}: there is no run image {name}; name one the operator made with `slipwayd run-image`"
                    ),
                ));
            };
            state.layers = found.layers;
            state.config.env = env_map(&found.env);
            if let Some(dir) = found.working_dir.filter(|d| d.starts_with('/')) {
                state.config.workdir = absolute("/", &dir);
            }
            state.key = oci::sha256(format!("FROM {}", found.digest).as_bytes());
            state.base = Some(Base::RunImage(name.to_owned()));
        } else if let Some(registry) = self.registry
            && let Some((name, tag)) = in_registry(&base, &registry.repository(""))
        {
            let reference = format!("{}:{tag}", registry.repository(&name));
            (self.log)(&format!("       pulling {reference}"));
            let digest = registry
                .pull(&self.images, &name, &tag, &format!("pulled:{name}:{tag}"))
                .await
                .map_err(|e| at(stage.line, &format!("FROM {base}: {e}")))?;
            let images = Arc::clone(&self.images);
            let found = blocking(move || Ok(images.image(&digest)?)).await?;
            state.layers = found.layers;
            state.config.env = env_map(&found.env);
            if let Some(dir) = found.working_dir.filter(|d| d.starts_with('/')) {
                state.config.workdir = absolute("/", &dir);
            }
            state.key = oci::sha256(format!("FROM {}", found.digest).as_bytes());
            state.base = Some(Base::Pulled(reference));
        } else {
            let registry = match self.registry {
                Some(registry) => format!(
                    "an image of the platform's registry ({}…)",
                    registry.repository("")
                ),
                None => "an image of the platform's registry (this platform has none)".to_owned(),
            };
            return Err(at(
                stage.line,
                &format!(
                    "FROM {base} is not supported; build on a run image (FROM run-image:<name>), {registry}, an earlier stage or scratch"
                ),
            ));
        }
        Ok(state)
    }

    async fn step(
        &self,
        state: &mut State,
        step: &Step,
        states: &[State],
        global: &BTreeMap<String, Option<String>>,
        label: &str,
    ) -> Result<(), BuildError> {
        let line = step.line;
        let bad = |e: String| at(line, &e);
        match &step.kind {
            Kind::Run(command) => return self.run_step(state, step, command, label).await,
            Kind::Copy {
                from,
                sources,
                dest,
                add,
            } => {
                let vars = |name: &str| state.lookup(name);
                let dest = expand::word(dest, &vars).map_err(bad)?;
                let sources = sources
                    .iter()
                    .map(|s| expand::word(s, &vars))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?;
                let from = match from {
                    Some(from) => {
                        let from = expand::word(from, &vars).map_err(bad)?.to_lowercase();
                        let found = states
                            .iter()
                            .enumerate()
                            .find(|(i, s)| {
                                s.name.as_deref() == Some(&from) || i.to_string() == from
                            })
                            .map(|(_, s)| s);
                        Some(found.ok_or_else(|| {
                            at(
                                line,
                                &format!("COPY --from={from} names no earlier stage; name one by its AS name or number"),
                            )
                        })?)
                    }
                    None => None,
                };
                return self
                    .copy_step(state, step, from, &sources, &dest, *add, label)
                    .await;
            }
            _ => {}
        }
        (self.log)(label);
        let vars = |name: &str| state.lookup(name);
        match &step.kind {
            Kind::Arg(text) => {
                let declared = declare(text, &vars, global).map_err(bad)?;
                state.args.extend(declared);
            }
            Kind::Env(assignments) => {
                let pairs = pairs(assignments, &vars).map_err(bad)?;
                state.config.env.extend(pairs);
            }
            Kind::Label(assignments) => {
                let pairs = pairs(assignments, &vars).map_err(bad)?;
                state.config.labels.extend(pairs);
            }
            Kind::Workdir(text) => {
                let dir = expand::word(text, &vars).map_err(bad)?;
                state.config.workdir = absolute(&state.config.workdir, &dir);
            }
            Kind::User(text) => {
                state.config.user = Some(expand::word(text, &vars).map_err(bad)?);
            }
            Kind::Expose(text) => {
                for port in expand::words(text, &vars).map_err(bad)? {
                    let (number, protocol) = port.split_once('/').unwrap_or((&port, "tcp"));
                    if number.parse::<u16>().is_err() || !matches!(protocol, "tcp" | "udp") {
                        return Err(bad(format!(
                            "EXPOSE {port} is not a port; give a number, such as 8080 or 8080/tcp"
                        )));
                    }
                    state.config.exposed.insert(format!("{number}/{protocol}"));
                }
            }
            Kind::Cmd(command) => {
                state.config.cmd = Some(argv(command));
                state.cmd_inherited = false;
            }
            Kind::Entrypoint(command) => {
                state.config.entrypoint = Some(argv(command));
                if state.cmd_inherited {
                    state.config.cmd = None;
                }
            }
            Kind::Run(_) | Kind::Copy { .. } => unreachable!("handled above"),
        }
        state.key =
            oci::sha256(format!("{}\n{:?}\n{:?}", state.key, state.config, state.args).as_bytes());
        Ok(())
    }

    async fn run_step(
        &self,
        state: &mut State,
        step: &Step,
        command: &Command,
        label: &str,
    ) -> Result<(), BuildError> {
        let argv = argv(command);
        if argv.is_empty() {
            return Err(at(step.line, "RUN needs a command"));
        }
        let mut env: BTreeMap<String, String> = state
            .args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        env.extend(state.config.env.clone());
        env.entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_PATH.to_owned());
        env.entry("HOME".to_owned())
            .or_insert_with(|| "/root".to_owned());
        let workdir = state.config.workdir.clone();
        let key = oci::sha256(
            serde_json::to_string(&serde_json::json!({
                "after": state.key.to_string(),
                "run": argv,
                "env": env,
                "workdir": workdir,
            }))
            .expect("strings serialise")
            .as_bytes(),
        );
        if let Some(cached) = self.cached(&key).await? {
            (self.log)(&format!("{label}: cached"));
            state.layers.extend(cached);
            state.key = key;
            return Ok(());
        }
        (self.log)(label);
        self.materialize(state).await?;
        let (rootfs, isolation, app) = (
            state.rootfs.clone(),
            Arc::clone(&self.isolation),
            self.app.clone(),
        );
        let relative_workdir = relative(&workdir);
        let (before, made_resolv) = blocking(move || {
            let tree = Tree::open(&rootfs, "")?;
            for dir in ["proc", "dev"] {
                tree.create_dir_all(Path::new(dir))?;
            }
            if !relative_workdir.as_os_str().is_empty() {
                tree.create_dir_all(&relative_workdir)?;
            }
            // Where the sandbox binds the host's resolver, as Docker does; made for the RUN
            // only, so it is in no layer.
            let resolv = Path::new(RESOLV_CONF);
            let made_resolv =
                tree.kind(Path::new("etc"))? == Some(FsKind::Dir) && tree.kind(resolv)?.is_none();
            if made_resolv {
                tree.write(resolv, b"")?;
            }
            isolation.hand_over(&app, &rootfs)?;
            Ok((snapshot::take(&tree)?, made_resolv))
        })
        .await
        .map_err(|e| at(step.line, &e.to_string()))?;
        let mut sandbox = self.budget.sandbox.clone();
        sandbox.root = Some(state.rootfs.clone());
        // The root is all the step may write: the disk budget watches it.
        sandbox.mounts = vec![script::Mount {
            host: state.rootfs.clone(),
            at: PathBuf::from("/"),
        }];
        sandbox.readable = Vec::new();
        let program = PathBuf::from(&argv[0]);
        let args: Vec<&Path> = argv[1..].iter().map(Path::new).collect();
        let finished = script::run_in(
            &sandbox,
            &program,
            &args,
            Path::new(&workdir),
            &env,
            script::Stdout::Log,
            self.budget,
            self.log,
        )
        .await?;
        if finished.code != Some(0) {
            return Err(at(
                step.line,
                &format!(
                    "{} failed{}; fix the command",
                    step.text,
                    finished
                        .code
                        .map(|c| format!(" with exit code {c}"))
                        .unwrap_or_default()
                ),
            ));
        }
        let (rootfs, images) = (state.rootfs.clone(), Arc::clone(&self.images));
        let layer = blocking(move || {
            let tree = Tree::open(&rootfs, "")?;
            let after = snapshot::take(&tree)?;
            let changes = snapshot::diff(&before, &after);
            if made_resolv {
                tree.remove_all(Path::new(RESOLV_CONF))?;
            }
            if changes.is_empty() {
                return Ok(None);
            }
            let layer = oci::changes_layer(&tree, Some(&changes), &images.tmp())?;
            Ok(Some(images.store_layer(&layer)?))
        })
        .await
        .map_err(|e| at(step.line, &e.to_string()))?;
        self.remember(&key, layer.as_ref()).await?;
        state.layers.extend(layer);
        // The root file system is what the layers make: nothing left to lay on it.
        state.applied.store(state.layers.len(), Ordering::Relaxed);
        state.key = key;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_step(
        &self,
        state: &mut State,
        step: &Step,
        from: Option<&State>,
        sources: &[String],
        dest: &str,
        add: bool,
        label: &str,
    ) -> Result<(), BuildError> {
        self.materialize(state).await?;
        if let Some(from) = from {
            self.materialize(from).await?;
        }
        let line = step.line;
        let staging = tempfile::Builder::new()
            .prefix("copy-")
            .tempdir_in(&self.work)?;
        let (rootfs, staging_path, images, isolation, app) = (
            state.rootfs.clone(),
            staging.path().to_path_buf(),
            Arc::clone(&self.images),
            Arc::clone(&self.isolation),
            self.app.clone(),
        );
        let (context, ignore) = match from {
            Some(from) => (from.rootfs.clone(), None),
            None => (self.source.clone(), Some(self.ignore.clone())),
        };
        let sources = sources.to_vec();
        let dest = absolute(&state.config.workdir, dest)
            + if dest.ends_with('/') && dest != "/" {
                "/"
            } else {
                ""
            };
        let what = if add { "ADD" } else { "COPY" };
        let (layer, reused) = blocking(move || {
            let root = Tree::open(&rootfs, "")?;
            let staged = Tree::open(&staging_path, "")?;
            let context = Tree::open(&context, "")?;
            let copy = Copy {
                what,
                root: &root,
                context: &context,
                ignore: ignore.as_ref(),
                staged: &staged,
                add,
            };
            copy.all(&sources, &dest)?;
            let layer = oci::changes_layer(&staged, None, &images.tmp())?;
            let reused = images.stored_layer(&layer.diff_id)?;
            let stored = match reused.clone() {
                Some(stored) => stored,
                None => images.store_layer(&layer)?,
            };
            // The stage's root file system gets the files: hard links of the staged ones,
            // which are removed with the staging directory.
            oci::rootfs::merge_keeping(&staging_path, &rootfs, 0o7777)?;
            isolation.hand_over(&app, &rootfs)?;
            Ok((stored, reused.is_some()))
        })
        .await
        .map_err(|e| match e {
            BuildError::Buildpack(text) if text.starts_with("Dockerfile") => {
                BuildError::Buildpack(text)
            }
            other => at(line, &other.to_string()),
        })?;
        drop(staging);
        (self.log)(&format!("{label}{}", if reused { ": cached" } else { "" }));
        state.key = oci::sha256(format!("{}\n{what} {}", state.key, layer.diff_id).as_bytes());
        state.layers.push(layer);
        state.applied.store(state.layers.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Lays on `state`'s root file system the layers not yet on it, and hands it to the app.
    async fn materialize(&self, state: &State) -> Result<(), BuildError> {
        let applied = state.applied.load(Ordering::Relaxed);
        if applied == state.layers.len() {
            return Ok(());
        }
        let pending: Vec<Digest> = state.layers[applied..]
            .iter()
            .map(|l| l.digest.clone())
            .collect();
        let (images, rootfs, work, isolation, app) = (
            Arc::clone(&self.images),
            state.rootfs.clone(),
            self.work.clone(),
            Arc::clone(&self.isolation),
            self.app.clone(),
        );
        blocking(move || {
            for digest in &pending {
                oci::rootfs::apply_layer(&images, digest, &rootfs, &work)?;
            }
            isolation.hand_over(&app, &rootfs)?;
            Ok(())
        })
        .await?;
        state.applied.store(state.layers.len(), Ordering::Relaxed);
        Ok(())
    }

    /// The layer a RUN with `key` made before (`Some(None)`: it changed nothing), if the
    /// cache has it and the image store still holds the layer.
    async fn cached(&self, key: &Digest) -> Result<Option<Option<LayerRef>>, BuildError> {
        let (cache, images, name) = (
            self.cache.clone(),
            Arc::clone(&self.images),
            format!("dockerfile/{}.json", key.hex()),
        );
        blocking(move || {
            let tree = Tree::open(&cache, "cache")?;
            let Ok(Some(text)) = tree.read(Path::new(&name)) else {
                return Ok(None);
            };
            let Ok(entry) = serde_json::from_str::<CacheEntry>(&text) else {
                return Ok(None);
            };
            let Some(diff_id) = entry.diff_id else {
                return Ok(Some(None));
            };
            let Ok(diff_id) = Digest::parse(&diff_id) else {
                return Ok(None);
            };
            Ok(images.stored_layer(&diff_id)?.map(Some))
        })
        .await
    }

    /// Records what the RUN with `key` made.
    async fn remember(&self, key: &Digest, layer: Option<&LayerRef>) -> Result<(), BuildError> {
        let (cache, name) = (self.cache.clone(), format!("{}.json", key.hex()));
        let entry = CacheEntry {
            diff_id: layer.map(|l| l.diff_id.to_string()),
        };
        let text = serde_json::to_vec(&entry).expect("strings serialise");
        blocking(move || {
            let tree = Tree::open(&cache, "cache")?;
            tree.create_dir_all(Path::new("dockerfile"))?
                .write(Path::new(&name), &text)
        })
        .await
    }
}

/// A RUN's result in the cache: the diff_id of its layer, in the image store, or none.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    diff_id: Option<String>,
}

/// The files of one COPY or ADD, staged as the layer will hold them.
struct Copy<'a> {
    what: &'a str,
    /// The stage's root file system: where `dest` is resolved, links followed inside it.
    root: &'a Tree,
    /// What the files are copied from: the app, or an earlier stage's root file system.
    context: &'a Tree,
    ignore: Option<&'a Ignore>,
    staged: &'a Tree,
    add: bool,
}

impl Copy<'_> {
    fn all(&self, sources: &[String], dest: &str) -> Result<(), BuildError> {
        let mut matched: Vec<PathBuf> = Vec::new();
        for source in sources {
            let found = self.find(source)?;
            if found.is_empty() {
                return Err(BuildError::Buildpack(format!(
                    "{} {source}: no such file{}; check the path",
                    self.what,
                    if self.ignore.is_some() {
                        " in the app (or .dockerignore leaves it out)"
                    } else {
                        " in that stage"
                    }
                )));
            }
            matched.extend(found);
        }
        let dest_path = relative(dest);
        let resolved = self.resolve(&dest_path)?;
        let into_dir = dest.ends_with('/')
            || matched.len() > 1
            || self.root.kind(dot(&resolved))? == Some(FsKind::Dir);
        for path in matched {
            let kind = self.context.kind(dot(&path))?;
            match kind {
                Some(FsKind::Dir) => {
                    self.parents(&resolved)?;
                    let dir = self.context.dir(dot(&path))?.expect("a directory");
                    self.copy_dir(&dir, &path, &resolved)?;
                }
                Some(FsKind::File | FsKind::Symlink) => {
                    if self.add && kind == Some(FsKind::File) && is_archive(self.context, &path)? {
                        return Err(BuildError::Buildpack(format!(
                            "ADD of a local archive ({}) is not supported; COPY it and unpack it in a RUN step",
                            path.display()
                        )));
                    }
                    let to = if into_dir {
                        resolved.join(path.file_name().unwrap_or_default())
                    } else {
                        resolved.clone()
                    };
                    if let Some(parent) = to.parent() {
                        self.parents(parent)?;
                    }
                    self.context.copy_to(&path, self.staged, &to)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The context's paths `source` names: one, or those its last name's wildcards match.
    fn find(&self, source: &str) -> Result<Vec<PathBuf>, BuildError> {
        let path = contained(source).ok_or_else(|| {
            BuildError::Buildpack(format!(
                "{} {source} is outside the app; name a path inside it",
                self.what
            ))
        })?;
        let wild = |s: &str| s.contains(['*', '?', '[']);
        let (parent, last) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(last)) => {
                (parent.to_path_buf(), last.to_string_lossy().into_owned())
            }
            _ => (PathBuf::new(), String::new()),
        };
        if wild(&parent.to_string_lossy()) || last.contains('[') {
            return Err(BuildError::Buildpack(format!(
                "{} {source}: wildcards are supported only in the last name, as * and ?; name the files",
                self.what
            )));
        }
        let mut found = Vec::new();
        if wild(&last) {
            let Some(dir) = self.context.dir(&parent)? else {
                return Ok(found);
            };
            for (name, _) in dir.entries()? {
                let name = name.to_string_lossy().into_owned();
                if wildcard(&last, &name) {
                    found.push(parent.join(name));
                }
            }
        } else if self.context.kind(&path)?.is_some() || path.as_os_str().is_empty() {
            found.push(path);
        }
        found.retain(|p| !self.ignored(p));
        Ok(found)
    }

    fn ignored(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        !text.is_empty() && self.ignore.is_some_and(|i| i.ignores(&text))
    }

    /// Copies `dir`'s entries (`at` in the context) into `to`, leaving out ignored ones.
    fn copy_dir(&self, dir: &Tree, at: &Path, to: &Path) -> Result<(), BuildError> {
        let made = self.staged.create_dir_all(dot(to))?;
        for (name, kind) in dir.entries()? {
            let path = at.join(&name);
            if self.ignored(&path) {
                continue;
            }
            let name = Path::new(&name);
            match kind {
                FsKind::Dir => {
                    let sub = dir.dir(name)?.expect("a directory");
                    self.copy_dir(&sub, &path, &to.join(name))?;
                    let mode = dir.metadata(name)?.permissions();
                    self.staged
                        .dir(&to.join(name))?
                        .expect("made")
                        .set_permissions(mode)?;
                }
                FsKind::File | FsKind::Symlink => dir.copy_to(name, &made, name)?,
                FsKind::Other => {}
            }
        }
        Ok(())
    }

    /// Makes `dir` and its parents in the staging tree, each with the mode it has in the
    /// stage's root file system (so a COPY into `/tmp` keeps `/tmp` sticky), 0755 if new.
    fn parents(&self, dir: &Path) -> Result<(), BuildError> {
        let mut so_far = PathBuf::new();
        for part in dir.components() {
            so_far.push(part);
            let made = self.staged.create_dir_all(&so_far)?;
            if self.root.kind(&so_far)? == Some(FsKind::Dir) {
                made.set_permissions(self.root.metadata(&so_far)?.permissions())?;
            }
        }
        Ok(())
    }

    /// `path` in the stage's root file system with every link on the way resolved inside it,
    /// as the image's processes would see it (`/bin` → `usr/bin`); a link never leads out.
    fn resolve(&self, path: &Path) -> Result<PathBuf, BuildError> {
        let mut pending: Vec<OsString> = path
            .components()
            .rev()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        let mut done = PathBuf::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            if part == "." || part.is_empty() {
                continue;
            }
            let next = done.join(&part);
            if self.root.kind(&next)? == Some(FsKind::Symlink) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(BuildError::Buildpack(format!(
                        "{} to {}: too many links on the way; name the real directory",
                        self.what,
                        path.display()
                    )));
                }
                let target = self.root.read_link(&next)?;
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                pending.extend(
                    target
                        .components()
                        .rev()
                        .filter(|c| !matches!(c, Component::RootDir))
                        .map(|c| c.as_os_str().to_owned()),
                );
                continue;
            }
            done = next;
        }
        Ok(done)
    }
}

/// An image's `K=V` environment as a map.
fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The repository (under the registry's prefix) and tag a FROM names in the registry whose
/// repositories are `under` (`host/prefix/`): written in full (`host/prefix/name:tag`) or by
/// name alone (`name:tag`, `name` for `latest`). `None` for another registry or a name that is
/// not one.
fn in_registry(base: &str, under: &str) -> Option<(String, String)> {
    let rest = match base.strip_prefix(under) {
        Some(rest) => rest,
        None => {
            // A first part with a dot, a colon or `localhost` is another registry's host.
            let first = base.split('/').next().unwrap_or_default();
            if base.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
                return None;
            }
            base
        }
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (rest, "latest"),
    };
    let name_ok = !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && part
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
        });
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (name_ok && tag_ok).then(|| (name.to_owned(), tag.to_owned()))
}

/// The root itself as `.`, which a [`Tree`] resolves beneath itself.
fn dot(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// Whether the file starts like an archive ADD would unpack (tar, gzip, bzip2, xz).
fn is_archive(tree: &Tree, path: &Path) -> Result<bool, BuildError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(512);
    tree.open_file(path)?.take(512).read_to_end(&mut head)?;
    Ok(head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.get(257..262) == Some(b"ustar"))
}

/// `*` and `?` within one name.
fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// `source` as a path inside the context (`.` is its root), or `None` if it climbs out.
fn contained(source: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for part in Path::new(source).components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::ParentDir => {
                if !path.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(path)
}

/// `path` made absolute against `dir` and normalised (`..` stops at `/`).
fn absolute(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(dir).join(path)
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in joined.components() {
        match part {
            Component::Normal(name) => parts.push(name),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut text = String::from("/");
    text.push_str(
        &parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    text
}

/// An absolute image path as a path relative to the root.
fn relative(path: &str) -> PathBuf {
    contained(path).unwrap_or_default()
}

/// A command's argv: the shell form runs under `/bin/sh -c`.
pub(crate) fn argv(command: &Command) -> Vec<String> {
    match command {
        Command::Shell(text) => vec!["/bin/sh".to_owned(), "-c".to_owned(), text.clone()],
        Command::Exec(args) => args.clone(),
    }
}

/// `ARG A=1 B`: each name with its default (expanded) or, without one, the value a global
/// ARG of that name has.
fn declare(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    global: &BTreeMap<String, Option<String>>,
) -> Result<Vec<(String, Option<String>)>, String> {
    let mut declared = Vec::new();
    for word in expand::words(text, vars)? {
        let (name, value) = match word.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (word.clone(), global.get(&word).cloned().flatten()),
        };
        check_name(&name, "ARG")?;
        declared.push((name, value));
    }
    if declared.is_empty() {
        return Err("ARG needs a name".to_owned());
    }
    Ok(declared)
}

/// ENV's or LABEL's pairs, expanded.
fn pairs(
    assignments: &Assignments,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    match assignments {
        Assignments::Legacy { key, value } => {
            let key = expand::word(key, vars)?;
            if key.is_empty() {
                return Err("ENV needs KEY=value".to_owned());
            }
            Ok(vec![(key, expand::word(value, vars)?)])
        }
        Assignments::Pairs(text) => expand::words(text, vars)?
            .into_iter()
            .map(|word| match word.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => Err(format!("{word:?} is not KEY=value")),
            })
            .collect(),
    }
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a variable name; use letters, digits and _"
        ))
    }
}

/// A message about line `line` of the Dockerfile.
fn at(line: usize, text: &str) -> BuildError {
    if text.starts_with("Dockerfile") {
        return BuildError::Buildpack(text.to_owned());
    }
    BuildError::Buildpack(format!("Dockerfile line {line}: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_and_never_climb_out() {
        assert_eq!(absolute("/", "app"), "/app");
        assert_eq!(absolute("/app", "sub/../x"), "/app/x");
        assert_eq!(absolute("/app", "/srv"), "/srv");
        assert_eq!(absolute("/app", "../../.."), "/");
        assert_eq!(contained("./a/../b"), Some(PathBuf::from("b")));
        assert_eq!(contained("../etc/passwd"), None);
        assert_eq!(contained("/etc/passwd"), Some(PathBuf::from("etc/passwd")));
        assert_eq!(contained("."), Some(PathBuf::new()));
    }

    #[test]
    fn an_entrypoint_clears_only_an_inherited_cmd() {
        let step = |kind: Kind| Step {
            line: 1,
            text: String::new(),
            kind,
        };
        let mut state = State {
            name: None,
            layers: Vec::new(),
            rootfs: PathBuf::new(),
            applied: AtomicUsize::new(0),
            config: Config {
                cmd: Some(vec!["base".into()]),
                ..Config::default()
            },
            args: BTreeMap::new(),
            key: oci::sha256(b""),
            base: None,
            cmd_inherited: true,
        };
        let entrypoint = Kind::Entrypoint(Command::Exec(vec!["/app".into()]));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let budget = crate::script::Budget {
            deadline: std::time::Instant::now(),
            limit: std::time::Duration::ZERO,
            max_output: 0,
            output: Default::default(),
            in_scripts: Default::default(),
            sandbox: crate::script::Sandbox {
                isolation: Arc::new(sandbox::Isolation::off()),
                app: String::new(),
                mounts: Vec::new(),
                readable: Vec::new(),
                limits: sandbox::Limits::BUILD,
                root: None,
            },
        };
        let store = tempfile::tempdir().unwrap();
        let executor = Executor {
            registry: None,
            images: Arc::new(ImageStore::open(store.path().to_path_buf()).unwrap()),
            isolation: Arc::new(sandbox::Isolation::off()),
            app: String::new(),
            budget: &budget,
            source: PathBuf::new(),
            ignore: Ignore::default(),
            work: PathBuf::new(),
            cache: PathBuf::new(),
            log: &|_: &str| {},
        };
        let global = BTreeMap::new();
        runtime.block_on(async {
            executor
                .step(&mut state, &step(entrypoint.clone()), &[], &global, "")
                .await
                .unwrap();
            assert_eq!(state.config.cmd, None);
            let cmd = Kind::Cmd(Command::Exec(vec!["--flag".into()]));
            executor
                .step(&mut state, &step(cmd), &[], &global, "")
                .await
                .unwrap();
            executor
                .step(&mut state, &step(entrypoint), &[], &global, "")
                .await
                .unwrap();
            assert_eq!(state.config.cmd, Some(vec!["--flag".to_owned()]));
        });
    }

    #[test]
    fn a_from_names_an_image_of_the_platforms_registry() {
        let under = oci::RegistryConfig::parse("127.0.0.1:5000/team")
            .unwrap()
            .repository("");
        let pair = |base: &str| in_registry(base, &under);
        let some = |n: &str, t: &str| Some((n.to_owned(), t.to_owned()));
        assert_eq!(pair("golang:1.22"), some("golang", "1.22"));
        assert_eq!(pair("tools/go"), some("tools/go", "latest"));
        assert_eq!(
            pair("127.0.0.1:5000/team/golang:1.22"),
            some("golang", "1.22")
        );
        assert_eq!(pair("docker.io/library/golang:1.22"), None);
        assert_eq!(pair("127.0.0.1:5001/team/golang"), None);
        assert_eq!(pair("Golang"), None);
        assert_eq!(pair("../x"), None);
        assert_eq!(pair("golang@sha256:00"), None);
    }

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard("*.go", "main.go"));
        assert!(wildcard("go.*", "go.sum"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("*.go", "main.rs"));
        assert!(!wildcard("a?c", "ac"));
    }

    #[test]
    fn env_and_arg_expand_where_they_are() {
        let vars = |name: &str| (name == "V").then(|| "1.2".to_owned());
        assert_eq!(
            pairs(&Assignments::Pairs("A=$V B=\"x y\"".into()), &vars).unwrap(),
            [
                ("A".to_owned(), "1.2".to_owned()),
                ("B".to_owned(), "x y".to_owned())
            ]
        );
        assert!(pairs(&Assignments::Pairs("A=1 junk".into()), &vars).is_err());
        let global = BTreeMap::from([("G".to_owned(), Some("g".to_owned()))]);
        assert_eq!(
            declare("G X=${V}-x", &vars, &global).unwrap(),
            [
                ("G".to_owned(), Some("g".to_owned())),
                ("X".to_owned(), Some("1.2-x".to_owned()))
            ]
        );
        assert!(declare("1X", &vars, &global).is_err());
    }
}
