//! `app.json`'s test plan: which command tests an app and with which environment.
//!
//! Precedence, as Heroku CI reads it: `environments.test.scripts.test`, then `scripts.test`,
//! then the Procfile's `test:` type. The environment is never the app's own config (test runs
//! get no production or staging secrets): it is the top-level `env` entries' `value`s, then
//! `environments.test.env`, then what the platform sets ([`TestPlan::env_for`]). Keys the
//! platform does not use are ignored. The caller caps the file's size.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ConfigKey, Error, MAX_COMMAND, ProcessType, Procfile};

/// What testing an app runs: one command with its environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestPlan {
    pub command: String,
    /// From app.json; the platform's variables are added per run by [`TestPlan::env_for`].
    pub env: BTreeMap<String, String>,
}

/// The platform's variables of one test run, which override app.json's.
#[derive(Debug, Clone, Copy)]
pub struct TestRunFacts<'a> {
    pub app: &'a str,
    pub number: u64,
    pub commit: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct AppJson {
    #[serde(default)]
    scripts: Scripts,
    #[serde(default)]
    env: BTreeMap<String, EnvEntry>,
    #[serde(default)]
    environments: Environments,
}

#[derive(Deserialize, Default)]
struct Scripts {
    test: Option<String>,
}

#[derive(Deserialize, Default)]
struct Environments {
    #[serde(default)]
    test: TestEnvironment,
}

#[derive(Deserialize, Default)]
struct TestEnvironment {
    #[serde(default)]
    scripts: Scripts,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// A top-level `env` entry: `"KEY": "value"` or `"KEY": {"value": ..., "description": ...}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EnvEntry {
    Plain(String),
    Described {
        #[serde(default)]
        value: Option<String>,
    },
}

impl TestPlan {
    /// The test plan of a build, or `None` when nothing says how to test it.
    pub fn resolve(
        app_json: Option<&[u8]>,
        procfile: &Procfile,
    ) -> Result<Option<TestPlan>, Error> {
        let parsed: AppJson = match app_json {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|err| Error::AppJson(one_line(&err.to_string())))?,
            None => AppJson::default(),
        };
        let command = parsed
            .environments
            .test
            .scripts
            .test
            .clone()
            .or(parsed.scripts.test.clone())
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .or_else(|| procfile.command(ProcessType::TEST).map(str::to_owned));
        let Some(command) = command else {
            return Ok(None);
        };
        if command.len() > MAX_COMMAND {
            return Err(Error::AppJson(format!(
                "the test command is longer than {MAX_COMMAND} bytes"
            )));
        }
        let mut env = BTreeMap::new();
        let described = parsed
            .env
            .into_iter()
            .filter_map(|(key, entry)| match entry {
                EnvEntry::Plain(value) => Some((key, value)),
                EnvEntry::Described { value } => value.map(|v| (key, v)),
            });
        for (key, value) in described.chain(parsed.environments.test.env) {
            ConfigKey::parse(&key).map_err(|err| Error::AppJson(err.to_string()))?;
            env.insert(key, value);
        }
        Ok(Some(TestPlan { command, env }))
    }

    /// The environment of one test run: app.json's, then the platform's `CI`,
    /// `SLIPWAY_TEST_RUN`, `SOURCE_VERSION` and `SLIPWAY_APP`.
    pub fn env_for(&self, run: TestRunFacts<'_>) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.insert("CI".to_owned(), "true".to_owned());
        env.insert("SLIPWAY_TEST_RUN".to_owned(), run.number.to_string());
        env.insert("SLIPWAY_APP".to_owned(), run.app.to_owned());
        match run.commit {
            Some(commit) => env.insert("SOURCE_VERSION".to_owned(), commit.to_owned()),
            None => env.remove("SOURCE_VERSION"),
        };
        env
    }
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(app_json: Option<&str>, procfile: &str, expected: Expect) {
        let procfile = Procfile::parse(procfile).unwrap();
        let shown = match TestPlan::resolve(app_json.map(str::as_bytes), &procfile) {
            Ok(None) => "untested".to_owned(),
            Ok(Some(plan)) => {
                let env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} [{}]", plan.command, env.join(" "))
            }
            Err(err) => format!("error: {err}"),
        };
        expected.assert_eq(&shown);
    }

    #[test]
    fn precedence_and_env() {
        check(None, "web: serve", expect!["untested"]);
        check(None, "web: serve\ntest: pytest", expect!["pytest []"]);
        check(Some("{}"), "test: pytest", expect!["pytest []"]);
        check(
            Some(r#"{"scripts": {"test": "npm test"}}"#),
            "test: pytest",
            expect!["npm test []"],
        );
        check(
            Some(
                r#"{"scripts": {"test": "npm test"},
                    "environments": {"test": {"scripts": {"test": "make ci"}}}}"#,
            ),
            "test: pytest",
            expect!["make ci []"],
        );
        check(
            Some(r#"{"scripts": {"test": "  "}}"#),
            "test: pytest",
            expect!["pytest []"],
        );
        check(
            Some(
                r#"{"name": "demo", "addons": ["x"], "scripts": {"test": "t", "postdeploy": "p"},
                    "env": {"A": "plain", "B": {"value": "described", "description": "d"},
                            "SECRET": {"description": "asked at setup", "generator": "secret"}},
                    "environments": {"test": {"env": {"B": "test wins", "C": "c"}}}}"#,
            ),
            "",
            expect!["t [A=plain B=test wins C=c]"],
        );
        check(
            Some(r#"{"scripts": {"test": 3}}"#),
            "",
            expect![[
                r#"error: invalid app.json: invalid type: integer `3`, expected a string at line 1 column 22"#
            ]],
        );
        check(
            Some("not json"),
            "test: t",
            expect![[r#"error: invalid app.json: expected ident at line 1 column 2"#]],
        );
        check(
            Some(r#"{"scripts": {"test": "t"}, "env": {"A B": "x"}}"#),
            "",
            expect![[
                r#"error: invalid app.json: invalid config key "A B": keys match [A-Za-z_][A-Za-z0-9_]*"#
            ]],
        );
    }

    #[test]
    fn the_platform_sets_its_variables_last() {
        let plan = TestPlan {
            command: "t".to_owned(),
            env: BTreeMap::from([
                ("CI".to_owned(), "false".to_owned()),
                ("X".to_owned(), "1".to_owned()),
            ]),
        };
        let env = plan.env_for(TestRunFacts {
            app: "demo",
            number: 4,
            commit: Some("abc"),
        });
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        expect!["CI=true SLIPWAY_APP=demo SLIPWAY_TEST_RUN=4 SOURCE_VERSION=abc X=1"]
            .assert_eq(&shown.join(" "));
    }
}
