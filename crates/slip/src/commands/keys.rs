//! `keys`: the SSH public keys that may `git push`; `tokens`: the API tokens that are logged in.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use api_types::AddKey;

use super::{Context, read_file};
use crate::output::{self, datetime, outln, print_json};

/// The keys `keys:add` looks for, in order, under `~/.ssh`.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"];

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let keys = ctx.client()?.keys().await?;
    if ctx.json {
        return print_json(&keys);
    }
    if keys.is_empty() {
        outln!("You have no SSH keys: add one with `slip keys:add`")?;
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

pub(crate) async fn add(ctx: &Context, path: Option<PathBuf>) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let path = match path {
        Some(path) => path,
        None => default_key()?,
    };
    let public_key = public_key(&read_file(&path)?, &path)?;
    let key = client.add_key(&AddKey { public_key }).await?;
    if ctx.json {
        return print_json(&key);
    }
    let comment = if key.comment.is_empty() {
        String::new()
    } else {
        format!(" ({})", key.comment)
    };
    outln!(
        "Adding SSH key {}... done, {}{comment}",
        path.display(),
        key.fingerprint
    )?;
    Ok(())
}

pub(crate) async fn remove(ctx: &Context, key: &str) -> anyhow::Result<()> {
    ctx.client()?.remove_key(key).await?;
    ctx.say(format_args!("Removing SSH key {key}... done"))?;
    Ok(())
}

pub(crate) async fn tokens(ctx: &Context) -> anyhow::Result<()> {
    let tokens = ctx.client()?.tokens().await?;
    if ctx.json {
        return print_json(&tokens);
    }
    let rows = tokens.iter().map(|t| {
        [
            t.id.to_string(),
            datetime(t.created_at),
            datetime(t.expires_at),
            if t.current { "this one" } else { "" }.to_owned(),
        ]
    });
    output::print(&output::table(&["ID", "CREATED", "EXPIRES", ""], rows))?;
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
