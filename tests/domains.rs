//! Custom domains end to end: the real slipwayd, slip and router, and a DNS server this test
//! runs on a UDP port of 127.0.0.1 (passed as `--dns-resolver`). A pending domain gets the
//! router's 404; once its TXT record holds the token and `slip domains:verify` ran, it
//! reaches the app.

use std::sync::Arc;

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User, Zone, dns_server, http_get};

fn app_py() -> &'static str {
    r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from shop\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
}

#[tokio::test]
async fn a_pending_domain_gets_the_routers_404_and_a_verified_one_reaches_the_app() {
    let zone = Zone::default();
    let resolver = dns_server(Arc::clone(&zone));
    let platform = Platform::start_with(Backend::Sqlite, &["--dns-resolver", &resolver])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let dir = ada.home().join("shop");
        std::fs::create_dir_all(&dir).unwrap();
        ada.cwd = dir;
        ada.git(&["init", "-q", "-b", "main"]).success();
        std::fs::write(ada.cwd.join("app.py"), app_py()).unwrap();
        std::fs::write(ada.cwd.join("Procfile"), "web: python3 app.py\n").unwrap();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "shop"]).success();
        ada.slip(&["create", "shop"]).success();
        let pushed = ada.git(&["push", "-q", "slipway", "main"]);
        assert!(pushed.ok, "{}", pushed.stderr);
        assert_eq!(http_get(&platform.router, "shop.localhost", "/").unwrap().0, 200);

        // Added: pending, told what to do, and not routed.
        let added = ada.slip(&["domains:add", "shop.example.com"]);
        let said = added.success();
        assert!(said.contains("add a TXT record `_slipway-challenge.shop.example.com` with the value `slipway-verify-"), "{said}");
        assert!(said.contains("then run `slip domains:verify shop.example.com`"), "{said}");
        let listed: Value = serde_json::from_str(ada.slip(&["domains", "--json"]).success()).unwrap();
        assert_eq!(listed[0]["status"], "pending", "{listed}");
        let token = listed[0]["challenge"]["value"].as_str().unwrap().to_owned();
        let (status, page) = http_get(&platform.router, "shop.example.com", "/").unwrap();
        assert_eq!(status, 404, "a pending domain does not route: {page}");

        // Verify before the record exists: a one-line refusal, still pending.
        let refused = ada.slip(&["domains:verify", "shop.example.com"]);
        let error = refused.failure();
        assert!(error.contains("found no TXT record _slipway-challenge.shop.example.com"), "{error}");
        assert!(ada.slip(&["domains"]).success().contains("pending"));
        assert_eq!(http_get(&platform.router, "shop.example.com", "/").unwrap().0, 404);

        // The record published: verified, and the domain reaches the app.
        zone.lock().unwrap().insert("_slipway-challenge.shop.example.com".to_owned(), token);
        let verified = ada.slip(&["domains:verify", "shop.example.com"]);
        assert!(verified.success().contains("shop.example.com is verified"), "{}", verified.stdout);
        let (status, body) = http_get(&platform.router, "shop.example.com", "/").unwrap();
        assert_eq!((status, body.as_str()), (200, "hello from shop\n"));
        let table = ada.slip(&["domains"]);
        assert!(table.success().contains("verified"), "{}", table.stdout);
    })
    .await
    .unwrap();
}
