//! The Heroku buildpack API: `bin/detect BUILD_DIR`, `bin/compile BUILD_DIR CACHE_DIR
//! ENV_DIR`, `bin/release BUILD_DIR` (whose YAML names `default_process_types`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::script::{self, Budget, Stdout};
use crate::tenant_fs::Tree;
use crate::{BuildError, BuildJob, Log, system_path};

/// One buildpack applied to one job.
pub(crate) struct Run<'a> {
    pub(crate) buildpack: &'a Path,
    pub(crate) job: &'a BuildJob<'a>,
    pub(crate) cache: &'a Path,
    /// Where ENV_DIR is written (a build can write there too: written through its handle).
    pub(crate) scratch: &'a Tree,
    pub(crate) budget: &'a Budget,
    pub(crate) log: Log<'a>,
}

impl Run<'_> {
    /// The environment every script gets: nothing of the server's own.
    fn env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("PATH".to_owned(), system_path()),
            (
                "HOME".to_owned(),
                self.budget.sandbox.inside_str(self.job.source),
            ),
            ("STACK".to_owned(), "slipway-1".to_owned()),
            ("SOURCE_VERSION".to_owned(), self.job.commit.to_owned()),
            // reproducible-builds.org's clock for tools that stamp their output (Python
            // compiles `.pyc` by content hash instead of mtime with it): a build's time must
            // not make its image differ.
            (
                "SOURCE_DATE_EPOCH".to_owned(),
                crate::SOURCE_DATE_EPOCH.to_string(),
            ),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ])
    }

    /// `Some(name)` when the buildpack takes the app.
    pub(crate) async fn detect(&self) -> Result<Option<String>, BuildError> {
        let detect = self.buildpack.join("bin").join("detect");
        if !tokio::fs::try_exists(&detect).await.unwrap_or(false) {
            return Ok(Some(crate::display_name(self.buildpack)));
        }
        let out = script::run(
            &detect,
            &[self.job.source],
            self.job.source,
            &self.env(),
            Stdout::Capture,
            self.budget,
            self.log,
        )
        .await?;
        if out.code != Some(0) {
            return Ok(None);
        }
        let name = out.stdout.lines().next().unwrap_or("").trim().to_owned();
        Ok(Some(if name.is_empty() {
            crate::display_name(self.buildpack)
        } else {
            name
        }))
    }

    pub(crate) async fn compile(&self) -> Result<(), BuildError> {
        let env_dir = self.scratch.create_dir_all(Path::new("env"))?;
        for (key, value) in self.job.config {
            env_dir.write(Path::new(key), value.as_bytes())?;
        }
        let compile = self.buildpack.join("bin").join("compile");
        let out = script::run(
            &compile,
            &[self.job.source, self.cache, env_dir.path()],
            self.job.source,
            &self.env(),
            Stdout::Log,
            self.budget,
            self.log,
        )
        .await?;
        match out.code {
            Some(0) => Ok(()),
            code => Err(BuildError::Buildpack(format!(
                "the buildpack's bin/compile failed (exit status {}); its output above says why",
                code.map_or("killed".to_owned(), |c| c.to_string())
            ))),
        }
    }

    /// The buildpack's `default_process_types`, if it has `bin/release`.
    pub(crate) async fn release(&self) -> Result<BTreeMap<String, String>, BuildError> {
        let release = self.buildpack.join("bin").join("release");
        if !tokio::fs::try_exists(&release).await.unwrap_or(false) {
            return Ok(BTreeMap::new());
        }
        let out = script::run(
            &release,
            &[self.job.source],
            self.job.source,
            &self.env(),
            Stdout::Capture,
            self.budget,
            self.log,
        )
        .await?;
        if out.code != Some(0) {
            return Err(BuildError::Buildpack(
                "the buildpack's bin/release failed".to_owned(),
            ));
        }
        default_process_types(&out.stdout)
    }
}

/// Reads `default_process_types` from `bin/release`'s YAML.
pub(crate) fn default_process_types(yaml: &str) -> Result<BTreeMap<String, String>, BuildError> {
    let docs = yaml_rust2::YamlLoader::load_from_str(yaml).map_err(|e| {
        BuildError::Buildpack(format!(
            "the buildpack's bin/release printed invalid YAML: {e}"
        ))
    })?;
    let mut types = BTreeMap::new();
    let Some(doc) = docs.first() else {
        return Ok(types);
    };
    if let Some(map) = doc["default_process_types"].as_hash() {
        for (key, value) in map {
            if let (Some(key), Some(value)) = (key.as_str(), value.as_str()) {
                types.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_yaml() {
        let yaml = "---\naddons: []\ndefault_process_types:\n  web: bundle exec rackup -p $PORT\n  worker: rake jobs\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(
            types.get("web").map(String::as_str),
            Some("bundle exec rackup -p $PORT")
        );
        assert_eq!(types.len(), 2);
        assert!(default_process_types("--- {}\n").unwrap().is_empty());
        assert!(default_process_types("").unwrap().is_empty());
        assert!(default_process_types("a: [").is_err());
    }
}
