//! `releases` and `rollback`: the numbered history of an app, and going back in it.

use api_types::Rollback;

use super::{Context, outcome, parse_version};
use crate::output::{self, outln, print_json};

pub(crate) async fn list(ctx: &Context, limit: Option<u32>) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let releases = client.releases(&app, limit).await?;
    if ctx.json {
        return print_json(&releases);
    }
    output::print(&output::releases_table(&releases))?;
    Ok(())
}

/// `slip events`: the app's audit trail, a pipeline's with `--pipeline`, or with `--all`
/// every app's.
pub(crate) async fn events(
    ctx: &Context,
    all: bool,
    pipeline: Option<String>,
    limit: Option<u32>,
) -> anyhow::Result<()> {
    let events = if all {
        ctx.client()?.all_events(limit).await?
    } else if let Some(pipeline) = pipeline {
        ctx.client()?.pipeline_events(&pipeline, limit).await?
    } else {
        let (client, app) = ctx.client_and_app()?;
        client.events(&app, limit).await?
    };
    if ctx.json {
        return print_json(&events);
    }
    output::print(&output::events_table(&events))?;
    Ok(())
}

pub(crate) async fn info(ctx: &Context, version: &str) -> anyhow::Result<()> {
    let version = parse_version(version)?;
    let (client, app) = ctx.client_and_app()?;
    let info = client.release(&app, version).await?;
    if ctx.json {
        return print_json(&info);
    }
    output::print(&output::release_info(&app, &info))?;
    Ok(())
}

pub(crate) async fn rollback(ctx: &Context, version: Option<String>) -> anyhow::Result<()> {
    let version = version.as_deref().map(parse_version).transpose()?;
    let (client, app) = ctx.client_and_app()?;
    let release = client.rollback(&app, &Rollback { version }).await?;
    if ctx.json {
        print_json(&release)?;
    }
    let outcome = outcome(&client, &app, &release).await?;
    if !ctx.json {
        match version {
            Some(v) => outln!("Rolling back {app} to v{v}... {outcome}")?,
            None => outln!("Rolling back {app}... {outcome} ({})", release.summary)?,
        }
    }
    Ok(())
}
