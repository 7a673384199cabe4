//! `config`: list, get, set and unset config vars, and pull or push them as a `.env` file.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use anyhow::{Context as _, bail};
use api_types::{ConfigChanged, ConfigPatch};

use super::{Context, outcome, read_file};
use crate::client::Client;
use crate::credentials::write_private;
use crate::dotenv;
use crate::output::{self, and_list, fields, outln, print_json, shell_quote};

pub(crate) async fn list(ctx: &Context, shell: bool) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let config = client.config(&app).await?;
    if ctx.json {
        return print_json(&config);
    }
    if shell {
        for (key, value) in &config.values {
            outln!("{key}={}", shell_quote(value))?;
        }
    } else if config.values.is_empty() {
        outln!("{app} has no config vars (v{})", config.version)?;
    } else {
        let pairs: Vec<(&str, String)> = config
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        output::print(&format!(
            "=== {app} config vars (v{})\n{}",
            config.version,
            fields(&pairs)
        ))?;
    }
    Ok(())
}

pub(crate) async fn get(ctx: &Context, key: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let config = client.config(&app).await?;
    let Some(value) = config.values.get(key) else {
        bail!("{key} is not set in {app}'s config");
    };
    if ctx.json {
        return print_json(value);
    }
    outln!("{value}")?;
    Ok(())
}

pub(crate) async fn set(ctx: &Context, pairs: &[String]) -> anyhow::Result<()> {
    let values = parse_pairs(pairs)?;
    let (client, app) = ctx.client_and_app()?;
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    let changed = client
        .patch_config(
            &app,
            &ConfigPatch {
                values: values.clone(),
            },
        )
        .await?;
    report(
        ctx,
        &client,
        &app,
        &format!("Setting {}", keys.join(", ")),
        &changed,
    )
    .await
}

pub(crate) async fn unset(ctx: &Context, keys: &[String]) -> anyhow::Result<()> {
    let values: BTreeMap<String, Option<String>> = keys.iter().map(|k| (k.clone(), None)).collect();
    let (client, app) = ctx.client_and_app()?;
    let changed = client.patch_config(&app, &ConfigPatch { values }).await?;
    report(
        ctx,
        &client,
        &app,
        &format!("Unsetting {}", and_list(keys)),
        &changed,
    )
    .await
}

pub(crate) async fn pull(ctx: &Context, file: &Path, overwrite: bool) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let config = client.config(&app).await?;
    let (text, exists) = match std::fs::read_to_string(file) {
        Ok(text) => (text, true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let merged = dotenv::merge(&text, &config.values, overwrite)
        .with_context(|| format!("cannot parse {}", file.display()))?;
    if merged.text != text || !exists {
        let written = if exists {
            std::fs::write(file, &merged.text)
        } else {
            // A new .env holds secrets: only its owner may read it.
            write_private(file, merged.text.as_bytes())
        };
        written.with_context(|| format!("cannot write {}", file.display()))?;
    }
    let path = file.display();
    let mut changes = Vec::new();
    if !merged.added.is_empty() {
        changes.push(format!("added {}", and_list(&merged.added)));
    }
    if !merged.replaced.is_empty() {
        changes.push(format!("replaced {}", and_list(&merged.replaced)));
    }
    if changes.is_empty() {
        ctx.say(format_args!("{path} has {app}'s config already"))?;
    } else {
        let changes = changes.join("; ");
        ctx.say(format_args!(
            "Pulling {app}'s config into {path}... done, {changes}"
        ))?;
    }
    if !merged.kept.is_empty() {
        let kept = and_list(&merged.kept);
        ctx.say(format_args!(
            "Left {kept} in {path} as it is, though {app}'s differs; use --overwrite to replace it"
        ))?;
    }
    Ok(())
}

pub(crate) async fn push(ctx: &Context, file: &Path) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let entries = dotenv::parse(&read_file(file)?)
        .with_context(|| format!("cannot parse {}", file.display()))?;
    let values = dotenv::to_map(entries);
    if values.is_empty() {
        bail!("{} has no config vars to push", file.display());
    }
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    let verb = format!("Setting {}", keys.join(", "));
    let patch = ConfigPatch {
        values: values
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    };
    let changed = client.patch_config(&app, &patch).await?;
    report(ctx, &client, &app, &verb, &changed).await
}

/// `Setting A and restarting demo... done, v3`, or that nothing changed.
async fn report(
    ctx: &Context,
    client: &Client,
    app: &str,
    doing: &str,
    changed: &ConfigChanged,
) -> anyhow::Result<()> {
    if ctx.json {
        print_json(changed)?;
    }
    match &changed.release {
        Some(release) => {
            let outcome = outcome(client, app, release).await?;
            if !ctx.json {
                outln!("{doing} and restarting {app}... {outcome}")?;
            }
        }
        None if !ctx.json => {
            outln!(
                "No change to {app}'s config (still v{})",
                changed.config.version
            )?;
        }
        None => {}
    }
    Ok(())
}

/// `KEY=VALUE` arguments; the value may be empty and may hold `=`.
fn parse_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut values = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            bail!("invalid config var `{pair}`: expected KEY=VALUE");
        };
        if values
            .insert(key.to_owned(), Some(value.to_owned()))
            .is_some()
        {
            bail!("{key} is given twice");
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        let pairs = ["A=1", "B=", "C=x=y", "URL=postgres://u:p@h/d?a=b"].map(String::from);
        let values = parse_pairs(&pairs).unwrap();
        let expected: BTreeMap<String, Option<String>> = [
            ("A", "1"),
            ("B", ""),
            ("C", "x=y"),
            ("URL", "postgres://u:p@h/d?a=b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v.to_owned())))
        .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn bad_pairs_are_refused() {
        for (pair, message) in [
            ("A", "invalid config var `A`: expected KEY=VALUE"),
            ("=1", "invalid config var `=1`: expected KEY=VALUE"),
        ] {
            assert_eq!(
                parse_pairs(&[pair.to_owned()]).unwrap_err().to_string(),
                message
            );
        }
        let twice = ["A=1", "A=2"].map(String::from);
        assert_eq!(
            parse_pairs(&twice).unwrap_err().to_string(),
            "A is given twice"
        );
    }
}
