//! `.dockerignore`: which files of the app a `COPY` or `ADD` leaves out. Patterns are
//! anchored at the app's root (a leading `/` changes nothing), with `*` within a name and
//! `**` for any depth, matched as `project.toml`'s `exclude`; a pattern starting with `!`
//! takes back what earlier ones left out, and the last pattern that matches decides.

use crate::project::matches;

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ignore(Vec<(bool, String)>);

impl Ignore {
    pub(crate) fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keep, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
            if !pattern.is_empty() {
                patterns.push((keep, format!("/{pattern}")));
            }
        }
        Ignore(patterns)
    }

    /// Whether `path` (relative to the app's root, `/`-separated) is left out.
    pub(crate) fn ignores(&self, path: &str) -> bool {
        let mut ignored = false;
        for (keep, pattern) in &self.0 {
            if matches(pattern, path) {
                ignored = !keep;
            }
        }
        ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_matching_pattern_decides() {
        let ignore =
            Ignore::parse("# comment\n*.log\nnode_modules\n!keep.log\n/secrets/\ndocs/**/*.md\n");
        let cases = [
            ("debug.log", true),
            ("keep.log", false),
            ("node_modules/x/index.js", true),
            ("web/node_modules", false),
            ("secrets/key", true),
            ("docs/a/b/c.md", true),
            ("main.go", false),
            ("sub/debug.log", false),
        ];
        for (path, expected) in cases {
            assert_eq!(ignore.ignores(path), expected, "{path}");
        }
    }
}
