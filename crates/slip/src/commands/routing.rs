//! `maintenance`, `routing`, `whitelist` and `tls`: the app's routing switches, each change
//! saying what it means for the app's visitors.

use anyhow::bail;
use api_types::{HostCertificate, Routing, RoutingPatch};

use super::Context;
use crate::output::{self, and_list, datetime, outln, print_json};

/// Sends one change and prints the JSON when asked; the caller says what it means.
async fn change(ctx: &Context, patch: RoutingPatch) -> anyhow::Result<Option<(String, Routing)>> {
    let (client, app) = ctx.client_and_app()?;
    let routing = client.patch_routing(&app, &patch).await?;
    if ctx.json {
        print_json(&routing)?;
        return Ok(None);
    }
    Ok(Some((app, routing)))
}

async fn read(ctx: &Context) -> anyhow::Result<Option<(String, Routing)>> {
    let (client, app) = ctx.client_and_app()?;
    let routing = client.routing(&app).await?;
    if ctx.json {
        print_json(&routing)?;
        return Ok(None);
    }
    Ok(Some((app, routing)))
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

pub(crate) async fn maintenance(ctx: &Context, on: bool) -> anyhow::Result<()> {
    let patch = RoutingPatch {
        maintenance: Some(on),
        ..RoutingPatch::default()
    };
    let Some((app, _)) = change(ctx, patch).await? else {
        return Ok(());
    };
    if on {
        outln!(
            "Maintenance mode is on for {app}: requests get a 503 page; processes keep running."
        )?;
    } else {
        outln!("Maintenance mode is off for {app}: requests reach its processes again.")?;
    }
    Ok(())
}

pub(crate) async fn maintenance_info(ctx: &Context) -> anyhow::Result<()> {
    let Some((app, routing)) = read(ctx).await? else {
        return Ok(());
    };
    outln!(
        "Maintenance mode is {} for {app}.",
        on_off(routing.maintenance)
    )?;
    Ok(())
}

pub(crate) async fn enable(ctx: &Context, enabled: bool) -> anyhow::Result<()> {
    let patch = RoutingPatch {
        enabled: Some(enabled),
        ..RoutingPatch::default()
    };
    let Some((app, _)) = change(ctx, patch).await? else {
        return Ok(());
    };
    if enabled {
        outln!("Routing is enabled for {app}: requests reach it again.")?;
    } else {
        outln!(
            "Routing is disabled for {app}: its hosts answer as unknown ones do; processes keep running."
        )?;
    }
    Ok(())
}

pub(crate) async fn info(ctx: &Context) -> anyhow::Result<()> {
    let Some((app, routing)) = read(ctx).await? else {
        return Ok(());
    };
    let state = if routing.enabled {
        "enabled"
    } else {
        "disabled"
    };
    let hosts: Vec<&str> = routing.hosts.iter().map(|h| h.host.as_str()).collect();
    outln!("Routing is {state} for {app}.")?;
    output::print(&output::fields(&[
        ("Hosts", hosts.join("\n")),
        ("Maintenance", on_off(routing.maintenance).to_owned()),
        ("HTTPS only", on_off(routing.force_https).to_owned()),
        ("Allow list", allow_list(&routing)),
    ]))?;
    Ok(())
}

fn allow_list(routing: &Routing) -> String {
    if routing.allow.is_empty() {
        "empty: every client is served".to_owned()
    } else {
        routing.allow.join("\n")
    }
}

/// `10.0.0.0/8,192.0.2.1` → its ranges.
fn ranges(text: &str) -> anyhow::Result<Vec<String>> {
    let ranges: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if ranges.is_empty() {
        bail!("no address range given: name one such as 10.0.0.0/8 or 203.0.113.7");
    }
    Ok(ranges)
}

pub(crate) async fn whitelist(ctx: &Context) -> anyhow::Result<()> {
    let Some((app, routing)) = read(ctx).await? else {
        return Ok(());
    };
    if routing.allow.is_empty() {
        outln!(
            "{app} has no IP allow list: every client is served. Add ranges with `slip whitelist:add CIDR`"
        )?;
        return Ok(());
    }
    outln!("Clients allowed in to {app} (others get a 403):")?;
    for range in &routing.allow {
        outln!("{range}")?;
    }
    Ok(())
}

pub(crate) async fn whitelist_change(ctx: &Context, text: &str, add: bool) -> anyhow::Result<()> {
    let ranges = ranges(text)?;
    let patch = if add {
        RoutingPatch {
            allow: Some(ranges.clone()),
            ..RoutingPatch::default()
        }
    } else {
        RoutingPatch {
            disallow: Some(ranges.clone()),
            ..RoutingPatch::default()
        }
    };
    let Some((app, routing)) = change(ctx, patch).await? else {
        return Ok(());
    };
    let (verb, preposition) = if add {
        ("Added", "to")
    } else {
        ("Removed", "from")
    };
    let meaning = match routing.allow.len() {
        0 => "the list is empty, so every client is served".to_owned(),
        1 => "only clients in 1 range are served; others get a 403".to_owned(),
        n => format!("only clients in {n} ranges are served; others get a 403"),
    };
    outln!(
        "{verb} {} {preposition} {app}'s allow list: {meaning}.",
        and_list(&ranges)
    )?;
    Ok(())
}

pub(crate) async fn tls(ctx: &Context, force: bool, hsts: bool) -> anyhow::Result<()> {
    let patch = RoutingPatch {
        force_https: Some(force),
        hsts: force.then_some(hsts),
        ..RoutingPatch::default()
    };
    let Some((app, _)) = change(ctx, patch).await? else {
        return Ok(());
    };
    match (force, hsts) {
        (true, true) => outln!(
            "HTTPS only is on for {app}: plain HTTP requests are redirected to HTTPS, and HTTPS responses carry Strict-Transport-Security (browsers use only HTTPS for a year)."
        )?,
        (true, false) => {
            outln!("HTTPS only is on for {app}: plain HTTP requests are redirected to HTTPS.")?
        }
        (false, _) => {
            outln!("HTTPS only is off for {app}: plain HTTP is served again, without HSTS.")?
        }
    }
    Ok(())
}

pub(crate) async fn tls_info(ctx: &Context) -> anyhow::Result<()> {
    let Some((app, routing)) = read(ctx).await? else {
        return Ok(());
    };
    outln!(
        "HTTPS only is {} for {app}; HSTS is {}.",
        on_off(routing.force_https),
        on_off(routing.hsts)
    )?;
    let rows = routing.hosts.iter().map(|h| {
        let certificate = match (h.certificate, &h.name) {
            (HostCertificate::Uploaded, Some(name)) => format!("{name} (uploaded)"),
            (HostCertificate::Uploaded, None) => "uploaded".to_owned(),
            (HostCertificate::Acme, _) => "ACME".to_owned(),
            (HostCertificate::Platform, _) => "platform".to_owned(),
        };
        let expires = h.expires_at.map_or_else(|| "-".to_owned(), datetime);
        [h.host.clone(), certificate, expires]
    });
    output::print(&output::table(&["HOST", "CERTIFICATE", "EXPIRES"], rows))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_split_on_commas() {
        assert_eq!(
            ranges("10.0.0.0/8, 192.0.2.1,").unwrap(),
            ["10.0.0.0/8", "192.0.2.1"]
        );
        assert!(ranges(" , ").is_err());
    }
}
