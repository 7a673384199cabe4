//! `certs`: certificates uploaded for the app's custom domains (Deis' `certs:*`). The key
//! is sent once, on `certs:add`, and never shown again.

use std::path::Path;

use anyhow::{Context as _, bail};
use api_types::{AddCertificate, Certificate};

use super::Context;
use crate::output::{self, and_list, datetime, outln, print_json};

/// The largest certificate or key file read; the platform refuses larger ones anyway.
const MAX_FILE: u64 = 64 * 1024;

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let certs = client.certs(&app).await?;
    if ctx.json {
        return print_json(&certs);
    }
    if certs.is_empty() {
        outln!(
            "{app} has no certificates: its hosts get automatic ones; upload one with `slip certs:add NAME CERT_FILE KEY_FILE`"
        )?;
        return Ok(());
    }
    let rows = certs.iter().map(|c| {
        let domains = if c.domains.is_empty() {
            "-".to_owned()
        } else {
            c.domains.join(", ")
        };
        [
            c.name.clone(),
            common_name(c),
            domains,
            datetime(c.not_after),
        ]
    });
    output::print(&output::table(
        &["NAME", "COMMON NAME", "DOMAINS", "EXPIRES"],
        rows,
    ))?;
    Ok(())
}

/// The subject's CN, else the first name it covers.
fn common_name(c: &Certificate) -> String {
    c.subject
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("CN="))
        .next()
        .map(str::to_owned)
        .or_else(|| c.names.first().cloned())
        .unwrap_or_else(|| "-".to_owned())
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_FILE {
        bail!(
            "{} is over 64 KiB: it should hold only the {what}",
            path.display()
        );
    }
    super::read_file(path)
}

pub(crate) async fn add(
    ctx: &Context,
    name: String,
    certificate: &Path,
    key: &Path,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let add = AddCertificate {
        name,
        certificate: read_pem(certificate, "certificate and its intermediates")?,
        key: read_pem(key, "private key")?,
    };
    let cert = client.add_cert(&app, &add).await?;
    if ctx.json {
        return print_json(&cert);
    }
    outln!(
        "Added certificate {} to {app}: it covers {} and expires {}.",
        cert.name,
        and_list(&cert.names),
        datetime(cert.not_after)
    )?;
    if cert.domains.is_empty() {
        outln!(
            "It is served for no domain yet: attach it with `slip certs:attach {} DOMAIN`",
            cert.name
        )?;
    } else {
        outln!("It is served for {} from now on.", and_list(&cert.domains))?;
    }
    Ok(())
}

pub(crate) async fn info(ctx: &Context, name: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let cert = client.cert(&app, name).await?;
    if ctx.json {
        return print_json(&cert);
    }
    let domains = if cert.domains.is_empty() {
        "none (attach with `slip certs:attach`)".to_owned()
    } else {
        cert.domains.join("\n")
    };
    output::print(&output::fields(&[
        ("Name", cert.name.clone()),
        ("Common name", common_name(&cert)),
        ("Covers", cert.names.join("\n")),
        ("Domains", domains),
        ("Issuer", cert.issuer.clone()),
        ("Subject", cert.subject.clone()),
        ("Not before", datetime(cert.not_before)),
        ("Expires", datetime(cert.not_after)),
        ("Fingerprint", cert.fingerprint.clone()),
        (
            "Added",
            format!("{} by {}", datetime(cert.created_at), cert.created_by),
        ),
    ]))?;
    Ok(())
}

pub(crate) async fn remove(ctx: &Context, name: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    client.remove_cert(&app, name).await?;
    ctx.say(format_args!(
        "Removed certificate {name} from {app}: its domains get automatic certificates."
    ))?;
    Ok(())
}

pub(crate) async fn attach(
    ctx: &Context,
    name: &str,
    domain: &str,
    attach: bool,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let cert = client.attach_cert(&app, name, domain, attach).await?;
    if ctx.json {
        return print_json(&cert);
    }
    if attach {
        outln!("{domain} is served with certificate {name} from now on.")?;
    } else {
        outln!("{domain} is no longer served with certificate {name}: it gets an automatic one.")?;
    }
    Ok(())
}
