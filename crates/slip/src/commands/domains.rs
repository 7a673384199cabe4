//! `domains`: custom domains routed to an app once their TXT record proves control.

use api_types::{AddDomain, Domain, DomainStatus};

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
    let rows = domains.iter().map(|d| {
        let state = match &d.challenge {
            Some(c) if d.status == DomainStatus::Pending => {
                format!("pending: TXT {} {}", c.record, c.value)
            }
            _ => d.status.to_string(),
        };
        [d.domain.clone(), state, datetime(d.created_at)]
    });
    output::print(&output::table(&["DOMAIN", "STATE", "ADDED"], rows))?;
    Ok(())
}

pub(crate) async fn add(ctx: &Context, domain: String) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let domain = client.add_domain(&app, &AddDomain { domain }).await?;
    if ctx.json {
        return print_json(&domain);
    }
    outln!("Adding {} to {app}... done", domain.domain)?;
    todo_line(&domain)
}

pub(crate) async fn verify(ctx: &Context, domain: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let domain = client.verify_domain(&app, domain).await?;
    if ctx.json {
        return print_json(&domain);
    }
    outln!("{} is verified: it routes to {app}", domain.domain)?;
    Ok(())
}

pub(crate) async fn remove(ctx: &Context, domain: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    client.remove_domain(&app, domain).await?;
    ctx.say(format_args!("Removing {domain} from {app}... done"))?;
    Ok(())
}

/// What a pending domain's owner does next.
fn todo_line(domain: &Domain) -> anyhow::Result<()> {
    if let Some(c) = &domain.challenge {
        outln!(
            "It routes once verified: add a TXT record `{}` with the value `{}`, then run `slip domains:verify {}`",
            c.record,
            c.value,
            domain.domain
        )?;
    }
    Ok(())
}
