//! Dockerfile builds: an app's Dockerfile run by the platform's own code, daemonlessly —
//! `FROM` a run image, an earlier stage or `scratch`; `RUN` in the build sandbox on the
//! stage's root file system; `COPY`/`ADD` from the pushed source (with `.dockerignore`) or an
//! earlier stage; the config instructions recorded in the image. Each RUN, COPY and ADD makes
//! one reproducible layer, and a RUN is cached by its inputs ([`exec`]). What is not
//! supported is refused with its line ([`parse`]).
//!
//! An app is built from its Dockerfile when it is on the container stack (the Dockerfile
//! `heroku.yml`'s `build.docker` names, else `Dockerfile`), or when no buildpack detects it
//! and it has a `Dockerfile` at its root; an app a buildpack detects keeps the buildpack, as
//! on Heroku.

mod exec;
mod expand;
mod ignore;
mod parse;
mod snapshot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::run_image::blocking;
use crate::tenant_fs::{Kind, Tree};
use crate::{BuildError, BuildJob, BuildOutput, Builder, Log, Timings, image, script};

/// The label that says how an image was built (`dockerfile`): rebase refuses these, whose
/// layers depend on their base.
pub(crate) const BUILD_LABEL: &str = "io.slipway.build";

/// The Dockerfile at the app's root.
const DOCKERFILE: &str = "Dockerfile";

/// The Dockerfile an app on the container stack is built from: the one `heroku.yml` names
/// under `build.docker` (one for every process type: one image per release), else
/// `Dockerfile`. Blocking.
pub(crate) fn for_container_stack(source: &Tree) -> Result<PathBuf, BuildError> {
    let named = match source.read(Path::new("heroku.yml"))? {
        Some(text) => from_heroku_yml(&text)?,
        None => None,
    };
    let path = named.unwrap_or_else(|| PathBuf::from(DOCKERFILE));
    if source.kind(&path)? != Some(Kind::File) {
        return Err(BuildError::Buildpack(format!(
            "the app is on the container stack but has no {}: add it, or go back to buildpacks with `slip stack:set buildpacks`",
            path.display()
        )));
    }
    Ok(path)
}

/// The root `Dockerfile`, if the app has one: the build when no buildpack detects the app.
pub(crate) fn at_root(source: &Tree) -> Result<Option<PathBuf>, BuildError> {
    Ok(
        (source.kind(Path::new(DOCKERFILE))? == Some(Kind::File))
            .then(|| PathBuf::from(DOCKERFILE)),
    )
}

/// `build.docker`'s Dockerfile in `heroku.yml`, if it names one.
fn from_heroku_yml(text: &str) -> Result<Option<PathBuf>, BuildError> {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| {
        BuildError::Buildpack(format!("heroku.yml is not valid YAML ({e}); fix it"))
    })?;
    let Some(docker) = docs
        .first()
        .map(|doc| &doc["build"]["docker"])
        .and_then(yaml_rust2::Yaml::as_hash)
    else {
        return Ok(None);
    };
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for (process, path) in docker {
        let (Some(process), Some(path)) = (process.as_str(), path.as_str()) else {
            return Err(BuildError::Buildpack(
                "heroku.yml build.docker maps process types to Dockerfiles, such as `web: Dockerfile`; fix it".to_owned(),
            ));
        };
        named.insert(process.to_owned(), path.to_owned());
    }
    let mut paths: Vec<&String> = named.values().collect();
    paths.dedup();
    if paths.len() > 1 {
        let list: Vec<String> = named.iter().map(|(p, f)| format!("{p}: {f}")).collect();
        return Err(BuildError::Buildpack(format!(
            "one Dockerfile per app: heroku.yml names several ({}); build every process type from one Dockerfile",
            list.join(", ")
        )));
    }
    let Some(path) = named.get("web").or_else(|| named.values().next()) else {
        return Ok(None);
    };
    match exec_path(path) {
        Some(path) => Ok(Some(path)),
        None => Err(BuildError::Buildpack(format!(
            "heroku.yml names the Dockerfile {path:?}, which is outside the app; name a file in it"
        ))),
    }
}

/// A path inside the app, or `None` if it climbs out.
fn exec_path(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            std::path::Component::Normal(name) => out.push(name),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Builds `job` from the Dockerfile at `path` in its source, `work_in` a directory of the
/// platform's for the build's file systems.
pub(crate) async fn build(
    builder: &Builder,
    job: &BuildJob<'_>,
    path: &Path,
    work_in: &Path,
    budget: &script::Budget,
    log: Log<'_>,
) -> Result<BuildOutput, BuildError> {
    let started = Instant::now();
    log(&format!(
        "-----> Building the image from {}",
        path.display()
    ));
    let (source_dir, read, parent) = (
        job.source.to_path_buf(),
        path.to_path_buf(),
        work_in.to_path_buf(),
    );
    let (file, ignore, work) = blocking(move || {
        let source = Tree::open(&source_dir, "")?;
        let text = source.read(&read)?.unwrap_or_default();
        let file = parse::parse(&text).map_err(BuildError::Buildpack)?;
        let ignore = source
            .read(Path::new(".dockerignore"))?
            .map(|t| ignore::Ignore::parse(&t))
            .unwrap_or_default();
        let work = tempfile::Builder::new()
            .prefix("dockerfile-")
            .tempdir_in(&parent)?;
        Ok((file, ignore, crate::RemovedOffThread::new(work)))
    })
    .await?;
    let cache = builder.config.data_dir.join("cache").join(job.app);
    let executor = exec::Executor {
        registry: builder.registry.as_ref(),
        images: Arc::clone(&builder.images),
        isolation: Arc::clone(&builder.isolation),
        app: job.app.to_owned(),
        budget,
        source: job.source.to_path_buf(),
        ignore,
        work: work.path().to_path_buf(),
        cache,
        log,
    };
    let built = executor.run(&file).await?;
    drop(work);

    // The web process is the image's ENTRYPOINT and CMD, run where its WORKDIR is; a
    // Procfile's process types join it (and its `web`, if it has one, wins).
    let mut defaults = BTreeMap::new();
    if let Some(web) = web_command(&built.config) {
        defaults.insert("web".to_owned(), web);
    }
    let source = Tree::open(job.source, "")?;
    let procfile = crate::process_types(&source, &defaults)?;
    let types: Vec<String> = procfile.process_types().map(ToString::to_string).collect();
    log(&format!("-----> Process types: {}", types.join(", ")));

    let processes: BTreeMap<String, String> = procfile
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_owned()))
        .collect();
    let config = built.config;
    let mut labels = config.labels.clone();
    labels.extend([
        (
            image::PROCESSES_LABEL.to_owned(),
            serde_json::to_string(&processes).expect("strings serialise"),
        ),
        (BUILD_LABEL.to_owned(), "dockerfile".to_owned()),
        (
            "org.opencontainers.image.revision".to_owned(),
            job.commit.to_owned(),
        ),
    ]);
    let spec = image::ImageSpec {
        env: config.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: Some(config.workdir.clone()),
        labels,
        user: config.user.clone(),
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        exposed_ports: config.exposed.iter().cloned().collect(),
    };
    let (image, pushed_bytes) = publish(builder, job, built.layers, built.base, spec, log).await?;
    Ok(BuildOutput {
        procfile,
        buildpack: "Dockerfile".to_owned(),
        image: Some(image),
        pushed_bytes,
        timings: Timings {
            total: started.elapsed(),
            in_buildpacks: Duration::from_micros(
                budget.in_scripts.load(std::sync::atomic::Ordering::Relaxed),
            ),
        },
        test: None,
    })
}

/// ENTRYPOINT then CMD as one shell command line, in WORKDIR.
fn web_command(config: &exec::Config) -> Option<String> {
    let words: Vec<&String> = config
        .entrypoint
        .iter()
        .flatten()
        .chain(config.cmd.iter().flatten())
        .collect();
    if words.is_empty() {
        return None;
    }
    let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    Some(if config.workdir == image::APP_DIR {
        format!("exec {line}")
    } else {
        format!("cd {} && exec {line}", quote(&config.workdir))
    })
}

/// A word as `sh` reads it back: bare when it is plain, else single-quoted.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Writes the image `<app>:<commit>` and, with a registry, pushes it there (its run image
/// first, to the run-image repository, so its layers are mounted, not sent). Returns the
/// image's reference and the bytes the push sent.
async fn publish(
    builder: &Builder,
    job: &BuildJob<'_>,
    layers: Vec<oci::LayerRef>,
    base: Option<exec::Base>,
    spec: image::ImageSpec,
    log: Log<'_>,
) -> Result<(String, Option<u64>), BuildError> {
    log("-----> Exporting the image");
    let images = Arc::clone(&builder.images);
    let name = format!("{}:{}", job.app, job.commit);
    let run_image_name = match &base {
        Some(exec::Base::RunImage(name)) => Some(name.clone()),
        _ => None,
    };
    let (stored, run_image_digest) = blocking(move || {
        let layers: Vec<oci::LayerSource> =
            layers.into_iter().map(oci::LayerSource::Stored).collect();
        let stored = images.write_image_on(&name, &[], &layers, &spec)?;
        let run_image = match &run_image_name {
            Some(name) => images
                .find(&crate::run_image::reference(name))?
                .map(|found| found.digest),
            None => None,
        };
        Ok((stored, run_image))
    })
    .await?;
    log(&format!(
        "       {} ({} layers, {})",
        stored.digest,
        stored.layers.len(),
        oci::human_size(stored.size)
    ));
    let mounted = match (base, run_image_digest) {
        (Some(exec::Base::Pulled(reference)), _) => crate::Mounted::Pulled(reference),
        (Some(exec::Base::RunImage(name)), Some(digest)) => crate::Mounted::RunImage(name, digest),
        _ => crate::Mounted::Nothing,
    };
    builder.push(job, &stored.digest, mounted, log).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heroku_yml_names_one_dockerfile() {
        assert_eq!(
            from_heroku_yml("build:\n  docker:\n    web: docker/Dockerfile.web\n").unwrap(),
            Some(PathBuf::from("docker/Dockerfile.web"))
        );
        assert_eq!(
            from_heroku_yml("build:\n  docker:\n    web: D\n    worker: D\n").unwrap(),
            Some(PathBuf::from("D"))
        );
        assert_eq!(from_heroku_yml("run:\n  web: x\n").unwrap(), None);
        let error = from_heroku_yml("build:\n  docker:\n    web: A\n    worker: B\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "one Dockerfile per app: heroku.yml names several (web: A, worker: B)"
            ),
            "{error}"
        );
        assert!(from_heroku_yml("build:\n  docker:\n    web: ../../etc/passwd\n").is_err());
    }

    #[test]
    fn the_web_command_is_entrypoint_then_cmd_in_workdir() {
        let config = exec::Config {
            workdir: "/app".into(),
            entrypoint: Some(vec!["/app/server".into()]),
            cmd: Some(vec!["--name".into(), "it's".into()]),
            ..exec::Config::default()
        };
        assert_eq!(
            web_command(&config).unwrap(),
            r"cd /app && exec /app/server --name 'it'\''s'"
        );
        let shell = exec::Config {
            workdir: image::APP_DIR.into(),
            cmd: Some(exec::argv(&parse::Command::Shell("httpd -p $PORT".into()))),
            ..exec::Config::default()
        };
        assert_eq!(
            web_command(&shell).unwrap(),
            "exec /bin/sh -c 'httpd -p $PORT'"
        );
        assert_eq!(web_command(&exec::Config::default()), None);
    }
}
