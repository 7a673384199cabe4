//! `domains`: custom domains routed to an app.

use api_types::AddDomain;

use super::Context;
use crate::output::{self, datetime, outln, print_json};

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let domains = client.domains(&app).await?;
    if ctx.json {
        return print_json(&domains);
    }
    if domains.is_empty() {
        outln!("{app} has no custom domains: add one with `slip domains:add DOMAIN`")?;
        return Ok(());
    }
    let rows = domains
        .iter()
        .map(|d| [d.domain.clone(), datetime(d.created_at)]);
    output::print(&output::table(&["DOMAIN", "ADDED"], rows))?;
    Ok(())
}

pub(crate) async fn add(ctx: &Context, domain: String) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let domain = client.add_domain(&app, &AddDomain { domain }).await?;
    if ctx.json {
        return print_json(&domain);
    }
    outln!("Adding {} to {app}... done", domain.domain)?;
    Ok(())
}

pub(crate) async fn remove(ctx: &Context, domain: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    client.remove_domain(&app, domain).await?;
    ctx.say(format_args!("Removing {domain} from {app}... done"))?;
    Ok(())
}
