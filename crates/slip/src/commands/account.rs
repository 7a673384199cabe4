//! `register`, `login`, `logout` and `whoami`: the user's account and the saved login.

use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use api_types::{Credentials, Session};

use super::Context;
use crate::cli::AccountArgs;
use crate::client::{Client, parse_base_url};
use crate::credentials::{self, Saved};
use crate::output::{self, fields, outln, print_json};

pub(crate) async fn register(ctx: &Context, args: AccountArgs) -> anyhow::Result<()> {
    let url = platform_url(&args.url)?;
    let path = ctx.credentials_path()?;
    // Logged in to this platform already: register with that login, so an admin can
    // create users when registration is closed. Never send a token to another platform.
    let token = credentials::load(&path)?
        .filter(|saved| same_platform(&saved.url, &url))
        .map(|saved| saved.token);
    let password = password(args.password, true)?;
    let credentials = Credentials {
        username: args.username,
        password,
    };
    let session = match Client::new(&url, token.clone())?
        .register(&credentials)
        .await
    {
        // A stale saved token: register as anyone may.
        Err(e) if token.is_some() && e.code() == Some("unauthorized") => {
            Client::new(&url, None)?.register(&credentials).await?
        }
        result => result?,
    };
    let Session { user, token } = session;
    match token {
        Some(token) => {
            credentials::save(
                &path,
                &Saved {
                    url: url.clone(),
                    username: user.username.clone(),
                    token,
                },
            )?;
            if ctx.json {
                return print_json(&user);
            }
            let admin = if user.admin { " (admin)" } else { "" };
            outln!(
                "Registered {}{admin} at {url}; you are logged in",
                user.username
            )?;
        }
        None => {
            if ctx.json {
                return print_json(&user);
            }
            outln!("Created user {}", user.username)?;
        }
    }
    Ok(())
}

pub(crate) async fn login(ctx: &Context, args: AccountArgs) -> anyhow::Result<()> {
    let url = platform_url(&args.url)?;
    let path = ctx.credentials_path()?;
    let password = password(args.password, false)?;
    let session = Client::new(&url, None)?
        .login(&Credentials {
            username: args.username,
            password,
        })
        .await?;
    let Some(token) = session.token else {
        bail!(
            "the server logged {} in but sent no token",
            session.user.username
        );
    };
    let user = session.user;
    credentials::save(
        &path,
        &Saved {
            url: url.clone(),
            username: user.username.clone(),
            token,
        },
    )?;
    if ctx.json {
        return print_json(&user);
    }
    outln!("Logged in as {} at {url}", user.username)?;
    Ok(())
}

pub(crate) async fn logout(ctx: &Context) -> anyhow::Result<()> {
    if ctx.env.is_some() {
        bail!(
            "the login comes from SLIPWAY_TOKEN, not from `slip login`: unset SLIPWAY_URL and SLIPWAY_TOKEN, or revoke the token with `slip tokens:revoke ID`"
        );
    }
    let saved = ctx.saved()?;
    match Client::new(&saved.url, Some(saved.token))?.logout().await {
        Ok(()) => {}
        // Revoked or expired already: forgetting it is all that is left to do.
        Err(e) if e.code() == Some("unauthorized") => {}
        Err(e) => return Err(e.into()),
    }
    credentials::remove(&ctx.credentials_path()?)?;
    ctx.say(format_args!(
        "Logged out {} at {}",
        saved.username, saved.url
    ))?;
    Ok(())
}

pub(crate) async fn whoami(ctx: &Context) -> anyhow::Result<()> {
    let (url, source) = match &ctx.env {
        Some(env) => (env.url.clone(), " (from SLIPWAY_TOKEN)"),
        None => (ctx.saved()?.url, ""),
    };
    let user = ctx.client()?.whoami().await?;
    if ctx.json {
        return print_json(&user);
    }
    let admin = if user.admin { " (admin)" } else { "" };
    outln!("{}{admin} at {url}{source}", user.username)?;
    Ok(())
}

pub(crate) async fn platform(ctx: &Context, url: Option<String>) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => platform_url(&url)?,
        None => match &ctx.env {
            Some(env) => env.url.clone(),
            None => ctx.saved()?.url,
        },
    };
    let info = Client::new(&url, None)?.info().await?;
    if ctx.json {
        return print_json(&info);
    }
    let registration = if info.registration_open {
        "open"
    } else {
        "closed: admins create users"
    };
    let text = fields(&[
        ("Version", info.version),
        ("Git URL", info.git_url),
        ("Domain", info.domain),
        ("Registration", registration.to_owned()),
    ]);
    output::print(&format!("=== {url}\n{text}"))?;
    Ok(())
}

/// The URL as it is saved: checked, without a trailing slash.
fn platform_url(text: &str) -> anyhow::Result<String> {
    parse_base_url(text)?;
    Ok(text.trim_end_matches('/').to_owned())
}

fn same_platform(a: &str, b: &str) -> bool {
    match (parse_base_url(a), parse_base_url(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The password from `--password` or `SLIPWAY_PASSWORD`, else typed at a prompt.
fn password(given: Option<String>, confirm: bool) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: use --password or SLIPWAY_PASSWORD, or run slip in a terminal to type it"
        );
    }
    std::io::stdout().flush()?;
    let password = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    if confirm {
        let again =
            rpassword::prompt_password("Password (again): ").context("cannot read the password")?;
        if again != password {
            bail!("the passwords do not match");
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_compare_as_urls() {
        assert!(same_platform(
            "http://127.0.0.1:7100",
            "http://127.0.0.1:7100/"
        ));
        assert!(same_platform(
            "HTTP://LOCALHOST:7100",
            "http://localhost:7100"
        ));
        assert!(same_platform("http://localhost:80", "http://localhost"));
        assert!(!same_platform(
            "http://127.0.0.1:7100",
            "http://127.0.0.1:7101"
        ));
        assert!(!same_platform(
            "http://127.0.0.1:7100",
            "https://127.0.0.1:7100"
        ));
        assert!(!same_platform("http://127.0.0.1:7100", "not a url"));
    }

    #[test]
    fn saved_urls_lose_their_trailing_slash() {
        assert_eq!(
            platform_url("http://127.0.0.1:7100/").unwrap(),
            "http://127.0.0.1:7100"
        );
        assert!(platform_url("127.0.0.1:7100").is_err());
    }
}
