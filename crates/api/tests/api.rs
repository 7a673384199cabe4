//! The API's test suite: every endpoint through the real router and store, on SQLite and on
//! PostgreSQL. Requests go through `oneshot`, the least powerful tool that exercises
//! routing, extraction, authorisation and error rendering together.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use slipway_api::{ApiConfig, ApiState, router};
use test_support::{Backend, TestDatabase};
use tower::ServiceExt;

/// Declares `mod name { sqlite, postgres }`: one async test body, run on both backends.
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::new(Backend::Sqlite).await.expect("sqlite is always there")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::new(Backend::Postgres).await {
                    run(app).await;
                }
            }
        }
    )*};
}

struct TestApp {
    router: Router,
    /// The same store the router has: for what only the gateway and builder record (the
    /// image a push built).
    store: store::Store,
    backend: Backend,
    _db: TestDatabase,
}

/// A response: status and JSON body (`null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

impl Reply {
    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.body
    }

    /// Asserts an error reply: the status, a one-line message, and a code.
    #[track_caller]
    fn expect_error(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let error = self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {}", self.body));
        assert!(
            !error.is_empty() && !error.contains('\n'),
            "one line: {error:?}"
        );
        assert!(self.body["code"].is_string(), "{}", self.body);
        error.to_owned()
    }
}

impl TestApp {
    async fn new(backend: Backend) -> Option<TestApp> {
        TestApp::with_config(backend, |_| {}).await
    }

    /// A test app whose API configuration `change` adjusts first.
    async fn with_config(backend: Backend, change: impl FnOnce(&mut ApiConfig)) -> Option<TestApp> {
        let db = TestDatabase::new(backend).await?;
        let store = store::Store::open(&db.url).await.expect("open the store");
        let mut config = ApiConfig {
            git_url: "ssh://git@127.0.0.1:2222".to_owned(),
            domain: "localhost".to_owned(),
            router_port: 8080,
            registration_open: false,
            token_ttl: std::time::Duration::from_secs(3600),
            login: slipway_api::LoginLimits::default(),
            dns_resolver: None,
            deploys: false,
        };
        change(&mut config);
        let state = ApiState {
            store: store.clone(),
            config: Arc::new(config),
            build_cache: Arc::new(slipway_api::NoBuildCache),
            repos: Arc::new(slipway_api::NoRepos),
            logs: Arc::new(logs::Logs::default()),
        };
        Some(TestApp {
            router: router(state),
            store,
            backend,
            _db: db,
        })
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("read the body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            body,
            retry_after,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Registers the first user (who becomes admin) and returns their token.
    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn first_user(&self, name: &str) -> String {
        let body = self
            .call(
                Method::POST,
                "/v1/auth/register",
                None,
                Some(json!({"username": name, "password": "password-1"})),
            )
            .await
            .expect(StatusCode::CREATED);
        assert_eq!(body["user"]["admin"], true);
        body["token"].as_str().unwrap().to_owned()
    }

    /// Has the admin create a user, then logs in as them.
    async fn user(&self, admin: &str, name: &str) -> String {
        let credentials = json!({"username": name, "password": "password-1"});
        let created = self
            .call(
                Method::POST,
                "/v1/auth/register",
                Some(admin),
                Some(credentials.clone()),
            )
            .await;
        assert_eq!(
            created.expect(StatusCode::CREATED)["token"],
            Value::Null,
            "an admin creating a user gets no token"
        );
        let session = self
            .call(Method::POST, "/v1/auth/login", None, Some(credentials))
            .await
            .expect(StatusCode::OK);
        session["token"].as_str().unwrap().to_owned()
    }

    async fn create_app(&self, token: &str, name: &str) -> Value {
        self.call(
            Method::POST,
            "/v1/apps",
            Some(token),
            Some(json!({"name": name})),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    async fn set_config(&self, token: &str, app: &str, values: Value) -> Reply {
        self.call(
            Method::PATCH,
            &format!("/v1/apps/{app}/config"),
            Some(token),
            Some(json!({"values": values})),
        )
        .await
    }

    fn backend(&self) -> Backend {
        self.backend
    }

    /// `POST /v1/auth/login` from the address `10.0.0.{from}`.
    async fn login_from(&self, from: u8, username: &str, password: &str) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"username": username, "password": password}).to_string(),
            ))
            .unwrap();
        let peer = std::net::SocketAddr::from(([10, 0, 0, from], 40000));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        self.send(request).await
    }

    /// Everything about an app that a bad request must leave as it was.
    async fn snapshot(&self, token: &str, app: &str) -> Value {
        json!({
            "info": self.get(&format!("/v1/apps/{app}"), token).await.expect(StatusCode::OK),
            "releases": self.get(&format!("/v1/apps/{app}/releases"), token).await.expect(StatusCode::OK),
            "config": self.get(&format!("/v1/apps/{app}/config"), token).await.expect(StatusCode::OK),
            "builds": self.get(&format!("/v1/apps/{app}/builds"), token).await.expect(StatusCode::OK),
            "keys": self.get("/v1/keys", token).await.expect(StatusCode::OK),
            "apps": self.get("/v1/apps", token).await.expect(StatusCode::OK),
            "healthchecks": self.get(&format!("/v1/apps/{app}/healthchecks"), token).await.expect(StatusCode::OK),
            "limits": self.get(&format!("/v1/apps/{app}/limits"), token).await.expect(StatusCode::OK),
            "autoscale": self.get(&format!("/v1/apps/{app}/autoscale"), token).await.expect(StatusCode::OK),
            "routing": self.get(&format!("/v1/apps/{app}/routing"), token).await.expect(StatusCode::OK),
            "certs": self.get(&format!("/v1/apps/{app}/certs"), token).await.expect(StatusCode::OK),
        })
    }
}

fn releases_summary(releases: &Value) -> Vec<String> {
    releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "v{} {} {}",
                r["version"],
                r["status"].as_str().unwrap(),
                r["summary"].as_str().unwrap()
            )
        })
        .collect()
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnl4hM1pOmO5uGWO3i+0m0Y8ymXXJQ1s1eoF7XmKXYf ada@laptop";

both_backends! {
    async fn an_apps_stack_is_set_by_a_patch(t: TestApp) {
        let ada = t.first_user("ada").await;
        let bob = t.user(&ada, "bob").await;
        let app = t.create_app(&ada, "demo").await;
        assert_eq!(app["stack"], "buildpacks");
        let patch = |token: String, body: Value| {
            let t = &t;
            async move { t.call(Method::PATCH, "/v1/apps/demo", Some(&token), Some(body)).await }
        };
        let set = patch(ada.clone(), json!({"stack": "container"})).await.expect(StatusCode::OK);
        assert_eq!(set["stack"], "container");
        assert_eq!(t.get("/v1/apps/demo", &ada).await.expect(StatusCode::OK)["app"]["stack"], "container");
        let error = patch(ada.clone(), json!({"stack": "heroku-24"})).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.starts_with("unknown stack \"heroku-24\""), "{error}");
        patch(ada.clone(), json!({})).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        patch(bob, json!({"stack": "buildpacks"})).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(t.get("/v1/apps/demo", &ada).await.expect(StatusCode::OK)["app"]["stack"], "container");
    }

    async fn the_users_day_up_to_git_push(t: TestApp) {
        let ada = t.first_user("ada").await;
        assert_eq!(t.get("/v1/auth/whoami", &ada).await.expect(StatusCode::OK)["username"], "ada");
        t.call(Method::POST, "/v1/keys", Some(&ada), Some(json!({"public_key": KEY}))).await.expect(StatusCode::CREATED);

        let app = t.create_app(&ada, "demo").await;
        assert_eq!(app["git_url"], "ssh://git@127.0.0.1:2222/demo.git");
        assert_eq!(app["url"], "http://demo.localhost:8080");

        let first = t.set_config(&ada, "demo", json!({"GREETING": "hi"})).await.expect(StatusCode::OK);
        assert_eq!(first["release"]["version"], 2);
        let second = t.set_config(&ada, "demo", json!({"GREETING": "hello", "COLOR": "red"})).await.expect(StatusCode::OK);
        assert_eq!(second["release"]["version"], 3);
        let releases = t.get("/v1/apps/demo/releases", &ada).await.expect(StatusCode::OK);
        assert_eq!(releases_summary(&releases), [
            "v3 succeeded ada added COLOR; changed GREETING",
            "v2 succeeded ada added GREETING",
            "v1 succeeded ada created initial release",
        ]);
        assert!(releases.as_array().unwrap().iter().all(|r| r["build"].is_null()), "no build yet, nothing deployed");

        let refused = t.call(Method::POST, "/v1/apps/demo/rollback", Some(&ada), Some(json!({}))).await;
        assert_eq!(refused.expect_error(StatusCode::CONFLICT), "v2 has no build to roll back to; push code first with `git push slipway main`");

        let scaled = t.call(Method::PATCH, "/v1/apps/demo/formation", Some(&ada), Some(json!({"counts": {"web": 2, "worker": 1}}))).await;
        assert_eq!(scaled.expect(StatusCode::OK), json!([{"type": "web", "count": 2, "command": null}, {"type": "worker", "count": 1, "command": null}]));

        let bob = t.user(&ada, "bob").await;
        t.get("/v1/apps/demo", &bob).await.expect_error(StatusCode::NOT_FOUND);
        t.set_config(&bob, "demo", json!({"X": "1"})).await.expect_error(StatusCode::NOT_FOUND);
        t.call(Method::POST, "/v1/apps/demo/perms", Some(&ada), Some(json!({"username": "bob"}))).await.expect(StatusCode::CREATED);
        t.get("/v1/apps/demo", &bob).await.expect(StatusCode::OK);
        let by_bob = t.set_config(&bob, "demo", json!({"X": "1"})).await.expect(StatusCode::OK);
        assert_eq!(by_bob["release"]["summary"], "bob added X");

        let config = t.get("/v1/apps/demo/config", &ada).await.expect(StatusCode::OK);
        assert_eq!(config, json!({"version": 4, "values": {"COLOR": "red", "GREETING": "hello", "X": "1"}}));
        let v2 = t.get("/v1/apps/demo/releases/v2", &ada).await.expect(StatusCode::OK);
        assert_eq!(v2["config"], json!({"GREETING": "hi"}));
    }

    async fn deploy_an_image_and_roll_back(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        let deploy = |image: &'static str, procfile: &'static str| {
            let ada = ada.clone();
            let t = &t;
            async move {
                t.call(Method::POST, "/v1/apps/demo/builds", Some(&ada), Some(json!({"image": image, "procfile": procfile}))).await
            }
        };
        let v2 = deploy("registry.local/demo:1", "web: ./serve\nworker: ./work\n").await.expect(StatusCode::CREATED);
        assert_eq!((v2["version"].as_u64(), v2["summary"].as_str()), (Some(2), Some("ada deployed image registry.local/demo:1")));
        // Releases with a build wait for the release manager; mark them deployed as it would.
        let formation = t.get("/v1/apps/demo/formation", &ada).await.expect(StatusCode::OK);
        // The first build with a web process runs one, as on Heroku; other types wait to be scaled.
        assert_eq!(formation, json!([{"type": "web", "count": 1, "command": "./serve"}, {"type": "worker", "count": 0, "command": "./work"}]));
        let refused = t.call(Method::PATCH, "/v1/apps/demo/formation", Some(&ada), Some(json!({"counts": {"clock": 1}}))).await;
        assert_eq!(refused.expect_error(StatusCode::UNPROCESSABLE_ENTITY), "the app has no process type \"clock\"; its processes are: web, worker");
        let builds = t.get("/v1/apps/demo/builds", &ada).await.expect(StatusCode::OK);
        assert_eq!(builds[0]["image"], "registry.local/demo:1");
        assert_eq!(builds[0]["commit"], Value::Null);
        let id = builds[0]["id"].as_str().unwrap();
        t.get(&format!("/v1/apps/demo/builds/{id}"), &ada).await.expect(StatusCode::OK);
        t.get("/v1/apps/demo/builds/not-a-uuid", &ada).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn a_rollback_across_a_release_phase_needs_the_apps_name(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        let app = t.store.app("demo").await.unwrap();
        // Two deploys with a release command and one without, recorded as the release manager would.
        for (image, phase) in [("registry.local/demo:1", true), ("registry.local/demo:2", true), ("registry.local/demo:3", false)] {
            let procfile = if phase { "web: ./serve\nrelease: ./migrate\n" } else { "web: ./serve\n" };
            let body = json!({"image": image, "procfile": procfile});
            let release = t.call(Method::POST, "/v1/apps/demo/builds", Some(&ada), Some(body)).await.expect(StatusCode::CREATED);
            let version = domain::ReleaseVersion::new(release["version"].as_u64().unwrap() as u32).unwrap();
            if phase {
                t.store.release_phase_started(&app, version).await.unwrap();
                t.store.release_phase_done(&app, version).await.unwrap();
            }
            t.store.set_release_status(&app, version, domain::ReleaseStatus::Succeeded, None).await.unwrap();
        }
        // A release shows its image and its release phase.
        let v3 = &t.get("/v1/apps/demo/releases/v3", &ada).await.expect(StatusCode::OK)["release"];
        assert_eq!(v3["image"], "registry.local/demo:2");
        assert!(v3["release_phase"]["started_at"].is_string(), "{v3}");
        assert!(v3["release_phase"]["finished_at"].is_string(), "{v3}");
        let v4 = &t.get("/v1/apps/demo/releases/v4", &ada).await.expect(StatusCode::OK)["release"];
        assert_eq!(v4["release_phase"], Value::Null);

        // To v3: nothing whose phase ran lies between. To v2: v3's did.
        let refused = t.call(Method::POST, "/v1/apps/demo/rollback", Some(&ada), Some(json!({"version": 2}))).await;
        assert_eq!(refused.body["code"], "confirmation_required", "{}", refused.body);
        assert_eq!(
            refused.expect_error(StatusCode::CONFLICT),
            "rolling back to v2 crosses v3, whose release command ran: its data changes (migrations) are not undone, and v2's own release command, if it has one, runs again; to go ahead, add `--confirm demo`"
        );
        let wrong = t.call(Method::POST, "/v1/apps/demo/rollback", Some(&ada), Some(json!({"version": 2, "confirm": "other"}))).await;
        assert_eq!(wrong.expect_error(StatusCode::UNPROCESSABLE_ENTITY), "--confirm other does not match the app demo; nothing was rolled back");
        let releases = t.get("/v1/apps/demo/releases", &ada).await.expect(StatusCode::OK);
        assert_eq!(releases.as_array().unwrap().len(), 4, "refusals make no release");
        // Other refusals keep their code.
        let current = t.call(Method::POST, "/v1/apps/demo/rollback", Some(&ada), Some(json!({"version": 4, "confirm": "demo"}))).await;
        assert_eq!(current.body["code"], "conflict");

        let rolled = t.call(Method::POST, "/v1/apps/demo/rollback", Some(&ada), Some(json!({"version": 2, "confirm": "demo"}))).await.expect(StatusCode::CREATED);
        assert_eq!((rolled["version"].as_u64(), rolled["summary"].as_str()), (Some(5), Some("ada rolled back to v2")));
        assert_eq!(rolled["image"], "registry.local/demo:1");
    }

    async fn hostile_image_references_are_refused_and_change_nothing(t: TestApp) {
        let ada = t.first_user("ada").await;
        let bob = t.user(&ada, "bob").await;
        let eve = t.user(&ada, "eve").await;
        t.create_app(&ada, "demo").await;
        t.create_app(&bob, "other").await;
        // What a push of each app built, as the gateway records it.
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let (ours, theirs, nobodys) = (digest('a'), digest('b'), digest('c'));
        for (app, owner, image) in [("demo", "ada", format!("127.0.0.1:5000/demo@{ours}")), ("other", "bob", theirs.clone())] {
            let app = t.store.app(app).await.unwrap();
            let user = t.store.user(owner).await.unwrap();
            let build = t.store.create_build(&app, &store::BuildSource::Commit("0".repeat(40)), &user).await.unwrap();
            let procfile = [("web".to_owned(), "./serve".to_owned())].into();
            t.store.finish_build(&app, build.id, store::BuildStatus::Succeeded, &procfile, Some(&image)).await.unwrap();
        }
        let before = t.snapshot(&ada, "demo").await;
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let hex = "0123456789abcdef".repeat(4);
        let cases: Vec<(String, StatusCode)> = vec![
            ("../../etc".into(), unprocessable),
            ("/etc".into(), unprocessable),
            ("/etc/passwd:1".into(), unprocessable),
            ("sha256:../x".into(), unprocessable),
            (format!("sha256:../../../../{}", &hex[12..]), unprocessable),
            (format!("sha256:{}", hex.to_uppercase()), unprocessable),
            (format!("sha256:{}", &hex[1..]), unprocessable),
            (format!("sha512:{hex}{hex}"), unprocessable),
            ("registry/../x".into(), unprocessable),
            ("registry.local/../x:1".into(), unprocessable),
            ("registry.local/x:1@sha256:../../etc".into(), unprocessable),
            ("registry.local/demo".into(), unprocessable),
            ("img:1".into(), unprocessable),
            ("".into(), unprocessable),
            ("x".repeat(600), unprocessable),
            // Another app's image, by digest or through any registry's name for it; and an
            // image no app built: the same answer, so it says nothing of other apps.
            (theirs.clone(), StatusCode::NOT_FOUND),
            (format!("127.0.0.1:5000/other@{theirs}"), StatusCode::NOT_FOUND),
            (format!("evil.example/demo:1@{theirs}"), StatusCode::NOT_FOUND),
            (nobodys.clone(), StatusCode::NOT_FOUND),
        ];
        for (image, status) in &cases {
            let body = json!({"image": image, "procfile": "web: ./serve"});
            let reply = t.call(Method::POST, "/v1/apps/demo/builds", Some(&ada), Some(body)).await;
            let error = reply.expect_error(*status);
            if *status == StatusCode::NOT_FOUND {
                assert!(error.starts_with("no build of demo made the image sha256:"), "{image}: {error}");
            }
        }
        assert_eq!(t.snapshot(&ada, "demo").await, before, "refused references change nothing");
        // Authorization comes first: a stranger learns nothing of what the input would do.
        for image in ["../../etc", theirs.as_str()] {
            let body = json!({"image": image, "procfile": "web: ./serve"});
            let reply = t.call(Method::POST, "/v1/apps/demo/builds", Some(&eve), Some(body.clone())).await;
            assert!([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&reply.status), "{image}: {reply:?}");
            let reply = t.call(Method::POST, "/v1/apps/nosuch/builds", Some(&eve), Some(body)).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{image}: {reply:?}");
        }
        // The app's own image deploys, by its digest or its registry reference.
        for image in [ours.clone(), format!("127.0.0.1:5000/demo@{ours}"), "registry.local/demo:1".to_owned()] {
            let body = json!({"image": image, "procfile": "web: ./serve"});
            t.call(Method::POST, "/v1/apps/demo/builds", Some(&ada), Some(body)).await.expect(StatusCode::CREATED);
        }
        let builds = t.get("/v1/apps/demo/builds", &ada).await.expect(StatusCode::OK);
        assert_eq!(builds[0]["image"], "registry.local/demo:1");
        assert_eq!(builds[2]["image"], ours.as_str());
    }

    async fn authorization_on_every_endpoint(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let bob = t.user(&root, "bob").await;
        let eve = t.user(&root, "eve").await;
        t.user(&root, "zed").await;
        t.create_app(&ada, "demo").await;
        t.call(Method::POST, "/v1/apps/demo/perms", Some(&ada), Some(json!({"username": "bob"}))).await.expect(StatusCode::CREATED);

        #[derive(Clone, Copy, PartialEq, PartialOrd)]
        #[derive(Debug)]
        enum Need { Anyone, User, Read, Write, Own }
        let endpoints: &[(Method, &str, Option<Value>, Need)] = &[
            (Method::GET, "/v1/info", None, Need::Anyone),
            (Method::GET, "/v1/auth/whoami", None, Need::User),
            (Method::GET, "/v1/keys", None, Need::User),
            (Method::GET, "/v1/apps", None, Need::User),
            (Method::GET, "/v1/apps/demo", None, Need::Read),
            (Method::GET, "/v1/apps/demo/config", None, Need::Read),
            (Method::GET, "/v1/apps/demo/releases", None, Need::Read),
            (Method::GET, "/v1/apps/demo/releases/v1", None, Need::Read),
            (Method::GET, "/v1/apps/demo/formation", None, Need::Read),
            (Method::GET, "/v1/apps/demo/builds", None, Need::Read),
            (Method::GET, "/v1/apps/demo/domains", None, Need::Read),
            (Method::GET, "/v1/apps/demo/perms", None, Need::Read),
            (Method::GET, "/v1/apps/demo/processes", None, Need::Read),
            (Method::GET, "/v1/apps/demo/logs?lines=10&process=web", None, Need::Read),
            (Method::POST, "/v1/apps/demo/processes/restart", Some(json!({"type": "web"})), Need::Write),
            (Method::POST, "/v1/apps/demo/run", Some(json!({"command": "true"})), Need::Write),
            (Method::GET, "/v1/apps/demo/test-runs", None, Need::Read),
            (Method::GET, "/v1/apps/demo/test-runs/1", None, Need::Read),
            (Method::POST, "/v1/apps/demo/test-runs", Some(json!({})), Need::Write),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"K": "v"}})), Need::Write),
            (Method::POST, "/v1/apps/demo/rollback", Some(json!({})), Need::Write),
            (Method::PATCH, "/v1/apps/demo/formation", Some(json!({"counts": {"web": 1}})), Need::Write),
            (Method::POST, "/v1/apps/demo/builds", Some(json!({"image": "registry.local/img:1", "procfile": "web: x"})), Need::Write),
            (Method::POST, "/v1/apps/demo/domains", Some(json!({"domain": "www.example.com"})), Need::Write),
            (Method::DELETE, "/v1/apps/demo/domains/www.example.com", None, Need::Write),
            (Method::POST, "/v1/apps/demo/domains/www.example.com/verify", None, Need::Write),
            (Method::DELETE, "/v1/apps/demo/builds/cache", None, Need::Write),
            (Method::GET, "/v1/apps/demo/healthchecks", None, Need::Read),
            (Method::GET, "/v1/apps/demo/limits", None, Need::Read),
            (Method::GET, "/v1/apps/demo/autoscale", None, Need::Read),
            (Method::PUT, "/v1/apps/demo/healthchecks/web/readiness", Some(json!({"type": "httpGet", "path": "/"})), Need::Write),
            (Method::DELETE, "/v1/apps/demo/healthchecks/web/readiness", None, Need::Write),
            (Method::DELETE, "/v1/apps/demo/healthchecks/web", None, Need::Write),
            (Method::PUT, "/v1/apps/demo/limits/web", Some(json!({"cpu": "1"})), Need::Write),
            (Method::PUT, "/v1/apps/demo/autoscale/web", Some(json!({"min": 1, "max": 2, "cpu_percent": 50})), Need::Write),
            (Method::DELETE, "/v1/apps/demo/autoscale/web", None, Need::Write),
            (Method::DELETE, "/v1/apps/demo/limits/web?cpu=true", None, Need::Write),
            (Method::POST, "/v1/apps/demo/perms", Some(json!({"username": "zed"})), Need::Own),
            (Method::DELETE, "/v1/apps/demo/perms/zed", None, Need::Own),
        ];
        // Denied callers first, so that what they are refused is still there to refuse.
        let callers: &[(&str, Option<&str>, Need)] = &[
            ("anonymous", None, Need::Anyone),
            ("eve (no access)", Some(&eve), Need::User),
            ("bob (collaborator)", Some(&bob), Need::Write),
            ("ada (owner)", Some(&ada), Need::Own),
            ("root (admin)", Some(&root), Need::Own),
        ];
        for (method, path, body, need) in endpoints {
            for (who, token, may) in callers {
                let reply = t.call(method.clone(), path, *token, body.clone()).await;
                let status = reply.status;
                let context = format!("{who}: {method} {path} -> {status} {}", reply.body);
                if may >= need {
                    // Allowed: the request may still fail on the app's state (a rollback
                    // with nothing to roll back to), but not on who is asking.
                    let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
                    assert!(!refused.contains(&status) && !status.is_server_error(), "allowed {context}");
                } else if token.is_none() {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{context}");
                } else if *may == Need::User {
                    // A stranger is not told the app exists.
                    assert_eq!(status, StatusCode::NOT_FOUND, "{context}");
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{context}");
                }
            }
        }

        // Destroying: only the owner or an admin, and then the app is gone.
        t.call(Method::DELETE, "/v1/apps/demo", Some(&bob), None).await.expect_error(StatusCode::FORBIDDEN);
        t.call(Method::DELETE, "/v1/apps/demo", Some(&eve), None).await.expect_error(StatusCode::NOT_FOUND);
        t.call(Method::DELETE, "/v1/apps/demo", None, None).await.expect_error(StatusCode::UNAUTHORIZED);
        t.call(Method::DELETE, "/v1/apps/demo", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.get("/v1/apps/demo", &ada).await.expect_error(StatusCode::NOT_FOUND);
        t.create_app(&bob, "other").await;
        t.call(Method::DELETE, "/v1/apps/other", Some(&root), None).await.expect(StatusCode::NO_CONTENT);
    }

    async fn processes_logs_and_runs_without_a_runtime(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        assert_eq!(t.get("/v1/apps/demo/processes", &ada).await.expect(StatusCode::OK), json!([]));
        assert_eq!(t.get("/v1/apps/demo/logs", &ada).await.expect(StatusCode::OK), Value::Null);
        let restart = t.call(Method::POST, "/v1/apps/demo/processes/restart", Some(&ada), Some(json!({}))).await;
        assert_eq!(restart.expect_error(StatusCode::CONFLICT), "this platform has no runtime, so nothing runs");
        let bad_type = t.call(Method::POST, "/v1/apps/demo/processes/restart", Some(&ada), Some(json!({"type": "Web!"}))).await;
        assert_eq!(bad_type.status, StatusCode::UNPROCESSABLE_ENTITY);
        // A run streams its events; without a runtime the one event says why it did not run.
        let run = t.call(Method::POST, "/v1/apps/demo/run", Some(&ada), Some(json!({"command": "echo hi"}))).await;
        assert_eq!(run.expect(StatusCode::OK), json!({"error": "this platform has no runtime, so nothing runs"}));
        let empty = t.call(Method::POST, "/v1/apps/demo/run", Some(&ada), Some(json!({"command": "  "}))).await;
        assert_eq!(empty.expect_error(StatusCode::UNPROCESSABLE_ENTITY), "give a command to run");
        let huge = t.call(Method::POST, "/v1/apps/demo/run", Some(&ada), Some(json!({"command": "x".repeat(20_000)}))).await;
        assert_eq!(huge.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn rebase_asks_a_release_manager_and_only_for_writers(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        let rebase = t.call(Method::POST, "/v1/apps/demo/rebase", Some(&ada), None).await;
        assert_eq!(rebase.expect_error(StatusCode::CONFLICT), "this platform has no runtime, so nothing runs");
        let eve = t.user(&ada, "eve").await;
        t.call(Method::POST, "/v1/apps/demo/rebase", Some(&eve), None).await.expect_error(StatusCode::NOT_FOUND);
        t.call(Method::POST, "/v1/apps/demo/rebase", None, None).await.expect_error(StatusCode::UNAUTHORIZED);
        let releases = t.get("/v1/apps/demo/releases", &ada).await.expect(StatusCode::OK);
        assert_eq!(releases.as_array().unwrap().len(), 1, "nothing made");
    }

    async fn the_audit_trail_is_read_by_who_may_see_the_app(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        t.set_config(&ada, "demo", json!({"A": "1"})).await.expect(StatusCode::OK);
        let events = t.get("/v1/apps/demo/events", &ada).await.expect(StatusCode::OK);
        let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["release.create", "app.create"], "newest first: {events}");
        assert_eq!(events[0]["actor"], "ada");
        assert_eq!(events[0]["app"], "demo");
        assert!(events[0]["detail"].as_str().unwrap().starts_with("v2 "), "{events}");
        let one = t.get("/v1/apps/demo/events?limit=1", &ada).await.expect(StatusCode::OK);
        assert_eq!(one.as_array().unwrap().len(), 1);
        // A stranger does not learn the app exists; only an admin reads every app's.
        let eve = t.user(&ada, "eve").await;
        t.get("/v1/apps/demo/events", &eve).await.expect_error(StatusCode::NOT_FOUND);
        let refused = t.get("/v1/events", &eve).await.expect_error(StatusCode::FORBIDDEN);
        assert!(refused.contains("only an admin"), "{refused}");
        let all = t.get("/v1/events", &ada).await.expect(StatusCode::OK);
        assert!(all.as_array().unwrap().len() >= 2, "{all}");
        t.call(Method::GET, "/v1/events", None, None).await.expect_error(StatusCode::UNAUTHORIZED);
    }

    async fn a_pipeline_promotes_one_image_with_each_apps_config_and_gates_production(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let bob = t.user(&root, "bob").await;
        let eve = t.user(&root, "eve").await;
        for app in ["demo-staging", "demo"] {
            t.create_app(&ada, app).await;
            t.call(Method::POST, &format!("/v1/apps/{app}/perms"), Some(&ada), Some(json!({"username": "bob"})))
                .await
                .expect(StatusCode::CREATED);
        }
        t.set_config(&ada, "demo-staging", json!({"GREETING": "staging"})).await.expect(StatusCode::OK);
        t.set_config(&ada, "demo", json!({"GREETING": "production"})).await.expect(StatusCode::OK);
        t.post("/v1/pipelines", &ada, json!({"name": "demo"})).await.expect(StatusCode::CREATED);
        let dup = t.post("/v1/pipelines", &bob, json!({"name": "demo"})).await.expect_error(StatusCode::CONFLICT);
        assert_eq!(dup, "a pipeline named demo exists already: choose another name");
        // Only the pipeline's maker adds apps, and only apps they own.
        t.post("/v1/pipelines/demo/apps", &bob, json!({"app": "demo", "stage": "production"}))
            .await
            .expect_error(StatusCode::NOT_FOUND);
        t.post("/v1/pipelines/demo/apps", &eve, json!({"app": "demo", "stage": "production"}))
            .await
            .expect_error(StatusCode::NOT_FOUND);
        t.post("/v1/pipelines/demo/apps", &ada, json!({"app": "demo", "stage": "prod"}))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        t.post("/v1/pipelines/demo/apps", &ada, json!({"app": "demo-staging", "stage": "staging"})).await.expect(StatusCode::CREATED);
        t.post("/v1/pipelines/demo/apps", &ada, json!({"app": "demo", "stage": "production"})).await.expect(StatusCode::CREATED);
        let patch = t
            .call(Method::PATCH, "/v1/pipelines/demo/stages/production", Some(&bob), Some(json!({"protected": true})))
            .await
            .expect_error(StatusCode::FORBIDDEN);
        assert_eq!(patch, "only ada, who made pipeline demo, or an admin may change it");
        t.call(Method::PATCH, "/v1/pipelines/demo/stages/production", Some(&ada), Some(json!({"protected": true})))
            .await
            .expect(StatusCode::OK);
        // A stranger learns nothing; a collaborator sees it.
        let missing = t.get("/v1/pipelines/demo", &eve).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(missing, t.get("/v1/pipelines/nope", &eve).await.expect_error(StatusCode::NOT_FOUND).replace("nope", "demo"));
        assert_eq!(t.get("/v1/pipelines", &eve).await.expect(StatusCode::OK), json!([]));
        assert_eq!(t.get("/v1/pipelines", &bob).await.expect(StatusCode::OK)[0]["apps"], 2);
        // Nothing deployed upstream: nothing to promote.
        let nothing = t.post("/v1/apps/demo-staging/promote", &ada, json!({})).await.expect_error(StatusCode::CONFLICT);
        assert!(nothing.starts_with("demo-staging has no deployed build to promote"), "{nothing}");
        // staging runs v3 of a pushed build.
        let image = format!("127.0.0.1:5000/demo-staging@sha256:{}", "a".repeat(64));
        let staging = t.store.app("demo-staging").await.unwrap();
        let ada_user = t.store.user("ada").await.unwrap();
        let build = t.store.create_build(&staging, &store::BuildSource::Commit("c".repeat(40)), &ada_user).await.unwrap();
        let procfile = [("web".to_owned(), "./serve".to_owned())].into();
        t.store.finish_build(&staging, build.id, store::BuildStatus::Succeeded, &procfile, Some(&image)).await.unwrap();
        let v3 = t.store.release_build(&staging, build.id, &ada_user).await.unwrap();
        t.store.set_release_status(&staging, v3.version, domain::ReleaseStatus::Succeeded, None).await.unwrap();
        let info = t.get("/v1/pipelines/demo", &bob).await.expect(StatusCode::OK);
        assert_eq!(info["stages"][1]["apps"][0]["image"], image.as_str(), "{info}");
        assert_eq!(info["stages"][2]["apps"][0]["behind"][0]["releases"], Value::Null, "demo runs nothing of staging's: {info}");
        // Production is protected: the promotion waits, and its requester cannot approve it.
        let asked = t.post("/v1/apps/demo-staging/promote", &ada, json!({})).await.expect(StatusCode::CREATED);
        assert_eq!((asked[0]["status"].as_str(), asked[0]["target_app"].as_str()), (Some("pending"), Some("demo")), "{asked}");
        let number = asked[0]["number"].as_u64().unwrap();
        let own = t.post(&format!("/v1/promotions/{number}/approve"), &ada, json!({})).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(own, format!("you asked for promotion #{number}: another collaborator of demo must approve it"));
        t.post(&format!("/v1/promotions/{number}/approve"), &eve, json!({})).await.expect_error(StatusCode::NOT_FOUND);
        let approved = t.post(&format!("/v1/promotions/{number}/approve"), &bob, json!({})).await.expect(StatusCode::OK);
        assert_eq!((approved["status"].as_str(), approved["decided_by"].as_str(), approved["release"].as_u64()), (Some("done"), Some("bob"), Some(3)));
        t.post(&format!("/v1/promotions/{number}/approve"), &bob, json!({})).await.expect_error(StatusCode::CONFLICT);
        // The same image, production's own config, and a build that is not a push's.
        let demo = t.store.app("demo").await.unwrap();
        let release = t.store.release(&demo, domain::ReleaseVersion::new(3).unwrap()).await.unwrap();
        assert_eq!(release.config["GREETING"], "production");
        assert_eq!(release.summary, "ada promoted demo-staging v3 (ccccccc), approved by bob");
        let promoted = t.store.build(&demo, release.build.unwrap()).await.unwrap();
        assert_eq!((promoted.image.as_deref(), promoted.commit.as_deref()), (Some(image.as_str()), Some("c".repeat(40).as_str())));
        assert!(!promoted.is_push(), "{promoted:?}");
        // While production deploys, another promotion's approval is refused and stays pending.
        let again = t.post("/v1/apps/demo-staging/promote", &bob, json!({"to": ["demo"]})).await.expect(StatusCode::CREATED);
        let second = again[0]["number"].as_u64().unwrap();
        let busy = t.post(&format!("/v1/promotions/{second}/approve"), &ada, json!({})).await.expect_error(StatusCode::CONFLICT);
        assert!(busy.starts_with("demo has a deploy under way (v3 is pending)"), "{busy}");
        assert_eq!(t.get(&format!("/v1/promotions/{second}"), &ada).await.expect(StatusCode::OK)["status"], "pending");
        let rejected = t.post(&format!("/v1/promotions/{second}/reject"), &bob, json!({})).await.expect(StatusCode::OK);
        assert_eq!(rejected["status"], "rejected");
        // Promotions go down the pipeline only.
        let up = t.post("/v1/apps/demo/promote", &ada, json!({"to": ["demo-staging"]})).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(up.contains("promotions go down the pipeline"), "{up}");
        // Each step is in the pipeline's audit trail, with who.
        let events = t.get("/v1/pipelines/demo/events", &bob).await.expect(StatusCode::OK);
        let steps: Vec<String> = events.as_array().unwrap().iter().rev()
            .filter(|e| e["action"].as_str().unwrap().starts_with("promotion."))
            .map(|e| format!("{} {}", e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
            .collect();
        assert_eq!(steps, ["ada promotion.request", "ada promotion.approve-refused", "bob promotion.approve", "bob promotion.request", "bob promotion.reject"]);
        t.get("/v1/pipelines/demo/events", &eve).await.expect_error(StatusCode::NOT_FOUND);
        // Destroying the pipeline leaves its apps.
        t.call(Method::DELETE, "/v1/pipelines/demo", Some(&bob), None).await.expect_error(StatusCode::FORBIDDEN);
        t.call(Method::DELETE, "/v1/pipelines/demo", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.get("/v1/apps/demo", &ada).await.expect(StatusCode::OK);
    }

    async fn bad_input_is_refused_and_changes_nothing(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        t.set_config(&ada, "demo", json!({"A": "1"})).await.expect(StatusCode::OK);
        let before = t.snapshot(&ada, "demo").await;
        let big = "x".repeat(32 * 1024 + 1);
        let fits = "x".repeat(32 * 1024);
        let eight: serde_json::Map<String, Value> = (0..8).map(|i| (format!("K{i}"), json!(fits))).collect();
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let cases: Vec<(Method, &str, Option<Value>, StatusCode)> = vec![
            (Method::POST, "/v1/apps", Some(json!({"name": "Bad_Name"})), unprocessable),
            (Method::POST, "/v1/apps", Some(json!({"name": "-x"})), unprocessable),
            (Method::POST, "/v1/apps", Some(json!({"name": "x".repeat(31)})), unprocessable),
            (Method::POST, "/v1/apps", Some(json!({"name": "slipway"})), unprocessable),
            (Method::POST, "/v1/apps", Some(json!({"name": "demo"})), StatusCode::CONFLICT),
            (Method::POST, "/v1/apps", Some(json!({"nom": "x"})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"1BAD": "x"}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"GOOD": "x", "BAD-KEY": "y"}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"PORT": "80"}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"BIG": big}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": eight})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"A": 5}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"NUL": "a\u{0}b"}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/config", Some(json!({"values": {"ESC": "\u{1b}[2J"}})), unprocessable),
            (Method::POST, "/v1/apps/demo/builds", Some(json!({"image": "registry.local/img:1", "procfile": "web: a\nweb: b\n"})), unprocessable),
            (Method::POST, "/v1/apps/demo/builds", Some(json!({"image": "registry.local/img:1", "procfile": "# nothing\n"})), unprocessable),
            (Method::POST, "/v1/apps/demo/builds", Some(json!({"image": "has space", "procfile": "web: a"})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/formation", Some(json!({"counts": {"web": 101}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/formation", Some(json!({"counts": {"Web": 1}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/formation", Some(json!({"counts": {"release": 1}})), unprocessable),
            (Method::PATCH, "/v1/apps/demo/formation", Some(json!({"counts": {"web": -1}})), unprocessable),
            (Method::POST, "/v1/apps/demo/rollback", Some(json!({"version": 0})), unprocessable),
            (Method::POST, "/v1/apps/demo/rollback", Some(json!({"version": 99})), StatusCode::CONFLICT),
            (Method::GET, "/v1/apps/demo/releases/v0", None, unprocessable),
            (Method::GET, "/v1/apps/demo/releases/v9", None, StatusCode::NOT_FOUND),
            (Method::POST, "/v1/apps/demo/domains", Some(json!({"domain": "*.example.com"})), unprocessable),
            (Method::POST, "/v1/apps/demo/domains", Some(json!({"domain": "other.localhost"})), unprocessable),
            (Method::POST, "/v1/apps/demo/perms", Some(json!({"username": "nobody"})), StatusCode::NOT_FOUND),
            (Method::POST, "/v1/keys", Some(json!({"public_key": "ssh-ed25519 garbage"})), unprocessable),
            (Method::POST, "/v1/keys", Some(json!({"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"})), unprocessable),
            (Method::DELETE, "/v1/keys/nope", None, StatusCode::NOT_FOUND),
            (Method::POST, "/v1/auth/register", Some(json!({"username": "Bad Name", "password": "password-1"})), unprocessable),
            (Method::POST, "/v1/auth/register", Some(json!({"username": "bob", "password": "short"})), unprocessable),
            (Method::POST, "/v1/auth/register", Some(json!({"username": "bob", "password": " ".repeat(40)})), unprocessable),
            (Method::GET, "/v1/nothing", None, StatusCode::NOT_FOUND),
        ];
        for (method, path, body, status) in cases {
            let context = format!("{method} {path} {}", body.as_ref().map(|b| b.to_string().chars().take(80).collect::<String>()).unwrap_or_default());
            let reply = t.call(method, path, Some(&ada), body).await;
            assert_eq!(reply.status, status, "{context}: {}", reply.body);
            reply.expect_error(status);
        }

        // Malformed and oversized bodies.
        let raw = |body: &'static [u8], content_type: &'static str| {
            Request::builder()
                .method(Method::PATCH)
                .uri("/v1/apps/demo/config")
                .header("authorization", format!("Bearer {ada}"))
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap()
        };
        let malformed = t.send(raw(b"{\"values\": {\"A\": ", "application/json")).await.expect_error(StatusCode::BAD_REQUEST);
        assert_eq!(malformed, "malformed JSON: values.A: EOF while parsing a value at line 1 column 17");
        t.send(raw(b"not json", "application/json")).await.expect_error(StatusCode::BAD_REQUEST);
        t.send(raw(b"{\"values\": {\"A\": \"2\"}}", "text/plain")).await.expect_error(StatusCode::BAD_REQUEST);
        let huge = Request::builder()
            .method(Method::PATCH)
            .uri("/v1/apps/demo/config")
            .header("authorization", format!("Bearer {ada}"))
            .header("content-type", "application/json")
            .body(Body::from(format!("{{\"values\": {{\"A\": \"{}\"}}}}", "x".repeat(2 * 1024 * 1024))))
            .unwrap();
        t.send(huge).await.expect_error(StatusCode::PAYLOAD_TOO_LARGE);

        assert_eq!(t.snapshot(&ada, "demo").await, before, "bad input changed nothing");
    }

    async fn tokens_missing_bad_and_revoked(t: TestApp) {
        let ada = t.first_user("ada").await;
        let missing = t.call(Method::GET, "/v1/apps", None, None).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(missing, "missing API token: log in with `slip login URL`");
        let bad = t.call(Method::GET, "/v1/apps", Some("slp_0000"), None).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(bad, "invalid or revoked API token: log in again with `slip login URL`");
        let basic = Request::builder().uri("/v1/apps").header("authorization", "Basic YWRhOnB3").body(Body::empty()).unwrap();
        t.send(basic).await.expect_error(StatusCode::UNAUTHORIZED);

        let wrong = json!({"username": "ada", "password": "wrong-password"});
        assert_eq!(t.call(Method::POST, "/v1/auth/login", None, Some(wrong)).await.expect_error(StatusCode::UNAUTHORIZED), "wrong username or password");
        let nobody = json!({"username": "nobody", "password": "password-1"});
        assert_eq!(t.call(Method::POST, "/v1/auth/login", None, Some(nobody)).await.expect_error(StatusCode::UNAUTHORIZED), "wrong username or password");

        let second = t.call(Method::POST, "/v1/auth/login", None, Some(json!({"username": "ada", "password": "password-1"}))).await.expect(StatusCode::OK);
        let second = second["token"].as_str().unwrap();
        t.call(Method::POST, "/v1/auth/logout", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.get("/v1/apps", &ada).await.expect_error(StatusCode::UNAUTHORIZED);
        t.get("/v1/apps", second).await.expect(StatusCode::OK);
        // A revoked token cannot be used to register someone either.
        let register = json!({"username": "mallory", "password": "password-1"});
        t.call(Method::POST, "/v1/auth/register", Some(&ada), Some(register.clone())).await.expect_error(StatusCode::UNAUTHORIZED);
        // And registration is closed to anonymous callers once there is a user.
        let closed = t.call(Method::POST, "/v1/auth/register", None, Some(register)).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(closed, "registration is closed: ask an admin to create your account");
    }

    async fn fifty_concurrent_config_sets(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        let t = Arc::new(t);
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (t, ada) = (Arc::clone(&t), ada.clone());
                tokio::spawn(async move {
                    let reply = t.set_config(&ada, "demo", json!({format!("KEY_{i}"): "x"})).await.expect(StatusCode::OK);
                    reply["release"]["version"].as_u64().unwrap()
                })
            })
            .collect();
        let mut versions = Vec::new();
        for task in tasks {
            versions.push(task.await.unwrap());
        }
        versions.sort_unstable();
        assert_eq!(versions, (2..=51).collect::<Vec<u64>>());
        let config = t.get("/v1/apps/demo/config", &ada).await.expect(StatusCode::OK);
        assert_eq!(config["version"], 51);
        assert_eq!(config["values"].as_object().unwrap().len(), 50);
    }

    async fn keys_domains_and_info(t: TestApp) {
        let ada = t.first_user("ada").await;
        let key = t.call(Method::POST, "/v1/keys", Some(&ada), Some(json!({"public_key": KEY}))).await.expect(StatusCode::CREATED);
        assert!(key["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
        t.call(Method::POST, "/v1/keys", Some(&ada), Some(json!({"public_key": KEY}))).await.expect_error(StatusCode::CONFLICT);
        t.call(Method::DELETE, "/v1/keys/ada@laptop", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        assert_eq!(t.get("/v1/keys", &ada).await.expect(StatusCode::OK), json!([]));

        t.create_app(&ada, "demo").await;
        t.call(Method::POST, "/v1/apps/demo/domains", Some(&ada), Some(json!({"domain": "www.example.com"}))).await.expect(StatusCode::CREATED);
        let info = t.get("/v1/apps/demo", &ada).await.expect(StatusCode::OK);
        assert_eq!(info["domains"][0]["domain"], "www.example.com");
        assert_eq!(info["latest_release"]["version"], 1);
        let platform = t.call(Method::GET, "/v1/info", None, None).await.expect(StatusCode::OK);
        assert_eq!((platform["git_url"].as_str(), platform["registration_open"].as_bool()), (Some("ssh://git@127.0.0.1:2222"), Some(false)));
        let health = t.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(health.status, StatusCode::OK);
        let openapi = t.call(Method::GET, "/v1/openapi.json", None, None).await.expect(StatusCode::OK);
        let paths = openapi["paths"].as_object().unwrap();
        for path in ["/v1/apps/{app}/config", "/v1/apps/{app}/rollback", "/v1/auth/login", "/v1/keys/{key}",
                     "/v1/apps/{app}/healthchecks/{type}/{kind}", "/v1/apps/{app}/limits/{type}", "/v1/apps/{app}/autoscale/{type}",
                     "/v1/apps/{app}/routing", "/v1/apps/{app}/certs", "/v1/apps/{app}/certs/{name}/domains/{domain}",
                     "/v1/apps/{app}/test-runs", "/v1/apps/{app}/test-runs/{number}"] {
            assert!(paths.contains_key(path), "{path} is documented");
        }
    }

    async fn strangers_get_the_same_404_as_for_a_missing_app_on_every_app_route(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let eve = t.user(&root, "eve").await;
        t.create_app(&ada, "demo").await;
        t.set_config(&ada, "demo", json!({"A": "1"})).await.expect(StatusCode::OK);
        let before = t.snapshot(&ada, "demo").await;
        // Every route under /v1/apps/{app}, with input that is valid, invalid, malformed.
        let routes: &[(Method, &str, &[&str])] = &[
            (Method::GET, "", &[]),
            (Method::DELETE, "", &[]),
            (Method::GET, "/config", &[]),
            (Method::PATCH, "/config", &[r#"{"values": {"K": "v"}}"#, r#"{"values": {"1BAD": "x"}}"#, r#"{"values": {"K": "a\u0000b"}}"#, "{"]),
            (Method::GET, "/releases", &[]),
            (Method::GET, "/releases?limit=abc", &[]),
            (Method::GET, "/releases/v1", &[]),
            (Method::GET, "/releases/vX", &[]),
            (Method::POST, "/rollback", &["{}", r#"{"version": 0}"#, "[1]"]),
            (Method::GET, "/formation", &[]),
            (Method::PATCH, "/formation", &[r#"{"counts": {"web": 1}}"#, r#"{"counts": {"Web!": -1}}"#, r#"{"counts": {"web": 1000}}"#, "x"]),
            (Method::GET, "/builds", &[]),
            (Method::GET, "/builds?limit=-1", &[]),
            (Method::POST, "/builds", &[r#"{"image": "img:1", "procfile": "web: x"}"#, r#"{"image": "../etc", "procfile": ""}"#, "{}"]),
            (Method::GET, "/builds/not-a-uuid", &[]),
            (Method::GET, "/builds/0190a0a0-0000-7000-8000-000000000000", &[]),
            (Method::DELETE, "/builds/cache", &[]),
            (Method::GET, "/domains", &[]),
            (Method::POST, "/domains", &[r#"{"domain": "www.example.com"}"#, r#"{"domain": "*.bad"}"#, "{"]),
            (Method::DELETE, "/domains/www.example.com", &[]),
            (Method::GET, "/perms", &[]),
            (Method::POST, "/perms", &[r#"{"username": "eve"}"#, r#"{"username": "Bad Name"}"#, "{"]),
            (Method::DELETE, "/perms/ada", &[]),
            (Method::GET, "/processes", &[]),
            (Method::POST, "/processes/restart", &["{}", r#"{"type": "Web!"}"#, "{"]),
            (Method::GET, "/logs", &[]),
            (Method::GET, "/logs?lines=notanumber", &[]),
            (Method::POST, "/run", &[r#"{"command": "true"}"#, r#"{"command": ""}"#, "{"]),
            (Method::GET, "/test-runs", &[]),
            (Method::GET, "/test-runs/1", &[]),
            (Method::GET, "/test-runs/x", &[]),
            (Method::POST, "/test-runs", &["{}", r#"{"build": "0190a0a0-0000-7000-8000-000000000000"}"#, r#"{"build": "x"}"#, "{"]),
            (Method::GET, "/healthchecks", &[]),
            (Method::PUT, "/healthchecks/web/liveness", &[r#"{"type": "exec", "command": "true"}"#, r#"{"type": "httpGet"}"#, "{"]),
            (Method::PUT, "/healthchecks/Web!/nope", &[r#"{"type": "exec", "command": "true"}"#]),
            (Method::DELETE, "/healthchecks/web/liveness", &[]),
            (Method::DELETE, "/healthchecks/web", &[]),
            (Method::GET, "/limits", &[]),
            (Method::PUT, "/limits/web", &[r#"{"cpu": "1"}"#, r#"{"memory": "lots"}"#, "{"]),
            (Method::DELETE, "/limits/web?memory=true", &[]),
            (Method::DELETE, "/limits/web?memory=maybe", &[]),
            (Method::GET, "/autoscale", &[]),
            (Method::PUT, "/autoscale/web", &[r#"{"min": 1, "max": 2, "cpu_percent": 50}"#, r#"{"min": 0}"#, "{"]),
            (Method::DELETE, "/autoscale/web", &[]),
            (Method::GET, "/routing", &[]),
            (Method::PATCH, "/routing", &[r#"{"maintenance": true}"#, r#"{"allow": ["10.0.0.0/8"]}"#, r#"{"allow": ["nope"]}"#, r#"{"enabled": false, "maintenance": true}"#, "{"]),
            (Method::GET, "/certs", &[]),
            (Method::POST, "/certs", &[r#"{"name": "www", "certificate": "x", "key": "y"}"#, r#"{"name": "Bad!"}"#, "{"]),
            (Method::GET, "/certs/www", &[]),
            (Method::DELETE, "/certs/www", &[]),
            (Method::PUT, "/certs/www/domains/www.example.com", &[]),
            (Method::DELETE, "/certs/www/domains/www.example.com", &[]),
            (Method::GET, "/events", &[]),
            (Method::POST, "/promote", &["{}", r#"{"to": ["Bad!"]}"#, "{"]),
        ];
        let mut checked = 0;
        for (method, route, bodies) in routes {
            let bodies: Vec<Option<&str>> = if bodies.is_empty() { vec![None] } else { bodies.iter().copied().map(Some).collect() };
            for body in bodies {
                let mut replies = Vec::new();
                for app in ["demo", "nope"] {
                    let mut request = Request::builder()
                        .method(method.clone())
                        .uri(format!("/v1/apps/{app}{route}"))
                        .header("authorization", format!("Bearer {eve}"));
                    if body.is_some() {
                        request = request.header("content-type", "application/json");
                    }
                    let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
                    let reply = t.send(request).await;
                    let context = format!("{method} /v1/apps/{app}{route} {body:?}: {}", reply.body);
                    let message = reply.expect_error(StatusCode::NOT_FOUND);
                    replies.push((message.replace(app, "APP"), context));
                    checked += 1;
                }
                assert_eq!(replies[0].0, replies[1].0, "{} / {}", replies[0].1, replies[1].1);
                assert_eq!(replies[0].0, "no app named APP: see yours with `slip apps`");
            }
        }
        assert!(checked > 60);
        assert_eq!(t.snapshot(&ada, "demo").await, before, "strangers changed nothing");
    }

    async fn expired_tokens_are_refused_with_a_hint(t: TestApp) {
        // A platform whose tokens expire as soon as they are made.
        let t = TestApp::with_config(t.backend(), |config| config.token_ttl = std::time::Duration::ZERO).await.unwrap();
        let ada = t.first_user("ada").await;
        let expired = t.get("/v1/apps", &ada).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(expired, "your session expired: log in again with `slip login`");
        let again = t.get("/v1/apps", &ada).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(again, "invalid or revoked API token: log in again with `slip login URL`");
    }

    async fn tokens_are_listed_without_secrets_and_revoked(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let laptop = t.call(Method::POST, "/v1/auth/login", None, Some(json!({"username": "ada", "password": "password-1"}))).await.expect(StatusCode::OK);
        let laptop = laptop["token"].as_str().unwrap().to_owned();
        let listed = t.get("/v1/tokens", &ada).await.expect(StatusCode::OK);
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(!listed.iter().any(|t| t.to_string().contains("slp_")), "no secrets: {listed:?}");
        let current: Vec<bool> = listed.iter().map(|t| t["current"].as_bool().unwrap()).collect();
        assert_eq!(current, [false, true], "newest first; the caller's own is marked");
        let created = time::OffsetDateTime::parse(listed[0]["created_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        let expires = time::OffsetDateTime::parse(listed[0]["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        assert!((3598..=3600).contains(&(expires - created).whole_seconds()), "the configured lifetime");

        // Someone else's token cannot be revoked, nor even seen to exist.
        let roots = t.get("/v1/tokens", &root).await.expect(StatusCode::OK);
        let roots_id = roots[0]["id"].as_str().unwrap();
        let refused = t.call(Method::DELETE, &format!("/v1/tokens/{roots_id}"), Some(&ada), None).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(refused, format!("you have no token {roots_id}: see yours with `slip tokens`"));
        t.call(Method::DELETE, "/v1/tokens/not-an-id", Some(&ada), None).await.expect_error(StatusCode::NOT_FOUND);
        t.get("/v1/apps", &root).await.expect(StatusCode::OK);

        // Revoking the laptop's token ends its session, not this one.
        let id = listed[0]["id"].as_str().unwrap();
        t.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.get("/v1/apps", &laptop).await.expect_error(StatusCode::UNAUTHORIZED);
        t.get("/v1/apps", &ada).await.expect(StatusCode::OK);
        assert_eq!(t.get("/v1/tokens", &ada).await.expect(StatusCode::OK).as_array().unwrap().len(), 1);
        t.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&ada), None).await.expect_error(StatusCode::NOT_FOUND);
    }

    async fn scoped_tokens_are_limited_to_their_app_and_scope(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let bob = t.user(&root, "bob").await;
        t.create_app(&ada, "demo").await;
        t.create_app(&ada, "other").await;
        let made = t.call(Method::POST, "/v1/tokens", Some(&ada), Some(json!({"description": "CI deploys", "expires_in": "30d", "app": "demo"}))).await.expect(StatusCode::CREATED);
        let ci = made["secret"].as_str().unwrap().to_owned();
        assert!(ci.starts_with("slp_"), "{made}");
        assert_eq!((made["token"]["app"].as_str(), made["token"]["scope"].as_str(), made["token"]["description"].as_str()), (Some("demo"), Some("deploy"), Some("CI deploys")));
        let lifetime = time::OffsetDateTime::parse(made["token"]["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
            - time::OffsetDateTime::parse(made["token"]["created_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        assert!((30 * 86400 - 2..=30 * 86400).contains(&lifetime.whole_seconds()), "{lifetime}");

        // It deploys and reads its app.
        let build = json!({"image": "registry.local/demo:1", "procfile": "web: ./serve"});
        t.call(Method::POST, "/v1/apps/demo/builds", Some(&ci), Some(build.clone())).await.expect(StatusCode::CREATED);
        t.get("/v1/apps/demo/releases", &ci).await.expect(StatusCode::OK);
        assert_eq!(t.get("/v1/auth/whoami", &ci).await.expect(StatusCode::OK)["username"], "ada");
        // Nothing else.
        let other = t.call(Method::POST, "/v1/apps/other/builds", Some(&ci), Some(build.clone())).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(other, "this token may only be used for demo");
        t.get("/v1/apps/nope", &ci).await.expect_error(StatusCode::FORBIDDEN);
        let config = t.set_config(&ci, "demo", json!({"K": "v"})).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(config, "this token may only read and deploy demo: it cannot do this; use your own login");
        t.call(Method::DELETE, "/v1/apps/demo", Some(&ci), None).await.expect_error(StatusCode::FORBIDDEN);
        let create = t.call(Method::POST, "/v1/apps", Some(&ci), Some(json!({"name": "mine"}))).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(create, "this token is limited to demo: it cannot do this; use your own login");
        t.call(Method::POST, "/v1/tokens", Some(&ci), Some(json!({"description": "escalate"}))).await.expect_error(StatusCode::FORBIDDEN);
        t.get("/v1/tokens", &ci).await.expect_error(StatusCode::FORBIDDEN);

        // A read token only reads.
        let read = t.call(Method::POST, "/v1/tokens", Some(&ada), Some(json!({"description": "dashboards", "app": "demo", "scope": "read"}))).await.expect(StatusCode::CREATED);
        let read = read["secret"].as_str().unwrap().to_owned();
        t.get("/v1/apps/demo", &read).await.expect(StatusCode::OK);
        let refused = t.call(Method::POST, "/v1/apps/demo/builds", Some(&read), Some(build.clone())).await.expect_error(StatusCode::FORBIDDEN);
        assert_eq!(refused, "this token may only read demo: it cannot do this; use your own login");
        t.call(Method::POST, "/v1/apps/demo/rollback", Some(&read), Some(json!({}))).await.expect_error(StatusCode::FORBIDDEN);

        // What is asked for is checked, and bad requests make nothing.
        let before = t.get("/v1/tokens", &ada).await.expect(StatusCode::OK);
        for (body, status, message) in [
            (json!({"description": "x", "scope": "deploy"}), StatusCode::UNPROCESSABLE_ENTITY, "a scope limits a token to one app: give the app with --app APP"),
            (json!({"description": "x", "expires_in": "400d"}), StatusCode::UNPROCESSABLE_ENTITY, "a token may live at most 365 days; \"400d\" is longer"),
            (json!({"description": "x", "app": "demo", "scope": "write"}), StatusCode::UNPROCESSABLE_ENTITY, "unknown token scope \"write\": use deploy or read"),
            (json!({"description": " ", "app": "demo"}), StatusCode::UNPROCESSABLE_ENTITY, "give the token a description of 1-200 characters on one line, such as --description \"CI deploys\""),
            (json!({"description": "x", "app": "nope"}), StatusCode::NOT_FOUND, "no app named nope: see yours with `slip apps`"),
        ] {
            assert_eq!(t.call(Method::POST, "/v1/tokens", Some(&ada), Some(body.clone())).await.expect_error(status), message, "{body}");
        }
        // A stranger to the app cannot make a token for it, nor learn that it exists.
        t.call(Method::POST, "/v1/tokens", Some(&bob), Some(json!({"description": "x", "app": "demo"}))).await.expect_error(StatusCode::NOT_FOUND);
        assert_eq!(t.get("/v1/tokens", &ada).await.expect(StatusCode::OK), before);

        // The list shows what each token is for; the events never hold a secret.
        let listed = t.get("/v1/tokens", &ada).await.expect(StatusCode::OK);
        let shown: Vec<String> = listed.as_array().unwrap().iter().map(|t| format!("{} {} {}", t["description"], t["app"], t["scope"])).collect();
        assert_eq!(shown, ["\"dashboards\" \"demo\" \"read\"", "\"CI deploys\" \"demo\" \"deploy\"", "null null null"]);
        let events = t.get("/v1/apps/demo/events", &ada).await.expect(StatusCode::OK);
        let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "token.create").count(), 2, "{events}");
        assert!(!events.to_string().contains("slp_"), "{events}");

        // Revoked: 401 at once, and recorded.
        let id = listed[1]["id"].as_str().unwrap();
        t.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        let revoked = t.call(Method::POST, "/v1/apps/demo/builds", Some(&ci), Some(build.clone())).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(revoked, "invalid or revoked API token: log in again with `slip login URL`");
        let events = t.get("/v1/apps/demo/events", &ada).await.expect(StatusCode::OK);
        assert_eq!(events[0]["action"], "token.revoke", "{events}");
        assert!(events[0]["detail"].as_str().unwrap().contains("CI deploys"), "{events}");

        // Expired: 401.
        use sha2::Digest;
        let user = t.store.user("ada").await.unwrap();
        let app = t.store.app("demo").await.unwrap();
        let expired = "slp_an_expired_deploy_token";
        t.store.create_api_token(&user, &hex::encode(sha2::Sha256::digest(expired.as_bytes())), &store::NewToken {
            description: "old CI",
            expires_at: time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
            limit: Some((&app, domain::TokenScope::Deploy)),
        }).await.unwrap();
        let refused = t.call(Method::POST, "/v1/apps/demo/builds", Some(expired), Some(build.clone())).await.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(refused, "the API token \"old CI\" expired: make a new one with `slip tokens:create`");

        // A collaborator's token goes with their access; an app's tokens go with the app.
        t.call(Method::POST, "/v1/apps/demo/perms", Some(&ada), Some(json!({"username": "bob"}))).await.expect(StatusCode::CREATED);
        let bobs = t.call(Method::POST, "/v1/tokens", Some(&bob), Some(json!({"description": "bob's CI", "app": "demo"}))).await.expect(StatusCode::CREATED);
        let bobs = bobs["secret"].as_str().unwrap().to_owned();
        t.call(Method::POST, "/v1/apps/demo/builds", Some(&bobs), Some(build.clone())).await.expect(StatusCode::CREATED);
        t.call(Method::DELETE, "/v1/apps/demo/perms/bob", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.call(Method::POST, "/v1/apps/demo/builds", Some(&bobs), Some(build.clone())).await.expect_error(StatusCode::NOT_FOUND);
        t.call(Method::DELETE, "/v1/apps/demo", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.get("/v1/apps/demo", &read).await.expect_error(StatusCode::UNAUTHORIZED);
    }

    async fn a_scoped_token_is_refused_by_every_route_not_about_its_app(t: TestApp) {
        let ada = t.first_user("ada").await;
        t.create_app(&ada, "demo").await;
        t.create_app(&ada, "other").await;
        let ci = t.call(Method::POST, "/v1/tokens", Some(&ada), Some(json!({"description": "CI", "app": "demo"}))).await.expect(StatusCode::CREATED);
        let ci = ci["secret"].as_str().unwrap().to_owned();
        let openapi = t.call(Method::GET, "/v1/openapi.json", None, None).await.expect(StatusCode::OK);
        // Routes that take a scoped token although they are about no app.
        let open = ["/v1/info", "/v1/auth/login", "/v1/auth/whoami"];
        // App routes that span apps (a promotion reads one and deploys others): people only.
        let people_only = ["/v1/apps/{app}/promote"];
        let mut checked = 0;
        for (path, operations) in openapi["paths"].as_object().unwrap() {
            let on_app = path.starts_with("/v1/apps/{app}") && !people_only.contains(&path.as_str());
            if open.contains(&path.as_str()) {
                continue;
            }
            // Every parameter filled in: the app with the wrong one, the rest with anything.
            let mut uri = path.replace("{app}", "other");
            while let (Some(start), Some(end)) = (uri.find('{'), uri.find('}')) {
                uri.replace_range(start..=end, "x");
            }
            for method in operations.as_object().unwrap().keys() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let body = [Method::POST, Method::PUT, Method::PATCH].contains(&method).then(|| json!({}));
                let reply = t.call(method.clone(), &uri, Some(&ci), body).await;
                let context = format!("{method} {uri}: {}", reply.body);
                let message = reply.expect_error(StatusCode::FORBIDDEN);
                let expected = if on_app { "this token may only be used for demo" } else { "this token is limited to demo: it cannot do this; use your own login" };
                assert_eq!(message, expected, "{context}");
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked}");
        let metrics = t.call(Method::GET, "/metrics", Some(&ci), None).await;
        assert!([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&metrics.status), "{metrics:?}");
        assert_eq!(t.get("/v1/apps", &ada).await.expect(StatusCode::OK).as_array().unwrap().len(), 2, "nothing was made or destroyed");
    }

    async fn deploy_keys_are_the_owners_to_give(t: TestApp) {
        let root = t.first_user("root").await;
        let ada = t.user(&root, "ada").await;
        let bob = t.user(&root, "bob").await;
        let eve = t.user(&root, "eve").await;
        t.create_app(&ada, "demo").await;
        t.call(Method::POST, "/v1/apps/demo/perms", Some(&ada), Some(json!({"username": "bob"}))).await.expect(StatusCode::CREATED);
        let key = json!({"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDoyy3jwG2RsuNTRQkVuwgmIVmDpiqPHx70cH49eNSr+ ci@demo"});
        let ci = t.call(Method::POST, "/v1/tokens", Some(&ada), Some(json!({"description": "CI", "app": "demo"}))).await.expect(StatusCode::CREATED);
        let ci = ci["secret"].as_str().unwrap().to_owned();
        t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&bob), Some(key.clone())).await.expect_error(StatusCode::FORBIDDEN);
        t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&eve), Some(key.clone())).await.expect_error(StatusCode::NOT_FOUND);
        t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&ci), Some(key.clone())).await.expect_error(StatusCode::FORBIDDEN);
        t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&ada), Some(json!({"public_key": "nonsense"}))).await.expect_error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(t.get("/v1/apps/demo/deploy-keys", &bob).await.expect(StatusCode::OK), json!([]));
        let added = t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&ada), Some(key.clone())).await.expect(StatusCode::CREATED);
        assert_eq!(added["comment"], "ci@demo");
        t.call(Method::POST, "/v1/apps/demo/deploy-keys", Some(&ada), Some(key.clone())).await.expect_error(StatusCode::CONFLICT);
        t.call(Method::POST, "/v1/keys", Some(&bob), Some(key.clone())).await.expect_error(StatusCode::CONFLICT);
        assert_eq!(t.get("/v1/apps/demo/deploy-keys", &bob).await.expect(StatusCode::OK)[0]["fingerprint"], added["fingerprint"]);
        assert_eq!(t.get("/v1/keys", &ada).await.expect(StatusCode::OK), json!([]), "not one of ada's own keys");
        t.call(Method::DELETE, "/v1/apps/demo/deploy-keys/ci@demo", Some(&bob), None).await.expect_error(StatusCode::FORBIDDEN);
        t.call(Method::DELETE, "/v1/apps/demo/deploy-keys/ci@demo", Some(&ada), None).await.expect(StatusCode::NO_CONTENT);
        t.call(Method::DELETE, "/v1/apps/demo/deploy-keys/ci@demo", Some(&ada), None).await.expect_error(StatusCode::NOT_FOUND);
        let events = t.get("/v1/apps/demo/events", &ada).await.expect(StatusCode::OK);
        let actions: Vec<&str> = events.as_array().unwrap().iter().take(2).map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["keys.remove", "keys.add"]);
    }

    async fn an_app_created_without_a_name_gets_a_readable_one(t: TestApp) {
        let ada = t.first_user("ada").await;
        let made = t.call(Method::POST, "/v1/apps", Some(&ada), Some(json!({}))).await.expect(StatusCode::CREATED);
        let name = made["name"].as_str().unwrap();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(parts[2].len() == 4 && parts[2].chars().all(|c| c.is_ascii_digit()), "{name}");
        t.get(&format!("/v1/apps/{name}"), &ada).await.expect(StatusCode::OK);
        let again = t.call(Method::POST, "/v1/apps", Some(&ada), Some(json!({"name": null}))).await.expect(StatusCode::CREATED);
        assert_ne!(again["name"], made["name"]);
    }

    async fn a_login_flood_is_throttled_and_hashing_is_bounded(t: TestApp) {
        let t = TestApp::with_config(t.backend(), |config| {
            config.login = slipway_api::LoginLimits {
                hashers: 1,
                queue: 2,
                free_per_account: 3,
                free_per_address: 10,
                first_delay: std::time::Duration::from_secs(60),
                max_delay: std::time::Duration::from_secs(600),
            };
        })
        .await
        .unwrap();
        t.first_user("ada").await;
        // Ada has logged in from her own address before.
        t.login_from(2, "ada", "password-1").await.expect(StatusCode::OK);

        // A hundred guesses at once from another address.
        let t = Arc::new(t);
        let guesses: Vec<_> = (0..100)
            .map(|i| {
                let t = Arc::clone(&t);
                tokio::spawn(async move { t.login_from(1, "ada", &format!("guess-{i}")).await })
            })
            .collect();
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for guess in guesses {
            let reply = guess.await.unwrap();
            let status = reply.status.as_u16();
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                let wait: u64 = reply.retry_after.as_deref().expect("Retry-After").parse().unwrap();
                assert!((1..=600).contains(&wait), "{wait}");
                assert!(reply.expect_error(StatusCode::TOO_MANY_REQUESTS).starts_with("too many login attempts: wait "));
            }
            *statuses.entry(status).or_default() += 1;
        }
        let hashed = statuses.get(&401).copied().unwrap_or(0) + statuses.get(&503).copied().unwrap_or(0);
        assert!(hashed <= 4, "at most the free attempts and one more reach the hasher: {statuses:?}");
        assert!(statuses[&429] >= 96, "{statuses:?}");
        assert_eq!(statuses.keys().filter(|s| ![401, 429, 503].contains(s)).count(), 0, "{statuses:?}");

        // An address Ada never used waits, even with her password; from her usual address
        // she gets in; the guesser does not, even with her password.
        t.login_from(3, "ada", "password-1").await.expect_error(StatusCode::TOO_MANY_REQUESTS);
        t.login_from(2, "ada", "password-1").await.expect(StatusCode::OK);
        t.login_from(1, "ada", "password-1").await.expect_error(StatusCode::TOO_MANY_REQUESTS);

        // Hashing is bounded: many logins at once for different names from different
        // addresses (so no throttle applies) are partly turned away with 503, none fail.
        let many: Vec<_> = (0..40u8)
            .map(|i| {
                let t = Arc::clone(&t);
                tokio::spawn(async move { t.login_from(100 + i, &format!("user{i}"), "whatever-password").await })
            })
            .collect();
        let mut busy = 0;
        for reply in many {
            let reply = reply.await.unwrap();
            match reply.status {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(reply.retry_after.as_deref(), Some("1"));
                    assert_eq!(reply.expect_error(StatusCode::SERVICE_UNAVAILABLE), "the server is busy checking passwords: try again in a moment");
                    busy += 1;
                }
                other => panic!("unexpected {other}: {}", reply.body),
            }
        }
        assert!(busy > 0, "past the hasher and its queue, logins are turned away");
    }
}
