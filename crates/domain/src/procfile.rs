//! The Procfile: process types and their commands.

use std::fmt;

use crate::Error;

/// A process type's name, such as `web` or `worker`: a DNS label of at most 63 characters,
/// because it names a Kubernetes Deployment (`<app>-<type>`) and a process (`web.1`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ProcessType(String);

impl ProcessType {
    pub const WEB: &str = "web";
    pub const RELEASE: &str = "release";
    pub const TEST: &str = "test";

    pub fn parse(name: &str) -> Result<ProcessType, Error> {
        let bytes = name.as_bytes();
        let valid = (1..=63).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !valid {
            return Err(Error::ProcessType(name.to_owned()));
        }
        Ok(ProcessType(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `release` runs once per release instead of being scaled.
    pub fn is_release(&self) -> bool {
        self.0 == Self::RELEASE
    }

    /// `release` and `test` run as one-offs (once per release, once per test run), never as
    /// processes of the formation, so they cannot be scaled or given settings.
    pub fn is_one_off(&self) -> bool {
        self.is_release() || self.0 == Self::TEST
    }

    /// When a one-off type runs, for refusals: "once per release" or "only in test runs".
    pub(crate) fn one_off_when(&self) -> &'static str {
        if self.is_release() {
            "once per release"
        } else {
            "only in test runs"
        }
    }
}

impl TryFrom<String> for ProcessType {
    type Error = Error;

    fn try_from(name: String) -> Result<ProcessType, Error> {
        ProcessType::parse(&name)
    }
}

impl From<ProcessType> for String {
    fn from(name: ProcessType) -> String {
        name.0
    }
}

impl fmt::Display for ProcessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most process types an app may declare: each is supervised (locally) or becomes a
/// Deployment (on Kubernetes), so a Procfile cannot make the platform run without bound.
pub const MAX_PROCESS_TYPES: usize = 20;

/// The longest command a process type may have, in bytes.
pub const MAX_COMMAND: usize = 4096;

/// A parsed Procfile: `type: command` lines in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procfile {
    entries: Vec<(ProcessType, String)>,
}

impl Procfile {
    /// Parses a Procfile. Blank lines and `#` comments are skipped; a type given twice,
    /// a line without `:`, an empty or overlong command, and more than
    /// [`MAX_PROCESS_TYPES`] types are refused with the line number.
    pub fn parse(text: &str) -> Result<Procfile, Error> {
        let mut entries: Vec<(ProcessType, String)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let refuse = |reason: String| Error::Procfile { line, reason };
            let Some((name, command)) = trimmed.split_once(':') else {
                return Err(refuse("expected `type: command`".to_owned()));
            };
            let name = ProcessType::parse(name.trim()).map_err(|err| refuse(err.to_string()))?;
            let command = command.trim();
            if command.is_empty() {
                return Err(refuse(format!("process type {name} has no command")));
            }
            if command.len() > MAX_COMMAND {
                return Err(refuse(format!(
                    "the command of {name} is longer than {MAX_COMMAND} bytes"
                )));
            }
            if entries.iter().any(|(existing, _)| *existing == name) {
                return Err(refuse(format!("process type {name} is defined twice")));
            }
            if entries.len() == MAX_PROCESS_TYPES {
                return Err(refuse(format!(
                    "more than {MAX_PROCESS_TYPES} process types; run related work in one"
                )));
            }
            entries.push((name, command.to_owned()));
        }
        Ok(Procfile { entries })
    }

    /// Builds a Procfile from types and commands, as a buildpack declares them.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Procfile, Error> {
        let text: String = entries
            .into_iter()
            .map(|(t, c)| format!("{t}: {c}\n"))
            .collect();
        Procfile::parse(&text)
    }

    pub fn command(&self, process: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(name, _)| name.as_str() == process)
            .map(|(_, c)| c.as_str())
    }

    pub fn process_types(&self) -> impl Iterator<Item = &ProcessType> {
        self.entries.iter().map(|(name, _)| name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ProcessType, &str)> {
        self.entries
            .iter()
            .map(|(name, command)| (name, command.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for Procfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, command) in &self.entries {
            writeln!(f, "{name}: {command}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::test_util::show;

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&show(Procfile::parse(input)));
    }

    #[test]
    fn parses_types_comments_and_blank_lines() {
        check(
            "# the app\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\n\n  worker:python worker.py  \nrelease: ./migrate\n",
            expect![[r#"
                web: gunicorn app:app --bind 0.0.0.0:$PORT
                worker: python worker.py
                release: ./migrate
            "#]],
        );
        check("", expect![""]);
        check("# nothing\n\n", expect![""]);
        check(
            "web: a\r\nclock: b\r\n",
            expect![[r#"
            web: a
            clock: b
        "#]],
        );
    }

    #[test]
    fn refuses_bad_lines() {
        check(
            "web: a\nweb: b\n",
            expect!["error: invalid Procfile line 2: process type web is defined twice"],
        );
        check(
            "web a\n",
            expect!["error: invalid Procfile line 1: expected `type: command`"],
        );
        check(
            "web:\n",
            expect!["error: invalid Procfile line 1: process type web has no command"],
        );
        let many: String = (1..=21).map(|n| format!("w{n}: run\n")).collect();
        check(
            &many,
            expect![
                "error: invalid Procfile line 21: more than 20 process types; run related work in one"
            ],
        );
        check(
            &format!("web: {}\n", "x".repeat(4097)),
            expect!["error: invalid Procfile line 1: the command of web is longer than 4096 bytes"],
        );
        check(
            "\nWeb_Server: x\n",
            expect![[
                r#"error: invalid Procfile line 2: invalid process type "Web_Server": use 1-63 lowercase letters, digits and dashes, starting with a letter"#
            ]],
        );
    }
}
