//! How `slip` shows things: borderless tables, `Label: value` blocks, times, shell quoting
//! and JSON. Rendering returns strings, so it is tested without a terminal; printing
//! returns an error on a closed pipe where `println!` would panic.

use std::io::Write as _;

use api_types::{
    AppInfo, Build, Event, Pipeline, PipelineSummary, Promotion, Release, ReleaseInfo,
};
use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// Writes a line to stdout, returning the error (such as a closed pipe) instead of
/// panicking as `println!` does.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

pub(crate) fn write_line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    outln!("{text}")?;
    Ok(())
}

/// Prints a block of text that already ends with a newline.
pub(crate) fn print(text: &str) -> std::io::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())
}

/// A table with a header row and no borders, columns two spaces apart.
pub(crate) fn table<R, C>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_cell_alignment(CellAlignment::Left);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned() + "\n")
        .collect()
}

/// `Label:  value` lines, the values aligned; a value's further lines are indented to match.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(label, _)| label.len() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let mut lines = value.split('\n');
        let first = format!(
            "{:width$}  {}",
            format!("{label}:"),
            lines.next().unwrap_or("")
        );
        out.push_str(first.trim_end());
        out.push('\n');
        for line in lines {
            let line = format!("{:width$}  {line}", "");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// `2026-11-26 14:00`, in UTC.
pub(crate) fn datetime(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .unwrap_or_else(|_| t.to_string())
}

/// The first seven characters of a commit, or `-`.
pub(crate) fn short_commit(commit: Option<&str>) -> String {
    match commit {
        Some(c) if !c.is_empty() => c.chars().take(7).collect(),
        _ => "-".to_owned(),
    }
}

/// `v3`.
pub(crate) fn version(v: u32) -> String {
    format!("v{v}")
}

/// Joins names as `A, B and C`.
pub(crate) fn and_list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

pub(crate) fn releases_table(releases: &[Release]) -> String {
    table(
        &["VERSION", "STATUS", "COMMIT", "SUMMARY", "CREATED"],
        releases.iter().map(|r| {
            [
                version(r.version),
                r.status.to_string(),
                short_commit(r.commit.as_deref()),
                r.summary.clone(),
                datetime(r.created_at),
            ]
        }),
    )
}

pub(crate) fn events_table(events: &[Event]) -> String {
    table(
        &["TIME", "APP", "BY", "ACTION", "DETAIL"],
        events.iter().map(|e| {
            [
                datetime(e.created_at),
                e.app.clone().unwrap_or_else(|| "-".to_owned()),
                e.actor.clone(),
                e.action.clone(),
                e.detail.clone(),
            ]
        }),
    )
}

pub(crate) fn pipelines_table(pipelines: &[PipelineSummary]) -> String {
    table(
        &["PIPELINE", "OWNER", "APPS", "CREATED"],
        pipelines.iter().map(|p| {
            [
                p.name.clone(),
                p.owner.clone(),
                p.apps.to_string(),
                datetime(p.created_at),
            ]
        }),
    )
}

/// A pipeline's stages in order: each app's current release and how far it is behind the
/// stage before it, and each stage's gates.
pub(crate) fn pipeline_info(pipeline: &Pipeline) -> String {
    let mut rows = Vec::new();
    for stage in &pipeline.stages {
        let mut gates = Vec::new();
        if stage.protected {
            gates.push("protected");
        }
        if stage.auto_promote {
            gates.push("auto-promote");
        }
        let gates = if gates.is_empty() {
            "-".to_owned()
        } else {
            gates.join(", ")
        };
        if stage.apps.is_empty() {
            rows.push([
                stage.stage.clone(),
                gates,
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ]);
            continue;
        }
        for app in &stage.apps {
            let behind: Vec<String> = app
                .behind
                .iter()
                .map(|b| {
                    let releases = match b.releases {
                        Some(0) => "up to date".to_owned(),
                        Some(1) => "1 release".to_owned(),
                        Some(n) => format!("{n} releases"),
                        None => "runs none of its builds".to_owned(),
                    };
                    let commits = match (b.releases, b.commits) {
                        (Some(0), _) | (None, _) => String::new(),
                        (_, Some(1)) => ", 1 commit".to_owned(),
                        (_, Some(n)) => format!(", {n} commits"),
                        (_, None) => ", commits unknown".to_owned(),
                    };
                    format!("{}: {releases}{commits}", b.upstream)
                })
                .collect();
            rows.push([
                stage.stage.clone(),
                gates.clone(),
                app.name.clone(),
                app.release.map_or_else(|| "-".to_owned(), version),
                short_commit(app.commit.as_deref()),
                if behind.is_empty() {
                    "-".to_owned()
                } else {
                    behind.join("; ")
                },
            ]);
        }
    }
    let mut text = format!("=== {} (managed by {})\n", pipeline.name, pipeline.owner);
    text += &table(
        &["STAGE", "GATES", "APP", "RELEASE", "COMMIT", "BEHIND"],
        rows,
    );
    if pipeline.hidden_apps > 0 {
        text += &format!("({} more app(s) you may not see)\n", pipeline.hidden_apps);
    }
    text
}

pub(crate) fn promotions_table(promotions: &[Promotion]) -> String {
    table(
        &[
            "#",
            "FROM",
            "TO",
            "COMMIT",
            "STATUS",
            "ASKED BY",
            "DECIDED BY",
            "RELEASE",
        ],
        promotions.iter().map(|p| {
            [
                p.number.to_string(),
                format!("{} {}", p.source_app, version(p.source_version)),
                p.target_app.clone(),
                short_commit(p.commit.as_deref()),
                p.status.clone(),
                format!("{} {}", p.requested_by, datetime(p.requested_at)),
                p.decided_by.clone().unwrap_or_else(|| "-".to_owned()),
                p.release.map_or_else(|| "-".to_owned(), version),
            ]
        }),
    )
}

pub(crate) fn release_info(app: &str, info: &ReleaseInfo) -> String {
    let r = &info.release;
    let mut pairs = vec![
        ("Status", r.status.to_string()),
        ("Summary", r.summary.clone()),
    ];
    if let Some(reason) = &r.reason {
        pairs.push(("Reason", reason.clone()));
    }
    pairs.extend([
        (
            "Build",
            r.build.map_or_else(|| "-".to_owned(), |b| b.to_string()),
        ),
        ("Commit", r.commit.clone().unwrap_or_else(|| "-".to_owned())),
        ("By", r.created_by.clone()),
        ("Created", datetime(r.created_at)),
    ]);
    let mut out = format!("=== {app} {}\n{}", version(r.version), fields(&pairs));
    if info.config.is_empty() {
        out.push_str("Config:   (none)\n");
    } else {
        out.push_str("Config:\n");
        let config: Vec<(&str, String)> = info
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        for line in fields(&config).lines() {
            if !line.is_empty() {
                out.push_str("  ");
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

pub(crate) fn build_info(app: &str, build: &Build) -> String {
    let mut out = format!(
        "=== {app} build {}\n{}",
        build.id,
        fields(&[
            ("Status", build.status.to_string()),
            (
                "Commit",
                build.commit.clone().unwrap_or_else(|| "-".to_owned())
            ),
            (
                "Image",
                build.image.clone().unwrap_or_else(|| "-".to_owned())
            ),
            (
                "Pushed",
                build
                    .pushed_bytes
                    .map_or_else(|| "-".to_owned(), |b| format!("{b} bytes"))
            ),
            ("By", build.created_by.clone()),
            ("Created", datetime(build.created_at)),
            (
                "Finished",
                build.finished_at.map_or_else(|| "-".to_owned(), datetime)
            ),
        ])
    );
    if build.procfile.is_empty() {
        out.push_str("Process types:  (none)\n");
    } else {
        out.push_str("Process types:\n");
        for (kind, command) in &build.procfile {
            out.push_str(&format!("  {kind}: {command}\n"));
        }
    }
    if let Some(log) = build.log.as_deref().filter(|l| !l.is_empty()) {
        out.push_str("\n=== Build log\n");
        out.push_str(log);
        if !log.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub(crate) fn app_info(info: &AppInfo) -> String {
    fn joined<'a>(items: impl IntoIterator<Item = &'a str>, separator: &str) -> String {
        let items: Vec<&str> = items.into_iter().collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(separator)
        }
    }
    let release = match &info.latest_release {
        Some(r) => {
            let commit = r
                .commit
                .as_deref()
                .map_or(String::new(), |c| format!(" {}", short_commit(Some(c))));
            format!("{} {}{commit}: {}", version(r.version), r.status, r.summary)
        }
        None => "none".to_owned(),
    };
    let processes: Vec<String> = info
        .formation
        .iter()
        .map(|p| format!("{}={}", p.process_type, p.count))
        .collect();
    let a = &info.app;
    let text = fields(&[
        ("Owner", a.owner.clone()),
        ("Web URL", a.url.clone()),
        ("Git URL", a.git_url.clone()),
        ("Release", release),
        (
            "Processes",
            joined(processes.iter().map(String::as_str), " "),
        ),
        (
            "Domains",
            joined(info.domains.iter().map(|d| d.domain.as_str()), ", "),
        ),
        (
            "Collaborators",
            joined(info.collaborators.iter().map(|c| c.username.as_str()), ", "),
        ),
        ("Created", datetime(a.created_at)),
    ]);
    format!("=== {}\n{text}", a.name)
}

/// A value as a POSIX shell reads it back: bare when safe, else single-quoted.
pub(crate) fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-.,/:@%+=".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    use api_types::{BuildStatus, ReleaseStatus};
    use expect_test::expect;
    use time::macros::datetime;

    use super::*;

    fn release(
        version: u32,
        status: ReleaseStatus,
        commit: Option<&str>,
        summary: &str,
    ) -> Release {
        Release {
            version,
            summary: summary.to_owned(),
            status,
            reason: (status == ReleaseStatus::Failed)
                .then(|| "web did not become healthy in 60s".to_owned()),
            build: None,
            commit: commit.map(str::to_owned),
            created_by: "ada".to_owned(),
            created_at: datetime!(2026-11-26 14:00:59 +01:00)
                + time::Duration::minutes(i64::from(version)),
            deploy_started_at: None,
            deploy_finished_at: None,
        }
    }

    #[test]
    fn releases_render_as_a_borderless_table() {
        let releases = [
            release(
                5,
                ReleaseStatus::Deploying,
                Some("0123456789abcdef"),
                "ada deployed 0123456",
            ),
            release(
                4,
                ReleaseStatus::Failed,
                Some("fedcba9876543210"),
                "bob deployed fedcba9",
            ),
            release(3, ReleaseStatus::Succeeded, None, "ada added GREETING"),
            release(
                2,
                ReleaseStatus::Succeeded,
                Some("abc1234"),
                "ada deployed abc1234",
            ),
            release(
                1,
                ReleaseStatus::Succeeded,
                None,
                "ada created initial release",
            ),
        ];
        expect![[r#"
            VERSION  STATUS     COMMIT   SUMMARY                      CREATED
            v5       deploying  0123456  ada deployed 0123456         2026-11-26 13:05
            v4       failed     fedcba9  bob deployed fedcba9         2026-11-26 13:04
            v3       succeeded  -        ada added GREETING           2026-11-26 13:03
            v2       succeeded  abc1234  ada deployed abc1234         2026-11-26 13:02
            v1       succeeded  -        ada created initial release  2026-11-26 13:01
        "#]]
        .assert_eq(&releases_table(&releases));
    }

    #[test]
    fn an_empty_table_is_its_header() {
        expect![[r#"
            VERSION  STATUS  COMMIT  SUMMARY  CREATED
        "#]]
        .assert_eq(&releases_table(&[]));
    }

    #[test]
    fn release_info_shows_reason_and_config() {
        let info = ReleaseInfo {
            release: release(
                4,
                ReleaseStatus::Failed,
                Some("fedcba9876543210"),
                "bob deployed fedcba9",
            ),
            config: BTreeMap::from([
                ("GREETING".to_owned(), "hi".to_owned()),
                ("MULTI".to_owned(), "line one\n  line two".to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://db/x".to_owned()),
            ]),
        };
        expect![[r#"
            === demo v4
            Status:   failed
            Summary:  bob deployed fedcba9
            Reason:   web did not become healthy in 60s
            Build:    -
            Commit:   fedcba9876543210
            By:       ada
            Created:  2026-11-26 13:04
            Config:
              DATABASE_URL:  postgres://db/x
              GREETING:      hi
              MULTI:         line one
                               line two
        "#]]
        .assert_eq(&release_info("demo", &info));
    }

    #[test]
    fn build_info_lists_process_types() {
        let build = Build {
            id: "0190a4b2-0000-7000-8000-000000000001".parse().unwrap(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
            status: BuildStatus::Running,
            procfile: BTreeMap::from([("web".to_owned(), "python app.py".to_owned())]),
            image: None,
            pushed_bytes: Some(402),
            created_by: "ada".to_owned(),
            created_at: datetime!(2026-11-26 14:00 UTC),
            finished_at: None,
            log: Some(
                "-----> Building demo from 0123456...\n-----> Procfile app detected\n".to_owned(),
            ),
        };
        expect![[r#"
            === demo build 0190a4b2-0000-7000-8000-000000000001
            Status:    running
            Commit:    0123456789abcdef0123456789abcdef01234567
            Image:     -
            Pushed:    402 bytes
            By:        ada
            Created:   2026-11-26 14:00
            Finished:  -
            Process types:
              web: python app.py

            === Build log
            -----> Building demo from 0123456...
            -----> Procfile app detected
        "#]]
        .assert_eq(&build_info("demo", &build));
    }

    #[test]
    fn and_list_joins_names() {
        assert_eq!(and_list(&[] as &[&str]), "");
        assert_eq!(and_list(&["A"]), "A");
        assert_eq!(and_list(&["A", "B"]), "A and B");
        assert_eq!(and_list(&["A", "B", "C"]), "A, B and C");
    }

    /// A real shell reads every quoted value back unchanged.
    #[test]
    fn shell_quote_round_trips_through_sh() {
        let values = [
            "plain",
            "",
            "two words",
            "it's",
            "$HOME `id` \\",
            "a\nb",
            "'",
            "*",
        ];
        let script: String = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("V{i}={}\nprintf '%s\\0' \"$V{i}\"\n", shell_quote(v)))
            .collect();
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(back, values);
    }
}
