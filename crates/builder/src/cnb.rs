//! Cloud Native Buildpacks, Buildpack API 0.7 to 0.12: Slipway as the lifecycle.
//!
//! Detection runs each group of the order (a composite buildpack's `[[order]]`, or a single
//! buildpack as a group of one), then resolves the build plan: every `requires` must be met
//! by a `provides` of the same or an earlier buildpack, every `provides` by a `requires` of
//! the same or a later one; each buildpack's `[[or]]` alternatives are tried in order, and
//! optional buildpacks that do not fit are dropped. Build runs each buildpack of the chosen
//! group with its plan, in order, with the environment of the layers before it. Both phases
//! give a buildpack the `CNB_*` variables of its API version *and* the positional arguments
//! that buildpacks written for older APIs read.
//!
//! After the build, layers marked `cache` are kept for the app's next build, layers marked
//! `launch` become image layers under `/layers/<buildpack>/<layer>`, and `launch.toml`'s
//! processes become the app's process types.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::script::{self, Budget, Stdout};
use crate::tenant_fs::{Kind, Tree};
use crate::{BuildError, BuildJob, Log, system_path};

/// The most a build's layers' env files may hold, together (a process's environment must
/// fit in a few MiB anyway).
const MAX_ENV: u64 = 4 * 1024 * 1024;

/// The most launch layers a build may make: each is an image layer.
const MAX_LAUNCH_LAYERS: usize = 100;

const SUPPORTED: &[&str] = &["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"];

/// `buildpack.toml`.
#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    api: String,
    buildpack: Info,
    #[serde(default)]
    order: Vec<Order>,
}

#[derive(Debug, Clone, Deserialize)]
struct Info {
    id: String,
    #[serde(default)]
    version: String,
    name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Order {
    #[serde(default)]
    group: Vec<GroupEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct GroupEntry {
    id: String,
    version: Option<String>,
    #[serde(default)]
    optional: bool,
}

/// A buildpack found on disk.
#[derive(Debug, Clone)]
pub(crate) struct Buildpack {
    dir: PathBuf,
    descriptor: Descriptor,
}

impl Buildpack {
    /// Reads `dir/buildpack.toml`, if there is one, without following a link.
    pub(crate) fn load(dir: &Path) -> Result<Option<Buildpack>, BuildError> {
        let tree = match Tree::open(dir, &crate::display_name(dir)) {
            Ok(tree) => tree,
            Err(BuildError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(text) = tree.read(Path::new("buildpack.toml"))? else {
            return Ok(None);
        };
        let descriptor: Descriptor = parse_toml(&text, || {
            format!("invalid {}", tree.name(Path::new("buildpack.toml")))
        })?;
        // The id names the buildpack's layers directory and its path in the image.
        let id = &descriptor.buildpack.id;
        if id.is_empty()
            || id
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        {
            return Err(BuildError::Buildpack(format!(
                "{}: invalid buildpack id {id:?}: use letters, digits, '.', '-', '_' and '/'",
                tree.name(Path::new("buildpack.toml"))
            )));
        }
        if !SUPPORTED.contains(&descriptor.api.as_str()) {
            return Err(BuildError::Buildpack(format!(
                "buildpack {} uses Buildpack API {}; Slipway supports {} to {}",
                descriptor.buildpack.id,
                descriptor.api,
                SUPPORTED[0],
                SUPPORTED[SUPPORTED.len() - 1]
            )));
        }
        Ok(Some(Buildpack {
            dir: dir.to_path_buf(),
            descriptor,
        }))
    }

    fn id(&self) -> &str {
        &self.descriptor.buildpack.id
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(&self) -> String {
        self.descriptor
            .buildpack
            .name
            .clone()
            .unwrap_or_else(|| self.id().to_owned())
    }

    /// API 0.9 made launch.toml commands arrays.
    fn api_at_least(&self, minor: u32) -> bool {
        self.descriptor
            .api
            .strip_prefix("0.")
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= minor)
    }

    /// The directory name of this buildpack's layers: its id with `/` made safe.
    fn layers_name(&self) -> String {
        self.id().replace('/', "_")
    }
}

/// Buildpacks that composites may name, by id.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    by_id: HashMap<String, Vec<Buildpack>>,
}

impl Catalog {
    /// Every buildpack in `dirs` and their immediate subdirectories.
    pub(crate) fn scan(dirs: &[PathBuf]) -> Result<Catalog, BuildError> {
        let mut catalog = Catalog::default();
        for dir in dirs {
            let mut candidates = vec![dir.clone()];
            if let Ok(tree) = Tree::open(dir, "")
                && let Ok(entries) = tree.entries()
            {
                candidates.extend(
                    entries
                        .into_iter()
                        .filter(|(_, kind)| *kind == Kind::Dir)
                        .map(|(name, _)| dir.join(name)),
                );
            }
            for candidate in candidates {
                // A candidate that does not load is only a neighbour; were it needed, the
                // order naming it reports it as not found.
                if let Ok(Some(bp)) = Buildpack::load(&candidate) {
                    let known = catalog.by_id.entry(bp.id().to_owned()).or_default();
                    if !known.iter().any(|k| k.dir == bp.dir) {
                        known.push(bp);
                    }
                }
            }
        }
        Ok(catalog)
    }

    fn find(&self, id: &str, version: Option<&str>) -> Result<Buildpack, BuildError> {
        self.by_id
            .get(id)
            .and_then(|all| {
                all.iter()
                    .find(|bp| version.is_none_or(|v| v == bp.descriptor.buildpack.version))
            })
            .cloned()
            .ok_or_else(|| {
                BuildError::Buildpack(format!(
                    "buildpack {id}{} is named in an order but was not found",
                    version.map(|v| format!("@{v}")).unwrap_or_default()
                ))
            })
    }
}

/// One member of a group to try.
#[derive(Debug, Clone)]
struct Member {
    buildpack: Buildpack,
    optional: bool,
}

/// The groups `top` stands for: its order's groups (recursively flattened), or itself.
fn groups(top: &[Member], catalog: &Catalog) -> Result<Vec<Vec<Member>>, BuildError> {
    let mut result: Vec<Vec<Member>> = vec![Vec::new()];
    for member in top {
        let options: Vec<Vec<Member>> = if member.buildpack.descriptor.order.is_empty() {
            vec![vec![member.clone()]]
        } else {
            let mut options = Vec::new();
            for order in &member.buildpack.descriptor.order {
                let members = order
                    .group
                    .iter()
                    .map(|entry| {
                        Ok(Member {
                            buildpack: catalog.find(&entry.id, entry.version.as_deref())?,
                            optional: entry.optional || member.optional,
                        })
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?;
                options.extend(groups(&members, catalog)?);
            }
            options
        };
        let mut next = Vec::new();
        for prefix in &result {
            for option in &options {
                let mut group = prefix.clone();
                group.extend(option.iter().cloned());
                next.push(group);
            }
        }
        result = next;
    }
    Ok(result)
}

/// `plan.toml` as a buildpack's detect writes it.
#[derive(Debug, Clone, Default, Deserialize)]
struct Plan {
    #[serde(flatten)]
    main: Alternative,
    #[serde(default)]
    or: Vec<Alternative>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Alternative {
    #[serde(default)]
    provides: Vec<Provide>,
    #[serde(default)]
    requires: Vec<Require>,
}

#[derive(Debug, Clone, Deserialize)]
struct Provide {
    name: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct Require {
    name: String,
    #[serde(default)]
    metadata: toml::Table,
}

/// A buildpack that will build, with the plan entries it provides.
#[derive(Debug, Clone)]
struct Chosen {
    buildpack: Buildpack,
    entries: Vec<Require>,
}

/// What the CNB build produced.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) name: String,
    /// Process type → command line.
    pub(crate) processes: BTreeMap<String, String>,
    /// Launch layers, in image order.
    pub(crate) launch_layers: Vec<LaunchLayer>,
    /// Environment for the image (PATH and the launch layers' env).
    pub(crate) env: BTreeMap<String, String>,
    /// The layers to keep for the next build, (buildpack's layers name, layer): moved to the
    /// cache by [`keep_caches`] once the image is made.
    pub(crate) keep: Vec<(String, String)>,
}

/// A layer of the image a buildpack made for launch.
#[derive(Debug)]
pub(crate) struct LaunchLayer {
    /// `<buildpack id>:<layer>`, as the log names it.
    pub(crate) id: String,
    pub(crate) buildpack: String,
    pub(crate) name: String,
    /// Where it is in the image, without the leading `/`: `layers/<buildpack>/<layer>`.
    pub(crate) at: String,
    /// Its `<layer>.toml`, kept for the next build.
    pub(crate) toml: String,
    /// What it sets in the image's environment.
    pub(crate) env: LayerEnv,
    pub(crate) content: Content,
}

/// What a launch layer holds.
#[derive(Debug)]
pub(crate) enum Content {
    /// A directory of the scratch tree, to make a layer of; with the last build's record of
    /// the layer of that name, whose fingerprint may show it is that layer untouched.
    Dir(PathBuf, Option<LaunchRecord>),
    /// The last build's layer, which the buildpack found current: it kept the layer's
    /// metadata and made no directory (the Buildpack API's rule for reusing launch layers).
    Reused(oci::LayerRef),
}

/// What the last build's launch layers were, by buildpack id and layer name: the platform's
/// own record (under its data directory, never in a tree a build can write), so a buildpack
/// can only ask to reuse a layer its app had, never name another.
pub(crate) type LaunchRecords = BTreeMap<String, BTreeMap<String, LaunchRecord>>;

/// A launch layer of the last build.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LaunchRecord {
    pub(crate) toml: String,
    pub(crate) digest: String,
    pub(crate) diff_id: String,
    pub(crate) size: u64,
    pub(crate) env: LayerEnv,
    /// The layer's directory's [`Tree::fingerprint`] when it was made, if it was a directory.
    #[serde(default)]
    pub(crate) fingerprint: Option<String>,
}

impl LaunchRecord {
    pub(crate) fn layer_ref(&self) -> Option<oci::LayerRef> {
        Some(oci::LayerRef {
            digest: domain::Digest::parse(&self.digest).ok()?,
            diff_id: domain::Digest::parse(&self.diff_id).ok()?,
            size: self.size,
        })
    }
}

/// The records of an image's launch layers, for the next build.
pub(crate) fn records_of(
    layers: &[LaunchLayer],
    made: &[(oci::LayerRef, Option<String>)],
) -> LaunchRecords {
    let mut records = LaunchRecords::new();
    for (layer, (made, fingerprint)) in layers.iter().zip(made) {
        records.entry(layer.buildpack.clone()).or_default().insert(
            layer.name.clone(),
            LaunchRecord {
                toml: layer.toml.clone(),
                digest: made.digest.to_string(),
                diff_id: made.diff_id.to_string(),
                size: made.size,
                env: layer.env.clone(),
                fingerprint: fingerprint.clone(),
            },
        );
    }
    records
}

/// What a layer sets in the environment: its `bin/` and `lib/`, and its env files.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct LayerEnv {
    bin: bool,
    lib: bool,
    /// (file name, value), in the order applied.
    files: Vec<(String, String)>,
}

pub(crate) struct Lifecycle<'a> {
    pub(crate) job: &'a BuildJob<'a>,
    /// Where layers, the platform dir and plans are written.
    pub(crate) scratch: &'a Tree,
    /// The app's cache; the CNB cache is `cnb/<buildpack>/<layer>` in it.
    pub(crate) cache: &'a Tree,
    /// The last build's launch layers.
    pub(crate) records: &'a LaunchRecords,
    pub(crate) budget: &'a Budget,
    pub(crate) log: Log<'a>,
    /// The cached layers moved into the build, to move back if it fails.
    pub(crate) restored: std::sync::Mutex<Vec<(String, String)>>,
}

impl Lifecycle<'_> {
    /// Detects, then builds, with `top` as the order to try.
    pub(crate) async fn run(
        &self,
        top: Vec<Buildpack>,
        catalog: &Catalog,
    ) -> Result<Output, BuildError> {
        let platform = self.platform()?;
        let top: Vec<Member> = top
            .into_iter()
            .map(|buildpack| Member {
                buildpack,
                optional: false,
            })
            .collect();
        let mut chosen = None;
        for group in groups(&top, catalog)? {
            if let Some(found) = self.detect(&group, &platform).await? {
                chosen = Some(found);
                break;
            }
        }
        let group = chosen.ok_or(BuildError::NoBuildpack)?;
        let names: Vec<String> = group.iter().map(|c| c.buildpack.name()).collect();
        (self.log)(&format!(
            "-----> Cloud Native Buildpacks: {}",
            names.join(", ")
        ));
        self.build(&group, &platform).await
    }

    /// Of `candidates`, builds with the first whose detect passes, alone: the built-in
    /// buildpacks, one per kind of app.
    pub(crate) async fn run_first(&self, candidates: Vec<Buildpack>) -> Result<Output, BuildError> {
        let platform = self.platform()?;
        for buildpack in candidates {
            let group = [Member {
                buildpack,
                optional: false,
            }];
            if let Some(chosen) = self.detect(&group, &platform).await? {
                (self.log)(&format!(
                    "-----> {} app detected",
                    chosen[0].buildpack.name()
                ));
                return self.build(&chosen, &platform).await;
            }
        }
        Err(BuildError::NoBuildpack)
    }

    /// The platform directory, its `env/` holding the config vars.
    fn platform(&self) -> Result<PathBuf, BuildError> {
        let env_dir = self.scratch.create_dir_all(Path::new("platform/env"))?;
        for (key, value) in self.job.config {
            env_dir.write(Path::new(key), value.as_bytes())?;
        }
        Ok(self.scratch.path().join("platform"))
    }

    fn env(&self, bp: &Buildpack, platform: &Path) -> BTreeMap<String, String> {
        let sandbox = &self.budget.sandbox;
        BTreeMap::from([
            ("PATH".to_owned(), system_path()),
            // A home of the build's own, outside the app: what tools keep there stays out
            // of the image.
            (
                "HOME".to_owned(),
                sandbox.inside_str(&self.scratch.path().join("home")),
            ),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            (
                "SOURCE_DATE_EPOCH".to_owned(),
                crate::SOURCE_DATE_EPOCH.to_string(),
            ),
            (
                "CNB_BUILDPACK_DIR".to_owned(),
                bp.dir.to_string_lossy().into_owned(),
            ),
            ("CNB_PLATFORM_DIR".to_owned(), sandbox.inside_str(platform)),
            ("CNB_TARGET_OS".to_owned(), "linux".to_owned()),
            ("CNB_TARGET_ARCH".to_owned(), "amd64".to_owned()),
            ("CNB_TARGET_DISTRO_NAME".to_owned(), "debian".to_owned()),
            (
                "CNB_STACK_ID".to_owned(),
                "io.slipway.stacks.debian".to_owned(),
            ),
        ])
    }

    /// Runs detect for a group; `Some` with the resolved group when it fits the app.
    async fn detect(
        &self,
        group: &[Member],
        platform: &Path,
    ) -> Result<Option<Vec<Chosen>>, BuildError> {
        let mut passed: Vec<(Member, Plan)> = Vec::new();
        for (index, member) in group.iter().enumerate() {
            let bp = &member.buildpack;
            let plan_name = format!("plan-{index}.toml");
            self.scratch.remove_all(Path::new(&plan_name))?;
            let plan_path = self.scratch.path().join(&plan_name);
            let mut env = self.env(bp, platform);
            env.insert(
                "CNB_BUILD_PLAN_PATH".to_owned(),
                self.budget.sandbox.inside_str(&plan_path),
            );
            let detect = bp.dir.join("bin").join("detect");
            let out = script::run(
                &detect,
                &[platform, &plan_path],
                self.job.source,
                &env,
                Stdout::Log,
                self.budget,
                self.log,
            )
            .await?;
            match out.code {
                Some(0) => {
                    let plan = match self.scratch.read(Path::new(&plan_name))? {
                        Some(text) => parse_toml::<Plan>(&text, || {
                            format!("{} wrote an invalid build plan", bp.id())
                        })?,
                        None => Plan::default(),
                    };
                    passed.push((member.clone(), plan));
                }
                Some(100) if member.optional => {}
                Some(100) => return Ok(None),
                code => {
                    return Err(BuildError::Buildpack(format!(
                        "{}'s bin/detect failed with exit status {}",
                        bp.id(),
                        code.map_or("killed".to_owned(), |c| c.to_string())
                    )));
                }
            }
        }
        Ok(resolve(passed))
    }

    async fn build(&self, group: &[Chosen], platform: &Path) -> Result<Output, BuildError> {
        let mut build_env: BTreeMap<String, String> = BTreeMap::new();
        let mut env_read = 0u64;
        let mut processes: BTreeMap<String, (String, bool)> = BTreeMap::new();
        let mut launch_layers = Vec::new();
        let mut keep = Vec::new();
        for (index, chosen) in group.iter().enumerate() {
            let bp = &chosen.buildpack;
            let layers_tree = self
                .scratch
                .create_dir_all(&Path::new("layers").join(bp.layers_name()))?;
            let layers = layers_tree.path().to_path_buf();
            self.restore_cache(&bp.layers_name(), &layers_tree)?;
            // The last build's launch layers, by their metadata: a buildpack that finds one
            // current keeps its `<layer>.toml` and makes no directory, and the layer is reused.
            for (name, record) in self.records.get(bp.id()).into_iter().flatten() {
                let toml = PathBuf::from(format!("{name}.toml"));
                if layers_tree.kind(&toml)?.is_none() {
                    layers_tree.write(&toml, record.toml.as_bytes())?;
                }
            }
            // The buildpack runs as the app's uid and writes its layers.
            self.budget.sandbox.hand_over(&layers)?;
            let plan_name = format!("bp-plan-{index}.toml");
            let plan_path = self.scratch.path().join(&plan_name);
            let plan = toml::to_string(&BTreeMap::from([("entries", &chosen.entries)]))
                .map_err(|e| BuildError::Buildpack(e.to_string()))?;
            self.scratch.write(Path::new(&plan_name), plan.as_bytes())?;
            let mut env = self.env(bp, platform);
            for (key, value) in &build_env {
                env.insert(key.clone(), value.clone());
            }
            let inside = |path: &Path| self.budget.sandbox.inside_str(path);
            env.insert("CNB_LAYERS_DIR".to_owned(), inside(&layers));
            env.insert("CNB_BP_PLAN_PATH".to_owned(), inside(&plan_path));
            let build = bp.dir.join("bin").join("build");
            let out = script::run(
                &build,
                &[&layers, platform, &plan_path],
                self.job.source,
                &env,
                Stdout::Log,
                self.budget,
                self.log,
            )
            .await?;
            if out.code != Some(0) {
                return Err(BuildError::Buildpack(format!(
                    "{}'s bin/build failed (exit status {}); its output above says why",
                    bp.id(),
                    out.code.map_or("killed".to_owned(), |c| c.to_string())
                )));
            }
            for layer in read_layers(&layers_tree)? {
                let at = format!("layers/{}/{}", bp.layers_name(), layer.name);
                let launch = |env: LayerEnv, content: Content| LaunchLayer {
                    id: format!("{}:{}", bp.id(), layer.name),
                    buildpack: bp.id().to_owned(),
                    name: layer.name.clone(),
                    at: at.clone(),
                    toml: layer.toml.clone(),
                    env,
                    content,
                };
                if !layer.present {
                    let reused = self
                        .records
                        .get(bp.id())
                        .and_then(|r| r.get(&layer.name))
                        .filter(|_| layer.launch)
                        .and_then(|r| Some((r.env.clone(), r.layer_ref()?)));
                    if let Some((env, made)) = reused {
                        launch_layers.push(launch(env, Content::Reused(made)));
                    }
                    continue;
                }
                // Opened when used, so a build of many layers holds few descriptors.
                let open = || {
                    layers_tree.dir(Path::new(&layer.name))?.ok_or_else(|| {
                        BuildError::NotADirectory(layers_tree.name(Path::new(&layer.name)))
                    })
                };
                if layer.build {
                    let dir = open()?;
                    let layer_env = read_layer_env(&dir, &["env", "env.build"], &mut env_read)?;
                    apply_layer_env(&mut build_env, &layer_env, &inside(dir.path()), &env);
                }
                if layer.cache {
                    keep.push((bp.layers_name(), layer.name.clone()));
                }
                if layer.launch {
                    let layer_env =
                        read_layer_env(&open()?, &["env", "env.launch"], &mut env_read)?;
                    let last = self
                        .records
                        .get(bp.id())
                        .and_then(|r| r.get(&layer.name))
                        .cloned();
                    launch_layers.push(launch(layer_env, Content::Dir(PathBuf::from(&at), last)));
                }
                if launch_layers.len() > MAX_LAUNCH_LAYERS {
                    return Err(BuildError::Buildpack(format!(
                        "the buildpacks made more than {MAX_LAUNCH_LAYERS} launch layers; merge some"
                    )));
                }
            }
            for (process_type, command, default) in read_launch(&layers_tree, bp)? {
                processes.insert(process_type, (command, default));
            }
        }
        // The image's environment: the launch layers' bin/ and env, as they will be at /layers.
        let mut env = BTreeMap::from([(
            "PATH".to_owned(),
            format!("{}/bin:/usr/local/bin:/usr/bin:/bin", crate::image::APP_DIR),
        )]);
        for layer in &launch_layers {
            let at = format!("/{}", layer.at);
            let mut layer_env: BTreeMap<String, String> = BTreeMap::new();
            apply_layer_env(&mut layer_env, &layer.env, &at, &env);
            // Without the sandbox, a buildpack wrote its layers' host paths.
            let host = self.scratch.path().join(&layer.at);
            for (key, value) in layer_env {
                env.insert(
                    key,
                    value.replace(&host.to_string_lossy().into_owned(), &at),
                );
            }
        }
        let processes: BTreeMap<String, String> =
            processes.into_iter().map(|(t, (c, _))| (t, c)).collect();
        Ok(Output {
            name: group
                .iter()
                .map(|c| c.buildpack.name())
                .collect::<Vec<_>>()
                .join(" + "),
            processes,
            launch_layers,
            env,
            keep,
        })
    }

    /// Moves the buildpack's cached layers (`cache/cnb/<buildpack>/`) into its layers
    /// directory. Both trees are the tenant's: links are moved as links, never followed.
    fn restore_cache(&self, buildpack: &str, layers: &Tree) -> Result<(), BuildError> {
        let Some(cached) = self.cache.dir(&Path::new("cnb").join(buildpack))? else {
            return Ok(());
        };
        for (name, _) in cached.entries()? {
            let name = Path::new(&name);
            cached.move_to(name, layers, name)?;
            if let Some(layer) = name.to_str().filter(|n| !n.ends_with(".toml")) {
                self.restored
                    .lock()
                    .expect("never poisoned")
                    .push((buildpack.to_owned(), layer.to_owned()));
            }
        }
        Ok(())
    }

    /// After a failed build: the cached layers it took, back to the cache as they are.
    pub(crate) fn put_back(&self) -> Result<(), BuildError> {
        let restored = std::mem::take(&mut *self.restored.lock().expect("never poisoned"));
        keep_caches(self.scratch, self.cache, &restored)
    }
}

/// Moves each (buildpack's layers name, layer) and its `<layer>.toml` from the build's
/// layers to the app's cache, for the next build, replacing what was cached.
pub(crate) fn keep_caches(
    scratch: &Tree,
    cache: &Tree,
    layers: &[(String, String)],
) -> Result<(), BuildError> {
    for (buildpack, name) in layers {
        let Some(from) = scratch.dir(&Path::new("layers").join(buildpack))? else {
            continue;
        };
        let to = cache.create_dir_all(&Path::new("cnb").join(buildpack))?;
        for entry in [name.clone(), format!("{name}.toml")] {
            let entry = Path::new(&entry);
            from.move_to(entry, &to, entry)?;
        }
    }
    Ok(())
}

/// The build plan: the first combination of alternatives (and of optional buildpacks) in
/// which every require is provided before or by its requirer and every provide is required
/// by its provider or later.
fn resolve(passed: Vec<(Member, Plan)>) -> Option<Vec<Chosen>> {
    if passed.is_empty() {
        return None;
    }
    let choices: Vec<Vec<Alternative>> = passed
        .iter()
        .map(|(_, plan)| {
            std::iter::once(plan.main.clone())
                .chain(plan.or.iter().cloned())
                .collect()
        })
        .collect();
    let mut pick = vec![0usize; passed.len()];
    loop {
        let trial: Vec<(&Member, &Alternative)> = passed
            .iter()
            .enumerate()
            .map(|(i, (member, _))| (member, &choices[i][pick[i]]))
            .collect();
        if let Some(chosen) = check(&trial) {
            return Some(chosen);
        }
        // Next combination, the last buildpack's alternatives varying fastest.
        let mut i = pick.len();
        loop {
            if i == 0 {
                return None;
            }
            i -= 1;
            pick[i] += 1;
            if pick[i] < choices[i].len() {
                break;
            }
            pick[i] = 0;
        }
    }
}

/// Checks one trial, dropping optional buildpacks that do not fit until it holds or fails.
fn check(trial: &[(&Member, &Alternative)]) -> Option<Vec<Chosen>> {
    let mut keep: Vec<bool> = vec![true; trial.len()];
    loop {
        let mut misfit = None;
        for (i, (_, alt)) in trial.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let requires_met = alt.requires.iter().all(|r| {
                trial[..=i]
                    .iter()
                    .enumerate()
                    .any(|(j, (_, a))| keep[j] && a.provides.iter().any(|p| p.name == r.name))
            });
            let provides_used = alt.provides.iter().all(|p| {
                trial[i..]
                    .iter()
                    .enumerate()
                    .any(|(j, (_, a))| keep[i + j] && a.requires.iter().any(|r| r.name == p.name))
            });
            if !(requires_met && provides_used) {
                misfit = Some(i);
                break;
            }
        }
        match misfit {
            None => break,
            Some(i) if trial[i].0.optional => keep[i] = false,
            Some(_) => return None,
        }
    }
    let kept: Vec<usize> = (0..trial.len()).filter(|&i| keep[i]).collect();
    if kept.is_empty() {
        return None;
    }
    Some(
        kept.iter()
            .map(|&i| {
                let (member, alt) = trial[i];
                let entries = alt
                    .provides
                    .iter()
                    .flat_map(|p| {
                        kept.iter().flat_map(move |&j| {
                            trial[j]
                                .1
                                .requires
                                .iter()
                                .filter(move |r| r.name == p.name)
                                .cloned()
                        })
                    })
                    .collect();
                Chosen {
                    buildpack: member.buildpack.clone(),
                    entries,
                }
            })
            .collect(),
    )
}

/// A layer a buildpack declared, with its `<layer>.toml` types.
struct LayerInfo {
    name: String,
    launch: bool,
    build: bool,
    cache: bool,
    /// Whether its directory is there (a launch layer without one asks to be reused).
    present: bool,
    toml: String,
}

#[derive(Debug, Default, Deserialize)]
struct LayerToml {
    #[serde(default)]
    types: LayerTypes,
}

#[derive(Debug, Default, Deserialize)]
struct LayerTypes {
    #[serde(default)]
    launch: bool,
    #[serde(default)]
    build: bool,
    #[serde(default)]
    cache: bool,
}

/// The most a `<layer>.toml` kept for the next build may be.
const MAX_LAYER_TOML: usize = 64 * 1024;

/// The layers a buildpack declared (`<layer>.toml` beside `<layer>/`). A declaration or a
/// layer directory that is a link is an error.
fn read_layers(layers: &Tree) -> Result<Vec<LayerInfo>, BuildError> {
    let mut found = Vec::new();
    for (file, _) in layers.entries()? {
        let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".toml")) else {
            continue;
        };
        if matches!(name, "launch" | "build" | "store") {
            continue;
        }
        let declaration = Path::new(&file);
        let Some(text) = layers.read(declaration)? else {
            continue;
        };
        if text.len() > MAX_LAYER_TOML {
            return Err(BuildError::TooLarge {
                name: layers.name(declaration),
                limit: MAX_LAYER_TOML as u64,
            });
        }
        let parsed: LayerToml =
            parse_toml(&text, || format!("invalid {}", layers.name(declaration)))?;
        let present = match layers.kind(Path::new(name))? {
            Some(Kind::Dir) => true,
            Some(Kind::Symlink) => return Err(BuildError::Link(layers.name(Path::new(name)))),
            _ => false,
        };
        found.push(LayerInfo {
            name: name.to_owned(),
            launch: parsed.types.launch,
            build: parsed.types.build,
            cache: parsed.types.cache,
            present,
            toml: text,
        });
    }
    Ok(found)
}

#[derive(Debug, Default, Deserialize)]
struct LaunchToml {
    #[serde(default)]
    processes: Vec<Process>,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(rename = "type")]
    process_type: String,
    command: toml::Value,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    direct: Option<bool>,
}

/// `launch.toml`'s processes as (type, shell command line, default).
fn read_launch(layers: &Tree, bp: &Buildpack) -> Result<Vec<(String, String, bool)>, BuildError> {
    let Some(text) = layers.read(Path::new("launch.toml"))? else {
        return Ok(Vec::new());
    };
    let launch: LaunchToml = parse_toml(&text, || {
        format!("{} wrote an invalid launch.toml", bp.id())
    })?;
    let mut out = Vec::new();
    for process in launch.processes {
        let words: Vec<String> = match (&process.command, bp.api_at_least(9)) {
            (toml::Value::Array(items), _) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            // Before API 0.9 a string command ran in a shell unless `direct`.
            (toml::Value::String(command), false) if process.direct != Some(true) => {
                let args: Vec<String> = process.args.iter().map(|a| shell_quote(a)).collect();
                out.push((
                    process.process_type,
                    [command.clone()]
                        .into_iter()
                        .chain(args)
                        .collect::<Vec<_>>()
                        .join(" "),
                    process.default,
                ));
                continue;
            }
            (toml::Value::String(command), _) => vec![command.clone()],
            _ => {
                return Err(BuildError::Buildpack(format!(
                    "{}: process {} has no command",
                    bp.id(),
                    process.process_type
                )));
            }
        };
        let line: Vec<String> = words
            .iter()
            .chain(&process.args)
            .map(|w| shell_quote(w))
            .collect();
        out.push((process.process_type, line.join(" "), process.default));
    }
    Ok(out)
}

/// What a layer sets in the environment: whether it has `bin/` and `lib/`, and the files
/// of its env directories `dirs` (`NAME`, `NAME.override`, `.default`, `.append`,
/// `.prepend`, `.delim`). An env file that is a link is an error; directories and devices
/// among them are skipped. `read` counts what all a build's layers make the platform read.
fn read_layer_env(layer: &Tree, dirs: &[&str], read: &mut u64) -> Result<LayerEnv, BuildError> {
    let mut found = LayerEnv {
        bin: layer.kind(Path::new("bin"))? == Some(Kind::Dir),
        lib: layer.kind(Path::new("lib"))? == Some(Kind::Dir),
        files: Vec::new(),
    };
    for dir in dirs {
        let Some(dir) = layer.dir(Path::new(dir))? else {
            continue;
        };
        for (file, kind) in dir.entries()? {
            if kind == Kind::Symlink {
                return Err(BuildError::Link(dir.name(Path::new(&file))));
            }
            if kind != Kind::File {
                continue;
            }
            let Some(name) = file.to_str() else {
                continue;
            };
            let value = dir.read(Path::new(&file))?.unwrap_or_default();
            // Each file is bounded; so is all a build's layers make the platform read.
            *read += value.len() as u64;
            if *read > MAX_ENV {
                return Err(BuildError::TooLarge {
                    name: "the environment the layers set".to_owned(),
                    limit: MAX_ENV,
                });
            }
            found.files.push((name.to_owned(), value));
        }
    }
    Ok(found)
}

/// Applies what a layer sets to `env`, the layer being at `at` where the env is used;
/// `base` is the environment below `env`.
fn apply_layer_env(
    env: &mut BTreeMap<String, String>,
    layer: &LayerEnv,
    at: &str,
    base: &BTreeMap<String, String>,
) {
    let get =
        |env: &BTreeMap<String, String>, key: &str| env.get(key).or_else(|| base.get(key)).cloned();
    if layer.bin {
        let path = get(env, "PATH").unwrap_or_default();
        env.insert("PATH".to_owned(), format!("{at}/bin:{path}"));
    }
    if layer.lib {
        for key in ["LD_LIBRARY_PATH", "LIBRARY_PATH"] {
            let old = get(env, key).map(|v| format!(":{v}")).unwrap_or_default();
            env.insert(key.to_owned(), format!("{at}/lib{old}"));
        }
    }
    let delim = |key: &str| {
        layer
            .files
            .iter()
            .rev()
            .find(|(name, _)| *name == format!("{key}.delim"))
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    for (name, value) in &layer.files {
        let (key, action) = name
            .rsplit_once('.')
            .map_or((name.as_str(), "override"), |(k, a)| (k, a));
        if action == "delim" {
            continue;
        }
        let old = get(env, key);
        let new = match (action, old) {
            ("prepend", Some(old)) => format!("{value}{}{old}", delim(key)),
            ("append", Some(old)) => format!("{old}{}{value}", delim(key)),
            ("default", Some(old)) => old,
            _ => value.clone(),
        };
        env.insert(key.to_owned(), new);
    }
}

/// Parses TOML a buildpack or the platform wrote; `what` names it in the one-line error.
fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, BuildError> {
    toml::from_str(text)
        .map_err(|e| BuildError::Buildpack(format!("{}: {}", what(), one_line(&e.to_string()))))
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,$".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
