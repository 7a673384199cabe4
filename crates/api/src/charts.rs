//! An app's request metrics over the last hour and the last day, summarised and drawn as SVG
//! charts on the server (no JavaScript): requests per minute, latency p50/p95/p99, 5xx rate.
//!
//! The SVG is complete markup, safe to embed as it is: every text in it is escaped, it has
//! `role="img"`, a `<title>` and `<desc>` named by `aria-labelledby`, axis labels and a text
//! legend, and it scales with its container (`viewBox`, `width="100%"`). It names no colour:
//! axes and text are `currentColor`, each series has a class (`series-requests`,
//! `series-p50`, `series-p95`, `series-p99`, `series-errors`) for the stylesheet to colour,
//! and the latency lines differ by dash too, so they read without colour.

use std::fmt::Write as _;
use std::time::Duration;

use domain::LatencyHistogram;
use time::OffsetDateTime;

use crate::ApiError;

/// An app's metrics for the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppMetrics {
    /// The last 60 minutes, a point per minute.
    pub(crate) hour: MetricsWindow,
    /// The last 24 hours, a point per half hour.
    pub(crate) day: MetricsWindow,
}

/// One window's numbers and charts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricsWindow {
    pub(crate) summary: Summary,
    /// Requests per minute, latency, 5xx rate: in that order.
    pub(crate) charts: Vec<Chart>,
}

/// One window in numbers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) requests: u64,
    /// `requests` over the window's minutes.
    pub(crate) requests_per_minute: f64,
    pub(crate) p50: Option<Duration>,
    pub(crate) p95: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    /// 5xx answers over all answers, 0 to 1; `None` without requests.
    pub(crate) error_rate: Option<f64>,
}

/// A chart: its title, and complete `<svg …>` markup to embed as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) svg: String,
}

/// How one window is cut into points.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// `hour` or `day`: part of the charts' element ids.
    name: &'static str,
    /// What the window is, in words.
    label: &'static str,
    /// Minutes the summary covers, ending with the current minute.
    minutes: i64,
    /// Points drawn.
    points: usize,
    /// Minutes per point.
    width: i64,
    /// A time label every this many points.
    tick_every: usize,
}

const HOUR: Span = Span {
    name: "hour",
    label: "last hour",
    minutes: 60,
    points: 60,
    width: 1,
    tick_every: 15,
};

const DAY: Span = Span {
    name: "day",
    label: "last 24 hours",
    minutes: 24 * 60,
    points: 48,
    width: 30,
    tick_every: 12,
};

/// Reads the app's last day of minutes from the store and builds both windows.
pub(crate) async fn app_metrics(
    store: &store::Store,
    app: &store::App,
    now: OffsetDateTime,
) -> Result<AppMetrics, ApiError> {
    let since = now - time::Duration::minutes(DAY.minutes.max(DAY.points as i64 * DAY.width));
    let minutes = store.request_minutes(app, since).await?;
    Ok(build(&minutes, now))
}

/// Both windows from the app's minutes (any order; those outside a window are ignored).
pub(crate) fn build(minutes: &[store::RequestMinute], now: OffsetDateTime) -> AppMetrics {
    AppMetrics {
        hour: window(minutes, now, HOUR),
        day: window(minutes, now, DAY),
    }
}

/// One point of a chart: the requests of `width` minutes from `start`.
#[derive(Debug, Default, Clone)]
struct Point {
    /// Unix minute.
    start: i64,
    /// Minutes of it that have begun (the last point may be under way).
    minutes: i64,
    requests: u64,
    errors: u64,
    latency: LatencyHistogram,
}

fn unix_minute(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

fn window(minutes: &[store::RequestMinute], now: OffsetDateTime, span: Span) -> MetricsWindow {
    let current = unix_minute(now);
    // Points are aligned to the clock (half hours start at :00 and :30); the last is under way.
    let end = (current.div_euclid(span.width) + 1) * span.width;
    let start = end - span.width * span.points as i64;
    let mut points: Vec<Point> = (0..span.points)
        .map(|i| {
            let from = start + i as i64 * span.width;
            Point {
                start: from,
                minutes: (current + 1 - from).clamp(0, span.width),
                ..Point::default()
            }
        })
        .collect();
    let mut total = Point::default();
    let summary_from = current + 1 - span.minutes;
    for m in minutes {
        let minute = unix_minute(m.minute);
        if minute > current {
            continue;
        }
        if minute >= summary_from {
            total.requests += m.requests;
            total.errors += m.errors;
            total.latency.merge(&m.latency);
        }
        if minute >= start {
            let point = &mut points[usize::try_from((minute - start) / span.width).unwrap_or(0)];
            point.requests += m.requests;
            point.errors += m.errors;
            point.latency.merge(&m.latency);
        }
    }
    let summary = Summary {
        requests: total.requests,
        requests_per_minute: total.requests as f64 / span.minutes as f64,
        p50: total.latency.quantile(0.50),
        p95: total.latency.quantile(0.95),
        p99: total.latency.quantile(0.99),
        error_rate: (total.requests > 0).then(|| total.errors as f64 / total.requests as f64),
    };
    let empty = total.requests == 0 && points.iter().all(|p| p.requests == 0);
    let charts = charts(&points, span, empty);
    MetricsWindow { summary, charts }
}

fn charts(points: &[Point], span: Span, empty: bool) -> Vec<Chart> {
    let rate = |p: &Point| (p.minutes > 0).then(|| p.requests as f64 / p.minutes as f64);
    let quantile =
        |q: f64| move |p: &Point| p.latency.quantile(q).map(|d| d.as_secs_f64() * 1_000.0);
    let errors = |p: &Point| (p.requests > 0).then(|| p.errors as f64 * 100.0 / p.requests as f64);
    let per = if span.width == 1 {
        "a point per minute".to_owned()
    } else {
        format!("a point per {} minutes", span.width)
    };
    let specs = [
        ChartSpec {
            id: format!("chart-{}-requests", span.name),
            title: format!("Requests per minute, {}", span.label),
            unit: "requests/min",
            series: vec![Series::new(
                "requests",
                "Requests per minute",
                "",
                points,
                &rate,
            )],
            max_at_least: 1.0,
        },
        ChartSpec {
            id: format!("chart-{}-latency", span.name),
            title: format!("Latency, {}", span.label),
            unit: "ms",
            series: vec![
                Series::new("p50", "p50", "", points, &quantile(0.50)),
                Series::new("p95", "p95", "6 3", points, &quantile(0.95)),
                Series::new("p99", "p99", "2 3", points, &quantile(0.99)),
            ],
            max_at_least: 1.0,
        },
        ChartSpec {
            id: format!("chart-{}-errors", span.name),
            title: format!("5xx rate, {}", span.label),
            unit: "%",
            series: vec![Series::new(
                "errors",
                "5xx responses (%)",
                "",
                points,
                &errors,
            )],
            max_at_least: 1.0,
        },
    ];
    let times: Vec<i64> = points.iter().map(|p| p.start).collect();
    specs
        .into_iter()
        .map(|spec| Chart {
            svg: svg(&spec, &times, span, &per, empty),
            title: spec.title,
        })
        .collect()
}

struct ChartSpec {
    id: String,
    title: String,
    unit: &'static str,
    series: Vec<Series>,
    /// The value axis reaches at least this high, so a quiet app's chart is not all noise.
    max_at_least: f64,
}

struct Series {
    /// The CSS class's suffix: `series-{key}`.
    key: &'static str,
    name: &'static str,
    /// `stroke-dasharray`, or none.
    dash: &'static str,
    /// A value per point; `None` draws a gap.
    values: Vec<Option<f64>>,
}

impl Series {
    fn new(
        key: &'static str,
        name: &'static str,
        dash: &'static str,
        points: &[Point],
        value: &dyn Fn(&Point) -> Option<f64>,
    ) -> Series {
        Series {
            key,
            name,
            dash,
            values: points.iter().map(value).collect(),
        }
    }
}

// The drawing's coordinates (the viewBox); it scales to its container.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 628.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 196.0;

fn svg(spec: &ChartSpec, times: &[i64], span: Span, per: &str, empty: bool) -> String {
    let id = &spec.id;
    let max = spec
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(spec.max_at_least, |a, &b| a.max(b));
    let top = nice_ceiling(max);
    let x = |i: usize| {
        let n = times.len().saturating_sub(1).max(1) as f64;
        LEFT + (RIGHT - LEFT) * i as f64 / n
    };
    let y = |v: f64| BOTTOM - (BOTTOM - TOP) * (v / top);
    let description = describe(spec, span, per, empty);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-labelledby="{id}-title {id}-desc" class="chart" font-family="inherit" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(&spec.title),
        escape(&description),
    );
    // Value axis: gridlines and ticks.
    out.push_str(r#"<g class="grid" stroke="currentColor" stroke-opacity="0.15">"#);
    for step in 1..=4 {
        let v = top * f64::from(step) / 4.0;
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"/>"#,
            y = y(v)
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r#"<g class="axis" stroke="currentColor" stroke-width="1"><line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}"/></g>"#
    );
    out.push_str(r#"<g class="ticks" fill="currentColor">"#);
    for step in 0..=4 {
        let v = top * f64::from(step) / 4.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y(v) + 4.0,
            escape(&number(v)),
        );
    }
    for (i, &minute) in times.iter().enumerate() {
        if i % span.tick_every != 0 && i + 1 != times.len() {
            continue;
        }
        // The last point is labelled "now"; the others by their start, UTC.
        let label = if i + 1 == times.len() {
            "now".to_owned()
        } else {
            clock(minute)
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            BOTTOM + 16.0,
            escape(&label),
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">Time (UTC)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 36.0,
    );
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{LEFT}" y="{:.1}" text-anchor="start">{}</text>"#,
        TOP - 20.0,
        escape(spec.unit),
    );
    out.push_str("</g>");
    // The legend, in text, right-aligned above the plot.
    out.push_str(r#"<g class="legend" fill="currentColor">"#);
    let mut at = RIGHT;
    for series in spec.series.iter().rev() {
        let text_width = 7.0 * series.name.chars().count() as f64;
        let text_x = at - text_width;
        let line_x = text_x - 26.0;
        let _ = write!(
            out,
            r#"<line class="series series-{key}" x1="{line_x:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="currentColor" stroke-width="2"{dash}/><text x="{text_x:.1}" y="{:.1}">{}</text>"#,
            line_x + 20.0,
            TOP - 16.0,
            escape(series.name),
            key = series.key,
            ly = TOP - 20.0,
            dash = dash_attribute(series.dash),
        );
        at = line_x - 14.0;
    }
    out.push_str("</g>");
    if empty {
        let _ = write!(
            out,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" font-size="14">No requests</text>"#,
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0,
        );
    } else {
        for series in &spec.series {
            let _ = write!(
                out,
                r#"<g class="series series-{}" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"{}>"#,
                series.key,
                dash_attribute(series.dash),
            );
            // A run of points with values is a line; a lone one is a dot.
            let mut run: Vec<(f64, f64)> = Vec::new();
            let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
                match run.as_slice() {
                    [] => {}
                    [(px, py)] => {
                        let _ = write!(out, r#"<circle cx="{px:.1}" cy="{py:.1}" r="1.5"/>"#);
                    }
                    points => {
                        out.push_str(r#"<polyline points=""#);
                        for (n, (px, py)) in points.iter().enumerate() {
                            if n > 0 {
                                out.push(' ');
                            }
                            let _ = write!(out, "{px:.1},{py:.1}");
                        }
                        out.push_str(r#""/>"#);
                    }
                }
                run.clear();
            };
            for (i, value) in series.values.iter().enumerate() {
                match value {
                    Some(v) => run.push((x(i), y(*v))),
                    None => flush(&mut run, &mut out),
                }
            }
            flush(&mut run, &mut out);
            out.push_str("</g>");
        }
    }
    out.push_str("</svg>");
    out
}

fn dash_attribute(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    }
}

/// The chart in words, for screen readers: what it shows and each series' peak.
fn describe(spec: &ChartSpec, span: Span, per: &str, empty: bool) -> String {
    if empty {
        return format!("No requests in the {}.", span.label);
    }
    let peaks: Vec<String> = spec
        .series
        .iter()
        .map(|s| {
            let peak = s.values.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
            format!("{} peaks at {} {}", s.name, number(peak), spec.unit)
        })
        .collect();
    format!("{}, {per}: {}.", spec.title, peaks.join("; "))
}

/// The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `v`, so ticks at quarters are round.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|f| f * magnitude)
        .find(|&c| c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick's or a peak's number: whole when it is, else with up to two decimals; thousands
/// as `k`.
fn number(v: f64) -> String {
    if v >= 10_000.0 {
        return format!("{}k", trim(v / 1_000.0, 1));
    }
    trim(v, 2)
}

fn trim(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `HH:MM` of a Unix minute, UTC.
fn clock(minute: i64) -> String {
    let day_minute = minute.rem_euclid(24 * 60);
    format!("{:02}:{:02}", day_minute / 60, day_minute % 60)
}

/// Text as XML character data or an attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 16:20:30 UTC);

    /// A minute `ago` minutes before NOW's, with `ok` fast answers and `failed` slow 5xx ones.
    fn minute(ago: i64, ok: u64, failed: u64) -> store::RequestMinute {
        let mut latency = LatencyHistogram::new();
        for _ in 0..ok {
            latency.record(Duration::from_millis(8));
        }
        for _ in 0..failed {
            latency.record(Duration::from_millis(400));
        }
        store::RequestMinute {
            minute: datetime!(2026-11-29 16:20 UTC) - time::Duration::minutes(ago),
            requests: ok + failed,
            errors: failed,
            latency,
        }
    }

    #[test]
    fn summaries_cover_the_last_hour_and_day() {
        let minutes = [
            minute(0, 30, 0),
            minute(59, 20, 10),
            // Out of the hour, in the day.
            minute(60, 100, 0),
            // Out of both.
            minute(24 * 60, 1_000, 1_000),
            // From the future (a clock ahead): ignored.
            minute(-5, 7, 7),
        ];
        let metrics = build(&minutes, NOW);
        let hour = &metrics.hour.summary;
        assert_eq!(hour.requests, 60);
        assert!((hour.requests_per_minute - 1.0).abs() < 1e-9);
        assert_eq!(hour.error_rate, Some(10.0 / 60.0));
        // 50 of 60 in (5, 10] ms, 10 in (250, 500]: p50 inside the first, p99 the slow ones.
        let p50 = hour.p50.unwrap().as_secs_f64();
        assert!((p50 - 0.008).abs() < 1e-6, "{hour:?}");
        assert!(hour.p99.unwrap() > Duration::from_millis(250), "{hour:?}");
        let day = &metrics.day.summary;
        assert_eq!(day.requests, 160);
        assert_eq!(day.error_rate, Some(10.0 / 160.0));
        assert_eq!(metrics.hour.charts.len(), 3);
        let titles: Vec<&str> = metrics
            .day
            .charts
            .iter()
            .map(|c| c.title.as_str())
            .collect();
        assert_eq!(
            titles,
            [
                "Requests per minute, last 24 hours",
                "Latency, last 24 hours",
                "5xx rate, last 24 hours"
            ]
        );
    }

    #[test]
    fn no_requests_draws_empty_charts_that_say_so() {
        let metrics = build(&[], NOW);
        let summary = &metrics.hour.summary;
        assert_eq!(summary.requests, 0);
        assert_eq!((summary.p50, summary.error_rate), (None, None));
        for chart in metrics.hour.charts.iter().chain(&metrics.day.charts) {
            assert!(chart.svg.contains(">No requests</text>"), "{}", chart.svg);
            assert!(!chart.svg.contains("<polyline"), "{}", chart.svg);
        }
    }

    #[test]
    fn an_empty_chart_in_full() {
        let metrics = build(&[], NOW);
        expect![[r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 240" width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-labelledby="chart-hour-errors-title chart-hour-errors-desc" class="chart" font-family="inherit" font-size="12"><title id="chart-hour-errors-title">5xx rate, last hour</title><desc id="chart-hour-errors-desc">No requests in the last hour.</desc><g class="grid" stroke="currentColor" stroke-opacity="0.15"><line x1="56" y1="155.5" x2="628" y2="155.5"/><line x1="56" y1="115.0" x2="628" y2="115.0"/><line x1="56" y1="74.5" x2="628" y2="74.5"/><line x1="56" y1="34.0" x2="628" y2="34.0"/></g><g class="axis" stroke="currentColor" stroke-width="1"><line x1="56" y1="196" x2="628" y2="196"/><line x1="56" y1="34" x2="56" y2="196"/></g><g class="ticks" fill="currentColor"><text x="50.0" y="200.0" text-anchor="end">0</text><text x="50.0" y="159.5" text-anchor="end">0.25</text><text x="50.0" y="119.0" text-anchor="end">0.5</text><text x="50.0" y="78.5" text-anchor="end">0.75</text><text x="50.0" y="38.0" text-anchor="end">1</text><text x="56.0" y="212.0" text-anchor="middle">15:21</text><text x="201.4" y="212.0" text-anchor="middle">15:36</text><text x="346.8" y="212.0" text-anchor="middle">15:51</text><text x="492.3" y="212.0" text-anchor="middle">16:06</text><text x="628.0" y="212.0" text-anchor="middle">now</text><text class="axis-label" x="342.0" y="232.0" text-anchor="middle">Time (UTC)</text><text class="axis-label" x="56" y="14.0" text-anchor="start">%</text></g><g class="legend" fill="currentColor"><line class="series series-errors" x1="483.0" y1="14.0" x2="503.0" y2="14.0" stroke="currentColor" stroke-width="2"/><text x="509.0" y="18.0">5xx responses (%)</text></g><text class="empty" x="342.0" y="115.0" text-anchor="middle" fill="currentColor" font-size="14">No requests</text></svg>"#]]
            .assert_eq(&metrics.hour.charts[2].svg);
    }

    #[test]
    fn charts_are_accessible_themeable_and_gapped_where_nothing_was_answered() {
        let minutes = [minute(0, 3, 1), minute(1, 2, 0), minute(10, 5, 5)];
        let metrics = build(&minutes, NOW);
        let latency = &metrics.hour.charts[1].svg;
        assert!(latency.starts_with("<svg "), "{latency}");
        assert!(latency.ends_with("</svg>"));
        for needle in [
            r#"role="img""#,
            r#"aria-labelledby="chart-hour-latency-title chart-hour-latency-desc""#,
            r#"<title id="chart-hour-latency-title">Latency, last hour</title>"#,
            r#"viewBox="0 0 640 240""#,
            r#"width="100%""#,
            r#"class="series series-p50""#,
            r#"class="series series-p95""#,
            r#"class="series series-p99""#,
            ">p50</text>",
            ">Time (UTC)</text>",
            ">ms</text>",
            ">now</text>",
        ] {
            assert!(latency.contains(needle), "{needle} in {latency}");
        }
        // No colour is named: only currentColor, for the stylesheet to theme.
        for attribute in ["fill=\"", "stroke=\""] {
            for (at, _) in latency.match_indices(attribute) {
                let value = &latency[at + attribute.len()..];
                assert!(
                    value.starts_with("currentColor\"") || value.starts_with("none\""),
                    "{}",
                    &latency[at..at + 30]
                );
            }
        }
        // Minutes 1 and 0 are one line; minute 10 stands alone, a dot.
        let p50 = latency
            .split(r#"class="series series-p50""#)
            .nth(2)
            .unwrap();
        let p50 = &p50[..p50.find("</g>").unwrap()];
        assert_eq!(p50.matches("<polyline").count(), 1, "{p50}");
        assert_eq!(p50.matches("<circle").count(), 1, "{p50}");
        // Every point has a value in the requests chart: one line, zeros included.
        let requests = &metrics.hour.charts[0].svg;
        assert_eq!(requests.matches("<polyline").count(), 1);
        assert!(
            requests.contains("Requests per minute peaks at 10 requests/min"),
            "{requests}"
        );
    }

    #[test]
    fn day_points_are_half_hours_on_the_clock() {
        // 16:20 is in the half hour from 16:00, the last point; 15:59 in the one before.
        let metrics = build(&[minute(0, 30, 0), minute(21, 60, 0)], NOW);
        let requests = &metrics.day.charts[0].svg;
        // 30 requests over the 21 minutes begun of the last half hour; 60 over 30 before it.
        assert!(requests.contains("peaks at 2 requests/min"), "{requests}");
        // The first point is yesterday's 16:30; a time label every 6 hours, then "now".
        for tick in [
            ">16:30</text>",
            ">22:30</text>",
            ">04:30</text>",
            ">10:30</text>",
            ">now</text>",
        ] {
            assert!(requests.contains(tick), "{tick} in {requests}");
        }
    }

    #[test]
    fn text_is_escaped_and_numbers_are_round() {
        assert_eq!(
            escape(r#"<b a="1">&'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
        let ceilings: Vec<f64> = [0.0, 0.3, 1.0, 1.2, 2.2, 3.0, 7.0, 11.0, 480.0]
            .into_iter()
            .map(nice_ceiling)
            .collect();
        assert_eq!(ceilings, [1.0, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 500.0]);
        let numbers: Vec<String> = [0.0, 0.25, 1.5, 2.0, 12_500.0, 1.0 / 3.0]
            .into_iter()
            .map(number)
            .collect();
        assert_eq!(numbers, ["0", "0.25", "1.5", "2", "12.5k", "0.33"]);
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(24 * 60 + 61), "01:01");
    }
}
