//! `releases` and `rollback`: the numbered history of an app, and going back in it.

use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use api_types::Rollback;

use super::{Context, outcome, parse_version};
use crate::output::{self, outln, print_json};

/// The API's code for a rollback that needs the app's name to go ahead.
const CONFIRMATION_REQUIRED: &str = "confirmation_required";

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

/// `slip rollback [vN] [--confirm APP]`. Across a release whose release command ran, the
/// API asks for the app's name: typed at a prompt on a terminal; otherwise, and always under
/// `--json`, the refusal stands and says to add `--confirm APP`.
pub(crate) async fn rollback(
    ctx: &Context,
    version: Option<String>,
    confirm: Option<String>,
) -> anyhow::Result<()> {
    let version = version.as_deref().map(parse_version).transpose()?;
    let (client, app) = ctx.client_and_app()?;
    let prompt = confirm.is_none() && !ctx.json && std::io::stdin().is_terminal();
    let release = match client.rollback(&app, &Rollback { version, confirm }).await {
        Err(err) if prompt && err.code() == Some(CONFIRMATION_REQUIRED) => {
            eprintln!("{err}");
            if !typed_at_prompt(&app)? {
                bail!("that is not {app}; nothing was rolled back");
            }
            let confirm = Some(app.clone());
            client
                .rollback(&app, &Rollback { version, confirm })
                .await?
        }
        other => other?,
    };
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

/// Asks at the terminal for the app's name; whether it was typed.
fn typed_at_prompt(app: &str) -> anyhow::Result<bool> {
    eprint!("To roll back anyway, type the app's name ({app}): ");
    std::io::stderr().flush()?;
    let mut typed = String::new();
    std::io::stdin()
        .read_line(&mut typed)
        .context("cannot read the app's name")?;
    Ok(typed.trim() == app)
}
