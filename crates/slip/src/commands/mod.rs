//! Runs a parsed command: finds the login and the app it needs, calls the API, prints.

mod account;
mod apps;
mod builds;
mod certs;
mod ci;
mod config;
mod domains;
mod keys;
mod perms;
mod pipelines;
mod ps;
mod releases;
mod routing;
mod settings;

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use api_types::{Release, ReleaseStatus};

use crate::cli::{Action, Cli};
use crate::client::Client;
use crate::credentials::{self, Saved};
use crate::git::Git;

/// What every command may need: the global flags, the login from the environment, the app.
#[derive(Debug)]
pub(crate) struct Context {
    app: Option<String>,
    json: bool,
    /// `SLIPWAY_URL` and `SLIPWAY_TOKEN`: when set, the credentials file is never read.
    env: Option<EnvLogin>,
}

/// A login from the environment, for CI jobs. The token is a secret, so Debug leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EnvLogin {
    /// The platform's API, without a trailing slash.
    pub(crate) url: String,
    pub(crate) token: String,
}

impl std::fmt::Debug for EnvLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvLogin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Where the login comes from, given `SLIPWAY_URL` and `SLIPWAY_TOKEN` (empty counts as
/// unset): both set, them; neither, the credentials file (`None`); only one, an error, so
/// that a saved token is never sent to a URL from the environment, nor a token from the
/// environment to the saved URL.
pub(crate) fn env_login(
    url: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<Option<EnvLogin>> {
    let url = url.map(str::trim).filter(|v| !v.is_empty());
    let token = token.map(str::trim).filter(|v| !v.is_empty());
    match (url, token) {
        (Some(url), Some(token)) => Ok(Some(EnvLogin {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!(
            "SLIPWAY_URL is set but SLIPWAY_TOKEN is not: set both to use a token, or unset SLIPWAY_URL to use your saved login"
        ),
        (None, Some(_)) => bail!(
            "SLIPWAY_TOKEN is set but SLIPWAY_URL is not: set both to use the token, or unset SLIPWAY_TOKEN to use your saved login"
        ),
    }
}

impl Context {
    fn credentials_path(&self) -> anyhow::Result<PathBuf> {
        credentials::default_path()
    }

    /// The saved login, or the error that says how to log in.
    fn saved(&self) -> anyhow::Result<Saved> {
        credentials::load(&self.credentials_path()?)?
            .ok_or_else(|| anyhow!("not logged in: run `slip login URL`"))
    }

    /// A client of the platform the user is logged in to: the environment's login, else
    /// the saved one.
    fn client(&self) -> anyhow::Result<Client> {
        if let Some(env) = &self.env {
            return Client::new(&env.url, Some(env.token.clone()));
        }
        let saved = self.saved()?;
        Client::new(&saved.url, Some(saved.token))
    }

    /// The app from an explicit `-a/--app` only: what limits a token or a key to an app
    /// must never come from the directory it runs in.
    fn explicit_app(&self) -> Option<&str> {
        self.app.as_deref().filter(|app| !app.is_empty())
    }

    /// The app from `-a`, else from the `slipway` git remote of the current directory.
    fn app(&self) -> anyhow::Result<String> {
        if let Some(app) = self.app.as_ref().filter(|app| !app.is_empty()) {
            return Ok(app.clone());
        }
        Git::here().app()?.ok_or_else(|| {
            anyhow!("no app given: use -a APP or run inside a git repository with a slipway remote")
        })
    }

    /// A message for people: on stdout, or on stderr when `--json` keeps stdout for JSON.
    fn say(&self, message: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
        if self.json {
            eprintln!("{message}");
        } else {
            crate::output::write_line(message)?;
        }
        Ok(())
    }

    /// The logged-in client and the app, checking the login first.
    fn client_and_app(&self) -> anyhow::Result<(Client, String)> {
        let client = self.client()?;
        Ok((client, self.app()?))
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        app: cli.app,
        json: cli.json,
        env: env_login(
            std::env::var("SLIPWAY_URL").ok().as_deref(),
            std::env::var("SLIPWAY_TOKEN").ok().as_deref(),
        )?,
    };
    match cli.command.action() {
        Action::Register(args) => account::register(&ctx, args).await,
        Action::Login(args) => account::login(&ctx, args).await,
        Action::Logout => account::logout(&ctx).await,
        Action::Whoami => account::whoami(&ctx).await,
        Action::Platform { url } => account::platform(&ctx, url).await,
        Action::KeysList => keys::list(&ctx).await,
        Action::KeysAdd { path, deploy_key } => keys::add(&ctx, path, deploy_key).await,
        Action::KeysRemove { key } => keys::remove(&ctx, &key).await,
        Action::TokensList => keys::tokens(&ctx).await,
        Action::TokensCreate {
            description,
            expires_in,
            scope,
        } => keys::create_token(&ctx, description, expires_in, scope).await,
        Action::TokensRevoke { id } => keys::revoke_token(&ctx, &id).await,
        Action::AppsList => apps::list(&ctx).await,
        Action::AppsCreate(args) => apps::create(&ctx, args).await,
        Action::AppsInfo => apps::info(&ctx).await,
        Action::AppsDestroy(args) => apps::destroy(&ctx, args).await,
        Action::ConfigList { shell } => config::list(&ctx, shell).await,
        Action::ConfigGet { key } => config::get(&ctx, &key).await,
        Action::ConfigSet { pairs } => config::set(&ctx, &pairs).await,
        Action::ConfigUnset { keys } => config::unset(&ctx, &keys).await,
        Action::ConfigPull { file, overwrite } => config::pull(&ctx, &file, overwrite).await,
        Action::ConfigPush { file } => config::push(&ctx, &file).await,
        Action::ReleasesList { limit } => releases::list(&ctx, limit).await,
        Action::ReleasesInfo { version } => releases::info(&ctx, &version).await,
        Action::Rollback { version, confirm } => releases::rollback(&ctx, version, confirm).await,
        Action::Rebase => builds::rebase(&ctx).await,
        Action::CiList { limit } => ci::list(&ctx, limit).await,
        Action::CiInfo { number } => ci::info(&ctx, &number).await,
        Action::CiRun { build } => ci::run(&ctx, build.as_deref()).await,
        Action::Events {
            all,
            pipeline,
            limit,
        } => releases::events(&ctx, all, pipeline, limit).await,
        Action::Pipelines(command) => pipelines::run(&ctx, command).await,
        Action::Promotions(command) => pipelines::promotions(&ctx, command).await,
        Action::PsList => ps::list(&ctx).await,
        Action::PsScale { counts } => ps::scale(&ctx, &counts).await,
        Action::PsRestart { process_type } => ps::restart(&ctx, process_type).await,
        Action::HealthchecksList => settings::health_checks(&ctx).await,
        Action::HealthchecksSet(args) => settings::set_health_check(&ctx, args).await,
        Action::HealthchecksUnset { process_type, kind } => {
            settings::unset_health_check(&ctx, &process_type, kind).await
        }
        Action::LimitsList => settings::limits(&ctx).await,
        Action::LimitsSet {
            process_type,
            memory,
            cpu,
        } => settings::set_limits(&ctx, &process_type, memory, cpu).await,
        Action::LimitsUnset {
            process_type,
            memory,
            cpu,
        } => settings::unset_limits(&ctx, &process_type, memory, cpu).await,
        Action::AutoscaleList => settings::autoscale(&ctx).await,
        Action::AutoscaleSet {
            process_type,
            min,
            max,
            cpu_percent,
        } => {
            let autoscale = api_types::Autoscale {
                min,
                max,
                cpu_percent,
            };
            settings::set_autoscale(&ctx, &process_type, autoscale).await
        }
        Action::AutoscaleUnset { process_type } => {
            settings::unset_autoscale(&ctx, &process_type).await
        }
        Action::Logs(args) => ps::logs(&ctx, &args).await,
        Action::Run { command } => ps::run(&ctx, &command).await,
        Action::PermsList => perms::list(&ctx).await,
        Action::PermsAdd { username } => perms::add(&ctx, username).await,
        Action::PermsRemove { username } => perms::remove(&ctx, &username).await,
        Action::DomainsList => domains::list(&ctx).await,
        Action::DomainsAdd { domain } => domains::add(&ctx, domain).await,
        Action::DomainsVerify { domain } => domains::verify(&ctx, &domain).await,
        Action::DomainsRemove { domain } => domains::remove(&ctx, &domain).await,
        Action::StackSet { stack } => apps::set_stack(&ctx, &stack).await,
        Action::StackInfo => apps::stack(&ctx).await,
        Action::MaintenanceSet { on } => routing::maintenance(&ctx, on).await,
        Action::MaintenanceInfo => routing::maintenance_info(&ctx).await,
        Action::RoutingSet { enabled } => routing::enable(&ctx, enabled).await,
        Action::RoutingInfo => routing::info(&ctx).await,
        Action::WhitelistList => routing::whitelist(&ctx).await,
        Action::WhitelistAdd { ranges } => routing::whitelist_change(&ctx, &ranges, true).await,
        Action::WhitelistRemove { ranges } => routing::whitelist_change(&ctx, &ranges, false).await,
        Action::TlsEnable { hsts } => routing::tls(&ctx, true, hsts).await,
        Action::TlsDisable => routing::tls(&ctx, false, false).await,
        Action::TlsInfo => routing::tls_info(&ctx).await,
        Action::CertsList => certs::list(&ctx).await,
        Action::CertsAdd {
            name,
            certificate,
            key,
        } => certs::add(&ctx, name, &certificate, &key).await,
        Action::CertsInfo { name } => certs::info(&ctx, &name).await,
        Action::CertsRemove { name } => certs::remove(&ctx, &name).await,
        Action::CertsAttach { name, domain } => certs::attach(&ctx, &name, &domain, true).await,
        Action::CertsDetach { name, domain } => certs::attach(&ctx, &name, &domain, false).await,
        Action::BuildsList { limit } => builds::list(&ctx, limit).await,
        Action::BuildsInfo { id } => builds::info(&ctx, &id).await,
        Action::BuildsPurgeCache => builds::purge_cache(&ctx).await,
        Action::BuildsCreate { image, procfile } => builds::create(&ctx, image, &procfile).await,
    }
}

/// `v3` or `3` → 3.
fn parse_version(text: &str) -> anyhow::Result<u32> {
    let digits = text.strip_prefix(['v', 'V']).unwrap_or(text);
    match digits.parse::<u32>() {
        Ok(n) if n >= 1 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => bail!("invalid release version `{text}`: expected one such as v3"),
    }
}

/// How a command that made a release ends: `done, v3`, or an error when it failed.
/// How long `slip` waits for a release to finish deploying before it stops watching.
const DEPLOY_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Waits until the release is deployed (or fails), and says how it went.
async fn outcome(client: &Client, app: &str, release: &Release) -> anyhow::Result<String> {
    let v = release.version;
    let mut release = release.clone();
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(20);
    while matches!(
        release.status,
        ReleaseStatus::Pending | ReleaseStatus::Deploying
    ) {
        if started.elapsed() > DEPLOY_WAIT {
            return Ok(format!(
                "done, v{v} ({}; `slip releases` shows when it is deployed)",
                release.status
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
        release = client.release(app, v).await?.release;
    }
    match release.status {
        ReleaseStatus::Failed => match &release.reason {
            Some(reason) => bail!(
                "release v{v} of {app} failed: {reason}; the previous release keeps serving (`slip logs` shows the app's output)"
            ),
            None => bail!("release v{v} of {app} failed"),
        },
        _ => Ok(format!("done, v{v}")),
    }
}

/// A command that ran but failed with this exit status (`slip run`): `slip` exits with it
/// and prints nothing more.
#[derive(Debug)]
pub(crate) struct ExitStatus(pub(crate) u8);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exited with status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// Reads a file the user named, saying which one when it cannot.
fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_v() {
        assert_eq!(parse_version("v3").unwrap(), 3);
        assert_eq!(parse_version("V12").unwrap(), 12);
        assert_eq!(parse_version("3").unwrap(), 3);
        for bad in ["v0", "v", "", "v+3", "3.0", "vv3", "-1", "v99999999999"] {
            let err = parse_version(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid release version `{bad}`: expected one such as v3")
            );
        }
    }

    #[test]
    fn the_login_comes_from_both_variables_or_from_neither() {
        let both = env_login(Some("https://api.example.com/"), Some("slp_secret")).unwrap();
        assert_eq!(
            both,
            Some(EnvLogin {
                url: "https://api.example.com".to_owned(),
                token: "slp_secret".to_owned(),
            })
        );
        assert_eq!(
            format!("{:?}", both.unwrap()),
            r#"EnvLogin { url: "https://api.example.com", .. }"#,
            "the token stays out of Debug"
        );
        assert_eq!(env_login(None, None).unwrap(), None);
        assert_eq!(
            env_login(Some(""), Some(" ")).unwrap(),
            None,
            "empty is unset"
        );
        let only_url = env_login(Some("https://api.example.com"), None).unwrap_err();
        assert_eq!(
            only_url.to_string(),
            "SLIPWAY_URL is set but SLIPWAY_TOKEN is not: set both to use a token, or unset SLIPWAY_URL to use your saved login"
        );
        let only_token = env_login(Some(""), Some("slp_secret")).unwrap_err();
        assert_eq!(
            only_token.to_string(),
            "SLIPWAY_TOKEN is set but SLIPWAY_URL is not: set both to use the token, or unset SLIPWAY_TOKEN to use your saved login"
        );
        assert!(!only_token.to_string().contains("slp_secret"));
    }
}
