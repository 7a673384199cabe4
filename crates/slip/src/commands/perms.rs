//! `perms`: the collaborators who may push to and manage an app.

use api_types::AddCollaborator;

use super::Context;
use crate::output::{self, datetime, outln, print_json};

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let collaborators = client.perms(&app).await?;
    if ctx.json {
        return print_json(&collaborators);
    }
    if collaborators.is_empty() {
        outln!("{app} has no collaborators: add one with `slip perms:add USER`")?;
        return Ok(());
    }
    let rows = collaborators
        .iter()
        .map(|c| [c.username.clone(), datetime(c.added_at)]);
    output::print(&output::table(&["USERNAME", "ADDED"], rows))?;
    Ok(())
}

pub(crate) async fn add(ctx: &Context, username: String) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let collaborator = client.add_perm(&app, &AddCollaborator { username }).await?;
    if ctx.json {
        return print_json(&collaborator);
    }
    outln!(
        "Adding {} to {app}'s collaborators... done",
        collaborator.username
    )?;
    Ok(())
}

pub(crate) async fn remove(ctx: &Context, username: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    client.remove_perm(&app, username).await?;
    ctx.say(format_args!(
        "Removing {username} from {app}'s collaborators... done"
    ))?;
    Ok(())
}
