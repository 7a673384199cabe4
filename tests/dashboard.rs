//! The dashboard in a real browser — Debian's headless Chromium driven over WebDriver —
//! against the real `slipwayd up` with a pushed app: sign in, set a config var and see its
//! release, roll back from the activity page, scale web to 2, restart, watch a live log line
//! arrive after a request to the app, read a build log, add a collaborator, use the keyboard
//! alone, and check every page with axe-core (WCAG 2 A and AA: labels, contrast, structure)
//! in light and dark. A screenshot of every page, light and dark, desktop and phone width,
//! lands in `target/test-output/dashboard/` for review.
//!
//! The security properties (CSRF, escaping, strangers, replayed sessions, throttled
//! passwords) are tested over HTTP in `crates/api/tests/dashboard.rs`.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, eventually, http_get, python_app};
use test_support::browser::{self, Browser, ColorScheme, Session, Viewport, test_output_dir};

/// How long a page may take to show what a change did (a deploy of the small app included).
const WAIT: Duration = Duration::from_secs(60);

/// axe-core, vendored (see `tests/assets/README.md`): the accessibility rules the pages must pass.
const AXE: &str = include_str!("assets/axe-core-4.14.1.min.js");

/// Pushes a small Python web app as `demo`: release v2, with a build and a release command.
fn owner_with_pushed_app(platform: &Platform) -> User {
    let mut ada = User::registered(platform, "ada");
    let dir = ada.home().join("demo");
    std::fs::create_dir_all(&dir).unwrap();
    ada.cwd = dir;
    ada.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(ada.cwd.join("app.py"), python_app("one")).unwrap();
    std::fs::write(
        ada.cwd.join("Procfile"),
        "release: echo migrated\nweb: python3 app.py\n",
    )
    .unwrap();
    ada.git(&["add", "-A"]).success();
    ada.git(&["commit", "-q", "-m", "one"]).success();
    ada.slip(&["create", "demo"]).success();
    ada.push_deployed();
    ada
}

#[test]
fn the_dashboard_in_a_browser() {
    if browser::skip() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let platform = runtime
        .block_on(Platform::start(Backend::Sqlite))
        .expect("SQLite is always there");
    let ada = owner_with_pushed_app(&platform);
    let _bob = User::registered_by(&platform, &ada, "bob");
    runtime.block_on(async {
        let output = test_output_dir("dashboard").await;
        let browser = Browser::start().await.expect("start chromedriver");
        let session = browser.session().await.expect("a browser session");
        let result = walk_through(&session, &platform, &output).await;
        session.close().await.expect("close the browser");
        result.expect("the walk through the dashboard");
    });
}

/// Everything the test does in the browser; an `Err` names the step that failed.
async fn walk_through(
    session: &Session,
    platform: &Platform,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    let api = &platform.api_url;
    let demo = format!("{api}/apps/demo");

    // Signed out, a page sends the browser to sign in, and back to it after.
    session.goto(&format!("{demo}/config")).await?;
    session.wait_for_text("h2", "Sign in", WAIT).await?;
    screenshots(session, output, "sign-in").await?;
    // Keyboard only: the username has focus, Tab reaches the password, Enter submits.
    session.active_element().await?.send_keys("ada").await?;
    session
        .active_element()
        .await?
        .send_keys(&Key::Tab.to_string())
        .await?;
    let focused = session.active_element().await?.attr("id").await?;
    anyhow::ensure!(
        focused.as_deref() == Some("password"),
        "Tab from the username reached {focused:?}"
    );
    session
        .active_element()
        .await?
        .send_keys(&format!("{}{}", slipway_e2e::PASSWORD, Key::Enter))
        .await?;
    session.wait_for_text("h1", "Config vars", WAIT).await?;
    let cookie = session
        .cookie("slipway_session")
        .await?
        .expect("a session cookie");
    anyhow::ensure!(
        cookie.http_only() == Some(true),
        "the session cookie is HttpOnly"
    );
    let from_script = session.execute("return document.cookie", vec![]).await?;
    anyhow::ensure!(
        !from_script
            .as_str()
            .unwrap_or_default()
            .contains("slipway_session"),
        "a script cannot read the session: {from_script}"
    );

    // The apps list and the overview.
    session.goto(&format!("{api}/")).await?;
    session.wait_for_text("table.apps", "demo", WAIT).await?;
    session.wait_for_text("table.apps", "v2", WAIT).await?;
    check_page(session, output, "apps").await?;

    // Set a config var: a new release, shown as such.
    session.goto(&format!("{demo}/config")).await?;
    session.fill("#new-key", "GREETING").await?;
    session.fill("#new-value", "hello <b>there</b>").await?;
    session.click("form.add button[type=submit]").await?;
    session
        .wait_for_text(".notice.ok", "Saved as v3", WAIT)
        .await?;
    let cell = session.text("table.config code").await?;
    anyhow::ensure!(cell == "GREETING", "the config table shows {cell:?}");
    // Masked until revealed; then the value is there, as text.
    let masked = session.find(Locator::Css("details.reveal")).await?;
    anyhow::ensure!(masked.attr("open").await?.is_none(), "values start masked");
    session.click("details.reveal summary").await?;
    let value = session
        .find(Locator::Css("details.reveal input[name=value]"))
        .await?
        .prop("value")
        .await?;
    anyhow::ensure!(
        value.as_deref() == Some("hello <b>there</b>"),
        "revealed {value:?}"
    );
    check_page(session, output, "config").await?;
    // Config values are secrets: htmx keeps no copy of the pages in the browser's storage.
    session.click("nav.app-nav a[href$='/activity']").await?;
    session.wait_for_text("h1", "Activity", WAIT).await?;
    let stored = session
        .execute("return localStorage.length", vec![])
        .await?;
    anyhow::ensure!(stored == 0, "the browser stored {stored} items");
    let router = &platform.router;
    eventually(WAIT, "the app to greet with the new config", || {
        http_get(router, "demo.localhost", "/")
            .is_ok_and(|(_, body)| body.starts_with("hello <b>there</b> one"))
    });

    // The activity page: v3 on top; roll back to v2 (the push) with its button.
    session.goto(&format!("{demo}/activity")).await?;
    session
        .wait_for_text("#v3", "ada added GREETING", WAIT)
        .await?;
    session
        .wait_for_text("#v3 .badge", "succeeded", WAIT)
        .await?;
    let phases = session
        .find(Locator::Css("#v2 svg.phases title"))
        .await?
        .html(true)
        .await?;
    anyhow::ensure!(
        phases.contains("build") && phases.contains("rollout"),
        "v2's phases: {phases}"
    );
    check_page(session, output, "activity").await?;
    // v3's release command ran (a config change runs it too), so the form asks for the
    // app's name before it goes back across it.
    session.click("#v2 details.rollback summary").await?;
    session
        .wait_for_text("#v2 details.rollback", "crosses v3", WAIT)
        .await?;
    check_page(session, output, "rollback").await?;
    session.fill("#confirm-v2", "demo").await?;
    session.click("#v2 details.rollback button").await?;
    session
        .wait_for_text(".notice.ok", "Rolled back as v4", WAIT)
        .await?;
    session
        .wait_for_text("#v4", "rolled back to v2", WAIT)
        .await?;
    eventually(WAIT, "the app to serve v2's config again", || {
        http_get(router, "demo.localhost", "/").is_ok_and(|(_, body)| body.starts_with("none one"))
    });

    // The build log of the push.
    session.click("#v2 .entry-meta a").await?;
    session
        .wait_for_text("#build-log", "-----> Building demo", WAIT)
        .await?;
    check_page(session, output, "build").await?;

    // Scale web to 2 from the overview.
    session.goto(&demo).await?;
    session.fill("#scale-web", "2").await?;
    session.click("form.inline button[type=submit]").await?;
    session.wait_for_text(".notice.ok", "Scaled.", WAIT).await?;
    check_page(session, output, "overview").await?;
    session.goto(&format!("{demo}/processes")).await?;
    session
        .wait_for_text("table.processes", "web.2", WAIT)
        .await?;

    // Restart all: the page answers once the new processes serve.
    session.click("section.card form button").await?;
    session
        .wait_for_text(".notice.ok", "Restarted", WAIT)
        .await?;
    check_page(session, output, "processes").await?;

    // Live logs: a request to the app shows up as it is written; pause stops the feed.
    session.goto(&format!("{demo}/logs?process=web")).await?;
    session.wait_for_text("#log-feed", "Live", WAIT).await?;
    // The feed is open once the server has sent its headers; poll until a line arrives.
    let probe = "/dashboard-probe?a=1&b=%3C2%3E";
    let mut seen = false;
    for _ in 0..30 {
        let _ = http_get(router, "demo.localhost", probe);
        if session
            .wait_for_text(
                "#log-lines",
                "GET /dashboard-probe?a=1&b=%3C2%3E",
                Duration::from_secs(1),
            )
            .await
            .is_ok()
        {
            seen = true;
            break;
        }
    }
    if !seen {
        let state = session
            .execute(
                "return 'htmx ' + typeof htmx + ', feed ' + document.querySelector('#log-feed').outerHTML \
                 + ', lines ' + document.querySelector('#log-lines').innerText.slice(-500)",
                vec![],
            )
            .await?;
        anyhow::bail!("no live log line arrived after requests to the app: {state}");
    }
    let escaped = session
        .find(Locator::Css("#log-lines"))
        .await?
        .html(true)
        .await?;
    anyhow::ensure!(
        escaped.contains("a=1&amp;b="),
        "the app's output is shown as text: {escaped}"
    );
    session.click("#log-feed a.button").await?;
    session.wait_for_text("#log-feed", "Paused", WAIT).await?;
    check_page(session, output, "logs").await?;

    // Add a collaborator.
    session.goto(&format!("{demo}/access")).await?;
    session.fill("#collaborator", "bob").await?;
    session.click("form.add button[type=submit]").await?;
    session.wait_for_text("table.people", "bob", WAIT).await?;
    check_page(session, output, "access").await?;

    // The router's counts reach the metrics page through the store (flushed every 10 s).
    let mut counted = String::new();
    for _ in 0..40 {
        session.goto(&format!("{demo}/metrics")).await?;
        counted = session.text(".metrics-summary .metric .value").await?;
        if counted != "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::ensure!(
        counted != "0",
        "the metrics page counted no requests in 20 s"
    );
    let chart = session
        .find(Locator::Css("figure.chart svg"))
        .await?
        .html(false)
        .await?;
    anyhow::ensure!(
        chart.contains("series-requests") && !chart.contains("No requests"),
        "{chart}"
    );
    check_page(session, output, "metrics").await?;

    // The rest of the pages, checked and photographed.
    for (path, page, heading) in [
        ("/domains", "domains", "Domains"),
        ("/settings", "settings", "Settings"),
    ] {
        session.goto(&format!("{demo}{path}")).await?;
        session.wait_for_text("h1", heading, WAIT).await?;
        check_page(session, output, page).await?;
    }

    // The skip link is the first stop of the keyboard on every app page.
    session.goto(&demo).await?;
    session
        .find(Locator::Css("body"))
        .await?
        .send_keys(&Key::Tab.to_string())
        .await?;
    let first = session.active_element().await?.text().await?;
    anyhow::ensure!(
        first == "Skip to content",
        "the first Tab stop is {first:?}"
    );

    // Signing out ends the session.
    session.click("form[action='/sign-out'] button").await?;
    session.wait_for_text("h2", "Sign in", WAIT).await?;
    session.goto(&demo).await?;
    session.wait_for_text("h2", "Sign in", WAIT).await?;
    Ok(())
}

/// Runs axe-core's WCAG 2 A and AA rules on the page in light and dark, then saves its four
/// screenshots.
async fn check_page(session: &Session, output: &std::path::Path, page: &str) -> anyhow::Result<()> {
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        session.set_color_scheme(scheme).await?;
        let (violations, passed) = axe(session).await?;
        anyhow::ensure!(passed >= 10, "{page}: axe-core checked only {passed} rules");
        anyhow::ensure!(
            violations.is_empty(),
            "{page} ({}) breaks accessibility rules: {}",
            scheme.name(),
            violations.join("; ")
        );
    }
    session.set_color_scheme(ColorScheme::Light).await?;
    session.set_viewport(Viewport::Desktop).await?;
    screenshots(session, output, page).await
}

async fn screenshots(
    session: &Session,
    output: &std::path::Path,
    page: &str,
) -> anyhow::Result<()> {
    let saved = session.screenshots(output, page).await?;
    anyhow::ensure!(saved.len() == 4, "{page}: {saved:?}");
    Ok(())
}

/// axe-core's violations on the current page, one line each (the rule, and where), and how
/// many rules the page passed.
async fn axe(session: &Session) -> anyhow::Result<(Vec<String>, u64)> {
    let loaded = session
        .execute("return typeof window.axe === 'object'", vec![])
        .await?;
    if loaded != Value::Bool(true) {
        session
            .execute(&format!("{AXE}\n;return true;"), vec![])
            .await?;
    }
    let result = session
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
               .then(r => done({passed: r.passes.length, violations: r.violations.map(v => v.id + ' (' + v.impact + '): ' + \
                 v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))}))\
               .catch(e => done({passed: 0, violations: ['axe failed: ' + e]}));",
            vec![],
        )
        .await?;
    let violations = result["violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((violations, result["passed"].as_u64().unwrap_or(0)))
}
