//! Pipelines: an app's place in a chain of stages (development → staging → production), and
//! which apps a promotion goes to.

use std::fmt;

use crate::{AppName, Error};

/// A pipeline's name: the grammar of an app's name (a pipeline is often named after its
/// production app), without the reserved words, which name no host here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PipelineName(String);

impl PipelineName {
    pub fn parse(name: &str) -> Result<PipelineName, Error> {
        match AppName::parse(name) {
            Ok(_) | Err(Error::ReservedAppName(_)) => Ok(PipelineName(name.to_owned())),
            Err(_) => Err(Error::PipelineName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stage of a pipeline, in the order a build travels (Heroku's names; review apps are not
/// a stage here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Development,
    Staging,
    Production,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Development, Stage::Staging, Stage::Production];

    pub fn parse(text: &str) -> Result<Stage, Error> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == text)
            .ok_or_else(|| Error::Stage(text.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Staging => "staging",
            Stage::Production => "production",
        }
    }

    /// The stages after this one, nearest first.
    pub fn later(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |stage| *stage > self)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a promotion from `source` goes, among a pipeline's `members` (app, stage): the apps
/// named in `to`, each in a later stage than the source's; or, when `to` is empty, every app
/// of the nearest later stage that has any (Heroku's `pipelines:promote`).
pub fn promotion_targets(
    members: &[(AppName, Stage)],
    source: &AppName,
    to: &[AppName],
) -> Result<Vec<AppName>, Error> {
    let stage_of = |app: &AppName| members.iter().find(|(a, _)| a == app).map(|(_, s)| *s);
    let from = stage_of(source).ok_or_else(|| Error::NotInPipeline(source.to_string()))?;
    if to.is_empty() {
        let next = from
            .later()
            .find(|stage| members.iter().any(|(_, s)| s == stage))
            .ok_or_else(|| Error::NoLaterStage {
                app: source.to_string(),
                stage: from,
            })?;
        let mut targets: Vec<AppName> = members
            .iter()
            .filter(|(_, s)| *s == next)
            .map(|(a, _)| a.clone())
            .collect();
        targets.sort();
        return Ok(targets);
    }
    let mut targets = Vec::new();
    for app in to {
        match stage_of(app) {
            None => return Err(Error::NotInPipeline(app.to_string())),
            Some(stage) if stage <= from => {
                return Err(Error::NotDownstream {
                    app: app.to_string(),
                    stage,
                    upstream: source.to_string(),
                    upstream_stage: from,
                });
            }
            Some(_) if !targets.contains(app) => targets.push(app.clone()),
            Some(_) => {}
        }
    }
    Ok(targets)
}

/// How far a downstream app is behind its upstream, counted in the upstream's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// The downstream runs the upstream's current build.
    UpToDate,
    /// The upstream has made this many builds since the one the downstream runs.
    Releases(u32),
    /// The downstream runs nothing the upstream has run (or the upstream has nothing yet).
    Unrelated,
}

/// How far behind `downstream_image` is: `upstream` is the upstream's succeeded releases,
/// newest first, each with the image it ran (`None` without a build). Only a new image
/// counts: a config change or a rollback to an image seen since is not a build to promote.
pub fn behind(upstream: &[Option<&str>], downstream_image: Option<&str>) -> Behind {
    let Some(downstream) = downstream_image else {
        return Behind::Unrelated;
    };
    let Some(position) = upstream.iter().position(|image| *image == Some(downstream)) else {
        return Behind::Unrelated;
    };
    let mut newer: Vec<&str> = upstream[..position].iter().flatten().copied().collect();
    newer.sort_unstable();
    newer.dedup();
    newer.retain(|image| *image != downstream);
    match newer.len() {
        0 => Behind::UpToDate,
        n => Behind::Releases(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppName {
        AppName::parse(name).unwrap()
    }

    fn members() -> Vec<(AppName, Stage)> {
        vec![
            (app("demo-dev"), Stage::Development),
            (app("demo-staging"), Stage::Staging),
            (app("demo"), Stage::Production),
            (app("demo-eu"), Stage::Production),
        ]
    }

    #[test]
    fn names_and_stages_parse_or_say_why_not() {
        assert_eq!(PipelineName::parse("shop").unwrap().as_str(), "shop");
        assert_eq!(PipelineName::parse("www").unwrap().as_str(), "www");
        for bad in ["", "Shop", "-shop", "shop-", "a/b", &"x".repeat(31)] {
            assert!(
                matches!(PipelineName::parse(bad), Err(Error::PipelineName(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Stage::parse("staging").unwrap(), Stage::Staging);
        let refused = Stage::parse("review").unwrap_err().to_string();
        assert_eq!(
            refused,
            "unknown stage \"review\": use development, staging or production"
        );
        assert_eq!(
            Stage::Development.later().collect::<Vec<_>>(),
            [Stage::Staging, Stage::Production]
        );
        assert_eq!(Stage::Production.later().count(), 0);
    }

    #[test]
    fn a_promotion_goes_to_the_next_stage_with_apps_or_to_later_apps_named() {
        let m = members();
        let targets = |source: &str, to: &[&str]| {
            let to: Vec<AppName> = to.iter().map(|n| app(n)).collect();
            promotion_targets(&m, &app(source), &to).map_err(|e| e.to_string())
        };
        assert_eq!(targets("demo-dev", &[]), Ok(vec![app("demo-staging")]));
        assert_eq!(
            targets("demo-staging", &[]),
            Ok(vec![app("demo"), app("demo-eu")])
        );
        assert_eq!(
            targets("demo-dev", &["demo", "demo", "demo-staging"]),
            Ok(vec![app("demo"), app("demo-staging")])
        );
        assert_eq!(
            targets("demo", &[]),
            Err("demo is in production, the pipeline's last stage with apps: there is nowhere to promote it".to_owned())
        );
        assert_eq!(
            targets("demo-staging", &["demo-dev"]),
            Err("demo-dev is in development, which is not after demo-staging's staging: promotions go down the pipeline".to_owned())
        );
        assert_eq!(
            targets("demo-staging", &["other"]),
            Err(
                "other is in no pipeline with the app: add it with `slip pipelines:add`".to_owned()
            )
        );
        assert_eq!(
            targets("other", &[]),
            Err(
                "other is in no pipeline with the app: add it with `slip pipelines:add`".to_owned()
            )
        );
        // A stage with no apps is skipped.
        let sparse = vec![
            (app("demo-dev"), Stage::Development),
            (app("demo"), Stage::Production),
        ];
        assert_eq!(
            promotion_targets(&sparse, &app("demo-dev"), &[]),
            Ok(vec![app("demo")])
        );
    }

    #[test]
    fn behind_counts_the_upstreams_new_images_since_the_downstreams() {
        // Newest first; each entry is a succeeded release's image.
        let history = [Some("c"), Some("b"), None, Some("b"), Some("a")];
        assert_eq!(behind(&history, Some("c")), Behind::UpToDate);
        // b twice (a config change) counts once.
        assert_eq!(behind(&history, Some("a")), Behind::Releases(2));
        assert_eq!(behind(&history, Some("b")), Behind::Releases(1));
        assert_eq!(behind(&history, Some("z")), Behind::Unrelated);
        assert_eq!(behind(&history, None), Behind::Unrelated);
        assert_eq!(behind(&[], Some("a")), Behind::Unrelated);
        // A rollback upstream to the downstream's image: up to date again.
        assert_eq!(
            behind(&[Some("a"), Some("b"), Some("a")], Some("a")),
            Behind::UpToDate
        );
    }
}
