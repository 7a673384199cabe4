//! The browser harness against a tiny page served by axum: a form post, an HttpOnly cookie,
//! dark mode and a phone viewport seen by the page's CSS, screenshots, two sessions at once,
//! and no browser process left behind by a closed, a dropped or a panicking test.

use std::time::Duration;

use axum::Form;
use axum::http::{HeaderMap, header};
use axum::response::{AppendHeaders, Html, IntoResponse};
use axum::routing::{get, post};
use slipway_test_support::browser::{
    self, Browser, ColorScheme, Session, Viewport, png_size, processes_in_group,
    processes_with_arg, test_output_dir,
};

const WAIT: Duration = Duration::from_secs(10);

const PAGE: &str = r#"<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { background: rgb(255, 255, 255); color: rgb(0, 0, 0); font-family: sans-serif; }
  #layout::after { content: "wide"; }
  @media (prefers-color-scheme: dark) { body { background: rgb(0, 0, 0); color: rgb(255, 255, 255); } }
  @media (max-width: 600px) { #layout::after { content: "narrow"; } }
</style></head>
<body><h1>Harness</h1><p id="layout"></p>
<form method="post" action="/greet"><label for="name">Name</label>
<input id="name" name="name" value="placeholder"><button type="submit">Greet</button></form>
<div style="height: 1500px">a tall page, for the full-page screenshot</div><p>the end</p>
</body></html>"#;

#[derive(serde::Deserialize)]
struct Greet {
    name: String,
}

async fn greet(Form(form): Form<Greet>) -> impl IntoResponse {
    let name = form
        .name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                "sid=s3cret; HttpOnly; SameSite=Lax; Path=/",
            ),
            (header::SET_COOKIE, "plain=visible; Path=/"),
        ]),
        Html(format!("<p id=\"out\">Hello, {name}!</p>")),
    )
}

/// Shows the Cookie header the browser sent.
async fn cookies(headers: HeaderMap) -> Html<String> {
    let sent = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .replace('<', "&lt;");
    Html(format!("<p id=\"sent\">{sent}</p>"))
}

/// Serves the page on a free loopback port; returns its base URL.
async fn serve() -> String {
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/greet", post(greet))
        .route("/cookies", get(cookies));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn eval(session: &Session, js: &str) -> anyhow::Result<serde_json::Value> {
    Ok(session.execute(js, vec![]).await?)
}

/// The live processes started with the browser profile `profile`.
async fn profile_processes(profile: &std::path::Path) -> Vec<i32> {
    let arg = format!("--user-data-dir={}", profile.display());
    tokio::task::spawn_blocking(move || processes_with_arg(&arg))
        .await
        .unwrap()
}

async fn exists(path: &std::path::Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap()
}

#[tokio::test]
async fn a_form_posts_and_its_httponly_cookie_is_readable_and_replayable() -> anyhow::Result<()> {
    if browser::skip() {
        return Ok(());
    }
    let base = serve().await;
    let browser = Browser::start().await?;
    let session = browser.session().await?;
    session.goto(&base).await?;
    session.fill("#name", "<b>Ada</b>").await?;
    session.click("button[type=submit]").await?;
    let out = session
        .wait_for_text("#out", "Hello, <b>Ada</b>!", WAIT)
        .await?;
    assert_eq!(out.text().await?, "Hello, <b>Ada</b>!");

    // The page's scripts cannot see the HttpOnly cookie; WebDriver can.
    assert_eq!(
        eval(&session, "return document.cookie").await?,
        "plain=visible"
    );
    let sid = session.cookie("sid").await?.expect("the sid cookie is set");
    assert_eq!(sid.value(), "s3cret");
    assert_eq!(sid.http_only(), Some(true));
    assert!(session.cookie("absent").await?.is_none());

    // A cookie set through the harness is sent, and stays HttpOnly.
    session.set_cookie(&base, "replayed", "v1", true).await?;
    let replayed = session
        .cookie("replayed")
        .await?
        .expect("the replayed cookie is set");
    assert_eq!(replayed.http_only(), Some(true));
    session.goto(&format!("{base}/cookies")).await?;
    let sent = session.text("#sent").await?;
    assert!(
        sent.contains("sid=s3cret") && sent.contains("replayed=v1"),
        "{sent}"
    );

    // Waiting for text that never comes fails, saying what was there.
    let err = session
        .wait_for_text("#sent", "nowhere", Duration::from_millis(200))
        .await
        .expect_err("the text is not on the page");
    assert!(err.to_string().contains("sid=s3cret"), "{err}");

    // Closing leaves no process of that browser, nor its profile.
    let profile = session.profile_dir().to_owned();
    assert!(!profile_processes(&profile).await.is_empty());
    session.close().await?;
    assert_eq!(profile_processes(&profile).await, Vec::<i32>::new());
    assert!(!exists(&profile).await);
    Ok(())
}

#[tokio::test]
async fn dark_mode_and_the_phone_viewport_reach_the_pages_css() -> anyhow::Result<()> {
    if browser::skip() {
        return Ok(());
    }
    let base = serve().await;
    let browser = Browser::start().await?;
    let session = browser.session().await?;
    session.goto(&base).await?;
    let dark = "return matchMedia('(prefers-color-scheme: dark)').matches";
    let background = "return getComputedStyle(document.body).backgroundColor";
    let size = "return [innerWidth, innerHeight]";
    let layout = "return getComputedStyle(document.getElementById('layout'), '::after').content";

    assert_eq!(eval(&session, dark).await?, false);
    assert_eq!(eval(&session, background).await?, "rgb(255, 255, 255)");
    session.set_color_scheme(ColorScheme::Dark).await?;
    assert_eq!(eval(&session, dark).await?, true);
    assert_eq!(eval(&session, background).await?, "rgb(0, 0, 0)");
    // It lasts across pages.
    session.goto(&base).await?;
    assert_eq!(eval(&session, dark).await?, true);
    session.set_color_scheme(ColorScheme::Light).await?;
    assert_eq!(eval(&session, dark).await?, false);

    assert_eq!(eval(&session, size).await?, serde_json::json!([1280, 800]));
    assert_eq!(eval(&session, layout).await?, "\"wide\"");
    session.set_viewport(Viewport::Phone).await?;
    assert_eq!(eval(&session, size).await?, serde_json::json!([390, 844]));
    assert_eq!(eval(&session, layout).await?, "\"narrow\"");
    session.goto(&base).await?;
    assert_eq!(eval(&session, size).await?, serde_json::json!([390, 844]));
    session.set_viewport(Viewport::Desktop).await?;
    assert_eq!(eval(&session, size).await?, serde_json::json!([1280, 800]));
    session.close().await?;
    Ok(())
}

#[tokio::test]
async fn screenshots_show_a_page_light_and_dark_on_desktop_and_phone() -> anyhow::Result<()> {
    if browser::skip() {
        return Ok(());
    }
    let base = serve().await;
    let dir = test_output_dir("browser-screenshots").await;
    let browser = Browser::start().await?;
    let session = browser.session().await?;
    session.goto(&base).await?;
    let saved = session.screenshots(&dir, "harness").await?;
    let names: Vec<_> = saved
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "harness-light-desktop.png",
            "harness-dark-desktop.png",
            "harness-light-phone.png",
            "harness-dark-phone.png"
        ]
    );
    let mut pngs = Vec::new();
    for path in &saved {
        let png = tokio::fs::read(path).await?;
        let (width, height) = png_size(&png).expect("a PNG");
        // Whole pages: as wide as the viewport, taller than it (the page is ~1700 px tall).
        let expected_width = if path.to_str().unwrap().ends_with("phone.png") {
            390
        } else {
            1280
        };
        assert_eq!(width, expected_width, "{}", path.display());
        assert!(height > 1500, "{} is {height} px tall", path.display());
        pngs.push(png);
    }
    assert_ne!(pngs[0], pngs[1], "light and dark look the same");
    assert_ne!(pngs[2], pngs[3], "light and dark look the same on a phone");

    // The session is left light and desktop.
    let looks = "return [matchMedia('(prefers-color-scheme: dark)').matches, innerWidth]";
    assert_eq!(
        eval(&session, looks).await?,
        serde_json::json!([false, 1280])
    );

    let err = session
        .screenshots(&dir, "../escape")
        .await
        .expect_err("not a plain name");
    assert!(err.to_string().contains("not a plain page name"), "{err}");
    session.close().await?;
    Ok(())
}

#[tokio::test]
async fn two_sessions_in_one_browser_are_two_people() -> anyhow::Result<()> {
    if browser::skip() {
        return Ok(());
    }
    let base = serve().await;
    let browser = Browser::start().await?;
    let (ada, bob) = tokio::try_join!(browser.session(), browser.session())?;
    ada.goto(&base).await?;
    bob.goto(&base).await?;
    ada.fill("#name", "Ada").await?;
    ada.click("button[type=submit]").await?;
    ada.wait_for_text("#out", "Hello, Ada!", WAIT).await?;
    assert!(ada.cookie("sid").await?.is_some());
    assert!(bob.cookie("sid").await?.is_none(), "bob has ada's cookie");
    ada.close().await?;
    bob.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_session_or_a_panicking_test_leaves_no_browser_behind() -> anyhow::Result<()> {
    if browser::skip() {
        return Ok(());
    }
    let base = serve().await;

    // A session dropped unclosed: its browser is killed, the others go on.
    let browser = Browser::start().await?;
    let dropped = browser.session().await?;
    dropped.goto(&base).await?;
    let profile = dropped.profile_dir().to_owned();
    assert!(!profile_processes(&profile).await.is_empty());
    drop(dropped);
    assert_eq!(profile_processes(&profile).await, Vec::<i32>::new());
    assert!(!exists(&profile).await);
    let next = browser.session().await?;
    next.goto(&base).await?;
    next.close().await?;
    drop(browser);

    // A test that panics with a browser and a session open.
    let (opened, seen) = tokio::sync::oneshot::channel();
    let test = tokio::spawn(async move {
        let browser = Browser::start().await.unwrap();
        let session = browser.session().await.unwrap();
        session.goto(&base).await.unwrap();
        opened
            .send((browser.chromedriver_pid(), session.profile_dir().to_owned()))
            .unwrap();
        panic!("a deliberate panic, with a browser open");
    });
    let (chromedriver, profile) = seen.await?;
    assert!(test.await.expect_err("the test panicked").is_panic());
    assert_eq!(profile_processes(&profile).await, Vec::<i32>::new());
    let group = tokio::task::spawn_blocking(move || processes_in_group(chromedriver)).await?;
    assert_eq!(group, Vec::<i32>::new());
    assert!(!exists(&profile).await);
    Ok(())
}
