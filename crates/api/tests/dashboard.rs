//! The dashboard over HTTP, as a browser without JavaScript uses it: signing in and out,
//! CSRF and cross-origin refusals, escaping of tenants' text, another user's apps, the
//! sign-in throttle, and the changes its forms make — on SQLite and PostgreSQL, through the
//! real router, store and release manager (on the fake runtime the other suites use). The
//! pages in a real browser are `tests/dashboard.rs` at the workspace's root.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use test_support::Backend;
use tower::ServiceExt;

use common::{TestApp, both_backends};

/// A browser without JavaScript: it keeps cookies, posts forms, and reads pages.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
    /// `Origin` to send with posts (a browser always does).
    origin: Option<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Page {
    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="_csrf" value=""#)
            .unwrap_or_else(|| panic!("no form on the page: {}", self.body));
        let rest = &self.body[at + r#"name="_csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            cookies: BTreeMap::new(),
            origin: Some("http://dashboard.test".to_owned()),
        }
    }

    async fn request(&mut self, method: Method, path: &str, form: Option<&str>) -> Page {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, "dashboard.test");
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        if method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(origin) = &self.origin {
                request = request.header(header::ORIGIN, origin);
            }
        }
        let request = request
            .body(form.map_or_else(Body::empty, |f| Body::from(f.to_owned())))
            .unwrap();
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            set_cookies,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Opens a server-sent event stream and returns its body, to read event by event.
    async fn events(&mut self, path: &str) -> Events {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = Request::get(path)
            .header(header::HOST, "dashboard.test")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Events {
            body: response.into_body(),
            buffered: String::new(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.request(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.request(Method::POST, path, Some(&body)).await
    }

    /// Signs in through the form, as a person does.
    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let page = self.get("/sign-in").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        self.post(
            "/sign-in",
            &[
                ("_csrf", &csrf),
                ("username", username),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }

    /// A page's CSRF token, read from the page as a browser would have it.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.csrf()
    }
}

/// A server-sent event stream being read.
struct Events {
    body: Body,
    buffered: String,
}

impl Events {
    /// The next event that is not a keep-alive: its name and data (lines joined by `\n`).
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let block: String = self.buffered.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push(d);
                    }
                }
                if !name.is_empty() {
                    return (name, data.join("\n"));
                }
                continue;
            }
            let frame = tokio::time::timeout(std::time::Duration::from_secs(20), self.body.frame())
                .await
                .expect("an event within 20 s")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buffered.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    }
}

async fn config_of(app: &TestApp, token: &str) -> serde_json::Value {
    TestApp::ok(
        app.send(Method::GET, "/v1/apps/demo/config", token, None)
            .await,
    )["values"]
        .clone()
}

both_backends! {
    async fn signing_in_sets_a_session_cookie_the_script_cannot_read(app: TestApp) {
        app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        // Signed out, any page goes to the sign-in page, and back after.
        let page = browser.get("/apps/demo/config").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location.as_deref(), Some("/sign-in?next=%2Fapps%2Fdemo%2Fconfig"));

        let page = browser.sign_in("ada", "password-1").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/"));
        let session = page
            .set_cookies
            .iter()
            .find(|c| c.starts_with("slipway_session="))
            .expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(session.contains(attribute), "{session}");
        }
        assert!(!session.contains("Secure"), "served over plain HTTP: {session}");

        let page = browser.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(r#"<a href="/apps/demo">demo</a>"#), "{}", page.body);
        let policy = "default-src 'none'";
        let list = app
            .router
            .clone()
            .oneshot(Request::get("/sign-in").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let csp = list.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with(policy), "{csp}");
    }

    async fn over_https_the_cookie_is_secure_and_host_only(app: TestApp) {
        app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        browser.origin = Some("https://dashboard.test".to_owned());
        let page = browser.sign_in("ada", "password-1").await;
        let session = page
            .set_cookies
            .iter()
            .find(|c| c.starts_with("__Host-slipway_session="))
            .unwrap_or_else(|| panic!("{:?}", page.set_cookies));
        assert!(session.contains("Secure") && session.contains("HttpOnly"), "{session}");
        assert_eq!(browser.get("/apps/demo").await.status, StatusCode::OK);
    }

    async fn a_signed_out_session_cannot_be_replayed(app: TestApp) {
        app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let kept = browser.cookies.clone();
        let csrf = browser.csrf("/").await;
        let page = browser.post("/sign-out", &[("_csrf", &csrf)]).await;
        assert_eq!(page.location.as_deref(), Some("/sign-in"));
        assert!(!browser.cookies.contains_key("slipway_session"), "the browser forgets it");

        // Someone who copied the cookie before sign-out gets nothing with it.
        let mut thief = Browser::new(&app);
        thief.cookies = kept;
        let page = thief.get("/apps/demo/config").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location.unwrap().starts_with("/sign-in"));
    }

    async fn forms_without_the_token_or_from_another_origin_change_nothing(app: TestApp) {
        let token = app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let csrf = browser.csrf("/apps/demo/config").await;

        let page = browser
            .post("/apps/demo/config", &[("key", "A"), ("value", "1")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("reload the page"), "{}", page.body);
        let page = browser
            .post("/apps/demo/config", &[("_csrf", "slp_forged"), ("key", "A"), ("value", "1")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        browser.origin = Some("http://evil.example".to_owned());
        let page = browser
            .post("/apps/demo/config", &[("_csrf", &csrf), ("key", "A"), ("value", "1")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("another site"), "{}", page.body);
        assert_eq!(config_of(&app, &token).await, serde_json::json!({}));

        // The same form from the dashboard itself works.
        browser.origin = Some("http://dashboard.test".to_owned());
        let page = browser
            .post("/apps/demo/config", &[("_csrf", &csrf), ("key", "A"), ("value", "1")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/apps/demo/config?done=released&v=2"));
        assert_eq!(config_of(&app, &token).await, serde_json::json!({"A": "1"}));
        let page = browser.get(page.location.as_deref().unwrap()).await;
        assert!(page.body.contains("Saved as v2: deploying it now."), "{}", page.body);
    }

    async fn a_running_build_streams_its_log_then_its_status(app: TestApp) {
        app.owner_of_demo().await;
        let demo = app.store.app("demo").await.unwrap();
        let ada = app.store.user("ada").await.unwrap();
        let build = app
            .store
            .create_build(&demo, &store::BuildSource::Commit("a".repeat(40)), &ada)
            .await
            .unwrap();
        app.store.set_build_log(&demo, build.id, "-----> Building demo\n").await.unwrap();
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let page = browser.get(&format!("/apps/demo/builds/{}", build.id)).await;
        assert!(page.body.contains("-----&#62; Building demo"), "{}", page.body);
        assert!(page.body.contains(&format!("sse-connect=\"/apps/demo/builds/{}/live?from=21\"", build.id)), "{}", page.body);

        // While it runs, the activity page lists it and reloads its timeline until it is done.
        let activity = browser.get("/apps/demo/activity").await;
        assert!(activity.body.contains("building"), "{}", activity.body);
        assert!(activity.body.contains(r#"<div hidden hx-get="/apps/demo/activity" hx-trigger="every 3s""#), "{}", activity.body);

        let mut events = browser.events(&format!("/apps/demo/builds/{}/live?from=21", build.id)).await;
        app.store
            .set_build_log(&demo, build.id, "-----> Building demo\n<b>compiling</b> & linking\n")
            .await
            .unwrap();
        assert_eq!(events.next().await, ("chunk".to_owned(), "&lt;b&gt;compiling&lt;/b&gt; &amp; linking\n".to_owned()));
        app.store
            .finish_build(&demo, build.id, store::BuildStatus::Failed, &BTreeMap::new(), None)
            .await
            .unwrap();
        let (name, badge) = events.next().await;
        assert_eq!(name, "status");
        assert!(badge.contains("build failed"), "{badge}");
        assert_eq!(events.next().await.0, "done");
        let activity = browser.get("/apps/demo/activity").await;
        assert!(activity.body.contains("build failed"), "{}", activity.body);
        assert!(!activity.body.contains("hx-trigger"), "all settled, the page stops reloading");
    }

    async fn the_activity_pages_back_fifty_releases_at_a_time(app: TestApp) {
        let token = app.owner_of_demo().await;
        for n in 0..60 {
            let body = serde_json::json!({"values": {"N": n.to_string()}}).to_string();
            TestApp::ok(app.send(Method::PATCH, "/v1/apps/demo/config", &token, Some(&body)).await);
        }
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let newest = browser.get("/apps/demo/activity").await;
        let shown = |page: &Page| -> Vec<u32> {
            page.body
                .match_indices(r#"<strong class="version">v"#)
                .map(|(at, m)| {
                    let rest = &page.body[at + m.len()..];
                    rest[..rest.find('<').unwrap()].parse().unwrap()
                })
                .collect()
        };
        assert_eq!(shown(&newest), (12..=61).rev().collect::<Vec<_>>());
        assert!(newest.body.contains(r#"href="/apps/demo/activity?before=12" rel="next""#), "{}", newest.body);
        let older = browser.get("/apps/demo/activity?before=12").await;
        assert_eq!(shown(&older), (1..=11).rev().collect::<Vec<_>>());
        assert!(!older.body.contains(r#"rel="next""#), "the last page links no further");
    }

    async fn live_logs_arrive_as_escaped_lines(app: TestApp) {
        app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let mut events = browser.events("/apps/demo/logs/live?process=web").await;
        // Another source is filtered out; the web process's line arrives, as text.
        app.logs.push("demo", "router", "GET / 200");
        app.logs.push("demo", "web.1", "<script>alert(1)</script>");
        let (name, line) = events.next().await;
        assert_eq!(name, "line");
        assert!(line.contains(r#"<span class="source">web.1</span>"#), "{line}");
        assert!(line.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || line.contains("&lt;script&gt;"), "{line}");
    }

    async fn the_sign_in_form_needs_its_own_token(app: TestApp) {
        app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        let page = browser
            .post("/sign-in", &[("username", "ada"), ("password", "password-1")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(browser.cookies.keys().all(|k| !k.contains("session")));
    }

    async fn tenants_text_is_escaped_everywhere(app: TestApp) {
        let token = app.owner_of_demo().await;
        let script = "<script>alert(1)</script>";
        TestApp::ok(
            app.send(
                Method::PATCH,
                "/v1/apps/demo/config",
                &token,
                Some(&serde_json::json!({"values": {"GREETING": script}}).to_string()),
            )
            .await,
        );
        app.logs.push("demo", "web.1", "<b>bold</b> & <img src=x onerror=alert(1)>");
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        for path in ["/apps/demo/config", "/apps/demo/logs", "/apps/demo/activity", "/apps/demo"] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(!page.body.contains("<script>alert"), "{path}: {}", page.body);
            assert!(!page.body.contains("<img src=x"), "{path}");
            assert!(!page.body.contains("<b>bold"), "{path}");
        }
        let config = browser.get("/apps/demo/config").await;
        assert!(config.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || config.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", config.body);
        let logs = browser.get("/apps/demo/logs").await;
        assert!(logs.body.contains("bold"), "the line is there, escaped: {}", logs.body);
    }

    async fn another_users_app_is_not_found_on_every_page(app: TestApp) {
        let token = app.owner_of_demo().await;
        let (status, body) = app
            .send(
                Method::POST,
                "/v1/auth/register",
                &token,
                Some(r#"{"username": "bob", "password": "password-2"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut browser = Browser::new(&app);
        let page = browser.sign_in("bob", "password-2").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let list = browser.get("/").await;
        assert!(!list.body.contains("/apps/demo"), "{}", list.body);
        for tab in ["", "/activity", "/config", "/processes", "/logs", "/logs/live", "/access", "/domains", "/settings"] {
            let page = browser.get(&format!("/apps/demo{tab}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{tab}: {}", page.body);
            assert!(page.body.contains("no app named demo"), "{tab}");
        }
        let nowhere = app
            .router
            .clone()
            .oneshot(Request::get("/apps/demo/nowhere").header(header::ACCEPT, "text/html").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
        assert!(nowhere.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(nowhere.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let missing = browser.get("/apps/nothing-here").await;
        assert_eq!(missing.body.replace("nothing-here", "demo"), browser.get("/apps/demo").await.body,
            "a stranger's app reads exactly as one that does not exist");
        let csrf = browser.csrf("/").await;
        let page = browser.post("/apps/demo/config", &[("_csrf", &csrf), ("key", "A"), ("value", "1")]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(config_of(&app, &token).await, serde_json::json!({}));
    }

    async fn wrong_passwords_are_throttled(app: TestApp) {
        let token = app.owner_of_demo().await;
        // Ada signed in from here before (registering), so her account is not throttled for
        // this address; bob never has.
        let (status, body) = app
            .send(
                Method::POST,
                "/v1/auth/register",
                &token,
                Some(r#"{"username": "bob", "password": "password-2"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut browser = Browser::new(&app);
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(browser.sign_in("bob", "wrong-password").await.status);
        }
        assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
        assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
        // Throttled, even the right password waits.
        let page = browser.sign_in("bob", "password-2").await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
        assert!(page.body.contains("too many login attempts"), "{}", page.body);
    }

    async fn a_rollback_across_a_release_phase_needs_the_apps_name_typed(app: TestApp) {
        let token = app.owner_of_demo().await;
        let demo = app.store.app("demo").await.unwrap();
        // Two deploys whose release command runs (v2, v3), deployed by the release manager.
        for image in ["registry.local/demo:1", "registry.local/demo:2"] {
            let body = serde_json::json!({"image": image, "procfile": "web: ./serve\nrelease: ./migrate\n"}).to_string();
            let (status, release) = app.send(Method::POST, "/v1/apps/demo/builds", &token, Some(&body)).await;
            assert_eq!(status, StatusCode::CREATED, "{release}");
            let version = domain::ReleaseVersion::new(release["version"].as_u64().unwrap() as u32).unwrap();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let release = app.store.release(&demo, version).await.unwrap();
                if release.status == domain::ReleaseStatus::Succeeded {
                    assert!(release.release_phase_started_at.is_some(), "{release:?}");
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "{release:?}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let csrf = browser.csrf("/apps/demo/activity").await;
        // Only v2's form asks for the name: v3 is current, v1 has no build.
        let activity = browser.get("/apps/demo/activity").await;
        assert!(activity.body.contains(r#"<label for="confirm-v2">"#), "{}", activity.body);
        assert!(activity.body.contains("rolling back to v2 crosses v3, whose release command ran"), "{}", activity.body);
        assert_eq!(activity.body.matches(r#"name="confirm""#).count(), 1, "{}", activity.body);

        let page = browser.post("/apps/demo/rollback", &[("_csrf", &csrf), ("version", "2")]).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
        assert!(page.body.contains("to confirm"), "{}", page.body);
        let page = browser.post("/apps/demo/rollback", &[("_csrf", &csrf), ("version", "2"), ("confirm", "dem")]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
        assert_eq!(app.store.latest_release(&demo).await.unwrap().version.get(), 3, "refusals make no release");

        let page = browser.post("/apps/demo/rollback", &[("_csrf", &csrf), ("version", "2"), ("confirm", "demo")]).await;
        assert_eq!(page.location.as_deref(), Some("/apps/demo/activity?done=rolled-back&v=4"), "{}", page.body);
        let v4 = app.store.release(&demo, domain::ReleaseVersion::new(4).unwrap()).await.unwrap();
        assert_eq!(v4.summary, "ada rolled back to v2");
    }

    async fn forms_roll_back_scale_and_refuse_a_destroy_without_the_name(app: TestApp) {
        let token = app.owner_of_demo().await;
        let mut browser = Browser::new(&app);
        browser.sign_in("ada", "password-1").await;
        let csrf = browser.csrf("/apps/demo/config").await;
        for value in ["1", "2"] {
            browser.post("/apps/demo/config", &[("_csrf", &csrf), ("key", "A"), ("value", value)]).await;
        }
        // Every page shows what the change before it did.
        for (path, text) in [
            ("/apps/demo/activity?done=rolled-back&v=9", "Rolled back as v9: deploying it now."),
            ("/apps/demo/activity?before=3&done=rolled-back&v=9", "Rolled back as v9"),
            ("/apps/demo?done=scaled", "Scaled."),
            ("/apps/demo/access?done=added", "Added."),
        ] {
            let page = browser.get(path).await;
            assert!(page.body.contains(text), "{path}: {}", page.body);
        }
        // Releases without a build cannot be rolled back to: no button, and the form says why.
        let activity = browser.get("/apps/demo/activity").await;
        assert!(!activity.body.contains("Roll back to v"), "{}", activity.body);
        let page = browser.post("/apps/demo/rollback", &[("_csrf", &csrf), ("version", "2")]).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
        assert!(page.body.contains("has no build to roll back to"), "{}", page.body);

        let page = browser.post("/apps/demo/destroy", &[("_csrf", &csrf), ("confirm", "dem")]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("type the app&#39;s name, demo, to confirm")
            || page.body.contains("type the app's name, demo, to confirm")
            || page.body.contains("type the app&#x27;s name, demo, to confirm"), "{}", page.body);
        TestApp::ok(app.send(Method::GET, "/v1/apps/demo", &token, None).await);

        let page = browser.post("/apps/demo/destroy", &[("_csrf", &csrf), ("confirm", "demo")]).await;
        assert_eq!(page.location.as_deref(), Some("/?done=removed"));
        let (status, _) = app.send(Method::GET, "/v1/apps/demo", &token, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
