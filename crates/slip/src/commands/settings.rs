//! `healthchecks`, `limits` and `autoscale`: per-process-type settings, as in Deis Workflow.
//! Each change waits until the platform has rolled the app out with it, then shows the
//! resulting settings of its kind.

use std::collections::BTreeMap;

use anyhow::bail;
use api_types::{Autoscale, CheckType, HealthCheck, HealthChecks, Limits, SetHealthCheck};

use super::Context;
use crate::cli::{CheckKind, HealthcheckSetArgs, ProbeKind};
use crate::output::{self, outln, print_json};

pub(crate) async fn health_checks(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let checks = client.health_checks(&app).await?;
    if ctx.json {
        return print_json(&checks);
    }
    if checks.is_empty() {
        outln!(
            "{app} has no health checks: add one with `slip healthchecks:set web readiness httpGet /health`"
        )?;
        return Ok(());
    }
    output::print(&health_checks_table(&checks))?;
    Ok(())
}

pub(crate) async fn set_health_check(
    ctx: &Context,
    args: HealthcheckSetArgs,
) -> anyhow::Result<()> {
    let body = health_check_body(&args)?;
    let (client, app) = ctx.client_and_app()?;
    let kind = kind_name(args.kind);
    let checks = client
        .set_health_check(&app, &args.process_type, kind, &body)
        .await?;
    let done = format!(
        "Setting the {kind} check of {} on {app}... done",
        args.process_type
    );
    show(ctx, &checks, &done, health_checks_table)
}

pub(crate) async fn unset_health_check(
    ctx: &Context,
    process_type: &str,
    kind: Option<ProbeKind>,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let kind = kind.map(kind_name);
    let checks = client.unset_health_check(&app, process_type, kind).await?;
    let what = match kind {
        Some(kind) => format!("the {kind} check"),
        None => "the health checks".to_owned(),
    };
    let done = format!("Removing {what} of {process_type} on {app}... done");
    show(ctx, &checks, &done, health_checks_table)
}

pub(crate) async fn limits(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let limits = client.limits(&app).await?;
    if ctx.json {
        return print_json(&limits);
    }
    if limits.is_empty() {
        outln!(
            "{app} has no limits: set them with `slip limits:set web --memory 512M --cpu 500m`"
        )?;
        return Ok(());
    }
    output::print(&limits_table(&limits))?;
    Ok(())
}

pub(crate) async fn set_limits(
    ctx: &Context,
    process_type: &str,
    memory: Option<String>,
    cpu: Option<String>,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let limits = client
        .set_limits(&app, process_type, &Limits { memory, cpu })
        .await?;
    let done = format!("Setting the limits of {process_type} on {app}... done");
    show(ctx, &limits, &done, limits_table)
}

pub(crate) async fn unset_limits(
    ctx: &Context,
    process_type: &str,
    memory: bool,
    cpu: bool,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let limits = client.unset_limits(&app, process_type, memory, cpu).await?;
    let what = match (memory, cpu) {
        (true, false) => "the memory limit",
        (false, true) => "the CPU limit",
        _ => "the limits",
    };
    let done = format!("Removing {what} of {process_type} on {app}... done");
    show(ctx, &limits, &done, limits_table)
}

pub(crate) async fn autoscale(ctx: &Context) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let autoscale = client.autoscale(&app).await?;
    if ctx.json {
        return print_json(&autoscale);
    }
    if autoscale.is_empty() {
        outln!(
            "{app} has no autoscaling: set it with `slip autoscale:set web --min 2 --max 10 --cpu-percent 70`"
        )?;
        return Ok(());
    }
    output::print(&autoscale_table(&autoscale))?;
    Ok(())
}

pub(crate) async fn set_autoscale(
    ctx: &Context,
    process_type: &str,
    autoscale: Autoscale,
) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let all = client.set_autoscale(&app, process_type, &autoscale).await?;
    let done = format!(
        "Autoscaling {process_type} on {app} from {} to {} processes at {}% CPU... done",
        autoscale.min, autoscale.max, autoscale.cpu_percent
    );
    show(ctx, &all, &done, autoscale_table)
}

pub(crate) async fn unset_autoscale(ctx: &Context, process_type: &str) -> anyhow::Result<()> {
    let (client, app) = ctx.client_and_app()?;
    let all = client.unset_autoscale(&app, process_type).await?;
    let done = format!(
        "Stopping autoscaling of {process_type} on {app}... done; `slip ps:scale` sets its count again"
    );
    show(ctx, &all, &done, autoscale_table)
}

/// A change's outcome: the JSON, or the line saying it is done and the settings' table.
fn show<T: serde::Serialize>(
    ctx: &Context,
    settings: &BTreeMap<String, T>,
    done: &str,
    table: fn(&BTreeMap<String, T>) -> String,
) -> anyhow::Result<()> {
    if ctx.json {
        return print_json(settings);
    }
    outln!("{done}")?;
    if !settings.is_empty() {
        outln!("")?;
        output::print(&table(settings))?;
    }
    Ok(())
}

fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Liveness => "liveness",
        ProbeKind::Readiness => "readiness",
    }
}

/// The request for `healthchecks:set`: httpGet takes one path; exec a command line, or a
/// program and its arguments (each passed as given, as `slip run` does).
fn health_check_body(args: &HealthcheckSetArgs) -> anyhow::Result<SetHealthCheck> {
    let (check_type, path, command) = match args.check {
        CheckKind::HttpGet => match args.target.as_slice() {
            [path] => (CheckType::HttpGet, Some(path.clone()), None),
            _ => bail!("an httpGet check takes one PATH, such as /health"),
        },
        CheckKind::Exec => {
            if args.port.is_some() {
                bail!("--port is for httpGet checks; an exec check runs a command");
            }
            let command = match args.target.as_slice() {
                [line] => line.clone(),
                words => words
                    .iter()
                    .map(|w| output::shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            (CheckType::Exec, None, Some(command))
        }
    };
    Ok(SetHealthCheck {
        check_type,
        path,
        port: args.port,
        command,
        period_seconds: args.period,
        timeout_seconds: args.timeout,
        failure_threshold: args.failure_threshold,
    })
}

fn describe(check: &HealthCheck) -> String {
    match check.check_type {
        CheckType::HttpGet => {
            let path = check.path.as_deref().unwrap_or("/");
            match check.port {
                Some(port) => format!("httpGet {path} on port {port}"),
                None => format!("httpGet {path}"),
            }
        }
        CheckType::Exec => format!("exec {}", check.command.as_deref().unwrap_or("")),
    }
}

fn health_checks_table(checks: &BTreeMap<String, HealthChecks>) -> String {
    let rows = checks.iter().flat_map(|(process_type, checks)| {
        [
            ("liveness", &checks.liveness),
            ("readiness", &checks.readiness),
        ]
        .into_iter()
        .filter_map(move |(kind, check)| {
            let check = check.as_ref()?;
            Some([
                process_type.clone(),
                kind.to_owned(),
                describe(check),
                format!("{}s", check.period_seconds),
                format!("{}s", check.timeout_seconds),
                check.failure_threshold.to_string(),
            ])
        })
    });
    output::table(
        &["TYPE", "CHECK", "DOES", "EVERY", "TIMEOUT", "FAILURES"],
        rows,
    )
}

fn limits_table(limits: &BTreeMap<String, Limits>) -> String {
    let rows = limits.iter().map(|(process_type, limits)| {
        [
            process_type.clone(),
            limits.memory.clone().unwrap_or_else(|| "-".to_owned()),
            limits.cpu.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    output::table(&["TYPE", "MEMORY", "CPU"], rows)
}

fn autoscale_table(autoscale: &BTreeMap<String, Autoscale>) -> String {
    let rows = autoscale.iter().map(|(process_type, a)| {
        [
            process_type.clone(),
            a.min.to_string(),
            a.max.to_string(),
            format!("{}%", a.cpu_percent),
        ]
    });
    output::table(&["TYPE", "MIN", "MAX", "CPU TARGET"], rows)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn set_args(check: CheckKind, target: &[&str], port: Option<u16>) -> HealthcheckSetArgs {
        HealthcheckSetArgs {
            process_type: "web".to_owned(),
            kind: ProbeKind::Readiness,
            check,
            target: target.iter().map(|t| (*t).to_owned()).collect(),
            port,
            period: Some(5),
            timeout: None,
            failure_threshold: None,
        }
    }

    #[test]
    fn health_check_requests_take_what_their_kind_needs() {
        let http = health_check_body(&set_args(CheckKind::HttpGet, &["/up"], Some(8080))).unwrap();
        assert_eq!(
            serde_json::to_value(&http).unwrap(),
            serde_json::json!({"type": "httpGet", "path": "/up", "port": 8080, "period_seconds": 5})
        );
        let words = health_check_body(&set_args(
            CheckKind::Exec,
            &["test", "-f", "/tmp/a b"],
            None,
        ));
        assert_eq!(
            words.unwrap().command.as_deref(),
            Some("test -f '/tmp/a b'")
        );
        let line = health_check_body(&set_args(CheckKind::Exec, &["pgrep -x worker"], None));
        assert_eq!(line.unwrap().command.as_deref(), Some("pgrep -x worker"));
        let two_paths = health_check_body(&set_args(CheckKind::HttpGet, &["/a", "/b"], None));
        assert_eq!(
            two_paths.unwrap_err().to_string(),
            "an httpGet check takes one PATH, such as /health"
        );
        let port = health_check_body(&set_args(CheckKind::Exec, &["true"], Some(80)));
        assert_eq!(
            port.unwrap_err().to_string(),
            "--port is for httpGet checks; an exec check runs a command"
        );
    }

    #[test]
    fn settings_render_as_tables() {
        let check = |check_type, path: Option<&str>, port, command: Option<&str>| HealthCheck {
            check_type,
            path: path.map(str::to_owned),
            port,
            command: command.map(str::to_owned),
            period_seconds: 10,
            timeout_seconds: 1,
            failure_threshold: 3,
        };
        let checks = BTreeMap::from([
            (
                "web".to_owned(),
                HealthChecks {
                    liveness: None,
                    readiness: Some(check(CheckType::HttpGet, Some("/health"), None, None)),
                },
            ),
            (
                "worker".to_owned(),
                HealthChecks {
                    liveness: Some(check(
                        CheckType::Exec,
                        None,
                        None,
                        Some("test -f /tmp/alive"),
                    )),
                    readiness: Some(check(CheckType::HttpGet, Some("/up"), Some(9000), None)),
                },
            ),
        ]);
        expect![[r#"
            TYPE    CHECK      DOES                      EVERY  TIMEOUT  FAILURES
            web     readiness  httpGet /health           10s    1s       3
            worker  liveness   exec test -f /tmp/alive   10s    1s       3
            worker  readiness  httpGet /up on port 9000  10s    1s       3
        "#]]
        .assert_eq(&health_checks_table(&checks));
        let limits = BTreeMap::from([
            (
                "web".to_owned(),
                Limits {
                    memory: Some("512Mi".to_owned()),
                    cpu: Some("500m".to_owned()),
                },
            ),
            (
                "worker".to_owned(),
                Limits {
                    memory: None,
                    cpu: Some("2".to_owned()),
                },
            ),
        ]);
        expect![[r#"
            TYPE    MEMORY  CPU
            web     512Mi   500m
            worker  -       2
        "#]]
        .assert_eq(&limits_table(&limits));
        let autoscale = BTreeMap::from([(
            "web".to_owned(),
            Autoscale {
                min: 2,
                max: 10,
                cpu_percent: 70,
            },
        )]);
        expect![[r#"
            TYPE  MIN  MAX  CPU TARGET
            web   2    10   70%
        "#]]
        .assert_eq(&autoscale_table(&autoscale));
    }
}
