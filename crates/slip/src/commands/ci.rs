//! `slip ci`: the app's test runs, one with its output, and testing without deploying.

use anyhow::bail;
use api_types::{CreateTestRun, TestRun};

use super::{Context, ExitStatus};
use crate::git::{Git, REMOTE};
use crate::output::{self, print_json};

/// Where `ci:run` pushes HEAD: the platform builds and tests it, and never releases it.
const CI_REF: &str = "refs/slipway/ci";

pub(crate) async fn list(ctx: &Context, limit: Option<u32>) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let runs = client.test_runs(&app, limit).await?;
    if ctx.json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        ctx.say(format_args!(
            "{app} has no test runs: they run on pushes to apps in a pipeline, and with `slip ci:run`"
        ))?;
        return Ok(());
    }
    output::print(&runs_table(&runs))?;
    Ok(())
}

pub(crate) async fn info(ctx: &Context, number: &str) -> anyhow::Result<()> {
    let Some(number) = number
        .trim_start_matches('#')
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
    else {
        bail!("invalid test run number {number:?}: give it as 4 (`slip ci` lists them)");
    };
    let (client, app) = ctx.client_and_app()?;
    let run = client.test_run(&app, number).await?;
    if ctx.json {
        return print_json(&run);
    }
    output::print(&run_info(&app, &run))?;
    Ok(())
}

/// Tests a build of the app again through the API, or pushes HEAD to the ref the platform
/// builds and tests without releasing; the exit status is the test's (git's, for a push).
pub(crate) async fn run(ctx: &Context, build: Option<&str>) -> anyhow::Result<()> {
    if let Some(build) = build {
        let Ok(build) = uuid::Uuid::parse_str(build) else {
            bail!("invalid build id {build:?}: `slip builds` lists them");
        };
        let (client, app) = ctx.client_and_app()?;
        let response = client
            .create_test_run(&app, &CreateTestRun { build: Some(build) })
            .await?;
        return super::ps::follow_events(response).await;
    }
    let git = Git::here();
    if git.remote_url(REMOTE)?.is_none() {
        bail!(
            "no git remote `{REMOTE}` here: run `slip ci:run` in the app's repository, or test a build with --build ID"
        );
    }
    if let Some(app) = &ctx.app
        && git.app()?.as_deref() != Some(app.as_str())
    {
        bail!(
            "the `{REMOTE}` remote here is not {app}'s: run it in {app}'s repository, or test a build with --build ID"
        );
    }
    let refspec = format!("HEAD:{CI_REF}");
    let status = tokio::task::spawn_blocking(move || {
        git.run_attached(&["push", "--force", REMOTE, &refspec])
    })
    .await??;
    if status.success() {
        return Ok(());
    }
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Err(ExitStatus(code.max(1)).into())
}

fn runs_table(runs: &[TestRun]) -> String {
    output::table(
        &["#", "STATUS", "COMMIT", "COMMAND", "BY", "CAUSE", "STARTED"],
        runs.iter().map(|r| {
            [
                r.number.to_string(),
                status(r),
                short(r.commit.as_deref()),
                r.command.clone(),
                r.created_by.clone(),
                r.cause.clone(),
                output::datetime(r.created_at),
            ]
        }),
    )
}

fn run_info(app: &str, run: &TestRun) -> String {
    let mut out = format!(
        "=== {app} test run #{}\n{}",
        run.number,
        output::fields(&[
            ("Status", status(run)),
            ("Command", run.command.clone()),
            (
                "Commit",
                run.commit.clone().unwrap_or_else(|| "-".to_owned())
            ),
            ("Build", run.build.to_string()),
            ("Image", run.image.clone()),
            ("Cause", run.cause.clone()),
            ("By", run.created_by.clone()),
            ("Started", output::datetime(run.created_at)),
            (
                "Finished",
                run.finished_at
                    .map_or_else(|| "-".to_owned(), output::datetime)
            ),
        ])
    );
    out.push_str("\n=== Output\n");
    let text = run.output.as_deref().unwrap_or_default();
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn status(run: &TestRun) -> String {
    match run.exit_status {
        Some(code) if code != 0 => format!("{} (exit {code})", run.status.as_str()),
        _ => run.status.as_str().to_owned(),
    }
}

fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "-".to_owned(), |c| c[..c.len().min(7)].to_owned())
}
