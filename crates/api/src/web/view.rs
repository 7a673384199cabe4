//! What every page shares: the frame around it (who is signed in, the app's tabs), the
//! one-line notices after a change, and how times, durations and phases are shown.

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::session::Viewer;

/// Renders a page as `text/html`. A template that fails to render is the platform's bug.
pub(crate) fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(err) => crate::ApiError::Internal(format!("rendering a page: {err}")).into_response(),
    }
}

/// The frame of a page: the signed-in user, the CSRF token every form carries, and the
/// app's tabs when the page is one app's.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) username: String,
    pub(crate) csrf: String,
    pub(crate) title: String,
    pub(crate) app: Option<String>,
    pub(crate) tab: Tab,
    /// What the last change did, or why it was refused.
    pub(crate) notice: Option<Notice>,
}

impl Chrome {
    pub(crate) fn new(viewer: &Viewer, title: impl Into<String>) -> Chrome {
        Chrome {
            username: viewer.user.username.clone(),
            csrf: viewer.csrf_token.clone(),
            title: title.into(),
            app: None,
            tab: Tab::Apps,
            notice: None,
        }
    }

    pub(crate) fn app(viewer: &Viewer, app: &store::App, tab: Tab) -> Chrome {
        Chrome {
            app: Some(app.name.to_string()),
            tab,
            ..Chrome::new(viewer, format!("{} · {}", tab.label(), app.name))
        }
    }

    pub(crate) fn with_notice(mut self, notice: Option<Notice>) -> Chrome {
        self.notice = notice;
        self
    }

    /// The versioned URL of a static file (`dashboard.css`).
    pub(crate) fn asset(&self, name: &str) -> String {
        super::assets::url(name)
    }

    /// The app's tabs, with the current one marked.
    pub(crate) fn tabs(&self) -> Vec<(Tab, bool)> {
        Tab::APP.iter().map(|t| (*t, *t == self.tab)).collect()
    }
}

/// The pages of one app, in the order of its tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Apps,
    Overview,
    Activity,
    Config,
    Processes,
    Logs,
    Metrics,
    Access,
    Domains,
    Settings,
}

impl Tab {
    const APP: [Tab; 9] = [
        Tab::Overview,
        Tab::Activity,
        Tab::Config,
        Tab::Processes,
        Tab::Logs,
        Tab::Metrics,
        Tab::Access,
        Tab::Domains,
        Tab::Settings,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Tab::Apps => "Apps",
            Tab::Overview => "Overview",
            Tab::Activity => "Activity",
            Tab::Config => "Config",
            Tab::Processes => "Processes",
            Tab::Logs => "Logs",
            Tab::Metrics => "Metrics",
            Tab::Access => "Access",
            Tab::Domains => "Domains",
            Tab::Settings => "Settings",
        }
    }

    /// The tab's path under `/apps/<app>`.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Tab::Apps | Tab::Overview => "",
            Tab::Activity => "/activity",
            Tab::Config => "/config",
            Tab::Processes => "/processes",
            Tab::Logs => "/logs",
            Tab::Metrics => "/metrics",
            Tab::Access => "/access",
            Tab::Domains => "/domains",
            Tab::Settings => "/settings",
        }
    }
}

/// A one-line message at the top of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

impl Notice {
    pub(crate) fn error(text: impl Into<String>) -> Notice {
        Notice {
            ok: false,
            text: text.into(),
        }
    }
}

/// A refused change the viewer can act on — not found, conflicting or invalid input — as a
/// notice for the page to show again, with its status; any other failure stays an error.
pub(crate) fn refusal(
    err: crate::ApiError,
) -> Result<(Notice, axum::http::StatusCode), super::WebError> {
    use crate::ApiError;
    match err {
        ApiError::NotFound(_)
        | ApiError::Conflict(_)
        | ApiError::ConfirmationRequired(_)
        | ApiError::Invalid(_) => Ok((Notice::error(err.to_string()), err.status())),
        err => Err(err.into()),
    }
}

/// What a change did, named in the redirect after it (`?done=released&v=7`), so a reload
/// does not post again. Only these fixed texts can appear: a crafted link shows nothing
/// but them.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    v: Option<u32>,
}

impl Done {
    pub(crate) fn notice(&self) -> Option<Notice> {
        let release = || self.v.map_or_else(String::new, |v| format!(" as v{v}"));
        let text = match self.done.as_deref()? {
            "released" => format!("Saved{}: deploying it now.", release()),
            "unchanged" => "Nothing changed: the config already says that.".to_owned(),
            "rolled-back" => format!("Rolled back{}: deploying it now.", release()),
            "scaled" => "Scaled.".to_owned(),
            "restarted" => "Restarted: the new processes are up.".to_owned(),
            "added" => "Added.".to_owned(),
            "removed" => "Removed.".to_owned(),
            "saved" => "Saved.".to_owned(),
            _ => return None,
        };
        Some(Notice { ok: true, text })
    }
}

/// Where a change redirects: the page, with what it did.
pub(crate) fn done(path: &str, what: &str, version: Option<u32>) -> Response {
    let target = match version {
        Some(v) => format!("{path}?done={what}&v={v}"),
        None => format!("{path}?done={what}"),
    };
    axum::response::Redirect::to(&target).into_response()
}

/// Whether a `next` after signing in stays on the dashboard: a path of its own, not
/// another host (`//evil`, `/\evil`).
pub(crate) fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
}

/// Percent-encodes a query value.
pub(crate) fn query_escape(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// `2026-11-29 16:05 UTC`.
pub(crate) fn when(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(format).unwrap_or_default()
}

/// RFC 3339, for `<time datetime>`.
pub(crate) fn iso(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `just now`, `5 minutes ago`, `3 days ago`.
pub(crate) fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - at).whole_seconds().max(0);
    let (n, unit) = match seconds {
        0..=44 => return "just now".to_owned(),
        45..=5_399 => ((seconds + 30) / 60, "minute"),
        5_400..=129_599 => ((seconds + 1_800) / 3_600, "hour"),
        _ => ((seconds + 43_200) / 86_400, "day"),
    };
    let n = n.max(1);
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub(crate) fn duration(d: time::Duration) -> String {
    let ms = d.whole_milliseconds().max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1_000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms / 1_000) % 60),
    }
}

/// One phase of a release's way out: its name and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    pub(crate) took: time::Duration,
}

/// The phases as one small horizontal bar, each as wide as its share of the whole: SVG
/// (attributes, not inline styles, so the page's strict policy allows it), coloured by CSS
/// class, with the numbers in its title for screen readers and a hover.
pub(crate) fn phase_bar(phases: &[Phase]) -> String {
    let total: f64 = phases
        .iter()
        .map(|p| p.took.as_seconds_f64().max(0.0))
        .sum();
    if phases.is_empty() || total <= 0.0 {
        return String::new();
    }
    let label = phases
        .iter()
        .map(|p| format!("{} {}", p.name, duration(p.took)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut x = 0.0;
    let mut rects = String::new();
    for phase in phases {
        let width = phase.took.as_seconds_f64().max(0.0) / total * 100.0;
        rects.push_str(&format!(
            r#"<rect class="phase-{}" x="{x:.2}%" y="0" width="{width:.2}%" height="100%"/>"#,
            phase.name.replace(' ', "-")
        ));
        x += width;
    }
    format!(
        r#"<svg class="phases" role="img" aria-label="{label}" width="100%" height="8" preserveAspectRatio="none"><title>{label}</title>{rects}</svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        for ok in ["/", "/apps/demo", "/apps/demo/logs?process=web"] {
            assert!(safe_next(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "/a\nb",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let seen: Vec<String> = [0, 44, 45, 90, 3_599, 5_400, 86_399, 86_400 * 3]
            .into_iter()
            .map(|s| ago(now - time::Duration::seconds(s), now))
            .collect();
        assert_eq!(
            seen,
            [
                "just now",
                "just now",
                "1 minute ago",
                "2 minutes ago",
                "60 minutes ago",
                "2 hours ago",
                "24 hours ago",
                "3 days ago"
            ]
        );
    }

    #[test]
    fn durations_keep_their_precision_where_it_matters() {
        let shown: Vec<String> = [850, 12_345, 245_000]
            .into_iter()
            .map(|ms| duration(time::Duration::milliseconds(ms)))
            .collect();
        assert_eq!(shown, ["850 ms", "12.3 s", "4 min 05 s"]);
    }

    #[test]
    fn phases_share_the_bar_by_time() {
        let bar = phase_bar(&[
            Phase {
                name: "build",
                took: time::Duration::seconds(3),
            },
            Phase {
                name: "deploy",
                took: time::Duration::seconds(1),
            },
        ]);
        assert!(
            bar.contains(r#"class="phase-build" x="0.00%" y="0" width="75.00%""#),
            "{bar}"
        );
        assert!(bar.contains(r#"x="75.00%" y="0" width="25.00%""#), "{bar}");
        assert!(
            bar.contains("<title>build 3.0 s, deploy 1.0 s</title>"),
            "{bar}"
        );
        assert_eq!(phase_bar(&[]), "");
    }

    #[test]
    fn only_known_notices_show() {
        let done = |d: &str, v: Option<u32>| Done {
            done: Some(d.to_owned()),
            v,
        };
        assert_eq!(
            done("released", Some(7)).notice().unwrap().text,
            "Saved as v7: deploying it now."
        );
        assert!(done("<script>", None).notice().is_none());
    }
}
