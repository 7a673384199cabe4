//! Routing switches and uploaded certificates with the real `slipwayd up` and `slip`, on
//! SQLite and on PostgreSQL: what each command says it did and means, the refusals (bad
//! ranges, a certificate whose key does not match, strangers), and that collaborators may
//! do it all. The router's behaviour under the switches is tested with the router.

use serde_json::json;
use slipway_e2e::{PASSWORD, User, both_backends};

/// A self-signed certificate for `host` and its key, as PEM files in the user's home.
fn certificate(user: &User, name: &str, host: &str) -> (String, String) {
    let cert = user.home().join(format!("{name}.crt"));
    let key = user.home().join(format!("{name}.key"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    user.run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={host}"),
            "-addext",
            &format!("subjectAltName=DNS:{host}"),
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    )
    .success();
    (cert, key)
}

both_backends! {
    fn routing_switches_and_certificates_from_slip(platform: Platform) {
        let ada = User::new();
        ada.slip(&["register", &platform.api_url, "--username", "ada", "--password", PASSWORD]).success();
        ada.slip(&["create", "demo", "--no-remote"]).success();
        let bob = User::registered_by(&platform, &ada, "bob");
        let eve = User::registered_by(&platform, &ada, "eve");
        ada.slip(&["perms:add", "bob", "-a", "demo"]).success();
        let slip = |user: &User, args: &[&str]| user.slip(&[&["-a", "demo"], args].concat());

        // Maintenance.
        assert_eq!(slip(&ada, &["maintenance"]).success().trim(), "Maintenance mode is off for demo.");
        assert_eq!(
            slip(&ada, &["maintenance:on"]).success().trim(),
            "Maintenance mode is on for demo: requests get a 503 page; processes keep running."
        );
        assert_eq!(slip(&bob, &["maintenance:info"]).success().trim(), "Maintenance mode is on for demo.");
        assert_eq!(slip(&eve, &["maintenance:off"]).failure(), "error: no app named demo: see yours with `slip apps`");
        assert_eq!(
            slip(&bob, &["maintenance:off"]).success().trim(),
            "Maintenance mode is off for demo: requests reach its processes again."
        );

        // Routing on and off.
        let off = slip(&bob, &["routing:disable"]);
        assert!(off.success().starts_with("Routing is disabled for demo: "), "{}", off.stdout);
        let info = slip(&ada, &["routing"]);
        assert!(info.success().starts_with("Routing is disabled for demo."), "{}", info.stdout);
        assert!(info.success().contains("demo.localhost"), "{}", info.stdout);
        slip(&ada, &["routing:enable"]).success();

        // The allow list.
        assert!(slip(&ada, &["whitelist"]).success().starts_with("demo has no IP allow list: every client is served."));
        let added = slip(&bob, &["whitelist:add", "10.0.0.0/8,192.0.2.1"]);
        assert_eq!(
            added.success().trim(),
            "Added 10.0.0.0/8 and 192.0.2.1 to demo's allow list: only clients in 2 ranges are served; others get a 403."
        );
        let refused = slip(&ada, &["whitelist:add", "10.0.0.0/33"]);
        assert!(refused.failure().starts_with("error: ") && refused.failure().contains("10.0.0.0/33"), "{}", refused.stderr);
        let refused = slip(&ada, &["whitelist:remove", "172.16.0.0/12"]);
        assert!(refused.failure().contains("172.16.0.0/12"), "{}", refused.stderr);
        assert_eq!(slip(&eve, &["whitelist:add", "0.0.0.0/0"]).failure(), "error: no app named demo: see yours with `slip apps`");
        assert_eq!(
            slip(&ada, &["whitelist:list"]).success(),
            "Clients allowed in to demo (others get a 403):\n10.0.0.0/8\n192.0.2.1/32\n"
        );
        let removed = slip(&ada, &["whitelist:remove", "10.0.0.0/8,192.0.2.1/32"]);
        assert!(removed.success().contains("the list is empty, so every client is served"), "{}", removed.stdout);

        // HTTPS only and HSTS.
        let on = slip(&bob, &["tls:enable", "--hsts"]);
        assert!(on.success().starts_with("HTTPS only is on for demo: plain HTTP requests are redirected to HTTPS, and HTTPS responses carry Strict-Transport-Security"), "{}", on.stdout);
        let info = slip(&ada, &["tls:info"]);
        assert!(info.success().starts_with("HTTPS only is on for demo; HSTS is on.\n"), "{}", info.stdout);
        assert!(info.success().contains("demo.localhost  platform"), "{}", info.stdout);
        assert_eq!(slip(&eve, &["tls:disable"]).failure(), "error: no app named demo: see yours with `slip apps`");

        // An uploaded certificate for the app's own host: refused with another's key, then
        // added and served for it; the key never comes back.
        slip(&ada, &["domains:add", "demo.localhost"]).success();
        let (cert, key) = certificate(&ada, "demo", "demo.localhost");
        let (_, other_key) = certificate(&ada, "other", "demo.localhost");
        let refused = slip(&ada, &["certs:add", "demo", &cert, &other_key]);
        assert_eq!(refused.failure(), "error: the key does not match the certificate: upload the key the certificate was issued for");
        assert!(slip(&ada, &["certs"]).success().starts_with("demo has no certificates"));
        assert_eq!(slip(&eve, &["certs:add", "demo", &cert, &key]).failure(), "error: no app named demo: see yours with `slip apps`");
        let added = slip(&bob, &["certs:add", "demo", &cert, &key]);
        assert!(added.success().starts_with("Added certificate demo to demo: it covers demo.localhost and expires "), "{}", added.stdout);
        assert!(added.success().contains("It is served for demo.localhost from now on."), "{}", added.stdout);
        let listed = slip(&ada, &["certs"]);
        assert!(listed.success().contains("demo  demo.localhost  demo.localhost"), "{}", listed.stdout);
        let info = slip(&ada, &["tls"]);
        assert!(info.success().contains("demo.localhost  demo (uploaded)"), "{}", info.stdout);
        let json = slip(&ada, &["certs:info", "demo", "--json"]);
        assert_eq!(json.json()["domains"], json!(["demo.localhost"]));
        let key_line = std::fs::read_to_string(&key).unwrap().lines().nth(1).unwrap().to_owned();
        assert!(!json.stdout.contains("PRIVATE KEY") && !json.stdout.contains(&key_line));
        let detached = slip(&ada, &["certs:detach", "demo", "demo.localhost"]);
        assert!(detached.success().contains("is no longer served with certificate demo"), "{}", detached.stdout);
        slip(&ada, &["certs:attach", "demo", "demo.localhost"]).success();
        slip(&ada, &["certs:remove", "demo"]).success();
        assert!(slip(&ada, &["tls"]).success().contains("demo.localhost  platform"));
        drop(platform);
    }
}
