//! `project.toml`, the project descriptor of Cloud Native Buildpacks (schema 0.1's `[build]`
//! and 0.2's `[io.buildpacks]`): which buildpacks build the app, files to leave out of the
//! build, and environment for the build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BuildError;
use crate::tenant_fs::{Kind, Tree};

/// What an app's `project.toml` asks of the build.
#[derive(Debug, Default)]
pub(crate) struct Project {
    pub(crate) buildpacks: Vec<Uri>,
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

/// Where a buildpack `uri` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Uri {
    /// A directory of the app (`uri = "./buildpacks/x"`): plain components, no `..`.
    App(PathBuf),
    /// An absolute path: on the server, allowed only under the operator's buildpacks directory.
    Server(String),
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
    /// Reads `app/project.toml` (a link there is an error); an app without one gets the default.
    pub(crate) fn load(app: &Tree) -> Result<Project, BuildError> {
        let Some(text) = app.read(Path::new("project.toml"))? else {
            return Ok(Project::default());
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
                    (Some(uri), _) => project.buildpacks.push(parse_uri(uri)?),
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

    /// Deletes the excluded files from the source before the build (links themselves, never
    /// what they point to).
    pub(crate) fn apply_exclude(&self, app: &Tree) -> Result<(), BuildError> {
        if self.exclude.is_empty() {
            return Ok(());
        }
        let mut paths = Vec::new();
        walk(app, Path::new(""), &mut paths)?;
        for relative in paths {
            let text = relative.to_string_lossy();
            if self.exclude.iter().any(|pattern| matches(pattern, &text)) {
                app.remove_all(&relative)?;
            }
        }
        Ok(())
    }
}

/// A `uri`: relative (`./bp`, `bp`, `file://bp`) inside the app, or an absolute path.
fn parse_uri(uri: &str) -> Result<Uri, BuildError> {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if path.contains("://") {
        return Err(BuildError::Buildpack(format!(
            "project.toml buildpack uri {uri:?}: only paths inside the app are supported here"
        )));
    }
    if path.starts_with('/') {
        return Ok(Uri::Server(path.to_owned()));
    }
    let mut relative = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            std::path::Component::Normal(part) => relative.push(part),
            std::path::Component::CurDir => {}
            _ => {
                return Err(BuildError::Buildpack(format!(
                    "project.toml buildpack uri {uri:?} points outside the app: name a directory inside it"
                )));
            }
        }
    }
    Ok(Uri::App(relative))
}

/// Every path under `relative`, deepest first, without entering links.
fn walk(root: &Tree, relative: &Path, out: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let Some(dir) = root.dir(relative)? else {
        return Ok(());
    };
    for (name, kind) in dir.entries()? {
        let path = relative.join(name);
        if kind == Kind::Dir {
            walk(root, &path, out)?;
        }
        out.push(path);
    }
    Ok(())
}

/// Gitignore-style matching, enough for exclude lists: `*` within a path segment, `**` across
/// segments, a leading `/` anchors to the root, and a pattern without `/` matches a name at
/// any depth. A match on a directory takes what is under it too.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
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
