//! The user's day of the product contract, up to `git push`, with the real `slipwayd` and
//! `slip`, on SQLite and on PostgreSQL; and what a restart or a crash must not lose.

use slipway_e2e::{User, both_backends};

const PASSWORD: &str = "correct horse battery";

both_backends! {
    fn users_day(platform: Platform) {
        let url = platform.api_url.clone();
        let mut ada = User::new();
        ada.slip(&["register", &url, "--username", "ada", "--password", PASSWORD]).success();
        assert!(ada.slip(&["whoami"]).success().contains("ada"));

        // An SSH key made by the real ssh-keygen.
        let key = ada.home().join("id_ed25519");
        ada.run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "ada@laptop", "-f", key.to_str().unwrap()]).success();
        ada.slip(&["keys:add", &format!("{}.pub", key.display())]).success();
        assert!(ada.slip(&["keys"]).success().contains("ada@laptop"));

        // `create` inside a git repository adds the `slipway` remote.
        let repo = ada.home().join("myapp");
        std::fs::create_dir(&repo).unwrap();
        ada.cwd = repo;
        ada.run("git", &["init", "-q", "-b", "main"]).success();
        ada.slip(&["create", "demo"]).success();
        let remote = ada.run("git", &["remote", "get-url", "slipway"]);
        assert_eq!(remote.success().trim(), format!("{}/demo.git", platform.ssh_url));

        // Two config sets make v2 and v3; the app comes from the git remote.
        assert!(ada.slip(&["config:set", "GREETING=hi"]).success().contains("v2"));
        assert!(ada.slip(&["config", "set", "GREETING=hello", "COLOR=red"]).success().contains("v3"));
        let config = ada.slip(&["config", "--json"]);
        let config: serde_json::Value = serde_json::from_str(config.success()).unwrap();
        assert_eq!(config["values"], serde_json::json!({"GREETING": "hello", "COLOR": "red"}));
        let releases = ada.slip(&["releases"]);
        let releases = releases.success();
        for expected in ["v3", "v2", "v1", "ada added GREETING", "ada created initial release"] {
            assert!(releases.contains(expected), "{expected:?} in:\n{releases}");
        }

        // Nothing was built yet, so there is nothing to roll back to.
        let refused = ada.slip(&["rollback"]);
        assert_eq!(refused.failure(), "error: v2 has no build to roll back to; push code first with `git push slipway main`");
        assert!(!ada.slip(&["releases"]).success().contains("v4"), "a refused rollback makes no release");

        let scaled = ada.slip(&["ps:scale", "web=2", "worker=1", "--json"]);
        let scaled: serde_json::Value = serde_json::from_str(scaled.success()).unwrap();
        assert_eq!(scaled, serde_json::json!([{"type": "web", "count": 2, "command": null}, {"type": "worker", "count": 1, "command": null}]));
        // Nothing is deployed, so nothing runs.
        assert_eq!(ada.slip(&["ps", "--json"]).success().trim(), "[]");
        assert!(ada.slip(&["ps"]).success().contains("web     2      -"));

        // A second user, created by the admin, is refused until added as a collaborator: to
        // them the app does not exist yet.
        ada.slip(&["register", &url, "--username", "bob", "--password", PASSWORD]).success();
        let bob = User::new();
        bob.slip(&["login", &url, "--username", "bob", "--password", PASSWORD]).success();
        let forbidden = bob.slip(&["config", "-a", "demo"]);
        assert_eq!(forbidden.failure(), "error: no app named demo: see yours with `slip apps`");
        bob.slip(&["config:set", "-a", "demo", "X=1"]).failure();
        ada.slip(&["perms:add", "bob"]).success();
        assert!(bob.slip(&["config:set", "-a", "demo", "X=1"]).success().contains("v4"));
        assert!(ada.slip(&["perms"]).success().contains("bob"));

        ada.slip(&["logout"]).success();
        assert!(ada.slip(&["whoami"]).failure().starts_with("error:"));
        drop(platform);
    }

    fn restart_and_crash_lose_nothing(platform: Platform) {
        let mut platform = platform;
        let url = platform.api_url.clone();
        let ada = User::new();
        ada.slip(&["register", &url, "--username", "ada", "--password", PASSWORD]).success();
        ada.slip(&["create", "demo", "--no-remote"]).success();
        ada.slip(&["config:set", "-a", "demo", "A=1"]).success();

        // Ctrl-C stops it cleanly.
        assert!(platform.stop().success(), "slipwayd exits 0 on SIGINT");
        platform.boot();
        let url = platform.api_url.clone();
        ada.slip(&["login", &url, "--username", "ada", "--password", PASSWORD]).success();
        ada.slip(&["config:set", "-a", "demo", "B=2"]).success();

        // kill -9 right after an acknowledged change loses nothing.
        platform.kill();
        platform.boot();
        let url = platform.api_url.clone();
        ada.slip(&["login", &url, "--username", "ada", "--password", PASSWORD]).success();
        let config = ada.slip(&["config", "-a", "demo", "--json"]);
        let config: serde_json::Value = serde_json::from_str(config.success()).unwrap();
        assert_eq!(config, serde_json::json!({"version": 3, "values": {"A": "1", "B": "2"}}));
    }
}
