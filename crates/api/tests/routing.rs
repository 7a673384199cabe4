//! Routing switches and uploaded certificates through the real router, store and a release
//! manager (on a fake runtime that records the routing it is given), on SQLite and on
//! PostgreSQL: collaborators change them and others are refused; bad ranges and bad
//! certificates are refused with one line and change nothing; a key never comes back out.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::Backend;
use time::OffsetDateTime;

mod common;

use common::{TestApp, both_backends};

impl TestApp {
    /// A user the admin makes, logged in: their token.
    async fn user(&self, admin: &str, name: &str) -> String {
        let credentials = json!({"username": name, "password": "password-1"}).to_string();
        let (status, body) = self
            .send(Method::POST, "/v1/auth/register", admin, Some(&credentials))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .send(Method::POST, "/v1/auth/login", "none", Some(&credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A verified custom domain of demo, as `domains:verify` would leave it.
    async fn verified_domain(&self, domain: &str) {
        let app = self.store.app("demo").await.unwrap();
        let ada = self.store.user("ada").await.unwrap();
        let host = domain::Hostname::parse(domain).unwrap();
        self.store
            .add_domain(&app, &host, None, &ada)
            .await
            .unwrap();
    }

    async fn routing(&self, token: &str) -> Value {
        Self::ok(
            self.send(Method::GET, "/v1/apps/demo/routing", token, None)
                .await,
        )
    }

    async fn patch(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Method::PATCH,
            "/v1/apps/demo/routing",
            token,
            Some(&body.to_string()),
        )
        .await
    }

    async fn add_cert(
        &self,
        token: &str,
        name: &str,
        cert: &Made,
        key: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"name": name, "certificate": cert.chain, "key": key}).to_string();
        self.send(Method::POST, "/v1/apps/demo/certs", token, Some(&body))
            .await
    }

    /// The routing the release manager last handed the runtime for demo.
    fn runtime_routing(&self) -> releaser::Routing {
        self.runtime
            .routing(&domain::AppName::parse("demo").unwrap())
            .expect("routing was set")
    }
}

struct Made {
    chain: String,
    key: String,
}

fn make(names: &[&str], not_after: OffsetDateTime) -> Made {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Made {
        chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn in_days(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(days)
}

both_backends! {
    async fn routing_switches_are_changed_by_collaborators_and_reach_the_runtime(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let bob = t.user(&ada, "bob").await;
        let eve = t.user(&ada, "eve").await;
        let (status, added) = t.send(Method::POST, "/v1/apps/demo/perms", &ada, Some(r#"{"username": "bob"}"#)).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(t.routing(&ada).await, json!({
            "enabled": true, "maintenance": false, "allow": [], "force_https": false, "hsts": false,
            "hosts": [{"host": "demo.localhost", "certificate": "platform", "expires_at": null}],
        }));

        let on = TestApp::ok(t.patch(&ada, json!({"maintenance": true})).await);
        assert_eq!(on["maintenance"], true);
        assert!(t.runtime_routing().settings.maintenance, "the answer comes once the runtime has it");
        let listed = TestApp::ok(t.patch(&bob, json!({"allow": ["10.1.2.3/8", "192.0.2.1"]})).await);
        assert_eq!(listed["allow"], json!(["10.0.0.0/8", "192.0.2.1/32"]));
        TestApp::ok(t.patch(&bob, json!({"force_https": true, "hsts": true})).await);
        TestApp::ok(t.patch(&bob, json!({"enabled": false})).await);
        let settings = t.runtime_routing().settings;
        assert!(!settings.enabled && settings.force_https && settings.hsts && settings.allow.len() == 2);
        let before = t.routing(&ada).await;

        // Refused, each with one line, changing nothing.
        for (body, status, says) in [
            (json!({"allow": ["10.0.0.0/33"]}), StatusCode::UNPROCESSABLE_ENTITY, "10.0.0.0/33"),
            (json!({"allow": []}), StatusCode::UNPROCESSABLE_ENTITY, "at least one"),
            (json!({"disallow": ["172.16.0.0/12"]}), StatusCode::UNPROCESSABLE_ENTITY, "172.16.0.0/12"),
            (json!({"enabled": true, "maintenance": false}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({"hsts": true}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "exactly one"),
            (json!({"force_https": false, "hsts": true}), StatusCode::UNPROCESSABLE_ENTITY, "HSTS"),
            (json!({"maintenance": "yes"}), StatusCode::UNPROCESSABLE_ENTITY, "boolean"),
            (json!({"wat": true}), StatusCode::UNPROCESSABLE_ENTITY, "wat"),
        ] {
            let error = TestApp::refused(t.patch(&ada, body.clone()).await, status);
            assert!(error.contains(says), "{body}: {error}");
        }
        let error = TestApp::refused(t.patch(&eve, json!({"maintenance": false})).await, StatusCode::NOT_FOUND);
        assert_eq!(error, "no app named demo: see yours with `slip apps`");
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/routing", &eve, None).await, StatusCode::NOT_FOUND);
        assert_eq!(t.routing(&ada).await, before, "refusals changed nothing");

        // tls:disable turns HSTS off too; removing ranges empties the list.
        let off = TestApp::ok(t.patch(&ada, json!({"force_https": false})).await);
        assert_eq!((off["force_https"].as_bool(), off["hsts"].as_bool()), (Some(false), Some(false)));
        let emptied = TestApp::ok(t.patch(&ada, json!({"disallow": ["10.0.0.0/8", "192.0.2.1"]})).await);
        assert_eq!(emptied["allow"], json!([]));
        assert!(t.runtime_routing().settings.allow.is_empty());
    }

    async fn certificates_are_checked_attached_served_and_their_key_never_returned(t: TestApp) {
        let ada = t.owner_of_demo().await;
        let eve = t.user(&ada, "eve").await;
        t.verified_domain("www.example.com").await;
        t.verified_domain("shop.example.org").await;
        let good = make(&["www.example.com", "api.example.com"], in_days(90));

        // Refused, each with one line, storing nothing.
        let other = make(&["www.example.com"], in_days(90));
        let expired = make(&["www.example.com"], in_days(-1));
        for (name, cert, key, says) in [
            ("www", &good, other.key.as_str(), "does not match"),
            ("www", &expired, expired.key.as_str(), "expired"),
            ("www", &Made { chain: "hello".to_owned(), key: String::new() }, good.key.as_str(), "not PEM"),
            ("www", &good, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
            ("Bad Name", &good, good.key.as_str(), "not a certificate name"),
        ] {
            let error = TestApp::refused(t.add_cert(&ada, name, cert, key).await, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(error.contains(says), "{says}: {error}");
        }
        let error = TestApp::refused(t.add_cert(&eve, "www", &good, &good.key).await, StatusCode::NOT_FOUND);
        assert_eq!(error, "no app named demo: see yours with `slip apps`");
        assert_eq!(TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs", &ada, None).await), json!([]));

        // Added: attached to the domain it covers, never showing its key.
        let (status, added) = t.add_cert(&ada, "www", &good, &good.key).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["domains"], json!(["www.example.com"]));
        assert_eq!(added["names"], json!(["www.example.com", "api.example.com"]));
        assert_eq!(added["fingerprint"].as_str().unwrap().len(), 64);
        TestApp::refused(t.add_cert(&ada, "www", &good, &good.key).await, StatusCode::CONFLICT);
        let listed = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs", &ada, None).await);
        let info = TestApp::ok(t.send(Method::GET, "/v1/apps/demo/certs/www", &ada, None).await);
        assert_eq!(listed[0], info);
        let routing = t.routing(&ada).await;
        assert_eq!(routing["hosts"][2], json!({"host": "www.example.com", "certificate": "uploaded", "name": "www", "expires_at": info["not_after"]}));
        assert_eq!(routing["hosts"][1]["certificate"], "platform");
        for reply in [&added, &listed, &info, &routing] {
            let text = reply.to_string();
            assert!(!text.contains("PRIVATE KEY") && !text.contains(good.key.lines().nth(1).unwrap()), "a key came back: {text}");
        }
        // The runtime serves it (a later change's answer waits for the work before it).
        TestApp::ok(t.patch(&ada, json!({"maintenance": true})).await);
        let served = t.runtime_routing();
        let www = served.hosts.iter().find(|h| h.name == "www.example.com").unwrap();
        assert_eq!(www.certificate.as_ref().map(|c| (c.chain.as_str(), c.key.as_str())), Some((good.chain.as_str(), good.key.as_str())));

        // Attach only to a domain of the app it covers; detach; remove.
        let error = TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/shop.example.org", &ada, None).await, StatusCode::CONFLICT);
        assert!(error.contains("does not cover shop.example.org"), "{error}");
        TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/api.example.com", &ada, None).await, StatusCode::NOT_FOUND);
        TestApp::refused(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/www.example.com", &eve, None).await, StatusCode::NOT_FOUND);
        let detached = TestApp::ok(t.send(Method::DELETE, "/v1/apps/demo/certs/www/domains/www.example.com", &ada, None).await);
        assert_eq!(detached["domains"], json!([]));
        let attached = TestApp::ok(t.send(Method::PUT, "/v1/apps/demo/certs/www/domains/www.example.com", &ada, None).await);
        assert_eq!(attached["domains"], json!(["www.example.com"]));
        TestApp::refused(t.send(Method::DELETE, "/v1/apps/demo/certs/www", &eve, None).await, StatusCode::NOT_FOUND);
        let (status, _) = t.send(Method::DELETE, "/v1/apps/demo/certs/www", &ada, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        TestApp::refused(t.send(Method::GET, "/v1/apps/demo/certs/www", &ada, None).await, StatusCode::NOT_FOUND);
        assert_eq!(t.routing(&ada).await["hosts"][2]["certificate"], "platform");
    }
}
