//! The formation: how many processes of each type an app runs. It lives on the app, not on
//! a release, so scaling makes no release and a rollback keeps the current scale.

use std::collections::BTreeMap;

use crate::{Error, ProcessType};

/// The most processes of one type a single scale request may ask for.
pub const MAX_PROCESSES_PER_TYPE: u32 = 100;

/// Process type → count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formation(BTreeMap<ProcessType, u32>);

impl Formation {
    /// Parses `web=2 worker=1` style arguments into requested counts.
    pub fn parse_scale<'a>(
        args: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(ProcessType, u32)>, Error> {
        let mut out: Vec<(ProcessType, u32)> = Vec::new();
        for arg in args {
            let (name, count) = arg
                .split_once('=')
                .ok_or_else(|| Error::ScaleSyntax(arg.to_owned()))?;
            let count: u32 = count
                .parse()
                .map_err(|_| Error::ScaleSyntax(arg.to_owned()))?;
            let name = ProcessType::parse(name)?;
            if out.iter().any(|(existing, _)| *existing == name) {
                return Err(Error::Duplicate(name.to_string()));
            }
            out.push((name, count));
        }
        if out.is_empty() {
            return Err(Error::ScaleSyntax(String::new()));
        }
        Ok(out)
    }

    pub fn from_counts(counts: impl IntoIterator<Item = (ProcessType, u32)>) -> Formation {
        Formation(counts.into_iter().collect())
    }

    /// The formation after a scale request.
    ///
    /// `known` is the process types of the app's current build, when it has one: a type the
    /// build does not declare is refused (as on Heroku and Deis). Before the first build any
    /// well-formed type may be scaled, so a formation can be prepared before the first push.
    pub fn scale(
        &self,
        changes: &[(ProcessType, u32)],
        known: Option<&[ProcessType]>,
    ) -> Result<Formation, Error> {
        let mut next = self.0.clone();
        for (process, count) in changes {
            if process.is_one_off() {
                return Err(Error::ScaleOneOff {
                    process: process.to_string(),
                    when: process.one_off_when(),
                });
            }
            if *count > MAX_PROCESSES_PER_TYPE {
                return Err(Error::ScaleTooLarge {
                    process: process.to_string(),
                    count: *count,
                    max: MAX_PROCESSES_PER_TYPE,
                });
            }
            if let Some(known) = known
                && !known.contains(process)
            {
                return Err(unknown_type(process, known));
            }
            next.insert(process.clone(), *count);
        }
        Ok(Formation(next))
    }

    pub fn count(&self, process: &str) -> u32 {
        self.0
            .iter()
            .find(|(t, _)| t.as_str() == process)
            .map_or(0, |(_, n)| *n)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ProcessType, u32)> {
        self.0.iter().map(|(t, n)| (t, *n))
    }
}

/// The refusal of a type the app's current build does not declare, naming those it does.
pub(crate) fn unknown_type(process: &ProcessType, known: &[ProcessType]) -> Error {
    let names: Vec<&str> = known
        .iter()
        .filter(|t| !t.is_one_off())
        .map(ProcessType::as_str)
        .collect();
    Error::UnknownProcessType {
        process: process.to_string(),
        known: if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        },
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(start: &[(&str, u32)], args: &[&str], known: Option<&[&str]>, expect: Expect) {
        let start = Formation::from_counts(
            start
                .iter()
                .map(|(t, n)| (ProcessType::parse(t).unwrap(), *n)),
        );
        let known: Option<Vec<ProcessType>> =
            known.map(|k| k.iter().map(|t| ProcessType::parse(t).unwrap()).collect());
        let result = Formation::parse_scale(args.iter().copied())
            .and_then(|changes| start.scale(&changes, known.as_deref()));
        let actual = match result {
            Ok(f) => f
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(" "),
            Err(err) => format!("error: {err}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn scales() {
        check(&[], &["web=2", "worker=1"], None, expect!["web=2 worker=1"]);
        check(
            &[("web", 1)],
            &["web=0"],
            Some(&["web", "release"]),
            expect!["web=0"],
        );
        check(
            &[("web", 1)],
            &["worker=3"],
            Some(&["web", "worker"]),
            expect!["web=1 worker=3"],
        );
    }

    #[test]
    fn refuses_bad_requests() {
        check(
            &[],
            &["web"],
            None,
            expect![[r#"error: invalid scale "web": write TYPE=COUNT, for example web=2"#]],
        );
        check(
            &[],
            &["web=-1"],
            None,
            expect![[r#"error: invalid scale "web=-1": write TYPE=COUNT, for example web=2"#]],
        );
        check(
            &[],
            &[],
            None,
            expect![[r#"error: invalid scale "": write TYPE=COUNT, for example web=2"#]],
        );
        check(
            &[],
            &["web=1", "web=2"],
            None,
            expect![[r#"error: "web" is given more than once"#]],
        );
        check(
            &[],
            &["web=101"],
            None,
            expect!["error: cannot scale web to 101: at most 100 processes per type"],
        );
        check(
            &[],
            &["release=1"],
            None,
            expect!["error: the release process runs once per release and cannot be scaled"],
        );
        check(
            &[],
            &["test=1"],
            Some(&["web", "test"]),
            expect!["error: the test process runs only in test runs and cannot be scaled"],
        );
        check(
            &[],
            &["worker=1"],
            Some(&["web", "release"]),
            expect![[r#"error: the app has no process type "worker"; its processes are: web"#]],
        );
    }
}
