//! `apps`: create (with its git remote), list, show and destroy apps.

use anyhow::bail;
use api_types::{App, AppPatch, CreateApp};

use super::Context;
use crate::cli::{CreateArgs, DestroyArgs};
use crate::git::{self, Git};
use crate::output::{self, outln, print_json};

pub(crate) async fn create(ctx: &Context, args: CreateArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let app = client.create_app(&CreateApp { name: args.name }).await?;
    if ctx.json {
        print_json(&app)?;
    } else {
        outln!("Creating {}... done", app.name)?;
    }
    if !args.no_remote {
        match remote_note(&Git::here(), &app) {
            Ok(note) => ctx.say(format_args!("{note}"))?,
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }
    if !ctx.json {
        outln!("{}", app.url)?;
    }
    Ok(())
}

/// Adds the `slipway` remote when the current directory is a git work tree, and says what
/// it did; it never replaces a remote that points elsewhere.
fn remote_note(git: &Git, app: &App) -> anyhow::Result<String> {
    let (remote, url) = (git::REMOTE, &app.git_url);
    if !git.in_work_tree()? {
        return Ok(format!(
            "Not in a git repository: to push from one, run `git remote add {remote} {url}` there"
        ));
    }
    match git.remote_url(remote)? {
        Some(existing) if existing == *url => Ok(format!("Git remote {remote} already set: {url}")),
        Some(existing) => bail!(
            "git remote {remote} already points at {existing}; to push to {} instead, run `git remote set-url {remote} {url}`",
            app.name
        ),
        None => {
            git.add_remote(remote, url)?;
            Ok(format!("Git remote {remote} added: {url}"))
        }
    }
}

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let apps = ctx.client()?.apps().await?;
    if ctx.json {
        return print_json(&apps);
    }
    if apps.is_empty() {
        outln!("You have no apps: create one with `slip create NAME`")?;
        return Ok(());
    }
    let rows = apps
        .iter()
        .map(|a| [a.name.clone(), a.owner.clone(), a.url.clone()]);
    output::print(&output::table(&["NAME", "OWNER", "URL"], rows))?;
    Ok(())
}

pub(crate) async fn info(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let info = client.app(&app).await?;
    if ctx.json {
        return print_json(&info);
    }
    output::print(&output::app_info(&info))?;
    Ok(())
}

/// `slip stack:set container|buildpacks`.
pub(crate) async fn set_stack(ctx: &Context, stack: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let patch = AppPatch {
        stack: Some(stack.to_owned()),
    };
    let changed = client.patch_app(&app, &patch).await?;
    if ctx.json {
        return print_json(&changed);
    }
    outln!(
        "{app} is on the {} stack: {}",
        changed.stack,
        stack_note(&changed.stack)
    )?;
    Ok(())
}

/// `slip stack`.
pub(crate) async fn stack(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let info = client.app(&app).await?;
    if ctx.json {
        return print_json(&info.app);
    }
    let stack = &info.app.stack;
    outln!("{app} is on the {stack} stack: {}", stack_note(stack))?;
    Ok(())
}

fn stack_note(stack: &str) -> &'static str {
    if stack == "container" {
        "the next push builds from its Dockerfile (the one heroku.yml's build.docker names, else ./Dockerfile)"
    } else {
        "the next push builds with the buildpack that detects it (its Dockerfile only if none does)"
    }
}

pub(crate) async fn destroy(ctx: &Context, args: DestroyArgs) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    check_confirm(&app, args.confirm.as_deref())?;
    client.destroy_app(&app).await?;
    ctx.say(format_args!("Destroying {app}... done"))?;
    let git = Git::here();
    if git.app().ok().flatten().as_deref() == Some(app.as_str()) {
        match git.remove_remote(git::REMOTE) {
            Ok(()) => ctx.say(format_args!("Git remote {} removed", git::REMOTE))?,
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }
    Ok(())
}

fn check_confirm(app: &str, confirm: Option<&str>) -> anyhow::Result<()> {
    match confirm {
        Some(c) if c == app => Ok(()),
        Some(c) => bail!("--confirm {c} does not match the app {app}; nothing was destroyed"),
        None => bail!(
            "destroying {app} deletes its code, releases and config for good; to go ahead, run `slip apps:destroy -a {app} --confirm {app}`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_needs_the_name_confirmed() {
        assert!(check_confirm("demo", Some("demo")).is_ok());
        let err = check_confirm("demo", Some("dmeo")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--confirm dmeo does not match the app demo; nothing was destroyed"
        );
        let err = check_confirm("demo", None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("run `slip apps:destroy -a demo --confirm demo`"),
            "{err}"
        );
    }

    #[test]
    fn create_adds_the_remote_once_and_never_replaces_another() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        let app = |name: &str| App {
            name: name.to_owned(),
            owner: "ada".to_owned(),
            url: format!("http://{name}.localhost:8080"),
            git_url: format!("ssh://git@127.0.0.1:2222/{name}.git"),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            stack: "buildpacks".to_owned(),
        };
        let note = remote_note(&git, &app("demo")).unwrap();
        assert_eq!(
            note,
            "Not in a git repository: to push from one, run `git remote add slipway ssh://git@127.0.0.1:2222/demo.git` there"
        );
        let init = std::process::Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(init.success());
        let note = remote_note(&git, &app("demo")).unwrap();
        assert_eq!(
            note,
            "Git remote slipway added: ssh://git@127.0.0.1:2222/demo.git"
        );
        let note = remote_note(&git, &app("demo")).unwrap();
        assert_eq!(
            note,
            "Git remote slipway already set: ssh://git@127.0.0.1:2222/demo.git"
        );
        let err = remote_note(&git, &app("other")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "git remote slipway already points at ssh://git@127.0.0.1:2222/demo.git; to push to other instead, run `git remote set-url slipway ssh://git@127.0.0.1:2222/other.git`"
        );
        assert_eq!(git.app().unwrap().as_deref(), Some("demo"));
    }
}
