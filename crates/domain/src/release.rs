//! Releases: versions, statuses, what each release records as its cause, and the rollback
//! rules of the product contract (§4).

use std::fmt;

use crate::{ConfigDiff, Error};

/// Why a push's release failed after its deploy: the push ended before its ref moved, so the
/// repository lacks the commit it would serve.
pub const PUSH_CUT_OFF: &str =
    "the push was cut off before its ref moved, so the repository lacks its commit";

/// A release's number within its app: v1, v2, … strictly increasing, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseVersion(u32);

impl ReleaseVersion {
    /// v1, the release `create` makes.
    pub const INITIAL: ReleaseVersion = ReleaseVersion(1);

    /// Accepts `v3`, `V3` and `3`.
    pub fn parse(text: &str) -> Result<ReleaseVersion, Error> {
        let digits = text.strip_prefix(['v', 'V']).unwrap_or(text);
        match digits.parse::<u32>() {
            Ok(n) if n >= 1 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(ReleaseVersion(n)),
            _ => Err(Error::ReleaseVersion(text.to_owned())),
        }
    }

    /// Wraps a number read back from storage; versions start at 1.
    pub fn new(n: u32) -> Option<ReleaseVersion> {
        (n >= 1).then_some(ReleaseVersion(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Where a release is in its life. A release without a build has nothing to deploy and is
/// `Succeeded` as soon as it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Pending,
    Deploying,
    Succeeded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Deploying => "deploying",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ReleaseStatus> {
        [
            ReleaseStatus::Pending,
            ReleaseStatus::Deploying,
            ReleaseStatus::Succeeded,
            ReleaseStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a release was made; it becomes the release's one-line summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCause {
    /// `create` made the app.
    Created,
    /// A build of this commit finished.
    Deploy { commit: String },
    /// A prebuilt image was deployed.
    Image { image: String },
    /// A config set or unset changed these keys.
    Config(ConfigDiff),
    /// A rollback reused this release's build and config.
    Rollback { to: ReleaseVersion },
    /// The running build's image was rebased onto a newer run image (its manifest digest),
    /// without a build.
    Rebase { run_image: String, base: String },
    /// Another app's build was promoted here, without a rebuild, perhaps after a person's
    /// approval.
    Promote {
        from_app: String,
        from_version: ReleaseVersion,
        commit: Option<String>,
        approved_by: Option<String>,
    },
}

impl ReleaseCause {
    /// `ada deployed 1a2b3c4`, `ada added GREETING`, `ada rolled back to v2`.
    pub fn summary(&self, actor: &str) -> String {
        match self {
            ReleaseCause::Created => format!("{actor} created initial release"),
            ReleaseCause::Deploy { commit } => {
                format!("{actor} deployed {}", commit.get(..7).unwrap_or(commit))
            }
            ReleaseCause::Image { image } => format!("{actor} deployed image {image}"),
            ReleaseCause::Config(diff) => format!("{actor} {diff}"),
            ReleaseCause::Rollback { to } => format!("{actor} rolled back to {to}"),
            ReleaseCause::Rebase { run_image, base } => format!(
                "{actor} rebased onto run image {run_image} ({})",
                base.get(..19).unwrap_or(base)
            ),
            ReleaseCause::Promote {
                from_app,
                from_version,
                commit,
                approved_by,
            } => {
                let mut summary = format!("{actor} promoted {from_app} {from_version}");
                if let Some(commit) = commit {
                    summary += &format!(" ({})", commit.get(..7).unwrap_or(commit));
                }
                if let Some(approver) = approved_by {
                    summary += &format!(", approved by {approver}");
                }
                summary
            }
        }
    }
}

/// What the rollback rules need to know of one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseFacts {
    pub version: ReleaseVersion,
    pub status: ReleaseStatus,
    pub has_build: bool,
}

/// Why a rollback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefused {
    #[error("the app has no release to roll back from")]
    NoCurrentRelease,
    #[error("there is no release before {current} to roll back to")]
    NothingBefore { current: ReleaseVersion },
    #[error("{0} does not exist")]
    NoSuchRelease(ReleaseVersion),
    #[error("{0} is the current release already")]
    AlreadyCurrent(ReleaseVersion),
    #[error("{0} failed; only releases that succeeded can be rolled back to")]
    Failed(ReleaseVersion),
    #[error("{0} has not finished deploying; wait for it, then try again")]
    InProgress(ReleaseVersion),
    #[error("{0} has no build to roll back to; push code first with `git push slipway main`")]
    NoBuild(ReleaseVersion),
}

/// Which release `rollback [target]` reuses.
///
/// The current release is the newest that succeeded. Without a target, the rollback goes to
/// the newest succeeded release before it (Heroku's and Deis's "previous release"). A target
/// must exist, must not be the current release, must have succeeded and must have a build:
/// a rollback never rebuilds, so a release without a build has nothing to run.
pub fn rollback_target(
    history: &[ReleaseFacts],
    target: Option<ReleaseVersion>,
) -> Result<ReleaseVersion, RollbackRefused> {
    let succeeded = |r: &&ReleaseFacts| r.status == ReleaseStatus::Succeeded;
    let current = history
        .iter()
        .filter(succeeded)
        .max_by_key(|r| r.version)
        .ok_or(RollbackRefused::NoCurrentRelease)?;
    let chosen = match target {
        Some(version) => history
            .iter()
            .find(|r| r.version == version)
            .ok_or(RollbackRefused::NoSuchRelease(version))?,
        None => history
            .iter()
            .filter(succeeded)
            .filter(|r| r.version < current.version)
            .max_by_key(|r| r.version)
            .ok_or(RollbackRefused::NothingBefore {
                current: current.version,
            })?,
    };
    may_roll_back_to(chosen, current.version)
}

/// Whether a rollback may reuse `chosen` while `current` is the current release: it must
/// have succeeded, must not be the current release, and must have a build. The dashboard
/// asks this of each release it lists; [`rollback_target`] of the one it picked.
pub fn may_roll_back_to(
    chosen: &ReleaseFacts,
    current: ReleaseVersion,
) -> Result<ReleaseVersion, RollbackRefused> {
    match chosen.status {
        ReleaseStatus::Failed => return Err(RollbackRefused::Failed(chosen.version)),
        ReleaseStatus::Pending | ReleaseStatus::Deploying => {
            return Err(RollbackRefused::InProgress(chosen.version));
        }
        ReleaseStatus::Succeeded => {}
    }
    if chosen.version == current {
        return Err(RollbackRefused::AlreadyCurrent(chosen.version));
    }
    if !chosen.has_build {
        return Err(RollbackRefused::NoBuild(chosen.version));
    }
    Ok(chosen.version)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::ConfigKey;

    #[test]
    fn versions() {
        let show = |s: &str| match ReleaseVersion::parse(s) {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        };
        let actual: Vec<String> = [
            "v3",
            "V12",
            "7",
            "v0",
            "0",
            "",
            "v",
            "v-1",
            "+3",
            "v3.1",
            "99999999999",
        ]
        .iter()
        .map(|s| format!("{s:?} -> {}", show(s)))
        .collect();
        expect![[r#"
            "v3" -> v3
            "V12" -> v12
            "7" -> v7
            "v0" -> error: invalid release version "v0": write it as v3 or 3
            "0" -> error: invalid release version "0": write it as v3 or 3
            "" -> error: invalid release version "": write it as v3 or 3
            "v" -> error: invalid release version "v": write it as v3 or 3
            "v-1" -> error: invalid release version "v-1": write it as v3 or 3
            "+3" -> error: invalid release version "+3": write it as v3 or 3
            "v3.1" -> error: invalid release version "v3.1": write it as v3 or 3
            "99999999999" -> error: invalid release version "99999999999": write it as v3 or 3"#]]
        .assert_eq(&actual.join("\n"));
    }

    #[test]
    fn summaries() {
        let diff = ConfigDiff {
            added: vec![
                ConfigKey::parse("A").unwrap(),
                ConfigKey::parse("B").unwrap(),
            ],
            changed: vec![ConfigKey::parse("C").unwrap()],
            removed: vec![],
        };
        let causes = [
            ReleaseCause::Created,
            ReleaseCause::Deploy {
                commit: "1a2b3c4d5e6f".into(),
            },
            ReleaseCause::Image {
                image: "registry.local/demo@sha256:ab".into(),
            },
            ReleaseCause::Config(diff),
            ReleaseCause::Rollback {
                to: ReleaseVersion(2),
            },
            ReleaseCause::Rebase {
                run_image: "base".into(),
                base: format!("sha256:{}", "0123456789abcdef".repeat(4)),
            },
            ReleaseCause::Promote {
                from_app: "demo-staging".into(),
                from_version: ReleaseVersion(7),
                commit: Some("1a2b3c4d5e6f".into()),
                approved_by: Some("bob".into()),
            },
            ReleaseCause::Promote {
                from_app: "demo-staging".into(),
                from_version: ReleaseVersion(8),
                commit: None,
                approved_by: None,
            },
        ];
        let actual: Vec<String> = causes.iter().map(|c| c.summary("ada")).collect();
        expect![[r#"
            ada created initial release
            ada deployed 1a2b3c4
            ada deployed image registry.local/demo@sha256:ab
            ada added A, B; changed C
            ada rolled back to v2
            ada rebased onto run image base (sha256:0123456789ab)
            ada promoted demo-staging v7 (1a2b3c4), approved by bob
            ada promoted demo-staging v8"#]]
        .assert_eq(&actual.join("\n"));
    }

    /// History is written `v1 ok build`, one release per word group: status `ok`, `failed`,
    /// `pending` or `deploying`, then `build` when the release has one.
    #[track_caller]
    fn check(history: &str, target: Option<u32>, expect: Expect) {
        let facts: Vec<ReleaseFacts> = history
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let words: Vec<&str> = entry.split_whitespace().collect();
                ReleaseFacts {
                    version: ReleaseVersion::parse(words[0]).unwrap(),
                    status: match words[1] {
                        "ok" => ReleaseStatus::Succeeded,
                        other => ReleaseStatus::parse(other).unwrap(),
                    },
                    has_build: words.get(2) == Some(&"build"),
                }
            })
            .collect();
        let actual = match rollback_target(&facts, target.map(ReleaseVersion)) {
            Ok(v) => format!("-> {v}"),
            Err(e) => format!("refused: {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn rollback_rules() {
        // The day of the product contract: create, then two config sets, no build yet.
        check(
            "v1 ok, v2 ok, v3 ok",
            None,
            expect![
                "refused: v2 has no build to roll back to; push code first with `git push slipway main`"
            ],
        );
        check(
            "v1 ok, v2 ok, v3 ok",
            Some(1),
            expect![
                "refused: v1 has no build to roll back to; push code first with `git push slipway main`"
            ],
        );
        // After pushes: the previous succeeded release, skipping failed ones.
        check("v1 ok, v2 ok build, v3 ok build", None, expect!["-> v2"]);
        check(
            "v1 ok, v2 ok build, v3 failed build, v4 ok build, v5 failed build",
            None,
            expect!["-> v2"],
        );
        check(
            "v1 ok, v2 ok build, v3 ok build, v4 ok build",
            Some(2),
            expect!["-> v2"],
        );
        // Refusals.
        check(
            "v1 ok, v2 ok build, v3 failed build",
            Some(3),
            expect!["refused: v3 failed; only releases that succeeded can be rolled back to"],
        );
        check(
            "v1 ok, v2 ok build, v3 ok build",
            Some(3),
            expect!["refused: v3 is the current release already"],
        );
        check(
            "v1 ok, v2 ok build, v3 ok build",
            Some(9),
            expect!["refused: v9 does not exist"],
        );
        check(
            "v1 ok, v2 ok build, v3 deploying build",
            Some(3),
            expect!["refused: v3 has not finished deploying; wait for it, then try again"],
        );
        check(
            "v1 ok",
            None,
            expect!["refused: there is no release before v1 to roll back to"],
        );
        check(
            "",
            None,
            expect!["refused: the app has no release to roll back from"],
        );
    }
}
