//! `builds`: what each `git push` built, and deploying an image built elsewhere.

use std::path::Path;

use api_types::CreateBuild;

use super::{Context, outcome, read_file};
use crate::output::{self, datetime, outln, print_json, short_commit};

pub(crate) async fn list(ctx: &Context, limit: Option<u32>) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let builds = client.builds(&app, limit).await?;
    if ctx.json {
        return print_json(&builds);
    }
    if builds.is_empty() {
        outln!("{app} has no builds yet: push code with `git push slipway main`")?;
        return Ok(());
    }
    let rows = builds.iter().map(|b| {
        [
            b.id.to_string(),
            b.status.to_string(),
            short_commit(b.commit.as_deref()),
            b.created_by.clone(),
            datetime(b.created_at),
        ]
    });
    output::print(&output::table(
        &["ID", "STATUS", "COMMIT", "BY", "CREATED"],
        rows,
    ))?;
    Ok(())
}

pub(crate) async fn info(ctx: &Context, id: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let build = client.build(&app, id).await?;
    if ctx.json {
        return print_json(&build);
    }
    output::print(&output::build_info(&app, &build))?;
    Ok(())
}

pub(crate) async fn create(ctx: &Context, image: String, procfile: &Path) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let procfile = read_file(procfile)?;
    let release = client
        .create_build(
            &app,
            &CreateBuild {
                image: image.clone(),
                procfile,
            },
        )
        .await?;
    if ctx.json {
        print_json(&release)?;
    }
    let outcome = outcome(&client, &app, &release).await?;
    if !ctx.json {
        outln!("Deploying {image} to {app}... {outcome}")?;
    }
    Ok(())
}

pub(crate) async fn purge_cache(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    client.purge_build_cache(&app).await?;
    outln!("Purged the build cache of {app}; the next push installs its dependencies afresh")?;
    Ok(())
}

/// `slip rebase`: the app's image moved onto the current run image, and its deploy followed.
pub(crate) async fn rebase(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let rebased = client.rebase(&app).await?;
    if ctx.json {
        print_json(&rebased)?;
    } else {
        outln!("{}", rebased.message)?;
    }
    if let Some(release) = &rebased.release {
        let outcome = outcome(&client, &app, release).await?;
        if !ctx.json {
            outln!("Deploying v{}... {outcome}", release.version)?;
        }
    }
    Ok(())
}
