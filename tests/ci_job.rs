//! A CI job with no login of its own: `SLIPWAY_URL`, a deploy-scoped `SLIPWAY_TOKEN` and a
//! deploy key are all it has. It deploys its app, through the API and through `git push`,
//! and nothing else; a revoked or expired token is refused.

use serde_json::Value;
use slipway_e2e::{User, both_backends, eventually};

/// Makes `dir` a git repository with a Procfile and one commit.
fn app_repo(user: &mut User, dir: &str, procfile: &str) {
    let path = user.home().join(dir);
    std::fs::create_dir_all(&path).unwrap();
    user.cwd = path.clone();
    user.git(&["init", "-q", "-b", "main"]).success();
    std::fs::write(path.join("Procfile"), procfile).unwrap();
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", "first"]).success();
}

both_backends! {
    fn a_ci_job_deploys_its_app_and_nothing_else(platform: Platform) {
        let root = User::registered(&platform, "root");
        let mut ada = User::registered_by(&platform, &root, "ada");
        app_repo(&mut ada, "myapp", "web: ./serve\n");
        ada.slip(&["create", "demo"]).success();
        // About deploying: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "demo"]).success();
        ada.slip(&["create", "other", "--no-remote"]).success();

        // The owner makes the job's token and deploy key; the token is printed alone.
        let token = ada.slip(&["tokens:create", "--description", "CI deploys", "--expires-in", "1h", "-a", "demo"]);
        let token = token.success().trim().to_owned();
        assert!(token.starts_with("slp_") && !token.contains(char::is_whitespace), "{token:?}");
        let mut ci = User::ci(&platform.api_url, &token);
        let key = ci.ssh_key();
        ada.slip(&["keys:add", "--app", "demo", "--deploy-key", &format!("{}.pub", key.display())]).success();
        let listed = ada.slip(&["keys", "-a", "demo"]);
        assert!(listed.success().contains("test@slipway"), "{}", listed.stdout);
        ci.cwd = ada.cwd.clone();

        // The job has no credentials file, and says where its login comes from.
        let whoami = ci.slip(&["whoami"]);
        assert_eq!(whoami.success().trim(), format!("ada at {} (from SLIPWAY_TOKEN)", platform.api_url));
        assert!(!ci.home().join(".config/slipway/credentials.json").exists());
        assert!(ci.slip(&["logout"]).failure().contains("SLIPWAY_TOKEN"));

        // It pushes its app with the deploy key, clones it, and deploys a build through the API.
        ci.push_deployed();
        let clone = ci.home().join("clone");
        ci.git(&["clone", "-q", &format!("{}/demo.git", platform.ssh_url), clone.to_str().unwrap()]).success();
        assert_eq!(std::fs::read_to_string(clone.join("Procfile")).unwrap(), "web: ./serve\n");
        let builds = ci.slip(&["builds", "-a", "demo", "--json"]).json();
        let image = builds[0]["image"].as_str().expect("the push's image").to_owned();
        ci.slip(&["builds:create", &image, "-a", "demo"]).success();
        let releases = ci.slip(&["releases", "-a", "demo", "--json"]).json();
        assert_eq!(releases[0]["version"], 3, "{releases}");

        // Nothing else: another app through the API and through git, other actions, more tokens.
        let other = ci.slip(&["builds:create", &image, "-a", "other"]);
        assert!(other.failure().contains("this token may only be used for demo"), "{}", other.stderr);
        let config = ci.slip(&["config:set", "A=1", "-a", "demo"]);
        assert!(config.failure().contains("this token may only read and deploy demo"), "{}", config.stderr);
        assert!(ci.slip(&["create", "mine"]).failure().contains("this token is limited to demo"));
        assert!(ci.slip(&["tokens:create", "--description", "more"]).failure().contains("this token is limited to demo"));
        let push = ci.git(&["push", &format!("{}/other.git", platform.ssh_url), "main"]);
        assert!(!push.ok && push.stderr.contains("there is no app other: create it with `slip create other`"), "{}", push.stderr);
        let fetch = ci.git(&["ls-remote", &format!("{}/other.git", platform.ssh_url)]);
        assert!(!fetch.ok && fetch.stderr.contains("there is no app other"), "{}", fetch.stderr);
        assert_eq!(ada.slip(&["releases", "-a", "other", "--json"]).json().as_array().unwrap().len(), 1);

        // Revoked: refused at once.
        let tokens = ada.slip(&["tokens", "--json"]).json();
        let id = tokens.as_array().unwrap().iter().find(|t| t["description"] == "CI deploys").map(|t| t["id"].as_str().unwrap().to_owned()).unwrap();
        ada.slip(&["tokens:revoke", &id]).success();
        let revoked = ci.slip(&["releases", "-a", "demo"]);
        assert!(revoked.failure().contains("invalid or revoked API token"), "{}", revoked.stderr);

        // Expired: refused once its time is up.
        let short = ada.slip(&["tokens:create", "--description", "short", "--expires-in", "1s", "-a", "demo"]);
        let short = short.success().trim().to_owned();
        ci.env = vec![("SLIPWAY_URL".to_owned(), platform.api_url.clone()), ("SLIPWAY_TOKEN".to_owned(), short)];
        let mut last = String::new();
        eventually(std::time::Duration::from_secs(20), "the token expires", || {
            let run = ci.slip(&["releases", "-a", "demo"]);
            last = run.stderr.clone();
            !run.ok
        });
        assert!(last.contains("the API token \"short\" expired: make a new one with `slip tokens:create`"), "{last}");
        let events: Value = ada.slip(&["events", "-a", "demo", "--json"]).json();
        let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        for action in ["token.create", "token.revoke", "keys.add"] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
    }
}
