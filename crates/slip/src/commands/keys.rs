//! `keys`: the SSH public keys that may `git push`; `tokens`: the API tokens that are logged in.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use api_types::{AddKey, CreateToken};

use super::{Context, read_file};
use crate::output::{self, datetime, outln, print_json};

/// The keys `keys:add` looks for, in order, under `~/.ssh`.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"];

/// Your keys; with an explicit `-a APP`, that app's deploy keys.
pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let app = ctx.explicit_app();
    let keys = match app {
        Some(app) => client.deploy_keys(app).await?,
        None => client.keys().await?,
    };
    if ctx.json {
        return print_json(&keys);
    }
    if keys.is_empty() {
        match app {
            Some(app) => outln!(
                "{app} has no deploy keys: add one with `slip keys:add --app {app} --deploy-key FILE`"
            )?,
            None => outln!("You have no SSH keys: add one with `slip keys:add`")?,
        }
        return Ok(());
    }
    let rows = keys.iter().map(|k| {
        [
            k.fingerprint.clone(),
            k.comment.clone(),
            datetime(k.created_at),
        ]
    });
    output::print(&output::table(&["FINGERPRINT", "COMMENT", "ADDED"], rows))?;
    Ok(())
}

/// Adds one of your keys, or with `--app APP --deploy-key FILE` a deploy key of that app.
/// The app must be given explicitly: a key limited to an app never takes it from the
/// directory it runs in.
pub(crate) async fn add(
    ctx: &Context,
    path: Option<PathBuf>,
    deploy_key: Option<PathBuf>,
) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let app = ctx.explicit_app();
    let (path, app) = match (deploy_key, app) {
        (Some(file), Some(app)) => (file, Some(app)),
        (Some(_), None) => bail!("a deploy key belongs to one app: give it with --app APP"),
        (None, Some(app)) => bail!(
            "to add a deploy key to {app}, give its file with --deploy-key FILE; to add your own key, leave out --app"
        ),
        (None, None) => (path.map_or_else(default_key, Ok)?, None),
    };
    let public_key = public_key(&read_file(&path)?, &path)?;
    let key = match app {
        Some(app) => client.add_deploy_key(app, &AddKey { public_key }).await?,
        None => client.add_key(&AddKey { public_key }).await?,
    };
    if ctx.json {
        return print_json(&key);
    }
    let comment = if key.comment.is_empty() {
        String::new()
    } else {
        format!(" ({})", key.comment)
    };
    let what = match app {
        Some(app) => format!("deploy key of {app}"),
        None => "SSH key".to_owned(),
    };
    outln!(
        "Adding {what} {}... done, {}{comment}",
        path.display(),
        key.fingerprint
    )?;
    Ok(())
}

/// Removes one of your keys; with an explicit `-a APP`, one of that app's deploy keys.
pub(crate) async fn remove(ctx: &Context, key: &str) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match ctx.explicit_app() {
        Some(app) => {
            client.remove_deploy_key(app, key).await?;
            ctx.say(format_args!("Removing deploy key {key} of {app}... done"))?;
        }
        None => {
            client.remove_key(key).await?;
            ctx.say(format_args!("Removing SSH key {key}... done"))?;
        }
    }
    Ok(())
}

/// Makes a token for automation and prints its secret once, alone on stdout (so that
/// `TOKEN=$(slip tokens:create ...)` takes it); what it is goes to stderr. Scoped only to
/// an explicit `--app`.
pub(crate) async fn create_token(
    ctx: &Context,
    description: String,
    expires_in: Option<String>,
    scope: Option<String>,
) -> anyhow::Result<()> {
    let app = ctx.explicit_app().map(str::to_owned);
    if scope.is_some() && app.is_none() {
        bail!("--scope limits the token to one app: give it with --app APP");
    }
    let created = ctx
        .client()?
        .create_token(&CreateToken {
            description,
            expires_in,
            app,
            scope,
        })
        .await?;
    if ctx.json {
        return print_json(&created);
    }
    let token = &created.token;
    let limit = match (&token.app, &token.scope) {
        (Some(app), Some(scope)) => format!("{scope} on {app}"),
        _ => "everything you may do".to_owned(),
    };
    eprintln!(
        "Created API token {} ({limit}), expires {}. It is shown only this once: keep it secret.",
        token.id,
        datetime(token.expires_at)
    );
    outln!("{}", created.secret)?;
    Ok(())
}

pub(crate) async fn tokens(ctx: &Context) -> anyhow::Result<()> {
    let tokens = ctx.client()?.tokens().await?;
    if ctx.json {
        return print_json(&tokens);
    }
    let rows = tokens.iter().map(|t| {
        let scope = match (&t.scope, &t.app) {
            (Some(scope), Some(app)) => format!("{scope} {app}"),
            _ => "all".to_owned(),
        };
        [
            t.id.to_string(),
            t.description.clone().unwrap_or_else(|| "login".to_owned()),
            scope,
            datetime(t.created_at),
            datetime(t.expires_at),
            if t.current { "this one" } else { "" }.to_owned(),
        ]
    });
    output::print(&output::table(
        &["ID", "DESCRIPTION", "SCOPE", "CREATED", "EXPIRES", ""],
        rows,
    ))?;
    Ok(())
}

pub(crate) async fn revoke_token(ctx: &Context, id: &str) -> anyhow::Result<()> {
    ctx.client()?.revoke_token(id).await?;
    ctx.say(format_args!("Revoking API token {id}... done"))?;
    Ok(())
}

fn default_key() -> anyhow::Result<PathBuf> {
    let ssh = dirs::home_dir()
        .ok_or_else(|| anyhow!("cannot find your home directory: give the key's PATH"))?
        .join(".ssh");
    DEFAULT_KEYS.iter().map(|name| ssh.join(name)).find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "no SSH public key in {}: looked for {}; give a PATH, or make one with `ssh-keygen -t ed25519`",
            ssh.display(),
            output::and_list(&DEFAULT_KEYS)
        )
    })
}

/// The first key line of a `.pub` file.
fn public_key(text: &str, path: &Path) -> anyhow::Result<String> {
    if text.trim_start().starts_with("-----BEGIN") {
        bail!("{} is a private key: give its .pub file", path.display());
    }
    match text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    {
        Some(line) => Ok(line.to_owned()),
        None => bail!("{} holds no public key", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_key_line_and_refuses_private_keys() {
        let path = Path::new("k.pub");
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq ada@laptop";
        assert_eq!(
            public_key(&format!("\n# mine\n{key}\n"), path).unwrap(),
            key
        );
        let err = public_key("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.pub is a private key: give its .pub file"
        );
        let err = public_key("\n\n", path).unwrap_err();
        assert_eq!(err.to_string(), "k.pub holds no public key");
    }
}
