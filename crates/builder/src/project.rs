//! `project.toml`, the project descriptor of Cloud Native Buildpacks (schema 0.1's `[build]`
//! and 0.2's `[io.buildpacks]`): which buildpacks build the app, files to leave out of the
//! build, and environment for the build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BuildError;

/// What an app's `project.toml` asks of the build.
#[derive(Debug, Default)]
pub(crate) struct Project {
    /// Buildpack directories, resolved against the app (`uri = "./buildpacks/x"`).
    pub(crate) buildpacks: Vec<PathBuf>,
    pub(crate) exclude: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    build: Build,
    #[serde(default)]
    io: Io,
}

#[derive(Debug, Default, Deserialize)]
struct Io {
    #[serde(default)]
    buildpacks: Build,
}

#[derive(Debug, Default, Deserialize)]
struct Build {
    #[serde(default)]
    buildpacks: Vec<Entry>,
    /// Schema 0.2 calls the list `group`.
    #[serde(default)]
    group: Vec<Entry>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    env: Vec<Env>,
    /// Schema 0.2 nests env under `[[io.buildpacks.build.env]]`.
    #[serde(default)]
    build: Option<Box<Build>>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    uri: Option<String>,
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Env {
    name: String,
    value: String,
}

impl Project {
    /// Reads `app/project.toml`; an app without one gets the default.
    pub(crate) fn load(app: &Path) -> Result<Project, BuildError> {
        let text = match std::fs::read_to_string(app.join("project.toml")) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Project::default()),
            Err(err) => return Err(err.into()),
        };
        let file: File = toml::from_str(&text).map_err(|e| {
            BuildError::Buildpack(format!(
                "invalid project.toml: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })?;
        let mut project = Project::default();
        for build in [&file.build, &file.io.buildpacks] {
            for entry in build.buildpacks.iter().chain(&build.group) {
                match (&entry.uri, &entry.id) {
                    (Some(uri), _) => project.buildpacks.push(resolve(app, uri)?),
                    (None, Some(id)) => {
                        return Err(BuildError::Buildpack(format!(
                            "project.toml names buildpack {id} by id; give its uri, a path inside the app"
                        )));
                    }
                    (None, None) => {
                        return Err(BuildError::Buildpack(
                            "project.toml lists a buildpack with no uri".to_owned(),
                        ));
                    }
                }
            }
            project.exclude.extend(build.exclude.iter().cloned());
            let nested = build
                .build
                .as_deref()
                .map(|b| b.env.as_slice())
                .unwrap_or_default();
            for env in build.env.iter().chain(nested) {
                project.env.insert(env.name.clone(), env.value.clone());
            }
        }
        Ok(project)
    }

    /// Deletes the excluded files from the source before the build.
    pub(crate) fn apply_exclude(&self, app: &Path) -> std::io::Result<()> {
        if self.exclude.is_empty() {
            return Ok(());
        }
        let mut paths = Vec::new();
        walk(app, Path::new(""), &mut paths)?;
        for relative in paths {
            let text = relative.to_string_lossy();
            if self.exclude.iter().any(|pattern| matches(pattern, &text)) {
                let full = app.join(&relative);
                if full.is_dir() {
                    let _ = std::fs::remove_dir_all(&full);
                } else {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        Ok(())
    }
}

/// A `uri` inside the app: relative (`./bp`, `bp`) or `file://` paths only.
fn resolve(app: &Path, uri: &str) -> Result<PathBuf, BuildError> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if path.contains("://") {
        return Err(BuildError::Buildpack(format!(
            "project.toml buildpack uri {uri:?}: only paths inside the app are supported here"
        )));
    }
    let resolved = app.join(path);
    let canonical = resolved.canonicalize().map_err(|_| {
        BuildError::Buildpack(format!("project.toml buildpack uri {uri:?} does not exist"))
    })?;
    let root = app.canonicalize()?;
    if !canonical.starts_with(&root) {
        return Err(BuildError::Buildpack(format!(
            "project.toml buildpack uri {uri:?} points outside the app"
        )));
    }
    Ok(canonical)
}

fn walk(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        }
        out.push(path);
    }
    Ok(())
}

/// Gitignore-style matching, enough for exclude lists: `*` within a path segment, `**` across
/// segments, a leading `/` anchors to the root, and a pattern without `/` matches a name at
/// any depth. A match on a directory takes what is under it too.
fn matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    let (anchored, pattern) = match pattern.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (pattern.contains('/'), pattern),
    };
    let segments: Vec<&str> = path.split('/').collect();
    let pattern: Vec<&str> = pattern.split('/').collect();
    if anchored {
        glob_segments(&pattern, &segments)
    } else {
        (0..segments.len()).any(|start| glob_segments(&pattern, &segments[start..]))
    }
}

/// Whether `pattern` matches a prefix of `path` (so a directory's contents match too).
fn glob_segments(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, _) => true,
        (Some(&"**"), _) => {
            (0..=path.len()).any(|skip| glob_segments(&pattern[1..], &path[skip..]))
        }
        (Some(_), None) => false,
        (Some(p), Some(s)) => glob(p, s) && glob_segments(&pattern[1..], &path[1..]),
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .any(|i| text.is_char_boundary(i) && glob(tail, &text[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exclude_patterns() {
        let cases = [
            ("*.log", "debug.log", true),
            ("*.log", "logs/today.log", true),
            ("/secrets", "secrets/key", true),
            ("/secrets", "app/secrets", false),
            ("node_modules", "web/node_modules/x/index.js", true),
            ("docs/**/*.md", "docs/a/b/c.md", true),
            ("docs/*.md", "docs/a/b.md", false),
            ("tmp/", "tmp/file", true),
            ("README", "README.md", false),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(matches(pattern, path), expected, "{pattern} ~ {path}");
        }
    }
}
