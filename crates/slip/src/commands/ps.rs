//! `ps`: the app's process types, and scaling them.

use std::collections::BTreeMap;

use std::io::Write as _;

use anyhow::{anyhow, bail};
use api_types::{Process, ProcessCount, Restart, RunCommand, RunEvent, Scale};

use super::{Context, ExitStatus};
use crate::cli::LogsArgs;
use crate::output::{self, outln, print_json};

pub(crate) async fn list(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let processes = client.processes(&app).await?;
    if ctx.json {
        return print_json(&processes);
    }
    let formation = client.formation(&app).await?;
    if formation.is_empty() {
        outln!("{app} has no process types yet: push code with `git push slipway main`")?;
        return Ok(());
    }
    output::print(&formation_table(&formation))?;
    if processes.is_empty() {
        outln!("\nNo processes are running.")?;
    } else {
        outln!("")?;
        output::print(&processes_table(&processes))?;
    }
    Ok(())
}

pub(crate) async fn restart(ctx: &Context, process_type: Option<String>) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let what = match &process_type {
        Some(t) => format!("{t} processes"),
        None => "all processes".to_owned(),
    };
    let processes = client.restart(&app, &Restart { process_type }).await?;
    if ctx.json {
        return print_json(&processes);
    }
    outln!("Restarting {what} of {app}... done")?;
    Ok(())
}

pub(crate) async fn logs(ctx: &Context, args: &LogsArgs) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let mut response = client
        .logs(&app, args.lines, args.process.as_deref(), args.follow)
        .await?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("the log stream broke off: {e}"))?
    {
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Context, command: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let response = client
        .run(
            &app,
            &RunCommand {
                command: command.to_owned(),
            },
        )
        .await?;
    follow_events(response).await
}

/// Prints a stream of NDJSON [`RunEvent`]s as it comes: the output, then the exit status as
/// this process's (non-zero is an [`ExitStatus`] error).
pub(crate) async fn follow_events(mut response: reqwest::Response) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("the connection to the process broke off: {e}"))?
    {
        pending.extend_from_slice(&chunk);
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let event: RunEvent = serde_json::from_slice(&line)
                .map_err(|e| anyhow!("the platform sent an unreadable event: {e}"))?;
            match event {
                RunEvent::Output(text) => {
                    writeln!(stdout, "{text}")?;
                    stdout.flush()?;
                }
                RunEvent::Exit(0) => return Ok(()),
                RunEvent::Exit(status) => {
                    return Err(ExitStatus(u8::try_from(status.clamp(1, 255)).unwrap_or(1)).into());
                }
                RunEvent::Error(message) => bail!("{message}"),
            }
        }
    }
    bail!("the process's output ended without its exit status: the connection was cut")
}

pub(crate) async fn scale(ctx: &Context, counts: &[String]) -> anyhow::Result<()> {
    let counts = parse_counts(counts)?;
    let (client, app) = ctx.client_and_app()?;
    let formation = client.scale(&app, &Scale { counts }).await?;
    if ctx.json {
        return print_json(&formation);
    }
    let now: Vec<String> = formation
        .iter()
        .map(|p| format!("{}={}", p.process_type, p.count))
        .collect();
    outln!("Scaling {app}... done, now {}", now.join(" "))?;
    Ok(())
}

fn formation_table(formation: &[ProcessCount]) -> String {
    let rows = formation.iter().map(|p| {
        [
            p.process_type.clone(),
            p.count.to_string(),
            p.command.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    output::table(&["TYPE", "COUNT", "COMMAND"], rows)
}

fn processes_table(processes: &[Process]) -> String {
    let rows = processes.iter().map(|p| {
        [
            p.name.clone(),
            p.state.to_string(),
            output::version(p.release),
            output::datetime(p.since),
            p.restarts.to_string(),
        ]
    });
    output::table(&["PROCESS", "STATE", "RELEASE", "SINCE", "RESTARTS"], rows)
}

/// `web=2 worker=1`; the server checks the types and limits.
fn parse_counts(args: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut counts = BTreeMap::new();
    for arg in args {
        let parsed = arg
            .split_once('=')
            .filter(|(kind, _)| !kind.is_empty())
            .and_then(|(kind, n)| Some((kind, n.parse::<u32>().ok()?)));
        let Some((kind, n)) = parsed else {
            bail!("invalid scale `{arg}`: expected TYPE=N, such as web=2");
        };
        if counts.insert(kind.to_owned(), n).is_some() {
            bail!("{kind} is given twice");
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn counts_parse_and_bad_ones_are_refused() {
        let counts = parse_counts(&["web=2".to_owned(), "worker=0".to_owned()]).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([("web".to_owned(), 2), ("worker".to_owned(), 0)])
        );
        for bad in ["web", "web=", "=2", "web=-1", "web=two", "web=2x"] {
            let err = parse_counts(&[bad.to_owned()]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid scale `{bad}`: expected TYPE=N, such as web=2")
            );
        }
        let err = parse_counts(&["web=1".to_owned(), "web=2".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "web is given twice");
    }

    #[test]
    fn formation_renders_as_a_table() {
        let formation = [
            ProcessCount {
                process_type: "web".to_owned(),
                count: 2,
                command: Some("python app.py".to_owned()),
            },
            ProcessCount {
                process_type: "worker".to_owned(),
                count: 0,
                command: None,
            },
        ];
        expect![[r#"
            TYPE    COUNT  COMMAND
            web     2      python app.py
            worker  0      -
        "#]]
        .assert_eq(&formation_table(&formation));
    }
}
